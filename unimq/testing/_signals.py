"""Contract: waits interrupted by real signals run the handlers and resume
with the time left (PEP 475); what a handler raises propagates (every backend)."""

from __future__ import annotations

import os
import signal
import time

import pytest

import unimq
from unimq.testing._fixtures import BackendFixtures, OpenQueue
from unimq.testing._waiting import Alarms, in_background


class Boom(Exception):
    """Raised by a test's signal handler."""


class SignalContract(BackendFixtures):
    """Signals during blocked sends and receives."""

    @pytest.mark.parametrize("timeout", [None, 5.0])
    def test_signal_during_receive_runs_handler_and_resumes(
        self, q: unimq.Queue, alarms: Alarms, timeout: float | None
    ) -> None:
        # Several alarms land during the wait; the message comes after them.
        alarms.every(0.05)
        try:
            with in_background(lambda: q.send(b"after signals"), when=lambda _: alarms.wait_for(3)):
                msg = q.receive(timeout=timeout)
        finally:
            alarms.stop()
        assert msg.data == b"after signals"
        assert len(alarms.calls) >= 2
        assert q.qsize() == 0

    def test_signal_during_timed_receive_keeps_the_deadline(
        self, q: unimq.Queue, alarms: Alarms
    ) -> None:
        alarms.every(0.03)
        start = time.monotonic()
        try:
            with pytest.raises(unimq.QueueEmpty):
                q.receive(timeout=0.3)
        finally:
            alarms.stop()
        elapsed = time.monotonic() - start
        assert elapsed >= 0.29
        assert len(alarms.calls) >= 2
        # Resuming with the *remaining* time, not the full timeout each time.
        assert elapsed < 3.0

    def test_signal_during_blocked_send_resumes(
        self, open_queue: OpenQueue, alarms: Alarms
    ) -> None:
        q = open_queue(capacity=1, size=16)
        q.send(b"f" * 16)
        alarms.every(0.05)
        try:
            with in_background(lambda: q.receive(timeout=5), when=lambda _: alarms.wait_for(3)):
                q.send(b"g" * 16, timeout=None)
        finally:
            alarms.stop()
        assert len(alarms.calls) >= 2
        assert q.receive(timeout=0).data == b"g" * 16

    def test_handler_exception_propagates_and_nothing_is_lost(self, q: unimq.Queue) -> None:
        def handler(signum: int, frame: object) -> None:
            raise Boom

        old = signal.signal(signal.SIGALRM, handler)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(Boom):
                q.receive(timeout=None)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        # The interrupted receive consumed nothing.
        q.send(b"still here")
        assert q.receive(timeout=1).data == b"still here"
        assert q.qsize() == 0

    def test_keyboard_interrupt_propagates(self, q: unimq.Queue) -> None:
        with (
            pytest.raises(KeyboardInterrupt),
            in_background(lambda: os.kill(os.getpid(), signal.SIGINT)),
        ):
            q.receive(timeout=5)
