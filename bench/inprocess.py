"""The cost of one send + receive in one process, without scheduling noise:
the raw wrappers against unimq's C hot path and its pure-Python fallback.

    python -m bench.inprocess [--count N]

The pure-Python figures come from a child process started with
``UNIMQ_PURE_PYTHON=1`` (the choice is made when a backend is imported).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

SIZES = (16, 4096)
# Each case, and the two-process benchmark's opener (bench.run) for its queue.
OPENERS = {
    "posix_ipc raw": "posix_ipc raw",
    "unimq posix, C path": "unimq posix",
    "unimq posix, pure Python": "unimq posix",
    "sysv_ipc raw": "sysv_ipc raw",
    "unimq sysv, C path": "unimq sysv",
    "unimq sysv, pure Python": "unimq sysv",
}
CASES = tuple(OPENERS)


def _loop(
    send: Callable[[bytes], Any], receive: Callable[[], Any], payload: bytes, n: int
) -> float:
    """Nanoseconds per send + receive over ``n`` pairs, after a short warm-up."""
    for _ in range(1000):
        send(payload)
        receive()
    start = time.perf_counter()
    for _ in range(n):
        send(payload)
        receive()
    return (time.perf_counter() - start) / n * 1e9


def measure(case: str, size: int, count: int) -> float:
    """ns per send + receive for one of CASES measured in this process."""
    from bench.run import PY_CASES, _tag  # bench.run imports this module

    send, receive, cleanup = PY_CASES[OPENERS[case]](f"/unimq-bench-ip-{_tag()}", size)
    try:
        return _loop(send, receive, b"x" * size, count)
    finally:
        cleanup()


def _pure(case: str, size: int, count: int) -> float:
    env = {**os.environ, "UNIMQ_PURE_PYTHON": "1"}
    code = (
        "import json, sys; from bench import inprocess; "
        "print(json.dumps(inprocess.measure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, case, str(size), str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: float = json.loads(proc.stdout)
    return result


def run(count: int, rounds: int = 5) -> dict[str, dict[str, float]]:
    """{size: {case: ns per send + receive}}: the best of ``rounds`` loops of
    ``count`` pairs, every case once per round, so noise falls on all alike."""
    out: dict[str, dict[str, float]] = {}
    for size in SIZES:
        best = dict.fromkeys(CASES, float("inf"))
        for _ in range(rounds):
            for case in CASES:
                ns = _pure(case, size, count) if "pure" in case else measure(case, size, count)
                best[case] = min(best[case], ns)
        out[str(size)] = best
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args(argv)
    for size, row in run(args.count).items():
        print(f"\n{size} B: ns per send + receive")
        for case, ns in row.items():
            print(f"  {ns:7.0f}  {case}")


if __name__ == "__main__":
    main()
