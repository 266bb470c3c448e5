"""redis:// beyond the conformance suite: URLs, credentials, removal, selection
against memory://, unix sockets, listing, server faults."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import redis
from unimq_redis import RedisQueue, list_queues

import unimq
from tests.redis.conftest import new_name
from tests.redis.server import ValkeyServer, free_port
from unimq.testing import Waiter, wait_until_blocked

WAKE = 10.0

ServerFactory = Callable[..., ValkeyServer]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start extra valkey-servers for one test; all are killed at teardown."""
    servers: list[ValkeyServer] = []

    def factory(**kwargs: object) -> ValkeyServer:
        server = ValkeyServer(tmp_path / f"s{len(servers)}", **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.kill()


def _raw(server: ValkeyServer, **kwargs: object) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, **kwargs)  # type: ignore[arg-type]


def _blocked(waiter: Waiter) -> None:
    """Until the waiter sleeps in its call (bounded), not a fixed pause."""
    assert waiter.started_call.wait(WAKE)
    assert waiter.native_id is not None
    assert wait_until_blocked(waiter.native_id, timeout=WAKE), (waiter.result, waiter.error)
    assert waiter.is_alive(), (waiter.result, waiter.error)


# ---------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("redis://localhost:6379", "names no queue"),
        ("redis://localhost:6379/", "names no queue"),
        ("redis://localhost:6379/a{b}", "braces"),
        ("redis://localhost:6379/a%2Fb", "slashes"),
        ("redis://localhost:99999/q", "port"),
        ("redis://localhost:6379/q?db=x", "db"),
        ("redis://localhost:6379/q?queue=x", "redis\\+unix"),
        ("redis://localhost:6379/q?ssl_ca_certs=/x", "rediss"),
        ("rediss://localhost:6379/q?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("redis+unix://host/sock?queue=q", "socket path"),
        ("redis+unix:///tmp/x.sock", "names no queue"),
    ],
)
def test_bad_urls_fail_before_any_connection(url: str, needle: str) -> None:
    with pytest.raises(unimq.InvalidURL, match=needle):
        unimq.open(url, create=True)


def test_tls_checks_certificates_by_default() -> None:
    from unimq_redis._address import parse_address

    kw = parse_address(unimq.parse_url("rediss://cache.example:6380/q")).connection_kwargs()
    assert kw["ssl_cert_reqs"] == "required" and kw["ssl_check_hostname"] is True
    kw = parse_address(
        unimq.parse_url("rediss://h/q?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem")
    ).connection_kwargs()
    assert kw["ssl_cert_reqs"] == "none" and kw["ssl_ca_certs"] == "/ca.pem"


def test_url_round_trips_and_keeps_db(valkey: ValkeyServer) -> None:
    name = new_name()
    url = f"{valkey.url}/{name}?db=3"
    with unimq.open(url, create=True, max_messages=5) as q:
        assert q.url == url
        assert _raw(valkey, db=3).exists(f"unimq:{{{name}}}:meta")
        assert not _raw(valkey, db=0).exists(f"unimq:{{{name}}}:meta")
        q.remove()


# ---------------------------------------------------------------------- credentials


@pytest.fixture
def secured(make_server: ServerFactory) -> ValkeyServer:
    return make_server(extra=("--requirepass", "s3cr3t-pw"))


