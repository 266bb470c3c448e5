"""The one place where sysv_ipc's exceptions become unimq errors.

sysv_ipc raises without an errno, and raises its *base* class ``Error`` for
EINTR; the errno is inferred from the call and the exception class.
"""

from __future__ import annotations

import errno as E
import os
from typing import Literal

import sysv_ipc

from unimq._errors import (
    LimitExceeded,
    MessageTooLarge,
    PermissionDenied,
    QueueEmpty,
    QueueExists,
    QueueFull,
    QueueNotFound,
    QueueRemoved,
)
from unimq._limits import read_sysctl, sysctl_hint

__all__ = ["Op", "is_eintr", "map_error", "proc_entry"]

Op = Literal["open", "create", "send", "receive", "stat", "set", "remove"]

_ROLE = {"open": "access", "create": "access", "send": "write", "receive": "read", "stat": "read"}


def is_eintr(exc: BaseException) -> bool:
    """sysv_ipc reports EINTR ("Signaled while waiting") with its base class."""
    return type(exc) is sysv_ipc.Error


def proc_entry(msqid: int | None = None, key: int | None = None) -> dict[str, int] | None:
    """The /proc/sysvipc/msg line of a queue (by id or key), or None."""
    try:
        with open("/proc/sysvipc/msg") as f:
            header = f.readline().split()
            for line in f:
                # perms is printed in octal, every other column in decimal.
                values = {
                    name: int(text, 8 if name == "perms" else 10)
                    for name, text in zip(header, line.split(), strict=False)
                }
                if msqid is not None and values["msqid"] == msqid:
                    return values
                if key is not None and values["key"] & 0xFFFFFFFF == key:
                    return values
    except (OSError, ValueError, KeyError):
        pass
    return None


def _owner_hint(msqid: int | None, key: int | None) -> str:
    entry = proc_entry(msqid, key)
    if entry is None:
        return ""
    mode = entry["perms"] & 0o777
    return f" (owner uid {entry['uid']}, mode 0o{mode:03o}; you are uid {os.geteuid()})"


def map_error(
    exc: BaseException,
    url: str,
    op: Op,
    *,
    msqid: int | None = None,
    key: int | None = None,
    access: str = "rw",
) -> BaseException:
    """Translate an exception from a sysv_ipc call made for ``op``."""
    if isinstance(exc, sysv_ipc.BusyError):
        if op == "send":
            return QueueFull(f"{url} is full", errno=E.EAGAIN, url=url)
        return QueueEmpty(f"no matching message in {url}", errno=E.ENOMSG, url=url)
    if isinstance(exc, sysv_ipc.ExistentialError):
        if op in ("open", "create"):
            if "already exists" in str(exc):
                return QueueExists(
                    f"{url} already exists; open it without exclusive=True, or remove it first "
                    f"(unimq rm {url})",
                    errno=E.EEXIST,
                    url=url,
                )
            return QueueNotFound(
                f"{url} does not exist; create it with create=True (or: unimq create URL)",
                errno=E.ENOENT,
                url=url,
            )
        if op == "remove":
            return QueueNotFound(
                f"{url} does not exist (already removed?)", errno=E.EINVAL, url=url
            )
        return QueueRemoved(
            f"{url} was removed while this handle used it; reopen it "
            "(create=True to make a new one)",
            errno=E.EIDRM,
            url=url,
        )
    if isinstance(exc, sysv_ipc.PermissionsError):
        if op in ("set", "remove"):
            return PermissionDenied(
                f"cannot {'change' if op == 'set' else 'remove'} {url}: only its owner, its "
                f"creator or a process with CAP_SYS_ADMIN may{_owner_hint(msqid, key)}",
                errno=E.EPERM,
                url=url,
            )
        role = {"r": "read", "w": "write"}.get(access, "read and write")
        what = _ROLE.get(op, "access")
        if what == "access":
            what = role
        return PermissionDenied(
            f"permission denied: {url} does not grant {what} permission to this user"
            f"{_owner_hint(msqid, key)}; ask its owner to change the mode (unimq's "
            "SysVQueue.set(mode=...) or ipcs/ipcrm tools), or open with access='r' / 'w' "
            "if one direction is enough",
            errno=E.EACCES,
            url=url,
        )
    if isinstance(exc, OSError):
        if exc.errno == E.ENOSPC or "system limit for message queues" in str(exc):
            return LimitExceeded(
                f"cannot create {url}: this IPC namespace already has kernel.msgmni "
                f"({read_sysctl('kernel.msgmni')}) SysV queues; "
                "remove unused queues (unimq ls / unimq rm, or ipcrm) or "
                + sysctl_hint("kernel.msgmni"),
                limit="kernel.msgmni",
                errno=E.ENOSPC,
                url=url,
            )
        if exc.errno == E.E2BIG:
            return MessageTooLarge(
                f"the next message in {url} is larger than this handle's receive buffer "
                "(kernel.msgmax was raised after the handle was opened); it is still queued: "
                "reopen the queue to receive it",
                errno=E.E2BIG,
                url=url,
            )
        if exc.errno in (E.EINVAL, E.EIDRM) and op in ("send", "receive", "stat", "set"):
            return QueueRemoved(
                f"{url} was removed while this handle used it; reopen it "
                "(create=True to make a new one)",
                errno=exc.errno,
                url=url,
            )
    return exc
