"""Orphaned queues: the temporary-queue registry, finding queues whose users
are all gone, and removing them (``unimq gc``, :func:`unimq.system.orphans`).

- Temporary queues unimq made are registered under the runtime directory
  with their creator's pid, its start time, the boot and the namespaces; one
  whose creator is gone is removed.
- POSIX queues (from the mounted mqueue fs) that no process holds a descriptor
  on (scanning /proc/*/fd) and that were unchanged for ``older_than`` are
  removed too, when every process could be inspected.
- Other SysV queues: the kernel keeps no creator, so one whose last sender and
  last receiver are both known (non-zero) and dead, unchanged for
  ``older_than``, is only a *candidate*, removed when ``match`` names it. A
  never-used queue (both pids 0) is never a candidate.

Never parses ``ipcs``. SysV queues are removed by msqid (which the kernel never
reuses for a re-created key at once), POSIX queues by unlinking them in the
mqueue fs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno as E
import fnmatch
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, PrivateAttr, ValidationError

from unimq._errors import InvalidURL
from unimq._names import format_key
from unimq.system._runtime import (
    boot_id,
    namespace,
    process_start,
    process_state,
    runtime_dir,
)
from unimq.system._sysvproc import sysv_msg_entries

__all__ = [
    "Orphan",
    "OrphanReport",
    "RegistryEntry",
    "confirm",
    "orphans",
    "parse_age",
    "register",
    "registry_entries",
    "remove_orphans",
    "unregister",
]

_log = logging.getLogger("unimq.gc")

Kind = Literal["sysv", "posix"]

# ---------------------------------------------------------------------- registry


class RegistryEntry(BaseModel):
    """Who created a temporary queue: enough to tell, later, that it is gone."""

    url: str
    kind: str
    #: SysV key and (once created) msqid; POSIX name.
    key: int | None = None
    id: int | None = None
    name: str | None = None
    creator_pid: int
    #: /proc/PID/stat field 22 of the creator: a reused pid has another one.
    creator_start: int
    boot_id: str
    ipc_namespace: str
    pid_namespace: str
    uid: int
    #: When the entry was written (seconds since the epoch), before the queue existed.
    created: float


def _registry_dir(create: bool = True) -> Path:
    path = runtime_dir(create=create) / "temporary"
    if create:
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def register(url: str, kind: str, *, key: int | None = None, name: str | None = None) -> Path:
    """Record that this process is about to create the temporary queue ``url``.

    Written *before* the queue exists, so a crash between creating and
    recording cannot leave an unrecorded queue; :func:`confirm` adds the id.
    """
    pid = os.getpid()
    start = process_start(pid)
    entry = RegistryEntry(
        url=url,
        kind=kind,
        key=key,
        name=name,
        creator_pid=pid,
        creator_start=start if start is not None else -1,
        boot_id=boot_id(),
        ipc_namespace=namespace("ipc"),
        pid_namespace=namespace("pid"),
        uid=os.geteuid(),
        created=time.time(),
    )
    path = _registry_dir() / f"{kind}-{uuid.uuid4().hex}.json"
    _write(path, entry)
    return path


def _write(path: Path, entry: RegistryEntry) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(entry.model_dump_json())
    os.replace(tmp, path)


def confirm(path: Path, *, id: int | None) -> None:
    """Add the created queue's id (SysV msqid) to its registry entry."""
    entry = RegistryEntry.model_validate_json(path.read_text())
    _write(path, entry.model_copy(update={"id": id}))


def unregister(path: Path) -> None:
    """Drop a registry entry (the queue was removed). Missing is fine."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def registry_entries() -> tuple[list[tuple[Path, RegistryEntry]], list[str]]:
    """This user's registry entries, and notes on files that could not be read."""
    try:
        directory = _registry_dir(create=False)
    except Exception as exc:  # an unsafe runtime directory: report, do not trust it
        return [], [str(exc)]
    found: list[tuple[Path, RegistryEntry]] = []
    notes: list[str] = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"cannot read the registry {directory}: {exc.strerror}"]
    for name in names:
        if not name.endswith(".json"):
            continue
        path = directory / name
        try:
            found.append((path, RegistryEntry.model_validate_json(path.read_text())))
        except (OSError, ValidationError, json.JSONDecodeError) as exc:
            notes.append(f"unreadable registry entry {path}: {type(exc).__name__}")
    return found, notes


