"""``unimq.aio.open``."""

from __future__ import annotations

from typing import Any

import anyio.lowlevel

from unimq._errors import UnsupportedOperation
from unimq._open import open as _open_sync
from unimq._url import NETWORK_SCHEMES, QueueURL, parse_url
from unimq.aio._queue import AsyncQueue

__all__ = ["open"]


async def open(
    url: str | QueueURL | None = None,
    *,
    create: bool = False,
    exclusive: bool = False,
    mode: int = 0o600,
    **options: Any,
) -> AsyncQueue:
    """Open the queue at ``url`` for async use; same URL, options and errors
    as :func:`unimq.open`.

    Opening makes only non-blocking system calls (``mq_open``, ``msgget``,
    reading ``/proc``), so it runs in the event loop's thread.
    """
    await anyio.lowlevel.checkpoint()
    parsed = parse_url(url)
    if parsed.scheme in NETWORK_SCHEMES:
        # Every call of a network backend is a round trip to its server: made on
        # the event loop's thread it would block the loop, which unimq.aio never does.
        raise UnsupportedOperation(
            f"unimq.aio does not serve {parsed.scheme}:// queues yet (each of their calls "
            "is a network round trip that would block the event loop); use the sync "
            "handle from a worker thread, e.g. anyio.to_thread.run_sync(q.receive)",
            url=str(parsed),
        )
    handle = _open_sync(parsed, create=create, exclusive=exclusive, mode=mode, **options)
    try:
        return AsyncQueue(handle)
    except BaseException:
        handle.close()
        raise
