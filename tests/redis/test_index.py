"""The queue's index bookkeeping (key layout 4): meta ``lists`` counts the
non-empty lists, so a batch from a queue's only list (COMMIT) reads no index;
that list's score may then lag and is made exact when a second list is
indexed; meta ``w:rw`` / ``w:sw`` say a waiter set may be non-empty, so an
operation nobody waits for does not look at it. Also: a transaction's replies
that reach the client in pieces are read whole.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from unimq_redis import _link as redis_link
from unimq_redis._scripts import COMMIT

import unimq
from tests.helpers import wait_for
from tests.redis.invariants import check_index
from tests.redis.server import ValkeyServer
from tests.redis.test_take import Count, _guessed, _put_back

M = unimq.Message


@pytest.fixture
def control(valkey: ValkeyServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=valkey.port)
    client.script_load(COMMIT.body)
    yield client
    client.close()


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_the_only_lists_lagging_score_is_made_exact_for_a_second_list(
    url: str, control: redis.Redis
) -> None:
    name = _name(url)
    h = f"unimq:{{{name}}}:h:0"
    with unimq.open(url, create=True, max_messages=500) as q:
        old = [M(b"a%03d" % i) for i in range(200)]
        _guessed(q, old)
        assert q.receive_many(100, timeout=0) == old[1:101]
        head = control.lindex(f"unimq:{{{name}}}:l:0:1", 0)
        assert head is not None and head[32:] == b"a101"
        lagging = control.zscore(h, "1")
        assert lagging is not None and lagging < int(head[:16])  # as designed: alone, unranked
        q.send(b"b0", mtype=2)  # a second list of the same priority
        assert control.zscore(h, "1") == int(head[:16])
        check_index(control, name)
        # The next message is the oldest: a101 (type 1), not b0.
        assert q.receive(timeout=0) == old[101]
        # A message put back on type 2 ranks first; then the rest in sending order.
        _put_back(q, b"back", 2)
        check_index(control, name)
        got = q.receive_many(500, timeout=0)
        assert got == [M(b"back", 2), *old[102:], M(b"b0", 2)]
        check_index(control, name)
        q.remove()


def test_a_batch_for_a_type_the_only_list_lacks_takes_nothing(
    url: str, control: redis.Redis
) -> None:
    name = _name(url)
    with unimq.open(url, create=True, max_messages=50) as q:
        q.send_many([M(b"x1", 4), M(b"x2", 4)])
        gen = control.hget(f"unimq:{{{name}}}:meta", "gen")
        assert isinstance(gen, bytes)
        prefix = f"unimq:{{{name}}}"
        # COMMIT asked directly: selection type 5 (and "lowest <= 3") of the only list (type 4)
        for sel in (5, -3):
            r = control.evalsha(
                COMMIT.sha, 1, f"{prefix}:meta", prefix, gen, sel, 1, 10, 8192, 0, 4
            )
            assert r == [0, 0], sel
        assert q.stat().messages == 2
        assert control.llen(f"{prefix}:l:0:4") == 2
        assert q.receive_many(5, mtype=4, timeout=0) == [M(b"x1", 4), M(b"x2", 4)]
        check_index(control, name)
        q.remove()


def test_operations_nobody_waits_for_do_not_read_the_waiter_sets(
    url: str, control: redis.Redis
) -> None:
    name = _name(url)
    with unimq.open(url, create=True, max_messages=20) as q:
        _guessed(q, [M(b"a"), M(b"b"), M(b"c")])
        count = Count(control)
        q.send(b"d")
        q.send_many([b"e", b"f"])
        assert q.receive(timeout=0) == M(b"b")
        assert q.receive_many(10, timeout=0) == [M(x) for x in (b"c", b"d", b"e", b"f")]
        ran = count()
        # The single receive's two (the highest priority, its first list); a
        # look at a waiter set would be one more for each of the four.
        assert ran.get("zrange") == 2, ran
        # A receiver waits: its registration sets the flag, and a send wakes it.
        got: list[M] = []
        waiter = threading.Thread(target=lambda: got.append(q.receive(timeout=60)))
        waiter.start()
        meta = f"unimq:{{{name}}}:meta"
        try:
            wait_for(lambda: control.hget(meta, "w:rw") == b"1", "the receiver's registration")
            check_index(control, name)
        finally:
            q.send(b"wake")  # (also ends the wait if the test failed before)
            waiter.join(60)
        assert got == [M(b"wake")]
        assert control.hget(meta, "w:rw") is None  # cleared by the wake
        check_index(control, name)
        q.remove()


class Trickle:
    """A TCP proxy to ``port`` that passes the server's bytes a few at a time,
    so a transaction's replies reach the client in several reads."""

    def __init__(self, port: int, step: int = 7) -> None:
        self.port_to = port
        self.step = step
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.socks: list[socket.socket] = []
        self.closing = False
        self._spawn(self._accept)

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self.threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.port_to))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks += [client, server]
            self._spawn(self._pump, client, server, 65536)
            self._spawn(self._pump, server, client, self.step)

    def _pump(self, src: socket.socket, dst: socket.socket, step: int) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                for i in range(0, len(data), step):
                    dst.sendall(data[i : i + step])
                    if step < 65536:
                        time.sleep(0.0002)  # let the client read this piece alone
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closing = True
        for s in (self.listener, *self.socks):  # shutdown wakes a thread blocked in accept/recv
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self.threads:
            t.join(30)


def test_transaction_replies_arriving_in_pieces_are_read_whole(
    valkey: ValkeyServer, control: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = redis_link._read

    def counted(conn: object, **kw: object) -> object:
        reads.append(1)
        return real(conn, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(redis_link, "_read", counted)
    proxy = Trickle(valkey.port)
    try:
        url = f"redis://127.0.0.1:{proxy.port}/trickle-{time.monotonic_ns()}"
        with unimq.open(url, create=True, max_messages=300) as q:
            items = [M(b"p%03d" % i) for i in range(120)]
            _guessed(q, items)
            count = Count(control)
            reads.clear()
            assert q.receive_many(50, timeout=0) == items[1:51]
            assert count().get("exec") == 1
            assert len(reads) > 1  # the replies did come in pieces
            control.script_flush()  # NOSCRIPT inside EXEC: the transaction is sent again
            assert q.receive_many(100, timeout=0) == items[51:]
            q.remove()
    finally:
        proxy.close()
