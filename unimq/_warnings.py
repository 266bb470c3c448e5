"""Warnings unimq emits, and how they point at the caller's line."""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["AttributeMismatchWarning", "warn_user"]


class AttributeMismatchWarning(UserWarning):
    """An existing queue was opened with attribute options that differ from its own.

    Emitted by :func:`unimq.open` whenever attribute options are given
    (``max_messages``, ``max_message_size``, ``max_bytes``), with or without
    ``create=True``, and the queue already exists with other values: the
    kernel keeps the existing queue's attributes (POSIX mq_open ignores mq_attr
    for an existing name; SysV keeps msg_qbytes), so the queue works, but not
    with the limits the caller asked for. Turn it into an error with
    ``warnings.simplefilter("error", unimq.AttributeMismatchWarning)``.
    """


def _internal(filename: str) -> bool:
    parts = filename.split(os.sep)
    return any(p == "unimq" or p.startswith("unimq_") for p in parts[-3:-1])


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn with the location of the first caller outside unimq and its backends."""
    level = 2  # warnings.warn counts warn_user itself as 1
    frame = sys._getframe(1)
    while frame is not None and _internal(os.path.normpath(frame.f_code.co_filename)):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
