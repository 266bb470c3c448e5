"""The capacity-matched batches (bench.matched): the namespace guard, which must
never let it write the host's sysctls, and its section of the Benchmarks page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import docs, matched
from tests.helpers import ROOT

SYSCTLS = ("kernel/msgmnb", "fs/mqueue/msg_max", "fs/mqueue/msgsize_max")


def _sysctls() -> dict[str, str]:
    return {name: (Path("/proc/sys") / name).read_text() for name in SYSCTLS}


def _run_matched(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench.matched", "--json", str(tmp_path / "out.json"), *args]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("outer", ["none", "own"])
def test_refuses_in_the_host_namespace(tmp_path: Path, outer: str) -> None:
    """Started without unshare, it refuses and writes no sysctl and no results."""
    own = matched.ipc_namespace()
    assert own is not None
    args = ["--outer-ipc", own] if outer == "own" else []
    before = _sysctls()
    proc = _run_matched(tmp_path, "--count", "640", "--sizes", "16", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "bench.matched: refused, no sysctl written:" in proc.stderr
    assert "unshare --ipc" in proc.stderr
    assert own in proc.stderr
    assert _sysctls() == before
    assert not (tmp_path / "out.json").exists()
    assert proc.stdout == ""


HOST, PRIVATE, OTHER = "ipc:[4026531839]", "ipc:[4026532500]", "ipc:[4026532400]"


@pytest.mark.parametrize(
    ("own", "init", "outer", "refused"),
    [
        (HOST, HOST, None, "PID 1's IPC namespace"),
        (HOST, None, None, "the kernel's initial IPC namespace"),
        (OTHER, OTHER, None, "PID 1's IPC namespace"),  # the host is a container
        (OTHER, None, OTHER, "its launcher's (--outer-ipc)"),
        (PRIVATE, None, None, "cannot tell whether IPC namespace"),
        (None, HOST, HOST, "cannot read /proc/self/ns/ipc"),
        (PRIVATE, HOST, None, None),
        (PRIVATE, OTHER, None, None),
        (PRIVATE, None, HOST, None),
        (PRIVATE, None, OTHER, None),
    ],
)
def test_refusal_rules(
    own: str | None, init: str | None, outer: str | None, refused: str | None
) -> None:
    why = matched.refusal_for(own, init, outer)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


def test_posix_depth_fits_the_rlimit() -> None:
    """Each queue's bytes, kernel bookkeeping included, stay within its share."""
    for size in (16, 256, 4096, 8192):
        depth = matched.posix_depth(size, 819200)
        assert 1 <= depth <= matched.MAX_MESSAGES
        assert depth * size <= 1 << 20
        assert depth * (size + matched.MQ_OVERHEAD) <= 819200 * matched.RLIMIT_SHARE
    assert matched.posix_depth(16, 819200) == matched.MAX_MESSAGES
    assert matched.posix_depth(4096, 819200) == 146
    assert matched.posix_depth(4096, 10**9) == 256  # faster-fifo's 1 MiB of 4 KiB messages


def _results(matched_part: dict[str, Any]) -> dict[str, Any]:
    """Results shaped as bench.run writes them, for the batch sections only."""
    posix, sysv = "unimq posix send_many/receive_many(64)", "unimq sysv send_many/receive_many(64)"
    fifo = "faster-fifo put_many/get_many(64)"
    rates = {
        size: {posix: 900_000.0, sysv: 1_100_000.0, fifo: 1_000_000.0} for size in ("16", "4096")
    }
    typed = {"unimq typed JSON batches(64), small model (posix)": 450_000.0}

    def ratios(p: float, s: float) -> dict[str, float]:
        return {
            "unimq posix batches / faster-fifo put_many/get_many": p,
            "unimq sysv batches / faster-fifo put_many/get_many": s,
        }

    return {
        "batches": rates,
        "typed_batches": typed,
        "matched": matched_part,
        "ratios": {
            "batches 16 B": ratios(0.69, 1.06),
            "batches 4096 B": ratios(0.70, 0.69),
            "typed batches": {"typed JSON batches posix / mp.Queue": 2.5},
            "matched batches 16 B": ratios(1.32, 1.55),
            "matched batches 4096 B": ratios(1.09, 1.05),
            "matched typed batches": {"typed JSON batches posix / mp.Queue": 2.75},
        },
    }


def test_matched_section_renders_queues_rates_and_both_ratios() -> None:
    queues = {
        size: {
            "posix": {"max_messages": depth, "max_message_size": int(size)},
            "sysv max_bytes": 1 << 20,
            "faster-fifo max_bytes": 1 << 20,
        }
        for size, depth in (("16", 1000), ("4096", 146))
    }
    queues["typed"] = {
        "posix": {"max_messages": 1000, "max_message_size": 512},
        "sysv max_bytes": 1 << 20,
    }
    r = _results(
        {
            "queues": queues,
            "batches": {
                "16": {"faster-fifo put/get": 400_000.0},
                "4096": {"faster-fifo put/get": 300_000.0},
            },
            "typed_batches": {"unimq typed JSON batches(64), small model (posix)": 470_000.0},
        }
    )
    text = docs.batches_matched(r)
    assert "![Capacity-matched batches chart](img/bench-batches-matched.png)" in text
    assert "| queue capacity, capacity-matched run | 16 B | 4 KiB | typed JSON |" in text
    assert "| 1,000 x 16 B | 146 x 4 KiB | 1,000 x 512 B |" in text
    assert "| SysV queue (`msg_qbytes` = kernel.msgmnb) | 1 MiB | 1 MiB | 1 MiB |" in text
    assert "| faster-fifo put/get | 400 | 300 |" in text
    assert "| ratio: typed JSON batches posix / mp.Queue | 2.75x |" in text
    # Both configurations side by side, from the same run.
    assert "| posix, default limits | 0.69x | 0.70x |" in text
    assert "| posix, matched limits | 1.32x | 1.09x |" in text
    assert "| sysv, default limits | 1.06x | 0.69x |" in text
    assert "| sysv, matched limits | 1.55x | 1.05x |" in text
    # The default-limit section is unchanged by the matched one.
    assert (
        "| unimq posix batches / faster-fifo put_many/get_many | 0.69x | 0.70x |" in docs.batches(r)
    )


def test_matched_section_says_why_it_was_skipped() -> None:
    r = _results(
        {"skipped": "`unshare --ipc` was refused (unshare failed: Operation not permitted)"}
    )
    text = docs.batches_matched(r)
    assert text == (
        "_Not measured in this run: `unshare --ipc` was refused "
        "(unshare failed: Operation not permitted)._"
    )
    older = _results({})
    del older["matched"]
    assert docs.batches_matched(older) == docs.MATCHED_PLACEHOLDER


def test_page_has_the_matched_section() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    block = (
        "<!-- bench:batches_matched -->\n"
        + docs.MATCHED_PLACEHOLDER
        + "\n<!-- /bench:batches_matched -->"
    )
    # The page holds the placeholder until a full run fills it, or a full run's tables.
    assert block in page or "| queue capacity, capacity-matched run |" in page
