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
from unimq._limits import has_cap_sys_resource


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
