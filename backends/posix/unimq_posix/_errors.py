"""The POSIX backend's one table: (operation, errno) -> unimq error.

Both channels raise ``OSError`` with the errno (the C one with the kernel's
own, the posix_ipc fallback through ``driver_errno``); nothing here reads a
driver's message text or counts open descriptors. Where one errno has two
causes, the table re-reads the limit that decides between them.
"""

from __future__ import annotations

import errno as E
import resource
from dataclasses import dataclass

from unimq._errors import (
    InvalidName,
    LimitExceeded,
    MessageTooLarge,
    NotificationBusy,
    PermissionDenied,
    QueueClosed,
    QueueEmpty,
    QueueExists,
    QueueFull,
    QueueNotFound,
    UnimqError,
)
from unimq._queue import Op
from unimq.system._limits import posix_queue_charge, rlimit_msgqueue, sysctl_hint
from unimq_posix._limits import attribute_limit, descriptor_shortage, explains_msgqueue_refusal

__all__ = ["Context", "posix_error"]


@dataclass
class Context:
    """What the table needs to know about the call besides its errno."""

    url: str
    access: str = "rw"
    #: (max_messages, max_message_size) of a create.
    attributes: tuple[int, int] | None = None
    #: the handle's mq_msgsize, for sends.
    max_message_size: int | None = None


_SENDS = ("send",)
_RECEIVES = ("receive", "notify")


def _nofile(ctx: Context, what: str) -> LimitExceeded:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return LimitExceeded(
        f"{what} {ctx.url}: this process has no free file descriptor (RLIMIT_NOFILE, "
        f"soft limit {soft}); a POSIX queue handle uses one descriptor, plus one more "
        "from the first time a thread waits on it. Close unused handles and files, or "
        "raise the limit (ulimit -n, or LimitNOFILE= in systemd)",
        limit="RLIMIT_NOFILE",
        errno=E.EMFILE,
        url=ctx.url,
    )


def _msgqueue(ctx: Context) -> LimitExceeded:
    max_messages, max_message_size = ctx.attributes or (0, 0)
    charge = posix_queue_charge(max_messages, max_message_size)
    soft, _hard = rlimit_msgqueue()
    return LimitExceeded(
        f"creating {ctx.url} ({max_messages} x {max_message_size} bytes, charged {charge} "
        f"bytes) exceeds this user's RLIMIT_MSGQUEUE of {soft} bytes, which counts every "
        "POSIX queue the user's processes created and not yet removed; remove unused queues "
        "(unimq ls / unimq rm), ask for smaller queues, or raise the limit (ulimit -q, or "
        "LimitMSGQUEUE= in systemd)",
        limit="RLIMIT_MSGQUEUE",
        errno=E.EMFILE,
        url=ctx.url,
    )


