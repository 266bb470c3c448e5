"""receive_many's one-round-trip way (key layout 3): ``MULTI; LRANGE; EVALSHA
COMMIT; EXEC`` reads the list the handle's last batch ended on and commits it,
the messages never passing through Lua; COMMIT checks the guess, the interleave
bound and the byte budget from the entries' running byte totals. Each test
counts what the server ran (INFO commandstats) to know which way a batch went.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import anyio.to_thread
import pytest
import redis
from unimq_redis import _queue as redis_queue
from unimq_redis._scripts import COMMIT, LAYOUT, RECEIVE_MANY, RETURN

import unimq
import unimq.aio
from tests.helpers import wait_for
from tests.redis.invariants import check_index
from tests.redis.server import ValkeyServer
from tests.redis.test_aio import _cancelled_while_held
from unimq.testing import Waiter

M = unimq.Message


@pytest.fixture
def control(valkey: ValkeyServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=valkey.port)
    client.script_load(COMMIT.body)  # the counts below see no first-use NOSCRIPT
    yield client
    client.close()


def _calls(control: redis.Redis) -> dict[str, int]:
    stats = control.info("commandstats")
    return {k[len("cmdstat_") :]: int(v["calls"]) for k, v in stats.items()}


class Count:
    """Commands the server ran since the last look."""

    def __init__(self, control: redis.Redis) -> None:
        self.control = control
        self.last = _calls(control)

    def __call__(self) -> dict[str, int]:
        now = _calls(self.control)
        diff = {k: v - self.last.get(k, 0) for k, v in now.items() if v != self.last.get(k, 0)}
        self.last = _calls(self.control)  # the INFO itself is not counted
        diff.pop("info", None)
        return diff


def _guessed(q: unimq.Queue, items: list[M]) -> None:
    """Send ``items`` and take the first with a batch: the handle's next batch
    guesses the list that one ended on."""
    q.send_many(items)
    assert q.receive_many(1, timeout=0) == items[:1]
    assert q._guess is not None  # type: ignore[attr-defined]


def test_right_guess_is_one_transaction_no_receive_many(url: str, control: redis.Redis) -> None:
    with unimq.open(url, create=True, max_messages=500) as q:
        items = [M(b"m%d" % i, 3, 2) for i in range(250)]
        _guessed(q, items)
        count = Count(control)
        assert q.receive_many(100, timeout=0) == items[1:101]
        ran = count()
        assert ran.get("exec") == 1 and ran.get("evalsha") == 1  # COMMIT only
        assert ran.get("lrange") == 1
        # the queue's only list: no index read or written (layout 4), one
        # LINDEX (the last entry taken: its size and seq)
        assert ran.get("lindex") == 1
        for command in ("zrange", "zadd", "llen", "zrem"):
            assert command not in ran, (command, ran)
        check_index(control, url.rsplit("/", 1)[1])
        st = q.stat()
        assert (st.messages, st.bytes) == (149, 149 * 4)
        count = Count(control)  # (not the looks above)
        assert q.receive_many(500, timeout=0) == items[101:]  # the list's end: the queue is empty
        ran = count()
        assert ran.get("exec") == 1 and ran.get("evalsha") == 1
        check_index(control, url.rsplit("/", 1)[1])
        st = q.stat()
        assert (st.messages, st.bytes) == (0, 0)
        q.remove()


def test_wrong_guess_takes_nothing_and_receive_many_takes_in_order(
    url: str, control: redis.Redis
) -> None:
    with unimq.open(url, create=True, max_messages=50) as q:
        _guessed(q, [M(b"a1"), M(b"a2"), M(b"a3")])
        q.send(b"high", priority=5)  # another list is first now
        count = Count(control)
        assert q.receive_many(10, timeout=0) == [M(b"high", 1, 5), M(b"a2"), M(b"a3")]
        ran = count()
        assert ran.get("exec") == 1  # COMMIT declined ...
        assert ran.get("evalsha") == 2  # ... RECEIVE_MANY took
        assert q.stat().bytes == 0
        # The same with a selection by type: the guess is per selection.
        _guessed(q, [M(b"t2-a", 2), M(b"t2-b", 2)])
        q.send(b"t1", mtype=1, priority=9)
        assert q.receive_many(10, mtype=2, timeout=0) == [M(b"t2-b", 2)]
        assert q.receive_many(10, mtype=-1, timeout=0) == [M(b"t1", 1, 9)]
        q.remove()


def test_a_queue_removed_and_made_again_is_not_taken_from(url: str) -> None:
    with unimq.open(url, create=True, max_messages=10) as q:
        _guessed(q, [M(b"old-1"), M(b"old-2")])
        unimq.remove(url)
        with unimq.open(url, create=True, max_messages=10) as other:
            other.send_many([b"new-1", b"new-2"])  # the same list key, another incarnation
            with pytest.raises(unimq.QueueRemoved):
                q.receive_many(5, timeout=0)
            assert [m.data for m in other.receive_many(5, timeout=0)] == [b"new-1", b"new-2"]
            other.remove()


def test_byte_budget_cuts_inside_the_lrange_window(
    url: str, control: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 30-byte messages, 100 bytes per call: COMMIT takes 3 of the LRANGE'd
    # entries each time (a 4th would pass the budget), found by binary search
    # over the entries' running totals.
    monkeypatch.setattr(redis_queue, "BATCH_BYTES", 100)
    items = [M(b"%02d" % i + b"." * 28) for i in range(20)]
    with unimq.open(url, create=True, max_messages=50) as q:
        _guessed(q, items)
        count = Count(control)
        assert q.receive_many(12, timeout=0) == items[1:13]
        assert count().get("exec") == 4  # 3 + 3 + 3 + 3
        assert q.stat().bytes == 7 * 30
        # One message alone above the budget is still taken (with what fits after it).
        q.send_many([b"x" * 150, b"y" * 10])
        assert q.receive_many(7, timeout=0) == items[13:]
        assert q.receive_many(1, timeout=0) == [M(b"x" * 150)]
        assert q.stat().bytes == 10
        assert q.receive_many(5, timeout=0) == [M(b"y" * 10)]
        q.remove()


def test_interleaved_types_stop_at_the_next_list_of_the_priority(
    url: str, control: redis.Redis
) -> None:
    with unimq.open(url, create=True, max_messages=50) as q:
        _guessed(q, [M(b"a0", 1, 4)])
        # Type 1 and type 2 of priority 4, in runs: the type-1 list holds a1..a5
        # then a6..a9, with b1..b3 (type 2) sent in between.
        runs = [
            [M(b"a%d" % i, 1, 4) for i in range(1, 6)],
            [M(b"b%d" % i, 2, 4) for i in range(1, 4)],
            [M(b"a%d" % i, 1, 4) for i in range(6, 10)],
        ]
        for run in runs:
            q.send_many(run)
        count = Count(control)
        got = q.receive_many(8, timeout=0)
        assert got == runs[0] + runs[1]  # COMMIT stops at b1 (the bound), RECEIVE_MANY goes on
        ran = count()
        assert (ran.get("exec"), ran.get("evalsha")) == (1, 2)
        assert q.stat().bytes == 4 * 2
        assert q.receive_many(8, timeout=0) == runs[2]
        q.remove()


def _put_back(q: unimq.Queue, data: bytes, mtype: int = 1, priority: int = 0) -> None:
    r = q._link.run("close", RETURN, q._meta, (q._prefix, q._gen, data, mtype, priority))  # type: ignore[attr-defined]
    assert r == 1


def test_messages_put_back_have_running_totals_below_zero(
    url: str, control: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_queue, "BATCH_BYTES", 25)
    with unimq.open(url, create=True, max_messages=50) as q:
        _guessed(q, [M(b"first"), M(b"s" * 10), M(b"t" * 10)])
        # Put back at the head, newest first: running totals 5 - 7, then - 20.
        _put_back(q, b"p" * 7)
        _put_back(q, b"q" * 13)
        name = url.rsplit("/", 1)[1]
        head = control.lindex(f"unimq:{{{name}}}:l:0:1", 0)
        assert head is not None and int(head[16:32]) == 5 - 7 - 13
        assert q.stat().bytes == 13 + 7 + 10 + 10
        count = Count(control)
        # 25 bytes per call: q+p (20), then s+t (20); bytes exact after each.
        assert q.receive_many(2, timeout=0) == [M(b"q" * 13), M(b"p" * 7)]
        assert count().get("exec") == 1
        assert q.stat().bytes == 20
        _put_back(q, b"r" * 30)  # alone above the budget
        assert q.receive_many(3, timeout=0) == [M(b"r" * 30), M(b"s" * 10), M(b"t" * 10)]
        st = q.stat()
        assert (st.messages, st.bytes) == (0, 0)
        # An empty list put back into starts from the list's total so far.
        _put_back(q, b"u" * 4)
        q.send(b"v" * 6)
        assert q.receive_many(5, timeout=0) == [M(b"u" * 4), M(b"v" * 6)]
        assert q.stat().bytes == 0
        q.remove()


@pytest.mark.parametrize("seed", range(4))
def test_random_operations_keep_byte_counts_exact(
    url: str, seed: int, control: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches (mostly COMMIT after the first), single receives, messages put
    back, several lists and selections, under a small byte budget: every
    receive matches a model, and stat() counts exact bytes after every step."""
    monkeypatch.setattr(redis_queue, "BATCH_BYTES", 40)
    rng = random.Random(seed)
    model: list[tuple[int, int, M]] = []  # (priority, order key, message)
    order = 0
    back = 0
    with unimq.open(url, create=True, max_messages=80) as q:
        for step in range(200):
            op = rng.random()
            if op < 0.4 and len(model) < 60:
                items = [
                    M(
                        b"%d." % step + b"x" * rng.randint(0, 20),
                        rng.choice((1, 2)),
                        rng.choice((0, 3)),
                    )
                    for _ in range(rng.randint(1, 10))
                ]
                assert q.send_many(items) == len(items)
                for m in items:
                    order += 1
                    model.append((m.priority, order, m))
            elif op < 0.5 and model:
                # put one back: at the head of its priority, before everything sent
                m = M(
                    b"back%d" % step + b"y" * rng.randint(0, 30),
                    rng.choice((1, 2)),
                    rng.choice((0, 3)),
                )
                _put_back(q, m.data, m.mtype, m.priority)
                back -= 1
                model.append((m.priority, back - 10**9, m))
            else:
                sel = rng.choice((0, 0, 0, 1, 2, -1))
                n = rng.randint(1, 12)
                if sel == 0:
                    want = sorted(model, key=lambda e: (-e[0], e[1]))
                elif sel > 0:
                    want = sorted(
                        (e for e in model if e[2].mtype == sel), key=lambda e: (-e[0], e[1])
                    )
                else:  # the lowest type <= -sel first, then by priority, FIFO
                    want = sorted(
                        (e for e in model if e[2].mtype <= -sel),
                        key=lambda e: (e[2].mtype, -e[0], e[1]),
                    )
                want = want[:n]
                try:
                    got = q.receive_many(n, mtype=sel, timeout=0)
                except unimq.QueueEmpty:
                    got = []
                assert got == [e[2] for e in want], (step, sel, n)
                for e in want:
                    model.remove(e)
            st = q.stat()
            assert (st.messages, st.bytes) == (
                len(model),
                sum(len(e[2].data) for e in model),
            ), step
            check_index(control, url.rsplit("/", 1)[1])
        q.remove()


