"""Async access to every unimq queue, for asyncio and trio (through anyio).

::

    import unimq.aio

    async with await unimq.aio.open("posix:///orders", create=True) as q:
        await q.send(b"hello", timeout=1)
        msg = await q.receive(timeout=1)

Same URLs, options, semantics, errors and timeouts as :mod:`unimq`; no call
blocks the event loop beyond a non-blocking system call, and cancellation
never loses a message. See the "Async" page of the docs.
"""

from unimq.aio._open import open
from unimq.aio._queue import AsyncQueue
from unimq.aio._typed import AsyncTypedQueue

__all__ = ["AsyncQueue", "AsyncTypedQueue", "open"]
