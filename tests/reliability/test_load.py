"""N producers x M consumers in separate processes: every message delivered
exactly once, per-producer order kept where the kernel promises it, nothing
left behind. Figures are printed (run with -s to see them)."""

from __future__ import annotations

import multiprocessing
import struct
import time
import zlib
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory
from tests.reliability.conftest import Scale

CTX = multiprocessing.get_context("fork")
HEADER = struct.Struct("=IIII")  # producer, sequence, crc32 of body, body length
STOP = b"stop"


def body_for(producer: int, seq: int) -> bytes:
    return (b"%d:%d;" % (producer, seq)) * (1 + seq % 7)


def tags(kind: str, producer: int) -> dict[str, int]:
    # Mixed mtypes on SysV (two selective consumer groups), mixed priorities on POSIX.
    if kind == "sysv":
        return {"mtype": 1 + producer % 2}
    return {"priority": producer % 3}


def produce(url: str, kind: str, producer: int, count: int) -> None:
    with unimq.open(url) as q:
        extra = tags(kind, producer)
        for seq in range(count):
            body = body_for(producer, seq)
            q.send(HEADER.pack(producer, seq, zlib.crc32(body), len(body)) + body, **extra)


def consume(url: str, mtype: int, results: Any) -> None:
    got: dict[int, list[int]] = {}
    corrupt = 0
    with unimq.open(url) as q:
        while True:
            data = q.receive(mtype=mtype, timeout=60).data
            if data == STOP:
                break
            producer, seq, crc, length = HEADER.unpack_from(data)
            body = data[HEADER.size :]
            if len(body) != length or zlib.crc32(body) != crc:
                corrupt += 1
            got.setdefault(producer, []).append(seq)
    results.put((got, corrupt))


@pytest.mark.parametrize("kind", ["posix", "sysv"])
def test_producers_consumers_exactly_once(kind: str, make_url: UrlFactory, scale: Scale) -> None:
    if not (HAVE_POSIX if kind == "posix" else HAVE_SYSV):
        pytest.skip(f"{kind} backend not installed")
    url = make_url(kind)
    opts: dict[str, Any] = {"max_messages": 10, "max_message_size": 256} if kind == "posix" else {}
    per_producer = scale.messages // scale.producers
    consumer_types = [1 + i % 2 if kind == "sysv" else 0 for i in range(scale.consumers)]
    results: Any = CTX.Queue()
    with unimq.open(url, create=True, **opts) as q:
        start = time.monotonic()
        consumers = [CTX.Process(target=consume, args=(url, t, results)) for t in consumer_types]
        producers = [
            CTX.Process(target=produce, args=(url, kind, p, per_producer))
            for p in range(scale.producers)
        ]
        for proc in consumers + producers:
            proc.start()
        for proc in producers:
            proc.join(120)
            assert proc.exitcode == 0
        for t in consumer_types:  # stops queue behind every data message of their type
            q.send(STOP, **({"mtype": t} if kind == "sysv" else {"priority": 0}))
        parts = [results.get(timeout=120) for _ in consumers]
        for proc in consumers:
            proc.join(60)
            assert proc.exitcode == 0
        elapsed = time.monotonic() - start
        assert q.qsize() == 0
    results.close()
    merged: dict[int, list[int]] = {}
    for got, corrupt in parts:
        assert corrupt == 0
        for producer, seqs in got.items():
            assert seqs == sorted(seqs), f"producer {producer} reordered within one consumer"
            merged.setdefault(producer, []).extend(seqs)
    for producer in range(scale.producers):
        assert sorted(merged[producer]) == list(range(per_producer)), f"producer {producer}"
    total = per_producer * scale.producers
    print(
        f"\n{kind}: {scale.producers}x{scale.consumers} processes, {total} messages in "
        f"{elapsed:.2f} s ({total / elapsed:,.0f} msg/s), none lost, none duplicated, "
        "per-producer order kept"
    )


def late_consumer(url: str, count: int, results: Any, met_full: Any) -> None:
    """Start consuming only once a timed producer met the full queue (so every
    producer has run up against backpressure), then take everything."""
    seen = []
    with unimq.open(url) as q:
        if not met_full.wait(120):
            raise SystemExit("no timed producer ever met a full queue")
        for _ in range(count):
            seen.append(q.receive(timeout=60).data)
    results.put(seen)


def fast_producer(
    url: str, producer: int, count: int, timed: bool, results: Any, met_full: Any
) -> None:
    fulls = 0
    with unimq.open(url) as q:
        for seq in range(count):
            data = b"%d:%d" % (producer, seq)
            if not timed:
                q.send(data)
                continue
            while True:
                try:
                    q.send(data, timeout=0.005)
                    break
                except unimq.QueueFull:
                    fulls += 1
                    met_full.set()
    results.put(fulls)


@pytest.mark.parametrize("kind", ["posix", "sysv"])
def test_backpressure_loses_nothing(kind: str, make_url: UrlFactory) -> None:
    if not (HAVE_POSIX if kind == "posix" else HAVE_SYSV):
        pytest.skip(f"{kind} backend not installed")
    url = make_url(kind)
    opts: dict[str, Any] = (
        {"max_messages": 2, "max_message_size": 32} if kind == "posix" else {"max_bytes": 24}
    )
    per, producers = 100, 4
    results: Any = CTX.Queue()
    met_full = CTX.Event()
    with unimq.open(url, create=True, **opts):
        consumer = CTX.Process(target=late_consumer, args=(url, per * producers, results, met_full))
        procs = [
            CTX.Process(target=fast_producer, args=(url, p, per, p % 2 == 1, results, met_full))
            for p in range(producers)
        ]
        try:
            for proc in [consumer, *procs]:
                proc.start()
            # One list from the consumer and one count per producer, in any order.
            items = [results.get(timeout=120) for _ in [consumer, *procs]]
        finally:
            for proc in [consumer, *procs]:
                proc.join(60)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
        for proc in [consumer, *procs]:
            assert proc.exitcode == 0
    (seen,) = [item for item in items if isinstance(item, list)]
    fulls = [item for item in items if not isinstance(item, list)]
    results.close()
    assert sorted(seen) == sorted(b"%d:%d" % (p, s) for p in range(producers) for s in range(per))
    timed_fulls = sum(fulls)
    print(
        f"\n{kind}: 4 producers into a 2-message queue, 400 delivered once; "
        f"{timed_fulls} QueueFull on timed sends (blocking sends never raise)"
    )
    assert timed_fulls > 0  # the timed producers did meet a full queue and retried
