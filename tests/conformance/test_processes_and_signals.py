"""Handles crossing process boundaries, and waits interrupted by real signals."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import unimq
from tests.conformance.conftest import small_options
from tests.conftest import UrlFactory


def _echo_child(requests: unimq.Queue, replies: unimq.Queue, count: int) -> None:
    """Runs in a child: receives ``count`` messages and sends each back upper-cased."""
    try:
        for _ in range(count):
            replies.send(requests.receive(timeout=20).data.upper(), timeout=20)
    finally:
        requests.close()
        replies.close()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_handle_pickles_into_child_process(
    kind: str, q: unimq.Queue, make_url: UrlFactory, method: str
) -> None:
    if not q.capabilities & unimq.Capability.INTERPROCESS:
        pytest.skip("memory queues live in one process")
    with unimq.open(make_url(kind), create=True, **small_options(kind, 4, 64)) as replies:
        ctx: Any = multiprocessing.get_context(method)
        child = ctx.Process(target=_echo_child, args=(q, replies, 3))
        child.start()
        try:
            got = []
            for word in (b"one", b"two", b"three"):
                q.send(word, timeout=5)
                got.append(replies.receive(timeout=20).data)
            assert got == [b"ONE", b"TWO", b"THREE"]
        finally:
            child.join(timeout=20)
            if child.is_alive():
                child.kill()
        assert child.exitcode == 0


def _send_later(url: str, delay: float, payload: bytes) -> None:
    time.sleep(delay)
    with unimq.open(url) as h:
        h.send(payload, timeout=5)


def test_receive_waits_for_another_process(q: unimq.Queue, url: str) -> None:
    if not q.capabilities & unimq.Capability.INTERPROCESS:
        pytest.skip("memory queues live in one process")
    ctx: Any = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_send_later, args=(url, 0.3, b"from child"))
    child.start()
    try:
        assert q.receive(timeout=None).data == b"from child"
    finally:
        child.join(timeout=20)
    assert child.exitcode == 0


class Boom(Exception):
    pass


@pytest.fixture
def alarm() -> Iterator[list[int]]:
    """A SIGALRM handler that counts its calls; restored afterwards."""
    calls: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: calls.append(signum))
    yield calls
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_signal_during_receive_runs_handler_and_resumes(
    q: unimq.Queue, alarm: list[int], timeout: float | None
) -> None:
    # Several alarms land during the wait; the message comes after them.
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
    timer = threading.Timer(0.4, q.send, args=(b"after signals",))
    timer.start()
    try:
        msg = q.receive(timeout=timeout)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        timer.join()
    assert msg.data == b"after signals"
    assert len(alarm) >= 2
    assert q.qsize() == 0


def test_signal_during_timed_receive_keeps_the_deadline(q: unimq.Queue, alarm: list[int]) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.03, 0.03)
    start = time.monotonic()
    try:
        with pytest.raises(unimq.QueueEmpty):
            q.receive(timeout=0.3)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.monotonic() - start
    assert elapsed >= 0.29
    assert len(alarm) >= 2
    # Resuming with the *remaining* time, not the full timeout each time.
    assert elapsed < 3.0


def test_signal_during_blocked_send_resumes(open_queue: object, alarm: list[int]) -> None:
    assert callable(open_queue)
    q: unimq.Queue = open_queue(capacity=1, size=16)
    q.send(b"f" * 16)
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
    timer = threading.Timer(0.4, q.receive, kwargs={"timeout": 5})
    timer.start()
    try:
        q.send(b"g" * 16, timeout=None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        timer.join()
    assert len(alarm) >= 2
    assert q.receive(timeout=0).data == b"g" * 16


def test_handler_exception_propagates_and_nothing_is_lost(q: unimq.Queue) -> None:
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


def test_keyboard_interrupt_propagates(q: unimq.Queue) -> None:
    threading.Timer(0.1, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        q.receive(timeout=5)
