"""``memory://name``: an in-process queue with kernel semantics, for users' unit tests.

It counts capacity in messages *and* bytes (like SysV), orders by priority
(like POSIX) and selects by mtype (like SysV), blocks with timeouts across
threads, and removal wakes blocked callers with :class:`QueueRemoved` (like
SysV). Queues live in this process only: a handle pickled into another
process finds no queue there. Besides its condition (for threads), a queue
calls the wake-up callbacks registered with ``_watch`` on every change:
unimq.aio waits on a memory queue that way, without a thread.
"""

from __future__ import annotations

import contextlib
import errno as E
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from unimq._errors import (
    InvalidName,
    QueueExists,
    QueueNotFound,
    QueueRemoved,
)
from unimq._message import Capability, Message, QueueStat
from unimq._options import Access, OptionParser, positive_int
from unimq._queue import Queue
from unimq._url import QueueURL

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
    #: Wake-up callbacks (see MemoryQueue._watch): called under ``cond`` on every
    #: change, from whichever thread made it; they must not block.
    watchers: list[Callable[[], object]] = field(default_factory=list)

    def changed(self) -> None:
        """Wake everything that waits on this queue (call with ``cond`` held)."""
        self.cond.notify_all()
        for wake in self.watchers:
            wake()


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
    attribute_options: ClassVar[frozenset[str]] = frozenset(options)

    def __init__(self, url: QueueURL, access: Access, state: _State) -> None:
        super().__init__(url, access, min(state.max_message_size, state.max_bytes))
        self._state = state
        self._install(self._try_send, self._try_receive, self._wait_send, self._wait_receive)

    @classmethod
    def _check_url(cls, url: QueueURL) -> None:
        name = url.target
        if not name.strip("/") or "/" in name.strip("/") or "\x00" in name:
            raise InvalidName(
                f"memory queue name {name!r} must be a non-empty word (memory://orders)",
                url=str(url),
            )

    @staticmethod
    def _name(url: QueueURL) -> str:
        return url.target.strip("/")

    @classmethod
    def _open_existing(cls, url: QueueURL, *, access: Access, options: dict[str, Any]) -> Self:
        with _registry_lock:
            state = _registry.get(cls._name(url))
        if state is None:
            raise QueueNotFound(
                f"{url} does not exist; create it with create=True (or: unimq create URL)",
                errno=E.ENOENT,
                url=str(url),
            )
        return cls(url, access, state)

    @classmethod
    def _create(cls, url: QueueURL, *, mode: int, access: Access, options: dict[str, Any]) -> Self:
        name = cls._name(url)
        with _registry_lock:
            if name in _registry:
                raise QueueExists(
                    f"{url} already exists; open it without exclusive=True or remove it first",
                    errno=E.EEXIST,
                    url=str(url),
                )
            attrs = {**DEFAULTS, **options}
            state = _State(
                attrs["max_messages"], attrs["max_message_size"], attrs["max_bytes"], mode
            )
            _registry[name] = state
        return cls(url, access, state)

    @classmethod
    def _remove_url(cls, url: QueueURL) -> None:
        with _registry_lock:
            state = _registry.pop(cls._name(url), None)
        if state is None:
            raise QueueNotFound(f"{url} does not exist", errno=E.ENOENT, url=str(url))
        _mark_removed(state)

    def _attributes(self) -> dict[str, int]:
        state = self._state
        return {
            "max_messages": state.max_messages,
            "max_message_size": state.max_message_size,
            "max_bytes": state.max_bytes,
        }

    def _removed_error(self) -> QueueRemoved:
        return QueueRemoved(
            f"{self._url_text} was removed while this handle used it; reopen with create=True",
            errno=E.EIDRM,
            url=self._url_text,
        )

    # The primitives, all under the queue's condition. A waiter wakes on every
    # change of the queue, on removal and on close() of its handle.

    def _put(self, data: bytes, mtype: int, priority: int) -> bool:
        state = self._state
        if state.removed:
            raise self._removed_error()
        if len(state.items) >= state.max_messages or state.nbytes + len(data) > state.max_bytes:
            return False
        state.seq += 1
        state.items.append((state.seq, tuple.__new__(Message, (data, mtype, priority))))
        state.nbytes += len(data)
        state.send_time = time.time()
        state.send_pid = os.getpid()
        state.changed()
        return True

    def _take(self, mtype: int) -> Message | None:
        state = self._state
        if state.removed:
            raise self._removed_error()
        found = _pick(state.items, mtype)
        if found < 0:
            return None
        _, msg = state.items.pop(found)
        state.nbytes -= len(msg.data)
        state.receive_time = time.time()
        state.receive_pid = os.getpid()
        state.changed()
        return msg

    def _try_send(self, data: bytes, mtype: int, priority: int) -> bool:
        with self._state.cond:
            return self._put(data, mtype, priority)

    def _try_receive(self, mtype: int) -> Message | None:
        with self._state.cond:
            return self._take(mtype)

    def _wait_send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> bool:
        cond = self._state.cond
        with cond:
            if self._closed:
                return False
            if self._put(data, mtype, priority):
                return True
            cond.wait(timeout)
            return not self._closed and self._put(data, mtype, priority)

    def _wait_receive(self, mtype: int, timeout: float | None) -> Message | None:
        cond = self._state.cond
        with cond:
            if self._closed:
                return None
            msg = self._take(mtype)
            if msg is not None:
                return msg
            cond.wait(timeout)
            return None if self._closed else self._take(mtype)

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

    def _interrupt_wait(self, thread_id: int) -> None:
        """Wake thread ``thread_id`` if it waits in a primitive of this handle: its
        wait returns early (the others on this queue wake spuriously and wait
        again), for unimq.aio's cancellation."""
        with self._state.cond:
            self._state.changed()

    def _close(self) -> None:
        with self._state.cond:  # wake this handle's waiters: they see closed and leave
            self._state.changed()

    def _watch(self, wake: Callable[[], object]) -> None:
        """Call ``wake()`` on every change of the queue (a message sent or taken,
        removal, a handle closed) until :meth:`_unwatch`: how unimq.aio waits
        without a thread. ``wake`` runs in the thread that made the change,
        with the queue's lock held: it must be quick, never block and never
        call back into the queue."""
        with self._state.cond:
            self._state.watchers.append(wake)

    def _unwatch(self, wake: Callable[[], object]) -> None:
        """Stop calling ``wake`` (no error if it was not watching)."""
        with self._state.cond, contextlib.suppress(ValueError):
            self._state.watchers.remove(wake)

    def _remove(self) -> None:
        state = self._state
        with _registry_lock:
            if _registry.get(self._name(self._url)) is not state:
                raise QueueNotFound(
                    f"{self._url_text} was already removed", errno=E.ENOENT, url=self._url_text
                )
            del _registry[self._name(self._url)]
        _mark_removed(state)


def _mark_removed(state: _State) -> None:
    with state.cond:
        state.removed = True
        state.items.clear()
        state.nbytes = 0
        state.changed()
