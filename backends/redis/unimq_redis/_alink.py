"""Async connections to a redis server on anyio streams (asyncio and trio).

redis-py's asyncio client cannot serve trio, so the async handle talks RESP
itself: commands are packed by :func:`unimq_redis._link.pack` and replies
parsed by hiredis's transport-agnostic reader, fed the bytes an anyio stream
received. Addresses, cluster redirections and the wording of every error are
the sync :class:`~unimq_redis._link.Link`'s (the async link wraps the
handle's own), so both faces of a handle report the same things.

Two kinds of round trip:

- :meth:`ALink.request` (scripts, ``HGETALL``): *shielded*. Once a request
  has left, its reply is always read, so a cancelled receive never drops a
  message the server already handed out. A plain asyncio ``Task.cancel()``
  pierces anyio shields; it is absorbed while the reply is read and given
  back to the caller (which stashes a taken message before re-raising it).
- :meth:`ALink.block` (``BLPOP`` on a wake-up list): cancellable. It takes
  nothing off the queue; a cancelled one leaves its connection with an
  outstanding reply, so that connection is discarded, never reused.
"""

from __future__ import annotations

import contextlib
import errno as E
import select
import socket
import ssl
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import AskError, MovedError, NoScriptError, RedisError

from unimq import BackendUnavailable
from unimq_redis._address import Address
from unimq_redis._link import (
    _NOT_RUN,
    _REDIRECTS,
    Link,
    Multi,
    SentinelLink,
    Server,
    _Failure,
    pack,
)
from unimq_redis._scripts import Script

__all__ = ["AConn", "ALink"]

#: Seconds to connect (TCP, TLS handshake, AUTH/SELECT), as the sync link.
CONNECT_TIMEOUT = 10.0
#: Seconds a non-blocking request waits for its reply before the server counts
#: as unresponsive (the sync link's socket_timeout).
REPLY_TIMEOUT = 30.0
#: Extra seconds a blocked read waits beyond the server's own BLPOP timeout.
BLOCK_GRACE = 10.0
_LOST = (
    OSError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    hiredis.ProtocolError,
)


def _reply_error(text: str) -> Exception:
    """An error reply as redis-py's exception class (MOVED, NOSCRIPT, WRONGPASS, ...)."""
    err: Exception = BaseParser.parse_error(text)  # type: ignore[no-untyped-call]
    return err


def _cause(exc: BaseException) -> BaseException:
    """A readable cause for a lost connection (anyio's end-of-stream has no text)."""
    if isinstance(exc, (anyio.EndOfStream, anyio.BrokenResourceError)):
        lost = ConnectionResetError(E.ECONNRESET, "the server closed the connection")
        lost.__cause__ = exc
        return lost
    if isinstance(exc, TimeoutError) and not str(exc):
        return TimeoutError(E.ETIMEDOUT, "no answer from the server in time")
    return exc


