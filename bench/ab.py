"""Paired A/B of the batch cases between two checkouts (each with its own .venv).

    python -m bench.ab BASE_TREE NEW_TREE [--rounds 7] -- <bench.batches arguments>

Each round runs ``python -m bench.batches ... --runs 1 --json`` once in each
tree, the order alternating from round to round, so both trees meet the
machine's slow and fast phases alike; prints each case's median in each tree
and the median over rounds of new/base (each round's pair measured back to back).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any


def python_of(tree: Path) -> str:
    """The tree's interpreter: its .venv's, or this one for the running checkout."""
    venv = tree / ".venv" / "bin" / "python"
    if venv.exists():
        return str(venv)
    if tree.resolve() == Path(__file__).resolve().parents[1]:
        return sys.executable
    raise SystemExit(
        f"{tree} has no .venv/bin/python: run `uv sync --all-packages --group dev` there first"
    )


def one(tree: Path, passed: list[str]) -> dict[str, dict[str, list[float]]]:
    proc = subprocess.run(
        [
            python_of(tree),
            "-m",
            "bench.batches",
            *passed,
            "--runs",
            "1",
            "--json",
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, dict[str, list[float]]] = json.loads(proc.stdout.splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--samples", type=Path, help="write every sample here (JSON)")
    args, passed = parser.parse_known_args(argv)
    passed = [a for a in passed if a != "--"]
    trees = {"base": args.base, "new": args.new}
    for tree in trees.values():
        python_of(tree)  # both usable before the first round
    samples: dict[str, dict[str, list[float]]] = {"base": {}, "new": {}}
    for round_ in range(args.rounds):
        order = ["base", "new"] if round_ % 2 == 0 else ["new", "base"]
        for which in order:
            for part, cases in one(trees[which], passed).items():
                for name, values in cases.items():
                    samples[which].setdefault(f"{part}: {name}", []).extend(values)
    if args.samples:
        args.samples.write_text(json.dumps(samples, indent=1))
    out: dict[str, Any] = {}
    for name, base in samples["base"].items():
        new = samples["new"].get(name, [])
        ratio = statistics.median(n / b for n, b in zip(new, base, strict=True)) if new else None
        out[name] = {
            "base": statistics.median(base),
            "new": statistics.median(new),
            "new/base": ratio,
        }
        print(
            f"{name}: base {statistics.median(base) / 1000:.0f}k, "
            f"new {statistics.median(new) / 1000:.0f}k, new/base {ratio:.3f}",
            flush=True,
        )
    return out


if __name__ == "__main__":
    main()
