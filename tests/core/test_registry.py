"""The backend registry: lazy loading, helpful failures, registration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import unimq
from unimq import _registry
from unimq._memory import MemoryQueue


@pytest.fixture
def clean_registry() -> Iterator[None]:
    registered = dict(_registry._registered)
    loaded = dict(_registry._loaded)
    yield
    _registry._registered.clear()
    _registry._registered.update(registered)
    _registry._loaded.clear()
    _registry._loaded.update(loaded)


def test_unknown_scheme_lists_known_and_guesses() -> None:
    with pytest.raises(unimq.InvalidURL) as info:
        unimq.open("sysvv://1")
    text = str(info.value)
    assert "did you mean 'sysv'" in text
    for scheme in ("memory", "posix", "sysv"):
        assert scheme in text


def test_missing_backend_names_the_extra(clean_registry: None) -> None:
    unimq.register_backend("ghost", "unimq_ghost_not_installed:GhostQueue")
    with pytest.raises(unimq.BackendNotInstalled) as info:
        unimq.open("ghost://x")
    assert isinstance(info.value, ImportError)
    assert "unimq-ghost-not-installed" in str(info.value)


def test_builtin_missing_backend_message(
    clean_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate a machine without unimq-posix: make the import fail for real.
    import sys

    _registry._loaded.pop("posix", None)
    monkeypatch.setitem(sys.modules, "unimq_posix", None)
    with pytest.raises(unimq.BackendNotInstalled, match=r"pip install 'unimq\[posix\]'"):
        unimq.open("posix:///x")


def test_register_class_and_replace(clean_registry: None) -> None:
    unimq.register_backend("mem2", MemoryQueue)
    assert unimq.get_backend("mem2") is MemoryQueue
    with pytest.raises(ValueError, match="already registered"):
        unimq.register_backend("mem2", MemoryQueue)
    unimq.register_backend("mem2", "unimq._memory:MemoryQueue", replace=True)
    assert unimq.get_backend("mem2") is MemoryQueue
    assert "mem2" in unimq.known_schemes()


def test_entry_points_are_discovered() -> None:
    # The distributions declare their backends in the unimq.backends group.
    discovered = _registry._discovered()
    assert discovered.get("memory") == "unimq._memory:MemoryQueue"


def test_available_backends() -> None:
    avail = unimq.available_backends()
    assert avail["memory"] is True
    assert set(avail) >= {"memory", "posix", "sysv"}


def test_core_never_imports_backend_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys, unimq, unimq._memory\n"
        "q = unimq.open('memory://x', create=True); q.remove(); q.close()\n"
        "names = ('posix_ipc', 'sysv_ipc', 'unimq_posix', 'unimq_sysv')\n"
        "bad = [m for m in names if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
