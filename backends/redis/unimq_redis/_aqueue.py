"""The async face of a ``redis://`` queue, for :mod:`unimq.aio` (asyncio and trio).

:func:`unimq.aio.open` finds it through ``RedisQueue.async_opener``. The
handle runs the sync backend's scripts (same keys, waiter registration and
errors) over :class:`~unimq_redis._alink.ALink`; its sync
:class:`~unimq_redis.RedisQueue` is built without ever connecting and serves
only for the checks, the URL and the typed layer.

Cancellation (see docs/async.md):

- every script round trip is shielded, so a request that left always has its
  reply read. A receive that took a message and was cancelled meanwhile
  hands the message to the next receive on this handle (the stash), never
  back into the queue (that would reorder it);
- waiting is ``BLPOP`` on the waiter's wake-up list, which takes nothing: a
  cancelled wait just drops its connection;
- a cancelled send raised (nothing enqueued) or returned (enqueued once).
"""

from __future__ import annotations

import errno as E
import logging
import math
import secrets
import sys
import time
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.lowlevel

from unimq._errors import InvalidURL, LimitExceeded, QueueExists, QueueNotFound, UnimqError
from unimq._message import Message, QueueStat, new_message
from unimq._options import Access, check_timeout
from unimq._queue import WAIT_CHUNK, _as_bytes, _index
from unimq._url import QueueURL
from unimq.aio._helper import Stash
from unimq.aio._loop import wait_through_cancel
from unimq.aio._queue import AsyncQueue
from unimq_redis._address import parse_address
from unimq_redis._alink import ALink
from unimq_redis._link import Link, make_link
from unimq_redis._queue import (
    BATCH_MESSAGES,
    BULK_MAX,
    DEFAULTS,
    RedisQueue,
    _check_layout,
    _keys,
    _pairs,
    _pid,
    _stat_from,
    batch_messages,
    create_args,
)
from unimq_redis._renew import Renewer
from unimq_redis._scripts import (
    CREATE,
    RECEIVE,
    RECEIVE_MANY,
    REMOVE,
    RETURN,
    SEND,
    SEND_MANY,
    STAT,
)

__all__ = ["AsyncRedisQueue", "open_async"]

_log = logging.getLogger("unimq.queue")
_monotonic = time.monotonic
_checkpoint_if_cancelled = anyio.lowlevel.checkpoint_if_cancelled
_CREATE_RACE_TRIES = 100


