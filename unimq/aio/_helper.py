"""Waiting in a helper thread, for queues without a pollable descriptor (SysV).

A System V queue can only be waited on by a thread blocked in ``msgrcv`` or
``msgsnd``. The async layer first makes the non-blocking attempt in the event
loop (no thread at all while messages flow); only when it would block does
it hand the wait to a helper thread of the handle, which blocks in the sync
handle's wait primitive and wakes the task when done. Helper threads are
reused: a handle has one per concurrently waiting task, parked while idle.

Cancellation never loses a message:

- an untimed receive (``timeout=None``) whose task is cancelled leaves its
  helper blocked in the kernel as an *orphan*; the handle's next receive with
  the same selection takes the orphan's wait over before any attempt of its
  own (the orphan may hold the oldest message), and a message the orphan
  takes before that is stashed for the next receive (never put back into the
  queue, which would reorder it);
- a timed receive and a send ask their helper to stop and wait (shielded)
  until it reports, so the cancelled call knows what happened: a message the
  helper took anyway is stashed; a send whose message was enqueued before
  the stop took effect returns normally, one that raises enqueued nothing.

A stop takes effect at once when the backend provides ``_interrupt_wait``
(wakes one thread blocked in its primitive); otherwise the helper waits in
slices of :data:`CHUNK` seconds and stops at the end of the current one.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread

from unimq._message import Message
from unimq._queue import WAIT_CHUNK, Queue
from unimq.aio import _loop
from unimq.aio._loop import checkpoint, loop_caller, loop_idle, wait_through_cancel

__all__ = ["CHUNK", "HelperWaiter", "Stash"]

T = TypeVar("T")

#: Longest single wait of a helper when the backend cannot interrupt one:
#: bounds how long a cancelled operation waits for its helper to stop.
CHUNK = 0.05
#: How often an interrupt is re-sent until the helper acknowledges it (a
#: wake-up sent just before the helper enters the system call is lost).
_REPOKE = 0.001
#: An idle helper thread exits after this many seconds.
_IDLE = 30.0
#: Before a receive is handed to a helper thread, the task retries the
#: non-blocking attempt after each trip through the event loop (a few
#: microseconds each, other tasks run meanwhile), at least SPIN times and for
#: up to SPIN_SECONDS (the budget the C waits spin for): a reply already on its
#: way is taken without the two thread wake-ups a hand-off costs.
SPIN = 3
SPIN_SECONDS = 20e-6

_monotonic = time.monotonic


def _matches(msg: Message, mtype: int) -> bool:
    if mtype == 0:
        return True
    if mtype > 0:
        return msg.mtype == mtype
    return msg.mtype <= -mtype


class Stash:
    """Messages a cancelled receive's helper took: the handle's next receives get them."""

    def __init__(self) -> None:
        self._items: deque[Message] = deque()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, msg: Message) -> None:
        with self._lock:
            self._items.append(msg)

    def take(self, mtype: int) -> Message | None:
        """The oldest stashed message this selection matches, or None."""
        if not self._items:
            return None
        with self._lock:
            for i, msg in enumerate(self._items):
                if _matches(msg, mtype):
                    del self._items[i]
                    return msg
        return None


class _Job(Generic[T]):
    """One wait handed to a helper thread."""

    __slots__ = (
        "done",
        "error",
        "event",
        "lock",
        "mtype",
        "notify",
        "orphan_stash",
        "result",
        "stop",
        "thread_id",
        "work",
    )

    def __init__(self, work: Callable[[_Job[T]], T | None], mtype: int) -> None:
        self.work = work
        self.mtype = mtype
        self.stop = False  # set by the task: return as soon as possible
        self.lock = threading.Lock()
        #: Set when the task that waited for this receive was cancelled and
        #: nobody adopted it yet: a message it takes goes to this stash.
        self.orphan_stash: Stash | None = None
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.thread_id = 0
        self.event = anyio.Event()
        self.notify = _notifier(self.event)


def _notifier(event: anyio.Event) -> Callable[[], None]:
    """A thread-safe way to set ``event`` (created in the running loop)."""
    caller = loop_caller()
    return lambda: caller(event.set)


class _Helper(threading.Thread):
    def __init__(self, pool: HelperWaiter) -> None:
        super().__init__(name=f"unimq-aio {pool.url}", daemon=True)
        self._pool = pool
        self._cond = threading.Condition()
        self._job: _Job[Any] | None = None
        self._quit = False
        self.job_id = 0

    def submit(self, job: _Job[Any]) -> None:
        with self._cond:
            self._job = job
            self._cond.notify()

    def quit(self) -> None:
        with self._cond:
            self._quit = True
            self._cond.notify()

    def run(self) -> None:
        pool = self._pool
        while True:
            with self._cond:
                if self._job is None and not self._quit:
                    self._cond.wait(_IDLE)
                job, self._job = self._job, None
                quitting = self._quit
            if job is None:
                # Told to quit, or idle for a while (unless just handed a job).
                if quitting or pool._retire(self):
                    return
                continue
            job.thread_id = threading.get_ident()
            try:
                job.result = job.work(job)
            except BaseException as exc:  # handed to the task, which raises it
                job.error = exc
            job.thread_id = 0
            with job.lock:
                job.done = True
                if job.orphan_stash is not None and job.result is not None:
                    job.orphan_stash.put(job.result)
                notify = job.notify  # an adopter may have replaced it until now
            pool._release(self, job)  # idle again before the task wakes: it may reuse us
            notify()


class HelperWaiter:
    """The waiting strategy for handles without a descriptor: helper threads."""

    name = "helper thread"

    def __init__(self, handle: Queue, stash: Stash) -> None:
        self._h = handle
        self._stash = stash
        self.url = handle.url
        self._lock = threading.Lock()
        self._idle: list[_Helper] = []
        self._threads: set[_Helper] = set()
        self._running: set[_Job[Any]] = set()
        self._orphans: dict[int, list[_Job[Message]]] = {}
        #: Truthy while a cancelled receive's helper still waits (see _receive_blocking).
        self.orphans = self._orphans
        self._closed = False
        interrupt: Callable[[int], None] | None = getattr(handle, "_interrupt_wait", None)
        self._interrupt = interrupt
        #: receive_nowait retried in C for a while (C paths only; see _spin).
        self._receive_spin: Callable[[int, int], Message | None] | None = getattr(
            handle, "_receive_spin", None
        )
        #: The longest single wait of a helper: a chunk when stops only land
        #: between waits, else no limit but the core's.
        self.chunk = WAIT_CHUNK if interrupt is not None else CHUNK

    # ------------------------------------------------------------------ operations

    async def receive(self, mtype: int, timeout: float | None) -> Message:
        h = self._h
        asked = timeout
        if not self.orphans:
            start = _monotonic()
            msg = await self._spin(mtype)
            if msg is not None:
                return msg
            if timeout is not None:
                timeout -= _monotonic() - start
                if timeout <= 0:
                    raise h._empty_error(asked)
        if self.orphans:  # an earlier receive's message may be on its way: take it first
            end = None if timeout is None else _monotonic() + timeout
            msg = await self._adopt_orphans(mtype, end)
            if msg is not None:
                return msg
            if end is not None:
                timeout = end - _monotonic()
                if timeout <= 0:
                    raise h._empty_error(asked)
        if timeout is None and self._interrupt is None:
            return await self._receive_blocking(mtype)
        wait = h._receive_wait
        stash = self._stash
        chunk = self.chunk
        end = math.inf if timeout is None else _monotonic() + timeout

        def work(job: _Job[Message]) -> Message | None:
            while not job.stop and not h._closed:
                msg = stash.take(mtype)
                if msg is not None:
                    return msg
                left = end - _monotonic()
                if left <= 0:
                    return None
                msg = wait(mtype, left if left < chunk else chunk)
                if msg is not None:
                    return msg
            return None

        job: _Job[Message] = _Job(work, mtype)
        self._submit(job)
        try:
            await job.event.wait()
        except BaseException:
            await self._stop(job)
            if job.result is not None:  # taken as the task was being cancelled
                stash.put(job.result)
                self._wake_receivers()
            raise
        if job.error is not None:
            raise job.error
        if job.result is not None:
            return job.result
        if h._closed or self._closed:
            raise h._closed_error()
        raise h._empty_error(asked)

    async def _spin(self, mtype: int) -> Message | None:
        """More non-blocking attempts before a hand-off; None if the queue
        stayed empty or a cancelled receive left an orphan meanwhile.

        Each attempt follows a checkpoint (a cancellation lands before an
        attempt, never after it), except when the loop has no other task to
        run: then the task retries in C for up to _loop.IDLE_SPIN_NS at once (the
        first time without a checkpoint), which takes a reply on its way within
        a microsecond of its arrival instead of after a trip through the loop.
        """
        h = self._h
        attempt = h._receive_nowait
        spin = self._receive_spin
        tries, until = 0, _monotonic() + SPIN_SECONDS
        while True:
            left = until - _monotonic()
            if tries >= SPIN and left <= 0:
                return None
            tries += 1
            if tries > 1 or spin is None or not loop_idle():
                await checkpoint()
                left = until - _monotonic()
            if h._closed:
                raise h._closed_error()
            if self.orphans:  # its message comes first: the caller adopts it
                return None
            msg = self._stash.take(mtype) if self._stash else None  # stashed meanwhile
            if msg is None:
                if spin is not None and left > 0 and loop_idle():  # as it is now
                    ns = int(left * 1e9)
                    idle_ns = _loop.IDLE_SPIN_NS
                    msg = spin(mtype, ns if ns < idle_ns else idle_ns)
                else:
                    msg = attempt(mtype)
            if msg is not None:
                return msg

    async def _receive_blocking(self, mtype: int) -> Message:
        """An untimed receive when waits cannot be interrupted: the helper blocks
        in the kernel (no polling, no added latency). A cancelled task leaves its
        helper waiting as an orphan; the next receive with the same selection
        adopts it, and a message the orphan takes before that is stashed."""
        h = self._h
        stash = self._stash
        wait = h._receive_wait

        def work(job: _Job[Message]) -> Message | None:
            while not h._closed:
                msg = stash.take(mtype)
                if msg is not None:
                    return msg
                msg = wait(mtype, None)
                if msg is not None:
                    return msg
            return None

        job = _Job(work, mtype)
        self._submit(job)
        return await self._await_blocking(job)

    async def _adopt_orphans(self, mtype: int, end: float | None) -> Message | None:
        """Take over the orphaned receives with this selection, oldest first,
        until one yields a message (None: none left, or the time ran out)."""
        while True:
            job = self._adopt(mtype)
            if job is None:
                return None
            if job.done:
                msg = self._stash.take(mtype)  # it finished: its message was stashed
                if msg is not None:
                    return msg
                continue
            if end is None:
                return await self._await_blocking(job)
            left = end - _monotonic()
            with anyio.move_on_after(left if left > 0 else 0):
                return await self._await_blocking(job)
            return None  # timed out: the job is an orphan again

    async def _await_blocking(self, job: _Job[Message]) -> Message:
        try:
            await job.event.wait()
        except BaseException:
            with job.lock:
                if not job.done:  # leave it waiting: an orphan until adopted
                    job.orphan_stash = self._stash
                    with self._lock:
                        self._orphans.setdefault(job.mtype, []).append(job)
                    raise
            if job.result is not None:  # done as the task was cancelled
                self._stash.put(job.result)
            raise
        if job.error is not None:
            raise job.error
        if job.result is not None:
            return job.result
        raise self._h._closed_error()

    def _adopt(self, mtype: int) -> _Job[Message] | None:
        """Take over an orphaned receive with this selection, if there is one."""
        with self._lock:
            jobs = self._orphans.get(mtype)
            if not jobs:
                return None
            job = jobs.pop(0)
            if not jobs:
                del self._orphans[mtype]
        with job.lock:
            if not job.done:
                job.orphan_stash = None  # its message is the adopter's now
                job.event = anyio.Event()
                job.notify = _notifier(job.event)
        return job

    async def send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None:
        h = self._h
        wait = h._send_wait
        chunk = self.chunk
        end = math.inf if timeout is None else _monotonic() + timeout

        def work(job: _Job[bool]) -> bool:
            while not job.stop and not h._closed:
                left = end - _monotonic()
                if left <= 0:
                    return False
                if wait(data, mtype, priority, left if left < chunk else chunk):
                    return True
            return False

        job: _Job[bool] = _Job(work, mtype)
        self._submit(job)
        try:
            await job.event.wait()
        except anyio.get_cancelled_exc_class():
            await self._stop(job)
            if job.result:
                # Enqueued before the stop took effect: the send happened, so it
                # returns. A cancel scope stays cancelled and raises at the next
                # checkpoint; a plain asyncio Task.cancel() is consumed here.
                return
            raise
        except BaseException:
            await self._stop(job)
            raise
        if job.error is not None:
            raise job.error
        if job.result:
            return
        if h._closed or self._closed:
            raise h._closed_error()
        raise h._full_error(timeout)

    def _submit(self, job: _Job[Any]) -> None:
        helper = self._take()
        with self._lock:
            self._running.add(job)
        helper.submit(job)

    async def _stop(self, job: _Job[Any]) -> None:
        """Make the helper running ``job`` stop and wait until it reported."""
        job.stop = True
        interrupt = self._interrupt
        cancelled = anyio.get_cancelled_exc_class()
        with anyio.CancelScope(shield=True):
            while not job.done:
                if interrupt is not None and job.thread_id:
                    interrupt(job.thread_id)
                # Re-sent until acknowledged: a wake-up sent just before the
                # helper entered the system call is lost.
                with contextlib.suppress(cancelled), anyio.move_on_after(_REPOKE):
                    await job.event.wait()
            await wait_through_cancel(job.event)

    def _wake_receivers(self) -> None:
        """A message was stashed: waiting receives on this handle should look."""
        interrupt = self._interrupt
        if interrupt is None:
            return  # they look at their next chunk boundary
        with self._lock:
            tids = [job.thread_id for job in self._running]
        for tid in tids:
            if tid:
                interrupt(tid)

    # ------------------------------------------------------------------ threads

    def _take(self) -> _Helper:
        with self._lock:
            if self._closed:
                raise self._h._closed_error()
            if self._idle:
                return self._idle.pop()
            helper = _Helper(self)
            self._threads.add(helper)
        helper.start()
        return helper

    def _release(self, helper: _Helper, job: _Job[Any]) -> None:
        with self._lock:
            self._running.discard(job)
            if self._closed:
                helper.quit()
            else:
                self._idle.append(helper)

    def _retire(self, helper: _Helper) -> bool:
        """Called by an idle helper after a while: True if it may exit."""
        with self._lock:
            if helper in self._idle:
                self._idle.remove(helper)
                self._threads.discard(helper)
                return True
            return False

    def close(self) -> None:
        """Stop every helper; the handle's close() then wakes those in a primitive."""
        with self._lock:
            self._closed = True
            for job in self._running:
                job.stop = True
            for helper in self._threads:
                helper.quit()
            tids = [job.thread_id for job in self._running]
        if self._interrupt is not None:
            for tid in tids:
                if tid:
                    self._interrupt(tid)

    async def aclose(self, close_handle: bool) -> None:
        """Close the handle (after :meth:`close`) and wait until every helper
        thread has ended. The handle's close() waits until its waiting threads
        have left their primitive, so it runs in a worker thread."""
        if close_handle:
            await anyio.to_thread.run_sync(self._h.close)
        with self._lock:
            threads = list(self._threads)
            self._threads.clear()
        for helper in threads:
            if helper.is_alive():
                await anyio.to_thread.run_sync(helper.join)

    @property
    def threads(self) -> int:
        """Helper threads alive now (for tests and repr)."""
        with self._lock:
            return len(self._threads)
