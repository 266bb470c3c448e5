"""Queue options: merged from the URL query and keyword arguments, then checked."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from unimq._errors import InvalidURL

__all__ = [
    "ACCESS_VALUES",
    "Access",
    "OptionParser",
    "check_timeout",
    "merge_options",
    "parse_access",
    "positive_int",
]

Access = Literal["rw", "r", "w"]
ACCESS_VALUES: tuple[Access, ...] = ("rw", "r", "w")

#: The largest value a numeric option may have: C long on Linux x86-64 is 64 bits,
#: but no queue attribute (mq_maxmsg, mq_msgsize, msg_qbytes) exceeds 2**31 - 1.
OPTION_MAX = 2**31 - 1

_DIGITS = {10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}

#: Converts one option's value (text from a URL or a Python value) or raises InvalidURL.
OptionParser = Callable[[str, object], object]


def positive_int(name: str, value: object) -> int:
    """An integer 1..OPTION_MAX, given as int or as ASCII decimal or 0x hex text."""
    if isinstance(value, bool):
        raise InvalidURL(f"option {name!r} must be a positive integer, not {value!r}")
    if isinstance(value, str):
        text = value.lower()
        digits = text[2:] if text.startswith("0x") else text
        base = 16 if digits is not text else 10
        if not digits or not digits.isascii() or not all(c in _DIGITS[base] for c in digits):
            raise InvalidURL(
                f"option {name!r} must be a positive integer (decimal or 0x hex), not {value!r}"
            )
        value = int(digits, base) if len(digits) <= 20 else OPTION_MAX + 1
    if not isinstance(value, int):
        raise InvalidURL(f"option {name!r} must be a positive integer, not {type(value).__name__}")
    if value < 1:
        raise InvalidURL(f"option {name!r} must be at least 1, got {value}")
    if value > OPTION_MAX:
        raise InvalidURL(
            f"option {name!r} is {value}, beyond any queue a kernel can make "
            f"(at most {OPTION_MAX}); ask for less"
        )
    return value


def parse_access(name: str, value: object) -> Access:
    """``"rw"``, ``"r"`` or ``"w"``."""
    for allowed in ACCESS_VALUES:
        if value == allowed:
            return allowed
    raise InvalidURL(f"option {name!r} must be one of 'rw', 'r', 'w', not {value!r}")


def merge_options(
    scheme: str,
    query: Mapping[str, str],
    kwargs: Mapping[str, object],
    parsers: Mapping[str, OptionParser],
) -> dict[str, Any]:
    """Merge URL options and keyword options into one checked dict.

    :raises InvalidURL: for an unknown option (naming the valid ones), a value
        that does not parse, or the same option given twice with different values.
    """
    merged: dict[str, Any] = {}
    for source, items in (("URL", query), ("keyword", kwargs)):
        for name, raw in items.items():
            parser = parsers.get(name)
            if parser is None:
                valid = ", ".join(sorted(parsers))
                raise InvalidURL(
                    f"unknown {source} option {name!r} for {scheme}:// queues; "
                    f"valid options: {valid}"
                )
            value = parser(name, raw)
            if name in merged and merged[name] != value:
                raise InvalidURL(
                    f"option {name!r} is {merged[name]!r} in the URL but {value!r} as a keyword "
                    "argument; give it once"
                )
            merged[name] = value
    return merged


def check_timeout(timeout: float | None) -> float | None:
    """Validate a timeout: None (wait forever), 0 (never wait) or seconds > 0.

    ``math.inf`` means forever, like None.

    :raises ValueError: for a negative or NaN timeout, before any system call.
    :raises TypeError: for a non-number.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"'timeout' must be a number or None, not {type(timeout).__name__}")
    try:
        value = float(timeout)
    except OverflowError:  # an int beyond float: longer than any clock, so "wait"
        return None
    if not value >= 0:  # also catches NaN
        raise ValueError("'timeout' must be a non-negative number")
    if math.isinf(value):
        return None
    return value
