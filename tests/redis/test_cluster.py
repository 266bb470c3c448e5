"""A 3-primary valkey cluster started by the test, slots assigned through redis-py:
queues on different slots (and nodes) work unchanged, through any node's URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from redis.crc import key_slot

import unimq
import unimq.aio
from tests.helpers import wait_for
from tests.redis.server import ValkeyServer
from unimq.testing import in_background

RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


def _cmd(client: redis.Redis, *args: Any) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ValkeyServer]]:
    base: Path = tmp_path_factory.mktemp("cluster")
    nodes = [ValkeyServer(base / f"n{i}", cluster=True) for i in range(3)]
    try:
        for node in nodes:
            node.start()
        clients = [redis.Redis(host="127.0.0.1", port=n.port) for n in nodes]
        for client, (lo, hi) in zip(clients, RANGES, strict=True):
            _cmd(client, "CLUSTER", "ADDSLOTSRANGE", lo, hi)
        for node in nodes[1:]:
            _cmd(clients[0], "CLUSTER", "MEET", "127.0.0.1", node.port)
        # Gossip has no completion event to wait on: poll the state, bounded.
        wait_for(
            lambda: (
                all(c.cluster("info")["cluster_state"] == "ok" for c in clients)
                and all(len(c.cluster("nodes")) == 3 for c in clients)
            ),
            "the cluster converged (every node ok and knowing 3 nodes)",
        )
        for c in clients:
            c.close()
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def _name_on(node_index: int, taken: set[str]) -> str:
    lo, hi = RANGES[node_index]
    for i in range(10_000):
        name = f"cq-{node_index}-{i}"
        if lo <= key_slot(f"unimq:{{{name}}}:meta".encode()) <= hi and name not in taken:
            return name
    raise AssertionError("no name found")


def test_queues_on_every_node_through_one_url(cluster: list[ValkeyServer]) -> None:
    seed = cluster[0]
    names = [_name_on(i, set()) for i in range(3)]
    handles = [
        unimq.open(f"redis://127.0.0.1:{seed.port}/{n}", create=True, max_messages=4) for n in names
    ]
    try:
        for h, n in zip(handles, names, strict=True):
            h.send(n.encode(), priority=1)
            h.send(b"second", mtype=3)
        for i, (h, n) in enumerate(zip(handles, names, strict=True)):
            # Every key of the queue is on the node that owns its slot.
            owner = redis.Redis(host="127.0.0.1", port=cluster[i].port)
            try:
                keys = _cmd(
                    owner, "CLUSTER", "COUNTKEYSINSLOT", key_slot(f"unimq:{{{n}}}:meta".encode())
                )
                assert keys >= 4  # meta, all, types, data, t:1, t:3
            finally:
                owner.close()
            assert h.receive(mtype=3, timeout=1) == unimq.Message(b"second", 3, 0)
            assert h.receive(timeout=1) == unimq.Message(n.encode(), 1, 1)
            assert h.stat().messages == 0
        # Opening through another node's URL finds the same queue.
        with unimq.open(f"redis://127.0.0.1:{cluster[2].port}/{names[0]}") as other:
            handles[0].send(b"via seed")
            assert other.receive(timeout=1).data == b"via seed"
    finally:
        for h in handles:
            h.remove()
            h.close()


def test_blocked_receive_on_another_node_wakes(cluster: list[ValkeyServer]) -> None:
    name = _name_on(1, set())
    url = f"redis://127.0.0.1:{cluster[0].port}/{name}"
    with unimq.open(url, create=True) as q, unimq.open(url) as sender:
        # The helper sends once this thread is blocked in receive(), and is joined.
        with in_background(lambda: sender.send(b"woken")):
            got = q.receive(timeout=30).data
        assert got == b"woken"
        q.remove()
        with pytest.raises(unimq.QueueRemoved):
            sender.receive(timeout=1)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_unimq_aio_follows_the_redirection(cluster: list[ValkeyServer]) -> None:
    # Opened through node 0, the queue lives on node 2: MOVED, then that node.
    name = _name_on(2, set())
    url = f"redis://127.0.0.1:{cluster[0].port}/{name}"
    async with await unimq.aio.open(url, create=True) as q, await unimq.aio.open(url) as other:
        await q.send(b"first", priority=2)
        assert await q.receive(timeout=1) == unimq.Message(b"first", 1, 2)
        got: list[bytes] = []
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def receive() -> None:
                    got.append((await q.receive(timeout=30)).data)

                tg.start_soon(receive)
                await anyio.wait_all_tasks_blocked()
                await other.send(b"woken")
        assert got == [b"woken"]
        assert (await q.stat()).messages == 0
        await q.remove()


def test_batch_transaction_follows_moved(cluster: list[ValkeyServer]) -> None:
    # The queue lives on node 1; the handle's link is sent back to node 0 after
    # its first batch, so the next transaction gets MOVED while queued (EXEC
    # aborts it: nothing ran) and the batch goes through RECEIVE_MANY, which
    # follows the redirection; the batch after that is a transaction on node 1.
    from unimq_redis._link import Server

    name = _name_on(1, set())
    url = f"redis://127.0.0.1:{cluster[0].port}/{name}"
    with unimq.open(url, create=True) as q:
        q.send_many([b"%d" % i for i in range(10)])
        assert [m.data for m in q.receive_many(2, timeout=0)] == [b"0", b"1"]
        link = q._link  # type: ignore[attr-defined]
        link.server = Server(link.server.address.moved("127.0.0.1", cluster[0].port))
        assert [m.data for m in q.receive_many(3, timeout=0)] == [b"2", b"3", b"4"]
        assert link.server.address.port == cluster[1].port
        assert q._guess is not None  # type: ignore[attr-defined]
        assert [m.data for m in q.receive_many(9, timeout=0)] == [b"5", b"6", b"7", b"8", b"9"]
        assert (q.stat().messages, q.stat().bytes) == (0, 0)
        q.remove()
