"""``unimq.aio.open``."""

from __future__ import annotations

from typing import Any

import anyio.lowlevel

from unimq._open import open as _open_sync
from unimq._url import QueueURL
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
    handle = _open_sync(url, create=create, exclusive=exclusive, mode=mode, **options)
    try:
        return AsyncQueue(handle)
    except BaseException:
        handle.close()
        raise
