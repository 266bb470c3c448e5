"""Connections to a redis server, and one request/response with honest errors.

redis-py's connection objects are used directly (no client-level retry): a
request is sent at most once. A failure before the request left this
process means nothing happened (``maybe_done=False``); a failure after it
was sent means it may have run (``maybe_done=True``). Either way the
connection is dropped and the next call reconnects, so a handle works again
once the server is back.
"""

from __future__ import annotations

import contextlib
import errno as E
import os
import select
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol, cast

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection, SSLConnection
from redis.connection import UnixDomainSocketConnection as UnixConnection
from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    MovedError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.retry import Retry

from unimq import BackendUnavailable, LimitExceeded, PermissionDenied, UnimqError
from unimq_redis._address import Address
from unimq_redis._scripts import Script

__all__ = ["Link", "Multi", "Packed", "SentinelLink", "Server", "bulk", "make_link"]

_REDIRECTS = 8
# Errors that mean "the server did not run it": safe to say nothing happened.
_NOT_RUN = (ReadOnlyError, TryAgainError, ClusterDownError, BusyLoadingError)

try:  # what redis-py's hiredis reader returns when a reply is not complete yet
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _MORE
except ImportError:  # pragma: no cover - another redis-py: no buffered reads
    _MORE = None
_servers: weakref.WeakSet[Server] = weakref.WeakSet()


class Conn(Protocol):
    """The part of a redis-py connection unimq uses (redis-py is untyped here)."""

    def send_command(self, *args: Any) -> None: ...
    def send_packed_command(self, command: list[bytes]) -> None: ...
    def read_response(self, *, timeout: float | None = ...) -> Any: ...
    def disconnect(self) -> None: ...


