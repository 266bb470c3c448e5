"""unimq.aio over redis:// with what the sync backend gained alongside it:
batches in one script call, messages put back at close in order (key layout
3), the ``ttl`` option, and Sentinel URLs; on asyncio and trio.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest
import redis

import unimq
import unimq.aio
from tests.redis.conftest import new_name
from tests.redis.server import ValkeyServer
from tests.redis.test_aio import _cancelled_while_held, _control
from tests.redis.test_sentinel import Topology, _raw, topology  # noqa: F401 (fixture)

pytestmark = pytest.mark.anyio

WAIT = 30.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def control(valkey: ValkeyServer) -> Iterator[redis.Redis]:
    client = _control(valkey)
    yield client
    client.client_unpause()
    client.close()


def _script_calls(control: redis.Redis) -> int:
    stats = control.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def test_a_batch_is_one_script_call(url: str, control: redis.Redis) -> None:
    async with await unimq.aio.open(url, create=True, max_messages=100) as q:
        items = [unimq.Message(b"m%d" % i, i % 3 + 1, i % 2) for i in range(60)]
        await q.send_many([b"warm", b"up"])  # scripts loaded (NOSCRIPT, then EVAL)
        assert len(await q.receive_many(2, timeout=0)) == 2
        before = await anyio.to_thread.run_sync(_script_calls, control)
        assert await q.send_many(items) == 60
        middle = await anyio.to_thread.run_sync(_script_calls, control)
        got = await q.receive_many(100, timeout=0)
        after = await anyio.to_thread.run_sync(_script_calls, control)
        assert middle - before == 1  # SEND_MANY
        # The first message (RECEIVE); COMMIT, which declines: the list the last
        # batch ended on (type 1, priority 0) is not first; then RECEIVE_MANY.
        assert after - middle == 3
        # The order single receives give: priority 1 first, FIFO within it.
        expected = sorted(items, key=lambda m: -m.priority)
        assert got == expected
        await q.remove()


async def test_a_batch_cut_by_capacity_says_how_many_went(url: str) -> None:
    async with await unimq.aio.open(url, create=True, max_messages=4) as q:
        with pytest.raises(unimq.QueueFull) as info:
            await q.send_many([b"a", b"b", b"c", b"d", b"e", b"f"], timeout=0)
        assert info.value.sent == 4
        with pytest.raises(unimq.QueueFull) as info:
            await q.send_many([b"g"], timeout=0.05)
        assert info.value.sent == 0
        assert [m.data for m in await q.receive_many(10, timeout=0)] == [b"a", b"b", b"c", b"d"]
        await q.remove()


async def test_a_batch_larger_than_the_queue_waits_for_room(url: str) -> None:
    items = [b"%d" % i for i in range(25)]
    async with await unimq.aio.open(url, create=True, max_messages=3) as q:
        got: list[bytes] = []

        async def consume() -> None:
            while len(got) < len(items):
                got.extend(m.data for m in await q.receive_many(2, timeout=WAIT))

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            assert await q.send_many(items, timeout=WAIT) == len(items)
        assert got == items
        await q.remove()


async def test_receive_many_selects_the_lowest_type_up_to_n(url: str) -> None:
    async with await unimq.aio.open(url, create=True) as q:
        await q.send_many(
            [
                unimq.Message(b"t5", 5),
                unimq.Message(b"t3-low", 3, 0),
                unimq.Message(b"t2", 2),
                unimq.Message(b"t3-high", 3, 7),
                unimq.Message(b"t2-again", 2),
            ]
        )
        got = await q.receive_many(10, mtype=-3, timeout=0)
        # As single receives with mtype=-3 would: the lowest type <= 3 first.
        assert [m.data for m in got] == [b"t2", b"t2-again", b"t3-high", b"t3-low"]
        assert [m.data for m in await q.receive_many(10, timeout=0)] == [b"t5"]
        await q.remove()


async def test_a_cancelled_batch_goes_back_in_order_at_close(
    url: str, control: redis.Redis
) -> None:
    # A consumer's receive_many is cancelled while its RECEIVE_MANY script is
    # held on the server; the handle then closes: every message it took goes
    # back at the head of its priority, oldest first, before what was sent later.
    q = await unimq.aio.open(url, create=True)
    await q.send_many([b"lo-1", b"lo-2", b"lo-3", unimq.Message(b"hi", 1, 2)])
    # A cancelled receive hands "hi" on to the next receive of this handle ...
    assert not await _cancelled_while_held(control, q.receive)
    # ... whose batch starts with it and takes the rest with one held script.
    assert not await _cancelled_while_held(control, lambda: q.receive_many(10, timeout=WAIT))
    assert (await q.stat()).messages == 0
    await q.send(b"later-hi", priority=2)
    await q.send(b"later-lo")
    await q.aclose()
    async with await unimq.aio.open(url) as other:
        got = await other.receive_many(10, timeout=5)
        assert [m.data for m in got] == [b"hi", b"later-hi", b"lo-1", b"lo-2", b"lo-3", b"later-lo"]
        st = await other.stat()
        assert (st.messages, st.bytes) == (0, 0)
        await other.remove()


async def test_ttl_gives_the_keys_an_expiry_renewed_while_open(
    valkey: ValkeyServer, control: redis.Redis
) -> None:
    url = f"{valkey.url}/{new_name()}"
    async with await unimq.aio.open(url, create=True, exclusive=True, ttl=30) as q:
        await q.send(b"x")
        name = url.rsplit("/", 1)[1]
        keys = await anyio.to_thread.run_sync(
            lambda: {k: control.pttl(k) for k in control.scan_iter(match=f"unimq:{{{name}}}:*")}
        )
        assert len(keys) > 1
        assert all(0 < ttl <= 30_000 for ttl in keys.values()), keys
        with pytest.raises(unimq.InvalidURL, match="ttl applies only"):
            await unimq.aio.open(url, ttl=30)
        with pytest.raises(unimq.InvalidURL, match="ttl applies only"):
            await unimq.aio.open(url, create=True, ttl=30)
        await q.remove()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_sentinel_url_follows_the_primary(topology: Topology) -> None:  # noqa: F811
    url = f"{topology.url}/{new_name()}"
    async with await unimq.aio.open(url, create=True) as q:
        await q.send_many([b"one", b"two"])
        with _raw(topology.primary.port) as p:
            assert p.execute_command("WAIT", 1, 10_000) == 1
        await anyio.to_thread.run_sync(topology.failover)
        # The old primary refuses (READONLY, nothing ran): the handle asks the
        # sentinels again and sends the call to the new primary.
        assert (await q.receive(timeout=0)).data == b"one"
        await q.send(b"three")
        assert [m.data for m in await q.receive_many(10, timeout=0)] == [b"two", b"three"]
        await q.remove()


async def test_closing_after_removal_says_the_handed_on_messages_went_with_the_queue(
    url: str, control: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    q = await unimq.aio.open(url, create=True)
    await q.send_many([b"a", b"b"])
    assert not await _cancelled_while_held(control, q.receive)  # "a" is handed on, held by q
    async with await unimq.aio.open(url) as other:
        await other.remove()
    with caplog.at_level("WARNING", logger="unimq.queue"):
        await q.aclose()
    assert "the queue was removed; 1 message(s)" in caplog.text
    assert not await anyio.to_thread.run_sync(
        lambda: control.exists(f"unimq:{{{url.rsplit('/', 1)[1]}}}:meta")
    )