class AConn:
    """One connection: an anyio byte stream and a hiredis reply parser."""

    __slots__ = ("absorbed", "reader", "sock", "stream")

    def __init__(self, stream: anyio.abc.ByteStream, tls: bool) -> None:
        self.stream = stream
        self.reader = hiredis.Reader(replyError=_reply_error)
        # The raw socket, to see whether an idle connection was closed by the
        # server (not through TLS, whose records would have to be decoded).
        self.sock: socket.socket | None = (
            None if tls else stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        )
        #: A native asyncio cancellation absorbed during a shielded round trip.
        self.absorbed: BaseException | None = None

    async def send(self, data: bytes, scope: anyio.CancelScope, *, absorb: bool) -> None:
        """Write ``data``; ``scope`` and ``absorb`` as for :meth:`read`."""
        try:
            await self.stream.send(data)
        except anyio.get_cancelled_exc_class() as exc:
            if not absorb or scope.cancel_called:
                raise
            # A native asyncio cancel through the shield. On a connection used
            # request by request the transport's buffer is empty, so anyio wrote
            # the bytes before its first await: they left; the reply is read.
            self.absorbed = exc
        except _LOST as exc:
            raise _Failure(_cause(exc), sent=False) from exc

    async def read(self, scope: anyio.CancelScope, *, absorb: bool) -> Any:
        """The next reply. ``scope`` is the read's deadline; with ``absorb``, a
        cancellation that is not that deadline's (a native asyncio cancel
        through a shield) is remembered in :attr:`absorbed` and the read goes on."""
        reader = self.reader
        cancelled = anyio.get_cancelled_exc_class()
        while True:
            reply = reader.gets()
            if reply is not False:
                if isinstance(reply, Exception):
                    raise reply
                return reply
            try:
                data = await self.stream.receive()
            except cancelled as exc:
                if not absorb or scope.cancel_called:
                    raise
                self.absorbed = exc
                continue
            except _LOST as exc:
                raise _Failure(_cause(exc), sent=True) from exc
            reader.feed(data)

    def stale(self) -> bool:
        """Whether the server closed this idle connection (readable while idle)."""
        if self.reader.has_data():
            return True
        if self.sock is None:
            return False
        try:
            readable, _, _ = select.select((self.sock,), (), (), 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    async def discard(self) -> None:
        """Drop the connection at once (its state may be mid-reply)."""
        with contextlib.suppress(Exception):
            await anyio.aclose_forcefully(self.stream)


def _ssl_context(address: Address) -> ssl.SSLContext:
    """The TLS settings of the sync connections (redis-py's SSLConnection)."""
    reqs = address.tls.get("ssl_cert_reqs", "required")
    ctx = ssl.create_default_context()
    if reqs != "required":
        ctx.check_hostname = False
    ctx.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[reqs]
    certfile, keyfile = address.tls.get("ssl_certfile"), address.tls.get("ssl_keyfile")
    if certfile or keyfile:
        ctx.load_cert_chain(certfile=certfile or "", keyfile=keyfile)
    if "ssl_ca_certs" in address.tls:
        ctx.load_verify_locations(cafile=address.tls["ssl_ca_certs"])
    return ctx


class ALink:
    """The async way to one queue's server; wraps the handle's sync :class:`Link`
    for the address (and cluster redirections) and the error texts."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._idle: list[AConn] = []
        self._server: Server | None = None  # the server the idle connections lead to
        self._ssl: ssl.SSLContext | None = None
        self._closed = False
        #: The error a call on a closed link raises (the handle's QueueClosed).
        self.closed_error: Callable[[], BaseException] | None = None

    # ------------------------------------------------------------------ connections

    async def _connect(self, op: str, address: Address) -> AConn:
        tls = address.socket_path is None and address.scheme == "rediss"
        try:
            with anyio.fail_after(CONNECT_TIMEOUT):
                stream: anyio.abc.ByteStream
                if address.socket_path is not None:
                    stream = await anyio.connect_unix(address.socket_path)
                else:
                    assert address.host is not None
                    if tls:
                        if self._ssl is None:  # reads certificate files: not in the loop
                            self._ssl = await anyio.to_thread.run_sync(_ssl_context, address)
                        stream = await anyio.connect_tcp(
                            address.host,
                            address.port,
                            ssl_context=self._ssl,
                            tls_standard_compatible=False,
                        )
                    else:
                        stream = await anyio.connect_tcp(address.host, address.port)
                    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
                    if raw is not None:
                        with contextlib.suppress(OSError):
                            raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                conn = AConn(stream, tls)
                try:
                    await self._hello(conn, address)
                except BaseException:
                    await conn.discard()
                    raise
                return conn
        except _Failure as exc:
            raise _Failure(exc.cause, sent=False) from exc.cause
        except (OSError, anyio.BrokenResourceError) as exc:
            raise _Failure(_cause(exc), sent=False) from exc

    async def _hello(self, conn: AConn, address: Address) -> None:
        """AUTH, SELECT and CLIENT SETNAME in one write (what redis-py sends on connect)."""
        cmds: list[tuple[Any, ...]] = []
        if address.password is not None:
            user = () if address.username is None else (address.username,)
            cmds.append(("AUTH", *user, address.password))
        if address.db:
            cmds.append(("SELECT", address.db))
        cmds.append(("CLIENT", "SETNAME", "unimq"))
        first: RedisError | None = None
        with anyio.CancelScope() as scope:
            await conn.send(b"".join(pack(c) for c in cmds), scope, absorb=False)
            for cmd in cmds:
                try:
                    await conn.read(scope, absorb=False)
                except RedisError as exc:
                    if cmd[0] != "CLIENT" and first is None:  # a name is a courtesy only
                        first = exc
        if first is not None:
            raise first

    async def _get(self, op: str, server: Server) -> AConn:
        if self._closed:
            if self.closed_error is not None:
                raise self.closed_error()
            raise _Failure(ConnectionAbortedError(E.ECONNABORTED, "handle closed"), sent=False)
        if server is not self._server:
            self._server = server
            idle, self._idle = self._idle, []
            for old in idle:
                await old.discard()
        while self._idle:
            conn = self._idle.pop()
            if not conn.stale():
                return conn
            await conn.discard()
        return await self._connect(op, server.address)

    async def _put(self, conn: AConn, server: Server) -> None:
        if self._closed or server is not self._server:
            await conn.discard()
        else:
            self._idle.append(conn)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        with anyio.CancelScope(shield=True):
            for conn in idle:
                await conn.discard()

    # ------------------------------------------------------------------ round trips

    async def _execute(
        self,
        conn: AConn,
        args: tuple[Any, ...] | Multi,
        script: Script | None,
        scope: anyio.CancelScope,
    ) -> Any:
        if type(args) is Multi:
            return await self._execute_multi(conn, args, scope)
        await conn.send(pack(args), scope, absorb=True)  # type: ignore[arg-type]
        try:
            return await conn.read(scope, absorb=True)
        except NoScriptError:
            if script is None:
                raise
            # After a restart or SCRIPT FLUSH: the script did not run; send it in full.
            await conn.send(pack(("EVAL", script.body, *args[2:])), scope, absorb=True)  # type: ignore[index]
            return await conn.read(scope, absorb=True)

    async def _execute_multi(self, conn: AConn, multi: Multi, scope: anyio.CancelScope) -> Any:
        """A :class:`Multi`'s four replies, errors as values (as the sync link)."""
        await conn.send(multi.data, scope, absorb=True)
        replies = await self._read_multi(conn, scope)
        done = replies[3]
        if isinstance(done, list) and len(done) == 2 and isinstance(done[1], NoScriptError):
            # The script did not run (LRANGE only read): again, with the script in full.
            await conn.send(multi.request(full=True)[0], scope, absorb=True)
            replies = await self._read_multi(conn, scope)
        return replies

    @staticmethod
    async def _read_multi(conn: AConn, scope: anyio.CancelScope) -> list[Any]:
        out: list[Any] = []
        for _ in range(4):
            try:
                out.append(await conn.read(scope, absorb=True))
            except RedisError as exc:  # an error reply (a lost connection is a _Failure)
                out.append(exc)
        return out

    async def run(
        self, op: str, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]
    ) -> tuple[Any, BaseException | None]:
        """Run ``script`` (by SHA, in full after NOSCRIPT); see :meth:`request`."""
        return await self.request(op, ("EVALSHA", script.sha, len(keys), *keys, *args), script)

    async def request(
        self, op: str, args: tuple[Any, ...] | Multi, script: Script | None = None
    ) -> tuple[Any, BaseException | None]:
        """Send one command and read its reply, shielded from cancellation;
        through a Sentinel-watched service, as :class:`SentinelLink` does: ask the
        sentinels again (in a worker thread) after a failure, and send once more
        to a new primary a request that certainly did not run.
        """
        link = self.link
        if not isinstance(link, SentinelLink):
            return await self._request(op, args, script)
        if link.stale:
            await anyio.to_thread.run_sync(link.refresh)
        try:
            return await self._request(op, args, script)
        except BackendUnavailable as exc:
            try:
                changed = await anyio.to_thread.run_sync(link.refresh)
            except BackendUnavailable:
                link.lost()
                raise exc from exc.__cause__
            if not changed or exc.maybe_done is not False:
                raise
        return await self._request(op, args, script)

    async def _request(
        self, op: str, args: tuple[Any, ...] | Multi, script: Script | None = None
    ) -> tuple[Any, BaseException | None]:
        """Send one command and read its reply, shielded from cancellation.

        :return: the reply, and a native asyncio cancellation that arrived
            meanwhile (None if none): the caller deals with the reply, then
            raises it.
        :raises BackendUnavailable: the server could not be reached
            (``maybe_done=False``) or the connection was lost after the
            request left (``maybe_done=True``).
        """
        link = self.link
        sent = False
        # One scope: shielded from the caller's cancellation, and the deadline
        # after which the server counts as unresponsive.
        deadline = anyio.current_time() + REPLY_TIMEOUT
        with anyio.CancelScope(shield=True, deadline=deadline) as scope:
            for _ in range(_REDIRECTS):
                server = link.server
                sent = False
                try:
                    conn = await self._get(op, server)
                except _Failure as exc:
                    raise link.unavailable(op, exc.cause, maybe_done=False) from exc.cause
                except RedisError as exc:
                    raise link.refused(op, exc) from exc
                sent = True
                try:
                    reply = await self._execute(conn, args, script, scope)
                except MovedError as exc:
                    await self._put(conn, server)
                    link.move(server, exc.host, exc.port)
                    continue
                except AskError as exc:
                    await self._put(conn, server)
                    return await self._ask(op, server, exc, args, script, scope)
                except _Failure as exc:
                    await conn.discard()
                    raise link.unavailable(op, exc.cause, maybe_done=exc.sent) from exc.cause
                except RedisError as exc:
                    await self._put(conn, server)
                    raise link.refused(op, exc) from exc
                except BaseException:
                    await conn.discard()  # the deadline, or a failure of ours
                    raise
                absorbed, conn.absorbed = conn.absorbed, None
                await self._put(conn, server)
                return reply, absorbed
        if scope.cancelled_caught:
            late = TimeoutError(E.ETIMEDOUT, f"no answer within {REPLY_TIMEOUT:g} s")
            raise link.unavailable(op, late, maybe_done=sent)
        raise BackendUnavailable(
            f"{op} on {link.url}: more than {_REDIRECTS} cluster redirections (the cluster "
            "is resharding?); nothing was done, try again",
            errno=E.EAGAIN,
            url=link.url,
        )

    async def _ask(
        self,
        op: str,
        server: Server,
        exc: AskError,
        args: tuple[Any, ...] | Multi,
        script: Script | None,
        scope: anyio.CancelScope,
    ) -> tuple[Any, BaseException | None]:
        # The slot is migrating: this one command goes to the target node after ASKING.
        link = self.link
        address = server.address.moved(exc.host, exc.port)
        try:
            conn = await self._connect(op, address)
        except _Failure as failure:
            raise link.unavailable(op, failure.cause, maybe_done=False) from failure.cause
        except RedisError as error:
            raise link.refused(op, error) from error
        try:
            await conn.send(pack(("ASKING",)), scope, absorb=True)
            await conn.read(scope, absorb=True)
            reply = await self._execute(conn, args, script, scope)
            return reply, conn.absorbed
        except _Failure as failure:
            raise link.unavailable(op, failure.cause, maybe_done=failure.sent) from failure.cause
        except RedisError as error:
            raise link.refused(op, error) from error
        finally:
            await conn.discard()

    async def block(self, op: str, key: str, seconds: float) -> None:
        """``BLPOP key seconds``: returns when woken or when the time ran out.

        Cancellable (it takes no message); a cancelled one discards its connection.

        :raises BackendUnavailable: (``maybe_done=False``) if the server cannot be
            reached or the connection is lost while waiting.
        """
        link = self.link
        server = link.server
        sentinel = link if isinstance(link, SentinelLink) else None
        try:
            conn = await self._get(op, server)
        except _Failure as exc:
            if sentinel is not None:
                sentinel.lost()  # a failover? the retry asks the sentinels
                return
            raise link.unavailable(f"{op} (waiting)", exc.cause, maybe_done=False) from exc.cause
        except RedisError as exc:
            raise link.refused(op, exc) from exc
        done = False
        try:
            try:
                # BLPOP 0 waits forever: then so does the read (no deadline).
                limit = seconds + BLOCK_GRACE if seconds else None
                with anyio.fail_after(limit) as scope:
                    await conn.send(pack(("BLPOP", key, f"{seconds:.3f}")), scope, absorb=False)
                    await conn.read(scope, absorb=False)
            except TimeoutError as exc:
                raise _Failure(_cause(exc), sent=True) from exc
            done = True
        except _Failure as exc:
            if sentinel is not None:
                sentinel.lost()  # a failover? a spurious wake-up: the retry asks the sentinels
                return
            raise link.unavailable(f"{op} (waiting)", exc.cause, maybe_done=False) from exc.cause
        except MovedError as exc:
            done = True
            link.move(server, exc.host, exc.port)  # a spurious wake-up; the retry follows it
        except _NOT_RUN as exc:
            done = True
            raise link.refused(op, exc) from exc
        except RedisError as exc:
            done = True
            if sentinel is None or not str(exc).startswith("UNBLOCKED"):
                raise link.refused(op, exc) from exc
            sentinel.lost()  # the server changed role (a failover): a spurious wake-up
        finally:
            if done:
                await self._put(conn, server)
            else:
                with anyio.CancelScope(shield=True):
                    await conn.discard()
