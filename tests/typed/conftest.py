"""Fixtures of the typed-queue tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import unimq
from tests.conformance.conftest import KINDS, small_options
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory

_MISSING = {"posix": not HAVE_POSIX, "sysv": not HAVE_SYSV, "memory": False}


@pytest.fixture(params=KINDS)
def raw(request: pytest.FixtureRequest, make_url: UrlFactory) -> Iterator[unimq.Queue]:
    """A raw queue (8 messages of 512 bytes) of each kind, closed afterwards."""
    kind: str = request.param
    if _MISSING[kind]:
        pytest.skip(f"the {kind} backend is not installed")
    q = unimq.open(make_url(kind), create=True, **small_options(kind, 8, 512))
    yield q
    q.close()
