"""``redis://``: a queue on a Redis or Valkey server (or cluster), with kernel semantics.

Every operation is one atomic server-side script (see :mod:`unimq_redis._scripts`);
blocked callers wait in BLPOP on their own wake-up list, woken by the script
that changed the queue. See docs/redis.md for URLs, credentials and durability.
"""

from __future__ import annotations

import dataclasses
import errno as E
import math
import os
import secrets
import threading
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import redis
from redis.exceptions import MovedError

from unimq import (
    InvalidURL,
    LimitExceeded,
    QueueExists,
    QueueNotFound,
    QueueRemoved,
    QueueStat,
    UnimqError,
)
from unimq._message import Capability, Message, new_message
from unimq._options import Access, OptionParser, positive_int
from unimq._queue import Queue
from unimq._url import QueueURL, parse_url
from unimq_redis._address import ADDRESS_KEYS, Address, parse_address
from unimq_redis._build import HEADER, extend_messages
from unimq_redis._link import (
    Blocker,
    Link,
    Multi,
    Packed,
    SentinelLink,
    _Failure,
    _read,
    _send,
    bulk,
    make_link,
    pack,
)
from unimq_redis._renew import Renewer, parse_ttl
from unimq_redis._scripts import (
    COMMIT,
    CREATE,
    LAYOUT,
    RECEIVE,
    RECEIVE_MANY,
    REMOVE,
    RENEW,
    SEND,
    SEND_MANY,
    STAT,
)

__all__ = ["DEFAULTS", "RedisQueue", "list_queues"]

#: Limits of a new queue unless options say otherwise.
DEFAULTS = {"max_messages": 100_000, "max_message_size": 1 << 20, "max_bytes": 128 << 20}
#: The largest payload a server takes by default (proto-max-bulk-len, 512 MiB).
BULK_MAX = 512 << 20
# Extra seconds a blocked read waits for the server's BLPOP answer before the
# server counts as unresponsive.
_REPLY_GRACE = 10.0
# One batch script call carries at most this many messages and (unless one
# message alone is larger) this many payload bytes; a longer batch takes more calls.
BATCH_MESSAGES = 1000
BATCH_BYTES = 8 << 20


def _pid() -> int:
    return _PID


def _set_pid() -> None:
    global _PID, _PID_BULK
    _PID = os.getpid()
    _PID_BULK = bulk(_PID)


_PID = os.getpid()
_PID_BULK = bulk(_PID)  # the pid as a packed script argument
os.register_at_fork(after_in_child=_set_pid)
# Packed arguments the hot paths use most: no waiter, mtype selection 0, the
# default tags (mtype 1, priority 0); payloads above _INLINE are sent as they
# are rather than copied into the request.
_NO_WAITER = bulk("")
_SEL_ANY = bulk(0)
_DEFAULT_TAGS = bulk(1) + bulk(0)
_INLINE = 64 << 10


def _keys(name: str) -> tuple[str, tuple[str, ...]]:
    prefix = f"unimq:{{{name}}}"
    suffixes = ("meta", "prios", "types", "rw", "sw")
    return prefix, tuple(f"{prefix}:{s}" for s in suffixes)


def _text(meta: dict[bytes, bytes], key: str) -> str | None:
    value = meta.get(key.encode())
    return None if value is None else value.decode()


def _int(meta: dict[bytes, bytes], key: str) -> int | None:
    value = _text(meta, key)
    return None if value is None else int(value)


