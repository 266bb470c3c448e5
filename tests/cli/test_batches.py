"""``send --lines`` and ``recv --count N`` move messages in batches
(send_many/receive_many) with the same results as one by one: order, exact
counts when they stop part way, and nothing lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import unimq
from tests.cli.test_output import SAVED, unimq_with
from tests.cli.test_partial import unimq_run


def test_send_lines_and_recv_count_across_batches(sysv_url: str) -> None:
    """150 lines: three send_many calls (64 + 64 + 22) and as many receive_many."""
    lines = [b"line %d" % i for i in range(150)]
    with unimq.open(sysv_url, create=True):
        sent = unimq_run("send", sysv_url, "-", "--lines", "--json", input=b"\n".join(lines))
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) == {"url": sysv_url, "sent": 150, "total": 150}
        got = unimq_run("recv", sysv_url, "--count", "150", "--timeout", "0")
        assert got.returncode == 0, got.stderr
        assert got.stdout.splitlines() == [line.decode() for line in lines]


def test_send_lines_with_tags_in_batches(posix_url: str) -> None:
    with unimq.open(posix_url, create=True, max_messages=4, max_message_size=16) as q:
        proc = unimq_run("send", posix_url, "-", "--lines", "--priority", "3", input=b"a\nb\nc\n")
        assert proc.returncode == 0, proc.stderr
        assert q.receive_many(10, timeout=0) == [unimq.Message(x, 1, 3) for x in (b"a", b"b", b"c")]


def test_a_too_large_line_midway_stops_after_the_lines_before_it(sysv_url: str) -> None:
    """As one by one: the 70 lines before the bad one went (a batch would refuse
    its whole chunk: the command sends that chunk line by line instead)."""
    with unimq.open(sysv_url, create=True) as q:
        lines = [b"%d" % i for i in range(70)] + [b"x" * (q.max_message_size + 1)] + [b"z"] * 5
        proc = unimq_run("send", sysv_url, "-", "--lines", "--json", input=b"\n".join(lines))
        assert proc.returncode != 0
        record = json.loads(proc.stdout)
        assert (record["sent"], record["total"]) == (70, 76)
        assert "sent 70 of 76 message(s)" in proc.stderr
        assert "(messages 71..76 were not sent)" in proc.stderr
        assert [m.data for m in q.receive_many(100, timeout=0)] == lines[:70]


def test_send_lines_into_a_full_queue_counts_exactly(posix_url: str) -> None:
    """Capacity 4, 70 lines, --timeout 0: the first batch stops after 4."""
    with unimq.open(posix_url, create=True, max_messages=4, max_message_size=16) as q:
        lines = b"\n".join(b"%d" % i for i in range(70))
        proc = unimq_run("send", posix_url, "-", "--lines", "--timeout", "0", "--json", input=lines)
        assert proc.returncode == 3, proc.stderr
        record = json.loads(proc.stdout)
        assert (record["sent"], record["total"]) == (4, 70)
        assert "(messages 5..70 were not sent)" in proc.stderr
        assert [m.data for m in q.receive_many(10, timeout=0)] == [b"0", b"1", b"2", b"3"]


def test_recv_count_takes_no_more_than_asked(sysv_url: str) -> None:
    with unimq.open(sysv_url, create=True) as q:
        q.send_many([b"%d" % i for i in range(10)])
        proc = unimq_run("recv", sysv_url, "--count", "3", "--timeout", "0")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == ["0", "1", "2"]
        assert q.qsize() == 7
        short = unimq_run("recv", sysv_url, "--count", "9", "--timeout", "0")
        assert short.returncode == 3
        assert short.stdout.splitlines() == [str(i) for i in range(3, 10)]
        assert "received 7 of 9 message(s)" in short.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_recv_takes_one_message_at_a_time_when_it_cannot_write(
    sysv_url: str, tmp_path: Path
) -> None:
    """Standard output is /dev/full (ENOSPC on write): recv takes one message,
    saves it with the command that sends it back, and leaves the others queued."""
    with unimq.open(sysv_url, create=True) as q:
        sent = [unimq.Message(b"m%d" % i, i + 1, 0) for i in range(3)]
        q.send_many(sent)
        with open("/dev/full", "wb") as full:
            proc = unimq_with(
                ["recv", sysv_url, "--count", "3"], stdout=full.fileno(), runtime_dir=tmp_path
            )
        assert proc.returncode == 1, proc.stderr
        saved = SAVED.findall(proc.stderr)
        assert [(Path(p).read_bytes(), int(t)) for p, t, _, _ in saved] == [(b"m0", 1)]
        assert q.qsize() == 2
        resend = proc.stderr.split("send it again with: ")[1].split(";")[0].strip().split()
        assert resend[0] == "unimq"
        assert unimq_run(*resend[1:]).returncode == 0
        assert q.receive_many(10, timeout=0) == [*sent[1:], sent[0]]
