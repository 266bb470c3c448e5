"""`unimq watch`: figures named for what they are, the send/receive traces the
kernel keeps (SysV: times and pids; POSIX: only when it was last used), and
samples on monotonic deadlines that do not drift."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

import unimq
from unimq.cli import cli
from unimq.cli._watch import Ticker


class FakeClock:
    """A clock that only moves when the code under test sleeps or works."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def test_ticker_does_not_drift_by_the_sample_time() -> None:
    clock = FakeClock()
    ticker = Ticker(0.01, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        clock.now += 0.001  # each sample takes a tenth of the interval
        ticker.wait()
    # 100 intervals, not 100 * (interval + sample time): no 10% drift.
    assert abs(clock.now - (100.0 + 100 * 0.01)) < 1e-9
    assert all(abs(s - 0.009) < 1e-9 for s in clock.sleeps)


def test_ticker_skips_deadlines_it_missed_instead_of_bursting() -> None:
    clock = FakeClock()
    ticker = Ticker(1.0, clock=clock, sleep=clock.sleep)
    clock.now += 3.5  # a sample that took three and a half intervals
    ticker.wait()
    assert clock.sleeps == [0.5]  # to the next deadline ahead (t0 + 4), no catching up
    clock.now += 0.25
    ticker.wait()
    assert clock.sleeps[-1] == 0.75
    assert clock.now == 105.0


def run_watch(*args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["watch", *args, "--json", "--iterations", "1"])
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_sysv_shows_who_sent_and_received_last(sysv_url: str) -> None:
    unimq.open(sysv_url, create=True).close()
    sender = subprocess.Popen(
        [sys.executable, "-c", f"import unimq; unimq.open({sysv_url!r}).send(b'x')"]
    )
    assert sender.wait(timeout=60) == 0
    (row,) = run_watch(sysv_url)
    assert row["last_send_pid"] == sender.pid
    assert row["last_receive_pid"] is None and row["last_receive_time"] is None
    sent_at = datetime.fromisoformat(str(row["last_send_time"]))
    assert abs(datetime.now(UTC) - sent_at) < timedelta(seconds=60)
    receiver = subprocess.Popen(
        [sys.executable, "-c", f"import unimq; unimq.open({sysv_url!r}).receive(timeout=5)"]
    )
    assert receiver.wait(timeout=60) == 0
    (row,) = run_watch(sysv_url)
    assert (row["last_send_pid"], row["last_receive_pid"]) == (sender.pid, receiver.pid)
    times = [str(row["last_send_time"]), str(row["last_receive_time"])]
    assert row["last_activity_time"] == max(times, key=datetime.fromisoformat)
    assert row["messages"] == 0


def test_posix_shows_only_when_it_was_last_used(posix_url: str) -> None:
    with unimq.open(posix_url, create=True, max_messages=2, max_message_size=8) as q:
        before = run_watch(posix_url)[0]["last_activity_time"]
        q.send(b"x")
        (row,) = run_watch(posix_url)
    assert row["last_send_pid"] is None and row["last_receive_pid"] is None  # not kept
    assert row["last_send_time"] is None and row["last_receive_time"] is None
    used = datetime.fromisoformat(str(row["last_activity_time"]))
    assert abs(datetime.now(UTC) - used) < timedelta(seconds=60)
    assert used >= datetime.fromisoformat(str(before))
    assert row["messages"] == 1


def test_human_view_names_each_figure() -> None:
    result = CliRunner().invoke(cli, ["watch", "--iterations", "1"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "DEPTH CHANGE/S" in text
    assert "not throughput" in text
    assert "RATE" not in text.upper().replace("GENERATE", "")
