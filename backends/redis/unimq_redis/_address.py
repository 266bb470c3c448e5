"""Where a redis:// queue lives: server address, credentials, database, queue name.

URL forms (the password never appears in ``q.url``, ``repr``, ``stat`` or logs)::

    redis://[user[:password]@]host[:port]/NAME[?db=N]
    rediss://[user[:password]@]host[:port]/NAME[?db=N&ssl_ca_certs=PATH]   TLS
    redis+unix://[user[:password]@]/path/to/server.sock?queue=NAME[&db=N]
    redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/SERVICE/NAME[?db=N]
    rediss+sentinel://...   the same over TLS (to the sentinels and the primary)

A sentinel URL lists Sentinel processes (port 26379 unless given) and the
service (master) name they watch; the queue lives on that service's current
primary. The URL's credentials are the primary's; the sentinels' come from
``UNIMQ_REDIS_SENTINEL_USERNAME`` / ``UNIMQ_REDIS_SENTINEL_PASSWORD`` (none by
default).

Credentials not in the URL come from the environment: ``UNIMQ_REDIS_USERNAME``
and ``UNIMQ_REDIS_PASSWORD``, else ``REDISCLI_AUTH`` (redis-cli's variable) for
the password.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from unimq import InvalidName, InvalidURL
from unimq._url import QueueURL

__all__ = ["ADDRESS_KEYS", "Address", "parse_address"]

DEFAULT_PORT = 6379
SENTINEL_PORT = 26379
SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
#: URL query keys that belong to the address (kept in ``q.url``), not queue options.
ADDRESS_KEYS = frozenset(
    {"db", "queue", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"}
)
_TLS_KEYS = frozenset({"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"})
# A queue name: what a user would type, never a hash-tag brace, slash or space.
_NAME = re.compile(r"^[A-Za-z0-9._:@+=,-]{1,200}$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$")


@dataclass(frozen=True)
class Address:
    """A server and a queue name on it. ``password`` is kept out of ``repr``."""

    scheme: str
    host: str | None  # None for a unix socket
    port: int
    socket_path: str | None
    db: int
    name: str | None  # None for a server-only URL (``unimq ls redis://host``)
    username: str | None
    password: str | None = field(repr=False)
    tls: dict[str, str] = field(default_factory=dict)
    #: For a sentinel URL: the sentinels' (host, port) and the service name; the
    #: primary's address (host, port) comes from them (see :meth:`moved`).
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None

    @property
    def tls_on(self) -> bool:
        return self.scheme in ("rediss", "rediss+sentinel")

    def sentinel_kwargs(self, host: str, port: int) -> dict[str, Any]:
        """Keyword arguments for a connection to one sentinel."""
        kw = self.connection_kwargs()
        kw.update(
            host=host,
            port=port,
            db=0,
            username=os.environ.get("UNIMQ_REDIS_SENTINEL_USERNAME") or None,
            password=os.environ.get("UNIMQ_REDIS_SENTINEL_PASSWORD") or None,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
        )
        return kw

    @property
    def server(self) -> str:
        """``host:port`` or the socket path, for messages."""
        if self.sentinels:
            where = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"the primary of {self.service!r} (sentinels {where})"
        if self.socket_path is not None:
            return self.socket_path
        return f"{self.host}:{self.port}"

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a redis-py connection class."""
        kw: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_connect_timeout": 10.0,
            # A reply that takes longer means a partitioned or stuck server: the call
            # fails with BackendUnavailable rather than hang (blocking waits set their own).
            "socket_timeout": 30.0,
            "client_name": "unimq",
            # RESP2: the same replies from every redis-py version and server.
            "protocol": 2,
        }
        if self.socket_path is not None:
            kw["path"] = self.socket_path
            return kw
        kw["socket_keepalive"] = True
        kw["host"] = self.host
        kw["port"] = self.port
        if self.tls_on:
            kw["ssl_cert_reqs"] = self.tls.get("ssl_cert_reqs", "required")
            kw["ssl_check_hostname"] = kw["ssl_cert_reqs"] == "required"
            for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
                if key in self.tls:
                    kw[key] = self.tls[key]
        return kw

    def moved(self, host: str, port: int) -> Address:
        """The same queue on another cluster node (after a MOVED redirection), or
        on the primary a sentinel named."""
        return Address(
            "rediss" if self.tls_on else "redis",
            host,
            port,
            None,
            self.db,
            self.name,
            self.username,
            self.password,
            self.tls,
        )


