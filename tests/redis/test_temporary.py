"""unimq.temporary("redis://host:port"): a unique queue on that server whose
keys expire unless the creating handle renews them; removed at close and at
normal exit, gone by itself after a crash (a real SIGKILLed process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

import unimq
from tests.redis.server import ValkeyServer

TTL = 2.0
WAIT = 30.0  # bound on every wait below (a few ttl on a busy machine)


@pytest.fixture
def raw(valkey: ValkeyServer) -> Iterator[redis.Redis]:
    r = redis.Redis(host="127.0.0.1", port=valkey.port)
    yield r
    r.close()


def _keys(raw: redis.Redis, url: str) -> dict[bytes, int]:
    """Every key of the queue at ``url`` and its remaining time to live (ms)."""
    name = url.rsplit("/", 1)[1]
    return {k: raw.pttl(k) for k in raw.scan_iter(match=f"unimq:{{{name}}}:*")}


def _until(check: Callable[[], object], what: str) -> None:
    """Poll ``check()`` until it is true, at most WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        time.sleep(0.02)


def test_unique_queue_on_the_server_removed_at_close(
    valkey: ValkeyServer, raw: redis.Redis
) -> None:
    with unimq.temporary(valkey.url, max_messages=4) as a, unimq.temporary(valkey.url) as b:
        assert a.url != b.url
        assert a.url.startswith(f"{valkey.url}/unimq-tmp-{os.getpid()}-")
        a.send(b"hello", mtype=3, priority=2)
        # Another process (here: another handle) opens it by URL.
        with unimq.open(a.url) as other:
            assert other.receive(timeout=0) == unimq.Message(b"hello", 3, 2)
        a.send(b"again")
        keys = _keys(raw, a.url)
        assert keys
        assert all(0 < ttl <= 30_000 for ttl in keys.values()), keys  # default ttl 30 s
        url = a.url
    assert _keys(raw, url) == {}
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)


def test_expiry_is_renewed_while_the_handle_is_open(valkey: ValkeyServer, raw: redis.Redis) -> None:
    with unimq.temporary(valkey.url, ttl=TTL) as q:
        q.send(b"kept")
        start = time.monotonic()
        # Untouched by the user for three times the ttl, the queue is still there.
        while time.monotonic() - start < 3 * TTL:
            keys = _keys(raw, q.url)
            assert len(keys) > 1, keys
            assert all(0 < ttl <= TTL * 1000 for ttl in keys.values()), keys
            time.sleep(0.05)
        assert q.receive(timeout=0).data == b"kept"
        renewers = [t for t in threading.enumerate() if t.name == f"unimq renew {q.url}"]
        assert len(renewers) == 1
    renewers[0].join(WAIT)
    assert not renewers[0].is_alive()  # close() stopped it


def test_keys_made_again_by_later_sends_get_the_expiry(
    valkey: ValkeyServer, raw: redis.Redis
) -> None:
    with unimq.temporary(valkey.url, ttl=60) as q:
        for round_ in range(3):
            # The lists and indexes go when the queue empties and come back with
            # the next send: every one of them must expire again.
            q.send_many([unimq.Message(b"a", 1, 0), unimq.Message(b"b", 7, 9)])
            q.send(b"c", mtype=4, priority=1)
            with unimq.open(q.url) as other:
                waiter_url = other.url
                assert len(other.receive_many(10, timeout=0)) == 3
                with pytest.raises(unimq.QueueEmpty):
                    other.receive(mtype=5, timeout=0.01)  # registers as a waiter once
            q.send(b"d", mtype=2, priority=round_)
            keys = _keys(raw, q.url)
            assert len(keys) >= 6, keys
            assert all(0 < ttl <= 60_000 for ttl in keys.values()), (round_, keys)
            q.receive(timeout=0)
        assert waiter_url == q.url


def test_crashed_creator_leaves_nothing_after_the_ttl(
    valkey: ValkeyServer, raw: redis.Redis
) -> None:
    code = textwrap.dedent(
        f"""
        import sys, unimq
        q = unimq.temporary({valkey.url!r}, ttl={TTL})
        q.send_many([unimq.Message(b"x", 2, 5), unimq.Message(b"y", 1, 0)])
        print(q.url, flush=True)
        q.receive(mtype=9)  # blocks (registered as a waiting receiver) until killed
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        assert url.startswith(valkey.url), url
        _until(lambda: any(k.endswith(b":rw") for k in _keys(raw, url)), "the child blocks")
        assert len(_keys(raw, url)) >= 6
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(WAIT) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(WAIT)
        if child.stdout is not None:
            child.stdout.close()
    # Nothing renews the keys now: the server drops every one of them.
    _until(lambda: not _keys(raw, url), "the keys expire")
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)


def test_normal_exit_removes_it_at_once(valkey: ValkeyServer, raw: redis.Redis) -> None:
    code = textwrap.dedent(
        f"""
        import unimq
        q = unimq.temporary({valkey.url!r}, ttl=600)
        q.send(b"left open")
        print(q.url, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT, check=True
    )
    url = done.stdout.strip()
    assert url.startswith(valkey.url), done
    assert _keys(raw, url) == {}


def test_bad_temporary_spellings(valkey: ValkeyServer) -> None:
    with pytest.raises(unimq.InvalidURL, match="server only"):
        unimq.temporary(f"{valkey.url}/named")
    with pytest.raises(unimq.InvalidURL, match="does not expire"):
        unimq.temporary("memory", ttl=5)
    for ttl in (0, -1, 0.1, float("nan"), 10**9, "soon", True):
        with pytest.raises(unimq.InvalidURL, match="ttl"):
            unimq.temporary(valkey.url, ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(unimq.InvalidURL, match="not made on a server"):
        unimq.temporary("memory://somewhere")
    with pytest.raises(unimq.InvalidURL, match="prefix"):
        unimq.temporary(valkey.url, prefix="a/b")


def test_ttl_only_for_a_queue_this_call_creates(url: str) -> None:
    unimq.open(url, create=True).close()
    with pytest.raises(unimq.InvalidURL, match="ttl applies only to a queue this call creates"):
        unimq.open(url, create=True, ttl=5)
    with pytest.raises(unimq.InvalidURL, match="ttl applies only"):
        unimq.open(f"{url}?ttl=5")
    unimq.remove(url)