def test_queue_of_the_previous_layout_is_refused(url: str, control: redis.Redis) -> None:
    name = url.rsplit("/", 1)[1]
    unimq.open(url, create=True).close()
    control.hset(f"unimq:{{{name}}}:meta", "layout", str(LAYOUT - 1))
    old = f"key layout {LAYOUT - 1}, this version reads layout {LAYOUT}"
    with pytest.raises(unimq.UnimqError, match=old):
        unimq.open(url)
    unimq.remove(url)


def test_flushed_script_cache_inside_multi_reloads_commit(url: str, control: redis.Redis) -> None:
    with unimq.open(url, create=True, max_messages=50) as q:
        _guessed(q, [M(b"%d" % i) for i in range(10)])
        control.script_flush()
        count = Count(control)
        assert [m.data for m in q.receive_many(4, timeout=0)] == [b"1", b"2", b"3", b"4"]
        ran = count()
        # NOSCRIPT inside EXEC (LRANGE only read): the transaction again, with EVAL.
        assert ran.get("exec") == 2 and ran.get("eval") == 1
        assert control.script_exists(COMMIT.sha, RECEIVE_MANY.sha) == [True, False]
        assert q.stat().bytes == 5
        q.remove()


def test_without_multi_the_read_and_commit_still_agree(url: str, valkey: ValkeyServer) -> None:
    """A redis user not allowed MULTI/EXEC: LRANGE and COMMIT run one after the
    other; with nothing in between, the check passes and the batch is right."""
    admin = redis.Redis(host="127.0.0.1", port=valkey.port)
    user = f"nomulti{os.getpid()}"
    admin.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-multi", "-exec"]
    )
    try:
        admin.script_load(COMMIT.body)
        nomulti = url.replace("redis://", f"redis://{user}:pw@")
        with unimq.open(nomulti, create=True, max_messages=50) as q:
            _guessed(q, [M(b"%d" % i) for i in range(6)])
            count = Count(admin)
            assert [m.data for m in q.receive_many(3, timeout=0)] == [b"1", b"2", b"3"]
            ran = count()
            assert ran.get("evalsha") == 1 and "exec" not in ran  # COMMIT ran, alone
            # The handle no longer tries MULTI: RECEIVE_MANY, one round trip.
            assert [m.data for m in q.receive_many(9, timeout=0)] == [b"4", b"5"]
            ran = count()
            assert ran.get("evalsha") == 1 and "lrange" not in ran
            assert q.stat().bytes == 0
            q.remove()
    finally:
        admin.acl_deluser(user)
        admin.close()


