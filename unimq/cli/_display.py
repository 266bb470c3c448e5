"""Showing untrusted text (queue names, URLs, error messages) on a terminal.

Any local user can name a POSIX queue with any byte but '/' and NUL, so a name
may hold Rich markup (``[red]``), escape sequences or bidi controls that would
hide or spoof what root sees in ``unimq ls``. Everything the CLI prints for
people goes through :func:`visible` (control and other invisible characters
become ``\\xNN``-style escapes) and is handed to Rich as :class:`rich.text.Text`,
which Rich never parses as markup.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.markup import escape
from rich.table import Column
from rich.text import Text

__all__ = ["cell", "markup_safe", "url_column", "visible"]


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, backslash: bool = False) -> str:
    """``text`` with every character that is not printable shown as an escape.

    Non-printable means what :meth:`str.isprintable` says: control characters
    (C0, DEL, C1), format characters such as bidi overrides, separators other
    than the space, surrogates. With ``backslash``, a backslash is doubled so
    that an escape in the output cannot be mistaken for one in the text.
    """
    if text.isprintable() and not (backslash and "\\" in text):
        return text
    out = []
    for char in text:
        if char == "\\" and backslash:
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(_escape_char(char))
    return "".join(out)


def cell(text: str | None, *, backslash: bool = True) -> Text:
    """A Rich table cell showing ``text`` literally: no markup, no control characters."""
    return Text("" if text is None else visible(text, backslash=backslash))


def markup_safe(text: str) -> str:
    """``text`` made visible and markup-escaped, for Rich APIs that take markup strings."""
    return escape(visible(text))


def url_column(urls: Iterable[str], header: str = "URL") -> Column:
    """A table column that shows every URL whole, however narrow the terminal:
    a cut URL (``sysv://0x5…``) would name no queue, or another one. It gets
    the room of its longest URL, up to 24 columns, before the others (a SysV
    URL is 17), and a longer URL is folded over lines, never shortened."""
    width = max((len(u) for u in urls), default=0)
    return Column(header, overflow="fold", min_width=max(min(width, 24), len(header)))
