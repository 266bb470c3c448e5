"""Every queue limit, lowered in a private IPC namespace (``unshare --ipc``),
surfaces as LimitExceeded naming the limit, its value and the fix; the per-user
RLIMIT_MSGQUEUE is reported as such, never as "too many open files".

The host's sysctls are never touched: each case runs in a child process with
its own IPC namespace, whose queue sysctls start at the kernel defaults.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass

import pytest

from tests.conftest import HAVE_POSIX, HAVE_SYSV
from tests.helpers import CATCH, can_unshare, child_json
from unimq.system._limits import has_cap_sys_resource


@dataclass(frozen=True)
class Case:
    kind: str
    limit: str
    code: str  # runs in the namespace; sets ``r`` to an attempt() result
    errno: int | None = None


CASES = [
    Case(
        "posix",
        "fs.mqueue.msg_max",
        """
open("/proc/sys/fs/mqueue/msg_max", "w").write("3")
r = attempt(lambda: unimq.open("posix:///lim", create=True, max_messages=4, max_message_size=16))
""",
    ),
    Case(
        "posix",
        "fs.mqueue.msgsize_max",
        """
open("/proc/sys/fs/mqueue/msgsize_max", "w").write("1024")
r = attempt(lambda: unimq.open("posix:///lim", create=True, max_messages=2, max_message_size=2048))
""",
    ),
    Case(
        "posix",
        "fs.mqueue.queues_max",
        """
open("/proc/sys/fs/mqueue/queues_max", "w").write("1")
a = unimq.open("posix:///lim-a", create=True, max_messages=2, max_message_size=16)
r = attempt(lambda: unimq.open("posix:///lim-b", create=True, max_messages=2, max_message_size=16))
a.remove(); a.close()
""",
        errno.ENOSPC,
    ),
    Case(
        "posix",
        "RLIMIT_MSGQUEUE",
        """
import resource
resource.setrlimit(resource.RLIMIT_MSGQUEUE, (4096, 4096))
r = attempt(lambda: unimq.open("posix:///lim", create=True, max_messages=10, max_message_size=1024))
""",
        errno.EMFILE,
    ),
    Case(
        "posix",
        "RLIMIT_MSGQUEUE",
        # Exhausted by many small queues rather than one big one.
        """
import resource
resource.setrlimit(resource.RLIMIT_MSGQUEUE, (8192, 8192))
made = []
r = {"ok": True}
for i in range(100):
    url = f"posix:///lim-{i}"
    opts = {"create": True, "max_messages": 2, "max_message_size": 512}
    r = attempt(lambda: made.append(unimq.open(url, **opts)))
    if "error" in r:
        break
for q in made:
    q.remove(); q.close()
""",
        errno.EMFILE,
    ),
    Case(
        "sysv",
        "kernel.msgmni",
        """
open("/proc/sys/kernel/msgmni", "w").write("1")
a = unimq.open("sysv://1001", create=True)
r = attempt(lambda: unimq.open("sysv://1002", create=True))
a.remove(); a.close()
""",
        errno.ENOSPC,
    ),
    Case(
        "sysv",
        "kernel.msgmnb",
        """
open("/proc/sys/kernel/msgmnb", "w").write("4096")
q = unimq.open("sysv://1003", create=True)
r = attempt(lambda: q.set(max_bytes=8192))
q.remove(); q.close()
""",
    ),
    Case(
        "sysv",
        "kernel.msgmnb",
        """
open("/proc/sys/kernel/msgmnb", "w").write("4096")
r = attempt(lambda: unimq.open("sysv://1004", create=True, max_bytes=5000))
""",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.kind}-{c.limit}")
def test_lowered_limit_is_named(case: Case) -> None:
    if not {"posix": HAVE_POSIX, "sysv": HAVE_SYSV}[case.kind]:
        pytest.skip(f"unimq-{case.kind} is not installed")
    reason = can_unshare("--ipc")
    if reason:
        pytest.skip(reason)
    if case.limit == "kernel.msgmnb" and has_cap_sys_resource():
        pytest.skip("CAP_SYS_RESOURCE lifts kernel.msgmnb")
    out = child_json(CATCH + case.code + "\nprint(json.dumps(r))", namespace=True)
    print(f"{case.kind} {case.limit}: {out}")
    assert out.get("error") == "LimitExceeded", out
    assert out["limit"] == case.limit
    if case.errno is not None:
        assert out["errno"] == case.errno
    text = str(out["text"])
    if case.limit == "RLIMIT_MSGQUEUE":
        assert "ulimit -q" in text
        assert "open files" not in text
    else:
        assert f"sysctl -w {case.limit}=" in text
        assert re.search(re.escape(case.limit) + r" \(\d+\)", text), text  # its value


# ---------------------------------------------------------------------- stale limits (SysV)

_STALE_SYSV = """
import os
os.environ["UNIMQ_PURE_PYTHON"] = {pure!r}  # read when unimq_sysv is first imported
import unimq_sysv

def sysctl(name, value):
    with open(f"/proc/sys/kernel/{{name}}", "w") as f:
        f.write(str(value))

