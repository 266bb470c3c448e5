"""unimq.aio over redis://: what only a network backend has, on asyncio and trio.

The generic async suite (tests/aio) runs over redis:// as well; this file
adds the server-side cases: a cancellation that lands while a script is on
the server (held there deterministically with ``CLIENT PAUSE WRITE``), a
message arriving as a blocked receive is cancelled, a server killed mid-call,
``remove()`` from another handle, a flushed script cache, unix sockets,
passwords and TLS.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
import redis

import unimq
import unimq.aio
from tests.redis.conftest import new_name
from tests.redis.server import ValkeyServer
from tests.redis.test_tls import tls  # noqa: F401 (the TLS proxy fixture)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _control(server: ValkeyServer) -> redis.Redis:
    if server.unix_socket is not None:
        return redis.Redis(unix_socket_path=server.unix_socket)
    return redis.Redis(host="127.0.0.1", port=server.port)


@pytest.fixture
def control(valkey: ValkeyServer) -> Iterator[redis.Redis]:
    """A plain redis-py client on the session's server, for PAUSE and FLUSH."""
    client = _control(valkey)
    yield client
    client.client_unpause()
    client.close()


@pytest.fixture
async def aq(url: str) -> AsyncIterator[unimq.aio.AsyncQueue]:
    q = await unimq.aio.open(url, create=True, max_messages=4, max_message_size=64)
    yield q
    await q.aclose()


async def _paused(control: redis.Redis) -> None:
    """Hold every write command (scripts included) on the server until unpaused."""
    await anyio.to_thread.run_sync(lambda: control.client_pause(60_000, all=False))


async def _until_blocked(control: redis.Redis) -> None:
    """Until the server holds a client: in BLPOP, or with a paused command (the
    event loop's idea of "all tasks blocked" cannot tell a sent request from one
    still on its way)."""
    with anyio.fail_after(30):
        while True:
            info = await anyio.to_thread.run_sync(lambda: control.info("clients"))
            if info["blocked_clients"] >= 1:
                return
            await anyio.sleep(0.001)


async def _unpause(control: redis.Redis) -> None:
    with anyio.CancelScope(shield=True):  # also from a task of the cancelled scope
        await anyio.to_thread.run_sync(control.client_unpause)


async def _cancelled_while_held(
    control: redis.Redis, call: Callable[[], Awaitable[object]]
) -> bool:
    """Run ``call`` while the server holds every write (scripts included), and
    cancel it there; True if ``call`` returned, False if it raised the cancellation."""
    await _paused(control)
    returned = False
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_then_unpause() -> None:
                await _until_blocked(control)  # the script is held on the server
                scope.cancel()
                await _unpause(control)

            tg.start_soon(cancel_then_unpause)
            await call()
            returned = True
    assert returned or scope.cancelled_caught
    return returned


async def test_a_receive_cancelled_while_its_script_runs_hands_the_message_on(
    aq: unimq.aio.AsyncQueue, control: redis.Redis
) -> None:
    await aq.send(b"taken while cancelled")
    assert not await _cancelled_while_held(control, aq.receive)  # it raised ...
    assert (await aq.stat()).messages == 0  # ... after its script took the message
    assert (await aq.receive(timeout=0)).data == b"taken while cancelled"  # handed on
    with pytest.raises(unimq.QueueEmpty):
        await aq.receive(timeout=0)


async def test_a_send_cancelled_while_its_script_runs_returns_because_it_enqueued(
    aq: unimq.aio.AsyncQueue, control: redis.Redis
) -> None:
    returned = await _cancelled_while_held(control, lambda: aq.send(b"sent once"))
    assert returned  # it returned: so it was enqueued, once
    assert [m.data for m in await aq.receive_many(10, timeout=0)] == [b"sent once"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_plain_task_cancel_during_a_script_loses_nothing(
    aq: unimq.aio.AsyncQueue, control: redis.Redis
) -> None:
    # asyncio's Task.cancel() pierces anyio shields: the reply is still read.
    await aq.send(b"kept")
    await _paused(control)
    task = asyncio.get_running_loop().create_task(aq.receive())
    await _until_blocked(control)
    task.cancel()
    await _unpause(control)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await aq.receive(timeout=0)).data == b"kept"

    await _paused(control)
    send = asyncio.get_running_loop().create_task(aq.send(b"sent"))
    await _until_blocked(control)
    send.cancel()
    await _unpause(control)
    await send  # it returned: enqueued once
    assert [m.data for m in await aq.receive_many(10, timeout=0)] == [b"sent"]


