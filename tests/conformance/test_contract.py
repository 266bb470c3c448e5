"""The whole queue contract (unimq.testing) over each of unimq's own backends,
exactly as a third-party backend runs it."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import backend_or_skip
from unimq.testing import Backend, QueueContract


class TestMemory(QueueContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return backend_or_skip("memory")


class TestPosix(QueueContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return backend_or_skip("posix")


class TestSysV(QueueContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return backend_or_skip("sysv")
