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


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_KIT = _PACKAGE + "testing" + os.sep  # the contract kit is a caller, like user code


def _internal(filename: str) -> bool:
    """Whether a frame's file belongs to unimq or a backend package (unimq_*)."""
    if filename.startswith(_PACKAGE):
        return not filename.startswith(_KIT)
    return os.path.basename(os.path.dirname(filename)).startswith("unimq_")


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn with the location of the first caller outside unimq and its backends."""
    level = 2  # warnings.warn counts warn_user itself as 1
    frame = sys._getframe(1)
    while frame is not None and _internal(os.path.abspath(frame.f_code.co_filename)):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
