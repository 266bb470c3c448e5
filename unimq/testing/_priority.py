"""Contract: priorities (backends with :attr:`unimq.Capability.PRIORITY`)."""

from __future__ import annotations

import pytest

import unimq
from unimq.testing._fixtures import BackendFixtures


def _needs_priority(q: unimq.Queue) -> None:
    if not q.capabilities & unimq.Capability.PRIORITY:
        pytest.skip("backend has no priorities")


class PriorityContract(BackendFixtures):
    """Highest priority first, FIFO within one priority, 0..32767."""

    def test_priority_order(self, q: unimq.Queue) -> None:
        _needs_priority(q)
        # kernel-facts section 3: highest priority first, FIFO within a priority.
        for i in range(8):
            q.send(str(i).encode(), priority=i % 4)
        got = [(m.priority, m.data) for m in (q.receive(timeout=1) for _ in range(8))]
        assert got == [
            (3, b"3"),
            (3, b"7"),
            (2, b"2"),
            (2, b"6"),
            (1, b"1"),
            (1, b"5"),
            (0, b"0"),
            (0, b"4"),
        ]

    def test_priority_bounds(self, q: unimq.Queue) -> None:
        _needs_priority(q)
        q.send(b"top", priority=unimq.PRIORITY_MAX)
        assert q.receive(timeout=1).priority == 32767
        for bad in (-1, 32768):
            with pytest.raises(ValueError, match="priority"):
                q.send(b"x", priority=bad)
