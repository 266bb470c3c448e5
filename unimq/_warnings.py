"""Warnings unimq emits."""

from __future__ import annotations

__all__ = ["AttributeMismatchWarning"]


class AttributeMismatchWarning(UserWarning):
    """An existing queue was opened with ``create=True`` and different attributes.

    The kernel keeps the existing queue's attributes (POSIX mq_open with
    O_CREAT ignores mq_attr when the name exists; SysV keeps msg_qbytes), so
    the queue works, but not with the limits the caller asked for.
    """
