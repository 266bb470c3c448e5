"""The README's example runs, and its two commands are the ones CI uses."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_commands_match_ci() -> None:
    assert "uv run --all-packages unimq demo" in README
    assert "uv run --all-packages nox" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "uv run --all-packages nox" in ci
