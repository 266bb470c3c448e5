"""Contract: handle lifetime and argument checks (every backend).

close() from another thread wakes waiters with QueueClosed, and the closed
handle never takes or enqueues anything afterwards, even when a new queue
gets the freed descriptor numbers. Arguments are checked by type on every
call, defaults included; huge timeouts mean "wait"; received messages equal
and hash like constructed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import unimq
from unimq.testing._backend import Backend
from unimq.testing._fixtures import BackendFixtures, OpenQueue
from unimq.testing._waiting import JOIN_WAIT, Waiter

_C = unimq.Capability


def _caps(q: unimq.Queue) -> tuple[bool, bool]:
    return bool(q.capabilities & _C.MTYPE), bool(q.capabilities & _C.PRIORITY)


class HandleContract(BackendFixtures):
    """Handle lifetime across threads, and argument checks on every call."""

    @pytest.mark.parametrize("timeout", [None, 30.0])
    def test_close_wakes_a_receiver(
        self,
        backend: Backend,
        q: unimq.Queue,
        open_queue: OpenQueue,
        new_url: Callable[[], str],
        timeout: float | None,
    ) -> None:
        waiter = Waiter(lambda: q.receive(timeout=timeout))
        waiter.start()
        try:
            waiter.blocked()
            q.close()
            # Another queue, which may get the freed descriptor numbers, with a message waiting.
            b = open_queue(4, 64, url=new_url())
            b.send(b"for b only")
        finally:
            q.close()
            waiter.finish()
        assert isinstance(waiter.error, unimq.QueueClosed), (waiter.result, waiter.error)
        assert b.receive(timeout=0).data == b"for b only"

    @pytest.mark.parametrize("timeout", [None, 30.0])
    def test_close_wakes_a_sender(
        self,
        open_queue: OpenQueue,
        url: str,
        new_url: Callable[[], str],
        timeout: float | None,
    ) -> None:
        q = open_queue(capacity=1, size=64)
        q.send(b"x" * 64)
        waiter = Waiter(lambda: q.send(b"y" * 64, timeout=timeout))
        waiter.start()
        try:
            waiter.blocked()
            q.close()
            b = open_queue(4, 64, url=new_url())
        finally:
            q.close()
            waiter.finish()
        assert isinstance(waiter.error, unimq.QueueClosed), (waiter.result, waiter.error)
        assert b.stat().messages == 0, "the closed handle's send landed in another queue"
        with unimq.open(url) as again:  # the queue still holds exactly the first message
            assert again.receive(timeout=0).data == b"x" * 64
            with pytest.raises(unimq.QueueEmpty):
                again.receive(timeout=0)

    def test_close_wakes_every_waiter(self, q: unimq.Queue) -> None:
        waiters = [Waiter(lambda: q.receive()) for _ in range(3)]
        for w in waiters:
            w.start()
        try:
            for w in waiters:
                w.blocked()
        finally:
            q.close()
            for w in waiters:
                w.finish()
        for w in waiters:
            assert isinstance(w.error, unimq.QueueClosed), (w.result, w.error)

    def test_every_call_after_close(self, q: unimq.Queue) -> None:
        q.close()
        for call in (
            lambda: q.send(b"x"),
            lambda: q.send(b"x", timeout=1),
            lambda: q.receive(timeout=0),
            lambda: q.receive(),
            lambda: q.send_many([b"x"]),
            lambda: q.receive_many(2, timeout=0),
            q.stat,
            q.remove,
            q.qsize,
        ):
            with pytest.raises(unimq.QueueClosed) as info:
                call()
            assert isinstance(info.value, ValueError)

    # ------------------------------------------------------------------ argument types

    @pytest.mark.parametrize("bad", [True, False, 1.0, 0.0, "1", None])
    def test_send_tag_types_are_checked(self, q: unimq.Queue, bad: object) -> None:
        with pytest.raises(TypeError, match="mtype"):
            q.send(b"x", mtype=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="priority"):
            q.send(b"x", priority=bad)  # type: ignore[arg-type]
        assert q.stat().messages == 0, "a refused send enqueued something"

    @pytest.mark.parametrize("bad", [True, False, 0.0, 1.0, "0", None])
    def test_receive_mtype_type_is_checked(self, q: unimq.Queue, bad: object) -> None:
        q.send(b"keep")
        with pytest.raises(TypeError, match="mtype"):
            q.receive(mtype=bad, timeout=0)  # type: ignore[arg-type]
        assert q.receive(timeout=0).data == b"keep"

    @pytest.mark.parametrize("bad", [True, False, "1", b"1", [1]])
    def test_timeout_type_is_checked(self, q: unimq.Queue, bad: object) -> None:
        with pytest.raises(TypeError, match="timeout"):
            q.send(b"x", timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="timeout"):
            q.receive(timeout=bad)  # type: ignore[arg-type]
        assert q.stat().messages == 0

    def test_int_subclasses_are_ints(self, q: unimq.Queue) -> None:
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
    def test_huge_timeouts_wait_instead_of_overflowing(self, q: unimq.Queue, huge: float) -> None:
        q.send(b"ready", timeout=huge)
        assert q.receive(timeout=huge).data == b"ready"
        # A real wait with a huge timeout: a message sent by another thread ends it.
        waiter = Waiter(lambda: q.receive(timeout=huge))
        waiter.start()
        try:
            waiter.blocked()
            q.send(b"later")
        finally:
            waiter.join(JOIN_WAIT)
        assert waiter.error is None and waiter.result.data == b"later"

    # ------------------------------------------------------------------ values and warnings

    def test_received_messages_equal_and_hash_like_constructed_ones(self, q: unimq.Queue) -> None:
        has_mtype, has_priority = _caps(q)
        mtype = 7 if has_mtype else 1
        priority = 3 if has_priority else 0
        q.send(b"payload", mtype=mtype, priority=priority)
        got = q.receive(timeout=0)
        built = unimq.Message(b"payload", mtype, priority)
        assert got == built
        assert hash(got) == hash(built) == hash((b"payload", mtype, priority))
        assert {got: 1}[built] == 1
        assert type(got) is unimq.Message
        assert got._asdict() == {"data": b"payload", "mtype": mtype, "priority": priority}

    def test_mismatch_warning_without_create(
        self, backend: Backend, open_queue: OpenQueue, url: str
    ) -> None:
        asked = dict(backend.options(4, 64))
        if not asked:
            pytest.skip("the backend declares no size options")
        open_queue(capacity=4, size=64)
        name = next(iter(asked))
        options: dict[str, Any] = {name: asked[name] - 1}
        with pytest.warns(unimq.AttributeMismatchWarning, match=name) as record:
            unimq.open(url, **options).close()
        # The warning points at the caller's line, not into unimq.
        assert record[0].filename == __file__
