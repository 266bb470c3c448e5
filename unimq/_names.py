"""Checks for POSIX queue names and SysV keys, done before any system call."""

from __future__ import annotations

import os
import re

from unimq._errors import InvalidKey, InvalidName

__all__ = [
    "ID_PREFIX",
    "KEY_MAX",
    "NAME_MAX",
    "format_key",
    "ftok",
    "parse_number",
    "posix_name",
    "sysv_id",
    "sysv_key",
]

NAME_MAX = 255
KEY_MAX = 0xFFFFFFFF
#: ``sysv://id:65538`` addresses a SysV queue by its identifier (msqid), the
#: only address an IPC_PRIVATE queue (key 0) has.
ID_PREFIX = "id:"
#: ASCII decimal (an optional '-': key_t is a signed int in C) or 0x hex, nothing else:
#: no sign '+', no spaces, no '_' separators, no non-ASCII digits such as '٣'.
_NUMBER = re.compile(r"(-?[0-9]+|0[xX][0-9a-fA-F]+)\Z", re.ASCII)
_ID = re.compile(r"id:([0-9]+)\Z", re.ASCII)


def parse_number(text: str) -> int | None:
    """``text`` as an int if it is ASCII decimal (``-`` allowed) or ``0x`` hex, else None.

    Stricter than :func:`int`, which also takes ``"+5"``, ``" 5"``, ``"1_000"``
    and digits of other scripts (``"٣"``): a key or number in a URL is
    spelled one way only.
    """
    if not _NUMBER.match(text):
        return None
    return int(text, 16) if text[1:2] in ("x", "X") else int(text, 10)


def sysv_id(target: str) -> int | None:
    """The msqid of an identifier address (``id:65538``), or None for any other target."""
    found = _ID.match(target)
    return None if found is None else int(found.group(1))


def posix_name(target: str, *, url: str | None = None) -> str:
    """Return ``target`` if it is a valid POSIX queue name.

    A valid name is "/" followed by 1..255 characters, none of them "/" or NUL.

    :raises InvalidName: otherwise, saying which rule it breaks.
    """
    shown = url or target
    if not target.startswith("/"):
        raise InvalidName(
            f"POSIX queue name {target!r} must start with '/' (URL form: posix:///name)",
            url=url,
        )
    rest = target[1:]
    if not rest:
        raise InvalidName(f"{shown!r} has an empty POSIX queue name; use posix:///name", url=url)
    if "/" in rest:
        raise InvalidName(
            f"POSIX queue name {target!r} contains a second '/'; "
            "a name is '/' plus characters without '/'",
            url=url,
        )
    if "\x00" in rest:
        raise InvalidName(f"POSIX queue name {target!r} contains a NUL character", url=url)
    if len(rest.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise InvalidName(
            f"POSIX queue name is {len(rest.encode('utf-8', 'surrogateescape'))} bytes after "
            f"the '/'; the kernel allows at most {NAME_MAX} (NAME_MAX)",
            url=url,
        )
    if rest in (".", ".."):
        raise InvalidName(f"POSIX queue name {target!r} is reserved", url=url)
    return target


def ftok(path: str, proj: int) -> int:
    """The key glibc's ftok(3) derives from ``path`` and ``proj``, as an unsigned int.

    :raises InvalidKey: if ``path`` cannot be stat()ed or ``proj`` is out of 1..255.
    """
    if not 1 <= proj <= 255:
        raise InvalidKey(f"ftok proj must be 1..255, got {proj} (only its low 8 bits are used)")
    if "\x00" in path:
        raise InvalidKey(f"cannot derive a SysV key from {path!r}: a path has no NUL character")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidKey(
            f"cannot derive a SysV key from {path!r}: {exc.strerror}; ftok needs an existing file",
            errno=exc.errno,
        ) from None
    return (st.st_ino & 0xFFFF) | ((st.st_dev & 0xFF) << 16) | ((proj & 0xFF) << 24)


def sysv_key(target: str, proj: str | int | None = None, *, url: str | None = None) -> int:
    """Turn a URL target into a SysV key (unsigned 32-bit, never 0).

    ``target`` is decimal (``51234``), hex (``0xc822``) or, when it starts
    with "/", a path for ftok together with ``proj``.

    :raises InvalidKey: for anything else.
    """
    if target.startswith("/"):
        if proj is None:
            proj_value = 1
        elif isinstance(proj, str):
            number = parse_number(proj)
            if number is None:
                raise InvalidKey(
                    f"ftok proj must be an integer 1..255 (decimal or 0x hex), got {proj!r}",
                    url=url,
                )
            proj_value = number
        elif isinstance(proj, int) and not isinstance(proj, bool):
            proj_value = proj
        else:
            raise InvalidKey(f"ftok proj must be an integer 1..255, got {proj!r}", url=url)
        return ftok(target, proj_value)
    if proj is not None:
        raise InvalidKey(
            "'proj' only applies to an ftok path (sysv:///path?proj=N), "
            f"not to the numeric key {target!r}",
            url=url,
        )
    msqid = sysv_id(target)
    if msqid is not None:
        raise InvalidKey(
            f"sysv://{target} names a queue by its identifier (msqid {msqid}), not by a key; "
            "such an address can be stat'ed, watched and removed (unimq stat, unimq watch, "
            "unimq rm, unimq.remove(), unimq.system.queue_stat()), but msgget() opens "
            "queues by key only, so it cannot be opened to send or receive",
            url=url,
        )
    key = parse_number(target)
    if key is None:
        raise InvalidKey(
            f"SysV key {target!r} is not a number: use ASCII decimal (sysv://51234), "
            "0x hex (sysv://0xc822) or an ftok path (sysv:///etc/hosts?proj=65)",
            url=url,
        )
    if key < 0:
        if key < -(2**31):
            raise InvalidKey(f"SysV key {target!r} is outside 32 bits", url=url)
        key &= KEY_MAX
    if key > KEY_MAX:
        raise InvalidKey(f"SysV key {target!r} is outside 32 bits (max 0xffffffff)", url=url)
    if key == 0:
        raise InvalidKey(
            "SysV key 0 is IPC_PRIVATE, which no other process can open by key; pick another key",
            url=url,
        )
    return key


def format_key(key: int) -> str:
    """The key as ipcs prints it: ``0x0000c822``."""
    return f"0x{key & KEY_MAX:08x}"
