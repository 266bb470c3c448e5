"""unimq's benchmark: every case of a table measured in the same run, reported
as ratios against the references measured alongside.

    python -m bench.run [--quick] [--out bench-results] [--chart docs/img/bench.png]
                        [--docs docs/benchmarks.md]

Throughput: one sender process, one receiver process, messages/s from the
first to the last message received; ping-pong: round-trip times over two
queues. Each case runs ``--runs`` times and the median is reported. The batch
table runs twice: at this machine's kernel limits, and in a private IPC
namespace whose limits match faster-fifo's buffer (bench.matched).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.util
import operator
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import posix_ipc
import sysv_ipc
from pydantic import BaseModel

import unimq
from bench import batches, codecs, docs, inprocess, matched
from bench.codecs import SEED, SMALL, Seed, Small

HERE = Path(__file__).resolve().parent
Send = Callable[[bytes], Any]
Recv = Callable[[], Any]
# A case opens its endpoints: (send, receive, cleanup)
Endpoints = tuple[Send, Recv, Callable[[], None]]
Opener = Callable[[str, int], Endpoints]
CTX = multiprocessing.get_context("fork")
MAX_POSIX = 8192


def _tag() -> str:
    return f"{os.getpid()}-{time.monotonic_ns() % 10**9}"


def open_posix_raw(name: str, size: int) -> Endpoints:
    mq = posix_ipc.MessageQueue(name, posix_ipc.O_CREAT, 0o600, 10, MAX_POSIX)

    def cleanup() -> None:
        mq.close()
        posix_ipc.unlink_message_queue(name)

    return mq.send, mq.receive, cleanup


def open_unimq(url: str, **options: Any) -> Endpoints:
    q = unimq.open(url, create=True, **options)

    def cleanup() -> None:
        q.remove(missing_ok=True)
        q.close()

    return q.send, q.receive, cleanup


def open_unimq_posix(name: str, size: int) -> Endpoints:
    return open_unimq(f"posix://{name}", max_messages=10, max_message_size=MAX_POSIX)


def _key(name: str) -> int:
    return 0x5B000000 + (abs(hash(name)) % 0xFFFFFF)


def open_sysv_raw(name: str, size: int) -> Endpoints:
    mq = sysv_ipc.MessageQueue(_key(name), sysv_ipc.IPC_CREAT, 0o600, 8192)
    return mq.send, mq.receive, mq.remove


def open_unimq_sysv(name: str, size: int) -> Endpoints:
    return open_unimq(f"sysv://{_key(name)}")


def open_mp_queue(name: str, size: int) -> Endpoints:
    q: Any = CTX.Queue()
    return q.put, q.get, q.close


def open_mp_pipe(name: str, size: int) -> Endpoints:
    r, w = CTX.Pipe(duplex=False)

    def cleanup() -> None:
        r.close()
        w.close()

    return w.send_bytes, r.recv_bytes, cleanup


RECEIVE_TIMEOUT_MS = 5_000


class _ZmqEnd:
    """A pyzmq PUSH or PULL socket made lazily in the process that uses it
    (zmq contexts must not cross fork)."""

    def __init__(self, addr: str, push: bool) -> None:
        self.addr, self.push = addr, push
        self.pid = -1
        self.ctx: Any = None
        self.sock: Any = None
        self.again: type[Exception] = Exception

    def _socket(self) -> Any:
        import zmq

        if self.pid != os.getpid():
            self.again = zmq.Again
            self.pid, self.ctx = os.getpid(), zmq.Context()
            self.sock = self.ctx.socket(zmq.PUSH if self.push else zmq.PULL)
            # An unbounded RCVHWM: with a full receive queue, libzmq dropped the last
            # ~150 messages of a PUSH peer that disconnected (1 run in 4-6 here).
            # The receiver keeps up, so the queue stays small (about 40 MB peak RSS).
            self.sock.setsockopt(zmq.SNDHWM if self.push else zmq.RCVHWM, 1000 if self.push else 0)
            self.sock.setsockopt(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS)
            (self.sock.connect if self.push else self.sock.bind)(self.addr)
            if self.push:  # a forked sender exits through multiprocessing's finalizers
                multiprocessing.util.Finalize(self, self.close, exitpriority=10)
        return self.sock

    def __call__(self, data: bytes = b"") -> Any:
        sock = self._socket()
        if self.push:
            sock.send(data, copy=False)
            return None
        try:
            return sock.recv(copy=True)
        except self.again:
            # A safety net (see RCVHWM above): attempt() repeats the run.
            raise TimeoutError(f"pyzmq PULL received nothing for {RECEIVE_TIMEOUT_MS} ms") from None

    def close(self) -> None:
        if self.sock is not None and self.pid == os.getpid():
            # A sender flushes what it queued; a receiver drops the rest.
            self.sock.close(linger=-1 if self.push else 0)
            self.ctx.term()
            self.sock = None


def open_zmq(name: str, size: int) -> Endpoints:
    path = Path(tempfile.gettempdir()) / f"unimq-bench-zmq-{_tag()}.ipc"
    pull = _ZmqEnd(f"ipc://{path}", push=False)
    # The PULL end binds lazily on its first receive, after the fork: the sender
    # inherits no zmq state, and its PUSH socket queues until it connects.
    push = _ZmqEnd(f"ipc://{path}", push=True)

    def cleanup() -> None:
        push.close()
        pull.close()
        with suppress(FileNotFoundError):
            path.unlink()

    return push, pull, cleanup


def _have_zmq() -> bool:
    try:
        import zmq  # noqa: F401
    except ImportError:
        return False
    return True


PY_CASES: dict[str, Opener] = {
    "posix_ipc raw": open_posix_raw,
    "unimq posix": open_unimq_posix,
    "sysv_ipc raw": open_sysv_raw,
    "unimq sysv": open_unimq_sysv,
    "multiprocessing.Queue": open_mp_queue,
    "multiprocessing.Pipe": open_mp_pipe,
}
if _have_zmq():  # the optional reference: pip install pyzmq (nox -s bench installs it)
    PY_CASES["pyzmq ipc PUSH/PULL"] = open_zmq


def _sender(send: Send, payload: bytes, count: int) -> None:
    for _ in range(count):
        send(payload)


def throughput(opener: Opener, size: int, count: int) -> float:
    """Messages/s with the sender in a forked child process."""
    send, recv, cleanup = opener(f"/unimq-bench-{_tag()}", size)
    try:
        child = CTX.Process(target=_sender, args=(send, b"x" * size, count))
        child.start()
        recv()
        start = time.perf_counter()
        for _ in range(count - 1):
            recv()
        elapsed = time.perf_counter() - start
        child.join()
        return (count - 1) / elapsed
    finally:
        cleanup()


def _echo(send: Send, recv: Recv, count: int, unwrap: Callable[[Any], bytes]) -> None:
    for _ in range(count):
        send(unwrap(recv()))


def _data(value: Any) -> bytes:
    if isinstance(value, tuple):  # raw wrappers return (data, priority/type)
        return bytes(value[0])
    if isinstance(value, unimq.Message):
        return value.data
    return bytes(value)


def pingpong(opener: Opener, size: int, count: int) -> tuple[float, float]:
    """(median, p99) round trip in microseconds over two queues."""
    tag = _tag()
    s1, r1, c1 = opener(f"/unimq-bench-a-{tag}", size)
    s2, r2, c2 = opener(f"/unimq-bench-b-{tag}", size)
    try:
        child = CTX.Process(target=_echo, args=(s2, r1, count, _data))
        child.start()
        payload = b"x" * size
        rtt = []
        for _ in range(count):
            t = time.perf_counter()
            s1(payload)
            r2()
            rtt.append(time.perf_counter() - t)
        child.join()
        rtt.sort()
        return rtt[len(rtt) // 2] * 1e6, rtt[len(rtt) * 99 // 100] * 1e6
    finally:
        c1()
        c2()


def _scale_producer(url: str, per: int, payload: bytes) -> None:
    with unimq.open(url) as q:
        for _ in range(per):
            q.send(payload)


def _scale_consumer(url: str) -> None:
    with unimq.open(url) as q:
        while q.receive().data != b"stop":
            pass


def scale_throughput(url: str, producers: int, consumers: int, count: int, **options: Any) -> float:
    """Messages/s of 16-byte messages with P producer and C consumer processes."""
    q = unimq.open(url, create=True, **options)
    try:
        per = count // producers
        cons = [CTX.Process(target=_scale_consumer, args=(url,)) for _ in range(consumers)]
        prods = [
            CTX.Process(target=_scale_producer, args=(url, per, b"x" * 16))
            for _ in range(producers)
        ]
        for p in cons:
            p.start()
        start = time.perf_counter()
        for p in prods:
            p.start()
        for p in prods:
            p.join()
        for _ in cons:
            q.send(b"stop")
        for p in cons:
            p.join()
        return per * producers / (time.perf_counter() - start)
    finally:
        q.remove()
        q.close()


def scale_table(count: int, runs: int) -> dict[str, float]:
    """Throughput as producers x consumers and as queue capacity grow."""

    def case(kind: str, producers: int, consumers: int, **options: Any) -> float:
        def once() -> float:
            url = (
                f"posix:///unimq-bench-s-{_tag()}"
                if kind == "posix"
                else f"sysv://{_key('s' + _tag())}"
            )
            return scale_throughput(url, producers, consumers, count, **options)

        return median_of(once, runs)

    out: dict[str, float] = {}
    for p, c in ((1, 1), (2, 2), (4, 4)):
        out[f"posix {p}x{c}"] = case("posix", p, c, max_messages=10, max_message_size=64)
        out[f"sysv {p}x{c}"] = case("sysv", p, c)
    for depth in (1, 4, 10):
        out[f"posix 1x1 depth {depth}"] = case(
            "posix", 1, 1, max_messages=depth, max_message_size=64
        )
    for depth in (1, 16, 256):  # 16-byte messages: msg_qbytes = 16 x depth
        out[f"sysv 1x1 depth {depth}"] = case("sysv", 1, 1, max_bytes=16 * depth)
    return out


def memory_throughput(size: int, count: int) -> float:
    """unimq memory:// in one process, sender in a thread."""
    import threading

    q = unimq.open(f"memory://bench-{_tag()}", create=True)
    try:
        t = threading.Thread(target=_sender, args=(q.send, b"x" * size, count))
        t.start()
        q.receive()
        start = time.perf_counter()
        for _ in range(count - 1):
            q.receive()
        elapsed = time.perf_counter() - start
        t.join()
        return (count - 1) / elapsed
    finally:
        q.remove()
        q.close()