class _Failure(Exception):
    """A connection-level failure; ``sent`` says whether the request had left."""

    def __init__(self, cause: BaseException, *, sent: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


class Server:
    """Idle connections to one server (node), shared by a handle's threads."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._kwargs = address.connection_kwargs()
        self._kwargs["retry"] = Retry(NoBackoff(), 0)  # never re-send anything
        self._cls: Callable[..., Any]
        if address.socket_path is not None:
            self._cls = UnixConnection
        elif address.scheme == "rediss":
            self._cls = SSLConnection
        else:
            self._cls = Connection
        self._tls = address.scheme == "rediss"
        self._idle: list[Conn] = []
        self._closed = False
        _servers.add(self)

    def get(self) -> Conn:
        try:
            conn = self._idle.pop()
        except IndexError:
            return cast(Conn, self._cls(**self._kwargs))
        sock: socket.socket | None = getattr(conn, "_sock", None)
        if sock is not None and not self._tls:
            # An idle connection that is readable was closed by the server (restart,
            # idle timeout): drop it now rather than fail the request sent on it.
            try:
                readable, _, _ = select.select((sock,), (), (), 0)
            except (OSError, ValueError):
                readable = [sock]
            if not readable:
                return conn
            conn.disconnect()
        return conn

    def put(self, conn: Conn) -> None:
        if self._closed:
            conn.disconnect()
        else:
            self._idle.append(conn)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().disconnect()

    def forget(self) -> None:
        """In a forked child: the connections are the parent's; close our copies only."""
        while self._idle:
            self._idle.pop().disconnect()  # redis-py skips shutdown() in another pid


def _after_fork() -> None:
    for server in list(_servers):
        server.forget()


os.register_at_fork(after_in_child=_after_fork)


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP (str as UTF-8, int as decimal, bytes as they are)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        out += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(out)


def bulk(arg: bytes | str | int) -> bytes:
    """One argument in RESP (as :func:`pack` writes it), to prebuild commands."""
    if isinstance(arg, str):
        arg = arg.encode()
    elif isinstance(arg, int):
        arg = b"%d" % arg
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


class Packed:
    """A script call whose arguments after the SHA are already in RESP: the hot
    paths build it from a per-handle prefix without packing every argument again.
    After NOSCRIPT the same arguments follow EVAL and the script's body."""

    __slots__ = ("count", "rest", "script")

    def __init__(self, script: Script, count: int, rest: bytes | list[bytes]) -> None:
        self.script = script
        self.count = count  # elements of the whole command, EVALSHA and SHA included
        self.rest = rest

    def request(self, *, full: bool = False) -> list[bytes]:
        script = self.script
        if full:
            head = b"*%d\r\n$4\r\nEVAL\r\n%s" % (self.count, bulk(script.body))
        else:
            head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n" % (self.count, script.sha.encode())
        rest = self.rest
        if isinstance(rest, bytes):
            return [head + rest]
        return [head, *rest]


class Multi:
    """``MULTI; LRANGE ...; EVALSHA ...; EXEC`` in one write: a read and the
    script that commits it, with nothing in between (see COMMIT in
    :mod:`unimq_redis._scripts`). Its reply is the four replies, each a value
    or the error it was (never raised, so the connection stays in step); after
    NOSCRIPT in EXEC's answer the whole is sent again with EVAL and the body.
    """

    __slots__ = ("call", "data", "lrange")

    #: MULTI's and EXEC's requests
    BEGIN = b"*1\r\n$5\r\nMULTI\r\n"
    END = b"*1\r\n$4\r\nEXEC\r\n"

    def __init__(self, lrange: bytes, call: Packed) -> None:
        self.lrange = lrange  # the LRANGE command, in RESP
        self.call = call
        self.data = self._join(full=False)

    def _join(self, *, full: bool) -> bytes:
        # One buffer: a list would be written piece by piece (a send call each).
        return b"".join((self.BEGIN, self.lrange, *self.call.request(full=full), self.END))

    def request(self, *, full: bool = False) -> list[bytes]:
        return [self._join(full=True) if full else self.data]


def _read_multi(conn: Conn) -> list[Any]:
    """The four replies of a :class:`Multi`, errors as values. The first read
    waits for data; the others usually arrived with it and are taken from the
    hiredis reader's buffer (``read_response`` costs about 1.5 µs each)."""
    out: list[Any] = []
    reader = None
    for _ in range(4):
        reply = _MORE if reader is None else reader.gets()
        if reply is _MORE:
            try:
                reply = _read(conn)
            except redis.RedisError as exc:  # an error reply (a lost connection is a _Failure)
                reply = exc
            reader = _buffer_of(conn)
        else:
            # what read_response raises, as it would (see _read)
            lost = reply[0] if type(reply) is list and reply else reply
            if isinstance(lost, redis.ConnectionError) and not isinstance(lost, _NOT_RUN):
                conn.disconnect()
                raise _Failure(lost, sent=True) from lost
        out.append(reply)
    return out


def _buffer_of(conn: Conn) -> Any:
    """The hiredis reader behind ``conn``'s replies; None if redis-py reads
    them another way (then every reply goes through read_response)."""
    if _MORE is None:
        return None
    return getattr(getattr(conn, "_parser", None), "_reader", None)


def _execute_multi(conn: Conn, multi: Multi) -> list[Any]:
    try:
        conn.send_packed_command(multi.request())
    except (AuthenticationError, NoPermissionError):
        raise
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        conn.disconnect()
        raise _Failure(exc, sent=False) from exc
    replies = _read_multi(conn)
    done = replies[3]
    if isinstance(done, list) and len(done) == 2 and isinstance(done[1], NoScriptError):
        # After a restart or SCRIPT FLUSH: the script did not run (LRANGE only
        # read); the same transaction again, with the script in full.
        try:
            conn.send_packed_command(multi.request(full=True))
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            conn.disconnect()
            raise _Failure(exc, sent=False) from exc
        replies = _read_multi(conn)
    return replies


def _send(conn: Conn, args: tuple[Any, ...] | Packed) -> None:
    try:
        if type(args) is Packed:
            conn.send_packed_command(args.request())
        else:
            conn.send_packed_command([pack(args)])  # type: ignore[arg-type]
    except (AuthenticationError, NoPermissionError):
        raise
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        conn.disconnect()
        raise _Failure(exc, sent=False) from exc


def _read(conn: Conn, *, wait: bool = False, timeout: float | None = None) -> Any:
    """The reply; with ``wait``, waiting at most ``timeout`` seconds (None: no limit)."""
    try:
        if not wait:
            return conn.read_response()
        return conn.read_response(timeout=timeout)
    except _NOT_RUN:
        raise
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        conn.disconnect()
        raise _Failure(exc, sent=True) from exc


def _execute(conn: Conn, args: tuple[Any, ...] | Packed | Multi, script: Script | None) -> Any:
    if type(args) is Multi:
        return _execute_multi(conn, args)
    _send(conn, args)  # type: ignore[arg-type]
    try:
        return _read(conn)
    except NoScriptError:
        if script is None:
            raise
        # After a restart or SCRIPT FLUSH: the script did not run; send it in full.
        if type(args) is Packed:
            try:
                conn.send_packed_command(args.request(full=True))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                conn.disconnect()
                raise _Failure(exc, sent=False) from exc
        else:
            _send(conn, ("EVAL", script.body, *args[2:]))  # type: ignore[index]
        return _read(conn)


class Link:
    """The way to one queue's server: follows cluster redirections (the whole
    queue lives in one slot, so after one MOVED the link stays on that node)."""

    def __init__(self, address: Address, url: str) -> None:
        self.url = url
        self.server = Server(address)

    def close(self) -> None:
        self.server.close()

    def run(self, op: str, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        """Run ``script`` (by SHA, in full after NOSCRIPT)."""
        return self.command(op, ("EVALSHA", script.sha, len(keys), *keys, *args), script)

    def run_packed(self, op: str, call: Packed) -> Any:
        """Run a prebuilt script call (see :class:`Packed`), like :meth:`run`."""
        return self.command(op, call, call.script)

    def command(
        self, op: str, args: tuple[Any, ...] | Packed | Multi, script: Script | None = None
    ) -> Any:
        """Send one command and return its reply, as unimq errors."""
        for _ in range(_REDIRECTS):
            server = self.server
            conn = server.get()
            try:
                return _execute(conn, args, script)
            except MovedError as exc:
                self.move(server, exc.host, exc.port)
            except AskError as exc:
                return self._ask(op, server, exc, args, script)
            except _Failure as exc:
                raise self.unavailable(op, exc.cause, maybe_done=exc.sent) from exc.cause
            except redis.RedisError as exc:
                raise self.refused(op, exc) from exc
            finally:
                server.put(conn)
        raise BackendUnavailable(
            f"{op} on {self.url}: more than {_REDIRECTS} cluster redirections (the cluster "
            "is resharding?); nothing was done, try again",
            errno=E.EAGAIN,
            url=self.url,
        )

    def _ask(
        self,
        op: str,
        server: Server,
        exc: AskError,
        args: tuple[Any, ...] | Packed | Multi,
        script: Script | None,
    ) -> Any:
        # The slot is migrating: this one command goes to the target node after ASKING.
        target = Server(server.address.moved(exc.host, exc.port))
        conn = target.get()
        try:
            _send(conn, ("ASKING",))
            _read(conn)
            return _execute(conn, args, script)
        except _Failure as failure:
            raise self.unavailable(op, failure.cause, maybe_done=failure.sent) from failure.cause
        except redis.RedisError as error:
            raise self.refused(op, error) from error
        finally:
            target.close()
            conn.disconnect()

    def move(self, server: Server, host: str, port: int) -> None:
        if self.server is server:
            self.server = Server(server.address.moved(host, port))
            server.close()

    def lost(self) -> None:
        """A blocked call on this link failed (see :class:`SentinelLink`); a
        plain link has nothing to follow."""

    def where(self) -> str:
        return self.server.address.server

    def unavailable(self, op: str, cause: BaseException, *, maybe_done: bool) -> BackendUnavailable:
        where = self.where()
        if not maybe_done:
            return BackendUnavailable(
                f"{op} on {self.url}: cannot reach the redis server at {where} ({cause}); "
                "nothing was done, so it is safe to try again once the server is up",
                maybe_done=False,
                errno=getattr(cause, "errno", None) or E.ECONNREFUSED,
                url=self.url,
            )
        outcome = {
            "send": "the message may or may not have been enqueued; check the queue "
            "before sending it again",
            "receive": "a message may have been taken off the queue and lost with the connection",
        }.get(op, "it may or may not have taken effect")
        return BackendUnavailable(
            f"{op} on {self.url}: the connection to the redis server at {where} was lost "
            f"after the request was sent ({cause}); {outcome}",
            maybe_done=True,
            errno=getattr(cause, "errno", None) or E.ECONNRESET,
            url=self.url,
        )

    def refused(self, op: str, exc: redis.RedisError) -> UnimqError:
        """An error answer (the server ran nothing, or failed the script as a whole)."""
        where = self.where()
        url = self.url
        if isinstance(exc, AuthenticationError):
            return PermissionDenied(
                f"{op} on {url}: the redis server at {where} refused the credentials ({exc}); "
                "check the user and password (URL, $UNIMQ_REDIS_PASSWORD or $REDISCLI_AUTH)",
                errno=E.EACCES,
                url=url,
            )
        if isinstance(exc, NoPermissionError):
            return PermissionDenied(
                f"{op} on {url}: the redis user may not do this ({exc}); grant it EVALSHA, "
                "EVAL, BLPOP and access to the keys unimq:{*} (ACL SETUSER)",
                errno=E.EACCES,
                url=url,
            )
        if isinstance(exc, OutOfMemoryError):
            return LimitExceeded(
                f"{op} on {url}: the redis server at {where} is out of memory ({exc}); "
                "nothing was done. Raise its maxmemory or receive some messages",
                limit="maxmemory",
                errno=E.ENOSPC,
                url=url,
            )
        if isinstance(exc, _NOT_RUN) or str(exc).startswith("BUSY"):
            return BackendUnavailable(
                f"{op} on {url}: the redis server at {where} cannot serve it now ({exc}); "
                "nothing was done, try again",
                maybe_done=False,
                errno=E.EAGAIN,
                url=url,
            )
        if isinstance(exc, ResponseError):
            return UnimqError(f"{op} on {url}: the redis server answered: {exc}", url=url)
        return UnimqError(f"{op} on {url} failed: {type(exc).__name__}: {exc}", url=url)


def make_link(address: Address, url: str) -> Link:
    """The link for ``address``: through its sentinels when it names some."""
    if address.sentinels:
        return SentinelLink(address, url)
    return Link(address, url)


class SentinelLink(Link):
    """A link to the current primary of a Sentinel-watched service.

    The primary is asked of the sentinels when the link is made and again after
    a failure that suggests a failover (the connection lost, ``READONLY``, a
    blocked call unblocked by a role change). A request that certainly did not
    run (``maybe_done=False``) is then sent once more to the new primary; one
    that may have run is not: its error is raised, and the next call goes to
    the new primary.
    """

    def __init__(self, address: Address, url: str) -> None:
        self.url = url
        self.sentinel_address = address
        self._stale = False
        self.server = Server(self._primary())

    def _primary(self) -> Address:
        address = self.sentinel_address
        problems: list[str] = []
        for host, port in address.sentinels:
            cls: Callable[..., Any] = SSLConnection if address.tls_on else Connection
            conn = cast(Conn, cls(**address.sentinel_kwargs(host, port)))
            try:
                conn.send_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", address.service)
                reply = conn.read_response()
            except (redis.RedisError, OSError) as exc:
                problems.append(f"{host}:{port}: {exc}")
                continue
            finally:
                conn.disconnect()
            if not reply:
                problems.append(f"{host}:{port} monitors no service {address.service!r}")
                continue
            primary_host, primary_port = reply
            return address.moved(primary_host.decode(), int(primary_port))
        raise BackendUnavailable(
            f"{self.url}: no sentinel named the primary of {address.service!r} "
            f"({'; '.join(problems)}); nothing was done, try again once a sentinel answers",
            maybe_done=False,
            errno=E.EHOSTUNREACH,
            url=self.url,
        )

    def lost(self) -> None:
        """The primary may have changed: ask the sentinels before the next call."""
        self._stale = True

    @property
    def stale(self) -> bool:
        """Whether the sentinels must be asked before the next call."""
        return self._stale

    def refresh(self) -> bool:
        """Follow the sentinels to the current primary; True if it changed."""
        return self._refresh()

    def _refresh(self) -> bool:
        """Follow the sentinels to the current primary; True if it changed."""
        self._stale = False
        primary = self._primary()
        old = self.server
        if primary == old.address:
            return False
        self.server = Server(primary)
        old.close()
        return True

    def command(
        self, op: str, args: tuple[Any, ...] | Packed | Multi, script: Script | None = None
    ) -> Any:
        if self._stale:
            self._refresh()
        try:
            return super().command(op, args, script)
        except BackendUnavailable as exc:
            try:
                changed = self._refresh()
            except BackendUnavailable:
                self._stale = True
                raise exc from exc.__cause__
            if not changed or exc.maybe_done is not False:
                raise
        # Nothing ran on the old primary and a new one took over: send it there.
        return super().command(op, args, script)


class Blocker:
    """Blocking reads a handle may have in flight, so that close() can end them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # connection -> the pid that blocks in it: a forked child closing its copy
        # of the handle must not shut down the parent's sockets.
        self._active: dict[Conn, int] = {}
        self.closed = False

    def enter(self, conn: Conn) -> bool:
        with self._lock:
            if self.closed:
                return False
            self._active[conn] = os.getpid()
            return True

    def leave(self, conn: Conn) -> None:
        with self._lock:
            self._active.pop(conn, None)

    def close(self) -> None:
        pid = os.getpid()
        with self._lock:
            self.closed = True
            active = [conn for conn, owner in self._active.items() if owner == pid]
        for conn in active:
            # shutdown() (not close()) wakes the blocked recv; its own thread then
            # disconnects, so no descriptor is released under another thread's feet.
            sock: socket.socket | None = getattr(conn, "_sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
