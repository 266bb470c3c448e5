"""Contract: send_many and receive_many (every backend)."""

from __future__ import annotations

import threading

import pytest

import unimq
from unimq.testing._fixtures import BackendFixtures, OpenQueue
from unimq.testing._waiting import JOIN_WAIT, in_background


class BatchContract(BackendFixtures):
    """Batches: order, limits, one deadline, ``.sent`` on errors."""

    def test_send_many_then_receive_many_in_order(self, q: unimq.Queue) -> None:
        items: list[bytes | bytearray | memoryview | unimq.Message] = [
            b"a",
            bytearray(b"b"),
            memoryview(b"c"),
            unimq.Message(b"d"),
        ]
        assert q.send_many(items) == 4
        got = q.receive_many(10, timeout=0)
        assert [m.data for m in got] == [b"a", b"b", b"c", b"d"]
        with pytest.raises(unimq.QueueEmpty):
            q.receive_many(10, timeout=0)

    def test_receive_many_takes_at_most_max(self, q: unimq.Queue) -> None:
        q.send_many([b"%d" % i for i in range(5)])
        assert [m.data for m in q.receive_many(2, timeout=0)] == [b"0", b"1"]
        assert [m.data for m in q.receive_many(2, timeout=0)] == [b"2", b"3"]
        assert [m.data for m in q.receive_many(2, timeout=0)] == [b"4"]

    def test_receive_many_waits_for_the_first_only(self, q: unimq.Queue) -> None:
        with in_background(lambda: q.send(b"late")):
            got = q.receive_many(8, timeout=30)
        assert [m.data for m in got] == [b"late"]

    def test_send_many_timeout_reports_how_many_went(self, open_queue: OpenQueue) -> None:
        q = open_queue(capacity=3, size=64)
        with pytest.raises(unimq.QueueFull) as info:
            q.send_many([b"x" * 64] * 5, timeout=0.05)
        assert info.value.sent == 3
        with pytest.raises(unimq.QueueFull) as info:
            q.send_many([b"y" * 64], timeout=0)
        assert info.value.sent == 0
        assert len(q.receive_many(10, timeout=0)) == 3

    def test_send_many_waits_for_room(self, open_queue: OpenQueue) -> None:
        q = open_queue(capacity=2, size=64)
        got: list[bytes] = []

        def drain() -> None:
            while len(got) < 6:
                got.extend(m.data for m in q.receive_many(6, timeout=30))

        reader = threading.Thread(target=drain)
        reader.start()
        try:
            assert q.send_many([b"%d" % i for i in range(6)], timeout=30) == 6
        finally:
            reader.join(JOIN_WAIT)
        assert got == [b"%d" % i for i in range(6)]

    def test_a_bad_item_sends_nothing(self, q: unimq.Queue) -> None:
        for bad in ([b"ok", "text"], [b"ok", b"x" * (q.max_message_size + 1)], [b"ok", 5]):
            with pytest.raises((TypeError, unimq.MessageTooLarge)):
                q.send_many(bad)  # type: ignore[arg-type]
            assert q.stat().messages == 0

    def test_batch_items_keep_their_tags(self, q: unimq.Queue) -> None:
        caps = q.capabilities
        mtype = 5 if caps & unimq.Capability.MTYPE else 1
        prio = 4 if caps & unimq.Capability.PRIORITY else 0
        q.send_many([unimq.Message(b"t", mtype, prio)])
        assert q.receive_many(1, timeout=0) == [unimq.Message(b"t", mtype, prio)]
        with pytest.raises(TypeError):
            q.send_many([unimq.Message(b"t", True, 0)])

    def test_receive_many_argument_checks(self, q: unimq.Queue) -> None:
        q.send(b"keep")
        for bad in (0, -1):
            with pytest.raises(ValueError, match="max_messages"):
                q.receive_many(bad, timeout=0)
        for wrong in (True, 1.0, "2"):
            with pytest.raises(TypeError, match="max_messages"):
                q.receive_many(wrong, timeout=0)  # type: ignore[arg-type]
        assert q.receive(timeout=0).data == b"keep"
