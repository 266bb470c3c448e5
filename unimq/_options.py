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

#: Converts one option's value (text from a URL or a Python value) or raises InvalidURL.
OptionParser = Callable[[str, object], object]


def positive_int(name: str, value: object) -> int:
    """An integer >= 1, given as int or decimal text."""
    if isinstance(value, bool):
        raise InvalidURL(f"option {name!r} must be a positive integer, not {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise InvalidURL(f"option {name!r} must be a positive integer, not {value!r}") from None
    if not isinstance(value, int):
        raise InvalidURL(f"option {name!r} must be a positive integer, not {type(value).__name__}")
    if value < 1:
        raise InvalidURL(f"option {name!r} must be at least 1, got {value}")
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
    if not timeout >= 0:  # also catches NaN
        raise ValueError("'timeout' must be a non-negative number")
    if math.isinf(timeout):
        return None
    return float(timeout)