async def test_cancels_racing_arrivals_lose_and_duplicate_nothing(url: str) -> None:
    """Each round: a receive blocks, another handle sends, and the receive is
    cancelled at a random moment around the wake-up (in BLPOP, while its
    script runs, or after it returned)."""
    n = 200
    rng = random.Random(7)
    got: list[int] = []
    sent: list[int] = []
    returned = 0
    aq = await unimq.aio.open(url, create=True, max_messages=n)
    async with aq, await unimq.aio.open(url) as other:
        with anyio.fail_after(120):
            for i in range(n):
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:

                        async def send_and_cancel(i: int = i) -> None:
                            await anyio.wait_all_tasks_blocked()  # the receive is in BLPOP
                            delay = rng.choice([-1, 0, 0, 0.00005, 0.0002, 0.0005, 0.001])
                            if delay < 0:
                                scope.cancel()  # before the message exists
                            await other.send(b"%06d" % i)
                            sent.append(i)  # returned: enqueued (a cancelled one raised)
                            if delay:
                                await anyio.sleep(delay)
                            scope.cancel()

                        tg.start_soon(send_and_cancel)
                        got.append(int((await aq.receive()).data))
                        returned += 1
            while True:  # what cancelled receives left: in the queue or handed on
                try:
                    got.append(int((await aq.receive(timeout=0)).data))
                except unimq.QueueEmpty:
                    break
            assert (await aq.stat()).messages == 0
    assert sorted(got) == sent  # none lost, none twice
    assert len(sent) > n // 2
    assert returned < len(sent)  # some receives were cancelled


async def test_remove_from_another_handle_wakes_waiters_with_queue_removed(
    url: str, aq: unimq.aio.AsyncQueue
) -> None:
    full = await unimq.aio.open(url)
    outcomes: list[str] = []

    async def receiver() -> None:
        with pytest.raises(unimq.QueueRemoved):
            await aq.receive()
        outcomes.append("receive")

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receiver)
                tg.start_soon(receiver)
                await anyio.wait_all_tasks_blocked()
                await anyio.to_thread.run_sync(unimq.remove, url)  # a sync handle, elsewhere
        assert outcomes == ["receive", "receive"]
        with pytest.raises(unimq.QueueRemoved):
            await full.send(b"x")
    finally:
        await full.aclose()


async def test_a_blocked_sender_wakes_with_queue_removed(url: str) -> None:
    async with await unimq.aio.open(url, create=True, max_messages=1) as q:
        await q.send(b"fills it")

        async def sender() -> None:
            with pytest.raises(unimq.QueueRemoved):
                await q.send(b"waits", timeout=30)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sender)
                await anyio.wait_all_tasks_blocked()
                async with await unimq.aio.open(url) as other:
                    await other.remove()


async def test_a_flushed_script_cache_is_reloaded(
    aq: unimq.aio.AsyncQueue, control: redis.Redis
) -> None:
    await aq.send(b"before")
    await anyio.to_thread.run_sync(control.script_flush)
    await aq.send(b"after")  # NOSCRIPT: sent in full, once
    assert [m.data for m in await aq.receive_many(10)] == [b"before", b"after"]


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A server of the test's own, with AOF, that the test may kill."""
    server = ValkeyServer(tmp_path / "own", appendonly=True)
    server.start()
    yield server
    server.kill()


