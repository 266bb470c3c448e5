"""unimq's own backends as the conformance kit sees them.

Each backend is described once (:data:`BACKENDS`), exactly as a third-party
author describes theirs to :mod:`unimq.testing`; ``test_contract.py`` runs
the whole contract over each. The ``kind``/``url``/``open_queue``/``q``
fixtures serve tests beside the contract that need one backend's specifics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory, new_url
from unimq.testing import Backend, OpenQueue, message_options

__all__ = ["BACKENDS", "KINDS", "OpenQueue", "small_options"]

KINDS = ["memory", "posix", "sysv"]
_MISSING = {"posix": not HAVE_POSIX, "sysv": not HAVE_SYSV, "memory": False}

_C = unimq.Capability


def _sysv_options(capacity: int, size: int) -> dict[str, Any]:
    # SysV counts bytes: msg_qbytes caps the total (and the count) of queued messages.
    return {"max_bytes": capacity * size}


_SEND_RECEIVE_FIELDS = frozenset(
    {"bytes", "max_bytes", "last_send_pid", "last_send_time", "last_receive_pid"}
)

BACKENDS = {
    "memory": Backend(
        make_url=lambda: new_url("memory"),
        capabilities=_C.MTYPE | _C.PRIORITY | _C.NATIVE_TIMEOUT,
        stat_fields=_SEND_RECEIVE_FIELDS,
    ),
    "posix": Backend(
        make_url=lambda: new_url("posix"),
        capabilities=_C.PRIORITY | _C.INTERPROCESS | _C.NATIVE_TIMEOUT | _C.NOTIFY | _C.FILENO,
    ),
    "sysv": Backend(
        make_url=lambda: new_url("sysv"),
        capabilities=_C.MTYPE | _C.INTERPROCESS | _C.SET_ATTRIBUTES,
        options=_sysv_options,
        stat_fields=_SEND_RECEIVE_FIELDS,
    ),
}


def small_options(kind: str, capacity: int, size: int) -> dict[str, Any]:
    """Options giving room for exactly ``capacity`` messages of ``size`` bytes."""
    if kind == "sysv":
        return _sysv_options(capacity, size)
    return message_options(capacity, size)


def backend_or_skip(kind: str) -> Backend:
    if _MISSING[kind]:
        pytest.skip(f"the {kind} backend package (unimq-{kind}) is not installed")
    return BACKENDS[kind]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    backend_or_skip(name)
    return name


@pytest.fixture
def url(kind: str, make_url: UrlFactory) -> str:
    """A fresh URL of this kind, removed at teardown."""
    return make_url(kind)


@pytest.fixture
def open_queue(kind: str, url: str) -> Iterator[OpenQueue]:
    """``open_queue(capacity=4, size=64)`` creates the queue at ``url``; every
    handle it returns is closed at teardown."""
    handles: list[unimq.Queue] = []

    def factory(
        capacity: int = 8, size: int = 256, *, url: str | None = None, **extra: Any
    ) -> unimq.Queue:
        opts = {**small_options(kind, capacity, size), **extra}
        q = unimq.open(default if url is None else url, create=True, **opts)
        handles.append(q)
        return q

    default = url
    yield factory
    for q in handles:
        q.close()


@pytest.fixture
def q(open_queue: OpenQueue) -> unimq.Queue:
    return open_queue()
