"""Queue URLs: parsed once into an immutable :class:`QueueURL`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from unimq._errors import InvalidName, InvalidURL

__all__ = ["ENV_VAR", "NETWORK_SCHEMES", "QueueURL", "parse_url"]

ENV_VAR = "UNIMQ_URL"
#: Schemes whose URLs name a server: ``scheme://[user[:password]@]host[:port]/path``.
#: Their ``target`` keeps the authority and path as written (percent-encoded),
#: without the password, which goes to :attr:`QueueURL.password` and is never
#: part of ``str(url)`` or ``repr(url)``.
NETWORK_SCHEMES = frozenset({"redis", "rediss", "redis+unix", "redis+sentinel", "rediss+sentinel"})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
#: C0 controls, DEL and C1 controls: never valid in URL text. urllib drops TAB,
#: CR and LF silently (``posix:///a\tb`` would name ``/ab``), so they are refused
#: before parsing; a name that really holds such a byte is spelled ``%09``.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {"\x00": "NUL", "\t": "TAB", "\n": "LF", "\r": "CR", "\x1b": "ESC", "\x7f": "DEL"}


@dataclass(frozen=True, slots=True)
class QueueURL:
    """A parsed queue URL.

    ``target`` is what follows the scheme, decoded: the POSIX name
    (``"/orders"``), the SysV key text, identifier or ftok path (``"51234"``,
    ``"id:65538"``, ``"/etc/hosts"``), or the memory queue's name. ``query``
    holds the URL's options as text, in order.

    ``str(url)`` is the canonical URL: percent-encoded printable ASCII (no
    markup, no control characters), which :func:`parse_url` reads back as an
    equal ``QueueURL`` whatever the target holds, including bytes that are not
    UTF-8 (carried as surrogate escapes, as :func:`os.listdir` returns them).

    For a network scheme (:data:`NETWORK_SCHEMES`) ``target`` is
    ``[user@]host[:port]/path`` as written, and ``password`` holds the URL's
    password, kept out of ``str()``, ``repr()`` and comparisons.
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
        # Percent-encoded, so the text is printable ASCII without markup or control
        # characters, and parse_url(str(url)) == url for every target (bytes that
        # are not UTF-8, as os.listdir returns them, travel as surrogate escapes).
        if self.scheme in NETWORK_SCHEMES:
            base = f"{self.scheme}://{self.target}"
        else:
            safe = "/:@+,;=" if self.target.startswith("/") else ":@+,;="
            base = f"{self.scheme}://{quote(self.target, safe=safe, errors='surrogateescape')}"
        if not self.query:
            return base
        return (
            base
            + "?"
            + "&".join(
                f"{quote(k, safe='', errors='surrogateescape')}="
                f"{quote(v, safe='', errors='surrogateescape')}"
                for k, v in self.query
            )
        )


def parse_url(url: str | QueueURL | None) -> QueueURL:
    """Parse ``url`` (or ``$UNIMQ_URL`` when it is None) into a :class:`QueueURL`.

    Percent-escapes are decoded (``%20`` is a space, ``%09`` a TAB). Control
    characters (C0, DEL, C1) written as they are never belong to a URL and
    are refused, rather than dropped as :func:`urllib.parse.urlsplit` drops
    TAB, CR and LF.

    :raises InvalidURL: if the text is not ``scheme://target[?options]``, holds
        a control character, a NUL (also as ``%00``), a fragment, an option
        given twice, or both a host part and a path.
    :raises InvalidName: if it names no queue (``memory:///``, ``sysv://``).
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
    control = _CONTROL.search(url)
    if control is not None:
        char = control.group()
        label = _CONTROL_NAMES.get(char, f"U+{ord(char):04X}")
        spell = (
            "no queue name can hold NUL"
            if char == "\x00"
            else f"a name that really holds one spells it percent-encoded, %{ord(char):02X}"
            if char < "\x80"
            else "a name that really holds one spells it percent-encoded (UTF-8)"
        )
        raise InvalidURL(
            f"queue URL {url!r} contains the control character {label} at position "
            f"{control.start()}; control characters are never part of a URL ({spell})",
            url=url,
        )
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
    netloc = unquote(parts.netloc, errors="surrogateescape")
    path = unquote(parts.path, errors="surrogateescape")
    if netloc and path:
        raise InvalidURL(
            f"queue URL {url!r} has both a host part {netloc!r} and a path {path!r}; "
            f"use {scheme}:///{(netloc + path).lstrip('/')} or {scheme}://{netloc}",
            url=url,
        )
    if "\x00" in netloc + path:
        raise InvalidURL(f"queue URL {url!r} names a queue with a NUL character (%00)", url=url)
    target = netloc or path
    if not target.strip("/"):
        raise InvalidName(
            f"queue URL {url!r} names no queue: give a name or key after '{scheme}://', "
            "for example 'posix:///orders', 'sysv://51234' or 'memory://orders'",
            url=url,
        )
    return QueueURL(scheme, target, _query(url, parts.query))


def _query(url: str, query: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = parse_qsl(
            query,
            keep_blank_values=True,
            strict_parsing=bool(query),
            errors="surrogateescape",
        )
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
