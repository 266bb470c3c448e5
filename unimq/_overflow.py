"""Overflow policies: what ``send`` does when the queue is full (``on_full``).

- ``"wait"``: the default; wait per ``timeout`` (no change to the handle).
- ``"drop_oldest"``: discard the message a receive would take next, then send;
  repeat until the new message fits. ``send`` never waits.
- ``"keep_latest"``: the queue holds at most the newest ``keep`` messages
  (default 1): before each send, discard from the head until fewer than
  ``keep`` are queued, then send (dropping more if it is still full).

The kernel has no atomic "replace", so a drop is a non-blocking receive
followed by a non-blocking send on the same handle. With other receivers at
the same time: every message is still taken exactly once (by a receiver, or
by the drop, never both); the message dropped is whatever is at the head at
that instant, so when a receiver empties a slot between the failed send and
the drop, one message is dropped that would not have had to be (at most one
per retry of this sender). With other senders, each sender drops for itself,
and a slot freed by one sender's drop can be taken by another sender.

Every drop is counted (``stat().dropped`` of the handle) and logged on the
``unimq`` logger at WARNING, at most once per :data:`LOG_INTERVAL` seconds
per handle (the line says how many were dropped since the last one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from unimq._errors import InvalidURL
from unimq._message import Message

if TYPE_CHECKING:
    from unimq._queue import Queue

__all__ = ["LOG_INTERVAL", "ON_FULL_VALUES", "OnFull", "Overflow", "parse_on_full"]

OnFull = Literal["wait", "drop_oldest", "keep_latest"]
ON_FULL_VALUES: tuple[OnFull, ...] = ("wait", "drop_oldest", "keep_latest")
#: Seconds between two "dropped" log lines of one handle.
LOG_INTERVAL = 10.0
#: Attempts at making room before falling back to waiting (only other senders
#: refilling the queue faster than this one drops can exhaust them).
_ROUNDS = 1000

_log = logging.getLogger("unimq")
_monotonic = time.monotonic


def parse_on_full(name: str, value: object) -> OnFull:
    """``"wait"``, ``"drop_oldest"`` or ``"keep_latest"``."""
    for allowed in ON_FULL_VALUES:
        if value == allowed:
            return allowed
    raise InvalidURL(
        f"option {name!r} must be one of 'wait', 'drop_oldest', 'keep_latest', not {value!r}"
    )


class Overflow:
    """The policy installed on one handle: wraps its send primitives."""

    def __init__(self, handle: Queue, policy: OnFull, keep: int | None) -> None:
        self.policy = policy
        self.keep = keep
        self.dropped = 0
        self._handle = handle
        self._lock = threading.Lock()
        self._unlogged = 0
        self._last_log: float | None = None
        self._send: Callable[[bytes, int, int], bool] = handle._send_nowait
        self._receive: Callable[[int], Message | None] = handle._receive_nowait
        self._send_wait: Callable[[bytes, int, int, float | None], bool] = handle._send_wait
        handle._send_nowait = self.send_nowait
        handle._send_wait = self.send_wait
        # A backend's one-call batch send would bypass the policy: batches go
        # message by message through it instead.
        handle._send_many_nowait = self.send_many_nowait  # type: ignore[method-assign]

    def send_nowait(self, data: bytes, mtype: int, priority: int) -> bool:
        if self.keep is not None:
            self._trim(self.keep - 1)
        send, receive = self._send, self._receive
        for _ in range(_ROUNDS):
            if send(data, mtype, priority):
                return True
            if receive(0) is not None:
                self._count(1)
            # else: a receiver emptied it meanwhile; the next send will fit
        return False

    def send_many_nowait(self, batch: list[tuple[bytes, int, int]], start: int) -> int:
        n = start
        try:
            while n < len(batch):
                data, mtype, priority = batch[n]
                if not self.send_nowait(data, mtype, priority):
                    break
                n += 1
        except Exception as exc:
            exc.unimq_sent = n - start  # type: ignore[attr-defined]
            raise
        return n - start

    def send_wait(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> bool:
        # Only reached when other senders kept the queue full through every round.
        if self.send_nowait(data, mtype, priority):
            return True
        return self._send_wait(data, mtype, priority, timeout)

    def _trim(self, most: int) -> None:
        excess = self._handle._stat().messages - most
        receive = self._receive
        dropped = 0
        while excess > 0 and receive(0) is not None:
            excess -= 1
            dropped += 1
        if dropped:
            self._count(dropped)

    def _count(self, n: int) -> None:
        with self._lock:
            self.dropped += n
            self._unlogged += n
            now = _monotonic()
            if self._last_log is not None and now - self._last_log < LOG_INTERVAL:
                return
            self._last_log = now
            count, self._unlogged = self._unlogged, 0
            total = self.dropped
        _log.warning(
            "%s: dropped %d message%s to make room (on_full=%s; %d in total by this handle)",
            self._handle.url,
            count,
            "" if count == 1 else "s",
            self.policy,
            total,
        )


def install(handle: Queue, policy: OnFull, keep: int | None) -> None:
    """Put ``policy`` on a freshly opened handle (nothing for ``"wait"``)."""
    if policy == "wait":
        return
    if policy == "keep_latest" and keep is None:
        keep = 1
    handle._overflow = Overflow(handle, policy, keep if policy == "keep_latest" else None)
    query = f"on_full={policy}" + (f"&keep={keep}" if policy == "keep_latest" else "")
    handle._url_text += ("&" if "?" in handle._url_text else "?") + query


def check(policy: OnFull, keep: int | None, access: str) -> None:
    """Refuse combinations that cannot work, before anything is opened."""
    if keep is not None and policy != "keep_latest":
        raise InvalidURL(f"option 'keep' only applies to on_full='keep_latest', not {policy!r}")
    if policy != "wait" and access != "rw":
        raise InvalidURL(
            f"on_full={policy!r} discards messages by receiving them, so it needs access='rw' "
            f"(this handle asks for access={access!r})"
        )