def test_connection_lost_while_exec_is_held_may_have_taken_effect(
    url: str, control: redis.Redis
) -> None:
    with unimq.open(url, create=True, max_messages=50) as q:
        _guessed(q, [M(b"%d" % i) for i in range(6)])
        control.client_pause(60_000, all=False)  # holds EXEC (it writes), after MULTI
        try:
            waiter = Waiter(lambda: q.receive_many(3, timeout=0))
            waiter.start()
            wait_for(
                lambda: control.info("clients")["blocked_clients"] >= 1,
                "the transaction is held on the server",
            )
            assert control.client_kill_filter(_type="normal", skipme=True) >= 1
        finally:
            control.client_unpause()
        waiter.join(30)
        assert not waiter.is_alive()
        assert isinstance(waiter.error, unimq.BackendUnavailable), (waiter.result, waiter.error)
        assert waiter.error.maybe_done is True
        assert "may have been taken off the queue" in str(waiter.error)
        # It had not run: the same handle takes the messages afterwards.
        assert [m.data for m in q.receive_many(9, timeout=0)] == [b"1", b"2", b"3", b"4", b"5"]
        q.remove()


# ------------------------------------------------------------------ async


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.mark.anyio
async def test_async_guess_right_wrong_and_flushed(url: str, control: redis.Redis) -> None:
    async with await unimq.aio.open(url, create=True, max_messages=300) as q:
        items = [M(b"m%d" % i, 2, 1) for i in range(200)]
        await q.send_many(items)
        assert await q.receive_many(2, timeout=0) == items[:2]  # RECEIVE, RECEIVE_MANY
        count = await anyio.to_thread.run_sync(Count, control)
        assert await q.receive_many(100, timeout=0) == items[2:102]
        ran = await anyio.to_thread.run_sync(count)
        assert (ran.get("exec"), ran.get("evalsha")) == (1, 2)  # RECEIVE, COMMIT
        await q.send(b"high", priority=5)
        await anyio.to_thread.run_sync(control.script_flush)
        got = await q.receive_many(5, timeout=0)
        assert got == [M(b"high", 1, 5), *items[102:106]]
        assert await q.receive_many(200, timeout=0) == items[106:]
        st = await q.stat()
        assert (st.messages, st.bytes) == (0, 0)
        await q.remove()


@pytest.mark.anyio
async def test_async_batch_cancelled_while_exec_is_held_loses_nothing(
    url: str, control: redis.Redis
) -> None:
    q = await unimq.aio.open(url, create=True)
    items = [M(b"m%d" % i) for i in range(8)]
    await q.send_many(items)
    assert await q.receive_many(2, timeout=0) == items[:2]
    # A cancelled receive hands m2 on to the next receive of this handle ...
    assert not await _cancelled_while_held(control, q.receive)
    # ... whose batch starts with it and takes the rest with the transaction,
    # held by the server while the caller is cancelled: every message it took
    # is handed on to the next receives, in order.
    count = await anyio.to_thread.run_sync(Count, control)
    assert not await _cancelled_while_held(control, lambda: q.receive_many(4, timeout=0))
    ran = await anyio.to_thread.run_sync(count)
    assert ran.get("exec") == 1 and ran.get("evalsha") == 1
    assert (await q.stat()).messages == 2
    assert await q.receive_many(10, timeout=0) == items[2:]
    await q.remove()
    await q.aclose()
