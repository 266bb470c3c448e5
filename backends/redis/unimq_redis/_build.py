"""A batch's entries become Messages: in C (``unimq_redis._fast``) when it
was built and ``$UNIMQ_PURE_PYTHON`` allows it, else in Python, the same way.

An entry is ``<seq16><run16><payload>`` (see :mod:`unimq_redis._scripts`);
:func:`extend_messages` appends ``Message(payload, mtype, priority)`` for
``entries[start:start + count]`` to ``out``; on an error it appends nothing.
"""

from __future__ import annotations

import importlib
import itertools
import operator
from typing import Any

from unimq import Message
from unimq._accel import accelerator_allowed

__all__ = ["ACCELERATED", "HEADER", "extend_messages"]

#: Bytes before an entry's payload: its seq and running total, 16 characters each.
HEADER = 32

_new = tuple.__new__
_repeat = itertools.repeat


def _python_extend(
    out: list[Any],
    entries: list[bytes],
    start: int,
    count: int,
    mtype: int,
    priority: int,
    cls: type[tuple[Any, ...]] = Message,
    header: int = HEADER,
) -> None:
    if start < 0 or count < 0 or header < 0 or count > len(entries) - start:
        raise ValueError(
            f"extend_messages(): entries {start}..{start + count} (header {header}) "
            f"out of a list of {len(entries)}"
        )
    part = entries if start == 0 and count == len(entries) else entries[start : start + count]
    # map/zip/min over the entries: no Python-level call per message (an entry
    # that is not bytes has no len(), or no bytes to slice: the replies are
    # read undecoded)
    try:
        fits = min(map(len, part), default=header) >= header
    except TypeError:
        fits = False
    if not fits:
        _refuse(part, start, header)
    payload = operator.itemgetter(slice(header, None))
    rows = zip(map(payload, part), _repeat(mtype), _repeat(priority), strict=False)
    out += map(_new, _repeat(cls), rows)


def _refuse(part: list[Any], start: int, header: int) -> None:
    """Raise the error for the first entry that is not a unimq entry."""
    for i, entry in enumerate(part, start):
        if not isinstance(entry, bytes):
            raise ValueError(
                f"entry {i} of the server's reply is {type(entry).__name__}, not bytes"
            )
        if len(entry) < header:
            raise ValueError(
                f"entry {i} of the server's reply is {len(entry)} bytes, shorter than "
                f"a unimq entry's {header}-byte header"
            )


def _load() -> Any:
    if not accelerator_allowed():
        return None
    try:
        return importlib.import_module("unimq_redis._fast").extend_messages
    except ImportError:
        return None


_c_extend = _load()

#: True when batches are built by the C extension.
ACCELERATED = _c_extend is not None

extend_messages = _c_extend if _c_extend is not None else _python_extend
