"""on_full overflow policies against real queues, including concurrent receivers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import unimq
from tests.conftest import UrlFactory
from tests.helpers import ROOT
from tests.lifecycle.conftest import backend_ready
from unimq import _overflow

SIZE = 16  # every message is exactly this long, so SysV byte capacity counts messages


def msg(i: int) -> bytes:
    return f"{i:0{SIZE}d}".encode()


def capacity_options(kind: str, capacity: int) -> dict[str, Any]:
    if kind == "sysv":
        return {"max_bytes": capacity * SIZE}
    return {"max_messages": capacity, "max_message_size": 64}


@pytest.fixture(params=["memory", "posix", "sysv"])
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    reason = backend_ready(name) if name != "memory" else None
    if reason is not None:
        pytest.skip(reason)
    return name


@pytest.fixture
def url(kind: str, make_url: UrlFactory) -> str:
    return make_url(kind)


@pytest.fixture
def handles() -> Iterator[list[unimq.Queue]]:
    made: list[unimq.Queue] = []
    yield made
    for q in made:
        q.close()


def opened(handles: list[unimq.Queue], url: str, kind: str, **extra: Any) -> unimq.Queue:
    q = unimq.open(url, create=True, **capacity_options(kind, 4), **extra)
    handles.append(q)
    return q


def test_drop_oldest_keeps_the_newest_and_counts(
    kind: str, url: str, handles: list[unimq.Queue]
) -> None:
    q = opened(handles, url, kind, on_full="drop_oldest")
    for i in range(7):
        q.send(msg(i), timeout=0)  # never QueueFull
    assert q.stat().dropped == 3
    assert [m.data for m in q.drain()] == [msg(i) for i in (3, 4, 5, 6)]
    assert "on_full=drop_oldest" in q.url


def test_keep_latest_holds_the_newest_n(kind: str, url: str, handles: list[unimq.Queue]) -> None:
    q = opened(handles, url, kind, on_full="keep_latest", keep=2)
    for i in range(5):
        q.send(msg(i), timeout=0)
    assert [m.data for m in q.drain()] == [msg(3), msg(4)]
    assert q.stat().dropped == 3
    latest = opened(handles, url, kind, on_full="keep_latest")  # keep defaults to 1
    for i in range(3):
        latest.send(msg(i), timeout=0)
    assert [m.data for m in latest.drain()] == [msg(2)]


def test_wait_is_unchanged(kind: str, url: str, handles: list[unimq.Queue]) -> None:
    q = opened(handles, url, kind)
    for i in range(4):
        q.send(msg(i), timeout=0)
    with pytest.raises(unimq.QueueFull):
        q.send(msg(4), timeout=0)
    assert q.stat().dropped is None


def test_policy_travels_with_the_url(kind: str, url: str, handles: list[unimq.Queue]) -> None:
    q = opened(handles, url, kind, on_full="keep_latest", keep=2)
    again = unimq.open(q.url)
    handles.append(again)
    for i in range(3):
        again.send(msg(i), timeout=0)
    assert again.stat().dropped == 1


RECEIVER = """
import json, select, sys
import unimq
q = unimq.open(sys.argv[1])
got = []
print("ready", flush=True)
while True:
    try:
        got.append(int(q.receive(timeout=0.05).data))
    except unimq.QueueEmpty:
        if select.select([sys.stdin], [], [], 0)[0]:  # the sender is done and it is empty
            break
q.close()
print(json.dumps(got))
"""


def check_partition(got: list[list[int]], dropped: int | None, total: int) -> None:
    received = [n for out in got for n in out]
    assert len(received) == len(set(received)), "a message was received twice"
    assert set(received) <= set(range(total))
    assert dropped is not None
    assert len(received) + dropped == total, "received + dropped != sent"
    for out in got:
        assert out == sorted(out), "a receiver saw messages out of order"


def test_concurrent_receivers_take_every_message_once(
    kind: str, url: str, handles: list[unimq.Queue]
) -> None:
    """Whatever the interleaving: received + dropped == sent, no message twice,
    each receiver sees increasing numbers (FIFO), the sender never waits.

    A one-message queue, so receivers often empty it between the sender's
    failed send and its drop (the drop then finds nothing and is not counted).
    Kernel queues are received from by other processes (real parallelism);
    memory queues by threads.
    """
    total = 2000
    sender = unimq.open(url, create=True, on_full="drop_oldest", **capacity_options(kind, 1))
    handles.append(sender)
    if kind == "memory":
        got = receive_in_threads(handles, url, kind, sender, total)
    else:
        got = receive_in_processes(url, sender, total)
    check_partition(got, sender.stat().dropped, total)


def receive_in_processes(url: str, sender: unimq.Queue, total: int) -> list[list[int]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RECEIVER, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    got: list[list[int]] = []
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline() == "ready\n"
        for i in range(total):
            sender.send(msg(i), timeout=0)
    finally:
        for p in procs:
            out, _ = p.communicate("done\n", timeout=60)
            assert p.returncode == 0
            got.append(json.loads(out.strip().splitlines()[-1]))
    return got


def receive_in_threads(
    handles: list[unimq.Queue], url: str, kind: str, sender: unimq.Queue, total: int
) -> list[list[int]]:
    receivers = [unimq.open(url) for _ in range(2)]
    handles.extend(receivers)
    got: list[list[int]] = [[] for _ in receivers]
    done = threading.Event()
    errors: list[BaseException] = []

    def receive(q: unimq.Queue, out: list[int]) -> None:
        try:
            while True:
                try:
                    out.append(int(q.receive(timeout=0.05).data))
                except unimq.QueueEmpty:
                    if done.is_set():
                        return
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=receive, args=(q, out))
        for q, out in zip(receivers, got, strict=True)
    ]
    for t in threads:
        t.start()
    try:
        for i in range(total):
            sender.send(msg(i), timeout=0)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert errors == []
    return got


def test_bad_combinations_open_nothing(kind: str, url: str) -> None:
    with pytest.raises(unimq.InvalidURL, match="needs access='rw'"):
        unimq.open(url, create=True, on_full="drop_oldest", access="w")
    with pytest.raises(unimq.InvalidURL, match="only applies to on_full='keep_latest'"):
        unimq.open(url, create=True, keep=2)
    with pytest.raises(unimq.InvalidURL, match="must be one of"):
        unimq.open(url + "?on_full=newest", create=True)
    with pytest.raises(unimq.InvalidURL, match="at least 1"):
        unimq.open(url, create=True, on_full="keep_latest", keep=0)
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)


def test_drops_are_logged_at_a_rate_that_does_not_flood(
    memory_url: str,
    handles: list[unimq.Queue],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(_overflow, "_monotonic", lambda: now[0])
    q = opened(handles, memory_url, "memory", on_full="drop_oldest")
    with caplog.at_level(logging.WARNING, logger="unimq"):
        for i in range(54):  # 50 drops within one interval: one line
            q.send(msg(i), timeout=0)
        now[0] += _overflow.LOG_INTERVAL
        q.send(msg(54), timeout=0)  # the next interval: one line with the 50 unlogged
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 2
    assert "dropped 1 message " in lines[0]
    assert "dropped 50 messages" in lines[1] and "51 in total" in lines[1]


def test_batches_follow_the_policy(kind: str, url: str, handles: list[unimq.Queue]) -> None:
    q = opened(handles, url, kind, on_full="drop_oldest")
    assert q.send_many([msg(i) for i in range(7)], timeout=0) == 7
    assert q.stat().dropped == 3
    assert [m.data for m in q.drain()] == [msg(i) for i in (3, 4, 5, 6)]
