"""No message is lost to standard output: the real ``unimq`` program run with a
closed stdout, a read-only stdout, and pipes whose reader has gone (before the
message is taken and after), plus the quiet exit of the listing commands on a
closed pipe."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import unimq
from tests.conftest import UrlFactory

UNIMQ = str(Path(sys.executable).with_name("unimq"))
SAVED = re.compile(r"saved to (\S+) \(mtype (\d+), priority (\d+), (\d+) bytes\)")


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    """Where recv saves what it could not write ($XDG_RUNTIME_DIR/unimq)."""
    return tmp_path


def env_for(runtime_dir: Path) -> dict[str, str]:
    return {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}


def unimq_with(
    args: list[str], *, stdout: int | None, runtime_dir: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UNIMQ, *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        env=env_for(runtime_dir),
        check=False,
    )


@pytest.fixture
def dead_pipe() -> Iterator[int]:
    """The write end of a pipe whose read end is already closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    yield write_end
    os.close(write_end)


def test_recv_with_closed_stdout_takes_nothing(sysv_url: str, runtime_dir: Path) -> None:
    with unimq.open(sysv_url, create=True) as q:
        q.send(b"keep me")
        # ">&-": the program starts with file descriptor 1 closed.
        proc = subprocess.run(
            [UNIMQ, "recv", sysv_url],
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env_for(runtime_dir),
            close_fds=True,
            preexec_fn=lambda: os.close(1),
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert "standard output is closed; no message was taken" in proc.stderr
        assert q.receive(timeout=0).data == b"keep me"  # still queued


def test_recv_with_read_only_stdout_takes_nothing(
    posix_url: str, runtime_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "ro"
    target.write_text("")
    with (
        unimq.open(posix_url, create=True, max_messages=2, max_message_size=64) as q,
        target.open("r") as read_only,
    ):
        q.send(b"keep me")
        proc = unimq_with(["recv", posix_url], stdout=read_only.fileno(), runtime_dir=runtime_dir)
        assert proc.returncode == 1, proc.stderr
        assert "open for reading only" in proc.stderr
        assert q.qsize() == 1


@pytest.mark.parametrize("kind", ["sysv", "posix"])
def test_recv_into_a_pipe_nobody_reads_takes_nothing(
    kind: str, make_url: UrlFactory, runtime_dir: Path, dead_pipe: int
) -> None:
    url = make_url(kind)
    options: dict[str, Any] = {"max_messages": 4, "max_message_size": 64} if kind == "posix" else {}
    with unimq.open(url, create=True, **options) as q:
        for i in range(3):
            q.send(b"m%d" % i)
        proc = unimq_with(["recv", url, "--count", "3"], stdout=dead_pipe, runtime_dir=runtime_dir)
        assert proc.returncode == 1, proc.stderr
        assert "whose reader has gone; no message was taken" in proc.stderr
        assert "Broken pipe" not in proc.stderr and "Traceback" not in proc.stderr
        assert q.qsize() == 3
    assert not any(runtime_dir.rglob("*.msg"))


@pytest.mark.parametrize("as_json", [False, True])
def test_recv_saves_a_message_it_took_when_the_reader_goes(
    sysv_url: str, runtime_dir: Path, as_json: bool
) -> None:
    with unimq.open(sysv_url, create=True) as q:
        q.send(b"first")
        args = ["recv", sysv_url, "--count", "3"] + (["--json"] if as_json else [])
        proc = subprocess.Popen(
            [UNIMQ, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env_for(runtime_dir),
        )
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline()
            assert b"first" in first
            wait_for_wchan(proc, "do_msgrcv")  # past the output check, waiting for message 2
            proc.stdout.close()  # the reader goes away (like `| head -1`)
            # recv is now blocked in receive: this message is taken, then cannot be written.
            q.send(b"\x00second\xff", mtype=7)
            err = proc.stderr.read().decode()
            assert proc.wait(timeout=60) == 1
        finally:
            stop(proc)
        assert "the reader of standard output has gone" in err
        assert "while writing message 2" in err
        found = SAVED.search(err)
        assert found, err
        path = Path(found.group(1))
        assert path.parent == runtime_dir / "unimq"
        assert path.read_bytes() == b"\x00second\xff"
        assert (found.group(2), found.group(4)) == ("7", "8")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert q.qsize() == 0
        # The command the error gives sends it back exactly.
        resend = err.split("send it again with: ", 1)[1].strip()
        assert resend == f"unimq send {sysv_url} --file {path} --mtype 7"
        subprocess.run([UNIMQ, *resend.split()[1:]], check=True, capture_output=True, timeout=60)
        assert q.receive(timeout=1) == unimq.Message(b"\x00second\xff", 7, 0)


def test_recv_interrupted_while_writing_keeps_the_message(
    posix_url: str, runtime_dir: Path
) -> None:
    """SIGTERM while recv is blocked writing into a full pipe: the message is saved."""
    big = b"x" * 60
    with unimq.open(posix_url, create=True, max_messages=4, max_message_size=64) as q:
        read_end, write_end = os.pipe()
        try:
            # Fill the pipe so that recv's write blocks.
            os.set_blocking(write_end, False)
            try:
                while True:
                    os.write(write_end, b"." * 4096)
            except BlockingIOError:
                pass
            os.set_blocking(write_end, True)
            q.send(big, priority=5)
            proc = subprocess.Popen(
                [UNIMQ, "recv", posix_url],
                stdout=write_end,
                stderr=subprocess.PIPE,
                env=env_for(runtime_dir),
            )
            try:
                # recv takes the message, then blocks writing into the full pipe.
                wait_for_wchan(proc, "pipe_write")
                assert q.qsize() == 0
                proc.send_signal(signal.SIGTERM)
                assert proc.stderr is not None
                err = proc.stderr.read().decode()
                assert proc.wait(timeout=60) == 128 + signal.SIGTERM
            finally:
                stop(proc)
        finally:
            os.close(read_end)
            os.close(write_end)
        found = SAVED.search(err)
        assert found, err
        assert Path(found.group(1)).read_bytes() == big
        assert found.group(3) == "5"
        assert "--priority 5" in err


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` if it still runs, reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def wait_for_wchan(proc: subprocess.Popen[bytes], wchan: str) -> None:
    """Wait (bounded) until the kernel shows ``proc`` sleeping in ``wchan`` (or in a
    function of that name with a prefix: 6.x kernels say anon_pipe_write)."""
    deadline = time.monotonic() + 60
    path = Path(f"/proc/{proc.pid}/wchan")
    while not path.read_text().endswith(wchan):
        assert proc.poll() is None, f"exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"never blocked in {wchan}"
        time.sleep(0.002)


@pytest.mark.parametrize(
    "args",
    [["ls"], ["ls", "--json"], ["limits"], ["limits", "--json"], ["watch", "--json"]],
    ids=" ".join,
)
def test_listing_commands_exit_quietly_on_a_closed_pipe(
    args: list[str], runtime_dir: Path, dead_pipe: int
) -> None:
    proc = unimq_with([*args], stdout=dead_pipe, runtime_dir=runtime_dir)
    assert proc.returncode == 141, proc.stderr
    assert "Broken pipe" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert "error" not in proc.stderr


def test_watch_json_stops_quietly_when_the_reader_has_its_line(
    sysv_url: str, runtime_dir: Path
) -> None:
    """`unimq watch --json | head -1`: the first sample arrives, then a quiet 141."""
    unimq.open(sysv_url, create=True).close()
    proc = subprocess.Popen(
        [UNIMQ, "watch", sysv_url, "--json", "--interval", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(runtime_dir),
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        sample = json.loads(proc.stdout.readline())
        assert sample[0]["url"] == sysv_url
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141
    finally:
        stop(proc)
    assert err == ""


def test_other_commands_say_when_stdout_is_closed(sysv_url: str, runtime_dir: Path) -> None:
    proc = subprocess.run(
        [UNIMQ, "create", sysv_url],
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env=env_for(runtime_dir),
        preexec_fn=lambda: os.close(1),
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == "unimq: error: standard output is closed\n"
    unimq.open(sysv_url).close()  # it was created: only the report could not be printed


def test_recv_on_a_terminal_shows_control_characters_escaped(
    sysv_url: str, runtime_dir: Path
) -> None:
    """Whoever can send to a queue chooses the bytes: on a terminal (a real pty)
    escape sequences are shown, not obeyed; into a pipe they go as they are."""
    import pty

    payload = b"red\x1b[31malert\x07"
    with unimq.open(sysv_url, create=True) as q:
        q.send(payload)
        q.send(payload)
        primary, secondary = pty.openpty()
        try:
            proc = unimq_with(["recv", sysv_url], stdout=secondary, runtime_dir=runtime_dir)
            os.close(secondary)
            secondary = -1
            assert proc.returncode == 0, proc.stderr
            shown = b""
            while not shown.endswith(b"\n"):
                shown += os.read(primary, 1024)
        finally:
            os.close(primary)
            if secondary >= 0:
                os.close(secondary)
        assert shown.replace(b"\r\n", b"\n") == b"red\\x1b[31malert\\x07\n"
        piped = unimq_with(["recv", sysv_url], stdout=subprocess.PIPE, runtime_dir=runtime_dir)
        assert piped.stdout == payload.decode() + "\n"
