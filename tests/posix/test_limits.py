"""POSIX limits: errors from the call's own errno, one preflight for open and check.

Each runs in a child process (rlimits are per process; sysctls and mounts in a
private namespace), on both channels: the C one and the posix_ipc fallback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

import unimq
from tests.conftest import UrlFactory
from tests.helpers import CATCH, ROOT, can_unshare, run_python
from unimq.system._limits import has_cap_sys_resource, posix_queue_charge

pytest.importorskip("unimq_posix")

#: Child prelude: the current hard RLIMIT_MSGQUEUE (only the soft limit is lowered).
HARD = "import resource\nHARD = resource.getrlimit(resource.RLIMIT_MSGQUEUE)[1]\n"

SMALL: dict[str, Any] = {"max_messages": 2, "max_message_size": 64}


@pytest.fixture(params=["c", "py"])
def pure(request: pytest.FixtureRequest) -> dict[str, str]:
    """The child's environment: the C channel or UNIMQ_PURE_PYTHON=1."""
    if request.param == "c":
        import unimq_posix

        if not unimq_posix.ACCELERATED:
            pytest.skip("unimq_posix._fast is not built (or UNIMQ_PURE_PYTHON is set)")
        return {"UNIMQ_PURE_PYTHON": "0"}
    return {"UNIMQ_PURE_PYTHON": "1"}


def child(code: str, env: dict[str, str], *, namespace: bool = False) -> Any:
    proc = run_python(CATCH + HARD + code, env=env, namespace=namespace)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_out_of_descriptors_names_rlimit_nofile(pure: dict[str, str], make_url: UrlFactory) -> None:
    """Item 9: with every descriptor in use, opening an existing queue and
    creating a new one both say RLIMIT_NOFILE / ulimit -n (creating does not
    blame RLIMIT_MSGQUEUE), a wait that needs its eventfd (the fallback's)
    says the same and loses nothing, and all of it works again once a
    descriptor is free. The C channel with its wake signal needs no descriptor
    for a timed wait, and an untimed one polls until its blocking twin can be
    opened."""
    existing, fresh = make_url("posix"), make_url("posix")
    code = f"""
import os, resource
q = unimq.open({existing!r}, create=True, max_messages=2, max_message_size=64)
q.send(b"keep")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (32, hard))
fillers = []
while True:
    try:
        fillers.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        break
out = {{
    "open": attempt(lambda: unimq.open({existing!r})),
    "create": attempt(lambda: unimq.open({fresh!r}, create=True, max_messages=2,
                                          max_message_size=64)),
}}
os.close(fillers.pop())
h = unimq.open({existing!r})  # takes the free descriptor
out["got"] = h.receive(timeout=0).data.decode()  # no wait: no second descriptor
out["wait"] = attempt(lambda: h.receive(timeout=0.01))  # the fallback needs its eventfd
fast = getattr(h._channel, "twin", None) is not None
out["signal"] = fast and __import__("unimq_posix._fast").__dict__["_fast"].WAKE_SIGNAL
if out["signal"]:
    import threading
    late = threading.Timer(0.05, q.send, args=(b"late",))
    late.start()
    out["block"] = h.receive().data.decode()  # no descriptor for the twin: it polls
    late.join()
    out["twin_without_fd"] = h._channel.twin
os.close(fillers.pop())
out["after"] = attempt(lambda: h.receive(timeout=0.01))
if out["signal"]:
    late = threading.Timer(0.05, q.send, args=(b"later",))
    late.start()
    out["block_after"] = h.receive().data.decode()
    late.join()
    out["twin_after"] = h._channel.twin
h.close(); q.close()
for fd in fillers:
    os.close(fd)
out["fresh_exists"] = attempt(lambda: unimq.open({fresh!r}).close())
print(json.dumps(out))
"""
    out = child(code, pure)
    for key in ("open", "create") if out["signal"] else ("open", "create", "wait"):
        assert out[key]["error"] == "LimitExceeded", out
        assert out[key]["limit"] == "RLIMIT_NOFILE", out
        assert "ulimit -n" in out[key]["text"]
    if out["signal"]:
        assert out["wait"]["error"] == "QueueEmpty", out
        assert (out["block"], out["twin_without_fd"]) == ("late", "none")
        assert (out["block_after"], out["twin_after"]) == ("later", "open")
    else:
        assert pure["UNIMQ_PURE_PYTHON"] == "1", "no wake signal in a plain child"
    assert out["got"] == "keep"
    assert out["after"]["error"] == "QueueEmpty"
    assert out["fresh_exists"]["error"] == "QueueNotFound"


