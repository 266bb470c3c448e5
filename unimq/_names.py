"""Checks for POSIX queue names and SysV keys, done before any system call."""

from __future__ import annotations

import os

from unimq._errors import InvalidKey, InvalidName

__all__ = ["KEY_MAX", "NAME_MAX", "format_key", "ftok", "posix_name", "sysv_key"]

NAME_MAX = 255
KEY_MAX = 0xFFFFFFFF


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
        else:
            try:
                proj_value = int(proj, 0) if isinstance(proj, str) else int(proj)
            except ValueError:
                raise InvalidKey(
                    f"ftok proj must be an integer 1..255, got {proj!r}", url=url
                ) from None
        return ftok(target, proj_value)
    if proj is not None:
        raise InvalidKey(
            "'proj' only applies to an ftok path (sysv:///path?proj=N), "
            f"not to the numeric key {target!r}",
            url=url,
        )
    text = target.strip()
    try:
        key = int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text, 10)
    except ValueError:
        raise InvalidKey(
            f"SysV key {target!r} is not a number: use decimal (sysv://51234), "
            "hex (sysv://0xc822) or an ftok path (sysv:///etc/hosts?proj=65)",
            url=url,
        ) from None
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
