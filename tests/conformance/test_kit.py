"""unimq.testing itself: it passes a right backend from outside this repository,
fails a wrong one, touches only the queues it handed out, and stays out of
``import unimq``; the outside-style backend is found through its entry point
and shown verbatim in the docs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX
from tests.helpers import ROOT
from unimq.testing import QueueLedger, exists, unique_name

DIRQ = ROOT / "tests" / "thirdparty" / "unimq-dirq"

MEMORY_BACKEND = """
import pytest
import unimq
import unimq.testing

C = unimq.Capability


def memory_backend(capabilities=C.MTYPE | C.PRIORITY | C.NATIVE_TIMEOUT, scheme="memory"):
    return unimq.testing.Backend(
        make_url=lambda: f"{scheme}://{unimq.testing.unique_name()}",
        capabilities=capabilities,
    )
"""


def run_outside(pytester: pytest.Pytester, code: str, *args: str) -> pytest.RunResult:
    """Run a test module in a fresh directory (no unimq tests/ on the path) in a new process."""
    pytester.makepyfile(test_outside=MEMORY_BACKEND + textwrap.dedent(code))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", "-rs", *args)


def test_a_right_backend_passes_from_outside_the_repository(pytester: pytest.Pytester) -> None:
    result = run_outside(
        pytester,
        """
        class TestMemory(unimq.testing.QueueContract):
            @pytest.fixture
            def backend(self):
                return memory_backend()
        """,
    )
    outcomes = result.parseoutcomes()
    assert "failed" not in outcomes and "errors" not in outcomes, result.stdout.str()
    assert outcomes["passed"] >= 50
    result.stdout.fnmatch_lines(["*SKIPPED*the backend's queues live in one process*"])


def test_a_wrong_capability_fails(pytester: pytest.Pytester) -> None:
    result = run_outside(
        pytester,
        """
        class TestWrong(unimq.testing.LifecycleContract):
            @pytest.fixture
            def backend(self):
                return memory_backend(capabilities=C.MTYPE)
        """,
        "-k",
        "test_capabilities",
    )
    result.assert_outcomes(failed=1)


def test_a_queue_that_cannot_be_removed_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run_outside(
        pytester,
        """
        from unimq._memory import MemoryQueue


        class Sticky(MemoryQueue):
            scheme = "sticky"

            @classmethod
            def _remove_url(cls, url):
                raise unimq.PermissionDenied(f"{url} refuses to go")


        unimq.register_backend("sticky", Sticky)


        class TestSticky(unimq.testing.SendReceiveContract):
            @pytest.fixture
            def backend(self):
                return memory_backend(scheme="sticky")
        """,
        "-k",
        "test_round_trip_bytes",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*queues the test made could not be removed: sticky://*refuses*"])


@pytest.mark.skipif(not HAVE_POSIX, reason="unimq-posix is not installed")
def test_the_ledger_touches_only_what_it_handed_out() -> None:
    """A queue named like a test's, made by someone else, is neither removed nor reported."""
    foreign = f"posix:///{unique_name()}"
    ledger = QueueLedger(lambda: f"posix:///{unique_name()}")
    mine = ledger.new_url()
    opts: dict[str, Any] = {"max_messages": 2, "max_message_size": 64}
    try:
        unimq.open(foreign, create=True, **opts).close()
        unimq.open(mine, create=True, **opts).close()
        assert ledger.cleanup() == []
        assert not exists(mine)
        assert exists(foreign)
    finally:
        unimq.remove(foreign, missing_ok=True)
        unimq.remove(mine, missing_ok=True)


def test_importing_unimq_does_not_import_pytest() -> None:
    code = (
        "import sys, unimq, unimq.cli, unimq.system, unimq.typed, unimq.cstruct\n"
        "print('pytest' in sys.modules, '_pytest' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_outside_backend_comes_through_its_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="unimq.backends") if ep.name == "dirq"]
    assert ep.value == "unimq_dirq:DirQueue"
    assert ep.dist is not None and ep.dist.name == "unimq-dirq"
    assert unimq.get_backend("dirq") is ep.load()
    assert unimq.available_backends()["dirq"] is True


def test_the_docs_show_the_outside_backend_verbatim() -> None:
    page = (ROOT / "docs" / "third-party.md").read_text()
    blocks = re.findall(r"^```\w*\n(.*?)^```", page, re.S | re.M)
    for name in ("pyproject.toml", "unimq_dirq.py", "test_dirq.py"):
        assert (DIRQ / name).read_text() in blocks, f"docs/third-party.md does not show {name}"


def test_the_outside_backend_uses_only_public_names() -> None:
    """What an outside author may import: unimq's public names, nothing private."""
    for name in ("unimq_dirq.py", "test_dirq.py"):
        text = (DIRQ / name).read_text()
        assert not re.search(r"unimq\._|from unimq\.\w*_", text), name
        assert "tests" not in re.findall(r"^(?:from|import) (\w+)", text, re.M), name
