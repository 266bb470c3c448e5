"""The limits that can stop creating a POSIX queue, read now (never cached).

:func:`preflight` is the one check that ``open(create=True)`` and
``unimq.system.check`` both run, so the two cannot disagree; the errno table
re-reads the same limits to explain EINVAL and EMFILE after a refusal.
"""

from __future__ import annotations

import errno as E
import os
import resource
from dataclasses import dataclass
from typing import Any

from unimq._errors import LimitExceeded
from unimq.system._limits import (
    has_cap_sys_resource,
    posix_queue_charge,
    read_sysctl,
    rlimit_msgqueue,
    sysctl_hint,
)

__all__ = [
    "HARD_MSGMAX",
    "HARD_MSGSIZEMAX",
    "Usage",
    "attribute_limit",
    "descriptor_shortage",
    "explains_msgqueue_refusal",
    "preflight",
    "requested_attributes",
    "usage",
]

#: Ceilings the kernel applies even with CAP_SYS_RESOURCE (HARD_MSGMAX, HARD_MSGSIZEMAX).
HARD_MSGMAX = 65536
HARD_MSGSIZEMAX = 16 * 1024 * 1024


def requested_attributes(options: dict[str, Any]) -> tuple[int, int]:
    """(max_messages, max_message_size) a create asks for: the options, else the
    running kernel's defaults (fs.mqueue.msg_default / msgsize_default)."""
    max_messages: int = options.get("max_messages") or (read_sysctl("fs.mqueue.msg_default") or 10)
    max_message_size: int = options.get("max_message_size") or (
        read_sysctl("fs.mqueue.msgsize_default") or 8192
    )
    return max_messages, max_message_size


def attribute_limit(url: str, max_messages: int, max_message_size: int) -> LimitExceeded | None:
    """The error for attributes beyond the hard ceilings or (without
    CAP_SYS_RESOURCE) the current fs.mqueue.msg_max / msgsize_max, else None."""
    privileged = has_cap_sys_resource()
    checks = (
        ("max_messages", max_messages, "fs.mqueue.msg_max", HARD_MSGMAX),
        ("max_message_size", max_message_size, "fs.mqueue.msgsize_max", HARD_MSGSIZEMAX),
    )
    for option, value, sysctl, hard in checks:
        if value > hard:
            return LimitExceeded(
                f"{option}={value} for {url} exceeds the kernel's hard ceiling of {hard}, "
                "which no privilege lifts; ask for less",
                limit=sysctl,
                errno=E.EINVAL,
                url=url,
            )
        current = read_sysctl(sysctl)
        if not privileged and current is not None and value > current:
            return LimitExceeded(
                f"{option}={value} for {url} exceeds {sysctl} ({current}), which binds "
                "processes without CAP_SYS_RESOURCE (root in a container included); ask for "
                f"{option} <= {current}, or " + sysctl_hint(sysctl, value),
                limit=sysctl,
                errno=E.EINVAL,
                url=url,
            )
    return None


@dataclass
class Usage:
    """What the mounted mqueue filesystem shows: None where it cannot be known."""

    mount: str | None = None
    #: Queues in the namespace the mount shows.
    queues: int | None = None
    #: RLIMIT_MSGQUEUE bytes this user's visible queues charge.
    charged: int | None = None
    #: This user's queues whose size could not be read (not openable).
    unknown: int = 0
    #: Whether the queue's own name is already there.
    exists: bool = False


def usage(name: str | None = None) -> Usage:
    """Count the queues and this user's charge from the mqueue filesystem, if mounted.

    Opens each of this user's queues read-only for a moment to read its size
    (the filesystem shows no attributes); queues that were unlinked but are
    still open are invisible and still charged.
    """
    from unimq.system import mqueue_mount

    mount = mqueue_mount()
    if mount is None:
        return Usage()
    try:
        entries = os.listdir(mount)
    except OSError:
        return Usage(mount=mount)
    found = Usage(mount=mount, queues=len(entries), charged=0)
    if name is not None and name[1:] in entries:
        found.exists = True  # open(create=True) opens it: nothing to count
        found.charged = None
        return found
    uid = os.getuid()
    from unimq_posix._queue import open_channel

    for entry in entries:
        try:
            if os.stat(os.path.join(mount, entry)).st_uid != uid:
                continue
            channel = open_channel("/" + entry, os.O_RDONLY)
        except OSError:
            found.unknown += 1
            continue
        assert found.charged is not None
        found.charged += posix_queue_charge(channel.max_messages, channel.max_message_size)
        channel.close()
    return found


