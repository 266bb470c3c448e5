"""Handle lifetime and argument checks, the same on every backend.

close() from another thread wakes waiters with QueueClosed, and the closed
handle never takes or enqueues anything afterwards, even when a new queue
gets the freed descriptor numbers (kernel-facts pitfall 20). Arguments are
checked by type on every call, defaults included; huge timeouts mean "wait".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import unimq
from tests.conformance.conftest import OpenQueue, small_options
from tests.conftest import UrlFactory

WAKE = 10.0  # generous bound on how long a woken waiter may take (never reached when it works)


class Waiter(threading.Thread):
    """Runs ``fn`` in a thread and keeps its result or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.started_call = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        self.started_call.set()
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc


def _blocked(q: unimq.Queue, waiter: Waiter) -> None:
    """Return once ``waiter`` is (very likely) inside its wait: it started its
    call, and it is still running after the non-blocking attempt had time to
    fail. A wait that ended early shows up as a finished thread below."""
    assert waiter.started_call.wait(WAKE)
    waiter.join(0.2)
    assert waiter.is_alive(), f"the waiter returned early: {waiter.result!r} {waiter.error!r}"


def _other_queue(kind: str, make_url: UrlFactory) -> unimq.Queue:
    return unimq.open(make_url(kind), create=True, **small_options(kind, 4, 64))


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_close_wakes_a_receiver(
    kind: str, q: unimq.Queue, make_url: UrlFactory, timeout: float | None
) -> None:
    waiter = Waiter(lambda: q.receive(timeout=timeout))
    waiter.start()
    _blocked(q, waiter)
    q.close()
    # Another queue that may get the freed descriptor numbers, with a message waiting.
    with _other_queue(kind, make_url) as b:
        b.send(b"for b only")
        waiter.join(WAKE)
        assert not waiter.is_alive(), "close() did not wake the blocked receive"
        assert isinstance(waiter.error, unimq.QueueClosed), (waiter.result, waiter.error)
        assert b.receive(timeout=0).data == b"for b only"
        b.remove()


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_close_wakes_a_sender(
    kind: str, open_queue: OpenQueue, url: str, make_url: UrlFactory, timeout: float | None
) -> None:
    q = open_queue(capacity=1, size=64)
    q.send(b"x" * 64)
    waiter = Waiter(lambda: q.send(b"y" * 64, timeout=timeout))
    waiter.start()
    _blocked(q, waiter)
    q.close()
    with _other_queue(kind, make_url) as b:
        waiter.join(WAKE)
        assert not waiter.is_alive(), "close() did not wake the blocked send"
        assert isinstance(waiter.error, unimq.QueueClosed), (waiter.result, waiter.error)
        assert b.stat().messages == 0, "the closed handle's send landed in another queue"
        b.remove()
    if kind != "memory":  # the queue itself still holds exactly the first message
        with unimq.open(url) as again:
            assert again.receive(timeout=0).data == b"x" * 64
            with pytest.raises(unimq.QueueEmpty):
                again.receive(timeout=0)


def test_every_call_after_close(q: unimq.Queue) -> None:
    q.close()
    q.close()  # idempotent
    for call in (
        lambda: q.send(b"x"),
        lambda: q.receive(timeout=0),
        lambda: q.receive(),
        q.stat,
        q.remove,
        q.qsize,
    ):
        with pytest.raises(unimq.QueueClosed):
            call()


def test_many_waiters_all_wake(q: unimq.Queue) -> None:
    waiters = [Waiter(lambda: q.receive()) for _ in range(4)]
    for w in waiters:
        w.start()
    for w in waiters:
        _blocked(q, w)
    q.close()
    for w in waiters:
        w.join(WAKE)
        assert not w.is_alive()
        assert isinstance(w.error, unimq.QueueClosed)


# ---------------------------------------------------------------------- argument types


def _caps(q: unimq.Queue) -> tuple[bool, bool]:
    return bool(q.capabilities & unimq.Capability.MTYPE), bool(
        q.capabilities & unimq.Capability.PRIORITY
    )


