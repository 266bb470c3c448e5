"""Deadlines and polling backoff, shared by the backends' wait loops.

All waiting is measured on the monotonic clock so that a wall-clock step
neither shortens nor lengthens a timeout.
"""

from __future__ import annotations

import time

__all__ = ["Backoff", "Deadline"]

_monotonic = time.monotonic


class Deadline:
    """The end of a wait: ``None`` timeout means never."""

    __slots__ = ("end",)

    def __init__(self, timeout: float | None) -> None:
        self.end = None if timeout is None else _monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (>= 0), or None for no deadline."""
        if self.end is None:
            return None
        left = self.end - _monotonic()
        return left if left > 0.0 else 0.0

    def expired(self) -> bool:
        return self.end is not None and _monotonic() >= self.end


class Backoff:
    """Sleep intervals for polling: start small, double, stay at a cap.

    The cap bounds the latency added when a message arrives while the caller
    sleeps (at most ``cap`` seconds, about half of it on average) and the CPU
    an idle waiter burns (about 1.5% of a core at 1.5 ms, measured by
    ``nox -s bench``); the start keeps quick hand-offs quick. Each sleep is
    clipped to the deadline.
    """

    __slots__ = ("cap", "delay")
    START = 0.00005
    CAP = 0.0015

    def __init__(self, start: float = START, cap: float = CAP) -> None:
        self.delay = start
        self.cap = cap

    def sleep(self, deadline: Deadline) -> None:
        """Sleep one interval (never past the deadline), then grow the interval."""
        delay = self.delay
        left = deadline.remaining()
        if left is not None and left < delay:
            delay = left
        if delay > 0:
            # time.sleep() runs signal handlers and lets their exceptions propagate.
            time.sleep(delay)
        self.delay = min(self.delay * 2, self.cap)
