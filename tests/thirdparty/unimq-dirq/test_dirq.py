"""unimq-dirq's tests: the whole unimq contract, through unimq.testing."""

from __future__ import annotations

import pytest

import unimq
import unimq.testing


class TestDirQueue(unimq.testing.QueueContract):
    @pytest.fixture
    def backend(self, tmp_path_factory: pytest.TempPathFactory) -> unimq.testing.Backend:
        home = tmp_path_factory.getbasetemp() / "dirq"
        home.mkdir(exist_ok=True)
        return unimq.testing.Backend(
            make_url=lambda: f"dirq://{home}/{unimq.testing.unique_name()}",
            capabilities=unimq.Capability.PRIORITY | unimq.Capability.INTERPROCESS,
            stat_fields=frozenset({"bytes"}),
        )
