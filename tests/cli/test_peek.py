"""`unimq recv --peek` and `--except-mtype` (issue 18): SysV only."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import unimq
from tests.conftest import HAVE_POSIX, UrlFactory
from tests.helpers import NO_MSG_COPY_SHIM, compile_c
from unimq.cli import cli

UNIMQ = Path(sys.executable).with_name("unimq")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def err_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("unimq: error: ")
    return lines[0]


def fill(url: str, mtypes: tuple[int, ...]) -> None:
    with unimq.open(url) as q:
        for n, mtype in enumerate(mtypes):
            q.send(f"m{n}".encode(), mtype=mtype)


def queued(url: str) -> list[tuple[bytes, int]]:
    with unimq.open(url) as q:
        return [(m.data, m.mtype) for m in q.browse()]  # type: ignore[attr-defined]


@pytest.fixture
def sysv_queue(sysv_url: str) -> str:
    unimq.open(sysv_url, create=True, max_bytes=1024).close()
    return sysv_url


def test_peek_shows_every_message_and_takes_none(sysv_queue: str) -> None:
    fill(sysv_queue, (1, 2, 3))
    before = queued(sysv_queue)
    result = run("recv", sysv_queue, "--peek")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["m0", "m1", "m2"]
    assert queued(sysv_queue) == before


def test_peek_count_tags_and_json(sysv_queue: str) -> None:
    fill(sysv_queue, (4, 5, 6))
    result = run("recv", sysv_queue, "--peek", "--count", "2", "--show-tags")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["[mtype=4 priority=0] m0", "[mtype=5 priority=0] m1"]
    result = run("recv", sysv_queue, "--peek", "--count", "9", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["data"], r["mtype"]) for r in rows] == [("m0", 4), ("m1", 5), ("m2", 6)]
    assert len(queued(sysv_queue)) == 3


def test_peek_on_an_empty_queue_shows_nothing(sysv_queue: str) -> None:
    result = run("recv", sysv_queue, "--peek")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "extra", [["--follow"], ["--timeout", "1"], ["--mtype", "2"], ["--except-mtype", "2"]]
)
def test_peek_refuses_waiting_and_selection_options(sysv_queue: str, extra: list[str]) -> None:
    fill(sysv_queue, (1,))
    result = run("recv", sysv_queue, "--peek", *extra)
    assert result.exit_code == 2
    assert "does not apply with --peek" in result.stderr
    assert len(queued(sysv_queue)) == 1


def test_peek_on_memory_is_not_supported() -> None:
    with unimq.open("memory://cli-peek", create=True) as q:
        q.send(b"kept")
        result = run("recv", "memory://cli-peek", "--peek")
        assert result.exit_code == 2
        line = err_line(result)
        assert "memory:// queues cannot be peeked at" in line
        assert "only sysv://" in line
        assert q.receive(timeout=0).data == b"kept"
        q.remove()


@pytest.mark.skipif(not HAVE_POSIX, reason="unimq-posix is not installed")
def test_peek_and_except_on_posix_are_not_supported(make_url: UrlFactory) -> None:
    url = make_url("posix")
    with unimq.open(url, create=True, max_messages=4, max_message_size=64) as q:
        q.send(b"kept")
        result = run("recv", url, "--peek")
        assert result.exit_code == 2
        assert "posix:// queues cannot be peeked at" in err_line(result)
        result = run("recv", url, "--except-mtype", "3", "--timeout", "0")
        assert result.exit_code == 2
        assert "--except-mtype" in err_line(result)
        assert q.receive(timeout=0).data == b"kept"


def test_except_mtype_takes_the_first_other_type(sysv_queue: str) -> None:
    fill(sysv_queue, (7, 8, 7, 9))
    result = run("recv", sysv_queue, "--except-mtype", "7", "--count", "2", "--show-tags")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["[mtype=8 priority=0] m1", "[mtype=9 priority=0] m3"]
    assert queued(sysv_queue) == [(b"m0", 7), (b"m2", 7)]
    result = run("recv", sysv_queue, "--except-mtype", "7", "--timeout", "0")
    assert result.exit_code == 3
    assert "received 0 of 1" in err_line(result)
    assert len(queued(sysv_queue)) == 2


def test_except_mtype_with_mtype_is_a_usage_error(sysv_queue: str) -> None:
    result = run("recv", sysv_queue, "--except-mtype", "7", "--mtype", "3")
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_except_mtype_out_of_range(sysv_queue: str) -> None:
    result = run("recv", sysv_queue, "--except-mtype", "0", "--timeout", "0")
    assert result.exit_code == 2
    assert "mtype 1.." in err_line(result)


@pytest.mark.skipif(not UNIMQ.exists(), reason="the unimq entry point is not installed")
def test_peek_on_a_kernel_without_msg_copy(sysv_queue: str, tmp_path: Path) -> None:
    """The installed command, with msgrcv(MSG_COPY) failing as on a kernel
    without CONFIG_CHECKPOINT_RESTORE (an LD_PRELOAD shim): exit 2, saying what to do."""
    try:
        shim = compile_c(NO_MSG_COPY_SHIM, "nomsgcopy.so", tmp_path, "-shared", "-fPIC", "-ldl")
    except FileNotFoundError:
        pytest.skip("no C compiler (cc) on this machine")
    fill(sysv_queue, (1, 2))
    env = {**os.environ, "LD_PRELOAD": str(shim), "NO_MSG_COPY_ERRNO": str(errno.ENOSYS)}
    proc = subprocess.run(
        [str(UNIMQ), "recv", sysv_queue, "--peek"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "CONFIG_CHECKPOINT_RESTORE" in proc.stderr
    assert "receive the messages and send them again" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert queued(sysv_queue) == [(b"m0", 1), (b"m1", 2)]
