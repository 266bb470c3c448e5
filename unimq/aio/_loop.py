"""Event-loop plumbing shared by the waiting strategies (asyncio and trio, through anyio).

- :func:`loop_caller` gives a thread-safe "run this soon in the event loop" for
  the running loop (helper threads use it to wake the task that waits for them).
- :func:`checkpoint` is ``anyio.lowlevel.checkpoint`` without its backend
  lookup on asyncio (the hot paths pay it every few calls).
- :func:`wait_through_cancel` waits for an event while cancellation is pending,
  so a cancelled operation can learn what its helper thread did.
- :func:`loop_idle` tells whether any other task of the running loop is
  ready to run (a task with nothing to wait for may then retry a
  non-blocking call briefly instead of handing its wait to a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import anyio
import anyio.from_thread
import anyio.lowlevel

__all__ = [
    "IDLE_SPIN_NS",
    "CallSoon",
    "checkpoint",
    "loop_caller",
    "loop_idle",
    "wait_through_cancel",
]

#: Schedules a callable in the event loop's thread; callable from any thread,
#: never blocks, and does nothing once the loop has finished.
CallSoon = Callable[[Callable[[], object]], None]


_running_asyncio_loop = asyncio._get_running_loop
_asyncio_sleep = asyncio.sleep
_anyio_checkpoint = anyio.lowlevel.checkpoint


async def checkpoint() -> None:
    """A cancellation point and a trip through the event loop: exactly
    ``anyio.lowlevel.checkpoint`` (on asyncio that is ``asyncio.sleep(0)``, on
    trio ``trio.lowlevel.checkpoint``), minus its look-up of the running
    backend (about 0.7 us on trio)."""
    if _running_asyncio_loop() is not None:
        await _asyncio_sleep(0)
        return
    global _other_checkpoint
    other = _other_checkpoint
    if other is None:
        try:  # anyio runs on asyncio or trio: not asyncio, so trio
            import trio.lowlevel  # only under trio

            other = trio.lowlevel.checkpoint
        except ImportError:  # pragma: no cover (another backend of a later anyio)
            other = _anyio_checkpoint
        _other_checkpoint = other
    await other()


#: The checkpoint of the event loop that is not asyncio, once looked up.
_other_checkpoint: Callable[[], Awaitable[None]] | None = None


def loop_idle() -> bool:
    """True when no other task of the running loop is ready to run now.

    asyncio: its queue of ready callbacks is empty (``_ready``; an event loop
    without one, such as uvloop, is never called idle). trio: no task is in
    its run queue or in the batch it is running (a task there has a pending
    ``_next_send_fn``); with more than TRIO_SCAN tasks, or a trio without
    these internals, the loop is never called idle.
    """
    loop = _running_asyncio_loop()
    if loop is not None:
        ready = getattr(loop, "_ready", None)
        return ready is not None and not ready
    return _trio_idle()


#: The longest a task retries a non-blocking receive in one go (in C) when its
#: event loop has no other task to run: other tasks and I/O wait at most this long.
IDLE_SPIN_NS = 5_000

#: trio is only called idle with at most this many tasks (they are looked at).
TRIO_SCAN = 64


def _trio_idle() -> bool:
    global _trio_context
    context = _trio_context
    if context is None:
        try:
            from trio._core._run import GLOBAL_RUN_CONTEXT  # only under trio
        except ImportError:  # pragma: no cover (a trio without that module)
            return False
        context = _trio_context = GLOBAL_RUN_CONTEXT
    runner = getattr(context, "runner", None)
    runq = getattr(runner, "runq", None)
    tasks = getattr(runner, "tasks", None)
    if runq is None or tasks is None or runq or len(tasks) > TRIO_SCAN:
        return False
    current = getattr(context, "task", None)
    for task in tasks:
        if task is not current and getattr(task, "_next_send_fn", True) is not None:
            return False  # picked for this batch, not run yet (or unknown)
    return True


#: trio's per-thread run context, once looked up.
_trio_context: object = None


def loop_caller() -> CallSoon:
    """A thread-safe, non-blocking way to run a callable in the running loop."""
    token = anyio.lowlevel.current_token()
    native = token.native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        loop = native

        def call_asyncio(fn: Callable[[], object]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(fn)

        return call_asyncio
    run_sync_soon = getattr(native, "run_sync_soon", None)
    if run_sync_soon is not None:  # trio's TrioToken

        def call_trio(fn: Callable[[], object]) -> None:
            with contextlib.suppress(RuntimeError):  # trio.RunFinishedError
                run_sync_soon(fn)

        return call_trio

    def call_other(fn: Callable[[], object]) -> None:  # pragma: no cover (other backends)
        with contextlib.suppress(RuntimeError):
            anyio.from_thread.run_sync(fn, token=token)

    return call_other


async def wait_through_cancel(event: anyio.Event) -> None:
    """Wait for ``event`` even though the task is being cancelled.

    Used only after cancellation was requested, to wait the short time a helper
    thread needs to report what it did. An anyio shield protects against cancel
    scopes; a plain asyncio ``Task.cancel()`` pierces shields, so such extra
    cancellations are absorbed here (the caller re-raises the original one).
    """
    cancelled = anyio.get_cancelled_exc_class()
    with anyio.CancelScope(shield=True):
        while not event.is_set():
            with contextlib.suppress(cancelled):
                await event.wait()
