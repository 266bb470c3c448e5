"""The optional C hot paths (unimq_posix._fast, unimq_sysv._fast).

The rest of the suite runs on whichever path this installation has (the C
one wherever a compiler was present at install time). Here: the C sources
compile warning-free, the build really produced them, the messages they
build are real ``unimq.Message`` objects that do not leak, their large-message
branches work (in a private IPC namespace with raised limits), and the
pure-Python fallback passes the same conformance and per-backend suites.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory
from tests.helpers import CATCH, ROOT, can_unshare, child_json

CC = shutil.which("cc") or shutil.which("gcc")
KINDS = [k for k, ok in (("posix", HAVE_POSIX), ("sysv", HAVE_SYSV)) if ok]
PURE = os.environ.get("UNIMQ_PURE_PYTHON", "").strip().lower() not in ("", "0", "false", "no")


def accelerated(kind: str) -> bool:
    module = __import__(f"unimq_{kind}")
    return bool(module.ACCELERATED)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def small(kind: str) -> dict[str, Any]:
    return {"max_messages": 8, "max_message_size": 8192} if kind == "posix" else {}


@pytest.mark.skipif(CC is None, reason="no C compiler (cc) on this machine")
def test_sources_compile_without_warnings(kind: str, tmp_path: Path) -> None:
    assert CC is not None
    source = ROOT / "backends" / kind / f"unimq_{kind}" / "_fast.c"
    proc = subprocess.run(
        [
            CC,
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unused-parameter",
            "-Wno-missing-field-initializers",
            "-Wno-cast-function-type",
            "-shared",
            "-fPIC",
            f"-I{sysconfig.get_paths()['include']}",
            str(source),
            "-o",
            str(tmp_path / "fast.so"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(CC is None, reason="no C compiler (cc): the install is pure Python")
@pytest.mark.skipif(PURE, reason="UNIMQ_PURE_PYTHON is set")
def test_install_built_the_fast_path(kind: str) -> None:
    assert accelerated(kind), f"unimq_{kind}._fast was not built although cc exists"


def test_messages_are_real_and_do_not_leak(kind: str, make_url: UrlFactory) -> None:
    with unimq.open(make_url(kind), create=True, **small(kind)) as q:
        tag = {"mtype": 7} if kind == "sysv" else {"priority": 9}
        q.send(b"hello", **tag)
        msg = q.receive(timeout=0)
        assert type(msg) is unimq.Message
        expected = (b"hello", 7, 0) if kind == "sysv" else (b"hello", 1, 9)
        assert msg == unimq.Message(*expected)
        assert (msg.data, msg._replace(data=b"x").data) == (b"hello", b"x")
        payloads = [bytes([i]) * (1 + i * 31) for i in range(256)]
        for p in payloads[:4]:  # warm up caches before measuring
            q.send(p)
            q.receive()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(40):
                for p in payloads:
                    q.send(p)
                    assert q.receive().data == p
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        # 10240 messages of up to 8 KiB went through; a leak of even one
        # payload object per message would show as megabytes.
        assert after - before < 64 * 1024, f"{after - before} bytes still allocated"


def test_errors_keep_their_meaning(kind: str, make_url: UrlFactory) -> None:
    url = make_url(kind)
    with unimq.open(url, create=True, **small(kind)) as q:
        with pytest.raises(unimq.QueueEmpty):
            q.receive(timeout=0)
        q.remove()
        if kind == "sysv":  # the msqid is gone: EIDRM/EINVAL on both calls
            with pytest.raises(unimq.QueueRemoved):
                q.send(b"x", timeout=0)
            with pytest.raises(unimq.QueueRemoved):
                q.receive(timeout=0)
        else:  # an unlinked POSIX queue lives on while open
            q.send(b"x", timeout=0)
            assert q.receive(timeout=0).data == b"x"


@pytest.mark.parametrize("size", [8192 + 1, 60000])
def test_messages_larger_than_the_stack_buffer(kind: str, size: int) -> None:
    """Above 8 KiB the C path allocates; this needs limits raised, so it runs in
    a private IPC namespace where root may raise them without touching the host."""
    reason = can_unshare("--ipc")
    if reason:
        pytest.skip(reason)
    if kind == "sysv":
        setup = """
for name, value in (("msgmax", 65536), ("msgmnb", 131072)):
    open(f"/proc/sys/kernel/{name}", "w").write(str(value))
q = unimq.open("sysv://4242", create=True)
"""
    else:
        setup = """
open("/proc/sys/fs/mqueue/msgsize_max", "w").write("65536")
q = unimq.open("posix:///big", create=True, max_messages=2, max_message_size=65536)
"""
    code = (
        CATCH
        + setup
        + f"""
import importlib
data = bytes(range(256)) * ({size} // 256) + b"t" * ({size} % 256)
q.send(data)
got = q.receive(timeout=1).data
q.remove(); q.close()
print(json.dumps({{"ok": got == data, "size": len(got),
    "fast": importlib.import_module("unimq_{kind}").ACCELERATED}}))
"""
    )
    out = child_json(code, namespace=True)
    assert out["ok"] is True
    assert out["size"] == size
    assert out["fast"] is (accelerated(kind))


@pytest.mark.skipif(PURE, reason="already running the pure-Python path")
@pytest.mark.skipif(not KINDS, reason="no kernel backend installed")
def test_pure_python_fallback_passes_the_same_suites() -> None:
    """UNIMQ_PURE_PYTHON=1 switches both backends to posix_ipc/sysv_ipc calls;
    the conformance and per-backend suites must pass on that path too."""
    env = {**os.environ, "UNIMQ_PURE_PYTHON": "1"}
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import unimq_posix, unimq_sysv; "
            "print(unimq_posix.ACCELERATED, unimq_sysv.ACCELERATED)",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert check.stdout.split() == ["False", "False"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/conformance",
            "tests/posix",
            "tests/sysv",
            "tests/accel",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    tail = "\n".join(proc.stdout.splitlines()[-5:])
    print(tail)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in tail
