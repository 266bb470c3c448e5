"""send_many / receive_many over redis://: one script call per batch, with the
same results as single calls (capacity, priorities, types, wake-ups)."""

from __future__ import annotations

import os
import random

import pytest
import redis
from unimq_redis import _queue as redis_queue
from unimq_redis._scripts import LAYOUT, RETURN

import unimq
from tests.redis.server import ValkeyServer
from unimq.testing import Waiter


def _script_calls(valkey: ValkeyServer) -> int:
    """How many EVALSHA/EVAL commands the server has run so far."""
    r = redis.Redis(host="127.0.0.1", port=valkey.port)
    try:
        stats = r.info("commandstats")
    finally:
        r.close()
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


def test_one_script_call_per_batch(url: str, valkey: ValkeyServer) -> None:
    with unimq.open(url, create=True, max_messages=500) as q:
        # The scripts are loaded (NOSCRIPT, then EVAL): RECEIVE_MANY, then COMMIT
        # (the second batch reads the list the first one ended on).
        q.send_many([b"warm", b"up", b"once", b"more"])
        q.receive_many(2)
        q.receive_many(2)
        before = _script_calls(valkey)
        assert q.send_many([b"%d" % i for i in range(300)]) == 300
        got = q.receive_many(300, timeout=0)
        after = _script_calls(valkey)
        assert [m.data for m in got] == [b"%d" % i for i in range(300)]
        assert after - before == 2
        q.remove()


def test_batch_larger_than_free_capacity_sends_what_fits(url: str) -> None:
    with unimq.open(url, create=True, max_messages=5, max_message_size=64) as q:
        q.send(b"already")
        with pytest.raises(unimq.QueueFull) as info:
            q.send_many([b"%d" % i for i in range(8)], timeout=0)
        assert info.value.sent == 4
        with pytest.raises(unimq.QueueFull) as info:
            q.send_many([b"late"], timeout=0.05)
        assert info.value.sent == 0
        assert [m.data for m in q.receive_many(10, timeout=0)] == [
            b"already",
            b"0",
            b"1",
            b"2",
            b"3",
        ]
        assert q.stat().bytes == 0
        q.remove()


def test_byte_capacity_cuts_a_batch(url: str) -> None:
    with unimq.open(url, create=True, max_messages=100, max_message_size=10, max_bytes=25) as q:
        with pytest.raises(unimq.QueueFull) as info:
            q.send_many([b"x" * 10, b"y" * 10, b"z" * 10], timeout=0)
        assert info.value.sent == 2
        assert q.stat().bytes == 20
        assert q.send_many([b"12345"], timeout=0) == 1
        q.remove()


def test_batch_over_max_message_size_sends_nothing(url: str) -> None:
    with unimq.open(url, create=True, max_messages=10, max_message_size=16) as q:
        with pytest.raises(unimq.MessageTooLarge):
            q.send_many([b"ok", b"x" * 17, b"ok too"])
        assert q.stat().messages == 0
        q.remove()


def test_batch_over_max_bytes_sends_nothing(url: str) -> None:
    # max_bytes below max_message_size: the handle's limit is max_bytes.
    with unimq.open(url, create=True, max_messages=10, max_message_size=100, max_bytes=20) as q:
        assert q.max_message_size == 20
        with pytest.raises(unimq.MessageTooLarge):
            q.send_many([b"a", b"b" * 21])
        assert q.stat().messages == 0
        q.remove()


def test_mixed_priorities_and_types_in_one_batch(url: str) -> None:
    rng = random.Random(7)
    items = [unimq.Message(b"%d" % i, rng.randint(1, 4), rng.randint(0, 3)) for i in range(200)]
    with (
        unimq.open(url, create=True, max_messages=500) as q,
        unimq.open(f"memory://batch-ref-{os.getpid()}", create=True, max_messages=500) as ref,
    ):
        assert q.send_many(items) == ref.send_many(items) == 200
        for sel, n in ((2, 7), (-3, 30), (0, 25), (4, 1000), (-1, 3), (0, 1000)):
            ours = q.receive_many(n, mtype=sel, timeout=0)
            theirs = ref.receive_many(n, mtype=sel, timeout=0)
            assert ours == theirs, sel
        assert q.stat().messages == 0
        assert q.stat().bytes == 0
        q.remove()


