"""``memory://name``: an in-process queue with kernel semantics, for users' unit tests.

It counts capacity in messages *and* bytes (like SysV), orders by priority
(like POSIX) and selects by mtype (like SysV), blocks with timeouts across
threads, and removal wakes blocked callers with :class:`QueueRemoved` (like
SysV). Queues live in this process only: a handle pickled into another
process finds no queue there.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from unimq._errors import (
    InvalidName,
    PermissionDenied,
    QueueEmpty,
    QueueExists,
    QueueFull,
    QueueNotFound,
    QueueRemoved,
)
from unimq._message import Capability, Message, QueueStat
from unimq._options import Access, OptionParser, positive_int
from unimq._queue import Queue
from unimq._url import QueueURL
from unimq._warnings import AttributeMismatchWarning

__all__ = ["MemoryQueue"]

DEFAULTS = {"max_messages": 10, "max_message_size": 8192, "max_bytes": 16384}


@dataclass(eq=False)
class _State:
    max_messages: int
    max_message_size: int
    max_bytes: int
    mode: int
    cond: threading.Condition = field(default_factory=threading.Condition)
    # (sequence, message) in arrival order
    items: list[tuple[int, Message]] = field(default_factory=list)
    nbytes: int = 0
    seq: int = 0
    removed: bool = False
    uid: int = field(default_factory=os.geteuid)
    gid: int = field(default_factory=os.getegid)
    send_time: float | None = None
    receive_time: float | None = None
    change_time: float = field(default_factory=time.time)
    send_pid: int | None = None
    receive_pid: int | None = None


_registry: dict[str, _State] = {}
_registry_lock = threading.Lock()


def _pick(items: list[tuple[int, Message]], mtype: int) -> int:
    """Index of the message a receive with this selection takes, or -1."""
    best = -1
    best_key: tuple[int, int, int] | None = None
    for i, (seq, msg) in enumerate(items):
        if mtype > 0 and msg.mtype != mtype:
            continue
        if mtype < 0 and msg.mtype > -mtype:
            continue
        # Lowest type first only for negative selection; then highest priority; then FIFO.
        key = (msg.mtype if mtype < 0 else 0, -msg.priority, seq)
        if best_key is None or key < best_key:
            best, best_key = i, key
    return best


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class MemoryQueue(Queue):
    """An in-process queue; see the module docstring."""

    scheme: ClassVar[str] = "memory"
    capabilities: ClassVar[Capability] = (
        Capability.MTYPE | Capability.PRIORITY | Capability.NATIVE_TIMEOUT
    )
    options: ClassVar[dict[str, OptionParser]] = {
        "max_messages": positive_int,
        "max_message_size": positive_int,
        "max_bytes": positive_int,
    }

    def __init__(self, url: QueueURL, access: Access, state: _State) -> None:
        super().__init__(url, access, min(state.max_message_size, state.max_bytes))
        self._state = state

    @classmethod
    def _check_url(cls, url: QueueURL) -> None:
        name = url.target
        if not name or "/" in name.strip("/") or "\x00" in name:
            raise InvalidName(
                f"memory queue name {name!r} must be a non-empty word (memory://orders)",
                url=str(url),
            )

    @staticmethod
    def _name(url: QueueURL) -> str:
        return url.target.strip("/")

    @classmethod
    def _open(
        cls,
        url: QueueURL,
        *,
        create: bool,
        exclusive: bool,
        mode: int,
        access: Access,
        options: dict[str, Any],
    ) -> Self:
        name = cls._name(url)
        with _registry_lock:
            state = _registry.get(name)
            if state is not None:
                if exclusive:
                    raise QueueExists(
                        f"{url} already exists; open it without exclusive=True or remove it first",
                        url=str(url),
                    )
                _warn_mismatch(url, state, options)
            elif not create:
                raise QueueNotFound(
                    f"{url} does not exist; create it with create=True (or: unimq create URL)",
                    url=str(url),
                )
            else:
                attrs = {**DEFAULTS, **options}
                state = _State(
                    attrs["max_messages"], attrs["max_message_size"], attrs["max_bytes"], mode
                )
                _registry[name] = state
        return cls(url, access, state)

    @classmethod
    def _remove_url(cls, url: QueueURL, *, missing_ok: bool) -> None:
        with _registry_lock:
            state = _registry.pop(cls._name(url), None)
        if state is None:
            if missing_ok:
                return
            raise QueueNotFound(f"{url} does not exist", url=str(url))
        _mark_removed(state)

    def _removed_error(self) -> QueueRemoved:
        return QueueRemoved(
            f"{self._url_text} was removed while this handle used it; reopen with create=True",
            url=self._url_text,
        )

    def _send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None:
        if self._access == "r":
            raise PermissionDenied(
                f"handle on {self._url_text} was opened with access='r'", url=self._url_text
            )
        state = self._state
        size = len(data)
        with state.cond:

            def fits() -> bool:
                return state.removed or (
                    len(state.items) < state.max_messages and state.nbytes + size <= state.max_bytes
                )

            if not state.cond.wait_for(fits, timeout):
                raise QueueFull(f"{self._url_text} is full", url=self._url_text)
            if state.removed:
                raise self._removed_error()
            state.seq += 1
            state.items.append((state.seq, Message(data, mtype, priority)))
            state.nbytes += size
            state.send_time = time.time()
            state.send_pid = os.getpid()
            state.cond.notify_all()

    def _receive(self, mtype: int, timeout: float | None) -> Message:
        if self._access == "w":
            raise PermissionDenied(
                f"handle on {self._url_text} was opened with access='w'", url=self._url_text
            )
        state = self._state
        found = -1
        with state.cond:

            def ready() -> bool:
                nonlocal found
                if state.removed:
                    return True
                found = _pick(state.items, mtype)
                return found >= 0

            if not state.cond.wait_for(ready, timeout):
                raise QueueEmpty(f"no message in {self._url_text}", url=self._url_text)
            if state.removed:
                raise self._removed_error()
            _, msg = state.items.pop(found)
            state.nbytes -= len(msg.data)
            state.receive_time = time.time()
            state.receive_pid = os.getpid()
            state.cond.notify_all()
        return msg

    def _stat(self) -> QueueStat:
        state = self._state
        if state.removed:
            raise self._removed_error()
        with state.cond:
            return QueueStat(
                url=str(self._url),
                kind="memory",
                name=self._name(self._url),
                messages=len(state.items),
                max_messages=state.max_messages,
                max_message_size=state.max_message_size,
                bytes=state.nbytes,
                max_bytes=state.max_bytes,
                mode=state.mode,
                uid=state.uid,
                gid=state.gid,
                creator_uid=state.uid,
                creator_gid=state.gid,
                last_send_time=_ts(state.send_time),
                last_receive_time=_ts(state.receive_time),
                last_change_time=_ts(state.change_time),
                last_send_pid=state.send_pid,
                last_receive_pid=state.receive_pid,
            )

    def _close(self) -> None:
        pass

    def _remove(self, missing_ok: bool) -> None:
        state = self._state
        with _registry_lock:
            if _registry.get(self._name(self._url)) is state:
                del _registry[self._name(self._url)]
            elif not missing_ok:
                raise QueueNotFound(f"{self._url_text} was already removed", url=self._url_text)
        _mark_removed(state)


def _mark_removed(state: _State) -> None:
    with state.cond:
        state.removed = True
        state.items.clear()
        state.nbytes = 0
        state.cond.notify_all()


def _warn_mismatch(url: QueueURL, state: _State, options: dict[str, Any]) -> None:
    actual = {
        "max_messages": state.max_messages,
        "max_message_size": state.max_message_size,
        "max_bytes": state.max_bytes,
    }
    diffs = {k: (v, actual[k]) for k, v in options.items() if actual.get(k) != v}
    if diffs:
        text = ", ".join(
            f"{k}={want} asked but {have} in place" for k, (want, have) in diffs.items()
        )
        warnings.warn(
            f"{url} already exists with other attributes ({text}); the existing ones apply. "
            "Remove the queue and create it again to change them",
            AttributeMismatchWarning,
            stacklevel=4,
        )
