"""Sizes for the reliability suite, and a leak check around it (fds, threads)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Scale:
    producers: int
    consumers: int
    messages: int


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    if request.config.getoption("--large"):
        return Scale(producers=8, consumers=8, messages=400_000)
    return Scale(producers=4, consumers=4, messages=100_000)


def _fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True, scope="module")
def no_leaks() -> Iterator[None]:
    """Each reliability module leaves no file descriptors and no threads behind."""
    fds, threads = _fds(), set(threading.enumerate())
    yield
    leaked_fds = _fds() - fds
    # Give finished helper threads a moment to be reaped.
    for t in set(threading.enumerate()) - threads:
        t.join(timeout=5)
    leaked_threads = [t for t in set(threading.enumerate()) - threads if t.is_alive()]
    assert not leaked_threads, f"threads left running: {leaked_threads}"
    assert not leaked_fds, f"file descriptors leaked: {sorted(leaked_fds)}"
