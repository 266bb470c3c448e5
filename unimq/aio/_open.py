"""``unimq.aio.open``."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.lowlevel

from unimq._errors import UnsupportedOperation
from unimq._open import open as _open_sync
from unimq._open import prepare_open
from unimq._registry import get_backend
from unimq._url import NETWORK_SCHEMES, QueueURL, parse_url
from unimq.aio._queue import AsyncQueue

__all__ = ["open"]


def _async_opener(url: QueueURL) -> Callable[..., Awaitable[AsyncQueue]] | None:
    """The backend's own async opener (``Queue.async_opener``), if it has one.

    Only network schemes are looked up: the kernel and memory backends are
    served by driving their sync handle's non-blocking primitives.
    """
    if url.scheme not in NETWORK_SCHEMES:
        return None
    ref = get_backend(url.scheme).async_opener
    if ref is None:
        return None
    module, _, name = ref.partition(":")
    opener: Callable[..., Awaitable[AsyncQueue]] = getattr(importlib.import_module(module), name)
    return opener


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
    opener = _async_opener(parsed)
    if opener is not None:
        # The backend serves async itself (a network backend: anyio streams).
        _, base, merged = prepare_open(
            parsed, create=create, exclusive=exclusive, mode=mode, **options
        )
        access = merged.pop("access", "rw")
        on_full = merged.pop("on_full", "wait")
        merged.pop("keep", None)
        if on_full != "wait":
            raise UnsupportedOperation(
                f"unimq.aio does not apply on_full={on_full!r} to {parsed.scheme}:// queues; "
                "open the queue with unimq.open for that policy, or send with a timeout",
                url=str(base),
            )
        aqueue: AsyncQueue = await opener(
            base,
            create=bool(create),
            exclusive=bool(exclusive),
            mode=mode,
            access=access,
            options=merged,
        )
        return aqueue
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
