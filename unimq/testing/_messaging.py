"""Contract: sending and receiving, payloads, sizes, timeouts, waits on other
threads and concurrent receivers (every backend)."""

from __future__ import annotations

import math
import threading
import time

import pytest

import unimq
from unimq.testing._fixtures import BackendFixtures, OpenQueue
from unimq.testing._waiting import JOIN_WAIT, in_background


class SendReceiveContract(BackendFixtures):
    """Messages in, messages out, on every backend."""

    def test_round_trip_bytes(self, q: unimq.Queue) -> None:
        q.send(b"hello\x00world")
        msg = q.receive(timeout=1)
        assert msg == unimq.Message(b"hello\x00world", 1, 0)
        assert isinstance(msg.data, bytes)

    def test_zero_length_message(self, q: unimq.Queue) -> None:
        q.send(b"")
        assert q.receive(timeout=1).data == b""

    def test_bytes_like_payloads(self, q: unimq.Queue) -> None:
        q.send(bytearray(b"ba"))
        q.send(memoryview(b"mv"))
        assert [q.receive(timeout=1).data for _ in range(2)] == [b"ba", b"mv"]

    @pytest.mark.parametrize("bad", ["text", 12, None, [1, 2]])
    def test_non_bytes_payload_is_type_error(self, q: unimq.Queue, bad: object) -> None:
        with pytest.raises(TypeError, match="bytes"):
            q.send(bad)  # type: ignore[arg-type]
        assert q.qsize() == 0

    def test_fifo_with_default_tags(self, q: unimq.Queue) -> None:
        for i in range(6):
            q.send(str(i).encode())
        got = [q.receive(timeout=1).data for _ in range(6)]
        assert got == [str(i).encode() for i in range(6)]

    def test_message_is_immutable(self, q: unimq.Queue) -> None:
        q.send(b"x")
        msg = q.receive(timeout=1)
        with pytest.raises(AttributeError):
            msg.data = b"y"  # type: ignore[misc]

    def test_unsupported_tags_name_the_backend_that_has_them(self, q: unimq.Queue) -> None:
        caps = q.capabilities
        if not caps & unimq.Capability.MTYPE:
            with pytest.raises(unimq.UnsupportedOperation, match="sysv"):
                q.send(b"x", mtype=3)
            with pytest.raises(unimq.UnsupportedOperation, match="sysv"):
                q.receive(mtype=3, timeout=0)
        if not caps & unimq.Capability.PRIORITY:
            with pytest.raises(unimq.UnsupportedOperation, match="posix"):
                q.send(b"x", priority=3)
        if caps & unimq.Capability.MTYPE and caps & unimq.Capability.PRIORITY:
            pytest.skip("backend has both mtype and priority")
        assert q.qsize() == 0

    def test_message_too_large(self, open_queue: OpenQueue) -> None:
        q = open_queue(capacity=4, size=64)
        limit = q.max_message_size
        assert limit >= 64
        q.send(b"x" * limit)
        with pytest.raises(unimq.MessageTooLarge) as info:
            q.send(b"x" * (limit + 1))
        assert info.value.size == limit + 1
        assert info.value.limit == limit
        assert str(limit + 1) in str(info.value) and str(limit) in str(info.value)
        assert isinstance(info.value, ValueError)
        assert q.qsize() == 1

    @pytest.mark.parametrize("bad", [-1, -0.001, math.nan, -math.inf])
    def test_bad_timeouts_rejected_before_any_syscall(self, q: unimq.Queue, bad: float) -> None:
        q.send(b"keep")
        with pytest.raises(ValueError, match="timeout"):
            q.receive(timeout=bad)
        with pytest.raises(ValueError, match="timeout"):
            q.send(b"x", timeout=bad)
        assert q.receive(timeout=0).data == b"keep"

    def test_non_number_timeout_is_type_error(self, q: unimq.Queue) -> None:
        with pytest.raises(TypeError):
            q.receive(timeout="1")  # type: ignore[arg-type]

    def test_receive_timeout_zero_and_short(self, q: unimq.Queue) -> None:
        with pytest.raises(unimq.QueueEmpty):
            q.receive(timeout=0)
        start = time.monotonic()
        with pytest.raises(unimq.QueueEmpty) as info:
            q.receive(timeout=0.15)
        assert time.monotonic() - start >= 0.14
        assert info.value.url == q.url

    def test_send_timeout_on_full_queue(self, open_queue: OpenQueue) -> None:
        q = open_queue(capacity=3, size=32)
        for _ in range(3):
            q.send(b"y" * 32, timeout=0)
        assert q.full()
        with pytest.raises(unimq.QueueFull):
            q.send(b"y" * 32, timeout=0)
        start = time.monotonic()
        with pytest.raises(unimq.QueueFull):
            q.send(b"y" * 32, timeout=0.15)
        assert time.monotonic() - start >= 0.14
        assert q.qsize() == 3

    def test_receive_none_waits_for_another_thread(self, q: unimq.Queue) -> None:
        with in_background(lambda: q.send(b"late")):
            assert q.receive(timeout=None).data == b"late"

    def test_timed_receive_gets_message_sent_mid_wait(self, q: unimq.Queue) -> None:
        with in_background(lambda: q.send(b"mid")):
            assert q.receive(timeout=5).data == b"mid"

    def test_blocked_send_resumes_when_room_appears(self, open_queue: OpenQueue) -> None:
        q = open_queue(capacity=2, size=16)
        q.send(b"a" * 16)
        q.send(b"b" * 16)
        with in_background(lambda: q.receive(timeout=1).data) as taker:
            q.send(b"c" * 16, timeout=None)
        assert taker.result == b"a" * 16
        assert [m.data for m in q.drain()] == [b"b" * 16, b"c" * 16]

    def test_timed_send_resumes_when_room_appears(self, open_queue: OpenQueue) -> None:
        q = open_queue(capacity=1, size=16)
        q.send(b"a" * 16)
        with in_background(lambda: q.receive(timeout=1)):
            q.send(b"b" * 16, timeout=5)
        assert q.receive(timeout=0).data == b"b" * 16

    def test_concurrent_receivers_get_each_message_once(self, q: unimq.Queue, url: str) -> None:
        n = 300
        results: list[list[bytes]] = [[], []]

        def consume(slot: int) -> None:
            with unimq.open(url) as h:
                while True:
                    data = h.receive(timeout=5).data
                    if data == b"stop":
                        return
                    results[slot].append(data)

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        try:
            for i in range(n):
                q.send(str(i).encode(), timeout=5)
        finally:
            for _ in threads:
                q.send(b"stop", timeout=5)
            for t in threads:
                t.join(JOIN_WAIT)
        assert not any(t.is_alive() for t in threads)
        got = sorted(int(x) for x in results[0] + results[1])
        assert got == list(range(n))
        # Each receiver sees FIFO order of what it got.
        for part in results:
            nums = [int(x) for x in part]
            assert nums == sorted(nums)

    def test_drain_takes_what_is_there(self, q: unimq.Queue) -> None:
        for i in range(3):
            q.send(bytes([i]))
        assert [m.data for m in q.drain()] == [b"\x00", b"\x01", b"\x02"]
        assert list(q.drain()) == []