async def test_server_killed_mid_call_is_backend_unavailable(own_server: ValkeyServer) -> None:
    url = f"{own_server.url}/{new_name()}"
    control = _control(own_server)
    q = await unimq.aio.open(url, create=True)
    try:
        # Blocked in BLPOP (nothing taken yet): maybe_done is False.
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def blocked() -> None:
                    with pytest.raises(unimq.BackendUnavailable) as err:
                        await q.receive()
                    assert err.value.maybe_done is False
                    assert "waiting" in str(err.value)

                tg.start_soon(blocked)
                await _until_blocked(control)
                await anyio.to_thread.run_sync(own_server.kill)
        # The server is back (same port, its AOF): the same handle works again.
        await anyio.to_thread.run_sync(own_server.start)
        await q.send(b"after the restart")
        # A script held on the server when it dies: it may have run (maybe_done).
        await anyio.to_thread.run_sync(lambda: control.client_pause(60_000, all=False))
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def in_flight() -> None:
                    with pytest.raises(unimq.BackendUnavailable) as err:
                        await q.receive()
                    assert err.value.maybe_done is True
                    assert "may have been taken" in str(err.value)

                tg.start_soon(in_flight)
                await _until_blocked(control)
                await anyio.to_thread.run_sync(own_server.kill)
        # Down: nothing can be done, and the error says so.
        with pytest.raises(unimq.BackendUnavailable) as down:
            await q.send(b"x")
        assert down.value.maybe_done is False
        await anyio.to_thread.run_sync(own_server.start)
        # The held script never ran (the AOF has the message).
        assert (await q.receive(timeout=5)).data == b"after the restart"
    finally:
        control.close()
        await q.aclose()


async def test_unix_socket_and_password(tmp_path: Path) -> None:
    server = ValkeyServer(tmp_path / "unix", unix_socket=True, extra=("--requirepass", "s3cr3t"))
    await anyio.to_thread.run_sync(server.start)
    try:
        url = f"redis+unix://:s3cr3t@{server.unix_socket}?queue=jobs"
        async with await unimq.aio.open(url, create=True, max_messages=2) as q:
            assert "s3cr3t" not in q.url and "s3cr3t" not in repr(q)
            assert "s3cr3t" not in str(await q.stat())
            await q.send(b"over a socket", mtype=3)
            assert await q.receive(mtype=3, timeout=5) == unimq.Message(b"over a socket", 3, 0)
        with pytest.raises(unimq.PermissionDenied) as err:
            await unimq.aio.open(f"redis+unix://:wrong@{server.unix_socket}?queue=jobs")
        assert "wrong" not in str(err.value)
    finally:
        await anyio.to_thread.run_sync(server.stop)


async def test_rediss_with_the_ca_and_its_checks(tls: tuple[int, Path]) -> None:  # noqa: F811
    port, ca = tls
    url = f"rediss://localhost:{port}/{new_name()}?ssl_ca_certs={ca}"
    async with await unimq.aio.open(url, create=True) as q:
        await q.send(b"over tls", priority=1)
        assert await q.receive(timeout=5) == unimq.Message(b"over tls", 1, 1)
        await q.remove()
    with pytest.raises(unimq.BackendUnavailable) as unknown_ca:
        await unimq.aio.open(f"rediss://localhost:{port}/{new_name()}", create=True)
    assert unknown_ca.value.maybe_done is False
    assert "certificate" in str(unknown_ca.value).lower()
    with pytest.raises(unimq.BackendUnavailable, match=r"(?i)certificate|hostname"):
        await unimq.aio.open(f"rediss://127.0.0.1:{port}/{new_name()}?ssl_ca_certs={ca}")
    unchecked = f"rediss://localhost:{port}/{new_name()}?ssl_cert_reqs=none"
    async with await unimq.aio.open(unchecked, create=True) as q:
        await q.send(b"unchecked")
        assert (await q.receive(timeout=5)).data == b"unchecked"
        await q.remove()


async def test_options_and_errors_of_opening(url: str) -> None:
    with pytest.raises(unimq.QueueNotFound):
        await unimq.aio.open(url)
    async with await unimq.aio.open(url, create=True, max_messages=3) as q:
        assert (await q.stat()).max_messages == 3
        with pytest.raises(unimq.QueueExists):
            await unimq.aio.open(url, create=True, exclusive=True)
        with pytest.warns(unimq.AttributeMismatchWarning):
            again = await unimq.aio.open(url, create=True, max_messages=5)
        await again.aclose()
        with pytest.raises(unimq.UnsupportedOperation, match="on_full"):
            await unimq.aio.open(url, on_full="drop_oldest")
        with pytest.raises(unimq.InvalidURL):
            await unimq.aio.open(url, bogus=1)
    async with await unimq.aio.open(url, access="r") as reader:
        with pytest.raises(unimq.PermissionDenied):
            await reader.send(b"x")
    async with await unimq.aio.open(url, access="w") as writer:
        with pytest.raises(unimq.PermissionDenied):
            await writer.receive(timeout=0)