def posix_error(op: Op, exc: OSError, ctx: Context) -> BaseException:
    """The unimq error for ``exc`` (with its errno) raised by ``op``."""
    code = exc.errno
    url = ctx.url
    if code == E.EAGAIN:
        if op == "send":
            return QueueFull(f"{url} is full", errno=code, url=url)
        if op == "receive":
            return QueueEmpty(f"no message in {url}", errno=code, url=url)
    elif code == E.EBADF:
        wrong_way = (op in _SENDS and ctx.access == "r") or (op in _RECEIVES and ctx.access == "w")
        if wrong_way:
            return PermissionDenied(
                f"cannot {op} on {url}: this handle was opened with access={ctx.access!r}; "
                "open another handle with access='rw'",
                errno=code,
                url=url,
            )
        return QueueClosed(
            f"the descriptor of {url} is no longer valid: something closed it outside this "
            "handle (os.closerange, or a closed handle used after fork?); open the queue again",
            errno=code,
            url=url,
        )
    elif code == E.ENOENT:
        if op in ("open", "remove", "create"):
            return QueueNotFound(
                f"{url} does not exist"
                + (
                    " (already removed?)"
                    if op == "remove"
                    else "; create it with create=True (or: unimq create URL)"
                ),
                errno=code,
                url=url,
            )
    elif code == E.EEXIST:
        if op == "create":
            return QueueExists(
                f"{url} already exists; open it without exclusive=True, or remove it first "
                f"(unimq rm {url})",
                errno=code,
                url=url,
            )
    elif code in (E.EACCES, E.EPERM):
        if op == "remove":
            return PermissionDenied(
                f"permission denied removing {url}: only its owner or root may remove it; "
                "ask the owner, or run as that user",
                errno=code,
                url=url,
            )
        if op in ("open", "create"):
            return PermissionDenied(
                f"permission denied opening {url}: its mode does not grant this user the "
                "requested access; ask its owner to chmod it (the mqueue fs file), open with "
                "access='r' or access='w' if one direction is enough, or run as its owner",
                errno=code,
                url=url,
            )
    elif code == E.EINVAL:
        if op == "create" and ctx.attributes is not None:
            # Re-read the limits now: an administrator may have lowered them.
            limit = attribute_limit(url, *ctx.attributes)
            if limit is not None:
                return limit
            return LimitExceeded(
                f"the kernel rejected the attributes of {url} (max_messages="
                f"{ctx.attributes[0]}, max_message_size={ctx.attributes[1]}) although they are "
                "within fs.mqueue.msg_max and msgsize_max as read now; ask for less",
                limit="fs.mqueue.msg_max",
                errno=code,
                url=url,
            )
    elif code == E.EMSGSIZE:
        if op == "send":
            size = ctx.max_message_size
            return MessageTooLarge(
                f"the kernel refused a message as larger than the max_message_size "
                f"(mq_msgsize = {size}) of {url}; send less",
                limit=size,
                errno=code,
                url=url,
            )
    elif code == E.EMFILE:
        if (
            op == "create"
            and descriptor_shortage() is None
            and explains_msgqueue_refusal(
                posix_queue_charge(*ctx.attributes) if ctx.attributes else 0
            )
        ):
            return _msgqueue(ctx)
        what = {"open": "cannot open", "create": "cannot create"}.get(op, f"cannot {op} on")
        return _nofile(ctx, what)
    elif code == E.ENFILE:
        return LimitExceeded(
            f"cannot {op} {url}: the system-wide table of open files is full (fs.file-max); "
            "close files or " + sysctl_hint("fs.file-max"),
            limit="fs.file-max",
            errno=code,
            url=url,
        )
    elif code == E.ENOSPC:
        if op == "create":
            from unimq.system._limits import read_sysctl

            return LimitExceeded(
                f"cannot create {url}: this IPC namespace already has fs.mqueue.queues_max "
                f"({read_sysctl('fs.mqueue.queues_max')}) POSIX queues; remove unused queues "
                "(unimq ls / unimq rm) or " + sysctl_hint("fs.mqueue.queues_max"),
                limit="fs.mqueue.queues_max",
                errno=code,
                url=url,
            )
    elif code == E.ENAMETOOLONG:
        return InvalidName(
            f"the kernel refused the name of {url} as too long (NAME_MAX is 255 bytes after "
            "the '/'); use a shorter name",
            url=url,
        )
    elif code == E.EBUSY:
        if op == "notify":
            return NotificationBusy(
                f"another process holds the notification of {url}; only one registration "
                "exists per queue, and it ends after one notification or when that process "
                "cancels it (notify() with no arguments) or closes the queue",
                errno=code,
                url=url,
            )
    elif code == E.ENOMEM:
        return UnimqError(
            f"{op} on {url} failed: the kernel is out of memory; free memory or ask for a "
            "smaller queue",
            errno=code,
            url=url,
        )
    return UnimqError(
        f"{op} on {url} failed: {exc.strerror or exc} (errno {code})", errno=code, url=url
    )
