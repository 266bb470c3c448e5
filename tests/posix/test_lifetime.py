"""Handle lifetime on POSIX, on both channels (C and the posix_ipc fallback).

Issue 16 item 1: a thread waiting on a handle that another thread closes must
wake with QueueClosed and never take or enqueue anything afterwards, even
when a new queue gets the freed descriptor numbers at once (kernel-facts 20).
"""

from __future__ import annotations

import errno
from typing import Any

import pytest

import unimq
from tests.conftest import UrlFactory

pytest.importorskip("unimq_posix")
import unimq_posix._queue as posix_queue
from unimq_posix import PosixQueue
from unimq_posix._channel import PyChannel
from unimq_posix._channel import unlink as py_unlink

from unimq.testing import Waiter

WAKE = 10.0
SMALL: dict[str, Any] = {"max_messages": 1, "max_message_size": 64}


@pytest.fixture(params=["c", "py"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on the C channel and on the fallback (posix_ipc)."""
    if request.param == "py":
        monkeypatch.setattr(posix_queue, "_Channel", PyChannel)
        monkeypatch.setattr(posix_queue, "_unlink", py_unlink)
    elif not posix_queue.ACCELERATED:
        pytest.skip("unimq_posix._fast is not built (or UNIMQ_PURE_PYTHON is set)")
    return str(request.param)


def _channel_type(q: unimq.Queue) -> str:
    return "py" if isinstance(q._channel, PyChannel) else "c"  # type: ignore[attr-defined]


@pytest.mark.parametrize("timeout", [30.0, None])
def test_receive_waiter_of_a_closed_handle_takes_nothing_from_the_next_queue(
    path: str, make_url: UrlFactory, timeout: float | None
) -> None:
    """The exact scenario of item 1, repeated: A's waiter, close A, open B
    (which may get A's descriptor numbers), send to B."""
    for _ in range(5):
        a = unimq.open(make_url("posix"), create=True, **SMALL)
        assert _channel_type(a) == path
        waiter = Waiter(lambda q=a: q.receive(timeout=timeout))  # type: ignore[misc]
        waiter.start()
        assert waiter.started_call.wait(WAKE)
        waiter.join(0.1)
        assert waiter.is_alive(), (waiter.result, waiter.error)
        a.close()
        with unimq.open(make_url("posix"), create=True, **SMALL) as b:
            b.send(b"for b only")
            waiter.join(WAKE)
            assert not waiter.is_alive(), "close() did not wake the receive"
            assert isinstance(waiter.error, unimq.QueueClosed), (waiter.result, waiter.error)
            assert b.receive(timeout=0).data == b"for b only"
            b.remove()
        a_url = a.url
        unimq.remove(a_url)


@pytest.mark.parametrize("timeout", [30.0, None])
def test_send_waiter_of_a_closed_handle_enqueues_nothing_anywhere(
    path: str, make_url: UrlFactory, timeout: float | None
) -> None:
    for _ in range(5):
        url = make_url("posix")
        a = unimq.open(url, create=True, **SMALL)
        a.send(b"first")
        waiter = Waiter(lambda q=a: q.send(b"second", timeout=timeout))  # type: ignore[misc]
        waiter.start()
        assert waiter.started_call.wait(WAKE)
        waiter.join(0.1)
        assert waiter.is_alive(), (waiter.result, waiter.error)
        a.close()
        with unimq.open(make_url("posix"), create=True, **SMALL) as b:
            waiter.join(WAKE)
            assert not waiter.is_alive(), "close() did not wake the send"
            assert isinstance(waiter.error, unimq.QueueClosed), (waiter.result, waiter.error)
            assert b.stat().messages == 0, "the closed handle's send landed in another queue"
            b.remove()
        with unimq.open(url) as again:
            assert [m.data for m in again.drain()] == [b"first"]
            again.remove()


def test_close_racing_the_start_of_a_wait(path: str, make_url: UrlFactory) -> None:
    """close() at any point of a starting wait: QueueClosed (or a timeout), never
    another queue's message."""
    for _ in range(30):
        a = unimq.open(make_url("posix"), create=True, **SMALL)
        waiter = Waiter(lambda q=a: q.receive(timeout=5))  # type: ignore[misc]
        waiter.start()
        a.close()
        with unimq.open(make_url("posix"), create=True, **SMALL) as b:
            b.send(b"b's")
            waiter.join(WAKE)
            assert not waiter.is_alive()
            assert isinstance(waiter.error, unimq.QueueClosed), (waiter.result, waiter.error)
            assert b.receive(timeout=0).data == b"b's"
            b.remove()
        unimq.remove(a.url)


def test_fileno_and_notify_after_close(path: str, make_url: UrlFactory) -> None:
    q = unimq.open(make_url("posix"), create=True, **SMALL)
    assert isinstance(q, PosixQueue)
    fd = q.fileno()
    assert fd >= 0
    q.close()
    with pytest.raises(unimq.QueueClosed):
        q.fileno()
    with pytest.raises(unimq.QueueClosed):
        q.notify()
    unimq.remove(q.url)


def test_wrong_direction_and_closed_descriptor_are_told_apart(
    path: str, make_url: UrlFactory
) -> None:
    """EBADF has two causes: a direction the descriptor was not opened for
    (PermissionDenied) and a descriptor that is no longer valid (QueueClosed)."""
    from unimq_posix._errors import Context, posix_error

    url = make_url("posix")
    with unimq.open(url, create=True, **SMALL) as q:
        reader = unimq.open(url, access="r")
        channel = reader._channel  # type: ignore[attr-defined]
        try:
            channel.send_nowait(b"x", 1, 0)
        except OSError as exc:  # the kernel's (or the driver's) own EBADF
            ebadf = exc
        assert ebadf.errno == errno.EBADF
        wrong_way = posix_error("send", ebadf, Context(url, "r"))
        assert isinstance(wrong_way, unimq.PermissionDenied)
        assert "access='rw'" in str(wrong_way)
        gone = posix_error("send", ebadf, Context(url, "rw"))
        assert isinstance(gone, unimq.QueueClosed)
        reader.close()
        q.remove()
