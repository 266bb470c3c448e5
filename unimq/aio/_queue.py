"""``AsyncQueue``: the async face of a queue handle (asyncio and trio, via anyio)."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, overload

import anyio
import anyio.lowlevel

from unimq._errors import QueueClosed, QueueFull, UnimqError
from unimq._message import Capability, Message, QueueStat
from unimq._open import open as open_queue
from unimq._options import Access, check_timeout
from unimq._queue import Queue, _as_bytes, _index, batch_sent
from unimq.aio._fd_wait import DescriptorWaiter
from unimq.aio._helper import HelperWaiter, Stash
from unimq.aio._loop import checkpoint as _checkpoint
from unimq.aio._watch import WatchWaiter

_log = logging.getLogger("unimq.queue")

if TYPE_CHECKING:
    from pydantic import BaseModel

    from unimq.aio._typed import AsyncTypedQueue
    from unimq.typed._codecs import Codec

__all__ = ["AsyncQueue"]

M = TypeVar("M")
_monotonic = time.monotonic
#: An operation that finds its message or room at once is a checkpoint (a
#: cancellation point and a trip through the event loop) every this many
#: calls; one that waits is a cancellation point while it waits. A task
#: draining a busy queue cannot starve the others, and the hot path does not
#: pay a trip through the loop per message (which would halve its speed).
YIELD_EVERY = 32


class _Waiter(Protocol):
    name: str
    orphans: dict[int, Any]

    async def receive(self, mtype: int, timeout: float | None) -> Message: ...
    async def send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None: ...
    def close(self) -> None: ...
    async def aclose(self, close_handle: bool) -> None: ...


def _waiter_for(handle: Queue, stash: Stash) -> _Waiter:
    """The waiting strategy, chosen by what the backend can do (never by its name)."""
    fileno = getattr(handle, "fileno", None)
    if handle.capabilities & Capability.FILENO and fileno is not None:
        return DescriptorWaiter(handle, fileno())
    if callable(getattr(handle, "_watch", None)) and callable(getattr(handle, "_unwatch", None)):
        return WatchWaiter(handle, handle)  # type: ignore[arg-type]
    return HelperWaiter(handle, stash)


class AsyncQueue:
    """An async handle on one message queue. Obtain it from :func:`unimq.aio.open`.

    Same methods, semantics, errors and timeouts as :class:`unimq.Queue`, as
    coroutines that never block the event loop. ``async with`` closes the
    handle (never removes the queue); ``async for`` receives until the handle
    is closed. Cancelling an operation never loses a message: see
    the "Async" page of the documentation.
    """

    def __init__(self, handle: Queue) -> None:
        self._h = handle
        self._stash = Stash()
        self._stashed = self._stash._items  # truthy when a cancelled receive left messages
        self._waiter = _waiter_for(handle, self._stash)
        #: Truthy while a cancelled receive's helper still waits for its message.
        self._orphans = self._waiter.orphans
        self._calls = 0

    # ------------------------------------------------------------------ identity

    @property
    def url(self) -> str:
        """The URL that reopens this queue."""
        return self._h.url

    @property
    def access(self) -> Access:
        """``"rw"``, ``"r"`` or ``"w"``."""
        return self._h.access

    @property
    def closed(self) -> bool:
        """Whether the handle was closed."""
        return self._h.closed

    @property
    def capabilities(self) -> Capability:
        """What the backend can do; see :class:`unimq.Capability`."""
        return self._h.capabilities

    @property
    def scheme(self) -> str:
        """The backend's URL scheme."""
        return self._h.scheme

    @property
    def max_message_size(self) -> int:
        """The largest payload :meth:`send` accepts."""
        return self._h.max_message_size

    @property
    def waits_by(self) -> str:
        """How this handle waits: ``"descriptor"`` (the event loop polls the
        queue's descriptor), ``"wake-up callback"`` (an in-process queue wakes
        the loop; no thread) or ``"helper thread"``."""
        return self._waiter.name

    def __repr__(self) -> str:
        state = " [closed]" if self._h.closed else ""
        return f"<unimq.aio.AsyncQueue {self._h.url!r}{state}>"

    # ------------------------------------------------------------------ send / receive

    async def send(
        self,
        data: bytes | bytearray | memoryview,
        *,
        mtype: int = 1,
        priority: int = 0,
        timeout: float | None = None,
    ) -> None:
        """Send one message; as :meth:`unimq.Queue.send`.

        If cancelled, it either raised (nothing was enqueued) or returned
        (enqueued exactly once; the cancellation then takes effect at the
        caller's next checkpoint).
        """
        # A checkpoint every YIELD_EVERY calls, before the attempt (never after
        # it: a cancellation there would lose the message); inline, as this is
        # the hot path.
        calls = self._calls + 1
        if calls < YIELD_EVERY:
            self._calls = calls
        else:
            self._calls = 0
            await _checkpoint()
        h = self._h
        if h._closed:
            raise h._closed_error()
        if type(data) is not bytes:
            data = _as_bytes(data)
        if type(mtype) is not int or type(priority) is not int or mtype != 1 or priority != 0:
            mtype, priority = h._check_send_tags(mtype, priority)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if len(data) > h._max_size:
            h._check_size(len(data))
        try:
            if h._send_nowait(data, mtype, priority):
                return
            if timeout == 0:
                raise h._full_error(None)
            await self._waiter.send(data, mtype, priority, timeout)
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise h._mapped("send", exc) from exc
        except h._driver_errors as exc:
            raise h._unexpected("send", exc) from exc

    async def receive(self, *, mtype: int = 0, timeout: float | None = None) -> Message:
        """Receive one message; as :meth:`unimq.Queue.receive`.

        If cancelled, it took nothing from the queue, or the message it took
        is returned by the next receive on this handle.
        """
        calls = self._calls + 1  # as in send()
        if calls < YIELD_EVERY:
            self._calls = calls
        else:
            self._calls = 0
            await _checkpoint()
        h = self._h
        if h._closed:
            raise h._closed_error()
        if type(mtype) is not int or mtype != 0:
            mtype = h._check_receive_mtype(mtype)
        if timeout is not None:
            timeout = check_timeout(timeout)
        try:
            msg = self._stash.take(mtype) if self._stashed else None
            if msg is None:
                if self._orphans and timeout != 0:  # a cancelled receive's message first
                    return await self._waiter.receive(mtype, timeout)
                msg = h._receive_nowait(mtype)
            if msg is not None:
                return msg
            if timeout == 0:
                raise h._empty_error(None)
            return await self._waiter.receive(mtype, timeout)
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise h._mapped("receive", exc) from exc
        except h._driver_errors as exc:
            raise h._unexpected("receive", exc) from exc

    async def send_many(
        self,
        items: Iterable[bytes | bytearray | memoryview | Message],
        *,
        timeout: float | None = None,
    ) -> int:
        """Send ``items`` in order; as :meth:`unimq.Queue.send_many`.

        A :class:`unimq.Message` item carries its own mtype and priority;
        bytes use the defaults. Every item is checked before the first is
        sent. ``timeout`` is one deadline for the whole batch: if it passes
        after k messages, :class:`unimq.QueueFull` is raised with
        ``.sent == k``; every error raised once the batch started carries
        ``.sent``. A cancelled batch has sent a prefix of the items: use
        ``timeout`` rather than cancellation when the count matters.

        :return: the number of messages sent (all of them).
        """
        await _checkpoint()
        h = self._h
        if h._closed:
            raise h._closed_error()
        if timeout is not None:
            timeout = check_timeout(timeout)
        batch = [h._batch_item(item) for item in items]  # all checked first: nothing sent
        end = math.inf if timeout is None else _monotonic() + timeout
        sent = 0
        try:
            sent = h._send_many_nowait(batch, 0)
            while sent < len(batch):
                data, mtype, priority = batch[sent]
                if not h._send_nowait(data, mtype, priority):
                    if timeout == 0:
                        raise h._full_error(None)
                    left = None if timeout is None else end - _monotonic()
                    if left is not None and left <= 0:
                        raise h._full_error(timeout)
                    try:
                        await self._waiter.send(data, mtype, priority, left)
                    except QueueFull:
                        raise h._full_error(timeout) from None
                sent += 1
                sent += h._send_many_nowait(batch, sent)
            return sent
        except UnimqError as exc:
            exc.sent = sent + batch_sent(exc)
            raise
        except OSError as exc:
            err = h._mapped("send", exc)
            if isinstance(err, UnimqError):
                err.sent = sent + batch_sent(exc)
            raise err from exc
        except h._driver_errors as exc:
            unexpected = h._unexpected("send", exc)
            unexpected.sent = sent + batch_sent(exc)
            raise unexpected from exc

    async def receive_many(
        self, max_messages: int, *, mtype: int = 0, timeout: float | None = None
    ) -> list[Message]:
        """Wait (per ``timeout``) for the first message, then take what is
        already queued, up to ``max_messages``, without waiting again.

        :return: 1..max_messages messages, in the order single receives
            would have returned them.
        :raises QueueEmpty: if no (matching) message arrived in time.
        """
        if type(max_messages) is not int:
            max_messages = _index("max_messages", max_messages)
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        max_messages = min(max_messages, sys.maxsize)  # the C channels take a Py_ssize_t
        out = [await self.receive(mtype=mtype, timeout=timeout)]
        h = self._h
        mtype = h._check_receive_mtype(mtype) if mtype else 0  # valid: receive checked it
        stash = self._stash
        try:
            while stash and len(out) < max_messages:
                msg = stash.take(mtype)
                if msg is None:
                    break
                out.append(msg)
            if len(out) < max_messages:
                out += h._receive_many_nowait(mtype, max_messages - len(out))
        except (OSError, *h._driver_errors):  # type: ignore[misc]
            pass  # the messages taken are returned; the next call reports the error
        return out

    # ------------------------------------------------------------------ queue-level operations

    async def stat(self) -> QueueStat:
        """The queue's current state; as :meth:`unimq.Queue.stat`."""
        await _checkpoint()
        return self._h.stat()

    async def remove(self, *, missing_ok: bool = False) -> None:
        """Destroy the queue; the handle stays open. As :meth:`unimq.Queue.remove`."""
        await _checkpoint()
        self._h.remove(missing_ok=missing_ok)

    async def aclose(self) -> None:
        """Close the handle (idempotent). Tasks waiting on it raise
        :class:`unimq.QueueClosed`; helper threads have ended when this returns."""
        first = not self._h.closed
        if first:
            self._waiter.close()  # wakes the tasks that wait in the event loop
        with anyio.CancelScope(shield=True):
            await self._waiter.aclose(first)
            if first and self._stashed:
                self._send_back_stash()

    def _send_back_stash(self) -> None:
        """Send back the messages that cancelled receives handed on and nobody
        received (the helpers have ended, so the stash is final): nobody can
        receive them from a closed handle. The handle is closed, so through a
        new one to the same URL; non-blocking calls only. A kernel queue has no
        "insert at the head", so they go to the tail (logged); what cannot be
        sent back is logged as lost, with the reason."""
        url = self._h.url
        items = list(self._stashed)
        self._stashed.clear()
        returned = 0
        try:
            with open_queue(url) as again:
                for msg in items:
                    again.send(msg.data, mtype=msg.mtype, priority=msg.priority, timeout=0)
                    returned += 1
        except UnimqError as exc:
            _log.warning(
                "closing %s: %d message(s) that cancelled receives took could not be "
                "sent back and are lost: %s",
                url,
                len(items) - returned,
                exc,
            )
        if returned:
            _log.info(
                "closing %s: sent %d message(s) that cancelled receives took back to the "
                "queue, at its tail (a kernel queue cannot insert at the head)",
                url,
                returned,
            )

    # ------------------------------------------------------------------ typed layer

    @overload
    def typed(
        self,
        model: type[M],
        /,
        *,
        codec: str | Codec[Any] = ...,
        mtype: int | None = ...,
        dead_letter: str | Queue | None = ...,
    ) -> AsyncTypedQueue[M]: ...

    @overload
    def typed(
        self,
        model: Mapping[int, type[BaseModel]] | Any,
        /,
        *,
        codec: str | Codec[Any] = ...,
        mtype: int | None = ...,
        dead_letter: str | Queue | None = ...,
    ) -> AsyncTypedQueue[Any]: ...

    def typed(
        self,
        model: Any,
        /,
        *,
        codec: str | Codec[Any] = "json",
        mtype: int | None = None,
        dead_letter: str | Queue | None = None,
    ) -> AsyncTypedQueue[Any]:
        """A typed view carrying pydantic values; as :meth:`unimq.Queue.typed`."""
        from unimq.aio._typed import AsyncTypedQueue

        return AsyncTypedQueue(self, model, codec=codec, mtype=mtype, dead_letter=dead_letter)

    # ------------------------------------------------------------------ protocols

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.receive()
            except QueueClosed:
                return