class AsyncRedisQueue(AsyncQueue):
    """An async handle on a ``redis://`` queue; see the module docstring.

    Same methods as :class:`unimq.aio.AsyncQueue`: waiting is done by the
    server (``BLPOP``), with no thread and no polling.
    """

    def __init__(self, handle: RedisQueue, link: ALink) -> None:
        # Not AsyncQueue.__init__: that picks a kernel waiting strategy
        # (descriptor or helper thread); this handle waits on the server.
        self._h = handle
        self._r = handle
        self._link = link
        link.closed_error = handle._closed_error
        self._stash = Stash()
        self._stashed = self._stash._items
        self._calls = 0
        #: The cancel scopes of the tasks waiting in BLPOP (close() cancels them)
        #: and whether each waits to receive (a stashed message wakes those).
        self._waits: dict[anyio.CancelScope, bool] = {}
        self._free_ids: list[str] = []
        self._ids = 0
        #: Calls between taking a message off the server and handing it to
        #: their caller or the stash; aclose() waits for them.
        self._busy = 0
        self._idle: anyio.Event | None = None

    @property
    def waits_by(self) -> str:
        """``"server"``: blocked calls wait in BLPOP on the redis server."""
        return "server"

    def __repr__(self) -> str:
        state = " [closed]" if self._h.closed else ""
        return f"<unimq.aio.AsyncQueue {self._h.url!r}{state}>"

    # ------------------------------------------------------------------ waiter ids

    def _take_id(self) -> str:
        if self._free_ids:
            return self._free_ids.pop()
        self._ids += 1
        return f"{self._r._token}.{_pid()}.a{self._ids}"

    def _stash_put(self, msg: Message) -> None:
        self._stash.put(msg)
        for scope, receiving in list(self._waits.items()):
            if receiving:  # let waiting receives look at the stash
                scope.cancel()

    # ------------------------------------------------------------------ scripts

    async def _try_send(self, data: bytes, mtype: int, priority: int, waiter: str) -> bool:
        r = self._r
        reply, absorbed = await self._link.run(
            "send", SEND, r._meta, (r._prefix, r._gen, data, mtype, priority, _pid(), waiter)
        )
        if reply == 1:
            # Enqueued: the send happened, so it returns (an absorbed native
            # cancel is consumed, as the helper-thread waiter does).
            return True
        if absorbed is not None:
            raise absorbed
        if reply == 0:
            return False
        raise r._removed_error()

    def _leave(self) -> None:
        self._busy -= 1
        if not self._busy and self._idle is not None:
            self._idle.set()

    async def _try_receive(self, mtype: int, waiter: str) -> Message | None:
        self._busy += 1
        try:
            return await self._try_receive_once(mtype, waiter)
        finally:
            self._leave()

    async def _try_receive_once(self, mtype: int, waiter: str) -> Message | None:
        r = self._r
        reply, absorbed = await self._link.run(
            "receive", RECEIVE, r._meta, (r._prefix, r._gen, mtype, _pid(), waiter)
        )
        if reply == -1:
            if absorbed is not None:
                raise absorbed
            raise r._removed_error()
        msg = None if reply is None else new_message((reply[0], reply[1], reply[2]))
        if absorbed is not None:
            if msg is not None:
                self._stash_put(msg)
            raise absorbed
        if msg is not None:
            try:
                await _checkpoint_if_cancelled()
            except anyio.get_cancelled_exc_class():
                self._stash_put(msg)  # cancelled while the script ran: the next receive's
                raise
        return msg

    async def _block(self, waiter: str, left: float | None, op: str, receiving: bool) -> None:
        """Wait in BLPOP on the waiter's list (at most ``left`` seconds)."""
        r = self._r
        if r._closed:
            raise r._closed_error()
        if left is None or left > WAIT_CHUNK:
            left = None if left is None else WAIT_CHUNK
        # A server timeout of 0 means "forever": round up to whole milliseconds.
        seconds = 0.0 if left is None else math.ceil(left * 1000) / 1000
        with anyio.CancelScope() as scope:
            self._waits[scope] = receiving
            try:
                await self._link.block(op, f"{r._prefix}:w:{waiter}", seconds)
            finally:
                del self._waits[scope]
        if r._closed:
            raise r._closed_error()

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
        await _checkpoint_if_cancelled()
        h = self._r
        if h._closed:
            raise h._closed_error()
        if h._access == "r":
            h._refuse()
        if type(data) is not bytes:
            data = _as_bytes(data)
        if type(mtype) is not int or type(priority) is not int or mtype != 1 or priority != 0:
            mtype, priority = h._check_send_tags(mtype, priority)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if len(data) > h._max_size:
            h._check_size(len(data))
        end = None if timeout is None else _monotonic() + timeout
        await self._send(data, mtype, priority, timeout, end)

    async def _send(
        self, data: bytes, mtype: int, priority: int, timeout: float | None, end: float | None
    ) -> None:
        h = self._r
        if timeout == 0:
            if not await self._try_send(data, mtype, priority, ""):
                raise h._full_error(None)
            return
        waiter = self._take_id()
        try:
            while True:
                if h._closed:
                    raise h._closed_error()
                if await self._try_send(data, mtype, priority, waiter):
                    return
                left = None if end is None else end - _monotonic()
                if left is not None and left <= 0:
                    raise h._full_error(timeout)
                await self._block(waiter, left, "send", False)
        finally:
            self._free_ids.append(waiter)

    async def receive(self, *, mtype: int = 0, timeout: float | None = None) -> Message:
        """Receive one message; as :meth:`unimq.Queue.receive`.

        If cancelled, it took nothing from the queue, or the message it took
        is returned by the next receive on this handle.
        """
        await _checkpoint_if_cancelled()
        h = self._r
        if h._closed:
            raise h._closed_error()
        if h._access == "w":
            h._refuse()
        if type(mtype) is not int or mtype != 0:
            mtype = h._check_receive_mtype(mtype)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if self._stashed:
            msg = self._stash.take(mtype)
            if msg is not None:
                return msg
        if timeout == 0:
            msg = await self._try_receive(mtype, "")
            if msg is None:
                raise h._empty_error(None)
            return msg
        end = None if timeout is None else _monotonic() + timeout
        waiter = self._take_id()
        try:
            while True:
                if h._closed:
                    raise h._closed_error()
                msg = await self._try_receive(mtype, waiter)
                if msg is not None:
                    return msg
                left = None if end is None else end - _monotonic()
                if left is not None and left <= 0:
                    raise h._empty_error(timeout)
                await self._block(waiter, left, "receive", True)
                if self._stashed:
                    msg = self._stash.take(mtype)
                    if msg is not None:
                        return msg
        finally:
            self._free_ids.append(waiter)

    async def send_many(
        self,
        items: Iterable[bytes | bytearray | memoryview | Message],
        *,
        timeout: float | None = None,
    ) -> int:
        """Send ``items`` in order; as :meth:`unimq.Queue.send_many` (one deadline
        for the batch, ``QueueFull.sent`` when it passes after k messages).
        A cancelled batch has sent a prefix of the items: use ``timeout``
        rather than cancellation when the count matters.

        :return: the number of messages sent (all of them).
        """
        await _checkpoint_if_cancelled()
        h = self._r
        if h._closed:
            raise h._closed_error()
        if h._access == "r":
            h._refuse()
        if timeout is not None:
            timeout = check_timeout(timeout)
        batch = [h._batch_item(item) for item in items]  # all checked first: nothing sent
        end = None if timeout is None else _monotonic() + timeout
        sent, total = 0, len(batch)
        try:
            while sent < total:
                if h._closed:
                    raise h._closed_error()
                # As many as fit, in one script call per chunk ...
                args, stop = h._send_many_chunk(batch, sent)
                reply, absorbed = await self._link.run("send", SEND_MANY, h._meta, args)
                if reply == -1:
                    if absorbed is not None:
                        raise absorbed
                    raise h._removed_error()
                sent += reply
                if absorbed is not None:
                    raise absorbed
                if sent < stop:
                    # ... and when the queue is full, the next one waits (per the
                    # batch's deadline) as a single send does.
                    data, mtype, priority = batch[sent]
                    await self._send(data, mtype, priority, timeout, end)
                    sent += 1
            return sent
        except UnimqError as exc:
            exc.sent = sent
            raise

    async def receive_many(
        self, max_messages: int, *, mtype: int = 0, timeout: float | None = None
    ) -> list[Message]:
        """Wait (per ``timeout``) for the first message, then take what is
        already queued, up to ``max_messages``, without waiting again.

        If cancelled while taking the rest, every message taken goes to the
        next receives on this handle, in order.

        :return: 1..max_messages messages, in the order single receives
            would have returned them.
        :raises QueueEmpty: if no (matching) message arrived in time.
        """
        if type(max_messages) is not int:
            max_messages = _index("max_messages", max_messages)
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        max_messages = min(max_messages, sys.maxsize)
        out = [await self.receive(mtype=mtype, timeout=timeout)]
        h = self._r
        mtype = h._check_receive_mtype(mtype) if mtype else 0  # valid: receive checked it
        stash = self._stash
        while stash and len(out) < max_messages:
            msg = stash.take(mtype)
            if msg is None:
                break
            out.append(msg)
        self._busy += 1
        try:
            return await self._receive_rest(out, mtype, max_messages)
        finally:
            self._leave()

    async def _receive_rest(
        self, out: list[Message], mtype: int, max_messages: int
    ) -> list[Message]:
        h = self._r
        cancelled: BaseException | None = None
        while len(out) < max_messages and not h._closed:
            ask = min(max_messages - len(out), BATCH_MESSAGES)
            try:
                take = h.take_call(mtype, ask)
                if take is not None:
                    replies, cancelled = await self._link.request("receive", take)
                    more = h.took(replies, out, ask)
                    if more is not None:
                        if cancelled is not None or not more:
                            break
                        continue
                    if cancelled is not None:
                        break
                reply, cancelled = await self._link.run(
                    "receive", RECEIVE_MANY, h._meta, h._receive_many_args(mtype, ask)
                )
            except UnimqError:
                break  # the messages taken are returned; the next call reports the error
            if not reply or reply == -1:
                break
            h.learn(mtype, reply)
            if not batch_messages(reply, out, ask) or cancelled is not None:
                break
        if cancelled is None:
            try:
                await _checkpoint_if_cancelled()
            except anyio.get_cancelled_exc_class() as exc:
                cancelled = exc
        if cancelled is not None:
            for msg in out:
                self._stash_put(msg)
            raise cancelled
        return out

    # ------------------------------------------------------------------ queue-level operations

    async def stat(self) -> QueueStat:
        """The queue's current state; as :meth:`unimq.Queue.stat`."""
        await _checkpoint_if_cancelled()
        h = self._r
        if h._closed:
            raise h._closed_error()
        reply, absorbed = await self._link.run("stat", STAT, h._keys[:2], (h._gen,))
        if absorbed is not None:
            raise absorbed
        if reply == -1:
            raise h._removed_error()
        count, flat = reply
        return _stat_from(h._url_text, h._name, count, _pairs(flat))

    async def remove(self, *, missing_ok: bool = False) -> None:
        """Destroy the queue; the handle stays open. As :meth:`unimq.Queue.remove`.
        Tasks waiting on the queue through any handle wake with
        :class:`unimq.QueueRemoved`."""
        await _checkpoint_if_cancelled()
        h = self._r
        if h._closed:
            raise h._closed_error()
        reply, absorbed = await self._link.run("remove", REMOVE, h._keys, (h._prefix, h._gen))
        if reply:
            _log.info("removed %s", h._url_text)
        if absorbed is not None:
            raise absorbed
        if not reply and not missing_ok:
            raise QueueNotFound(
                f"{h._url_text} was already removed", errno=E.ENOENT, url=h._url_text
            )

    async def aclose(self) -> None:
        """Close the handle (idempotent). Tasks waiting on it raise
        :class:`unimq.QueueClosed`; its connections are closed when this returns."""
        h = self._r
        if not h.closed:
            h.close()  # no connection of its own: only marks it closed
            for scope in list(self._waits):
                scope.cancel()
        with anyio.CancelScope(shield=True):
            if self._busy:  # a script that took a message is being answered
                self._idle = anyio.Event()
                await wait_through_cancel(self._idle)
            if self._stashed:
                await self._return_stash()
            await self._link.aclose()

    async def _return_stash(self) -> None:
        """Put the messages cancelled receives handed on back at the head of the
        queue (nobody can receive them from a closed handle)."""
        r = self._r
        returned = 0
        # Newest first: each goes in at the head, so the oldest ends up first.
        while self._stashed:
            msg = self._stashed[-1]
            try:
                reply, _ = await self._link.run(
                    "close",
                    RETURN,
                    r._meta,
                    (r._prefix, r._gen, msg.data, msg.mtype, msg.priority),
                )
            except UnimqError as exc:
                _log.warning(
                    "closing %s: %d message(s) a cancelled receive took could not be "
                    "put back and are lost (%s)",
                    r._url_text,
                    len(self._stashed),
                    exc,
                )
                break
            self._stashed.pop()
            if reply == 1:
                returned += 1
            else:  # -1: the queue was removed meanwhile; the rest have nowhere to go
                _log.warning(
                    "closing %s: the queue was removed; %d message(s) a cancelled receive "
                    "took are dropped with it",
                    r._url_text,
                    len(self._stashed) + 1,
                )
                break
        if returned:
            _log.info(
                "closing %s: put %d message(s) taken by cancelled receives back at the "
                "head of the queue",
                r._url_text,
                returned,
            )
        self._stashed.clear()


