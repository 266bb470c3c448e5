"""System management: limits, the mqueue filesystem, listing queues, preflight checks.

Everything here reads the kernel's own files (/proc/sys, /proc/sysvipc/msg,
/proc/self/mountinfo, the mqueue fs) and never imports a backend's wrapped
module; opening queues goes through :func:`unimq.open`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno as E
import logging
import os
import re
import uuid
import warnings
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from unimq._errors import (
    BackendNotInstalled,
    InvalidURL,
    LimitExceeded,
    PermissionDenied,
    QueueNotFound,
    UnimqError,
)
from unimq._message import QueueStat
from unimq._names import ID_PREFIX, format_key
from unimq._url import QueueURL
from unimq.system._limits import (
    SYSCTL_PATHS,
    has_cap_sys_resource,
    posix_queue_charge,
    read_sysctl,
    rlimit_msgqueue,
)
from unimq.system._orphans import Orphan, OrphanReport, orphans, remove_orphans
from unimq.system._sysvproc import sysv_msg_entries

if TYPE_CHECKING:
    from unimq.system._metrics import MetricsServer

__all__ = [
    "CheckResult",
    "Limits",
    "MqueueNotMountedWarning",
    "Orphan",
    "OrphanReport",
    "check",
    "limits",
    "list_queues",
    "metrics_json",
    "metrics_text",
    "mount",
    "mqueue_mount",
    "orphans",
    "posix_queue_cost",
    "remove_orphans",
    "serve_metrics",
    "set_limit",
    "sysv_queue_by_id",
    "umount",
]

logger = logging.getLogger("unimq.system")
DEFAULT_MOUNT = "/dev/mqueue"


class MqueueNotMountedWarning(UserWarning):
    """POSIX queues cannot be listed because no mqueue filesystem is mounted."""


# ---------------------------------------------------------------------- limits


class Limits(BaseModel):
    """The kernel's queue limits as this process sees them (None where unreadable)."""

    msg_max: int | None
    msgsize_max: int | None
    queues_max: int | None
    msg_default: int | None
    msgsize_default: int | None
    msgmax: int | None
    msgmnb: int | None
    msgmni: int | None
    rlimit_msgqueue_soft: int
    rlimit_msgqueue_hard: int
    cap_sys_resource: bool

    def sysctls(self) -> dict[str, int | None]:
        """The values keyed by sysctl name (``fs.mqueue.msg_max`` ...)."""
        return {name: getattr(self, name.rsplit(".", 1)[1]) for name in SYSCTL_PATHS}


def limits() -> Limits:
    """Read every queue limit: fs.mqueue.*, kernel.msg*, RLIMIT_MSGQUEUE, CAP_SYS_RESOURCE."""
    soft, hard = rlimit_msgqueue()
    values = {name.rsplit(".", 1)[1]: read_sysctl(name) for name in SYSCTL_PATHS}
    return Limits(
        **values,
        rlimit_msgqueue_soft=soft,
        rlimit_msgqueue_hard=hard,
        cap_sys_resource=has_cap_sys_resource(),
    )


def _sysctl_name(name: str) -> str:
    if name in SYSCTL_PATHS:
        return name
    matches = [full for full in SYSCTL_PATHS if full.rsplit(".", 1)[1] == name]
    if len(matches) == 1:
        return matches[0]
    raise InvalidURL(f"unknown queue limit {name!r}; known: {', '.join(sorted(SYSCTL_PATHS))}")


