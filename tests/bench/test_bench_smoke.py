"""The benchmark runs end to end at a tiny size; no timing is asserted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import batches, codecs, docs, matched, run
from tests.helpers import ROOT


def test_bench_smoke(tmp_path: Path) -> None:
    results = run.main(["--quick", "--count", "2000", "--sizes", "16", "--out", str(tmp_path)])
    (path,) = tmp_path.glob("bench-*.json")
    saved = json.loads(path.read_text())
    assert saved["sizes"] == [16]
    row = saved["throughput"]["16"]
    for name in (
        "posix_ipc raw",
        "unimq posix",
        "sysv_ipc raw",
        "unimq sysv",
        "multiprocessing.Pipe",
    ):
        assert row[name] > 0
    assert set(saved["ratios"]["throughput 16 B"]) >= {
        "unimq posix / posix_ipc",
        "unimq sysv / sysv_ipc",
    }
    # Batches: unimq's one-call batches and the references, paired in the same rounds.
    batch_row = saved["batches"]["16"]
    for name in (*batches.UNIMQ_CASES.values(), batches.MP):
        assert batch_row[name] > 0
    if shutil.which("cc") or shutil.which("gcc"):  # the C references, per message and spinning
        for name in (*batches.C_CASES.values(), *batches.C_SPIN.values()):
            assert batch_row[name] > 0
        assert "unimq sysv batches / C spinning (kernel ceiling)" in saved["ratios"]["batches 16 B"]
    if batches.have_faster_fifo():
        assert batch_row[batches.FIFO_BATCH] > 0 and batch_row[batches.FIFO_SINGLE] > 0
    assert set(saved["ratios"]["batches 16 B"]) >= {
        "unimq posix batches / multiprocessing.Queue",
        "unimq sysv batches / multiprocessing.Queue",
    }
    assert set(saved["typed_batches"]) == {*batches.TYPED_CASES.values(), batches.MP_TYPED}
    assert all(rate > 0 for rate in saved["typed_batches"].values())
    # Capacity-matched batches: measured in a private IPC namespace, or skipped saying why.
    m = saved["matched"]
    if "skipped" in m:
        assert "unshare" in m["skipped"]
        assert "ratios" not in m and "matched batches 16 B" not in saved["ratios"]
    else:
        assert m["limits"]["kernel.msgmnb"] == batches.FIFO_BYTES
        assert m["limits"]["fs.mqueue.msg_max"] == matched.MAX_MESSAGES
        posix = m["queues"]["16"]["posix"]
        assert posix == {"max_messages": matched.MAX_MESSAGES, "max_message_size": 16}
        assert m["queues"]["16"]["sysv max_bytes"] == batches.FIFO_BYTES
        assert set(m["batches"]["16"]) == set(batch_row)
        assert all(rate > 0 for rate in m["batches"]["16"].values())
        assert set(m["typed_batches"]) == set(saved["typed_batches"])
        assert set(saved["ratios"]["matched batches 16 B"]) == set(saved["ratios"]["batches 16 B"])
    assert saved["sysv_timed"]["idle CPU %"] >= 0
    scale = saved["scale"]
    for kind in ("posix", "sysv"):
        for case in ("1x1", "2x2", "4x4", "1x1 depth 1"):
            assert scale[f"{kind} {case}"] > 0
    assert set(results["typed"]) == set(run.TYPED_CASES) | {
        "multiprocessing.Queue, small model (pickled)",
        "multiprocessing.Queue, seed struct (pickled)",
    }
    assert all(rate > 0 for rate in results["typed"].values())
    # The Benchmarks page's tables are rewritten from one run's JSON.
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    rendered = docs.render(page, saved)
    posix = f"**{row['unimq posix'] / 1000:,.0f}**"
    assert f"| **unimq posix** | {posix} |" in rendered
    mine = batches.UNIMQ_CASES["sysv"]
    assert f"| **{mine}** | **{batch_row[mine] / 1000:,.0f}** |" in rendered
    assert docs.render(rendered, saved) == rendered
    if "skipped" in m:
        assert f"_Not measured in this run: {m['skipped']}._" in rendered
    else:
        assert f"| **{mine}** | **{m['batches']['16'][mine] / 1000:,.0f}** |" in rendered
        assert "| POSIX queue (`max_messages` x `max_message_size`) " in rendered
    assert rendered.count("<!-- bench:") == len(docs.SECTIONS)
    assert set(saved["ratios"]["typed"]) >= {
        "JSON small model posix / mp.Queue",
        "cstruct seed sysv / JSON seed sysv",
    }


def test_codec_bench_smoke() -> None:
    results = codecs.run(200)
    assert results["seed struct"]["unimq CStructCodec"] > 0
    assert results["small model"]["unimq JSONCodec"] > 0


def test_docs_render_needs_every_section() -> None:
    with pytest.raises(ValueError, match="no <!-- bench:throughput --> section"):
        docs.render("# a page without markers\n", {})


def test_batches_alone_and_paired(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m bench.batches`` runs the chosen cases only; ``bench.ab`` pairs
    two checkouts round by round (here the same one twice)."""
    args = ["--typed", "--sizes", "16", "--case", "sysv", "--runs", "2", "--count", "1280"]
    out = batches.main([*args, "--per-message", "--json"])
    assert set(out) == {"16 B", "typed"}
    assert set(out["16 B"]) == {batches.UNIMQ_CASES["sysv"], "unimq sysv per message"}
    assert set(out["typed"]) == {batches.TYPED_CASES["sysv"]}
    assert all(len(v) == 2 and min(v) > 0 for part in out.values() for v in part.values())
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == out
    with pytest.raises(SystemExit):
        batches.main([])  # neither --typed nor --sizes: a usage error

    from bench import ab

    paired = ab.main(
        [str(ROOT), str(ROOT), "--rounds", "2", "--typed", "--case", "sysv", "--count", "640"]
    )
    (case,) = paired
    assert case == f"typed: {batches.TYPED_CASES['sysv']}"
    assert paired[case]["base"] > 0 and paired[case]["new"] > 0 and paired[case]["new/base"] > 0


def test_ab_refuses_a_tree_without_an_interpreter(tmp_path: Path) -> None:
    from bench import ab

    with pytest.raises(SystemExit, match=r"no \.venv/bin/python"):
        ab.main([str(ROOT), str(tmp_path), "--rounds", "1", "--typed"])
