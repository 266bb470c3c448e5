"""The conformance suite runs every test once per backend (memory, posix, sysv).

A third-party backend can run the same suite: register its scheme, add it to
``KINDS`` (or parametrize ``kind`` in its own conftest) and provide a
``small_options`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory

KINDS = ["memory", "posix", "sysv"]
_MISSING = {"posix": not HAVE_POSIX, "sysv": not HAVE_SYSV, "memory": False}


def small_options(kind: str, capacity: int, size: int) -> dict[str, Any]:
    """Options giving room for exactly ``capacity`` messages of ``size`` bytes."""
    if kind == "posix":
        return {"max_messages": capacity, "max_message_size": size}
    if kind == "sysv":
        return {"max_bytes": capacity * size}
    return {"max_messages": capacity, "max_message_size": size}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if _MISSING[name]:
        pytest.skip(f"the {name} backend package is not installed")
    return name


OpenQueue = Callable[..., unimq.Queue]


@pytest.fixture
def url(kind: str, make_url: UrlFactory) -> str:
    """A fresh URL of this kind, removed at teardown."""
    return make_url(kind)


@pytest.fixture
def open_queue(kind: str, url: str) -> Iterator[OpenQueue]:
    """``open_queue(capacity=4, size=64)`` creates the queue at ``url``; every
    handle it returns is closed at teardown."""
    handles: list[unimq.Queue] = []

    def factory(capacity: int = 8, size: int = 256, **extra: Any) -> unimq.Queue:
        opts = {**small_options(kind, capacity, size), **extra}
        q = unimq.open(url, create=True, **opts)
        handles.append(q)
        return q

    yield factory
    for q in handles:
        q.close()


@pytest.fixture
def q(open_queue: OpenQueue) -> unimq.Queue:
    return open_queue()