def _time(meta: dict[bytes, bytes], key: str) -> datetime | None:
    value = _text(meta, key)
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def _pairs(flat: list[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    """A hash reply (a flat list in RESP2, a map in RESP3) as a dict."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisQueue(Queue):
    """A queue on a Redis/Valkey server; see the module docstring and docs/redis.md."""

    scheme: ClassVar[str] = "redis"
    capabilities: ClassVar[Capability] = (
        Capability.MTYPE | Capability.PRIORITY | Capability.INTERPROCESS | Capability.NATIVE_TIMEOUT
    )
    options: ClassVar[dict[str, OptionParser]] = {
        "max_messages": positive_int,
        "max_message_size": positive_int,
        "max_bytes": positive_int,
        # Seconds: the queue's keys expire unless the creating handle renews them
        # (unimq.temporary("redis://host:port") passes it; only at creation).
        "ttl": parse_ttl,
    }
    address_keys: ClassVar[frozenset[str]] = ADDRESS_KEYS
    attribute_options: ClassVar[frozenset[str]] = frozenset(DEFAULTS)
    temporary_ttl: ClassVar[float | None] = 30.0
    _renewer: Renewer | None = None
    _driver_errors: ClassVar[tuple[type[BaseException], ...]] = (redis.RedisError,)
    #: unimq.aio serves this backend with its own async handle (anyio streams).
    async_opener: ClassVar[str | None] = "unimq_redis._aqueue:open_async"

    def __init__(
        self, url: QueueURL, access: Access, address: Address, link: Link, meta: dict[bytes, bytes]
    ) -> None:
        limits = {k: int(meta[k.encode()]) for k in DEFAULTS}
        super().__init__(url, access, min(limits["max_message_size"], limits["max_bytes"]))
        self._address = address
        self._link = link
        self._limits = limits
        self._gen = meta[b"gen"]
        assert address.name is not None
        self._name = address.name
        self._prefix, self._keys = _keys(address.name)
        self._meta = self._keys[:1]
        # numkeys, the meta key, the prefix and the incarnation: the fixed start
        # of every send and receive script call.
        self._fixed = bulk(1) + bulk(self._keys[0]) + bulk(self._prefix) + bulk(self._gen)
        self._blocker = Blocker()
        self._token = secrets.token_hex(6)
        # The list the last batch receive ended on, (selection, mtype, priority):
        # the next one reads it and commits in one round trip (see take_call).
        self._guess: tuple[int, int, int] | None = None
        self._take_key: tuple[Any, ...] = ()
        self._take: Multi | None = None
        self._multi = True  # False once the server refused MULTI (an ACL without it)
        self._install(self._try_send, self._try_receive, self._wait_send, self._wait_receive)
        self._install_batches(self._try_send_many, self._try_receive_many)

    # ------------------------------------------------------------------ opening

    @classmethod
    def _check_url(cls, url: QueueURL) -> None:
        parse_address(url)

    @classmethod
    def _connect(cls, url: QueueURL) -> tuple[Address, Link]:
        address = parse_address(url)
        return address, make_link(address, str(url))

    @classmethod
    def _open_existing(cls, url: QueueURL, *, access: Access, options: dict[str, Any]) -> Self:
        if "ttl" in options:
            raise InvalidURL(
                f"{url} exists: ttl applies only to a queue this call creates (use "
                "exclusive=True, or unimq.temporary('redis://host:port', ttl=...))",
                url=str(url),
            )
        address, link = cls._connect(url)
        try:
            assert address.name is not None
            meta = _pairs(link.command("open", ("HGETALL", _keys(address.name)[1][0])))
            if b"gen" not in meta:
                raise QueueNotFound(
                    f"{url} does not exist; create it with create=True (or: unimq create URL)",
                    errno=E.ENOENT,
                    url=str(url),
                )
            _check_layout(url, meta)
            return cls(url, access, address, link, meta)
        except BaseException:
            link.close()
            raise

    @classmethod
    def _create(cls, url: QueueURL, *, mode: int, access: Access, options: dict[str, Any]) -> Self:
        address, link = cls._connect(url)
        try:
            assert address.name is not None
            attrs = {**DEFAULTS, **options}
            ttl: float | None = attrs.pop("ttl", None)
            gen = secrets.token_hex(8).encode()
            meta = {
                b"gen": gen,
                **{k.encode(): str(v).encode() for k, v in attrs.items()},
            }
            made = link.run(
                "create",
                CREATE,
                _keys(address.name)[1][:1],
                create_args(gen, attrs, mode, ttl),
            )
            if not made:
                raise QueueExists(
                    f"{url} already exists; open it without exclusive=True or remove it first",
                    errno=E.EEXIST,
                    url=str(url),
                )
            handle = cls(url, access, address, link, meta)
            if ttl is not None:
                handle._renewer = Renewer(handle, ttl)
            return handle
        except BaseException:
            link.close()
            raise

    @classmethod
    def _remove_url(cls, url: QueueURL) -> None:
        address, link = cls._connect(url)
        try:
            assert address.name is not None
            prefix, keys = _keys(address.name)
            if not link.run("remove", REMOVE, keys, (prefix, "")):
                raise QueueNotFound(f"{url} does not exist", errno=E.ENOENT, url=str(url))
        finally:
            link.close()

    @classmethod
    def _preflight(cls, url: QueueURL, options: dict[str, Any]) -> list[str]:
        size = options.get("max_message_size", DEFAULTS["max_message_size"])
        if size > BULK_MAX:
            raise LimitExceeded(
                f"max_message_size={size} is beyond what a redis server takes in one "
                f"string ({BULK_MAX} bytes, proto-max-bulk-len's default); ask for less",
                limit="proto-max-bulk-len",
                url=str(url),
            )
        address, link = cls._connect(url)
        try:
            info = link.command("check", ("INFO", "server"))
        finally:
            link.close()
        text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
        fields = dict(
            line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#"
        )
        product = "valkey" if "valkey_version" in fields else "redis"
        version = fields.get("valkey_version") or fields.get("redis_version", "?")
        attrs = {**DEFAULTS, **options}
        return [
            f"server {address.server} reachable ({product} {version.strip()})",
            f"queue limits: {attrs['max_messages']} messages, {attrs['max_message_size']} "
            f"bytes each, {attrs['max_bytes']} bytes in all",
        ]

    @classmethod
    def _temporary_url(cls, server: str, name: str) -> QueueURL:
        parsed = parse_url(server)
        address = parse_address(parsed, need_name=False)
        if address.name is not None:
            raise InvalidURL(
                f"{parsed} names a queue ({address.name!r}); give unimq.temporary() the "
                "server only (redis://host:port), it makes a unique name there",
                url=str(parsed),
            )
        return _queue_url(parsed, address, name)

    @classmethod
    def _list(cls, url: str | QueueURL) -> list[QueueStat]:
        """The queues on the server ``url`` names: the hook for ``unimq ls redis://host``."""
        return list_queues(url)

    def _attributes(self) -> dict[str, int]:
        return dict(self._limits)

    def __reduce__(self) -> tuple[Any, ...]:
        # The URL (no password) plus the password this handle was opened with, so
        # that the handle reopens in a child process; treat a pickle like the URL.
        return (_reopen, (self._url_text, self._address.password))

    # ------------------------------------------------------------------ primitives

    def _removed_error(self) -> QueueRemoved:
        return QueueRemoved(
            f"{self._url_text} was removed while this handle used it (or the server lost its "
            "data); reopen with create=True",
            errno=E.EIDRM,
            url=self._url_text,
        )

    def _waiter(self) -> str:
        return f"{self._token}.{os.getpid()}.{threading.get_ident()}"

    def _send_script(self, data: bytes, mtype: int, priority: int, waiter: str) -> bool:
        # EVALSHA sha numkeys meta prefix gen data mtype priority pid waiter
        tags = _DEFAULT_TAGS if mtype == 1 and priority == 0 else bulk(mtype) + bulk(priority)
        tail = tags + _PID_BULK + (bulk(waiter) if waiter else _NO_WAITER)
        head = self._fixed + b"$%d\r\n" % len(data)
        rest: bytes | list[bytes]
        if len(data) <= _INLINE:
            rest = head + data + b"\r\n" + tail
        else:
            rest = [head, data, b"\r\n" + tail]
        r = self._link.run_packed("send", Packed(SEND, 11, rest))
        if r == 1:
            return True
        if r == 0:
            return False
        raise self._removed_error()

    def _receive_script(self, mtype: int, waiter: str) -> Message | None:
        # EVALSHA sha numkeys meta prefix gen sel pid waiter
        rest = (
            self._fixed
            + (_SEL_ANY if mtype == 0 else bulk(mtype))
            + _PID_BULK
            + (bulk(waiter) if waiter else _NO_WAITER)
        )
        r = self._link.run_packed("receive", Packed(RECEIVE, 9, rest))
        if r is None:
            return None
        if r == -1:
            raise self._removed_error()
        return new_message((r[0], r[1], r[2]))

    def _try_send(self, data: bytes, mtype: int, priority: int) -> bool:
        return self._send_script(data, mtype, priority, "")

    def _try_receive(self, mtype: int) -> Message | None:
        return self._receive_script(mtype, "")

    def _send_many_chunk(self, batch: list[tuple[bytes, int, int]], n: int) -> tuple[Any, int]:
        """SEND_MANY's arguments for ``batch[n:]`` within the chunk limits, and
        the index after the last message they carry."""
        args: list[Any] = [self._prefix, self._gen, _pid()]
        size = 0
        stop = min(len(batch), n + BATCH_MESSAGES)
        i = n
        while i < stop:
            data, mtype, priority = batch[i]
            size += len(data)
            if size > BATCH_BYTES and i > n:
                break
            args += (data, mtype, priority)
            i += 1
        return tuple(args), i

    def _receive_many_args(self, mtype: int, ask: int) -> tuple[Any, ...]:
        return (self._prefix, self._gen, mtype, _pid(), ask, BATCH_BYTES)

    def _try_send_many(self, batch: list[tuple[bytes, int, int]], start: int) -> int:
        """Send ``batch[start:]`` in as few script calls as the chunk limits allow."""
        n, end = start, len(batch)
        try:
            while n < end:
                args, i = self._send_many_chunk(batch, n)
                r = self._link.run("send", SEND_MANY, self._meta, args)
                if r == -1:
                    raise self._removed_error()
                n += r
                if n < i:
                    break
        except Exception as exc:
            exc.unimq_sent = n - start  # type: ignore[attr-defined]
            raise
        return n - start

    def take_call(self, sel: int, ask: int) -> Multi | None:
        """The read-and-commit transaction (COMMIT) for up to ``ask`` messages of
        selection ``sel`` from the list the last batch ended on; None without a guess."""
        guess = self._guess
        if guess is None or guess[0] != sel or not self._multi:
            return None
        key = (guess, ask, _PID)
        if key == self._take_key:
            return self._take
        _, mt, pr = guess
        lrange = pack(("LRANGE", f"{self._prefix}:l:{pr}:{mt}", 0, ask - 1))
        # EVALSHA sha numkeys meta prefix gen sel pid limit budget pr mt
        rest = (
            self._fixed
            + bulk(sel)
            + _PID_BULK
            + bulk(ask)
            + bulk(BATCH_BYTES)
            + bulk(pr)
            + bulk(mt)
        )
        take = Multi(lrange, Packed(COMMIT, 12, rest))
        self._take_key, self._take = key, take
        return take

    def took(self, replies: list[Any], out: list[Message], ask: int) -> bool | None:
        """Append what a :meth:`take_call` transaction took to ``out``; True if the
        queue may hold more for the selection, None if it took nothing and
        RECEIVE_MANY must be asked (a wrong guess, an error: its call reports it)."""
        began, _, _, done = replies
        if isinstance(began, Exception):
            # MULTI refused (an ACL without it?): LRANGE and COMMIT ran one
            # after the other, not as one; the check below tells if that lost
            # anything. This handle asks RECEIVE_MANY from now on.
            self._multi = False
            entries, r = replies[1], replies[2]
        elif type(done) is list:
            entries, r = done
        else:
            return None  # the transaction did not run (EXECABORT: MOVED, ASK, ...)
        if type(r) is not list:
            if r == -1:
                raise self._removed_error()
            return None
        k = r[0]
        if k <= 0:
            if k == 0:
                return False  # nothing for the selection
            self._guess = None  # another list is first now
            return None
        guess = self._guess
        # the last entry taken: the read and the commit agree (see COMMIT)
        if (
            type(entries) is not list
            or k > len(entries)
            or not guess
            or entries[k - 1][:16] != r[2]
        ):
            raise UnimqError(
                f"receive on {self._url_text}: the server took {k} messages apart from the "
                f"read that should return them (MULTI answered: {began!r}); they are lost. "
                "Allow the redis user MULTI and EXEC",
                url=self._url_text,
            )
        _, mt, pr = guess
        extend_messages(out, entries, 0, k, mt, pr, Message, HEADER)
        if k < ask and r[1] == 1:
            self._guess = None  # the list ended (or another of its priority interleaves)
        return bool(r[1])

    def learn(self, sel: int, reply: Any) -> None:
        """Guess the next batch's list from a RECEIVE_MANY reply: the list it took
        from last, unless lists of one priority interleaved there."""
        runs = reply[0]
        if len(runs) == 3 or runs[-2] != runs[-5]:
            self._guess = (sel, runs[-3], runs[-2])
        else:
            self._guess = None

    def _try_receive_many(self, mtype: int, limit: int) -> list[Message]:
        """Up to ``limit`` messages in as few round trips as the chunk limits allow."""
        out: list[Message] = []
        link = self._link
        try:
            while len(out) < limit:
                ask = min(limit - len(out), BATCH_MESSAGES)
                take = self.take_call(mtype, ask)
                if take is not None:
                    more = self.took(link.command("receive", take), out, ask)
                    if more is not None:
                        if not more:
                            break
                        continue
                # EVALSHA sha numkeys meta prefix gen sel pid limit budget
                rest = (
                    self._fixed
                    + (_SEL_ANY if mtype == 0 else bulk(mtype))
                    + _PID_BULK
                    + bulk(ask)
                    + bulk(BATCH_BYTES)
                )
                r = self._link.run_packed("receive", Packed(RECEIVE_MANY, 10, rest))
                if r == -1:
                    raise self._removed_error()
                if not r:
                    break
                self.learn(mtype, r)
                if not batch_messages(r, out, ask):
                    break
        except Exception:
            if not out:
                raise
        return out

    def _wait_send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> bool:
        if self._closed:
            return False
        waiter = self._waiter()
        if self._send_script(data, mtype, priority, waiter):
            return True
        if not self._block(waiter, timeout, "send"):
            return False
        return self._send_script(data, mtype, priority, "")

    def _wait_receive(self, mtype: int, timeout: float | None) -> Message | None:
        if self._closed:
            return None
        waiter = self._waiter()
        msg = self._receive_script(mtype, waiter)
        if msg is not None:
            return msg
        if not self._block(waiter, timeout, "receive"):
            return None
        return self._receive_script(mtype, "")

    def _block(self, waiter: str, timeout: float | None, op: str) -> bool:
        """Wait in BLPOP on the waiter's wake-up list; False when close() ended it."""
        link = self._link
        server = link.server
        conn = server.get()
        blocker = self._blocker
        try:
            if not blocker.enter(conn):
                return False
            try:
                # A server timeout of 0 means "forever": round up to whole milliseconds.
                seconds = 0.0 if timeout is None else math.ceil(timeout * 1000) / 1000
                _send(conn, ("BLPOP", f"{self._prefix}:w:{waiter}", f"{seconds:.3f}"))
                _read(conn, wait=True, timeout=None if timeout is None else seconds + _REPLY_GRACE)
            finally:
                blocker.leave(conn)
        except _Failure as exc:
            if self._closed:
                return False
            if isinstance(link, SentinelLink):
                link.lost()  # a failover? a spurious wake-up: the retry asks the sentinels
                return True
            raise link.unavailable(f"{op} (waiting)", exc.cause, maybe_done=False) from exc.cause
        except MovedError as exc:
            link.move(server, exc.host, exc.port)  # spurious wake-up; the retry follows it
        except redis.RedisError as exc:
            if not str(exc).startswith("UNBLOCKED"):
                raise link.refused(op, exc) from exc
            # The server changed role (a failover demoted it): a spurious wake-up.
            link.lost()
        finally:
            server.put(conn)
        return not self._closed

    def _stat(self) -> QueueStat:
        r = self._link.run("stat", STAT, self._keys[:2], (self._gen,))
        if r == -1:
            raise self._removed_error()
        count, flat = r
        meta = _pairs(flat)
        return _stat_from(self._url_text, self._name, count, meta)

    def _renew(self) -> bool:
        """Give every key of this temporary queue its expiry again; False once it is gone."""
        return bool(self._link.run("renew", RENEW, self._meta, (self._prefix, self._gen)))

    def _close(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.stop()
        self._blocker.close()
        self._link.close()

    def _remove(self) -> None:
        if not self._link.run("remove", REMOVE, self._keys, (self._prefix, self._gen)):
            raise QueueNotFound(
                f"{self._url_text} was already removed", errno=E.ENOENT, url=self._url_text
            )


def create_args(gen: bytes, attrs: dict[str, Any], mode: int, ttl: float | None) -> tuple[Any, ...]:
    """CREATE's arguments (after the meta key): limits, owner, layout, expiry in ms."""
    return (
        gen,
        attrs["max_messages"],
        attrs["max_message_size"],
        attrs["max_bytes"],
        mode,
        os.geteuid(),
        os.getegid(),
        os.getpid(),
        LAYOUT,
        "" if ttl is None else math.ceil(ttl * 1000),
    )


def batch_messages(reply: Any, out: list[Message], ask: int) -> bool:
    """Append the messages of a RECEIVE_MANY ``reply`` (asked for ``ask``) to
    ``out``; True if the queue may hold more for the same selection."""
    runs, entries, cut = reply
    # Each entry loses its header and becomes a Message (see unimq_redis._build).
    if len(runs) == 3:  # one type and priority: the common case
        extend_messages(out, entries, 0, len(entries), runs[0], runs[1], Message, HEADER)
    else:
        k = 0
        for i in range(0, len(runs), 3):
            mt, pr, n = runs[i], runs[i + 1], runs[i + 2]
            extend_messages(out, entries, k, n, mt, pr, Message, HEADER)
            k += n
    return len(entries) >= ask or bool(cut)


def _check_layout(url: QueueURL, meta: dict[bytes, bytes]) -> None:
    layout = meta.get(b"layout")
    if layout != str(LAYOUT).encode():
        raise UnimqError(
            f"{url} was made by another version of unimq-redis (key layout "
            f"{(layout or b'?').decode(errors='replace')}, this version reads layout {LAYOUT}); "
            "drain it with that version, or remove it (unimq rm URL) and create it again",
            url=str(url),
        )


def _stat_from(url: str, name: str, count: int, meta: dict[bytes, bytes]) -> QueueStat:
    return QueueStat(
        url=url,
        kind="redis",
        name=name,
        messages=count,
        max_messages=_int(meta, "max_messages"),
        max_message_size=_int(meta, "max_message_size"),
        bytes=_int(meta, "bytes"),
        max_bytes=_int(meta, "max_bytes"),
        mode=_int(meta, "mode"),
        uid=_int(meta, "uid"),
        gid=_int(meta, "gid"),
        creator_uid=_int(meta, "uid"),
        creator_gid=_int(meta, "gid"),
        last_send_time=_time(meta, "stime"),
        last_receive_time=_time(meta, "rtime"),
        last_change_time=_time(meta, "ctime"),
        last_send_pid=_int(meta, "spid"),
        last_receive_pid=_int(meta, "rpid"),
    )


def _reopen(url: str, password: str | None) -> Queue:
    """Unpickle a handle: open its URL again, with the password it was opened with."""
    from unimq import open as open_queue

    parsed = parse_url(url)
    if password is not None:
        parsed = dataclasses.replace(parsed, password=password)
    return open_queue(parsed)


def list_queues(url: str | QueueURL) -> list[QueueStat]:
    """Every unimq queue on the server ``url`` names (``redis://host:port``, any db
    given by ``?db=N``); on a cluster, the queues of that node.

    :raises BackendUnavailable: if the server cannot be reached.
    """
    parsed = parse_url(url)
    address = parse_address(parsed, need_name=False)
    base = dataclasses.replace(parsed, query=tuple((k, v) for k, v in parsed.query if k == "db"))
    link = make_link(address, str(base))
    found: list[QueueStat] = []
    try:
        cursor: Any = 0
        names: list[str] = []
        while True:
            cursor, keys = link.command(
                "ls", ("SCAN", cursor, "MATCH", "unimq:{*}:meta", "COUNT", 1000)
            )
            names += [k.decode()[len("unimq:{") : -len("}:meta")] for k in keys]
            if int(cursor) == 0:
                break
        for name in sorted(set(names)):
            qurl = _queue_url(base, address, name)
            r = link.command("stat", ("HGETALL", f"unimq:{{{name}}}:meta"))
            meta = _pairs(r)
            if b"gen" in meta:
                count = _int(meta, "count")
                found.append(_stat_from(str(qurl), name, 0 if count is None else count, meta))
    finally:
        link.close()
    return found


def _queue_url(base: QueueURL, address: Address, name: str) -> QueueURL:
    if address.socket_path is not None:
        query = (("queue", name), *base.query)
        return dataclasses.replace(base, query=query)
    authority = base.target.partition("/")[0]
    if address.service is not None:
        return dataclasses.replace(base, target=f"{authority}/{address.service}/{name}")
    return dataclasses.replace(base, target=f"{authority}/{name}")
