"""Helpers for tests: listing queues, running code as another user or in a
private IPC namespace, compiling C peers.

Running a child as another user needs root (CAP_SETUID and CAP_SETGID for
setpriv); without it, tests that need a second user skip, saying why.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait as wait_for_handles
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

import unimq.system

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
#: Bound on waits for something that happens at once when the code works.
BOUND = 60.0


def wait_for(predicate: Callable[[], bool], what: str, *, timeout: float = BOUND) -> None:
    """Poll ``predicate`` until it holds, failing the test with ``what`` after
    ``timeout`` seconds. Only for states that have no event to wait on (a
    process state in /proc, a queue another process creates, a port)."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}", pytrace=False)
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def wait_exited(pid: int, *, timeout: float = BOUND) -> None:
    """Wait until child ``pid`` has exited, without reaping it (a pidfd becomes
    readable when the process ends); fail the test after ``timeout`` seconds."""
    fd = os.pidfd_open(pid)
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not readable:
        pytest.fail(f"process {pid} did not exit within {timeout} s", pytrace=False)


class DeathWatch:
    """Closes ``queue`` if ``child`` dies unexpectedly (with a non-zero exit code),
    so that a send or receive blocked there (even with ``timeout=None``) ends
    at once with :class:`unimq.QueueClosed`; leaving the ``with`` block turns
    that into a test failure naming the exit code. Call :meth:`expect_exit`
    before ending the child on purpose. The watching thread is always joined.
    """

    def __init__(self, child: BaseProcess, queue: unimq.Queue) -> None:
        self.child = child
        self._queue = queue
        self._expected = False
        self._fired = False
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._watch, name="death-watch", daemon=True)

    def _watch(self) -> None:
        ready = wait_for_handles([self.child.sentinel, self._stop_r])
        if self.child.sentinel not in ready or self._expected or self.child.pid is None:
            return
        try:  # peek at the exit status without reaping (the test may join the child)
            info = os.waitid(os.P_PID, self.child.pid, os.WEXITED | os.WNOWAIT)
            clean = info is not None and info.si_code == os.CLD_EXITED and info.si_status == 0
        except ChildProcessError:  # already reaped by the test
            clean = self.child.exitcode == 0
        if not clean and not self._expected:
            self._fired = True
            self._queue.close()

    def expect_exit(self) -> None:
        """The test ends the child itself from now on: that is no failure."""
        self._expected = True

    def __enter__(self) -> DeathWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(BOUND)
        os.close(self._stop_r)
        os.close(self._stop_w)
        if self._thread.is_alive():
            pytest.fail(f"the death watch did not finish within {BOUND} s", pytrace=False)
        if self._fired:
            pytest.fail(
                f"the child process exited with code {self.child.exitcode} "
                "while the test waited on it",
                pytrace=False,
            )


def list_sysv_keys() -> set[int]:
    """Keys of every SysV queue in this IPC namespace (from /proc/sysvipc/msg)."""
    keys: set[int] = set()
    try:
        with open("/proc/sysvipc/msg") as f:
            next(f)
            for line in f:
                keys.add(int(line.split()[0]) & 0xFFFFFFFF)
    except (OSError, StopIteration):
        pass
    return keys