def test_receive_many_lowest_type_spans_types(url: str) -> None:
    with unimq.open(url, create=True, max_messages=50) as q:
        q.send_many(
            [
                unimq.Message(b"t3a", 3),
                unimq.Message(b"t1a", 1),
                unimq.Message(b"t5", 5),
                unimq.Message(b"t3b", 3, 9),
                unimq.Message(b"t1b", 1),
            ]
        )
        got = q.receive_many(4, mtype=-4, timeout=0)
        assert [m.data for m in got] == [b"t1a", b"t1b", b"t3b", b"t3a"]
        assert got[2] == unimq.Message(b"t3b", 3, 9)
        with pytest.raises(unimq.QueueEmpty):
            q.receive_many(4, mtype=-4, timeout=0)
        assert q.receive_many(4, mtype=-5, timeout=0) == [unimq.Message(b"t5", 5)]
        q.remove()


def test_send_many_wakes_a_blocked_receiver_of_another_handle(url: str) -> None:
    with (
        unimq.open(url, create=True, max_messages=10) as a,
        unimq.open(url) as b,
    ):
        waiter = Waiter(lambda: b.receive_many(10, mtype=2, timeout=30))
        waiter.start()
        waiter.blocked()
        assert a.send_many([unimq.Message(b"one", 1), unimq.Message(b"two", 2)]) == 2
        waiter.join(30)
        assert not waiter.is_alive()
        assert waiter.error is None
        assert waiter.result == [unimq.Message(b"two", 2)]
        a.remove()


def test_receive_many_wakes_a_blocked_sender_of_another_handle(url: str) -> None:
    with (
        unimq.open(url, create=True, max_messages=3) as a,
        unimq.open(url) as b,
    ):
        a.send_many([b"1", b"2", b"3"])
        waiter = Waiter(lambda: b.send_many([b"4", b"5"], timeout=30))
        waiter.start()
        waiter.blocked()
        assert [m.data for m in a.receive_many(3, timeout=0)] == [b"1", b"2", b"3"]
        waiter.join(30)
        assert not waiter.is_alive()
        assert (waiter.result, waiter.error) == (2, None)
        assert [m.data for m in a.receive_many(3, timeout=0)] == [b"4", b"5"]
        a.remove()


def test_batches_longer_than_one_script_call(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_queue, "BATCH_MESSAGES", 7)
    monkeypatch.setattr(redis_queue, "BATCH_BYTES", 40)
    items = [b"%02d" % i for i in range(30)] + [b"x" * 50, b"y"]
    with unimq.open(url, create=True, max_messages=31, max_message_size=64) as q:
        with pytest.raises(unimq.QueueFull) as info:
            q.send_many(items, timeout=0)
        assert info.value.sent == 31
        assert [m.data for m in q.receive_many(100, timeout=0)] == items[:31]
        q.remove()


def test_batch_on_a_removed_queue(url: str) -> None:
    with unimq.open(url, create=True, max_messages=10) as q:
        q.send(b"a")
        unimq.remove(url)
        with pytest.raises(unimq.QueueRemoved) as info:
            q.send_many([b"1", b"2"])
        assert info.value.sent == 0
        with pytest.raises(unimq.QueueRemoved):
            q.receive_many(5, timeout=0)


