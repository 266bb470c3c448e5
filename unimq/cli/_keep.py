"""Never lose a received message in the CLI.

A message taken off a queue exists only in this process. ``unimq recv`` checks
that standard output can take it *before* taking one, and if writing still
fails afterwards (the reader went away, the disk is full, a signal), the
message is saved to a file of its own, whose path, mtype and priority the
error line gives, with the command that sends it again.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import select
import shlex
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import unimq

__all__ = ["Terminated", "keep_message", "output_problem", "terminating_signals"]


def output_problem() -> str | None:
    """Why standard output could not take a message now, or None if it can.

    Checked: a closed descriptor (``>&-``), one opened read-only (``1<file``),
    and a pipe or socket whose reader has gone (poll reports POLLERR/POLLHUP).
    A stream that is not a file descriptor (a test harness) counts as writable.
    """
    stream = sys.stdout
    if stream is None:
        return "standard output is closed"
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError as exc:
        return f"standard output is not open ({exc.strerror})"
    if flags & os.O_ACCMODE == os.O_RDONLY:
        return "standard output is open for reading only"
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    for _fd, events in poller.poll(0):
        if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            return "standard output is a pipe (or socket) whose reader has gone"
    return None


def _save_dir() -> Path:
    """$XDG_RUNTIME_DIR/unimq, else a private directory in the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    candidates = [Path(runtime) / "unimq"] if runtime else []
    candidates.append(Path(tempfile.gettempdir()) / f"unimq-{os.getuid()}")
    for directory in candidates:
        with contextlib.suppress(OSError):
            directory.mkdir(mode=0o700, exist_ok=True)
            st = directory.lstat()
            # Only a real directory of ours that nobody else can write into.
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
                return directory
    return Path(tempfile.mkdtemp(prefix="unimq-"))


def _save(msg: unimq.Message) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    fd, name = tempfile.mkstemp(
        prefix=f"recv-{stamp}-mtype{msg.mtype}-priority{msg.priority}-",
        suffix=".msg",
        dir=_save_dir(),
    )
    with os.fdopen(fd, "wb") as f:
        f.write(msg.data)
        f.flush()
        os.fsync(f.fileno())
    return Path(name)


def keep_message(msg: unimq.Message, url: str, kind_has: unimq.Capability) -> str:
    """Save a message that could not be written out; return the sentence that
    says where it is and how to send it again (never raises)."""
    tags = []
    if kind_has & unimq.Capability.MTYPE:
        tags.append(f"--mtype {msg.mtype}")
    if kind_has & unimq.Capability.PRIORITY:
        tags.append(f"--priority {msg.priority}")
    try:
        path = _save(msg)
    except OSError as exc:
        # Last resort: the message itself, on stderr.
        encoded = base64.b64encode(msg.data).decode("ascii")
        return (
            f"it could not be saved either ({exc.strerror or exc}); here it is, base64 "
            f"(mtype {msg.mtype}, priority {msg.priority}, {len(msg.data)} bytes): {encoded}"
        )
    resend = " ".join(["unimq send", shlex.quote(url), "--file", shlex.quote(str(path)), *tags])
    return (
        f"it was saved to {path} (mtype {msg.mtype}, priority {msg.priority}, "
        f"{len(msg.data)} bytes); send it again with: {resend}"
    )


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like KeyboardInterrupt, so a message
    already taken is kept, then exit with 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminating_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while the block runs."""
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            previous[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