@pytest.mark.parametrize("bad", [True, False, 1.0, 0.0, "1", None])
def test_send_tag_types_are_checked(q: unimq.Queue, bad: object) -> None:
    with pytest.raises(TypeError, match="mtype"):
        q.send(b"x", mtype=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="priority"):
        q.send(b"x", priority=bad)  # type: ignore[arg-type]
    assert q.stat().messages == 0, "a refused send enqueued something"


@pytest.mark.parametrize("bad", [True, False, 0.0, 1.0, "0", None])
def test_receive_mtype_type_is_checked(q: unimq.Queue, bad: object) -> None:
    q.send(b"keep")
    with pytest.raises(TypeError, match="mtype"):
        q.receive(mtype=bad, timeout=0)  # type: ignore[arg-type]
    assert q.receive(timeout=0).data == b"keep"


@pytest.mark.parametrize("bad", [True, False, "1", b"1", [1]])
def test_timeout_type_is_checked(q: unimq.Queue, bad: object) -> None:
    with pytest.raises(TypeError, match="timeout"):
        q.send(b"x", timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout"):
        q.receive(timeout=bad)  # type: ignore[arg-type]
    assert q.stat().messages == 0


def test_int_subclasses_and_index_types_are_ints(q: unimq.Queue) -> None:
    class Tag(int):
        pass

    has_mtype, has_priority = _caps(q)
    q.send(b"a", mtype=Tag(1), priority=Tag(0))
    if has_mtype:
        q.send(b"b", mtype=Tag(3))
    if has_priority:
        q.send(b"c", priority=Tag(2))
    got = [q.receive(timeout=0) for _ in range(1 + has_mtype + has_priority)]
    assert all(type(m.mtype) is int and type(m.priority) is int for m in got)


@pytest.mark.parametrize("huge", [86400.0 * 30, 1e12, 1e300, 10**400])
def test_huge_timeouts_wait_instead_of_overflowing(q: unimq.Queue, huge: float) -> None:
    q.send(b"ready", timeout=huge)
    assert q.receive(timeout=huge).data == b"ready"
    # And a real wait with a huge timeout: a message sent by another thread ends it.
    sender = threading.Timer(0.05, lambda: q.send(b"later"))
    sender.start()
    try:
        assert q.receive(timeout=huge).data == b"later"
    finally:
        sender.join()


@pytest.mark.parametrize(
    "value", ["99999999999999999999", "2147483648", "0", "-1", "1_000", " 5", "٣", "+5"]
)
def test_option_values_out_of_range_are_invalid_url(
    kind: str, make_url: UrlFactory, value: str
) -> None:
    name = "max_bytes" if kind == "sysv" else "max_messages"
    url = make_url(kind)
    with pytest.raises(unimq.InvalidURL, match=name):
        unimq.open(f"{url}?{name}={value}", create=True)
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)  # nothing was created


# ---------------------------------------------------------------------- received messages


def test_received_messages_equal_and_hash_like_constructed_ones(q: unimq.Queue) -> None:
    has_mtype, has_priority = _caps(q)
    mtype = 7 if has_mtype else 1
    priority = 3 if has_priority else 0
    q.send(b"payload", mtype=mtype, priority=priority)
    got = q.receive(timeout=0)
    built = unimq.Message(b"payload", mtype, priority)
    assert got == built
    assert hash(got) == hash(built)
    assert hash(got) == hash((b"payload", mtype, priority))
    assert {got: 1}[built] == 1
    assert type(got) is unimq.Message
    assert got._asdict() == {"data": b"payload", "mtype": mtype, "priority": priority}


def test_mismatch_warning_without_create(kind: str, open_queue: OpenQueue, url: str) -> None:
    open_queue(capacity=4, size=64)
    name, value = ("max_bytes", 999) if kind == "sysv" else ("max_messages", 3)
    with pytest.warns(unimq.AttributeMismatchWarning, match=name) as record:
        options: dict[str, Any] = {name: value}
        unimq.open(url, **options).close()
    # The warning points at this file, the caller's code, not at unimq.
    assert record[0].filename == __file__