# ---------------------------------------------------------------------- opening


async def open_async(
    url: QueueURL,
    *,
    create: bool,
    exclusive: bool,
    mode: int,
    access: Access,
    options: dict[str, Any],
) -> AsyncRedisQueue:
    """Open or create the queue at ``url`` without blocking the event loop:
    the open-or-create loop of :meth:`unimq.Queue._open_queue`, in async."""
    address = parse_address(url)
    assert address.name is not None
    if "ttl" in options and not create:
        raise _ttl_on_existing(url)
    if address.sentinels:
        # Asking the sentinels for the primary is a blocking round trip: off the loop.
        link = await anyio.to_thread.run_sync(make_link, address, str(url))
    else:
        link = Link(address, str(url))  # the address and error texts; never connects
    alink = ALink(link)
    try:
        meta_key = _keys(address.name)[1][:1]
        meta: dict[bytes, bytes] | None = None
        opened = False
        if create:
            size = options.get("max_message_size", DEFAULTS["max_message_size"])
            too_large = size > BULK_MAX
            if too_large and exclusive:
                raise _bulk_limit(url, size)
            for _ in range(_CREATE_RACE_TRIES):
                if not too_large:
                    meta = await _create(alink, url, meta_key, mode, options)
                    if meta is not None:
                        _log.info("created %s (mode 0o%03o)", url, mode)
                        break
                    if exclusive:
                        raise QueueExists(
                            f"{url} already exists; open it without exclusive=True or "
                            "remove it first",
                            errno=E.EEXIST,
                            url=str(url),
                        )
                meta = await _existing(alink, url, meta_key)
                if meta is not None:
                    if "ttl" in options:
                        raise _ttl_on_existing(url)
                    opened = True
                    break
                if too_large:
                    raise _bulk_limit(url, size)
            else:
                raise UnimqError(
                    f"{url} was created and removed by other processes {_CREATE_RACE_TRIES} "
                    "times while this process tried to open it; try again",
                    url=str(url),
                )
        else:
            meta = await _existing(alink, url, meta_key)
            opened = True
            if meta is None:
                raise QueueNotFound(
                    f"{url} does not exist; create it with create=True (or: unimq create URL)",
                    errno=E.ENOENT,
                    url=str(url),
                )
        assert meta is not None
        handle = RedisQueue(url, access, address, link, meta)
        if opened:
            handle._warn_mismatch(options)
        elif options.get("ttl") is not None:
            # Renewed by the sync handle's daemon thread (its own connection).
            handle._renewer = Renewer(handle, options["ttl"])
        return AsyncRedisQueue(handle, alink)
    except BaseException:
        await alink.aclose()
        link.close()
        raise


