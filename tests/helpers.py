"""Helpers for tests: listing queues, running code as another user or in a
private IPC namespace, compiling C peers."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


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


def list_posix_queues() -> set[str] | None:
    """Names of every POSIX queue in this IPC namespace, or None if they cannot be listed.

    Mounts an mqueue fs in a private *mount* namespace (same IPC namespace),
    so the host's mounts are never touched.
    """
    if can_unshare("--mount", "--propagation", "private") is not None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t mqueue none {tmp} && ls -A {tmp}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        return None
    return set(proc.stdout.split())


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
    if user is not None:
        cmd += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    cmd += [sys.executable, "-c", textwrap.dedent(code)]
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