def parse_address(url: QueueURL, *, need_name: bool = True) -> Address:
    """Split a parsed redis URL into an :class:`Address`.

    :raises InvalidURL: for a malformed address (checked before any network call).
    :raises InvalidName: for a missing or bad queue name.
    """
    text = str(url)
    query = dict(url.query)
    for key in _TLS_KEYS & query.keys():
        if url.scheme not in ("rediss", "rediss+sentinel"):
            raise InvalidURL(f"{key} is a TLS setting: use rediss:// ({text})", url=text)
    reqs = query.get("ssl_cert_reqs", "required")
    if reqs not in ("required", "optional", "none"):
        raise InvalidURL(
            f"ssl_cert_reqs must be 'required' (the default), 'optional' or 'none', not {reqs!r}",
            url=text,
        )
    db_text = query.get("db", "0")
    if not (db_text.isascii() and db_text.isdigit()) or int(db_text) > 2**31 - 1:
        raise InvalidURL(f"db must be a database number (0, 1, ...), not {db_text!r}", url=text)
    authority, slash, path = url.target.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    username = unquote(userinfo) if at and userinfo else None
    sentinels: tuple[tuple[str, int], ...] = ()
    service = None
    if url.scheme in SENTINEL_SCHEMES:
        if not hostport:
            raise InvalidURL(
                f"{text} names no sentinel; for example "
                "redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster/orders",
                url=text,
            )
        sentinels = tuple(
            _host_port(part, text, default=SENTINEL_PORT) for part in hostport.split(",")
        )
        service, _, path = path.partition("/")
        slash = "/" if path else ""
        if not service:
            raise InvalidURL(
                f"{text} names no sentinel service: redis+sentinel://HOST:26379/SERVICE/QUEUE "
                "(SERVICE is the master name the sentinels monitor)",
                url=text,
            )
        service = unquote(service)
        hostport = ""
    if url.scheme in SENTINEL_SCHEMES:
        socket_path, host, port = None, None, 0
        name = unquote(path) if slash and path else None
    elif url.scheme == "redis+unix":
        if hostport:
            raise InvalidURL(
                f"{text}: a redis+unix URL names a socket path, not a host: "
                "redis+unix:///path/to/server.sock?queue=NAME",
                url=text,
            )
        socket_path = unquote("/" + path)
        if socket_path == "/":
            raise InvalidURL(f"{text} names no socket path", url=text)
        host, port = None, 0
        name = query.get("queue")
    else:
        if "queue" in query:
            raise InvalidURL(
                f"{text}: the queue name is the URL path (redis://host:6379/NAME); "
                "?queue= is for redis+unix:// URLs",
                url=text,
            )
        socket_path = None
        host, port = _host_port(hostport, text)
        name = unquote(path) if slash and path else None
    if name is None or name == "":
        if need_name:
            example = (
                "redis+unix:///path/to/server.sock?queue=orders"
                if socket_path is not None
                else f"{url.scheme}://{hostport or 'localhost:6379'}/orders"
            )
            raise InvalidName(f"{text} names no queue; for example {example}", url=text)
        name = None
    elif not _NAME.match(name):
        raise InvalidName(
            f"redis queue name {name!r} must be 1..200 characters from letters, digits "
            "and . _ : @ + = , - (no braces, slashes or spaces)",
            url=text,
        )
    env_user = os.environ.get("UNIMQ_REDIS_USERNAME") or None
    password = url.password
    if password is None:
        password = os.environ.get("UNIMQ_REDIS_PASSWORD") or os.environ.get("REDISCLI_AUTH") or None
    tls = {k: v for k, v in query.items() if k in _TLS_KEYS}
    return Address(
        url.scheme,
        host,
        port,
        socket_path,
        int(db_text),
        name,
        username or env_user,
        password,
        tls,
        sentinels,
        service,
    )


def _host_port(hostport: str, text: str, *, default: int = DEFAULT_PORT) -> tuple[str, int]:
    if not hostport:
        raise InvalidURL(f"{text} names no server; for example redis://localhost:6379/orders")
    host, port_text = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        host, port_text = hostport[: end + 1], hostport[end + 1 :].removeprefix(":")
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
    if not _HOST.match(host):
        raise InvalidURL(f"{text} has an invalid host {host!r}", url=text)
    if port_text == "":
        return host.strip("[]"), default
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise InvalidURL(f"{text} has an invalid port {port_text!r} (1..65535)", url=text)
    return host.strip("[]"), int(port_text)