@functools.cache
def can_unshare(*flags: str) -> str | None:
    """None if ``unshare FLAGS true`` works here, else the reason it does not."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    proc = subprocess.run(["unshare", *flags, "true"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return f"unshare {' '.join(flags)} is refused here: {proc.stderr.strip()}"
    return None


def _setpriv(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def _reachable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o001)


@functools.cache
def _reveal() -> list[str] | str:
    """A command prefix that lets another user run this venv's Python, or why none can.

    The interpreter, the venv or this tree may sit below a directory other
    users cannot enter (pyenv's Pythons under /root). Then the child runs in a
    private mount namespace where each such directory is a fresh tmpfs (mode
    0755) holding just those paths, bound back where they were: the host's
    mounts are untouched, and the paths stay the same (scripts' #! lines work).
    """
    needed: list[Path] = []
    for path in sorted({Path(p).resolve() for p in (sys.base_prefix, sys.prefix, ROOT)}):
        if not any(path.is_relative_to(other) for other in needed):
            needed.append(path)
    hidden: dict[Path, list[Path]] = {}
    for path in needed:
        blocker = next((a for a in reversed(path.parents) if not _reachable(a)), None)
        if blocker is None and not _reachable(path):
            blocker = path
        if blocker is not None:
            hidden.setdefault(blocker, []).append(path)
    if not hidden:
        return []
    if any(path in hidden for path in needed):
        return f"other users cannot enter {', '.join(map(str, hidden))}"
    reason = can_unshare("--mount", "--propagation", "private")
    if reason is not None:
        return f"other users cannot reach {', '.join(map(str, hidden))}, and {reason}"
    stage = Path(tempfile.mkdtemp(prefix="unimq-reveal-"))
    atexit.register(shutil.rmtree, stage, ignore_errors=True)
    script = ["set -e"]
    places = [path for paths in hidden.values() for path in paths]
    for i, path in enumerate(places):
        (stage / str(i)).mkdir()
        script.append(f"mount --bind {shlex.quote(str(path))} {stage / str(i)}")
    for blocker in hidden:
        script.append(f"mount -t tmpfs -o mode=0755 unimq-reveal {shlex.quote(str(blocker))}")
    for i, path in enumerate(places):
        quoted = shlex.quote(str(path))
        script += [f"mkdir -p {quoted}", f"mount --bind {stage / str(i)} {quoted}"]
    script.append('exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script), "sh"]


@functools.cache
def cannot_switch_user() -> str | None:
    """None if this process can run this venv's Python as another user, else why not."""
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is needed to run a child as another user"
    proc = subprocess.run(
        [*_setpriv(NOBODY), "true"], capture_output=True, text=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        return (
            "running a child as another user needs root (CAP_SETUID, CAP_SETGID), "
            f"and uid {os.geteuid()} has not: {proc.stderr.strip()}"
        )
    reveal = _reveal()
    if isinstance(reveal, str):
        return f"uid {NOBODY} cannot run this Python: {reveal}"
    probe = "import sys, unimq; print(sys.version)"
    proc = subprocess.run(
        [*reveal, *_setpriv(NOBODY), sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd="/",
    )
    if proc.returncode != 0 or proc.stdout.strip() != sys.version:
        return (
            f"uid {NOBODY} cannot run this Python ({sys.executable}) as itself: "
            f"{(proc.stderr.strip() or proc.stdout.strip())[-300:]}"
        )
    return None


def as_user(uid: int, cmd: list[str]) -> list[str]:
    """``cmd`` run as ``uid``/``gid`` with no capabilities (setpriv); the calling
    test is skipped when this process cannot run its Python as another user."""
    reason = cannot_switch_user()
    if reason is not None:
        pytest.skip(reason)
    reveal = _reveal()
    assert isinstance(reveal, list)
    return [*reveal, *_setpriv(uid), *cmd]


def privileged() -> bool:
    """Whether this process is root or has any capability."""
    with open("/proc/self/status") as f:
        caps = next((line.split()[1] for line in f if line.startswith("CapEff:")), "0")
    return os.geteuid() == 0 or int(caps, 16) != 0


def unprivileged(cmd: list[str]) -> list[str]:
    """``cmd`` run without privileges: as is when this process has none, else as nobody."""
    return as_user(NOBODY, cmd) if privileged() else cmd


def over_msg_max() -> int:
    """A ``max_messages`` one above what binds this process: fs.mqueue.msg_max, or
    the kernel's hard ceiling (65536) for a process with CAP_SYS_RESOURCE."""
    limits = unimq.system.limits()
    if limits.cap_sys_resource or limits.msg_max is None:
        return 65536 + 1
    return limits.msg_max + 1


def run_python(
    code: str,
    *,
    user: int | None = None,
    namespace: bool = False,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this venv.

    ``user``: run as that uid/gid with no capabilities (setpriv).
    ``namespace``: run in a private IPC namespace (unshare --ipc), where queue
    sysctls can be changed without touching the host.
    """
    cmd: list[str] = []
    if namespace:
        cmd += ["unshare", "--ipc"]
    python = [sys.executable, "-c", textwrap.dedent(code)]
    cmd += python if user is None else as_user(user, python)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=full_env, cwd=ROOT
    )


def compile_c(source: str, name: str, tmp_path: Path, *extra: str) -> Path:
    """Compile a C program with the system's cc; the caller skips if cc is missing."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise FileNotFoundError("no C compiler (cc) on this machine")
    src = tmp_path / f"{name}.c"
    src.write_text(textwrap.dedent(source))
    exe = tmp_path / name
    subprocess.run([cc, "-O2", "-Wall", "-o", str(exe), str(src), *extra], check=True)
    return exe


#: Python prelude for child programs: ``attempt(fn)`` returns ``{"ok": True}``
#: or the unimq error (class name, errno, text, limit) as a JSON-ready dict.
CATCH = """
import json, unimq
def attempt(fn):
    try:
        fn()
        return {"ok": True}
    except unimq.UnimqError as e:
        return {"error": type(e).__name__, "errno": e.errno, "text": str(e),
                "limit": getattr(e, "limit", None)}
"""


def child_json(code: str, *, user: int | None = None, namespace: bool = False) -> dict[str, object]:
    """Run code that prints one JSON line last; return it (failing with the child's stderr)."""
    proc = run_python(code, user=user, namespace=namespace)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


#: An LD_PRELOAD library for a kernel without MSG_COPY (no CONFIG_CHECKPOINT_RESTORE).
NO_MSG_COPY_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/msg.h>

/* A kernel without CONFIG_CHECKPOINT_RESTORE: msgrcv with MSG_COPY fails
 * with the errno in NO_MSG_COPY_ERRNO (ENOSYS, or EINVAL on old kernels). */
ssize_t msgrcv(int id, void *buf, size_t size, long type, int flags)
{
    static ssize_t (*real)(int, void *, size_t, long, int);
    if (real == NULL)
        real = (ssize_t (*)(int, void *, size_t, long, int))dlsym(RTLD_NEXT, "msgrcv");
    if (flags & MSG_COPY) {
        errno = atoi(getenv("NO_MSG_COPY_ERRNO"));
        return -1;
    }
    return real(id, buf, size, type, flags);
}
"""


def posix_channel_class(path: str) -> Any:
    """unimq_posix's channel class for ``path``: "c" (_fast.Channel, skipping
    the test where it is not built) or anything else (the pure-Python one)."""
    import unimq_posix  # only for POSIX tests
    from unimq_posix._channel import PyChannel

    if path != "c":
        return PyChannel
    if not unimq_posix.ACCELERATED:
        pytest.skip("unimq_posix._fast is not built (or UNIMQ_PURE_PYTHON is set)")
    from unimq_posix import _fast

    return _fast.Channel
