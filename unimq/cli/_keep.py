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
from typing import Any

import unimq

__all__ = ["Stopper", "Terminated", "keep_message", "output_problem"]


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
    """SIGINT, SIGTERM or SIGHUP asked the command to stop (exit 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Stopper:
    """SIGINT, SIGTERM and SIGHUP as a request to stop, honoured where it is safe.

    While the block runs, a signal only records the request, so it can never
    land between the kernel handing over a message and the command counting,
    writing or saving it; :meth:`check` raises :class:`Terminated` at the
    points where stopping loses nothing. Inside :meth:`waiting` (a blocked
    receive, or a write into a pipe that is full) it raises at once, so a wait
    that could last forever is interrupted. SIGKILL cannot be caught: a
    message taken by a process killed that way is lost, as with any program.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._interruptible = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self._interruptible:
            self._interruptible = False
            raise Terminated(signum)

    def __enter__(self) -> Stopper:
        for signum in self.SIGNALS:
            with contextlib.suppress(ValueError, OSError):  # not the main thread
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def check(self) -> None:
        """Raise :class:`Terminated` if a stop was asked for."""
        if self.signum is not None:
            raise Terminated(self.signum)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """A block a signal may interrupt (it raises :class:`Terminated` inside)."""
        self.check()
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False