@pytest.mark.parametrize("budget", [None, 12], ids=["whole-queue", "byte-budget"])
@pytest.mark.parametrize("seed", range(6))
def test_random_batches_match_memory_backend(
    url: str, seed: int, budget: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interleaved batch and single operations with every kind of selection
    return exactly what memory:// returns for the same operations; with a byte
    budget per script call smaller than the queue, every batch is read entry
    by entry and cut by the budget."""
    if budget is not None:
        monkeypatch.setattr(redis_queue, "BATCH_BYTES", budget)
    rng = random.Random(seed)
    with (
        unimq.open(url, create=True, max_messages=60) as q,
        unimq.open(
            f"memory://batch-rand-{os.getpid()}-{seed}", create=True, max_messages=60
        ) as ref,
    ):
        for step in range(150):
            op = rng.random()
            if op < 0.45:
                items = [
                    unimq.Message(b"%d.%d" % (step, i), rng.randint(1, 5), rng.choice((0, 0, 1, 7)))
                    for i in range(rng.randint(1, 12) if op < 0.35 else 1)
                ]
                assert _send(q, items) == _send(ref, items), step
            else:
                sel = rng.choice((0, 0, 1, 3, 5, -1, -2, -4, -5))
                n = rng.randint(1, 15) if op < 0.85 else 0
                assert _receive(q, sel, n) == _receive(ref, sel, n), (step, sel, n)
        assert q.stat().messages == ref.stat().messages
        assert q.stat().bytes == sum(len(m.data) for m in ref.receive_many(100, timeout=0))
        q.remove()


def _send(q: unimq.Queue, items: list[unimq.Message]) -> int:
    try:
        if len(items) == 1:
            q.send(items[0].data, mtype=items[0].mtype, priority=items[0].priority, timeout=0)
            return 1
        return q.send_many(items, timeout=0)
    except unimq.QueueFull as exc:
        return -1 if exc.sent is None else exc.sent


def _receive(q: unimq.Queue, sel: int, n: int) -> object:
    """``n`` > 0: receive_many(n); 0: one receive."""
    try:
        if n:
            return q.receive_many(n, mtype=sel, timeout=0)
        return q.receive(mtype=sel, timeout=0)
    except unimq.QueueEmpty:
        return None


def test_queue_of_another_key_layout_is_refused(url: str, valkey: ValkeyServer) -> None:
    name = url.rsplit("/", 1)[1]
    unimq.open(url, create=True).close()
    r = redis.Redis(host="127.0.0.1", port=valkey.port)
    try:
        r.hset(f"unimq:{{{name}}}:meta", "layout", "1")
    finally:
        r.close()
    with pytest.raises(unimq.UnimqError, match=f"key layout 1, this version reads layout {LAYOUT}"):
        unimq.open(url)
    unimq.remove(url)


def test_every_script_reloads_after_a_cache_flush(url: str, valkey: ValkeyServer) -> None:
    """Each prebuilt call (send, receive, both batches) falls back to EVAL after
    SCRIPT FLUSH, with large payloads sent apart from the request (no copy)."""
    big = bytes(range(256)) * 400  # 100 KiB: above the inline limit
    with unimq.open(url, create=True, max_messages=10, max_message_size=len(big)) as q:
        r = redis.Redis(host="127.0.0.1", port=valkey.port)
        try:
            r.script_flush()
            q.send(big, mtype=3, priority=2)
            r.script_flush()
            assert q.receive(mtype=-3, timeout=0) == unimq.Message(big, 3, 2)
            r.script_flush()
            assert q.send_many([big, unimq.Message(b"small", 2, 5)]) == 2
            r.script_flush()
            assert q.receive_many(5, timeout=0) == [
                unimq.Message(b"small", 2, 5),
                unimq.Message(big),
            ]
        finally:
            r.close()
        q.remove()


# RECEIVE_MANY takes a list with one LPOP (and counts its bytes at once) when
# the whole queue fits in the batch's byte budget and no other list of the
# priority interleaves with it; otherwise it reads the entries in steps. The
# tests below check both ways against the queue's state after the batch.


def test_batch_ending_exactly_at_the_end_of_a_list(url: str) -> None:
    with unimq.open(url, create=True, max_messages=50) as q:
        high = [unimq.Message(b"h" * (i + 1), 1, 5) for i in range(3)]
        low = [unimq.Message(b"l" * (10 + i), 1, 0) for i in range(2)]
        q.send_many(low + high)
        assert q.receive_many(3, timeout=0) == high  # the priority-5 list, to its last entry
        assert q.stat().bytes == 10 + 11
        assert q.receive_many(10, timeout=0) == low
        assert (q.stat().messages, q.stat().bytes) == (0, 0)
        with pytest.raises(unimq.QueueEmpty):
            q.receive(timeout=0)
        q.remove()


def test_batch_taking_part_of_a_list_leaves_the_rest_first(url: str) -> None:
    with unimq.open(url, create=True, max_messages=50) as q:
        high = [unimq.Message(b"%d" % i * (i + 1), 1, 5) for i in range(5)]
        low = [unimq.Message(b"low", 1, 0)]
        q.send_many(high + low)
        assert q.receive_many(3, timeout=0) == high[:3]
        assert q.stat().bytes == 4 + 5 + 3
        # The rest of the list is still indexed first: a single receive, then a batch.
        assert q.receive(timeout=0) == high[3]
        assert q.receive_many(10, timeout=0) == high[4:] + low
        assert (q.stat().messages, q.stat().bytes) == (0, 0)
        q.remove()


def test_batch_running_over_several_lists_counts_every_byte(url: str) -> None:
    # Lists of several priorities, each emptied by the batch but the last.
    sizes = {7: [1, 200, 3], 3: [40, 5], 0: [6, 7, 8]}
    items = [unimq.Message(b"x" * n, 2, p) for p, ns in sizes.items() for n in ns]
    with unimq.open(url, create=True, max_messages=50) as q:
        q.send_many(items)
        got = q.receive_many(7, timeout=0)
        assert got == items[:7]
        assert q.stat().bytes == 8
        assert q.receive_many(7, timeout=0) == items[7:]
        assert q.stat().bytes == 0
        q.remove()


def test_interleaved_types_of_one_priority_stop_at_the_next_list(url: str) -> None:
    # Two types of one priority, sent alternately: each list's run ends where
    # the other list's next message is older (the step-by-step way).
    items = [unimq.Message(b"t%d-%d" % (1 + i % 2, i) + b"." * i, 1 + i % 2, 4) for i in range(9)]
    items.insert(2, unimq.Message(b"t1-again", 1, 4))  # two of type 1 in a row
    with unimq.open(url, create=True, max_messages=50) as q:
        q.send_many(items)
        assert q.receive_many(6, timeout=0) == items[:6]
        assert q.stat().bytes == sum(len(m.data) for m in items[6:])
        assert q.receive_many(20, timeout=0) == items[6:]
        assert q.stat().bytes == 0
        q.remove()


def test_byte_budget_cuts_a_batch_of_one_list(
    url: str, valkey: ValkeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The queue holds more than one call's byte budget: the batch is cut by the
    # budget (one script call per 25 bytes here), not taken by one LPOP.
    monkeypatch.setattr(redis_queue, "BATCH_BYTES", 25)
    items = [b"%02d" % i + b"-" * 8 for i in range(10)]  # 10 bytes each
    with unimq.open(url, create=True, max_messages=50) as q:
        q.send_many(items)
        before = _script_calls(valkey)
        assert [m.data for m in q.receive_many(7, timeout=0)] == items[:7]
        assert _script_calls(valkey) - before == 4  # 2 + 2 + 2 + 1 messages
        assert q.stat().bytes == 30
        assert [m.data for m in q.receive_many(10, timeout=0)] == items[7:]
        assert q.stat().bytes == 0
        q.remove()


def test_queue_that_fits_the_budget_is_taken_in_one_call(
    url: str, valkey: ValkeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_queue, "BATCH_BYTES", 100)
    items = [b"%02d" % i + b"-" * 8 for i in range(10)]  # 100 bytes in all
    with unimq.open(url, create=True, max_messages=50) as q:
        q.send_many(items)
        before = _script_calls(valkey)
        assert [m.data for m in q.receive_many(20, timeout=0)] == items
        assert _script_calls(valkey) - before == 1
        q.remove()


def _put_back(q: unimq.Queue, data: bytes, mtype: int, priority: int) -> None:
    """Run RETURN, as an async handle's close does for a cancelled receive."""
    r = q._link.run("close", RETURN, q._meta, (q._prefix, q._gen, data, mtype, priority))  # type: ignore[attr-defined]
    assert r == 1


def test_messages_put_back_at_the_head_come_first_in_a_batch(url: str) -> None:
    with unimq.open(url, create=True, max_messages=50) as q:
        q.send_many([unimq.Message(b"a1", 1, 2), unimq.Message(b"a2", 1, 2)])
        q.send_many([unimq.Message(b"b1", 2, 2)])
        # Put back newest first: type 2's list and type 1's list each get one.
        _put_back(q, b"back-b", 2, 2)
        _put_back(q, b"back-a", 1, 2)
        assert q.stat().bytes == 2 + 2 + 2 + 6 + 6
        got = q.receive_many(3, timeout=0)
        assert got == [
            unimq.Message(b"back-a", 1, 2),
            unimq.Message(b"back-b", 2, 2),
            unimq.Message(b"a1", 1, 2),
        ]
        assert q.stat().bytes == 4
        assert q.receive_many(5, timeout=0) == [
            unimq.Message(b"a2", 1, 2),
            unimq.Message(b"b1", 2, 2),
        ]
        # One list alone, with a message put back at its head.
        q.send_many([b"c1", b"c2"])
        _put_back(q, b"back-c", 1, 0)
        assert [m.data for m in q.receive_many(10, timeout=0)] == [b"back-c", b"c1", b"c2"]
        assert (q.stat().messages, q.stat().bytes) == (0, 0)
        q.remove()