# ---------------------------------------------------------------- C references


@contextmanager
def c_programs() -> Iterator[dict[str, Path] | None]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        for name, libs in (("ref_posix", ["-lrt"]), ("ref_sysv", [])):
            exe = Path(tmp) / name
            subprocess.run(
                [cc, "-O2", "-o", str(exe), str(HERE / "c" / f"{name}.c"), *libs], check=True
            )
            out[name] = exe
        yield out


def run_c(
    exe: Path, mode: str, target: str, count: int, size: int, *extra: str
) -> dict[str, float]:
    """One run of a C reference; ``extra``: ref_posix's queue depth (MAXMSG)."""
    proc = subprocess.run(
        [str(exe), mode, target, str(count), str(size), *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(proc.stdout)
    return result


# ---------------------------------------------------------------- typed path


# (queue kind, model, value, codec) per typed case; mp.Queue carries the same models.
TYPED_CASES: dict[str, tuple[str, type[BaseModel], BaseModel, str]] = {
    "unimq typed JSON, small model (posix)": ("posix", Small, SMALL, "json"),
    "unimq typed JSON, small model (sysv)": ("sysv", Small, SMALL, "json"),
    "unimq typed JSON, seed struct (sysv)": ("sysv", Seed, SEED, "json"),
    "unimq typed cstruct, seed struct (sysv)": ("sysv", Seed, SEED, "cstruct"),
    "unimq typed cstruct, seed struct (posix)": ("posix", Seed, SEED, "cstruct"),
}
MP_TYPED = {"small model": SMALL, "seed struct": SEED}


def _typed_sender(url: str, model: type[BaseModel], value: BaseModel, codec: str, n: int) -> None:
    with unimq.open(url) as q:
        typed = q.typed(model, codec=codec)
        for _ in range(n):
            typed.send(value)


def _mp_model_sender(q: Any, value: BaseModel, count: int) -> None:
    for _ in range(count):
        q.put(value)


def _receive_rate(receive: Callable[[], Any], count: int) -> float:
    receive()
    start = time.perf_counter()
    for _ in range(count - 1):
        receive()
    return (count - 1) / (time.perf_counter() - start)


def typed_once(case: str, count: int) -> float:
    """Typed messages/s for one of TYPED_CASES, the sender in a child process."""
    kind, model, value, codec = TYPED_CASES[case]
    tag = _tag()
    url = f"posix:///unimq-bench-typed-{tag}" if kind == "posix" else f"sysv://{_key(tag)}"
    options: dict[str, Any] = (
        {"max_messages": 10, "max_message_size": 1024} if kind == "posix" else {}
    )
    with unimq.open(url, create=True, **options) as q:
        try:
            typed = q.typed(model, codec=codec)
            child = CTX.Process(target=_typed_sender, args=(url, model, value, codec, count))
            child.start()
            rate = _receive_rate(typed.receive, count)
            child.join()
            return rate
        finally:
            q.remove()


def mp_typed_once(value: BaseModel, count: int) -> float:
    mq: Any = CTX.Queue()
    child = CTX.Process(target=_mp_model_sender, args=(mq, value, count))
    child.start()
    rate = _receive_rate(mq.get, count)
    child.join()
    mq.close()
    return rate


def typed_throughput(count: int, runs: int) -> dict[str, float]:
    out = {case: median_of(lambda: typed_once(case, count), runs) for case in TYPED_CASES}  # noqa: B023
    for label, value in MP_TYPED.items():
        out[f"multiprocessing.Queue, {label} (pickled)"] = median_of(
            lambda: mp_typed_once(value, count),  # noqa: B023
            runs,
        )
    return out


# ---------------------------------------------------------------- SysV timeouts


def _timed_sender(url: str, count: int, gap: float) -> None:
    with unimq.open(url) as q:
        for _ in range(count):
            time.sleep(gap)
            q.send(str(time.monotonic()).encode())


def sysv_timed_latency(count: int) -> dict[str, float]:
    """Latency from send to receive, blocking vs emulated timed receive, and idle CPU."""
    url = f"sysv://{_key('timed' + _tag())}"
    out: dict[str, float] = {}
    with unimq.open(url, create=True) as q:
        try:
            for label, timeout in (("blocking", None), ("timed", 5.0)):
                child = CTX.Process(target=_timed_sender, args=(url, count, 0.003))
                child.start()
                lat = []
                for _ in range(count):
                    msg = q.receive(timeout=timeout)
                    lat.append(time.monotonic() - float(msg.data))
                child.join()
                lat.sort()
                out[f"{label} median_us"] = lat[len(lat) // 2] * 1e6
                out[f"{label} p99_us"] = lat[len(lat) * 99 // 100] * 1e6
            cpu0, wall0 = time.process_time(), time.monotonic()
            with suppress(unimq.QueueEmpty):
                q.receive(timeout=2.0)
            out["idle CPU %"] = (time.process_time() - cpu0) / (time.monotonic() - wall0) * 100
        finally:
            q.remove()
    out["added median_us"] = out["timed median_us"] - out["blocking median_us"]
    return out


def handle_memory(count: int = 300) -> dict[str, float]:
    out: dict[str, float] = {}
    cases: tuple[tuple[str, str, dict[str, Any]], ...] = (
        (
            "posix",
            f"posix:///unimq-bench-mem-{_tag()}",
            {"max_messages": 1, "max_message_size": 16},
        ),
        ("sysv", f"sysv://{_key('mem' + _tag())}", {}),
    )
    for kind, url, opts in cases:
        first = unimq.open(url, create=True, **opts)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        handles = [unimq.open(url) for _ in range(count)]
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        out[f"{kind} bytes/handle"] = grown / count
        for h in handles:
            h.close()
        first.remove()
        first.close()
    return out


# ---------------------------------------------------------------- the run


def attempt(fn: Callable[[], Any], retries: int = 6) -> Any:
    """``fn()``, run again when it times out (see _ZmqEnd)."""
    while True:
        try:
            return fn()
        except TimeoutError as exc:
            if retries == 0:
                raise
            retries -= 1
            print(f"  run repeated: {exc}", flush=True)


def median_of(fn: Callable[[], float], runs: int) -> float:
    results: list[float] = [attempt(fn) for _ in range(runs)]
    return statistics.median(results)


def interleaved(cases: dict[str, Callable[[], Any]], runs: int) -> dict[str, list[Any]]:
    """Every case once per round, ``runs`` rounds, the order reversed every other
    round: the machine's slow and fast phases (which last seconds here) fall on
    all cases alike, and neighbours in ``cases`` are measured back to back."""
    samples: dict[str, list[Any]] = {name: [] for name in cases}
    for round_ in range(runs):
        for name in list(cases) if round_ % 2 == 0 else list(reversed(cases)):
            samples[name].append(attempt(cases[name]))
    return samples


def throughput_cases(
    c: dict[str, Path] | None, size: int, count: int
) -> dict[str, Callable[[], float]]:
    """Each kind's C reference, raw wrapper and unimq next to each other, then the rest."""
    cases: dict[str, Callable[[], float]] = {}
    for kind, ref, target, raw in (
        ("posix", "C mq_send/mq_receive", lambda: f"/unimq-bench-c-{_tag()}", "posix_ipc raw"),
        ("sysv", "C msgsnd/msgrcv", lambda: str(_key("c" + _tag())), "sysv_ipc raw"),
    ):
        if c is not None:
            exe = c[f"ref_{kind}"]
            cases[ref] = lambda exe=exe, target=target: run_c(  # type: ignore[misc]
                exe, "throughput", target(), count, size
            )["msgs_per_s"]
        for name in (raw, f"unimq {kind}"):
            cases[name] = lambda opener=PY_CASES[name]: throughput(opener, size, count)  # type: ignore[misc]
    for name, opener in PY_CASES.items():
        if name not in cases:
            cases[name] = lambda opener=opener: throughput(opener, size, count)  # type: ignore[misc]
    cases["unimq memory (threads)"] = lambda: memory_throughput(size, count)
    return cases


def pingpong_cases(
    c: dict[str, Path] | None, size: int, rtts: int
) -> dict[str, Callable[[], list[float]]]:
    cases: dict[str, Callable[[], list[float]]] = {}
    if c is not None:
        cases["C mq_send/mq_receive"] = lambda: list(
            run_c(c["ref_posix"], "pingpong", f"/unimq-bench-p-{_tag()}", rtts, size).values()
        )
        cases["C msgsnd/msgrcv"] = lambda: list(
            run_c(c["ref_sysv"], "pingpong", str(_key("p" + _tag())), rtts, size).values()
        )
    for name in (
        "posix_ipc raw",
        "unimq posix",
        "sysv_ipc raw",
        "unimq sysv",
        "multiprocessing.Pipe",
    ):
        cases[name] = lambda opener=PY_CASES[name]: list(pingpong(opener, size, rtts))  # type: ignore[misc]
    return cases


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument("--runs", type=int, help="rounds per table (median reported)")
    parser.add_argument("--out", default="bench-results", help="directory for the JSON file")
    parser.add_argument("--chart", default=None, help="PNG chart path (needs matplotlib)")
    parser.add_argument("--count", type=int, help="messages per throughput run")
    parser.add_argument("--sizes", help="payload sizes, comma-separated")
    parser.add_argument("--docs", default=None, help="rewrite this page's tables (bench.docs)")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 5)
    count = args.count or (20000 if args.quick else 100000)
    rtts = max(100, count // 10)
    default_sizes = [16, 4096] if args.quick else [16, 256, 4096, 8192]
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else default_sizes
    results: dict[str, Any] = {
        "runs": runs,
        "count": count,
        "sizes": sizes,
        "throughput": {},
        "throughput_runs": {},
        "pingpong": {},
        "pingpong_runs": {},
    }

    with c_programs() as c:
        for size in sizes:
            samples = interleaved(throughput_cases(c, size, count), runs)
            row = {name: statistics.median(values) for name, values in samples.items()}
            results["throughput"][str(size)] = row
            results["throughput_runs"][str(size)] = samples
            print(
                f"throughput {size} B: "
                + ", ".join(f"{k} {v / 1000:.0f}k" for k, v in row.items()),
                flush=True,
            )
        for size in (16,):
            # Round trips vary by 10-20% from round to round here: twice the rounds.
            pings = interleaved(pingpong_cases(c, size, rtts), 2 * runs)
            results["pingpong"][str(size)] = {
                name: [
                    statistics.median(v[0] for v in values),
                    statistics.median(v[1] for v in values),
                ]
                for name, values in pings.items()
            }
            results["pingpong_runs"][str(size)] = pings
        # Batches: one producer and one consumer process, paired rounds per size.
        bcount = count - count % batches.BATCH
        results["batches"], results["batches_runs"] = {}, {}
        for size in [s for s in sizes if s <= 4096]:
            samples = interleaved(batches.cases(sys.modules[__name__], c, size, bcount), runs)
            row = {name: statistics.median(values) for name, values in samples.items()}
            results["batches"][str(size)] = row
            results["batches_runs"][str(size)] = samples
            print(
                f"batches {size} B: " + ", ".join(f"{k} {v / 1000:.0f}k" for k, v in row.items()),
                flush=True,
            )
        tcount = (count // 2) - (count // 2) % batches.BATCH
        typed_samples = interleaved(batches.typed_cases(sys.modules[__name__], tcount), runs)
        results["typed_batches"] = {k: statistics.median(v) for k, v in typed_samples.items()}
        results["typed_batches_runs"] = typed_samples
    # The same batch cases with the kernel queues as roomy as faster-fifo's ring, in a
    # private IPC namespace (bench.matched), or {"skipped": why} where none can be made.
    results["matched"] = matched.launch(bcount, runs, [s for s in sizes if s <= 4096])
    if "skipped" in results["matched"]:
        print(f"capacity-matched batches skipped: {results['matched']['skipped']}", flush=True)
    results["scale"] = scale_table(count, runs)
    print(
        "scale: " + ", ".join(f"{k} {v / 1000:.0f}k" for k, v in results["scale"].items()),
        flush=True,
    )
    results["typed"] = typed_throughput(count // 2, runs)
    results["sysv_timed"] = sysv_timed_latency(max(20, min(300, count // 100)))
    results["memory"] = handle_memory()
    results["codecs"] = codecs.run(2000 if args.quick else 20000)
    results["inprocess"] = inprocess.run(5000 if args.quick else 100_000, 1 if args.quick else 5)
    results["ratios"] = ratios(results)
    report(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")
    if args.chart:
        chart(results, Path(args.chart))
        print(f"wrote {args.chart}")
    if args.docs:
        page = Path(args.docs)
        page.write_text(docs.render(page.read_text(), results))
        print(f"wrote {page}")
    return results


def paired(
    samples: dict[str, list[Any]], a: str, b: str, pick: Callable[[Any], float] = float
) -> float:
    """Median over rounds of a/b, each round's pair measured back to back."""
    return statistics.median(pick(x) / pick(y) for x, y in zip(samples[a], samples[b], strict=True))


def ratios(r: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Paired ratios: for each round, the two cases measured back to back."""
    out: dict[str, dict[str, float]] = {}
    for size, samples in r["throughput_runs"].items():
        ratio = {
            "unimq posix / posix_ipc": paired(samples, "unimq posix", "posix_ipc raw"),
            "unimq sysv / sysv_ipc": paired(samples, "unimq sysv", "sysv_ipc raw"),
        }
        if "C mq_send/mq_receive" in samples:
            ratio["unimq posix / C"] = paired(samples, "unimq posix", "C mq_send/mq_receive")
            ratio["unimq sysv / C"] = paired(samples, "unimq sysv", "C msgsnd/msgrcv")
        out[f"throughput {size} B"] = ratio
    for size, samples in r["pingpong_runs"].items():
        median = operator.itemgetter(0)
        out[f"pingpong {size} B median"] = {
            "unimq posix / posix_ipc": paired(samples, "unimq posix", "posix_ipc raw", median),
            "unimq sysv / sysv_ipc": paired(samples, "unimq sysv", "sysv_ipc raw", median),
        }
    out.update(batches.ratios(r["batches_runs"], r["typed_batches_runs"], paired))
    m = r.get("matched", {})
    if "batches_runs" in m:
        found = batches.ratios(m["batches_runs"], m["typed_batches_runs"], paired)
        out.update({f"matched {name}": values for name, values in found.items()})
    typed = r["typed"]
    mp_small = typed["multiprocessing.Queue, small model (pickled)"]
    mp_seed = typed["multiprocessing.Queue, seed struct (pickled)"]
    out["typed"] = {
        "JSON small model posix / mp.Queue": typed["unimq typed JSON, small model (posix)"]
        / mp_small,
        "JSON small model sysv / mp.Queue": typed["unimq typed JSON, small model (sysv)"]
        / mp_small,
        "cstruct seed sysv / mp.Queue": typed["unimq typed cstruct, seed struct (sysv)"] / mp_seed,
        "cstruct seed sysv / JSON seed sysv": typed["unimq typed cstruct, seed struct (sysv)"]
        / typed["unimq typed JSON, seed struct (sysv)"],
    }
    return out


def report(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for size, row in r["throughput"].items():
        t = Table(f"throughput, {size} B", "msgs/s", "MB/s", title=None)
        for name, value in sorted(row.items(), key=lambda kv: -kv[1]):
            t.add_row(name, f"{value:,.0f}", f"{value * int(size) / 1e6:,.1f}")
        console.print(t)
    for size, row in r["batches"].items():
        t = Table(f"batches of {batches.BATCH}, {size} B", "msgs/s", "MB/s", title=None)
        for name, value in sorted(row.items(), key=lambda kv: -kv[1]):
            t.add_row(name, f"{value:,.0f}", f"{value * int(size) / 1e6:,.1f}")
        console.print(t)
    for size, row in r.get("matched", {}).get("batches", {}).items():
        posix = r["matched"]["queues"][size]["posix"]
        t = Table(
            f"capacity-matched batches, {size} B (POSIX {posix['max_messages']} messages, "
            f"SysV {r['matched']['queues'][size]['sysv max_bytes']:,} bytes)",
            "msgs/s",
            "MB/s",
        )
        for name, value in sorted(row.items(), key=lambda kv: -kv[1]):
            t.add_row(name, f"{value:,.0f}", f"{value * int(size) / 1e6:,.1f}")
        console.print(t)
    if "skipped" in r.get("matched", {}):
        console.print(f"capacity-matched batches: skipped ({r['matched']['skipped']})")
    for size, row in r["pingpong"].items():
        t = Table(f"ping-pong, {size} B", "median us", "p99 us")
        for name, (med, p99) in sorted(row.items(), key=lambda kv: kv[1][0]):
            t.add_row(name, f"{med:.1f}", f"{p99:.1f}")
        console.print(t)
    t = Table("scale: 16 B msgs/s", "value")
    for name, value in r["scale"].items():
        t.add_row(name, f"{value:,.0f}")
    console.print(t)
    for group, rows in r["codecs"].items():
        t = Table(f"{group}: ns per encode + decode", "ns")
        for name, ns in sorted(rows.items(), key=lambda kv: kv[1]):
            t.add_row(name, f"{ns:.0f}")
        console.print(t)
    for size, row in r["inprocess"].items():
        t = Table(f"one process, {size} B: ns per send + receive", "ns")
        for name, ns in row.items():
            t.add_row(name, f"{ns:.0f}")
        console.print(t)
    matched_typed = {"matched typed_batches": r.get("matched", {}).get("typed_batches", {})}
    for title, values in (
        *((name, r[name]) for name in ("typed", "typed_batches")),
        *matched_typed.items(),
        *((name, r[name]) for name in ("sysv_timed", "memory")),
    ):
        t = Table(title, "value")
        for name, value in values.items():
            t.add_row(name, f"{value:,.1f}")
        console.print(t)
    t = Table("ratio (same run)", "value")
    for group, values in r["ratios"].items():
        for name, value in values.items():
            t.add_row(f"{group}: {name}", f"{value:.2f}x")
    console.print(t)


def chart(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(r["throughput"])
    names = list(r["throughput"][sizes[0]])
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(
            [s + i * width for s in range(len(sizes))],
            [r["throughput"][size][name] / 1000 for size in sizes],
            width,
            label=name,
        )
    ax.set_xticks([s + 0.4 - width / 2 for s in range(len(sizes))], [f"{s} B" for s in sizes])
    ax.set_ylabel("thousand messages/s (one sender, one receiver process)")
    ax.set_title("unimq throughput vs the raw wrappers, C, and multiprocessing (same run)")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    title = f"unimq batches of {batches.BATCH} vs C, faster-fifo, pyzmq, multiprocessing"
    if r.get("batches"):
        batches_chart(
            r["batches"],
            path.with_name(f"{path.stem}-batches{path.suffix}"),
            title + ",\nat this machine's default kernel limits",
        )
    if r.get("matched", {}).get("batches"):
        batches_chart(
            r["matched"]["batches"],
            path.with_name(f"{path.stem}-batches-matched{path.suffix}"),
            title + ",\nkernel queues as roomy as faster-fifo's 1 MiB (private IPC namespace)",
        )


def batches_chart(table: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """A batches table (size -> case -> msgs/s) as a chart next to the main one
    (``bench-batches.png``, ``bench-batches-matched.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(table)
    names = list(table[sizes[0]])
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(
            [s + i * width for s in range(len(sizes))],
            [table[size][name] / 1000 for size in sizes],
            width,
            label=name,
        )
    ax.set_xticks([s + 0.4 - width / 2 for s in range(len(sizes))], [f"{s} B" for s in sizes])
    ax.set_ylabel("thousand messages/s (one producer, one consumer process)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