# ---------------------------------------------------------------------- the report


class Orphan(BaseModel):
    """A queue whose users look gone."""

    url: str
    kind: str
    #: ``"remove"``: removed by ``gc --yes`` / :func:`remove_orphans`;
    #: ``"candidate"``: only listed (name it with ``match`` to remove it).
    action: Literal["remove", "candidate"]
    #: Why it is here, in words.
    reason: str
    #: Made by :func:`unimq.temporary` (known from the registry).
    temporary: bool = False
    #: Seconds since the queue last changed, where known.
    idle: float | None = None
    messages: int | None = None
    key: int | None = None
    id: int | None = None
    name: str | None = None


class OrphanReport(BaseModel):
    """What :func:`orphans` found, and (after :func:`remove_orphans`) what went."""

    orphans: list[Orphan] = []
    #: What could not be inspected, and so may hide users or orphans.
    not_inspected: list[str] = []
    #: Registry entries whose queue is already gone (dropped by remove_orphans).
    stale: list[str] = []
    removed: list[str] = []
    #: ``{url: why}`` for removals that failed.
    failed: dict[str, str] = {}
    _stale_paths: list[Path] = PrivateAttr(default_factory=list)
    _paths: dict[str, Path] = PrivateAttr(default_factory=dict)


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_age(text: str | float | timedelta) -> float:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``, a number of seconds, or a timedelta."""
    if isinstance(text, timedelta):
        return text.total_seconds()
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise InvalidURL(f"an age cannot be negative, got {text!r}")
        return float(text)
    m = _AGE.match(str(text))
    if m is None:
        raise InvalidURL(f"age must be like 90s, 10m, 2h, 1d or 1w, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _spellings(kind: str, key: int | None, name: str | None, url: str) -> list[str]:
    if kind == "sysv" and key is not None:
        return [f"sysv://{format_key(key)}", f"sysv://{key}", url]
    if kind == "posix" and name is not None:
        return [f"posix://{name}", name, url]
    return [url]


def _matches(pattern: str | None, spellings: Iterable[str]) -> bool:
    return pattern is None or any(fnmatch.fnmatchcase(s, pattern) for s in spellings)


def _pid_gone(pid: int) -> bool:
    """A pid in /proc/sysvipc/msg (no start time known): gone if no such process now."""
    try:
        return process_start(pid) is None
    except (OSError, ValueError, IndexError):
        return False


# ---------------------------------------------------------------------- SysV


def _sysv(
    report: OrphanReport,
    registered: list[tuple[Path, RegistryEntry]],
    match: str | None,
    older_than: float,
    now: float,
) -> None:
    rows = sysv_msg_entries()
    by_key = {row["key"]: row for row in rows if row.get("key")}
    by_id = {row["msqid"]: row for row in rows}
    temporary_ids: set[int] = set()
    here_ipc, here_pid, here_boot = namespace("ipc"), namespace("pid"), boot_id()
    for path, entry in registered:
        if entry.kind != "sysv" or entry.key is None:
            continue
        if entry.boot_id != here_boot:
            report.stale.append(f"{entry.url} (registered before the last reboot)")
            report._stale_paths.append(path)
            continue
        if entry.ipc_namespace != here_ipc:
            report.not_inspected.append(
                f"temporary {entry.url} of pid {entry.creator_pid} lives in another IPC "
                f"namespace ({entry.ipc_namespace}); run gc there"
            )
            continue
        row = by_id.get(entry.id) if entry.id is not None else by_key.get(entry.key)
        if row is not None and row["key"] != entry.key:
            row = None
        if row is not None and entry.id is None and row["ctime"] < int(entry.created) - 1:
            row = None  # the creator died before creating it; this key is someone else's
        if row is None:
            if entry.pid_namespace == here_pid and process_state(
                entry.creator_pid, entry.creator_start
            ) in ("gone",):
                report.stale.append(f"{entry.url} (already removed)")
                report._stale_paths.append(path)
            continue
        temporary_ids.add(row["msqid"])
        if entry.pid_namespace != here_pid:
            report.not_inspected.append(
                f"temporary {entry.url}: its creator (pid {entry.creator_pid}) is in another PID "
                "namespace; run gc there"
            )
            continue
        state = process_state(entry.creator_pid, entry.creator_start)
        if state != "gone":
            if state == "unknown":
                report.not_inspected.append(
                    f"temporary {entry.url}: cannot tell whether pid {entry.creator_pid} lives"
                )
            continue
        idle = now - max(row["stime"], row["rtime"], row["ctime"])
        url = f"sysv://{format_key(entry.key)}"
        if idle < older_than or not _matches(match, _spellings("sysv", entry.key, None, url)):
            continue
        report.orphans.append(
            Orphan(
                url=url,
                kind="sysv",
                action="remove",
                reason=f"temporary queue whose creator (pid {entry.creator_pid}) is gone",
                temporary=True,
                idle=idle,
                messages=row["qnum"],
                key=entry.key,
                id=row["msqid"],
            )
        )
        report._paths[url] = path
    for row in rows:
        if row["msqid"] in temporary_ids:
            continue
        lspid, lrpid = row["lspid"], row["lrpid"]
        if not lspid or not lrpid:
            continue  # never sent to or never received from: origin unknown, never a candidate
        if not (_pid_gone(lspid) and _pid_gone(lrpid)):
            continue
        idle = now - max(row["stime"], row["rtime"], row["ctime"])
        if idle < older_than:
            continue
        key = row["key"]
        url = f"sysv://{format_key(key)}" if key else f"sysv-private:{row['msqid']}"
        spell = _spellings("sysv", key, None, url) if key else [url]
        if not _matches(match, spell):
            continue
        report.orphans.append(
            Orphan(
                url=url,
                kind="sysv",
                action="remove" if match is not None else "candidate",
                reason=(
                    f"last sender (pid {lspid}) and last receiver (pid {lrpid}) are gone; "
                    "the kernel keeps no creator, so it is removed only when named with match"
                ),
                idle=idle,
                messages=row["qnum"],
                key=key or None,
                id=row["msqid"],
            )
        )


# ---------------------------------------------------------------------- POSIX


def _holders(dev: int) -> tuple[dict[int, set[int]], list[int]]:
    """{inode: pids holding a descriptor on it} for files on device ``dev``
    (the mqueue fs), and the pids whose descriptors could not be read."""
    held: dict[int, set[int]] = {}
    hidden: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except FileNotFoundError:
            continue  # exited meanwhile
        except PermissionError:
            hidden.append(pid)
            continue
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if st.st_dev == dev:
                held.setdefault(st.st_ino, set()).add(pid)
    return held, hidden


def _notify_pid(path: str) -> int:
    try:
        with open(path) as f:
            info = dict(item.split(":", 1) for item in f.read().split())
        return int(info.get("NOTIFY_PID", 0))
    except (OSError, ValueError):
        return 0


def _posix(
    report: OrphanReport, mount: str, match: str | None, older_than: float, now: float
) -> None:
    try:
        dev = os.stat(mount).st_dev
        names = sorted(os.listdir(mount))
    except OSError as exc:
        report.not_inspected.append(f"POSIX queues: cannot read {mount}: {exc.strerror}")
        return
    held, hidden = _holders(dev)
    if hidden:
        report.not_inspected.append(
            f"the descriptors of {len(hidden)} processes of other users (pids "
            f"{', '.join(map(str, hidden[:10]))}{' ...' if len(hidden) > 10 else ''}): "
            "their POSIX queues may look unused; run as root to see them"
        )
    for entry in names:
        full = os.path.join(mount, entry)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if held.get(st.st_ino):
            continue
        notify = _notify_pid(full)
        if notify and not _pid_gone(notify):
            continue
        idle = now - st.st_mtime
        name = f"/{entry}"
        url = f"posix://{name}"
        if idle < older_than or not _matches(match, _spellings("posix", None, name, url)):
            continue
        report.orphans.append(
            Orphan(
                url=url,
                kind="posix",
                action="remove" if not hidden or match is not None else "candidate",
                reason="no process holds a descriptor on it"
                + (" (among the processes that could be inspected)" if hidden else ""),
                idle=idle,
                name=name,
            )
        )


# ---------------------------------------------------------------------- entry points


def orphans(
    kind: str | None = None,
    *,
    match: str | None = None,
    older_than: float | str | timedelta = 0.0,
) -> OrphanReport:
    """Find queues whose users are all gone (nothing is removed).

    :param kind: ``"sysv"``, ``"posix"`` or None for both.
    :param match: a glob on the queue URL (``sysv://0x0000c822``, ``sysv://51234``,
        ``posix:///name`` and ``/name`` all match); also makes SysV candidates removable.
    :param older_than: only queues unchanged for this long (seconds, ``"10m"``, a timedelta).
    :raises InvalidURL: for another kind or a malformed age.
    """
    if kind not in (None, "sysv", "posix"):
        raise InvalidURL(f"kind must be 'sysv', 'posix' or None, not {kind!r}")
    age = parse_age(older_than)
    report = OrphanReport()
    registered, notes = registry_entries()
    report.not_inspected += notes
    now = time.time()
    if kind in (None, "sysv"):
        _sysv(report, registered, match, age, now)
    if kind in (None, "posix"):
        from unimq.system import mqueue_mount

        mount = mqueue_mount()
        if mount is None:
            report.not_inspected.append(
                "POSIX queues: no mqueue filesystem is mounted; mount one with 'unimq mount'"
            )
        else:
            _posix(report, mount, match, age, now)
    return report


_libc: ctypes.CDLL | None = None


def _msgctl_rmid(msqid: int) -> int:
    """IPC_RMID by msqid; 0 or the errno."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.msgctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    if _libc.msgctl(msqid, 0, None) == 0:
        return 0
    return ctypes.get_errno()


def remove_orphans(report: OrphanReport) -> OrphanReport:
    """Remove the orphans whose ``action`` is ``"remove"`` and drop stale registry entries.

    A SysV queue is removed by its msqid, after checking that the msqid still
    has the same key; a POSIX queue by unlinking it in the mqueue fs.
    """
    from unimq.system import mqueue_mount

    for orphan in report.orphans:
        if orphan.action != "remove":
            continue
        if orphan.kind == "sysv" and orphan.id is not None:
            current = {row["msqid"]: row for row in sysv_msg_entries()}.get(orphan.id)
            if current is None or (current["key"] or None) != orphan.key:
                report.failed[orphan.url] = "it changed since it was inspected; run gc again"
                continue
            err = _msgctl_rmid(orphan.id)
            if err not in (0, E.EINVAL, E.EIDRM):
                report.failed[orphan.url] = os.strerror(err)
                continue
        elif orphan.kind == "posix" and orphan.name is not None:
            mount = mqueue_mount()
            if mount is None:
                report.failed[orphan.url] = "the mqueue filesystem is no longer mounted"
                continue
            try:
                os.unlink(os.path.join(mount, orphan.name.lstrip("/")))
            except FileNotFoundError:
                pass
            except OSError as exc:
                report.failed[orphan.url] = exc.strerror or str(exc)
                continue
        else:
            continue
        report.removed.append(orphan.url)
        _log.info("gc removed %s (%s)", orphan.url, orphan.reason)
        path = report._paths.get(orphan.url)
        if path is not None:
            unregister(path)
    for path in report._stale_paths:
        unregister(path)
    return report