def test_create_refused_by_rlimit_msgqueue(pure: dict[str, str], make_url: UrlFactory) -> None:
    """mq_open's EMFILE with a descriptor free, on a create: RLIMIT_MSGQUEUE.

    The soft limit is lowered to just above one small queue's charge; queues
    this user already has (other processes) count too, so the refusal comes
    at the first or the second create, from the kernel (the preflight passes:
    the mqueue fs is not mounted here, or shows the charge).
    """
    charge = posix_queue_charge(2, 64)
    urls = [make_url("posix"), make_url("posix")]
    code = f"""
import resource
resource.setrlimit(resource.RLIMIT_MSGQUEUE, ({charge + charge // 2}, HARD))
handles, errors = [], []
for url in {urls!r}:
    try:
        handles.append(unimq.open(url, create=True, max_messages=2, max_message_size=64))
    except unimq.UnimqError as e:
        errors.append({{"error": type(e).__name__, "limit": getattr(e, "limit", None),
                        "text": str(e)}})
        break
for h in handles:
    h.remove(); h.close()
print(json.dumps(errors))
"""
    errors = child(code, pure)
    assert errors, "the kernel accepted two queues beyond RLIMIT_MSGQUEUE"
    assert errors[0]["error"] == "LimitExceeded"
    assert errors[0]["limit"] == "RLIMIT_MSGQUEUE"
    assert "ulimit -q" in errors[0]["text"]


def test_check_and_open_agree(pure: dict[str, str], make_url: UrlFactory) -> None:
    """system.check runs the preflight open(create=True) runs: the same verdicts."""
    url = make_url("posix")
    charge = posix_queue_charge(2, 64)
    code = f"""
import resource
from unimq import system
out = {{}}
for label, options in (("hard", {{"max_messages": 70000, "max_message_size": 64}}),
                       ("size", {{"max_messages": 2, "max_message_size": 16 * 1024 * 1024 + 1}})):
    r = system.check({url!r}, **options)
    out[label] = [r.ok, r.limit, attempt(lambda: unimq.open({url!r}, create=True, **options))]
resource.setrlimit(resource.RLIMIT_MSGQUEUE, ({charge - 1}, HARD))
r = system.check({url!r}, max_messages=2, max_message_size=64)
out["rlimit"] = [r.ok, r.limit, attempt(lambda: unimq.open({url!r}, create=True, max_messages=2,
                                                           max_message_size=64))]
out["notes"] = system.check({url!r}, max_messages=1, max_message_size=1).notes
print(json.dumps(out))
"""
    out = child(code, pure)
    assert out["hard"][:2] == [False, "fs.mqueue.msg_max"]
    assert out["hard"][2]["limit"] == "fs.mqueue.msg_max"
    assert "hard ceiling" in out["hard"][2]["text"]
    assert out["size"][:2] == [False, "fs.mqueue.msgsize_max"]
    assert out["size"][2]["limit"] == "fs.mqueue.msgsize_max"
    assert out["rlimit"][:2] == [False, "RLIMIT_MSGQUEUE"]
    assert out["rlimit"][2]["limit"] == "RLIMIT_MSGQUEUE"
    assert any("mqueue filesystem is not mounted" in n for n in out["notes"]) or any(
        "queues exist" in n for n in out["notes"]
    )
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)  # nothing was created


NAMESPACE = ("--ipc", "--mount", "--propagation", "private")


