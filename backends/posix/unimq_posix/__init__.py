"""POSIX message queue backend for unimq: ``posix:///name`` URLs.

Installed with ``pip install 'unimq[posix]'``; :func:`unimq.open` imports it
on first use of a ``posix://`` URL.
"""

from __future__ import annotations

from unimq_posix._queue import ACCELERATED, PosixQueue

__all__ = ["ACCELERATED", "PosixQueue"]
