"""Messages the POSIX C channel receives straight into their bytes object.

A message of at least ``DIRECT_MIN`` bytes that fills at least 7/8 of the
queue's ``mq_msgsize`` is received into a bytes object of ``mq_msgsize`` bytes,
then shrunk to the message; others are received into a buffer and copied (see
``rbuf`` in ``_fast.c``). The choice follows the previous message, so these
tests send sizes on both sides of each threshold, in every order, with distinct
random payloads: a message handed out from the wrong buffer, with the wrong
length or not copied out of a reused one would not equal what was sent. The
pure-Python channel runs the same tests (the results must be the same).
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, new_posix_name
from tests.helpers import posix_channel_class

pytestmark = pytest.mark.skipif(not HAVE_POSIX, reason="posix backend not installed")

CAPACITY = 4


def direct_min() -> int:
    import unimq_posix

    if not unimq_posix.ACCELERATED:
        return 1024  # the C value; the fallback has no such branch
    from unimq_posix import _fast

    return int(_fast.DIRECT_MIN)


def threshold(msgsize: int) -> int:
    """The least size received straight into its bytes object."""
    return max(direct_min(), msgsize - msgsize // 8)


def sizes_around(msgsize: int) -> list[int]:
    """Sizes crossing the thresholds in every order: small after large, large
    after small, large after large, empty and tiny ones in between."""
    t = threshold(msgsize)
    picks = [t - 1, t, msgsize, 0, msgsize, msgsize - 1, 1, t, t - 1, msgsize, t + 1, 16]
    picks += [direct_min() - 1, direct_min(), msgsize, msgsize]
    return [n for n in picks if 0 <= n <= msgsize]


@pytest.fixture(params=["c", "py"])
def opener(request: pytest.FixtureRequest) -> Iterator[Any]:
    from unimq_posix._channel import unlink as py_unlink

    cls: Any = posix_channel_class(request.param)
    made: list[tuple[Any, str]] = []

    def open_(msgsize: int) -> Any:
        name = new_posix_name()
        ch = cls(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, CAPACITY, msgsize, unimq.Message)
        made.append((ch, name))
        return ch

    open_.kind = request.param  # type: ignore[attr-defined]
    yield open_
    for ch, name in made:
        ch.close()
        py_unlink(name)


MSGSIZES = [1024, 1200, 2048, 8192]


def payloads(msgsize: int) -> list[tuple[bytes, int, int]]:
    return [(os.urandom(n), 1, i % 3) for i, n in enumerate(sizes_around(msgsize))]


def chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def in_queue_order(chunk: list[tuple[bytes, int, int]]) -> list[unimq.Message]:
    """What a POSIX queue returns for ``chunk``: higher priority first, FIFO within one."""
    order = sorted(range(len(chunk)), key=lambda i: (-chunk[i][2], i))
    return [unimq.Message(*chunk[i]) for i in order]


@pytest.mark.parametrize("msgsize", MSGSIZES)
def test_single_receives_return_what_was_sent(opener: Any, msgsize: int) -> None:
    ch = opener(msgsize)
    for data, mtype, priority in payloads(msgsize):
        assert ch.send_nowait(data, mtype, priority)
        got = ch.receive_nowait(0)
        assert got == unimq.Message(data, 1, priority)
        assert type(got.data) is bytes and len(got.data) == len(data)


@pytest.mark.parametrize("msgsize", MSGSIZES)
def test_batches_return_what_was_sent(opener: Any, msgsize: int) -> None:
    """receive_many reuses one bytes object for the messages of a call that are
    not large: each must still be its own copy."""
    ch = opener(msgsize)
    for chunk in chunks(payloads(msgsize), CAPACITY):
        assert ch.send_many_nowait(chunk, 0) == len(chunk)
        got = ch.receive_many_nowait(0, CAPACITY + 1)
        assert got == in_queue_order(chunk)
        assert [len(m.data) for m in got] == [len(m.data) for m in in_queue_order(chunk)]


@pytest.mark.parametrize("msgsize", MSGSIZES)
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_waits_return_what_was_sent(opener: Any, msgsize: int, timeout: float | None) -> None:
    """receive_wait receives (without the GIL) into the buffer chosen before:
    the twin's blocking mq_receive (no limit) or the poll (a limit)."""
    ch = opener(msgsize)
    for data, mtype, priority in payloads(msgsize):
        assert ch.send_nowait(data, mtype, priority)
        assert ch.receive_wait(0, timeout) == unimq.Message(data, 1, priority)


@pytest.mark.parametrize("msgsize", MSGSIZES)
def test_queue_handles_agree(make_url: Any, msgsize: int) -> None:
    """Through unimq.Queue: receive, receive_many and a waiting receive."""
    with unimq.open(
        make_url("posix"), create=True, max_messages=CAPACITY, max_message_size=msgsize
    ) as q:
        sent = payloads(msgsize)
        for chunk in chunks(sent, CAPACITY):
            q.send_many([unimq.Message(*item) for item in chunk])
            assert q.receive_many(CAPACITY) == in_queue_order(chunk)
        for data, _, priority in sent:
            q.send(data, priority=priority)
            assert q.receive(timeout=5) == unimq.Message(data, 1, priority)


def test_a_large_message_holds_no_more_than_its_size(opener: Any) -> None:
    """A message received into a bytes object of mq_msgsize bytes is shrunk to
    its size: holding it costs its size, not the queue's maximum. (posix_ipc,
    behind the fallback, allocates as it does; only the C channel is held to it.)"""
    if opener.kind != "c":
        pytest.skip("the fallback's allocations are posix_ipc's")
    msgsize = 8192
    size = threshold(msgsize)  # the smallest that arrives in its own object: shrunk the most
    ch = opener(msgsize)
    ch.send_nowait(os.urandom(size), 1, 0)
    ch.receive_nowait(0)  # the next message is now expected large
    kept = []
    for _ in range(CAPACITY):
        assert ch.send_nowait(os.urandom(size), 1, 0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = ch.receive_many_nowait(0, CAPACITY)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == CAPACITY
    assert all(len(m.data) == size for m in kept)
    # Each message: its payload, a bytes and a tuple header; an unshrunk one
    # would hold msgsize (8192) bytes, more than size + 512 (7680).
    assert grown < CAPACITY * (size + 512), grown
