"""The runtime directory and process identities, for the temporary-queue registry.

A process is identified by its pid *and* its start time (field 22 of
/proc/PID/stat, clock ticks since boot), so a pid the kernel reused for
another program is never taken for the process that registered a queue.
"""

from __future__ import annotations

import errno as E
import os
import stat
from pathlib import Path
from typing import Literal

from unimq._errors import UnimqError

__all__ = [
    "ProcessState",
    "boot_id",
    "namespace",
    "process_start",
    "process_state",
    "runtime_dir",
]

ProcessState = Literal["alive", "gone", "unknown"]


def _candidate_dir() -> Path:
    explicit = os.environ.get("UNIMQ_RUNTIME_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        try:
            st = os.stat(xdg)
        except OSError:
            st = None
        if st is not None and st.st_uid == os.geteuid():
            return Path(xdg) / "unimq"
    if os.geteuid() == 0:
        return Path("/run/unimq")
    return Path(f"/tmp/unimq-{os.geteuid()}")


def runtime_dir(*, create: bool = True) -> Path:
    """Where unimq keeps per-user runtime state (the temporary-queue registry).

    ``$UNIMQ_RUNTIME_DIR`` if set, else ``$XDG_RUNTIME_DIR/unimq`` (when that
    directory is ours), ``/run/unimq`` for root, or ``/tmp/unimq-UID``. The
    directory is created with mode 0700 and must be a real directory owned by
    this user that nobody else can write to: anything else (a symlink another
    user planted in /tmp, a group-writable directory) is refused.

    :raises UnimqError: if the directory is unsafe or cannot be made.
    """
    path = _candidate_dir()
    if create:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise UnimqError(
                f"cannot create unimq's runtime directory {path}: {exc.strerror}; "
                "set UNIMQ_RUNTIME_DIR to a directory of yours",
                errno=exc.errno,
            ) from exc
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    problem = None
    if not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory (a symlink or a file)"
    elif st.st_uid != os.geteuid():
        problem = f"belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})"
    elif st.st_mode & 0o022:
        problem = f"is writable by others (mode 0o{st.st_mode & 0o777:03o})"
    if problem is not None:
        raise UnimqError(
            f"unimq's runtime directory {path} {problem}; refusing to use it. Remove it, "
            "or set UNIMQ_RUNTIME_DIR to a directory of yours with mode 0700",
            errno=E.EPERM,
        )
    return path


def process_start(pid: int) -> int | None:
    """The process's start time (clock ticks after boot; /proc/PID/stat field 22),
    or None if there is no such process (or it is a zombie: it can use nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def process_state(pid: int, start: int) -> ProcessState:
    """``"alive"`` if ``pid`` is still the process that started at ``start``,
    ``"gone"`` if it exited (or the pid now belongs to another process),
    ``"unknown"`` if /proc cannot tell."""
    try:
        now = process_start(pid)
    except (OSError, ValueError, IndexError):
        return "unknown"
    return "alive" if now == start else "gone"


def boot_id() -> str:
    """This boot's id (a queue registered before a reboot is long gone)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def namespace(kind: Literal["ipc", "pid"]) -> str:
    """This process's namespace, e.g. ``"ipc:[4026531839]"`` ("" if unreadable)."""
    try:
        return os.readlink(f"/proc/self/ns/{kind}")
    except OSError:
        return ""
