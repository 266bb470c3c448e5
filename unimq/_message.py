"""Value types shared by every backend: Message, QueueStat, Capability."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

__all__ = ["Capability", "Message", "QueueStat"]


class Message(NamedTuple):
    """One received message, immutable.

    ``mtype`` is the SysV message type (1 on backends without types) and
    ``priority`` the POSIX priority (0 on backends without priorities).
    """

    data: bytes
    mtype: int = 1
    priority: int = 0


#: Build a Message from a (data, mtype, priority) tuple at C speed, for backends'
#: receive paths (``Message(...)`` goes through a Python-level ``__new__``).
new_message: Callable[[tuple[bytes, int, int]], Message] = functools.partial(tuple.__new__, Message)


class Capability(enum.Flag):
    """What a backend can do beyond plain send/receive."""

    NONE = 0
    #: Messages carry a type, and receive can select by type (SysV, memory).
    MTYPE = enum.auto()
    #: Messages carry a priority; higher priorities are received first (POSIX, memory).
    PRIORITY = enum.auto()
    #: Other processes can open the same queue (SysV, POSIX).
    INTERPROCESS = enum.auto()
    #: The kernel implements timed waits itself (POSIX, memory); SysV emulates them.
    NATIVE_TIMEOUT = enum.auto()
    #: ``notify()`` can ask for a signal or callback when the queue becomes non-empty.
    NOTIFY = enum.auto()
    #: ``fileno()`` gives a descriptor usable with select/poll/epoll.
    FILENO = enum.auto()
    #: ``set(mode=, uid=, gid=, max_bytes=)`` changes the queue's attributes.
    SET_ATTRIBUTES = enum.auto()


Kind = Literal["posix", "sysv", "memory"]


class QueueStat(BaseModel):
    """The state of one queue, the same model for every kind.

    Fields a kind does not keep are ``None``: POSIX keeps no times, pids or
    byte count in ``mq_getattr``; SysV counts bytes and messages but has no
    per-message size separate from ``kernel.msgmax``.
    """

    model_config = ConfigDict(frozen=True)

    url: str
    kind: str
    #: Messages queued now.
    messages: int
    #: How many messages fit (POSIX mq_maxmsg; SysV msg_qbytes, its count limit).
    max_messages: int | None = None
    #: Largest single message (POSIX mq_msgsize; SysV min(kernel.msgmax, msg_qbytes)).
    max_message_size: int | None = None
    #: Bytes queued now, where known (SysV msg_cbytes, POSIX QSIZE from the mqueue fs).
    bytes: int | None = None
    #: Byte capacity (SysV msg_qbytes), where the kind has one.
    max_bytes: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    creator_uid: int | None = None
    creator_gid: int | None = None
    last_send_time: datetime | None = None
    last_receive_time: datetime | None = None
    last_change_time: datetime | None = None
    last_send_pid: int | None = None
    last_receive_pid: int | None = None
    #: SysV key and identifier.
    key: int | None = None
    id: int | None = None
    #: POSIX name ("/orders").
    name: str | None = None
    #: POSIX notification state from the mqueue fs (NOTIFY, SIGNO, NOTIFY_PID).
    notify: int | None = None
    notify_signal: int | None = None
    notify_pid: int | None = None
    #: Messages this handle discarded under its ``on_full`` policy (None: ``"wait"``).
    dropped: int | None = None
