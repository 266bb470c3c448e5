"""System V message queue backend for unimq: ``sysv://KEY`` and ``sysv:///path?proj=N`` URLs.

Installed with ``pip install 'unimq[sysv]'``; :func:`unimq.open` imports it
on first use of a ``sysv://`` URL.
"""

from __future__ import annotations

from unimq_sysv._queue import ACCELERATED, SysVQueue

__all__ = ["ACCELERATED", "SysVQueue"]
