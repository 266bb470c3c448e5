"""Waiting on a queue's descriptor with the event loop (POSIX message queues).

On Linux an mq descriptor works with epoll: readable when a message is
queued, writable when there is room. The handle's descriptor is its own open
file description (each ``mq_open`` makes one) and is always non-blocking, so
waiting on it changes nothing for another process or handle. A wait never
makes a system call that blocks: the attempt is non-blocking, and between
attempts the task sleeps in the event loop until the descriptor is ready.
Before a receive sleeps, if no other task of the loop is ready to run, it
retries in C for at most IDLE_SPIN_NS (a reply on its way is taken without
a trip through the loop's poller).

The event loops allow one waiter per descriptor and direction (anyio raises
``BusyResourceError`` for a second one; asyncio keeps one reader callback), so
the tasks that wait on one handle take turns through a lock per direction.
Cancellation can only land while the task sleeps (before an attempt), so a
cancelled receive took nothing and a cancelled send enqueued nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio

from unimq._message import Message
from unimq._queue import Queue
from unimq.aio import _loop
from unimq.aio._loop import loop_idle

__all__ = ["DescriptorWaiter"]


class DescriptorWaiter:
    """The waiting strategy for handles with a pollable ``fileno()``."""

    #: Shown in repr and in the docs' table of strategies.
    name = "descriptor"
    #: Nothing waits outside the loop, so nothing is ever orphaned.
    orphans: dict[int, Any] = {}  # noqa: RUF012 (never written)

    def __init__(self, handle: Queue, fd: int) -> None:
        self._h = handle
        self._fd = fd
        #: receive_nowait retried in C for a while (C channels only).
        self._receive_spin: Callable[[int, int], Message | None] | None = getattr(
            handle, "_receive_spin", None
        )
        self._receiving = anyio.Lock(fast_acquire=True)
        self._sending = anyio.Lock(fast_acquire=True)
        #: asyncio: the future a waiting task sleeps on, per direction (True: writable).
        self._futures: dict[bool, asyncio.Future[None]] = {}

    async def receive(self, mtype: int, timeout: float | None) -> Message:
        h = self._h
        attempt = h._receive_nowait
        if timeout is None:
            return await self._receive(attempt, mtype)
        with anyio.move_on_after(timeout):
            return await self._receive(attempt, mtype)
        raise h._empty_error(timeout)

    async def _receive(self, attempt: Callable[[int], Message | None], mtype: int) -> Message:
        h = self._h
        spin = self._receive_spin
        async with self._receiving:
            while True:
                if h._closed:
                    raise h._closed_error()
                msg = attempt(mtype)
                if msg is not None:
                    return msg
                if spin is not None and loop_idle():  # nothing else to run: retry briefly
                    msg = spin(mtype, _loop.IDLE_SPIN_NS)
                    if msg is not None:
                        return msg
                    if h._closed:
                        raise h._closed_error()
                await self._ready(False)

    async def send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None:
        h = self._h
        attempt = h._send_nowait
        if timeout is None:
            return await self._send(attempt, data, mtype, priority)
        with anyio.move_on_after(timeout):
            return await self._send(attempt, data, mtype, priority)
        raise h._full_error(timeout)

    async def _send(
        self, attempt: Callable[[bytes, int, int], bool], data: bytes, mtype: int, priority: int
    ) -> None:
        h = self._h
        async with self._sending:
            while True:
                if h._closed:
                    raise h._closed_error()
                if attempt(data, mtype, priority):
                    return
                await self._ready(True)

    async def _ready(self, writable: bool) -> None:
        """Sleep until the descriptor is readable (writable); QueueClosed if the
        handle is closed meanwhile."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio (anyio's path is trio's own wait)
            try:
                await (anyio.wait_writable if writable else anyio.wait_readable)(self._fd)
            except anyio.ClosedResourceError:
                raise self._h._closed_error() from None
            return
        # asyncio: a reader/writer callback and a future, without anyio's extra
        # trip through the loop per wait.
        fd = self._fd
        future: asyncio.Future[None] = loop.create_future()
        if writable:
            loop.add_writer(fd, _wake, future)
        else:
            loop.add_reader(fd, _wake, future)
        self._futures[writable] = future
        try:
            await future
        finally:
            del self._futures[writable]
            if writable:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)

    def close(self) -> None:
        """Wake the tasks waiting on the descriptor (they see QueueClosed);
        called in the loop's thread before the handle closes the descriptor."""
        for future in self._futures.values():
            if not future.done():
                future.set_exception(self._h._closed_error())
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            anyio.notify_closing(self._fd)

    async def aclose(self, close_handle: bool) -> None:
        """Close the handle (after :meth:`close`); closing a descriptor never blocks."""
        if close_handle:
            self._h.close()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