def descriptor_shortage() -> int | None:
    """EMFILE or ENFILE when this process cannot get a file descriptor now, else None.

    Allocating one is the test: listing /proc/self/fd would need one itself.
    """
    try:
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return exc.errno if exc.errno in (E.EMFILE, E.ENFILE) else None
    os.close(fd)
    return None


def explains_msgqueue_refusal(charge: int = 0) -> bool:
    """Whether RLIMIT_MSGQUEUE explains a refused create (charge: the new queue's).

    True when the limit is finite and the charge arithmetic does not rule it out.
    """
    soft, _hard = rlimit_msgqueue()
    if soft == resource.RLIM_INFINITY or soft < 0:
        return False
    known = usage()
    if known.charged is not None and known.unknown == 0 and charge:
        return known.charged + charge > soft
    return True


def preflight(url: str, name: str, options: dict[str, Any]) -> list[str]:
    """Check every limit that could stop creating the queue, against current values.

    :return: notes on what was checked.
    :raises LimitExceeded: naming the limit that stops it.
    """
    max_messages, max_message_size = requested_attributes(options)
    err = attribute_limit(url, max_messages, max_message_size)
    if err is not None:
        raise err
    notes = [f"{max_messages} x {max_message_size} bytes are within the kernel's limits"]
    charge = posix_queue_charge(max_messages, max_message_size)
    soft, _hard = rlimit_msgqueue()
    limited = soft != resource.RLIM_INFINITY and soft >= 0
    if limited and charge > soft:
        raise LimitExceeded(
            f"creating {url} ({max_messages} x {max_message_size} bytes) would charge {charge} "
            f"bytes, more than this user's whole RLIMIT_MSGQUEUE of {soft} bytes; ask for a "
            "smaller queue, or raise the limit (ulimit -q, or LimitMSGQUEUE= in systemd)",
            limit="RLIMIT_MSGQUEUE",
            errno=E.EMFILE,
            url=url,
        )
    notes.append(
        f"it charges {charge} bytes to RLIMIT_MSGQUEUE ("
        + (f"{soft} bytes" if limited else "unlimited")
        + ")"
    )
    known = usage(name)
    if known.mount is None or known.queues is None:
        notes.append(
            "the mqueue filesystem is not mounted, so the queues that already exist "
            "(fs.mqueue.queues_max) and this user's RLIMIT_MSGQUEUE charge so far cannot be "
            "counted; mount it ('unimq mount') to have them checked"
        )
        return notes
    if known.exists:
        notes.append(f"{name} already exists in {known.mount}")
        return notes
    queues_max = read_sysctl("fs.mqueue.queues_max")
    if queues_max is not None and not has_cap_sys_resource() and known.queues >= queues_max:
        raise LimitExceeded(
            f"cannot create {url}: {known.queues} POSIX queues exist (seen in {known.mount}) "
            f"and fs.mqueue.queues_max is {queues_max}; remove unused queues (unimq ls / "
            "unimq rm) or " + sysctl_hint("fs.mqueue.queues_max", known.queues + 1),
            limit="fs.mqueue.queues_max",
            errno=E.ENOSPC,
            url=url,
        )
    notes.append(f"{known.queues} queues exist (fs.mqueue.queues_max: {queues_max})")
    if limited and known.charged is not None:
        if known.charged + charge > soft:
            raise LimitExceeded(
                f"creating {url} would charge {charge} bytes on top of the {known.charged} "
                f"bytes this user's queues in {known.mount} already charge, beyond "
                f"RLIMIT_MSGQUEUE ({soft} bytes); remove unused queues (unimq ls / unimq rm), "
                "ask for a smaller queue, or raise the limit (ulimit -q, or LimitMSGQUEUE= "
                "in systemd)",
                limit="RLIMIT_MSGQUEUE",
                errno=E.EMFILE,
                url=url,
            )
        notes.append(
            f"this user's queues already charge {known.charged} bytes"
            + (f" ({known.unknown} more could not be opened to count)" if known.unknown else "")
            + "; queues unlinked but still open are not visible and also count"
        )
    return notes
