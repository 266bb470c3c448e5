"""The fixtures every contract class shares; a subclass provides ``backend``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

import unimq
from unimq.testing._backend import Backend, QueueLedger
from unimq.testing._waiting import Alarms


class OpenQueue(Protocol):
    """The ``open_queue`` fixture: ``open_queue(capacity=8, size=256, *, url=None, **options)``."""

    def __call__(
        self, capacity: int = 8, size: int = 256, *, url: str | None = None, **options: Any
    ) -> unimq.Queue: ...


class BackendFixtures:
    """Fixtures for contract tests. Subclasses define the ``backend`` fixture.

    - ``new_url()``: a fresh URL of the backend; every queue made at one is
      removed after the test, and the test fails if one is still there.
    - ``url``: one such URL.
    - ``open_queue(capacity=8, size=256, *, url=None, **options)``: creates
      (or opens) the queue at ``url`` (default: the ``url`` fixture) with room
      for ``capacity`` messages of ``size`` bytes; handles are closed after the test.
    - ``q``: ``open_queue()``.
    - ``alarms``: a counting SIGALRM handler (:class:`unimq.testing.Alarms`).
    """

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError(
            "a contract test class needs a 'backend' fixture returning unimq.testing.Backend"
        )

    @pytest.fixture
    def new_url(self, backend: Backend) -> Iterator[Callable[[], str]]:
        ledger = QueueLedger(backend.make_url)
        yield ledger.new_url
        left = ledger.cleanup()
        if left:
            pytest.fail(
                "queues the test made could not be removed: " + ", ".join(left), pytrace=False
            )

    @pytest.fixture
    def url(self, new_url: Callable[[], str]) -> str:
        return new_url()

    @pytest.fixture
    def open_queue(self, backend: Backend, url: str) -> Iterator[OpenQueue]:
        handles: list[unimq.Queue] = []

        def factory(
            capacity: int = 8, size: int = 256, *, url: str | None = None, **options: Any
        ) -> unimq.Queue:
            target = default_url if url is None else url
            q = unimq.open(target, create=True, **{**backend.options(capacity, size), **options})
            handles.append(q)
            return q

        default_url = url
        yield factory
        for handle in handles:
            handle.close()

    @pytest.fixture
    def q(self, open_queue: OpenQueue) -> unimq.Queue:
        return open_queue()

    @pytest.fixture
    def alarms(self) -> Iterator[Alarms]:
        with Alarms() as alarms:
            yield alarms
