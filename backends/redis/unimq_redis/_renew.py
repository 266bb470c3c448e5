"""Keeping a temporary redis:// queue alive: its keys expire ``ttl`` seconds
after the last renewal, and the creating handle renews them from a daemon
thread every ``ttl / 3`` seconds while it is open, whether or not anyone uses
the handle. After a crash nothing renews them, so the server drops the queue.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from typing import Protocol

from unimq import InvalidURL, UnimqError

__all__ = ["TTL_MAX", "TTL_MIN", "Renewer", "parse_ttl"]

_log = logging.getLogger("unimq")

#: Bounds of ``ttl`` (seconds): renewals every ttl/3 must be possible, and a
#: queue that should outlive a day without its creator is not temporary.
TTL_MIN = 0.3
TTL_MAX = 86_400.0
# How long close() waits for a renewal in flight before leaving the daemon thread.
_JOIN = 5.0


def parse_ttl(name: str, value: object) -> float:
    """Seconds, as a number or decimal text, within TTL_MIN..TTL_MAX."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidURL(f"option {name!r} must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidURL(f"option {name!r} must be a number of seconds, not {value!r}") from None
    if not (math.isfinite(seconds) and TTL_MIN <= seconds <= TTL_MAX):
        raise InvalidURL(
            f"option {name!r} must be {TTL_MIN} to {TTL_MAX:.0f} seconds, got {value!r}"
        )
    return seconds


class _Renewable(Protocol):
    @property
    def url(self) -> str: ...
    def _renew(self) -> bool: ...


class Renewer:
    """The daemon thread renewing one handle's queue; it holds the handle
    weakly, so an unreferenced handle is still collected (and closed)."""

    def __init__(self, handle: _Renewable, ttl: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_run,
            args=(weakref.ref(handle), ttl / 3, self._stop),
            name=f"unimq renew {handle.url}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not threading.current_thread():
            thread.join(_JOIN)


def _run(ref: weakref.ref[_Renewable], interval: float, stop: threading.Event) -> None:
    failing = False
    while not stop.wait(interval):
        handle = ref()
        if handle is None:
            return
        url = handle.url
        try:
            alive = handle._renew()
        except UnimqError as exc:
            if not failing:
                _log.warning(
                    "could not renew the expiry of temporary %s (%s); retrying: it expires "
                    "if this lasts its ttl",
                    url,
                    exc,
                )
            failing = True
            continue
        finally:
            handle = None
        if failing:
            _log.info("renewing temporary %s again", url)
            failing = False
        if not alive:
            _log.debug("temporary %s is gone; renewal stops", url)
            return
