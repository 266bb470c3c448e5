"""Batches: unimq's ``send_many``/``receive_many`` against every local peer.

One producer process and one consumer process, batches of ``BATCH``; every
case of a size is measured once per round, rounds interleaved (see
``bench.run.interleaved``), so each ratio pairs two cases measured back to
back. The references: the C per-message programs (bench/c), faster-fifo in
bytes mode (``put``/``get`` and ``put_many``/``get_many``), pyzmq ipc
PUSH/PULL and multiprocessing.Queue; and for typed batches,
multiprocessing.Queue carrying the same pydantic model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import unimq
from bench.codecs import SMALL, Small

BATCH = 64
#: faster-fifo's shared circular buffer: room for a batch of 64 x 8 KiB.
FIFO_BYTES = 1 << 20
POSIX_OPTIONS: dict[str, Any] = {"max_messages": 10, "max_message_size": 8192}


def _batch_rate(receive_many: Callable[[], list[Any]], count: int) -> float:
    """Messages/s from the first batch received to the last."""
    first = got = len(receive_many())
    start = time.perf_counter()
    while got < count:
        got += len(receive_many())
    return (got - first) / (time.perf_counter() - start)


# ---------------------------------------------------------------- unimq


def _unimq_url(
    kind: str, tag: str, key: Callable[[str], int], posix: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    if kind == "posix":
        return f"posix:///unimq-bench-batch-{tag}", posix
    return f"sysv://{key('batch' + tag)}", {}


def _unimq_sender(url: str, payload: bytes, count: int) -> None:
    chunk = [payload] * BATCH
    with unimq.open(url) as q:
        for _ in range(count // BATCH):
            q.send_many(chunk)


def unimq_batches(
    ctx: Any,
    kind: str,
    tag: str,
    key: Callable[[str], int],
    size: int,
    count: int,
    posix: dict[str, Any] = POSIX_OPTIONS,
) -> float:
    """Batches of ``size`` bytes; ``posix``: the POSIX queue's attributes (a SysV
    queue gets its namespace's default ``msg_qbytes``, kernel.msgmnb)."""
    url, options = _unimq_url(kind, tag, key, posix)
    with unimq.open(url, create=True, **options) as q:
        try:
            child = ctx.Process(target=_unimq_sender, args=(url, b"x" * size, count))
            child.start()
            rate = _batch_rate(lambda: q.receive_many(BATCH), count)
            child.join()
            return rate
        finally:
            q.remove()


