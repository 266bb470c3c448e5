"""The one place where posix_ipc's exceptions become unimq errors.

posix_ipc raises its exceptions without an errno, and with the same text for
different causes, so the errno is inferred from the call and the exception
class, and causes that share an errno are told apart by checks made before
the call (names, limits) or after it (RLIMIT arithmetic).
"""

from __future__ import annotations

import errno as E
import os
import resource
from typing import Literal

import posix_ipc

from unimq._errors import (
    LimitExceeded,
    MessageTooLarge,
    PermissionDenied,
    QueueClosed,
    QueueEmpty,
    QueueExists,
    QueueFull,
    QueueNotFound,
    UnimqError,
)
from unimq._limits import posix_queue_charge, read_sysctl, rlimit_msgqueue, sysctl_hint

__all__ = ["map_io_error", "map_open_error", "map_unlink_error"]

Op = Literal["send", "receive"]


def _fd_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def map_open_error(
    exc: BaseException, url: str, *, create: bool, max_messages: int, max_message_size: int
) -> BaseException:
    """Translate an exception from posix_ipc.MessageQueue(...)."""
    text = str(exc)
    if isinstance(exc, posix_ipc.ExistentialError):
        if "already exists" in text:
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
    if isinstance(exc, posix_ipc.PermissionsError):
        return PermissionDenied(
            f"permission denied opening {url}: its mode does not grant this user the "
            "requested access; ask its owner to chmod it (the mqueue fs file), open with "
            "access='r' or access='w' if one direction is enough, or run as its owner",
            errno=E.EACCES,
            url=url,
        )
    if isinstance(exc, OSError) and not isinstance(exc, UnimqError):
        if "maximum number of files" in text or exc.errno == E.EMFILE:
            soft_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if create and (soft_files < 0 or _fd_count() < soft_files - 1):
                charge = posix_queue_charge(max_messages, max_message_size)
                soft, _hard = rlimit_msgqueue()
                return LimitExceeded(
                    f"creating {url} ({max_messages} x {max_message_size} bytes, charged "
                    f"{charge} bytes) exceeds this user's RLIMIT_MSGQUEUE of {soft} bytes, "
                    "which counts every POSIX queue the user's processes created and not yet "
                    "removed; remove unused queues (unimq ls / unimq rm), ask for smaller "
                    "queues, or raise the limit (ulimit -q, or LimitMSGQUEUE= in systemd)",
                    limit="RLIMIT_MSGQUEUE",
                    errno=E.EMFILE,
                    url=url,
                )
            return OSError(E.EMFILE, f"too many open files opening {url}: {text}")
        if "Insufficient space" in text or exc.errno == E.ENOSPC:
            return LimitExceeded(
                f"cannot create {url}: this IPC namespace already has fs.mqueue.queues_max "
                f"({read_sysctl('fs.mqueue.queues_max')}) POSIX queues; remove unused queues "
                "(unimq ls / unimq rm) or " + sysctl_hint("fs.mqueue.queues_max"),
                limit="fs.mqueue.queues_max",
                errno=E.ENOSPC,
                url=url,
            )
    if isinstance(exc, ValueError):
        return LimitExceeded(
            f"the kernel rejected the attributes of {url} (max_messages={max_messages}, "
            f"max_message_size={max_message_size}): they exceed fs.mqueue.msg_max or "
            "fs.mqueue.msgsize_max; ask for less, or raise them as root with sysctl",
            limit="fs.mqueue.msg_max",
            errno=E.EINVAL,
            url=url,
        )
    return exc


def map_io_error(exc: BaseException, url: str, op: Op, access: str) -> BaseException:
    """Translate an exception from a send or receive."""
    if isinstance(exc, posix_ipc.BusyError):
        if op == "send":
            return QueueFull(f"{url} is full", errno=E.EAGAIN, url=url)
        return QueueEmpty(f"no message in {url}", errno=E.EAGAIN, url=url)
    if isinstance(exc, posix_ipc.PermissionsError):
        return PermissionDenied(
            f"cannot {op} on {url}: this handle was opened with access={access!r}; "
            "open another handle with access='rw'",
            errno=E.EBADF,
            url=url,
        )
    if isinstance(exc, posix_ipc.ExistentialError):
        return QueueClosed(f"the descriptor of {url} is no longer valid", errno=E.EBADF, url=url)
    if isinstance(exc, ValueError) and "too long" in str(exc):
        return MessageTooLarge(f"message too long for {url}: {exc}", errno=E.EMSGSIZE, url=url)
    return exc


def map_unlink_error(exc: BaseException, url: str) -> BaseException:
    """Translate an exception from mq_unlink."""
    if isinstance(exc, posix_ipc.ExistentialError):
        return QueueNotFound(f"{url} does not exist (already removed?)", errno=E.ENOENT, url=url)
    if isinstance(exc, posix_ipc.PermissionsError):
        return PermissionDenied(
            f"permission denied removing {url}: only its owner or root may remove it; "
            "ask the owner, or run as that user",
            errno=E.EACCES,
            url=url,
        )
    return exc