out = {{"accelerated": unimq_sysv.ACCELERATED}}
a = unimq.open("sysv://4243", create=True)          # opened while kernel.msgmax is 8192
out["a_max"] = a.max_message_size
b = unimq.open("sysv://4243")                        # another handle from before the change
sysctl("msgmnb", 131072)
sysctl("msgmax", 65536)
a.set(max_bytes=131072)                              # learns the new limits too
a.send(b"s" * 20000)
out["sent_after_set"] = a.receive(timeout=1).data == b"s" * 20000
peer = unimq.open("sysv://4243")
big = bytes(range(256)) * 117                        # 29952 bytes > the old 8192
peer.send(big, mtype=2)                              # the peer learns the new limit at send
out["old_handle_receives"] = a.receive(timeout=1) == (big, 2, 0)
peer.send(big + b"+", mtype=3)
fresh = unimq.open("sysv://4243")
out["new_handle_receives"] = fresh.receive(timeout=1).data == big + b"+"
b.send(big + b"b")                                   # the open handle may now send more
out["old_handle_sends"] = peer.receive(timeout=1).data == big + b"b"
# A queued large message, then the limit goes down: a new handle still takes it.
peer.send(big + b"q")
sysctl("msgmax", 8192)
late = unimq.open("sysv://4243")
out["after_lowering_receives"] = late.receive(timeout=1).data == big + b"q"
# Lowered below a message an open handle still believes fits: MessageTooLarge, not removed.
sysctl("msgmax", 4096)
out["lowered_open"] = attempt(lambda: a.send(b"x" * 6000))
out["lowered_new"] = attempt(lambda: late.send(b"x" * 6000))
out["still_there"] = attempt(lambda: a.send(b"x" * 4096))
out["left"] = [len(m.data) for m in a.drain()]
for h in (a, b, peer, fresh, late):
    h.close()
unimq.remove("sysv://4243")
print(json.dumps(out))
"""


@pytest.mark.skipif(not HAVE_SYSV, reason="unimq-sysv is not installed")
@pytest.mark.parametrize("pure", ["0", "1"], ids=["c", "pure-python"])
def test_sysv_limits_are_read_live(pure: str) -> None:
    """kernel.msgmax raised while handles are open: open and new handles
    receive and send the larger messages (the receive buffer grows); lowered:
    MessageTooLarge naming kernel.msgmax, never QueueRemoved."""
    reason = can_unshare("--ipc")
    if reason:
        pytest.skip(reason)
    out = child_json(CATCH + _STALE_SYSV.format(pure=pure), namespace=True)
    print(out)
    if pure == "0" and not out["accelerated"]:
        pytest.skip("unimq_sysv._fast is not built")
    assert out["a_max"] == 8192
    assert out["sent_after_set"] is True
    assert out["old_handle_receives"] is True
    assert out["new_handle_receives"] is True
    assert out["old_handle_sends"] is True
    assert out["after_lowering_receives"] is True
    for key in ("lowered_open", "lowered_new"):
        result = out[key]
        assert isinstance(result, dict)
        assert result.get("error") == "MessageTooLarge", result
        assert "kernel.msgmax (4096)" in str(result["text"]), result
    assert out["still_there"] == {"ok": True}
    assert out["left"] == [4096]


_CHECK_AGREES = """
import os
os.environ["UNIMQ_PURE_PYTHON"] = {pure!r}
from unimq import system
def both(url, **options):
    checked = system.check(url, **options)
    opened = attempt(lambda: unimq.open(url, create=True, **options).close())
    return {{"check_ok": checked.ok, "check_limit": checked.limit, "open": opened}}
out = {{}}
open("/proc/sys/kernel/msgmnb", "w").write("4096")
out["msgmnb"] = both("sysv://2001", max_bytes=5000)
out["msgmnb_ok"] = both("sysv://2001", max_bytes=4096)
open("/proc/sys/kernel/msgmni", "w").write("1")
out["msgmni"] = both("sysv://2002")
out["msgmni_existing"] = both("sysv://2001")        # exists: opening needs no new slot
unimq.remove("sysv://2001")
print(json.dumps(out))
"""


@pytest.mark.skipif(not HAVE_SYSV, reason="unimq-sysv is not installed")
@pytest.mark.parametrize("pure", ["0", "1"], ids=["c", "pure-python"])
def test_sysv_check_and_open_agree(pure: str) -> None:
    """system.check and open(create=True) run the same preflight (live values)."""
    reason = can_unshare("--ipc")
    if reason:
        pytest.skip(reason)
    if has_cap_sys_resource():
        pytest.skip("CAP_SYS_RESOURCE lifts kernel.msgmnb")
    out = child_json(CATCH + _CHECK_AGREES.format(pure=pure), namespace=True)
    print(out)
    for key, limit in (("msgmnb", "kernel.msgmnb"), ("msgmni", "kernel.msgmni")):
        case = out[key]
        assert isinstance(case, dict)
        assert case["check_ok"] is False
        assert case["check_limit"] == limit
        assert case["open"]["error"] == "LimitExceeded"
        assert case["open"]["limit"] == limit
    for key in ("msgmnb_ok", "msgmni_existing"):
        case = out[key]
        assert isinstance(case, dict)
        assert case["check_ok"] is True
        assert case["open"] == {"ok": True}