def test_password_never_shown(
    secured: ValkeyServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNIMQ_REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDISCLI_AUTH", raising=False)
    caplog.set_level(logging.DEBUG)
    url = f"redis://default:s3cr3t-pw@127.0.0.1:{secured.port}/{new_name()}"
    with unimq.open(url, create=True, max_messages=2) as q:
        q.send(b"x")
        shown = [q.url, repr(q), str(q.stat()), repr(q.stat()), caplog.text]
        clone = pickle.loads(pickle.dumps(q))  # reopens with the password it was opened with
        try:
            assert clone.receive(timeout=1).data == b"x"
            shown.append(repr(clone))
        finally:
            clone.close()
        q.send(b"y" * 10)
        q.send(b"z")
        with pytest.raises(unimq.QueueFull) as full:
            q.send(b"w", timeout=0)
        shown.append(str(full.value))
        q.remove()
        unimq.remove(url, missing_ok=True)
    shown.append(caplog.text)
    assert q.url == f"redis://default@127.0.0.1:{secured.port}/{url.rsplit('/', 1)[1]}"
    for text in shown:
        assert "s3cr3t" not in text, text


def test_wrong_or_missing_password_is_permission_denied(
    secured: ValkeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNIMQ_REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDISCLI_AUTH", raising=False)
    for url in (
        f"redis://:wrong-pw@127.0.0.1:{secured.port}/q",
        f"redis://127.0.0.1:{secured.port}/q",
    ):
        with pytest.raises(unimq.PermissionDenied) as info:
            unimq.open(url, create=True)
        assert "wrong-pw" not in str(info.value)
        assert "password" in str(info.value)


@pytest.mark.parametrize("variable", ["UNIMQ_REDIS_PASSWORD", "REDISCLI_AUTH"])
def test_password_from_environment(
    secured: ValkeyServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("UNIMQ_REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDISCLI_AUTH", raising=False)
    monkeypatch.setenv(variable, "s3cr3t-pw")
    url = f"redis://127.0.0.1:{secured.port}/{new_name()}"
    with unimq.open(url, create=True) as q:
        q.send(b"env")
        assert q.receive(timeout=1).data == b"env"
        assert "s3cr3t" not in repr(q)
        q.remove()


# ---------------------------------------------------------------------- removal


def test_remove_wakes_receivers_and_senders_of_every_handle(
    open_queue: Callable[..., unimq.Queue], url: str
) -> None:
    full = open_queue(capacity=1, size=16)
    full.send(b"f")
    other = unimq.open(url)
    try:
        empty_url = url + "-empty"
        empty = unimq.open(empty_url, create=True)
        try:
            waiters = [
                Waiter(lambda: other.send(b"s", timeout=None)),
                Waiter(lambda: full.send(b"s", timeout=30)),
                Waiter(lambda: empty.receive(timeout=None)),
                Waiter(lambda: empty.receive(mtype=-5, timeout=30)),
            ]
            for w in waiters:
                w.start()
            for w in waiters:
                _blocked(w)
            full.remove()
            unimq.remove(empty_url)
            for w in waiters:
                w.join(WAKE)
                assert not w.is_alive(), "remove() did not wake a waiter"
                assert isinstance(w.error, unimq.QueueRemoved), (w.result, w.error)
            with pytest.raises(unimq.QueueRemoved):
                other.stat()
        finally:
            empty.close()
    finally:
        other.close()


def test_removed_and_recreated_queue_is_not_the_old_one(q: unimq.Queue, url: str) -> None:
    q.remove()
    with unimq.open(url, create=True) as again:
        again.send(b"new")
        with pytest.raises(unimq.QueueRemoved):
            q.receive(timeout=0)
        with pytest.raises(unimq.QueueNotFound):
            q.remove()
        assert again.receive(timeout=0).data == b"new"


# ---------------------------------------------------------------------- semantics


@pytest.mark.parametrize("seed", range(5))
def test_selection_matches_memory_backend(url: str, seed: int) -> None:
    """Random sends (mtype, priority) and receives (0, n, -n) give exactly what
    memory:// gives: priority order, FIFO within a priority, lowest type <= n."""
    rng = random.Random(seed)
    mem_url = f"memory://redis-model-{os.getpid()}-{seed}"
    opts: dict[str, Any] = {"max_messages": 30, "max_message_size": 64, "max_bytes": 30 * 64}
    with (
        unimq.open(url, create=True, **opts) as r,
        unimq.open(mem_url, create=True, **opts) as m,
    ):
        try:
            for step in range(400):
                if rng.random() < 0.55:
                    data = f"{step}".encode()
                    mtype, priority = rng.randint(1, 6), rng.choice([0, 0, 1, 5, 32767])
                    outcome = []
                    for h in (r, m):
                        try:
                            h.send(data, mtype=mtype, priority=priority, timeout=0)
                            outcome.append("sent")
                        except unimq.QueueFull:
                            outcome.append("full")
                    assert outcome[0] == outcome[1]
                else:
                    sel = rng.choice([0, 0, 1, 3, 6, 7, -1, -3, -6])
                    got: list[unimq.Message | None] = []
                    for h in (r, m):
                        try:
                            got.append(h.receive(mtype=sel, timeout=0))
                        except unimq.QueueEmpty:
                            got.append(None)
                    assert got[0] == got[1], (step, sel)
                assert r.stat().messages == m.stat().messages
                assert r.stat().bytes == m.stat().bytes
        finally:
            r.remove()
            m.remove()


def test_byte_capacity(url: str) -> None:
    with unimq.open(url, create=True, max_messages=100, max_bytes=10, max_message_size=8) as q:
        assert q.max_message_size == 8
        q.send(b"12345678")
        with pytest.raises(unimq.QueueFull):
            q.send(b"123", timeout=0)
        q.send(b"12")
        with pytest.raises(unimq.MessageTooLarge):
            q.send(b"123456789")
        assert q.stat().bytes == 10
        q.remove()


def test_stat_times_and_pids(q: unimq.Queue) -> None:
    st = q.stat()
    assert st.last_send_time is None and st.last_change_time is not None
    q.send(b"a")
    q.receive(timeout=0)
    st = q.stat()
    assert st.last_send_pid == os.getpid() == st.last_receive_pid
    assert st.last_send_time is not None and st.last_receive_time is not None
    assert st.kind == "redis" and st.name is not None


def test_unix_socket(make_server: ServerFactory) -> None:
    server = make_server(unix_socket=True)
    url = f"redis+unix://{server.unix_socket}?queue=orders"
    with unimq.open(url, create=True) as q:
        assert q.url == url
        q.send(b"over a socket", priority=2)
        with unimq.open(url) as other:
            assert other.receive(timeout=1) == unimq.Message(b"over a socket", 1, 2)
        assert [s.url for s in list_queues(f"redis+unix://{server.unix_socket}")] == [url]
        q.remove()


def test_list_queues(make_server: ServerFactory) -> None:
    server = make_server()
    names = ["a1", "b2", "c3"]
    for n in names:
        with unimq.open(f"{server.url}/{n}", create=True, max_messages=7) as q:
            q.send(n.encode())
    _raw(server).set("unrelated", "x")
    listed = list_queues(server.url)
    assert [s.name for s in listed] == names
    assert all(s.messages == 1 and s.max_messages == 7 for s in listed)
    assert [s.url for s in listed] == [f"{server.url}/{n}" for n in names]
    assert RedisQueue.capabilities & unimq.Capability.INTERPROCESS


# ---------------------------------------------------------------------- faults


def test_unreachable_server_is_backend_unavailable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/nobody-home"
    with pytest.raises(unimq.BackendUnavailable) as info:
        unimq.open(url, create=True)
    assert isinstance(info.value, ConnectionError)
    assert info.value.maybe_done is False
    assert "nothing was done" in str(info.value)


def test_script_cache_flush(q: unimq.Queue, valkey: ValkeyServer) -> None:
    q.send(b"before")
    _raw(valkey).script_flush()
    q.send(b"after")
    assert [m.data for m in q.drain()] == [b"before", b"after"]


def test_connection_cut_during_blocked_receive(q: unimq.Queue, valkey: ValkeyServer) -> None:
    waiter = Waiter(lambda: q.receive(timeout=None))
    waiter.start()
    _blocked(waiter)
    admin = _raw(valkey)
    try:
        killed = admin.client_kill_filter(_type="normal", skipme=True)
    finally:
        admin.close()
    assert killed >= 1
    waiter.join(WAKE)
    assert not waiter.is_alive()
    assert isinstance(waiter.error, unimq.BackendUnavailable), (waiter.result, waiter.error)
    assert waiter.error.maybe_done is False and "nothing" in str(waiter.error)
    # The same handle works again.
    q.send(b"again")
    assert q.receive(timeout=1).data == b"again"


def test_server_killed_and_restarted_with_aof(
    make_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL during sends and receives, restart from the AOF (appendfsync always):
    every acknowledged send survives, nothing is duplicated, and the same handles
    work again. Sends/receives that failed with maybe_done=True are reported."""
    server = make_server(appendonly=True)
    url = f"{server.url}/faults"
    acked: set[int] = set()
    unknown: set[int] = set()
    received: list[int] = []
    lost_receives = 0
    with unimq.open(url, create=True, max_messages=100_000) as q:
        for i in range(200):
            q.send(str(i).encode())
            acked.add(i)
        stop = threading.Event()
        errors: list[BaseException] = []
        progress = threading.Condition()
        failures = 0

        def produce() -> None:
            nonlocal failures
            i = 200
            while not stop.is_set():
                try:
                    q.send(str(i).encode())
                    acked.add(i)
                except unimq.BackendUnavailable as exc:
                    failures += 1
                    if exc.maybe_done:
                        unknown.add(i)
                except BaseException as exc:  # reported below
                    errors.append(exc)
                    stop.set()
                with progress:
                    progress.notify_all()
                i += 1

        def consume() -> None:
            nonlocal lost_receives
            while not stop.is_set():
                try:
                    received.append(int(q.receive(timeout=0.2).data))
                except unimq.QueueEmpty:
                    pass
                except unimq.BackendUnavailable as exc:
                    lost_receives += exc.maybe_done
                except BaseException as exc:  # reported below
                    errors.append(exc)
                    stop.set()

        def wait_for(predicate: Callable[[], bool]) -> None:
            with progress:
                assert progress.wait_for(lambda: predicate() or stop.is_set(), timeout=60)

        threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(acked) >= 1500)
            server.kill()
            wait_for(lambda: failures > 0)  # the producer noticed
            server.start()
            after = len(acked)
            wait_for(lambda: len(acked) >= after + 500)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors
        remaining = [int(m.data) for m in q.drain()]
        q.remove()
    everything = received + remaining
    assert len(everything) == len(set(everything)), "a message was delivered twice"
    missing = acked - set(everything)
    # A receive whose reply was lost may have taken a message: only those can be missing.
    assert len(missing) <= lost_receives, (sorted(missing)[:10], lost_receives)
    assert set(everything) <= acked | unknown
    with capsys.disabled():
        print(
            f"\n[redis faults] acked sends {len(acked)}, sends of unknown outcome "
            f"{len(unknown)} (landed: {len(unknown & set(everything))}), receives of "
            f"unknown outcome {lost_receives}, acknowledged messages missing {len(missing)}, "
            "duplicates 0"
        )


def test_close_during_server_outage_does_not_hang(make_server: ServerFactory) -> None:
    server = make_server()
    q = unimq.open(f"{server.url}/outage", create=True)
    waiter = Waiter(lambda: q.receive(timeout=None))
    waiter.start()
    _blocked(waiter)
    server.kill()
    waiter.join(WAKE)
    assert isinstance(waiter.error, unimq.BackendUnavailable)
    with contextlib.suppress(unimq.BackendUnavailable):
        q.send(b"x")
    q.close()


def test_check_with_password_in_url(secured: ValkeyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNIMQ_REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDISCLI_AUTH", raising=False)
    from unimq import system

    url = f"redis://:s3cr3t-pw@127.0.0.1:{secured.port}/{new_name()}"
    result = system.check(url)
    assert result.ok and not result.exists, result
    with unimq.open(url, create=True):
        result = system.check(url)
        assert result.ok and result.exists, result
    assert "s3cr3t" not in repr(result)
    unimq.remove(url)
    bad = system.check(f"redis://:wrong@127.0.0.1:{secured.port}/q")
    assert not bad.ok and "wrong" not in str(bad.problem)


class Order(pydantic.BaseModel):
    sku: str
    qty: int


def test_typed_queue_over_redis(q: unimq.Queue) -> None:
    orders = q.typed(Order)
    orders.send(Order(sku="A1", qty=2))
    assert orders.receive(timeout=1) == Order(sku="A1", qty=2)


def _close_inherited(q: unimq.Queue) -> None:
    q.close()


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_forked_child_closing_the_handle_leaves_the_parents_wait_alone(
    q: unimq.Queue, url: str
) -> None:
    waiter = Waiter(lambda: q.receive(timeout=30))
    waiter.start()
    _blocked(waiter)
    ctx: Any = multiprocessing.get_context("fork")
    child = ctx.Process(target=_close_inherited, args=(q,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert waiter.is_alive(), (waiter.result, waiter.error)
    with unimq.open(url) as sender:
        sender.send(b"still waited for")
    waiter.join(WAKE)
    assert not waiter.is_alive()
    assert waiter.result == unimq.Message(b"still waited for", 1, 0), waiter.error


def test_message_size_beyond_the_protocol_limit(url: str) -> None:
    with pytest.raises(unimq.LimitExceeded, match="proto-max-bulk-len"):
        unimq.open(url, create=True, max_message_size=2**31 - 1)
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)


def test_parsed_network_url_keeps_the_password_apart() -> None:
    url = unimq.parse_url("redis://app:p%40ss@cache.example:6380/orders?db=2")
    assert url.password == "p@ss"
    assert str(url) == "redis://app@cache.example:6380/orders?db=2"
    assert "p@ss" not in repr(url) and "p%40ss" not in repr(url)
    assert url == unimq.parse_url("redis://app@cache.example:6380/orders?db=2")
    assert unimq.parse_url(str(url)).password is None
    assert unimq.parse_url("redis://:only-pw@h/q").target == "h/q"