def test_preflight_counts_the_queues_in_a_mounted_mqueue_fs(pure: dict[str, str]) -> None:
    """Where the mqueue fs is mounted, the preflight counts the namespace's
    queues against fs.mqueue.queues_max and this user's charges against
    RLIMIT_MSGQUEUE, for open and for check alike."""
    reason = can_unshare(*NAMESPACE)
    if reason:
        pytest.skip(reason)
    if has_cap_sys_resource():
        pytest.skip("CAP_SYS_RESOURCE lifts fs.mqueue.queues_max")
    charge = posix_queue_charge(2, 64)
    code = f"""
import ctypes, os, resource, tempfile
from unimq import system
mnt = tempfile.mkdtemp()
libc = ctypes.CDLL(None, use_errno=True)
assert libc.mount(b"none", mnt.encode(), b"mqueue", 0, None) == 0, ctypes.get_errno()
open("/proc/sys/fs/mqueue/queues_max", "w").write("2")
a = unimq.open("posix:///a", create=True, max_messages=2, max_message_size=64)
b = unimq.open("posix:///b", create=True, max_messages=2, max_message_size=64)
out = {{"check": system.check("posix:///c", max_messages=2, max_message_size=64).model_dump(),
        "open": attempt(lambda: unimq.open("posix:///c", create=True, max_messages=2,
                                           max_message_size=64)),
        "existing": attempt(lambda: unimq.open("posix:///a", create=True, max_messages=2,
                                               max_message_size=64).close())}}
open("/proc/sys/fs/mqueue/queues_max", "w").write("100")
resource.setrlimit(resource.RLIMIT_MSGQUEUE, ({3 * charge - 1}, HARD))
out["rlimit_check"] = system.check("posix:///c", max_messages=2, max_message_size=64).model_dump()
out["rlimit_open"] = attempt(lambda: unimq.open("posix:///c", create=True, max_messages=2,
                                                max_message_size=64))
for q in (a, b):
    q.remove(); q.close()
libc.umount2(mnt.encode(), 0)
print(json.dumps(out))
"""
    full = subprocess.run(
        ["unshare", *NAMESPACE, sys.executable, "-c", CATCH + HARD + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), **pure},
        cwd=ROOT,
    )
    assert full.returncode == 0, full.stderr
    out = json.loads(full.stdout.strip().splitlines()[-1])
    check = out["check"]
    assert (check["ok"], check["limit"]) == (False, "fs.mqueue.queues_max")
    assert "2 POSIX queues exist" in check["problem"]
    assert out["open"]["limit"] == "fs.mqueue.queues_max"
    assert out["existing"] == {"ok": True}  # an existing queue still opens
    assert (out["rlimit_check"]["ok"], out["rlimit_check"]["limit"]) == (False, "RLIMIT_MSGQUEUE")
    assert "already charge" in out["rlimit_check"]["problem"]
    assert out["rlimit_open"]["limit"] == "RLIMIT_MSGQUEUE"


def test_einval_on_create_rereads_the_limits(pure: dict[str, str]) -> None:
    """A create the kernel refuses with EINVAL (the limit was lowered after the
    preflight) is explained from the limits read again, not guessed."""
    reason = can_unshare("--ipc")
    if reason:
        pytest.skip(reason)
    if has_cap_sys_resource():
        pytest.skip("CAP_SYS_RESOURCE lifts fs.mqueue.msg_max")
    code = """
from unimq._url import parse_url
from unimq_posix import PosixQueue
open("/proc/sys/fs/mqueue/msg_max", "w").write("3")
url = parse_url("posix:///lowered")
# _create is the call after the preflight: as if msg_max was lowered in between.
print(json.dumps(attempt(lambda: PosixQueue._create(
    url, mode=0o600, access="rw", options={"max_messages": 5, "max_message_size": 64}))))
"""
    out = child(code, pure, namespace=True)
    assert out["error"] == "LimitExceeded", out
    assert out["limit"] == "fs.mqueue.msg_max"
    assert "(3)" in out["text"]
    assert out["errno"] == 22