def set_limit(name: str, value: int) -> None:
    """Write a queue sysctl (``fs.mqueue.msg_max`` or just ``msg_max``).

    :raises InvalidURL: for an unknown name.
    :raises ValueError: for a value the kernel rejects (out of range).
    :raises PermissionDenied: without the privilege to write it.
    """
    full = _sysctl_name(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{full} must be a non-negative integer, got {value!r}")
    try:
        with open(SYSCTL_PATHS[full], "w") as f:
            f.write(str(value))
    except PermissionError as exc:
        raise PermissionDenied(
            f"cannot write {full}: only root (in the queue's IPC namespace) may; run as root, "
            f"or 'sudo sysctl -w {full}={value}'",
            errno=exc.errno,
        ) from None
    except OSError as exc:
        if exc.errno == E.EINVAL:
            raise ValueError(
                f"the kernel rejected {full}={value}: out of its allowed range"
            ) from None
        if exc.errno in (E.EROFS, E.EACCES, E.EPERM):
            raise PermissionDenied(
                f"cannot write {full} here ({exc.strerror}): /proc/sys is read-only in this "
                "container; set it on the host or start the container with its own IPC "
                "namespace and the privilege to change it",
                errno=exc.errno,
            ) from None
        raise
    logger.info("set %s = %d", full, value)


def posix_queue_cost(max_messages: int, max_message_size: int) -> int:
    """Bytes a POSIX queue of this size charges to its creator's RLIMIT_MSGQUEUE."""
    return posix_queue_charge(max_messages, max_message_size)


# ---------------------------------------------------------------------- mounts


_OCTAL = re.compile(r"\\([0-7]{3})")


def _mount_points() -> dict[str, str]:
    """Every mount point of this mount namespace and its filesystem type (the last
    mount on a path wins, as it is the one that shows)."""
    found: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5 or not right:
                    continue
                # mountinfo writes space, tab, newline and backslash as \ooo.
                point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
                found[point] = right.split(" ", 1)[0]
    except OSError:
        pass
    return found


def _mqueue_mounts() -> list[str]:
    return [point for point, fstype in _mount_points().items() if fstype == "mqueue"]


def mqueue_mount() -> str | None:
    """Where the mqueue filesystem is mounted (``/dev/mqueue`` preferred), or None."""
    mounts = _mqueue_mounts()
    if not mounts:
        return None
    return DEFAULT_MOUNT if DEFAULT_MOUNT in mounts else mounts[0]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _exists_error(message: str) -> FileExistsError:
    err = FileExistsError(message)
    err.errno = E.EEXIST
    return err


def mount(path: str = DEFAULT_MOUNT, *, force: bool = False) -> str:
    """Mount an mqueue filesystem at ``path`` (created if missing); return the path.

    An mqueue mount already at ``path`` is left alone (and ``path`` returned).
    Anything else that is there is never hidden unless ``force`` is true: a
    mount of another filesystem, or a directory that is not empty. If the
    mount fails, the directories this call created are removed again. The
    mount shows the POSIX queues of the caller's IPC namespace.

    :raises FileExistsError: if ``path`` is a mount point or a non-empty
        directory and ``force`` is false (the message says which).
    :raises NotADirectoryError: if ``path`` exists and is not a directory.
    :raises PermissionDenied: without CAP_SYS_ADMIN.
    """
    path = os.path.abspath(path)
    points = _mount_points()
    if points.get(path) == "mqueue":
        return path
    if not force:
        if path in points or os.path.ismount(path):
            raise _exists_error(
                f"{path} is already a mount point ({points.get(path, 'unknown')} filesystem); "
                "mounting mqueue there would hide it: pick another directory, or pass "
                "force=True (unimq mount --force) to mount over it"
            )
        if os.path.isdir(path) and os.listdir(path):
            raise _exists_error(
                f"{path} is not empty; mounting mqueue there would hide what it holds: pick "
                "an empty or new directory, or pass force=True (unimq mount --force)"
            )
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(E.ENOTDIR, f"{path} exists and is not a directory", path)
    created: list[str] = []  # deepest first

    def remove_created() -> None:
        for directory in created:
            with contextlib.suppress(OSError):
                os.rmdir(directory)

    missing: list[str] = []
    parent = path
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    try:
        for directory in reversed(missing):
            os.mkdir(directory)
            created.insert(0, directory)
    except OSError:
        remove_created()
        raise
    if _libc().mount(b"mqueue", os.fsencode(path), b"mqueue", 0, None) != 0:
        err = ctypes.get_errno()
        remove_created()  # leave nothing behind
        if err in (E.EPERM, E.EACCES):
            raise PermissionDenied(
                f"cannot mount the mqueue filesystem at {path}: mounting needs CAP_SYS_ADMIN "
                f"(run as root: 'mount -t mqueue none {path}')",
                errno=err,
            )
        raise OSError(err, f"mount -t mqueue at {path} failed: {os.strerror(err)}")
    logger.info("mounted mqueue at %s", path)
    return path


def umount(path: str = DEFAULT_MOUNT) -> None:
    """Unmount the mqueue filesystem at ``path`` (queues themselves are unaffected).

    :raises ValueError: if ``path`` is not an mqueue mount.
    :raises PermissionDenied: without CAP_SYS_ADMIN.
    """
    path = os.path.abspath(path)
    if path not in _mqueue_mounts():
        raise ValueError(f"{path} is not an mqueue mount (see 'unimq mount' / mqueue_mount())")
    if _libc().umount2(os.fsencode(path), 0) != 0:
        err = ctypes.get_errno()
        if err in (E.EPERM, E.EACCES):
            raise PermissionDenied(f"cannot unmount {path}: needs CAP_SYS_ADMIN", errno=err)
        raise OSError(err, f"umount {path} failed: {os.strerror(err)}")
    logger.info("unmounted mqueue at %s", path)


def mount_shows_this_namespace(path: str | None = None) -> bool | None:
    """Whether the mqueue mount shows *this* IPC namespace's queues.

    The kernel exposes no namespace id for a mount, so this creates a tiny,
    uniquely named POSIX queue, looks for it in the mount, and removes it.
    None if it cannot tell (not mounted, or the posix backend is missing).
    """
    import unimq

    path = path or mqueue_mount()
    if path is None:
        return None
    name = f"unimq-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe = unimq.open(f"posix:///{name}", create=True, max_messages=1, max_message_size=1)
    except (BackendNotInstalled, UnimqError):
        return None
    try:
        return os.path.exists(os.path.join(path, name))
    finally:
        probe.remove(missing_ok=True)
        probe.close()


# ---------------------------------------------------------------------- listing


def _ts(value: int) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _sysv_queues() -> list[QueueStat]:
    out: list[QueueStat] = []
    for row in sysv_msg_entries():
        try:
            key = row["key"]
            out.append(
                QueueStat(
                    url=f"sysv://{format_key(key) if key else ID_PREFIX + str(row['msqid'])}",
                    kind="sysv",
                    key=key,
                    id=row["msqid"],
                    messages=row["qnum"],
                    bytes=row["cbytes"],
                    mode=row["perms"] & 0o777,
                    uid=row["uid"],
                    gid=row["gid"],
                    creator_uid=row["cuid"],
                    creator_gid=row["cgid"],
                    last_send_pid=row["lspid"] or None,
                    last_receive_pid=row["lrpid"] or None,
                    last_send_time=_ts(row["stime"]),
                    last_receive_time=_ts(row["rtime"]),
                    last_change_time=_ts(row["ctime"]),
                )
            )
        except KeyError:
            continue
    return out


def _posix_queues(path: str) -> list[QueueStat]:
    import unimq

    out: list[QueueStat] = []
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        try:
            st = os.stat(full)
            with open(full) as f:
                info = dict(item.split(":", 1) for item in f.read().split())
        except (OSError, ValueError):
            continue  # removed while listing, or unreadable
        url = str(QueueURL("posix", f"/{entry}"))  # percent-encoded, as stat prints it
        extra: dict[str, Any] = {}
        try:
            with unimq.open(url, access="r") as q:
                qs = q.stat()
                extra = {
                    "messages": qs.messages,
                    "max_messages": qs.max_messages,
                    "max_message_size": qs.max_message_size,
                }
        except (UnimqError, OSError):
            extra = {}
        except Exception as exc:  # a failing backend: messages unknown (-1), listing goes on
            logger.warning("cannot open %s to read its depth: %s: %s", url, type(exc).__name__, exc)
            extra = {}
        out.append(
            QueueStat(
                url=url,
                kind="posix",
                name=f"/{entry}",
                messages=extra.get("messages", -1),
                max_messages=extra.get("max_messages"),
                max_message_size=extra.get("max_message_size"),
                bytes=int(info.get("QSIZE", 0)),
                mode=st.st_mode & 0o777,
                uid=st.st_uid,
                gid=st.st_gid,
                last_change_time=datetime.fromtimestamp(st.st_mtime, UTC),
                notify=int(info.get("NOTIFY", 0)),
                notify_signal=int(info.get("SIGNO", 0)) or None,
                notify_pid=int(info.get("NOTIFY_PID", 0)) or None,
            )
        )
    return out


def list_queues(kind: str | None = None) -> list[QueueStat]:
    """Every queue visible in this IPC namespace: SysV from /proc/sysvipc/msg,
    POSIX from the mounted mqueue filesystem.

    POSIX ``messages`` is -1 where the queue could not be opened read-only
    (no permission, or the posix backend is not installed). Each record's
    ``url`` reopens the queue it describes: names are percent-encoded, and a
    SysV queue without a key (IPC_PRIVATE) is ``sysv://id:N`` (see
    :func:`sysv_queue_by_id`; :func:`unimq.remove` removes it).

    :param kind: ``"sysv"``, ``"posix"`` or None for both.
    :raises InvalidURL: for another kind.
    Warns :class:`MqueueNotMountedWarning` when POSIX queues were asked for
    and no mqueue filesystem is mounted, instead of pretending there are none.
    """
    if kind not in (None, "sysv", "posix"):
        raise InvalidURL(f"kind must be 'sysv', 'posix' or None, not {kind!r}")
    result: list[QueueStat] = []
    if kind in (None, "sysv"):
        result += _sysv_queues()
    if kind in (None, "posix"):
        path = mqueue_mount()
        if path is None:
            warnings.warn(
                "POSIX queues cannot be listed: no mqueue filesystem is mounted; mount one with "
                "'unimq mount' (or 'mount -t mqueue none /dev/mqueue') as root",
                MqueueNotMountedWarning,
                stacklevel=2,
            )
        else:
            result += _posix_queues(path)
    return result


def sysv_queue_by_id(msqid: int) -> QueueStat:
    """The SysV queue with identifier ``msqid``, as :func:`list_queues` shows it.

    This is how a queue without a key (IPC_PRIVATE, listed as ``sysv://id:N``)
    is looked at; the record comes from /proc/sysvipc/msg, which has no
    ``max_bytes``.

    :raises QueueNotFound: if no queue has that identifier.
    """
    for st in _sysv_queues():
        if st.id == msqid:
            return st
    raise QueueNotFound(
        f"no SysV queue has the identifier {msqid} (it was removed, or never existed); "
        "'unimq ls --kind sysv' lists the queues there are",
        errno=E.EINVAL,
        url=f"sysv://{ID_PREFIX}{msqid}",
    )


_IPC_RMID = 0


def _remove_sysv_id(msqid: int, *, missing_ok: bool = False) -> None:
    """msgctl(msqid, IPC_RMID): remove a SysV queue by identifier (``sysv://id:N``)."""
    url = f"sysv://{ID_PREFIX}{msqid}"
    if msqid > 0x7FFFFFFF or _libc().msgctl(ctypes.c_int(msqid), _IPC_RMID, None) != 0:
        err = E.EINVAL if msqid > 0x7FFFFFFF else ctypes.get_errno()
        if err in (E.EINVAL, E.EIDRM):
            if missing_ok:
                return
            raise QueueNotFound(
                f"{url} does not exist (no SysV queue has the identifier {msqid})",
                errno=err,
                url=url,
            )
        if err in (E.EPERM, E.EACCES):
            raise PermissionDenied(
                f"cannot remove {url}: only its owner, its creator or root may (ipcrm -q {msqid})",
                errno=err,
                url=url,
            )
        raise OSError(err, f"msgctl(IPC_RMID) on {url} failed: {os.strerror(err)}")
    logger.info("removed %s", url)


# ---------------------------------------------------------------------- preflight


class CheckResult(BaseModel):
    """What :func:`check` found: whether the queue could be opened or created as asked."""

    url: str
    ok: bool
    exists: bool | None = None
    #: The limit that stops it (``fs.mqueue.msg_max``, ``RLIMIT_MSGQUEUE``, ...), if any.
    limit: str | None = None
    #: Why it would fail, and how to fix it.
    problem: str | None = None
    #: Facts gathered on the way (charges, current values).
    notes: list[str] = []


def check(url: str, **options: Any) -> CheckResult:
    """Say whether ``unimq.open(url, create=True, **options)`` would succeed, without creating.

    Checks the URL, the options, whether the queue exists and may be opened,
    and for a new queue every limit that could stop it.
    """
    import unimq
    from unimq._open import CORE_OPTIONS, _split
    from unimq._options import merge_options
    from unimq._overflow import check as check_overflow

    try:
        cls, base, url_options = _split(url)
        merged = merge_options(base.scheme, url_options, options, {**cls.options, **CORE_OPTIONS})
        access = merged.pop("access", "rw")
        check_overflow(merged.pop("on_full", "wait"), merged.pop("keep", None), access)
    except (InvalidURL, BackendNotInstalled) as exc:
        return CheckResult(url=str(url), ok=False, problem=str(exc))
    text = str(base)
    try:
        unimq.open(base, access=access).close()  # base keeps a network URL's password
    except QueueNotFound:
        pass  # a new queue: check the limits that could stop its creation
    except PermissionDenied as exc:
        return CheckResult(url=text, ok=False, exists=True, problem=str(exc))
    except UnimqError as exc:
        return CheckResult(url=text, ok=False, problem=str(exc))
    else:
        return CheckResult(url=text, ok=True, exists=True, notes=["the queue exists and opens"])
    # The backend's own preflight, the one open(create=True) runs: they cannot disagree.
    try:
        notes = cls._preflight(base, merged)
    except LimitExceeded as exc:
        return CheckResult(url=text, ok=False, exists=False, limit=exc.limit, problem=str(exc))
    except UnimqError as exc:
        return CheckResult(url=text, ok=False, exists=False, problem=str(exc))
    return CheckResult(url=text, ok=True, exists=False, notes=[*notes, "it can be created"])


# ---------------------------------------------------------------------- metrics


def metrics_text(urls: Iterable[str] = ()) -> str:
    """Prometheus/OpenMetrics text for every queue visible here, ``urls`` and the limits.

    See :doc:`metrics`; the same figures ``unimq metrics`` serves.
    """
    from unimq.system._metrics import metrics_text as text

    return text(urls)


def metrics_json(urls: Iterable[str] = ()) -> dict[str, Any]:
    """The figures of :func:`metrics_text` as one JSON-ready dict.

    ``unimq metrics --once --json`` prints it (one line, for log shippers).
    """
    from unimq.system._metrics import metrics_json as figures

    return figures(urls)


def serve_metrics(address: str = "127.0.0.1:9464", urls: Sequence[str] = ()) -> MetricsServer:
    """Serve :func:`metrics_text` over HTTP at ``address`` (``/metrics``) in a thread.

    Port 0 picks a free port (read it from ``server.port``). Close the returned
    server (or use ``with``) to stop.

    :raises ValueError: for a malformed address.
    :raises OSError: if the address cannot be bound.
    """
    from unimq.system._metrics import serve_metrics as serve

    return serve(address, urls)