def _typed_sender(url: str, count: int) -> None:
    chunk = [SMALL] * BATCH
    with unimq.open(url) as q:
        typed = q.typed(Small)
        for _ in range(count // BATCH):
            typed.send_many(chunk)


def unimq_typed_batches(
    ctx: Any,
    kind: str,
    tag: str,
    key: Callable[[str], int],
    count: int,
    posix: dict[str, Any] = POSIX_OPTIONS,
) -> float:
    """Typed JSON batches of the small model."""
    url, options = _unimq_url(kind, tag, key, posix)
    with unimq.open(url, create=True, **options) as q:
        try:
            typed = q.typed(Small)
            child = ctx.Process(target=_typed_sender, args=(url, count))
            child.start()
            rate = _batch_rate(lambda: typed.receive_many(BATCH), count)
            child.join()
            return rate
        finally:
            q.remove()


def _mp_model_sender(q: Any, count: int) -> None:
    for _ in range(count):
        q.put(SMALL)


def mp_typed(ctx: Any, count: int) -> float:
    """multiprocessing.Queue carrying the small model, one put/get per value."""
    mq: Any = ctx.Queue()
    child = ctx.Process(target=_mp_model_sender, args=(mq, count))
    child.start()
    mq.get()
    start = time.perf_counter()
    for _ in range(count - 1):
        mq.get()
    rate = (count - 1) / (time.perf_counter() - start)
    child.join()
    mq.close()
    return rate


# ---------------------------------------------------------------- faster-fifo


def have_faster_fifo() -> bool:
    try:
        import faster_fifo  # noqa: F401
    except ImportError:
        return False
    return True


def _fifo() -> Any:
    import faster_fifo

    # Bytes mode: no pickling; loads copies each message out of the shared buffer.
    return faster_fifo.Queue(max_size_bytes=FIFO_BYTES, loads=bytes, dumps=lambda b: b)


def _fifo_batch_sender(q: Any, payload: bytes, count: int) -> None:
    chunk = [payload] * BATCH
    for _ in range(count // BATCH):
        q.put_many(chunk, block=True, timeout=1e6)


def _fifo_sender(q: Any, payload: bytes, count: int) -> None:
    for _ in range(count):
        q.put(payload, block=True, timeout=1e6)


def fifo_batches(ctx: Any, size: int, count: int) -> float:
    q = _fifo()
    child = ctx.Process(target=_fifo_batch_sender, args=(q, b"x" * size, count))
    child.start()
    rate = _batch_rate(
        lambda: q.get_many(block=True, timeout=1e6, max_messages_to_get=BATCH), count
    )
    child.join()
    q.close()
    return rate


def fifo_single(ctx: Any, size: int, count: int) -> float:
    q = _fifo()
    child = ctx.Process(target=_fifo_sender, args=(q, b"x" * size, count))
    child.start()
    q.get(block=True, timeout=1e6)
    start = time.perf_counter()
    for _ in range(count - 1):
        q.get(block=True, timeout=1e6)
    rate = (count - 1) / (time.perf_counter() - start)
    child.join()
    q.close()
    return rate


# ---------------------------------------------------------------- the table

UNIMQ_CASES = {
    "posix": f"unimq posix send_many/receive_many({BATCH})",
    "sysv": f"unimq sysv send_many/receive_many({BATCH})",
}
C_CASES = {"posix": "C mq_send/mq_receive (per message)", "sysv": "C msgsnd/msgrcv (per message)"}
#: The same C programs never sleeping (non-blocking calls retried after
#: sched_yield): the most the kernel path gives, Python or not.
C_SPIN = {
    "posix": "C mq_send/mq_receive spinning (kernel ceiling)",
    "sysv": "C msgsnd/msgrcv spinning (kernel ceiling)",
}
FIFO_BATCH = f"faster-fifo put_many/get_many({BATCH})"
FIFO_SINGLE = "faster-fifo put/get"
ZMQ = "pyzmq ipc PUSH/PULL"
MP = "multiprocessing.Queue"
TYPED_CASES = {
    "posix": f"unimq typed JSON batches({BATCH}), small model (posix)",
    "sysv": f"unimq typed JSON batches({BATCH}), small model (sysv)",
}
MP_TYPED = "multiprocessing.Queue, small model (pickled)"


def cases(
    run: Any,
    c: dict[str, Path] | None,
    size: int,
    count: int,
    posix: dict[str, Any] = POSIX_OPTIONS,
) -> dict[str, Callable[[], float]]:
    """Every batch case of one size; ``run`` is bench.run (its openers and helpers).

    ``posix``: the attributes of unimq's POSIX queue; the C program's queue holds
    as many messages (``max_messages``) of exactly ``size`` bytes.
    """
    ctx, key, tag = run.CTX, run._key, run._tag
    depth = str(posix["max_messages"])
    out: dict[str, Callable[[], float]] = {}
    for kind in ("posix", "sysv"):
        if c is not None:
            exe = c[f"ref_{kind}"]
            target = (
                (lambda: f"/unimq-bench-cb-{tag()}")
                if kind == "posix"
                else (lambda: str(key("cb" + tag())))
            )
            extra = (depth,) if kind == "posix" else ()
            for mode, name in (("throughput", C_CASES[kind]), ("spin", C_SPIN[kind])):
                out[name] = lambda exe=exe, target=target, extra=extra, mode=mode: run.run_c(  # type: ignore[misc]
                    exe, mode, target(), count, size, *extra
                )["msgs_per_s"]
        out[UNIMQ_CASES[kind]] = lambda kind=kind: unimq_batches(  # type: ignore[misc]
            ctx, kind, tag(), key, size, count, posix
        )
    if have_faster_fifo():
        out[FIFO_BATCH] = lambda: fifo_batches(ctx, size, count)
        out[FIFO_SINGLE] = lambda: fifo_single(ctx, size, count)
    if ZMQ in run.PY_CASES:
        out[ZMQ] = lambda: run.throughput(run.PY_CASES[ZMQ], size, count)
    out[MP] = lambda: run.throughput(run.PY_CASES[MP], size, count)
    return out


def typed_cases(
    run: Any, count: int, posix: dict[str, Any] = POSIX_OPTIONS
) -> dict[str, Callable[[], float]]:
    ctx, key, tag = run.CTX, run._key, run._tag
    out: dict[str, Callable[[], float]] = {
        TYPED_CASES[kind]: lambda kind=kind: unimq_typed_batches(  # type: ignore[misc]
            ctx, kind, tag(), key, count, posix
        )
        for kind in ("posix", "sysv")
    }
    out[MP_TYPED] = lambda: mp_typed(ctx, count)
    return out


def ratios(
    samples_by_size: dict[str, dict[str, list[float]]],
    typed: dict[str, list[float]],
    paired: Callable[[dict[str, list[Any]], str, str], float],
) -> dict[str, dict[str, float]]:
    """Paired ratios of the batch table: unimq batches against each reference."""
    out: dict[str, dict[str, float]] = {}
    for size, samples in samples_by_size.items():
        ratio: dict[str, float] = {}
        for kind in ("posix", "sysv"):
            mine = UNIMQ_CASES[kind]
            for ref, label in (
                (C_CASES[kind], "C per message"),
                (C_SPIN[kind], "C spinning (kernel ceiling)"),
                (FIFO_BATCH, "faster-fifo put_many/get_many"),
                (ZMQ, "pyzmq ipc"),
                (MP, "multiprocessing.Queue"),
            ):
                if ref in samples:
                    ratio[f"unimq {kind} batches / {label}"] = paired(samples, mine, ref)
        out[f"batches {size} B"] = ratio
    if typed:
        out["typed batches"] = {
            f"typed JSON batches {kind} / mp.Queue": paired(typed, TYPED_CASES[kind], MP_TYPED)
            for kind in ("posix", "sysv")
        }
    return out


# ---------------------------------------------------------------- on its own


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """Run part of the batch table alone (bench.run runs all of it).

    ``--typed`` runs the typed JSON batches and their multiprocessing.Queue
    reference; ``--sizes`` the byte batches; ``--case`` keeps only the cases
    whose name contains one of the given strings. Prints each case's median
    (and with ``--json``, every sample as JSON on the last line).
    """
    from bench import run

    parser = argparse.ArgumentParser(prog="python -m bench.batches", description=main.__doc__)
    parser.add_argument("--typed", action="store_true", help="the typed JSON batches")
    parser.add_argument("--sizes", default="", help="byte batches of these sizes (16,4096)")
    parser.add_argument("--case", action="append", default=[], help="keep cases naming this")
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--count", type=int, default=100_000, help="messages per run")
    parser.add_argument("--no-c", action="store_true", help="without the C programs")
    parser.add_argument(
        "--per-message", action="store_true", help="also unimq's per-message send/receive"
    )
    parser.add_argument("--json", action="store_true", help="print the samples as JSON")
    args = parser.parse_args(argv)
    if not args.typed and not args.sizes:
        parser.error("give --typed and/or --sizes")
    count = args.count - args.count % BATCH

    def keep(table: dict[str, Callable[[], float]]) -> dict[str, Callable[[], float]]:
        if not args.case:
            return table
        return {k: v for k, v in table.items() if any(c in k for c in args.case)}

    out: dict[str, dict[str, list[float]]] = {}
    with run.c_programs() as c:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            table = cases(run, None if args.no_c else c, size, count)
            if args.per_message:
                for name in ("unimq posix", "unimq sysv"):
                    opener = run.PY_CASES[name]
                    table[f"{name} per message"] = lambda o=opener, n=size: run.throughput(  # type: ignore[misc]
                        o, n, count
                    )
            table = keep(table)
            out[f"{size} B"] = run.interleaved(table, args.runs)
        if args.typed:
            out["typed"] = run.interleaved(keep(typed_cases(run, count)), args.runs)
    for part, samples in out.items():
        for name, values in samples.items():
            print(f"{part}: {name}: {statistics.median(values) / 1000:.0f}k", file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
