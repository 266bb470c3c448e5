"""Queue URLs: parsed once into an immutable :class:`QueueURL`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from unimq._errors import InvalidURL

__all__ = ["ENV_VAR", "NETWORK_SCHEMES", "QueueURL", "parse_url"]

ENV_VAR = "UNIMQ_URL"
#: Schemes whose URLs name a server: ``scheme://[user[:password]@]host[:port]/path``.
#: Their ``target`` keeps the authority and path as written (percent-encoded),
#: without the password, which goes to :attr:`QueueURL.password` and is never
#: part of ``str(url)`` or ``repr(url)``.
NETWORK_SCHEMES = frozenset({"redis", "rediss", "redis+unix"})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


@dataclass(frozen=True, slots=True)
class QueueURL:
    """A parsed queue URL.

    ``target`` is what follows the scheme, decoded: the POSIX name
    (``"/orders"``), the SysV key text or ftok path (``"51234"``,
    ``"/etc/hosts"``), or the memory queue's name. ``query`` holds the URL's
    options as text, in order. For a network scheme (:data:`NETWORK_SCHEMES`)
    ``target`` is ``[user@]host[:port]/path`` as written, and ``password`` holds
    the URL's password, kept out of ``str()``, ``repr()`` and comparisons.
    """

    scheme: str
    target: str
    query: tuple[tuple[str, str], ...] = field(default=())
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def options(self) -> dict[str, str]:
        """The query as a dict (last value wins)."""
        return dict(self.query)

    def with_query(self, query: tuple[tuple[str, str], ...]) -> QueueURL:
        """A copy of this URL with another query."""
        return QueueURL(self.scheme, self.target, query, self.password)

    def __str__(self) -> str:
        if self.scheme in NETWORK_SCHEMES:
            base = f"{self.scheme}://{self.target}"
        elif self.target.startswith("/"):
            base = f"{self.scheme}://{quote(self.target, safe='/:@+,;=')}"
        else:
            base = f"{self.scheme}://{quote(self.target, safe=':@+,;=')}"
        if not self.query:
            return base
        return base + "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in self.query)


def parse_url(url: str | QueueURL | None) -> QueueURL:
    """Parse ``url`` (or ``$UNIMQ_URL`` when it is None) into a :class:`QueueURL`.

    :raises InvalidURL: if the text is not ``scheme://target[?options]``.
    """
    if isinstance(url, QueueURL):
        return url
    if url is None:
        url = os.environ.get(ENV_VAR)
        if not url:
            raise InvalidURL(
                f"no queue URL given and ${ENV_VAR} is not set; pass a URL such as "
                f"'posix:///orders', 'sysv://51234' or 'memory://orders', or set ${ENV_VAR}"
            )
    if not isinstance(url, str):
        raise InvalidURL(f"a queue URL must be a string, not {type(url).__name__}")
    if "\x00" in url:
        raise InvalidURL(f"queue URL {url!r} contains a NUL character")
    if "://" not in url:
        raise InvalidURL(
            f"{url!r} is not a queue URL: expected scheme://target, for example "
            "'posix:///orders', 'sysv://51234' or 'memory://orders'",
            url=url,
        )
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if not _SCHEME.match(scheme):
        raise InvalidURL(f"{url!r} has an invalid scheme {scheme!r}", url=url)
    try:
        parts = urlsplit("x://" + rest)
    except ValueError as exc:
        raise InvalidURL(f"cannot parse queue URL {url!r}: {exc}", url=url) from None
    if parts.fragment:
        raise InvalidURL(f"queue URL {url!r} must not have a #fragment", url=url)
    if scheme in NETWORK_SCHEMES:
        return _network_url(url, scheme, parts.netloc, parts.path, _query(url, parts.query))
    netloc = unquote(parts.netloc)
    path = unquote(parts.path)
    if netloc and path:
        raise InvalidURL(
            f"queue URL {url!r} has both a host part {netloc!r} and a path {path!r}; "
            f"use {scheme}:///{(netloc + path).lstrip('/')} or {scheme}://{netloc}",
            url=url,
        )
    return QueueURL(scheme, netloc or path, _query(url, parts.query))


def _query(url: str, query: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InvalidURL(f"queue URL {url!r} has a malformed query {query!r}", url=url) from None
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise InvalidURL(f"option {key!r} appears twice in {url!r}", url=url)
        seen.add(key)
    return tuple(pairs)


def _network_url(
    url: str, scheme: str, netloc: str, path: str, query: tuple[tuple[str, str], ...]
) -> QueueURL:
    """``[user[:password]@]host[:port]/path``: the password goes to its own field."""
    password = None
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, secret = userinfo.partition(":")
        if colon:
            password = unquote(secret)
        netloc = f"{user}@{hostport}" if user else hostport
    return QueueURL(scheme, netloc + path, query, password)
