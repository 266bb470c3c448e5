"""Whether backends may load their optional C hot paths.

Each kernel backend ships a small C extension for send/receive
(``unimq_posix._fast``, ``unimq_sysv._fast``), and unimq-redis one that turns
a batch's entries into Messages (``unimq_redis._fast``), built at install
time when a C compiler is present. Without it, or with ``UNIMQ_PURE_PYTHON=1`` in the
environment, the backend calls posix_ipc / sysv_ipc directly: same
behaviour, same errors, somewhat slower.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["accelerator_allowed", "load_channel"]


def accelerator_allowed() -> bool:
    """False when ``$UNIMQ_PURE_PYTHON`` asks for the pure-Python paths (read at import)."""
    return os.environ.get("UNIMQ_PURE_PYTHON", "").strip().lower() in ("", "0", "false", "no")


def load_channel(module: str) -> Any:
    """The ``Channel`` type of a backend's C extension, or None when it was not
    built (no C compiler at install time) or ``$UNIMQ_PURE_PYTHON`` turns it off."""
    if not accelerator_allowed():
        return None
    try:
        return importlib.import_module(module).Channel
    except ImportError:
        return None
