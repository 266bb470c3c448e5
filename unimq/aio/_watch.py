"""Waiting through wake-up callbacks, for in-process queues (``memory://``).

A memory queue calls the callbacks registered with its ``_watch`` on every
change (a message sent or taken, removal, a handle closed), in the thread
that made the change. A waiting task registers one that sets its event: in
the loop's thread directly, from any other thread through the loop's
thread-safe call (asyncio ``call_soon_threadsafe``, trio ``run_sync_soon``).
No thread is ever started, and a sync thread of the process can send or
receive on the same queue meanwhile.

The task re-arms its event *before* each attempt, so a change between the
attempt and the sleep is never missed (at worst it wakes for nothing and
tries again). The message is taken by the task itself, in the loop's thread,
right after it wakes: cancellation can only land while it sleeps, so a
cancelled receive took nothing and a cancelled send enqueued nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import anyio

from unimq._message import Message
from unimq._queue import Queue
from unimq.aio._loop import CallSoon, loop_caller

__all__ = ["WatchWaiter", "Watchable"]

T = TypeVar("T")


class Watchable(Protocol):
    """What a handle provides to be waited on without a thread."""

    def _watch(self, wake: Callable[[], object]) -> None: ...
    def _unwatch(self, wake: Callable[[], object]) -> None: ...


class _Wake:
    """One waiting task's wake-up callback: sets its current event, from any thread."""

    __slots__ = ("_call_soon", "_loop_thread", "event")

    def __init__(self, call_soon: CallSoon) -> None:
        self._call_soon = call_soon
        self._loop_thread = threading.get_ident()
        self.event = anyio.Event()

    def arm(self) -> anyio.Event:
        """A fresh event for the next sleep (call before the attempt)."""
        self.event = event = anyio.Event()
        return event

    def __call__(self) -> None:
        event = self.event
        if event.is_set():
            return  # already woken: one wake-up per sleep is enough
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:
            self._call_soon(event.set)


class WatchWaiter:
    """The waiting strategy for handles that call wake-up callbacks (memory://)."""

    #: Shown by ``AsyncQueue.waits_by`` and in the docs' table of strategies.
    name = "wake-up callback"
    #: Nothing waits outside the loop, so nothing is ever orphaned.
    orphans: dict[int, Any] = {}  # noqa: RUF012 (never written)

    def __init__(self, handle: Queue, watched: Watchable) -> None:
        self._h = handle
        self._watched = watched
        #: The wake-ups of the tasks waiting now (close() wakes them).
        self._waiting: set[_Wake] = set()

    async def receive(self, mtype: int, timeout: float | None) -> Message:
        h = self._h
        attempt = h._receive_nowait
        if timeout is None:
            return await self._until(lambda: attempt(mtype))
        with anyio.move_on_after(timeout):
            return await self._until(lambda: attempt(mtype))
        raise h._empty_error(timeout)

    async def send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None:
        h = self._h
        attempt = h._send_nowait
        if timeout is None:
            await self._until(lambda: attempt(data, mtype, priority))
            return
        with anyio.move_on_after(timeout):
            await self._until(lambda: attempt(data, mtype, priority))
            return
        raise h._full_error(timeout)

    async def _until(self, attempt: Callable[[], T | None]) -> T:
        """Attempt, sleep until the queue changes, attempt again; the first
        truthy result is returned. QueueClosed if the handle closes meanwhile."""
        h = self._h
        wake = _Wake(loop_caller())
        self._watched._watch(wake)
        self._waiting.add(wake)
        try:
            while True:
                event = wake.arm()
                if h._closed:
                    raise h._closed_error()
                result = attempt()
                if result:
                    return result
                await event.wait()
        finally:
            self._waiting.discard(wake)
            self._watched._unwatch(wake)

    def close(self) -> None:
        """Wake the waiting tasks (they see QueueClosed); called in the loop's
        thread before the handle closes."""
        for wake in list(self._waiting):
            wake.event.set()

    async def aclose(self, close_handle: bool) -> None:
        """Close the handle (after :meth:`close`): no thread of this handle
        waits in a primitive, so closing returns at once."""
        if close_handle:
            self._h.close()
