"""Operations that stop part way say what they did, and exit with the code of
the documented table (real queues, the real program as a subprocess)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import unimq
from tests.conftest import UrlFactory

UNIMQ = str(Path(sys.executable).with_name("unimq"))


def unimq_run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([UNIMQ, *args], input=input, capture_output=True, timeout=60, check=False)
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


@pytest.mark.parametrize("as_json", [False, True])
def test_send_lines_into_a_queue_with_room_for_two(posix_url: str, as_json: bool) -> None:
    with unimq.open(posix_url, create=True, max_messages=2, max_message_size=16) as q:
        args = ["send", posix_url, "-", "--lines", "--timeout", "0.05"]
        proc = unimq_run(*args, *(["--json"] if as_json else []), input=b"a\nb\nc\n")
        assert proc.returncode == 3, proc.stderr  # timeout: the table's 3, not 1
        line = proc.stderr.strip()
        assert line.startswith("unimq: error: sent 2 of 3 message(s) to ")
        assert "(messages 3..3 were not sent)" in line
        assert line.count("\n") == 0
        if as_json:
            record = json.loads(proc.stdout)
            assert (record["sent"], record["total"], record["exit_code"]) == (2, 3, 3)
        else:
            assert proc.stdout == ""
        assert [q.receive(timeout=0).data for _ in range(2)] == [b"a", b"b"]
        assert q.qsize() == 0


def test_send_all_lines_reports_the_total(sysv_url: str) -> None:
    unimq.open(sysv_url, create=True).close()
    proc = unimq_run("send", sysv_url, "-", "--lines", "--json", input=b"1\n2\n\n3\n")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"url": sysv_url, "sent": 3, "total": 3}


def test_send_with_model_validates_everything_before_sending(sysv_url: str) -> None:
    unimq.open(sysv_url, create=True).close()
    lines = b'{"sku": "a", "qty": 1}\n{"sku": "b"}\n'
    proc = unimq_run("send", sysv_url, "-", "--lines", "--model", "unimq._demo:Order", input=lines)
    assert proc.returncode == 1
    assert "message 2 of 2 is not a valid Order" in proc.stderr
    assert "nothing was sent" in proc.stderr
    with unimq.open(sysv_url) as q:
        assert q.qsize() == 0


def test_rm_a_missing_b_removes_both_and_names_the_missing(make_url: UrlFactory) -> None:
    a, missing, b = make_url("sysv"), make_url("sysv"), make_url("posix")
    unimq.open(a, create=True).close()
    unimq.open(b, create=True, max_messages=1, max_message_size=8).close()
    proc = unimq_run("rm", a, missing, b)
    assert proc.returncode == 4, proc.stderr  # the first failure: not found
    assert proc.stdout.splitlines() == [f"removed {a}", f"removed {b}"]
    errors = proc.stderr.splitlines()
    assert len(errors) == 2
    assert missing in errors[0] and "does not exist" in errors[0]
    assert errors[1] == "unimq: error: removed 2 of 3 queue(s); 1 could not be removed (see above)"
    for url in (a, b):
        with pytest.raises(unimq.QueueNotFound):
            unimq.open(url)


def test_rm_json_lists_removed_and_failed(make_url: UrlFactory) -> None:
    a, missing = make_url("sysv"), make_url("sysv")
    unimq.open(a, create=True).close()
    proc = unimq_run("rm", missing, a, "--json")
    assert proc.returncode == 4
    record = json.loads(proc.stdout)
    assert record["removed"] == [a]
    assert [(f["url"], f["exit_code"]) for f in record["failed"]] == [(missing, 4)]


def test_rm_mixed_failures_exit_with_the_first(make_url: UrlFactory) -> None:
    missing, a = make_url("sysv"), make_url("sysv")
    unimq.open(a, create=True).close()
    proc = unimq_run("rm", "sysv://notakey", missing, a)
    assert proc.returncode == 2  # the first failure was a usage error
    assert proc.stdout.strip() == f"removed {a}"


def _fill(q: unimq.Queue) -> int:
    while True:
        try:
            q.send(b"x", timeout=0)
        except unimq.QueueFull:
            return q.qsize()


def test_purge_reports_what_it_discarded_when_stopped_part_way(sysv_url: str) -> None:
    """SIGTERM in the middle of a purge: it says how many it discarded, and that
    is exactly how many left the queue. The purge is frozen (SIGSTOP) as soon as
    the queue starts to shrink, so the signal lands part way; a purge that
    finished first is retried."""
    with unimq.open(sysv_url, create=True) as q:
        for _attempt in range(20):
            queued = _fill(q)  # about 16,000 one-byte messages
            with subprocess.Popen(
                [UNIMQ, "purge", sysv_url, "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ) as proc:
                deadline = time.monotonic() + 60
                while q.qsize() == queued and proc.poll() is None:
                    assert time.monotonic() < deadline, "purge never started"
                proc.send_signal(signal.SIGSTOP)
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)
                out, err = proc.communicate(timeout=60)
            if proc.returncode == 0:
                continue  # it finished before it could be stopped: try again
            assert proc.returncode == 128 + signal.SIGTERM, err
            record = json.loads(out)
            left = q.qsize()
            assert 0 < record["purged"] < queued
            assert record["purged"] + left == queued  # what it says went is what went
            assert record["exit_code"] == 128 + signal.SIGTERM
            assert (
                f"unimq: error: purged {record['purged']} message(s) from {sysv_url}, "
                "then stopped: interrupted (SIGTERM)"
            ) == err.decode().strip()
            return
    pytest.fail("every purge finished before it could be stopped")


def test_purge_of_a_missing_queue_is_4(sysv_url: str) -> None:
    proc = unimq_run("purge", sysv_url)
    assert proc.returncode == 4


def test_send_stopped_while_waiting_for_room_says_exactly_what_went(
    posix_url: str, tmp_path: Path
) -> None:
    """No --timeout: the third line waits for room; SIGTERM stops it, and the
    count it reports is exact (a signal never lands inside a send)."""
    lines = tmp_path / "lines"
    lines.write_bytes(b"a\nb\nc\n")
    with (
        unimq.open(posix_url, create=True, max_messages=2, max_message_size=16) as q,
        lines.open("rb") as stdin,
    ):
        with subprocess.Popen(
            [UNIMQ, "send", posix_url, "-", "--lines", "--json"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            deadline = time.monotonic() + 60
            while q.qsize() < 2:  # two went; the third is waiting for room
                assert proc.poll() is None and time.monotonic() < deadline
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert json.loads(out)["sent"] == 2
        assert b"sent 2 of 3 message(s)" in err
        assert b"interrupted (SIGTERM)" in err
        assert q.qsize() == 2
