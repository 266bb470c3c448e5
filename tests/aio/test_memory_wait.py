"""memory:// waits natively: the queue wakes the event loop itself, no thread.

Sync threads of the same process send and receive on the queue while tasks
wait on it (the wake-up crosses threads); closing and removing wake the
waiters; a cancelled wait never loses a message. asyncio and trio.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import anyio
import pytest

import unimq
import unimq.aio

pytestmark = pytest.mark.anyio


@pytest.fixture
def url(make_url: Callable[[str], str]) -> str:
    return make_url("memory")


@pytest.fixture
def sync_q(url: str) -> Iterator[unimq.Queue]:
    q = unimq.open(url, create=True, max_messages=4, max_message_size=64, max_bytes=256)
    yield q
    q.close()


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def _started_since(before: set[threading.Thread]) -> set[str]:
    """Threads alive now that were not before (threads of earlier tests, e.g.
    idle worker threads, may end meanwhile: only new ones count)."""
    return {t.name for t in threading.enumerate() if t not in before}


def _in_thread(fn: Callable[[], object]) -> None:
    """Run ``fn`` in a fresh thread of this process (joined)."""
    t = threading.Thread(target=fn)
    t.start()
    t.join(30)
    assert not t.is_alive()


async def test_a_waiting_receive_starts_no_thread(url: str, sync_q: unimq.Queue) -> None:
    before = _threads()
    async with await unimq.aio.open(url) as q:
        assert q.waits_by == "wake-up callback"
        got: list[unimq.Message] = []
        with anyio.fail_after(30):  # a missed wake-up fails, never hangs
            async with anyio.create_task_group() as tg:

                async def consume() -> None:
                    got.append(await q.receive())
                    got.append(await q.receive(timeout=30))

                tg.start_soon(consume)
                await anyio.wait_all_tasks_blocked()
                assert not _started_since(before), "a thread was started for the wait"
                _in_thread(lambda: sync_q.send(b"from a thread"))  # wakes the loop across threads
                await anyio.wait_all_tasks_blocked()
                assert not _started_since(before)
                _in_thread(lambda: sync_q.send(b"again"))
        assert [m.data for m in got] == [b"from a thread", b"again"]
    assert not _started_since(before)


async def test_a_waiting_send_wakes_when_a_thread_makes_room(url: str, sync_q: unimq.Queue) -> None:
    before = _threads()
    async with await unimq.aio.open(url) as q:
        for i in range(4):
            await q.send(b"%d" % i)
        with pytest.raises(unimq.QueueFull):
            await q.send(b"no room", timeout=0)
        with anyio.fail_after(30):  # a missed wake-up fails, never hangs
            async with anyio.create_task_group() as tg:
                tg.start_soon(q.send, b"4")
                await anyio.wait_all_tasks_blocked()
                assert not _started_since(before)
                taken: list[bytes] = []
                _in_thread(lambda: taken.append(sync_q.receive(timeout=0).data))
        assert taken == [b"0"]
        assert [sync_q.receive(timeout=0).data for _ in range(4)] == [b"1", b"2", b"3", b"4"]


async def test_a_wait_wakes_for_a_task_of_the_same_loop(url: str, sync_q: unimq.Queue) -> None:
    async with await unimq.aio.open(url) as a, await unimq.aio.open(url) as b:
        got: list[bytes] = []
        with anyio.fail_after(30):  # a missed wake-up fails, never hangs
            async with anyio.create_task_group() as tg:

                async def consume() -> None:
                    got.append((await a.receive(mtype=2)).data)

                tg.start_soon(consume)
                await anyio.wait_all_tasks_blocked()
                await b.send(b"other type", mtype=1)  # a change, but not a match: waits on
                await anyio.wait_all_tasks_blocked()
                assert got == []
                await b.send(b"match", mtype=2)
        assert got == [b"match"]
        assert sync_q.receive(timeout=0).data == b"other type"


async def test_closing_wakes_every_waiter(url: str, sync_q: unimq.Queue) -> None:
    q = await unimq.aio.open(url)
    for i in range(4):
        sync_q.send(b"%d" % i)
    raised: list[type[BaseException]] = []

    async def wait(call: Callable[[], object]) -> None:
        try:
            await call()  # type: ignore[misc]
        except unimq.QueueClosed as exc:
            raised.append(type(exc))

    with anyio.fail_after(30):  # a missed wake-up fails, never hangs
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, lambda: q.send(b"full"))
            tg.start_soon(wait, lambda: q.receive(mtype=9))
            tg.start_soon(wait, lambda: q.receive(mtype=9, timeout=60))
            await anyio.wait_all_tasks_blocked()
            await q.aclose()
    assert raised == [unimq.QueueClosed] * 3
    assert sync_q.stat().messages == 4  # nothing taken or added


async def test_removing_wakes_every_waiter(url: str, sync_q: unimq.Queue) -> None:
    async with await unimq.aio.open(url) as q:
        raised: list[type[BaseException]] = []

        async def wait() -> None:
            try:
                await q.receive()
            except unimq.QueueRemoved as exc:
                raised.append(type(exc))

        with anyio.fail_after(30):  # a missed wake-up fails, never hangs
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                _in_thread(lambda: unimq.remove(url))  # from another thread, another handle
        assert raised == [unimq.QueueRemoved] * 2


async def test_cancelling_as_the_message_arrives_loses_nothing(
    url: str, sync_q: unimq.Queue
) -> None:
    # The message arrives (from a thread or from the loop's thread) and the
    # waiter is cancelled in the same loop iteration: either the waiter
    # returned it or it is still queued, never neither.
    async with await unimq.aio.open(url) as q:
        for i in range(200):
            payload = b"%d" % i
            with anyio.fail_after(30):  # a missed wake-up fails, never hangs
                got = await _cancel_as_it_arrives(q, sync_q, payload, from_thread=bool(i % 2))
            left = [sync_q.receive(timeout=0).data] if sync_q.stat().messages else []
            assert got + left == [payload], (got, left)


async def _cancel_as_it_arrives(
    q: unimq.aio.AsyncQueue, sync_q: unimq.Queue, payload: bytes, *, from_thread: bool
) -> list[bytes]:
    got: list[bytes] = []
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                got.append((await q.receive()).data)

            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            if from_thread:
                _in_thread(lambda: sync_q.send(payload))
            else:
                sync_q.send(payload)
            scope.cancel()
    return got


async def test_threads_and_tasks_share_a_queue_without_loss(url: str, sync_q: unimq.Queue) -> None:
    per, senders = 300, 3
    async with await unimq.aio.open(url) as q:
        got: list[bytes] = []

        def send(k: int) -> None:
            with unimq.open(url) as mine:
                for i in range(per):
                    mine.send(b"%d-%d" % (k, i), timeout=30)

        with anyio.fail_after(60):  # a lost message would keep the consumers waiting
            await _share(q, got, send, senders)
        assert sorted(got) == sorted(b"%d-%d" % (k, i) for k in range(senders) for i in range(per))


async def _share(
    q: unimq.aio.AsyncQueue, got: list[bytes], send: Callable[[int], None], senders: int
) -> None:
    total = 300 * senders
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            while len(got) < total:
                with contextlib.suppress(unimq.QueueEmpty):
                    got.append((await q.receive(timeout=0.05)).data)

        for _ in range(3):
            tg.start_soon(consume)
        threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            await anyio.to_thread.run_sync(t.join)
