"""``AsyncTypedQueue``: typed values over an :class:`AsyncQueue`.

The binding, codecs, checks and errors are the sync typed layer's
(:class:`unimq.TypedQueue` over the same handle); only the waiting is async.
Forwarding to a dead-letter queue (rare: an undecodable message) runs in a
worker thread, since that queue may be any sync handle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.to_thread

from unimq._errors import DecodeError, QueueEmpty
from unimq._message import Message
from unimq._waiting import Deadline
from unimq.typed._queue import TypedQueue

if TYPE_CHECKING:
    from pydantic import BaseModel

    from unimq._queue import Queue
    from unimq.aio._queue import AsyncQueue
    from unimq.typed._codecs import Codec

__all__ = ["AsyncTypedQueue"]

M = TypeVar("M")


class AsyncTypedQueue(Generic[M]):
    """A typed view of an :class:`AsyncQueue`; made by :meth:`AsyncQueue.typed`.

    Same behaviour as :class:`unimq.TypedQueue`, as coroutines.
    """

    def __init__(
        self,
        queue: AsyncQueue,
        model: type[M] | Mapping[int, type[BaseModel]] | Any,
        *,
        codec: str | Codec[Any] = "json",
        mtype: int | None = None,
        dead_letter: str | Queue | None = None,
    ) -> None:
        self.queue = queue
        self._sync: TypedQueue[M] = TypedQueue(
            queue._h, model, codec=codec, mtype=mtype, dead_letter=dead_letter
        )

    async def send(
        self,
        value: M,
        *,
        mtype: int | None = None,
        priority: int = 0,
        timeout: float | None = None,
    ) -> None:
        """Encode ``value`` and send it; as :meth:`unimq.TypedQueue.send`."""
        data, tag = self._sync._payload(value, mtype)
        await self.queue.send(data, mtype=tag, priority=priority, timeout=timeout)

    async def send_many(self, values: Iterable[M], *, timeout: float | None = None) -> int:
        """Encode every value first (a bad one sends nothing), then send them in
        order; as :meth:`unimq.TypedQueue.send_many` (``QueueFull.sent``)."""
        return await self.queue.send_many(self._sync._batch(values), timeout=timeout)

    async def receive(self, model: type[M] | None = None, *, timeout: float | None = None) -> M:
        """Receive and decode one value; as :meth:`unimq.TypedQueue.receive`."""
        return (await self.receive_message(model, timeout=timeout))[0]

    async def receive_message(
        self, model: type[M] | None = None, *, timeout: float | None = None
    ) -> tuple[M, Message]:
        """Like :meth:`receive`, also returning the raw :class:`unimq.Message`."""
        t = self._sync
        select = t._select if model is None else t._mtype_for_model(model)
        if t._dead_letter is None:
            msg = await self.queue.receive(mtype=select, timeout=timeout)
            return t._decode(msg), msg
        deadline = Deadline(timeout)
        while True:
            msg = await self.queue.receive(mtype=select, timeout=deadline.remaining())
            try:
                return t._decode(msg), msg
            except DecodeError as exc:
                await self._forward(exc)
                if deadline.expired():
                    raise QueueEmpty(
                        f"only undecodable messages arrived in {self.queue.url} within "
                        f"{timeout} s (dead-lettered)",
                        url=self.queue.url,
                    ) from None

    async def receive_many(
        self, max_messages: int, model: type[M] | None = None, *, timeout: float | None = None
    ) -> list[M]:
        """Wait (per ``timeout``) for the first value, then take what is already
        queued, up to ``max_messages``; as :meth:`unimq.TypedQueue.receive_many`
        (an undecodable payload raises :class:`unimq.DecodeError` with
        ``.received`` every raw message of the batch, or goes to the
        dead-letter queue)."""
        t = self._sync
        select = t._select if model is None else t._mtype_for_model(model)
        decode_all = t._batch_decoder()
        if decode_all is not None:
            return decode_all(
                await self.queue.receive_many(max_messages, mtype=select, timeout=timeout)
            )
        deadline = Deadline(timeout)
        while True:
            msgs = await self.queue.receive_many(
                max_messages, mtype=select, timeout=deadline.remaining()
            )
            values, bad = t._split_batch(msgs)
            for exc in bad:
                await self._forward(exc)
            if values:
                return values

    async def _forward(self, error: DecodeError) -> None:
        # The dead-letter queue is a sync handle (or URL): its send may wait.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._sync._forward, error)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the bound type(s); as :meth:`unimq.TypedQueue.json_schema`."""
        return self._sync.json_schema()

    async def aclose(self) -> None:
        """Close the underlying handle (and a dead-letter queue opened from a URL)."""
        await self.queue.aclose()
        dlq = self._sync._dlq
        if dlq is not None and isinstance(self._sync._dead_letter, str):
            dlq.close()

    async def __aenter__(self) -> AsyncTypedQueue[M]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncTypedQueue[M]:
        return self

    async def __anext__(self) -> M:
        from unimq._errors import QueueClosed

        try:
            return await self.receive()
        except QueueClosed:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return repr(self._sync).replace("<unimq.TypedQueue", "<unimq.aio.AsyncTypedQueue", 1)
