"""Reading the kernel's queue limits, shared by the backends and unimq.system."""

from __future__ import annotations

import os
import resource

__all__ = [
    "DEFAULT_MSGMAX",
    "DEFAULT_MSGMNB",
    "MQ_PRIO_MAX",
    "MSG_MSG_SIZE",
    "POSIX_TREE_NODE_SIZE",
    "SYSCTL_PATHS",
    "has_cap_sys_resource",
    "msgmax",
    "posix_queue_charge",
    "read_sysctl",
    "rlimit_msgqueue",
    "sysctl_hint",
]

MQ_PRIO_MAX = 32768
DEFAULT_MSGMAX = 8192
DEFAULT_MSGMNB = 16384
#: sizeof(struct msg_msg) and sizeof(struct posix_msg_tree_node) on 64-bit Linux,
#: used by the kernel to charge RLIMIT_MSGQUEUE (see getrlimit(2)).
MSG_MSG_SIZE = 48
POSIX_TREE_NODE_SIZE = 48
CAP_SYS_RESOURCE = 24

SYSCTL_PATHS = {
    "fs.mqueue.msg_max": "/proc/sys/fs/mqueue/msg_max",
    "fs.mqueue.msgsize_max": "/proc/sys/fs/mqueue/msgsize_max",
    "fs.mqueue.queues_max": "/proc/sys/fs/mqueue/queues_max",
    "fs.mqueue.msg_default": "/proc/sys/fs/mqueue/msg_default",
    "fs.mqueue.msgsize_default": "/proc/sys/fs/mqueue/msgsize_default",
    "kernel.msgmax": "/proc/sys/kernel/msgmax",
    "kernel.msgmnb": "/proc/sys/kernel/msgmnb",
    "kernel.msgmni": "/proc/sys/kernel/msgmni",
}


def read_sysctl(name: str) -> int | None:
    """The current value of a queue sysctl, or None where /proc does not have it."""
    try:
        with open(SYSCTL_PATHS[name], "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def sysctl_hint(name: str, wanted: int | None = None) -> str:
    """How to raise a sysctl, for error messages."""
    value = wanted if wanted is not None else "N"
    return (
        f"raise it as root with 'sysctl -w {name}={value}' "
        f"(or 'unimq limits set {name} {value}'); in a container the IPC namespace's "
        "own value applies"
    )


def msgmax() -> int:
    """kernel.msgmax, the largest SysV message, read now (never cached: an
    administrator may change it while queues are in use)."""
    return read_sysctl("kernel.msgmax") or DEFAULT_MSGMAX


def has_cap_sys_resource() -> bool:
    """Whether this process has CAP_SYS_RESOURCE in its effective set."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def rlimit_msgqueue() -> tuple[int, int]:
    """RLIMIT_MSGQUEUE (soft, hard) in bytes; -1 means unlimited."""
    return resource.getrlimit(resource.RLIMIT_MSGQUEUE)


def posix_queue_charge(max_messages: int, max_message_size: int) -> int:
    """Bytes a POSIX queue of this size charges to its creator's RLIMIT_MSGQUEUE."""
    return (
        max_messages * MSG_MSG_SIZE
        + min(max_messages, MQ_PRIO_MAX) * POSIX_TREE_NODE_SIZE
        + max_messages * max_message_size
    )
