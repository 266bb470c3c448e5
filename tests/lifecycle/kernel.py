"""Real kernel queues made straight through libc (ctypes), independent of the
unimq backends, so gc and metrics are tested against queues unimq did not make."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_NOWAIT = 0o4000
IPC_RMID = 0

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
try:
    _libc.mq_open  # noqa: B018  (glibc >= 2.34 has the mq_* calls in libc)
    _librt = _libc
except AttributeError:  # pragma: no cover - older glibc
    _librt = ctypes.CDLL(ctypes.util.find_library("rt") or "librt.so.1", use_errno=True)

_libc.msgget.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.msgrcv.argtypes = [
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_long,
    ctypes.c_int,
]
_libc.msgrcv.restype = ctypes.c_ssize_t
_libc.msgctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]


class MqAttr(ctypes.Structure):
    _fields_ = [
        ("mq_flags", ctypes.c_long),
        ("mq_maxmsg", ctypes.c_long),
        ("mq_msgsize", ctypes.c_long),
        ("mq_curmsgs", ctypes.c_long),
        ("pad", ctypes.c_long * 4),
    ]


_librt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(MqAttr)]
_librt.mq_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
_librt.mq_close.argtypes = [ctypes.c_int]
_librt.mq_unlink.argtypes = [ctypes.c_char_p]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def sysv_create(key: int, mode: int = 0o600) -> int:
    """msgget(key, IPC_CREAT | IPC_EXCL | mode): the new queue's msqid."""
    signed = key - (1 << 32) if key >= 1 << 31 else key
    return _check(_libc.msgget(signed, IPC_CREAT | IPC_EXCL | mode), f"msgget(0x{key:08x})")


def sysv_send(msqid: int, data: bytes, mtype: int = 1) -> None:
    buf = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + len(data))
    ctypes.c_long.from_buffer(buf).value = mtype
    ctypes.memmove(ctypes.addressof(buf) + ctypes.sizeof(ctypes.c_long), data, len(data))
    _check(_libc.msgsnd(msqid, buf, len(data), IPC_NOWAIT), "msgsnd")


def sysv_receive(msqid: int, size: int = 8192) -> bytes:
    buf = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + size)
    n = _check(_libc.msgrcv(msqid, buf, size, 0, IPC_NOWAIT), "msgrcv")
    return buf.raw[ctypes.sizeof(ctypes.c_long) : ctypes.sizeof(ctypes.c_long) + n]


def sysv_remove(msqid: int) -> None:
    """IPC_RMID; a queue already gone is fine."""
    if _libc.msgctl(msqid, IPC_RMID, None) < 0 and ctypes.get_errno() not in (22, 43):
        err = ctypes.get_errno()
        raise OSError(err, f"msgctl(IPC_RMID): {os.strerror(err)}")


def posix_create(name: str, max_messages: int = 4, size: int = 64) -> int:
    """mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600): the descriptor."""
    attr = MqAttr(0, max_messages, size, 0)
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR
    return _check(_librt.mq_open(name.encode(), flags, 0o600, ctypes.byref(attr)), "mq_open")


def posix_send(mqd: int, data: bytes, priority: int = 0) -> None:
    _check(_librt.mq_send(mqd, data, len(data), priority), "mq_send")


def posix_close(mqd: int) -> None:
    _librt.mq_close(mqd)


def posix_unlink(name: str) -> None:
    if _librt.mq_unlink(name.encode()) < 0 and ctypes.get_errno() != 2:
        err = ctypes.get_errno()
        raise OSError(err, f"mq_unlink: {os.strerror(err)}")