def _bulk_limit(url: QueueURL, size: int) -> LimitExceeded:
    return LimitExceeded(
        f"max_message_size={size} is beyond what a redis server takes in one "
        f"string ({BULK_MAX} bytes, proto-max-bulk-len's default); ask for less",
        limit="proto-max-bulk-len",
        url=str(url),
    )


def _ttl_on_existing(url: QueueURL) -> InvalidURL:
    return InvalidURL(
        f"{url}: ttl applies only to a queue this call creates (use create=True, exclusive=True)",
        url=str(url),
    )


async def _existing(
    alink: ALink, url: QueueURL, meta_key: tuple[str, ...]
) -> dict[bytes, bytes] | None:
    reply, absorbed = await alink.request("open", ("HGETALL", meta_key[0]))
    if absorbed is not None:
        raise absorbed
    meta = _pairs(reply)
    if b"gen" not in meta:
        return None
    _check_layout(url, meta)
    return meta


async def _create(
    alink: ALink, url: QueueURL, meta_key: tuple[str, ...], mode: int, options: dict[str, Any]
) -> dict[bytes, bytes] | None:
    attrs = {**DEFAULTS, **options}
    ttl: float | None = attrs.pop("ttl", None)
    gen = secrets.token_hex(8).encode()
    made, absorbed = await alink.run("create", CREATE, meta_key, create_args(gen, attrs, mode, ttl))
    if absorbed is not None:
        raise absorbed
    if not made:
        return None
    return {b"gen": gen, **{k.encode(): str(v).encode() for k, v in attrs.items()}}
