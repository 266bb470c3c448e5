"""msgrcv through ctypes for the SysV extras sysv_ipc lacks (MSG_EXCEPT,
MSG_COPY): the pure-Python path's primitive. Failures are OSError with errno."""

from __future__ import annotations

import ctypes
import errno as E
import os
from collections.abc import Callable

from unimq._message import Message, new_message
from unimq._options import OPTION_MAX

__all__ = ["IPC_NOWAIT", "MSG_COPY", "MSG_EXCEPT", "msgrcv"]

IPC_NOWAIT = 0o4000
MSG_EXCEPT = 0o20000
MSG_COPY = 0o40000

_libc = ctypes.CDLL(None, use_errno=True)
_msgrcv = _libc.msgrcv
_msgrcv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long, ctypes.c_int]
_msgrcv.restype = ctypes.c_ssize_t
_LONG = ctypes.sizeof(ctypes.c_long)


def msgrcv(
    msqid: int, selector: int, flags: int, bufsize: int, msgmax: Callable[[], int]
) -> Message | None:
    """One msgrcv; None for ENOMSG. The buffer grows on E2BIG (to kernel.msgmax
    now, at least doubling; MSG_COPY copies at most kernel.msgmax bytes, so
    there it stops at that size)."""
    size = bufsize
    while True:
        buf = ctypes.create_string_buffer(_LONG + size)
        got = _msgrcv(msqid, buf, size, selector, flags)
        if got >= 0:
            mtype = ctypes.c_long.from_buffer(buf).value
            return new_message((buf.raw[_LONG : _LONG + got], mtype, 0))
        err = ctypes.get_errno()
        if err == E.ENOMSG:
            return None
        limit = msgmax()
        if err != E.E2BIG or size >= OPTION_MAX or (bool(flags & MSG_COPY) and size >= limit):
            raise OSError(err, os.strerror(err))
        size = min(max(limit, size * 2), OPTION_MAX)