async def test_many_tasks_share_one_handle(url: str) -> None:
    n, workers = 400, 8
    got: list[bytes] = []
    async with await unimq.aio.open(url, create=True, max_messages=16) as q:

        async def consumer() -> None:
            while True:
                data = (await q.receive(timeout=30)).data
                if data == b"END":
                    return
                got.append(data)

        async def producer(k: int) -> None:
            for i in range(n // workers):
                await q.send(b"%d-%d" % (k, i), timeout=30)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(consumer)
                async with anyio.create_task_group() as producers:
                    for k in range(workers):
                        producers.start_soon(producer, k)
                for _ in range(workers):
                    await q.send(b"END", timeout=30)
    assert sorted(got) == sorted(b"%d-%d" % (k, i) for k in range(workers) for i in range(50))
    assert not [t for t in threading.enumerate() if t.name.startswith("unimq-aio")]


async def test_a_server_that_stops_answering_is_backend_unavailable(
    aq: unimq.aio.AsyncQueue, control: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import unimq_redis._alink

    monkeypatch.setattr(unimq_redis._alink, "REPLY_TIMEOUT", 0.2)
    await aq.send(b"kept")
    await _paused(control)  # the server holds the script and never answers in time
    with pytest.raises(unimq.BackendUnavailable, match="no answer within") as err:
        await aq.receive()
    assert err.value.maybe_done is True
    await _unpause(control)
    # The connection was dropped: valkey discards the held command of a closed
    # client (the message stays queued); had the server run it first, the
    # message would be gone with the connection, as maybe_done warns.
    left = (await aq.stat()).messages
    await aq.send(b"again")  # the handle works again
    expected = [b"kept", b"again"] if left == 1 else [b"again"]
    assert [m.data for m in await aq.receive_many(10, timeout=5)] == expected


async def test_closing_under_load_raises_queue_closed_and_loses_nothing(url: str) -> None:
    q = await unimq.aio.open(url, create=True, max_messages=1000)
    counts = {"sent": 0, "received": 0, "closed": 0}

    async def worker() -> None:
        try:
            while True:
                try:
                    sent = await q.send_many([b"x"] * 4, timeout=0)
                except unimq.QueueClosed as exc:
                    counts["sent"] += exc.sent or 0  # a batch says how many went
                    raise
                counts["sent"] += sent
                got = await q.receive_many(4, timeout=0)
                counts["received"] += len(got)
        except unimq.QueueClosed:
            counts["closed"] += 1

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
            while counts["received"] < 200:  # all eight are busy
                await anyio.sleep(0)
            await q.aclose()
    assert counts["closed"] == 8  # QueueClosed only, never BackendUnavailable
    async with await unimq.aio.open(url) as check:
        assert (await check.stat()).messages == counts["sent"] - counts["received"]


async def test_closing_puts_handed_on_messages_back_at_the_head(
    url: str, control: redis.Redis
) -> None:
    # The shutdown of a service: its consumer task is cancelled while a receive's
    # script is on the server, then the handle is closed. The message the script
    # took goes back to the head of the queue, before the ones behind it.
    q = await unimq.aio.open(url, create=True)
    await q.send(b"first", mtype=2, priority=1)
    await q.send(b"second", priority=1)
    await q.send(b"low")
    assert not await _cancelled_while_held(control, q.receive)
    assert (await q.stat()).messages == 2  # "first" is held by the handle
    await q.aclose()
    async with await unimq.aio.open(url) as other:
        got = await other.receive_many(10, timeout=5)
        assert got == [
            unimq.Message(b"first", 2, 1),
            unimq.Message(b"second", 1, 1),
            unimq.Message(b"low", 1, 0),
        ]
        assert (await other.stat()).bytes == 0
