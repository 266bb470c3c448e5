"""The SysV backend's errors: one (operation, errno) table, and the one place
where sysv_ipc's errno-less exceptions get their errno back.

Every failure reaches :func:`sysv_error` as an ``OSError`` with the real errno:
the C channel raises it itself; sysv_ipc's exceptions go through
:func:`driver_oserror` first. Nothing here reads a driver's message text.
"""

from __future__ import annotations

import errno as E
import os
from dataclasses import dataclass

import sysv_ipc

from unimq._errors import (
    LimitExceeded,
    MessageTooLarge,
    PermissionDenied,
    QueueExists,
    QueueNotFound,
    QueueRemoved,
    UnimqError,
)
from unimq._queue import Op
from unimq.system._limits import has_cap_sys_resource, msgmax, read_sysctl, sysctl_hint
from unimq.system._sysvproc import sysv_msg_entry

__all__ = ["Context", "driver_oserror", "msgmnb_error", "sysv_error"]

#: The errno each sysv_ipc exception class stands for, by operation. sysv_ipc
#: raises ExistentialError for ENOENT/EEXIST at msgget and for EIDRM/EINVAL on
#: a removed queue, PermissionsError for EACCES and (msgctl IPC_SET/IPC_RMID)
#: EPERM, BusyError for EAGAIN/ENOMSG, and its base class for EINTR.
_EXISTENTIAL = {"open": E.ENOENT, "create": E.EEXIST, "remove": E.EINVAL}
_PERMISSIONS = {"set": E.EPERM, "remove": E.EPERM}


def driver_oserror(op: Op, exc: BaseException) -> OSError | None:
    """The OSError (real errno) a sysv_ipc exception stands for, or None for an
    exception that is not one of sysv_ipc's (the core wraps it as unexpected)."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, sysv_ipc.BusyError):
        err = E.EAGAIN if op == "send" else E.ENOMSG
    elif isinstance(exc, sysv_ipc.ExistentialError):
        err = _EXISTENTIAL.get(op, E.EIDRM)
    elif isinstance(exc, sysv_ipc.PermissionsError):
        err = _PERMISSIONS.get(op, E.EACCES)
    elif type(exc) is sysv_ipc.Error:
        err = E.EINTR  # "Signaled while waiting": the only use of the base class
    else:
        return None
    return OSError(err, os.strerror(err))


@dataclass(frozen=True)
class Context:
    """What the table needs to know about the call that failed."""

    url: str
    key: int
    #: The handle's msqid (None before a queue was opened).
    msqid: int | None = None
    access: str = "rw"
    #: max_bytes asked for by set()/create (EPERM: kernel.msgmnb or ownership).
    max_bytes: int | None = None


def _owner_hint(ctx: Context) -> str:
    entry = sysv_msg_entry(msqid=ctx.msqid) if ctx.msqid is not None else None
    if entry is None:
        entry = sysv_msg_entry(key=ctx.key)
    if entry is None:
        return ""
    mode = entry["perms"] & 0o777
    return f" (owner uid {entry['uid']}, mode 0o{mode:03o}; you are uid {os.geteuid()})"


def _exists(ctx: Context) -> bool:
    """Whether the handle's queue (its msqid) still exists, read now."""
    return ctx.msqid is not None and sysv_msg_entry(msqid=ctx.msqid) is not None


def _removed(ctx: Context, err: int) -> QueueRemoved:
    return QueueRemoved(
        f"{ctx.url} was removed while this handle used it; reopen it "
        "(create=True to make a new one)",
        errno=err,
        url=ctx.url,
    )


def msgmnb_error(url: str, max_bytes: int) -> LimitExceeded | None:
    """LimitExceeded when max_bytes exceeds kernel.msgmnb (read now) and this
    process lacks CAP_SYS_RESOURCE (IPC_SET would fail with EPERM, S22)."""
    msgmnb = read_sysctl("kernel.msgmnb")
    if msgmnb is None or max_bytes <= msgmnb or has_cap_sys_resource():
        return None
    return LimitExceeded(
        f"max_bytes={max_bytes} for {url} exceeds kernel.msgmnb ({msgmnb}), which binds "
        f"processes without CAP_SYS_RESOURCE; ask for max_bytes <= {msgmnb}, or "
        + sysctl_hint("kernel.msgmnb", max_bytes),
        limit="kernel.msgmnb",
        errno=E.EPERM,
        url=url,
    )


