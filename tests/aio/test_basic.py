"""unimq.aio: the sync semantics, errors and timeouts, as coroutines, on every backend."""

from __future__ import annotations

import errno

import anyio
import pytest

import unimq
import unimq.aio
from tests.aio.conftest import OpenAsync

pytestmark = pytest.mark.anyio


async def test_send_receive_round_trip(open_async: OpenAsync) -> None:
    q = await open_async()
    await q.send(b"one")
    await q.send(bytearray(b"two"), timeout=1)
    assert (await q.receive()).data == b"one"
    assert (await q.receive(timeout=1)).data == b"two"


async def test_tags_follow_the_backend(open_async: OpenAsync, kind: str) -> None:
    q = await open_async()
    caps = q.capabilities
    if caps & unimq.Capability.PRIORITY:
        await q.send(b"low", priority=1)
        await q.send(b"high", priority=9)
        assert await q.receive() == unimq.Message(b"high", 1, 9)
        assert (await q.receive()).data == b"low"
    else:
        with pytest.raises(unimq.UnsupportedOperation, match="priorities"):
            await q.send(b"x", priority=1)
    if caps & unimq.Capability.MTYPE:
        await q.send(b"three", mtype=3)
        await q.send(b"four", mtype=4)
        assert (await q.receive(mtype=4)).data == b"four"
        assert (await q.receive(mtype=-9)).mtype == 3
    else:
        with pytest.raises(unimq.UnsupportedOperation, match="message types"):
            await q.send(b"x", mtype=2)
        with pytest.raises(unimq.UnsupportedOperation):
            await q.receive(mtype=2)


async def test_timeouts_raise_the_sync_errors(open_async: OpenAsync) -> None:
    q = await open_async(capacity=1, size=16)
    with pytest.raises(unimq.QueueEmpty) as empty_now:
        await q.receive(timeout=0)
    assert empty_now.value.errno == errno.EAGAIN
    with pytest.raises(unimq.QueueEmpty) as empty_later:
        await q.receive(timeout=0.05)
    assert empty_later.value.errno == errno.ETIMEDOUT
    await q.send(b"f" * 16)  # fills it (one message; 16 bytes on SysV)
    with pytest.raises(unimq.QueueFull) as full_now:
        await q.send(b"n" * 16, timeout=0)
    assert full_now.value.errno == errno.EAGAIN
    with pytest.raises(unimq.QueueFull) as full_later:
        await q.send(b"n" * 16, timeout=0.05)
    assert full_later.value.errno == errno.ETIMEDOUT
    assert (await q.receive()).data == b"f" * 16  # the failed sends enqueued nothing
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)


async def test_arguments_are_checked_like_sync(open_async: OpenAsync) -> None:
    q = await open_async(size=16)
    with pytest.raises(TypeError, match="encode it first"):
        await q.send("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mtype"):
        await q.send(b"x", mtype=True)
    with pytest.raises(TypeError):
        await q.receive(timeout=True)
    with pytest.raises(ValueError, match="timeout"):
        await q.receive(timeout=-1)
    with pytest.raises(unimq.MessageTooLarge):
        await q.send(b"x" * (q.max_message_size + 1))
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)  # nothing was sent by the refused calls


async def test_a_wait_ends_when_the_peer_acts(open_async: OpenAsync) -> None:
    q = await open_async(capacity=1, size=16)
    got: list[unimq.Message] = []

    async def consumer() -> None:
        got.append(await q.receive(timeout=30))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await anyio.wait_all_tasks_blocked()
        await q.send(b"wake", timeout=30)
    assert got == [unimq.Message(b"wake", 1, 0)]

    await q.send(b"full".ljust(16))

    async def producer() -> None:
        await q.send(b"after".ljust(16), timeout=30)

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
        assert (await q.receive()).data == b"full".ljust(16)
    assert (await q.receive(timeout=0)).data == b"after".ljust(16)


async def test_several_waiters_on_one_handle_all_get_served(open_async: OpenAsync) -> None:
    q = await open_async(capacity=4, size=16)
    got: list[bytes] = []

    async def consumer() -> None:
        got.append((await q.receive(timeout=30)).data)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(consumer)
        await anyio.wait_all_tasks_blocked()
        for i in range(3):
            await q.send(b"m%d" % i)
    assert sorted(got) == [b"m0", b"m1", b"m2"]


async def test_batches(open_async: OpenAsync) -> None:
    q = await open_async(capacity=4, size=16)
    assert await q.send_many([b"a", unimq.Message(b"b", 1, 0), memoryview(b"c")]) == 3
    assert [m.data for m in await q.receive_many(10)] == [b"a", b"b", b"c"]
    with pytest.raises(TypeError):
        await q.send_many([b"ok", "bad"])  # type: ignore[list-item]
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)  # a bad item sends nothing
    with pytest.raises(unimq.QueueFull) as full:
        await q.send_many([b"%015d" % i for i in range(6)], timeout=0.05)
    assert full.value.sent == 4
    assert len(await q.receive_many(2)) == 2
    assert len(await q.receive_many(9, timeout=0)) == 2
    with pytest.raises(ValueError, match="at least 1"):
        await q.receive_many(0)


async def test_stat_remove_and_closing(open_async: OpenAsync, url: str) -> None:
    q = await open_async()
    await q.send(b"x")
    assert (await q.stat()).messages == 1
    async with q:
        assert not q.closed
    assert q.closed
    await q.aclose()  # idempotent
    for op in (q.receive(), q.send(b"x"), q.stat(), q.remove()):
        with pytest.raises(unimq.QueueClosed):
            await op
    again = await unimq.aio.open(url)
    async with again:
        assert (await again.receive(timeout=0)).data == b"x"  # closing never removes
        await again.remove()
        with pytest.raises(unimq.QueueNotFound):
            await again.remove()
        await again.remove(missing_ok=True)
    with pytest.raises(unimq.QueueNotFound):
        await unimq.aio.open(url)


async def test_async_for_receives_until_closed(open_async: OpenAsync) -> None:
    q = await open_async()
    seen: list[bytes] = []

    async def consume() -> None:
        async for msg in q:
            seen.append(msg.data)
            if len(seen) == 2:
                await q.aclose()

    await q.send_many([b"1", b"2"])
    with anyio.fail_after(30):
        await consume()
    assert seen == [b"1", b"2"]


async def test_waiting_strategy_follows_capabilities(open_async: OpenAsync, kind: str) -> None:
    q = await open_async()
    fileno = q.capabilities & unimq.Capability.FILENO
    expected = "descriptor" if fileno else "helper thread"
    if kind == "memory":  # an in-process queue wakes the loop itself: no thread
        expected = "wake-up callback"
    if kind == "redis":  # a network backend: the server makes it wait (BLPOP)
        expected = "server"
    assert q.waits_by == expected
    assert repr(q).startswith("<unimq.aio.AsyncQueue ")


async def test_an_unreachable_server_is_backend_unavailable() -> None:
    # redis:// is served by its own async handle; a server that is not there
    # is reported as for the sync handle (and nothing was done).
    with pytest.raises(unimq.BackendUnavailable, match="nothing was done") as err:
        await unimq.aio.open("redis://127.0.0.1:1/never", create=True)
    assert err.value.maybe_done is False
