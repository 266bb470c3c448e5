"""unimq.temporary: unique queues that go away with their use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import unimq
from tests.helpers import ROOT, can_unshare, list_sysv_keys
from tests.lifecycle.conftest import backend_ready
from unimq._temporary import SYSV_TEMPORARY_KEYS
from unimq.system._orphans import registry_entries
from unimq.testing import wait_until_blocked

NAMESPACE = ["unshare", "--ipc", "--mount", "--propagation", "private"]


@pytest.fixture(autouse=True)
def private_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("UNIMQ_RUNTIME_DIR", str(runtime))
    return runtime


def ready(kind: str) -> None:
    reason = backend_ready(kind)
    if reason is not None:
        pytest.skip(reason)


def test_memory_temporary_is_unique_and_removed_at_close() -> None:
    with unimq.temporary("memory", max_messages=4) as a, unimq.temporary("memory") as b:
        assert a.url != b.url
        assert a.url.startswith("memory://unimq-tmp-")
        a.send(b"x")
        assert a.receive(timeout=0).data == b"x"
        assert a.stat().max_messages == 4
        url = a.url
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)


def test_a_second_handle_does_not_remove_it() -> None:
    with unimq.temporary("memory") as q:
        other = unimq.open(q.url)
        other.close()
        q.send(b"still here")
        assert q.receive(timeout=0).data == b"still here"


@pytest.mark.parametrize("kind", ["posix:///x", "sysv://1", "", "nope"])
def test_bad_kind(kind: str) -> None:
    with pytest.raises(unimq.InvalidURL):
        unimq.temporary(kind)


def test_bad_prefix() -> None:
    with pytest.raises(unimq.InvalidURL, match="prefix"):
        unimq.temporary("memory", prefix="a/b")


def test_unknown_option_creates_nothing() -> None:
    with pytest.raises(unimq.InvalidURL, match="unknown keyword option"):
        unimq.temporary("memory", colour="red")


def test_sysv_refuses_an_unsafe_runtime_dir_before_creating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    monkeypatch.setenv("UNIMQ_RUNTIME_DIR", str(loose))
    lo, hi = SYSV_TEMPORARY_KEYS
    before = {k for k in list_sysv_keys() if lo <= k <= hi}
    with pytest.raises(unimq.UnimqError, match="writable by others"):
        unimq.temporary("sysv")
    # Nothing was created: the registry entry is written before the queue.
    assert not (loose / "temporary").exists()
    assert {k for k in list_sysv_keys() if lo <= k <= hi} <= before


def test_posix_is_unlinked_at_once_and_works_until_closed() -> None:
    ready("posix")
    with unimq.temporary("posix", max_messages=4, max_message_size=64) as q:
        name = q.url.removeprefix("posix:///")
        mount = unimq.system.mqueue_mount()
        if mount is not None:
            assert name.lstrip("/") not in os.listdir(mount)
        with pytest.raises(unimq.QueueNotFound):
            unimq.open(q.url)
        q.send(b"alive")
        assert q.receive(timeout=0).data == b"alive"


def test_posix_forked_child_shares_it() -> None:
    ready("posix")
    with unimq.temporary("posix", max_messages=4, max_message_size=64) as q:
        pid = os.fork()
        if pid == 0:  # the child: send through the inherited descriptor and leave
            try:
                q.send(b"from the child", timeout=10)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert q.receive(timeout=10).data == b"from the child"


def test_sysv_is_registered_and_removed_at_close() -> None:
    ready("sysv")
    with unimq.temporary("sysv", max_bytes=1024) as q:
        entries = [e for _, e in registry_entries()[0] if e.url == q.url]
        assert len(entries) == 1
        assert entries[0].creator_pid == os.getpid()
        assert entries[0].id == q.stat().id
        with unimq.open(q.url) as peer:  # other processes can open it by key meanwhile
            peer.send(b"by key")
        assert q.receive(timeout=0).data == b"by key"
        url = q.url
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)
    assert registry_entries()[0] == []


def test_sysv_is_removed_at_normal_exit(private_runtime: Path) -> None:
    ready("sysv")
    code = "import unimq; q = unimq.temporary('sysv'); print(q.url)"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UNIMQ_RUNTIME_DIR": str(private_runtime)}
    proc = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # Closed by the exit handler, not found unclosed by the garbage collector.
    assert "unclosed queue handle" not in proc.stderr
    url = proc.stdout.strip()
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)
    assert registry_entries()[0] == []


CRASH = r"""
import json, os, signal, subprocess, sys, tempfile
from unimq import system
where = system.mount(tempfile.mkdtemp())
CHILD = '''
import unimq
keep = [unimq.temporary("sysv", max_bytes=512), unimq.temporary("sysv", max_bytes=512),
        unimq.temporary("posix", max_messages=2, max_message_size=64)]
print(json.dumps([q.url for q in keep]), flush=True)
import sys; sys.stdin.readline()
'''
child = subprocess.Popen([sys.executable, "-c", "import json\n" + CHILD],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
made = json.loads(child.stdout.readline())
os.kill(child.pid, signal.SIGKILL)
child.wait(timeout=60)
report = system.orphans()
posix_left = os.listdir(where)
print(json.dumps({"made": made, "orphans": [[o.url, o.action, o.temporary] for o in report.orphans],
                  "posix_left": posix_left}))
"""


def test_crashed_creator_leaves_exactly_its_sysv_temporaries(tmp_path: Path) -> None:
    ready("sysv")
    ready("posix")
    reason = can_unshare(*NAMESPACE[1:])
    if reason is not None:
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UNIMQ_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = subprocess.run(
        [*NAMESPACE, sys.executable, "-c", textwrap.dedent(CRASH)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    sysv_made = [u for u in out["made"] if u.startswith("sysv")]
    assert sorted(out["orphans"]) == sorted([u, "remove", True] for u in sysv_made)
    # The POSIX one was unlinked at creation and died with the killed descriptor.
    assert out["posix_left"] == []


@pytest.mark.parametrize("kind", ["memory", "sysv"])
def test_closing_wakes_a_waiter_with_queue_closed(kind: str) -> None:
    if kind != "memory":
        ready(kind)
    q = unimq.temporary(kind)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            q.receive(timeout=60)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    try:
        assert t.native_id is not None
        assert wait_until_blocked(t.native_id), "the receive never blocked"
    finally:
        q.close()
        t.join()
    assert len(errors) == 1
    assert isinstance(errors[0], unimq.QueueClosed)
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(q.url)


FORK = """
import os, sys
import unimq
q = unimq.temporary("sysv")
pid = os.fork()
if pid == 0:
    q.close()   # the child's copy is not the creating handle...
    sys.exit(0)  # ...and its exit handler does not remove the queue either
os.waitpid(pid, 0)
with unimq.open(q.url) as peer:
    peer.send(b"still here")
print(q.receive(timeout=10).data.decode())
q.close()
try:
    unimq.open(q.url)
except unimq.QueueNotFound:
    print("removed by its creator")
"""


def test_sysv_a_forked_child_does_not_remove_it(private_runtime: Path) -> None:
    ready("sysv")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UNIMQ_RUNTIME_DIR": str(private_runtime)}
    proc = subprocess.run(
        [sys.executable, "-c", FORK], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["still here", "removed by its creator"]