def sysv_error(op: Op, exc: OSError, ctx: Context) -> BaseException:
    """The one (operation, errno) table of the SysV backend."""
    err = exc.errno
    url = ctx.url
    if err == E.EACCES:
        if op in ("set", "remove"):
            return _not_owner(op, ctx, err)
        role = {"r": "read", "w": "write"}.get(ctx.access, "read and write")
        what = {"send": "write", "receive": "read", "stat": "read"}.get(op, role)
        return PermissionDenied(
            f"permission denied: {url} does not grant {what} permission to this user"
            f"{_owner_hint(ctx)}; ask its owner to change the mode (unimq's "
            "SysVQueue.set(mode=...) or ipcs/ipcrm tools), or open with access='r' / 'w' "
            "if one direction is enough",
            errno=err,
            url=url,
        )
    if err == E.EPERM:
        if op == "set" and ctx.max_bytes is not None:
            too_big = msgmnb_error(url, ctx.max_bytes)
            if too_big is not None:
                return too_big
        return _not_owner(op, ctx, err)
    if err == E.ENOENT and op in ("open", "create", "remove"):
        return QueueNotFound(
            f"{url} does not exist; create it with create=True (or: unimq create URL)",
            errno=err,
            url=url,
        )
    if err == E.EEXIST:
        return QueueExists(
            f"{url} already exists; open it without exclusive=True, or remove it first "
            f"(unimq rm {url})",
            errno=err,
            url=url,
        )
    if err == E.ENOSPC and op in ("open", "create"):
        return LimitExceeded(
            f"cannot create {url}: this IPC namespace already has kernel.msgmni "
            f"({read_sysctl('kernel.msgmni')}) SysV queues; "
            "remove unused queues (unimq ls / unimq rm, or ipcrm) or "
            + sysctl_hint("kernel.msgmni"),
            limit="kernel.msgmni",
            errno=err,
            url=url,
        )
    if err == E.EIDRM:
        if op == "remove":
            return QueueNotFound(f"{url} does not exist (already removed?)", errno=err, url=url)
        return _removed(ctx, err)
    if err == E.EINVAL:
        # A removed msqid, or (msgsnd) a message over kernel.msgmax: look before choosing.
        if op == "send" and _exists(ctx):
            limit = msgmax()
            return MessageTooLarge(
                f"the message is larger than kernel.msgmax ({limit}) now allows for {url} "
                "(an administrator lowered it after this handle was opened); send less, or "
                + sysctl_hint("kernel.msgmax"),
                limit=limit,
                errno=err,
                url=url,
            )
        if op == "remove" or ctx.msqid is None:
            return QueueNotFound(f"{url} does not exist (already removed?)", errno=err, url=url)
        if not _exists(ctx):
            return _removed(ctx, err)
    if err == E.E2BIG and op == "receive":
        return MessageTooLarge(
            f"the next message in {url} is larger than any receive buffer this process "
            "could allocate; it is still queued",
            errno=err,
            url=url,
        )
    if err == E.ENOMEM:
        return MemoryError(f"{op} on {url}: the kernel is out of memory (ENOMEM)")
    return UnimqError(
        f"{op} on {url} failed: {exc.strerror or exc} (errno {err})", errno=err, url=url
    )


def _not_owner(op: Op, ctx: Context, err: int) -> PermissionDenied:
    return PermissionDenied(
        f"cannot {'change' if op == 'set' else 'remove'} {ctx.url}: only its owner, its "
        f"creator or a process with CAP_SYS_ADMIN may{_owner_hint(ctx)}",
        errno=err,
        url=ctx.url,
    )
