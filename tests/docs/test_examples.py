"""Every ```python block of the documentation and the README runs.

Blocks of one page run in order in one fresh namespace (later blocks may use
what earlier ones defined); other fences (console, c, ...) are not run.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

import unimq

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if blocks(p)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_page_examples_run(page: Path) -> None:
    # A real module, so pydantic can resolve the annotations of models defined here.
    module = types.ModuleType(f"docs_example_{page.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module
    try:
        for i, code in enumerate(blocks(page)):
            exec(compile(code, f"{page.name}[block {i}]", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in nav, f"{page} is not in mkdocs.yml"


def test_exception_table_matches_the_code() -> None:
    text = (ROOT / "docs" / "reference" / "exceptions.md").read_text()
    rows = re.findall(r"^\| `(\w+)`(?:[^|]*)\| `([\w.]+)` \|", text, re.M)
    assert len(rows) >= 15
    builtins_ = {"Exception": Exception, "ValueError": ValueError, "ImportError": ImportError}
    builtins_ |= {
        "FileNotFoundError": FileNotFoundError,
        "FileExistsError": FileExistsError,
        "PermissionError": PermissionError,
        "OSError": OSError,
    }
    import queue

    builtins_ |= {"queue.Empty": queue.Empty, "queue.Full": queue.Full}
    for name, base in rows:
        assert issubclass(getattr(unimq, name), builtins_[base]), (name, base)
        assert issubclass(getattr(unimq, name), unimq.UnimqError)
