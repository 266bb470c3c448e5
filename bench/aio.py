"""The async layer's benchmark: unimq.aio against the sync handle and against
``to_thread(receive)``, paired in one run (cases interleaved, medians).

    python -m bench.aio [--quick] [--runs N] [--out bench-results]

Throughput: a forked sender process (sync sends) and this process receiving,
messages/s from the first to the last message. Ping-pong: round trip through
an echo process over two queues, sync and async alternating in blocks of 100
in the same run. Idle: CPU used by this process while one
receive waits on an empty queue, as a share of one core.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

import unimq
import unimq.aio

CTX = multiprocessing.get_context("fork")
KINDS = ("posix", "sysv")
SIZES = (16, 4096)


def _url(kind: str) -> str:
    tag = f"{os.getpid()}-{time.monotonic_ns() % 10**9}"
    if kind == "posix":
        return f"posix:///unimq-bench-aio-{tag}"
    return f"sysv://{0x5C000000 + hash(tag) % 0xFFFFFF}"


def _options(kind: str) -> dict[str, Any]:
    return {"max_messages": 10, "max_message_size": 8192} if kind == "posix" else {}


def _sender(url: str, size: int, count: int) -> None:
    with unimq.open(url) as q:
        payload = b"x" * size
        for _ in range(count):
            q.send(payload)


def _echo(a: str, b: str, count: int) -> None:
    with unimq.open(a) as qa, unimq.open(b) as qb:
        for _ in range(count):
            qb.send(qa.receive().data)


# ------------------------------------------------------------------ receivers


def _receive_sync(url: str, count: int) -> float:
    with unimq.open(url) as q:
        q.receive()
        start = time.perf_counter()
        for _ in range(count - 1):
            q.receive()
        return (count - 1) / (time.perf_counter() - start)


async def _receive_async(url: str, count: int) -> float:
    async with await unimq.aio.open(url) as q:
        await q.receive()
        start = time.perf_counter()
        for _ in range(count - 1):
            await q.receive()
        return (count - 1) / (time.perf_counter() - start)


async def _receive_to_thread(url: str, count: int) -> float:
    with unimq.open(url) as q:
        await anyio.to_thread.run_sync(q.receive)
        start = time.perf_counter()
        for _ in range(count - 1):
            await anyio.to_thread.run_sync(q.receive)
        return (count - 1) / (time.perf_counter() - start)


def throughput(kind: str, mode: str, size: int, count: int) -> tuple[float, float]:
    """(messages/s, receiver CPU microseconds per message: this process, threads included)."""
    cpu = time.process_time()
    rate = _throughput(kind, mode, size, count)
    return rate, (time.process_time() - cpu) / count * 1e6


def _throughput(kind: str, mode: str, size: int, count: int) -> float:
    url = _url(kind)
    q = unimq.open(url, create=True, **_options(kind))
    try:
        child = CTX.Process(target=_sender, args=(url, size, count))
        child.start()
        try:
            if mode == "sync":
                return _receive_sync(url, count)
            if mode == "to_thread":
                return anyio.run(_receive_to_thread, url, count)
            return anyio.run(_receive_async, url, count, backend=mode)
        finally:
            child.join()
    finally:
        q.remove()
        q.close()


# ------------------------------------------------------------------ ping-pong


async def _rtt_paired(
    a: str, b: str, blocks: int, per: int, backend: str
) -> tuple[list[float], list[float]]:
    """Round trips alternating between the sync handles and the async ones in
    blocks of ``per``, so both see the same scheduling (cores, other load)."""
    payload = b"x" * 16
    sync_rtt: list[float] = []
    async_rtt: list[float] = []
    perf = time.perf_counter
    with unimq.open(a) as sa, unimq.open(b) as sb:
        async with await unimq.aio.open(a) as qa, await unimq.aio.open(b) as qb:
            for _ in range(blocks):
                for _ in range(per):
                    t = perf()
                    sa.send(payload)
                    sb.receive()
                    sync_rtt.append(perf() - t)
                for _ in range(per):
                    t = perf()
                    await qa.send(payload)
                    await qb.receive()
                    async_rtt.append(perf() - t)
    return sync_rtt, async_rtt


def pingpong(kind: str, mode: str, count: int) -> tuple[float, float]:
    """Median round trips in microseconds (16-byte messages), (sync, async on
    ``mode``), through one echo process."""
    a, b = _url(kind), _url(kind)
    qa = unimq.open(a, create=True, **_options(kind))
    qb = unimq.open(b, create=True, **_options(kind))
    per = 100
    blocks = max(1, count // per)
    try:
        child = CTX.Process(target=_echo, args=(a, b, 2 * blocks * per))
        child.start()
        try:
            sync_rtt, async_rtt = anyio.run(_rtt_paired, a, b, blocks, per, mode, backend=mode)
        finally:
            child.join()
        return statistics.median(sync_rtt) * 1e6, statistics.median(async_rtt) * 1e6
    finally:
        for q in (qa, qb):
            q.remove()
            q.close()


# ------------------------------------------------------------------ idle waiter


async def _idle_async(url: str, seconds: float, timeout: float | None) -> float:
    async with await unimq.aio.open(url) as q:
        with anyio.move_on_after(0.2):  # helper thread started and settled
            await q.receive(timeout=timeout)
        cpu, wall = time.process_time(), time.monotonic()
        with anyio.move_on_after(seconds):
            await q.receive(timeout=timeout)
        return (time.process_time() - cpu) / (time.monotonic() - wall)


def idle(kind: str, mode: str, seconds: float, timeout: float | None) -> float:
    """Share of one core this process uses while one receive waits."""
    url = _url(kind)
    q = unimq.open(url, create=True, **_options(kind))
    try:
        return anyio.run(_idle_async, url, seconds, timeout, backend=mode)
    finally:
        q.remove()
        q.close()


# ------------------------------------------------------------------ driver


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer messages and runs")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    scale = 0.1 if args.quick else 1.0
    counts = {16: int(60_000 * scale), 4096: int(20_000 * scale)}
    slow = int(4_000 * scale)

    rates: dict[str, list[float]] = {}
    for _ in range(runs):  # interleaved: every case once per round
        for kind in KINDS:
            for size in SIZES:
                for mode in ("sync", "asyncio", "trio", "to_thread"):
                    n = slow if mode == "to_thread" else counts[size]
                    key = f"{kind} {size} B {mode}"
                    rate, cpu = throughput(kind, mode, size, n)
                    rates.setdefault(key, []).append(rate)
                    rates.setdefault(f"{key} cpu us/msg", []).append(cpu)
            for mode in ("asyncio", "trio"):
                sync_us, async_us = pingpong(kind, mode, int(5_000 * scale) or 100)
                rates.setdefault(f"{kind} round trip sync ({mode} run)", []).append(sync_us)
                rates.setdefault(f"{kind} round trip {mode}", []).append(async_us)
    result: dict[str, Any] = {k: statistics.median(v) for k, v in rates.items()}
    for kind in KINDS:
        for mode in ("asyncio", "trio"):
            for label, timeout in (("receive()", None), ("receive(timeout=60)", 60.0)):
                key = f"{kind} idle {mode} {label}"
                result[key] = idle(kind, mode, 1.0 if args.quick else 3.0, timeout)

    print(f"unimq.aio benchmark ({runs} rounds, medians; sender in another process)")
    for kind in KINDS:
        for size in SIZES:
            sync = result[f"{kind} {size} B sync"]
            thread = result[f"{kind} {size} B to_thread"]
            base = f"{kind} {size} B"

            def per_msg(mode: str, base: str = base) -> float:
                return float(result[f"{base} {mode} cpu us/msg"])

            print(
                f"{base:>11}  sync {sync / 1e3:7.1f}k msg/s ({per_msg('sync'):.2f} us CPU/msg)  "
                f"to_thread {thread / 1e3:.1f}k ({per_msg('to_thread'):.1f} us CPU/msg)"
            )
            for mode in ("asyncio", "trio"):
                rate = result[f"{base} {mode}"]
                print(
                    f"    {mode:8} {rate / 1e3:7.1f}k msg/s  {rate / sync:5.2f}x sync  "
                    f"{rate / thread:6.1f}x to_thread  ({per_msg(mode):.2f} us CPU/msg)"
                )
        for mode in ("asyncio", "trio"):
            sync_rtt = result[f"{kind} round trip sync ({mode} run)"]
            rtt = result[f"{kind} round trip {mode}"]
            ratio = rtt / sync_rtt
            print(
                f"{kind} round trip {mode:8} {rtt:7.1f} us  ({ratio:4.2f}x sync {sync_rtt:.1f} us)"
            )
        for mode in ("asyncio", "trio"):
            for label in ("receive()", "receive(timeout=60)"):
                share = result[f"{kind} idle {mode} {label}"]
                print(f"{kind} idle waiter {mode:8} {label:20} {share * 100:6.3f}% of a core")
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / "aio.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
