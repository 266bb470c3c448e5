"""Contract: message types (backends with :attr:`unimq.Capability.MTYPE`)."""

from __future__ import annotations

import pytest

import unimq
from unimq.testing._fixtures import BackendFixtures


def _needs_mtype(q: unimq.Queue) -> None:
    if not q.capabilities & unimq.Capability.MTYPE:
        pytest.skip("backend has no message types")


class MtypeContract(BackendFixtures):
    """Selection by type as SysV does it: 0 first, n > 0 that type, n < 0 lowest <= |n|."""

    def test_mtype_selection(self, q: unimq.Queue) -> None:
        _needs_mtype(q)
        for t in (4, 3, 2, 1, 3):
            q.send(f"t{t}".encode(), mtype=t)
        # > 0: first of that type; < 0: first of the lowest type <= abs(n); 0: FIFO.
        assert q.receive(mtype=3, timeout=1) == unimq.Message(b"t3", 3, 0)
        assert q.receive(mtype=-2, timeout=1).mtype == 1
        assert q.receive(timeout=1).mtype == 4
        assert q.receive(mtype=-4, timeout=1).mtype == 2
        assert q.receive(mtype=3, timeout=1).mtype == 3
        with pytest.raises(unimq.QueueEmpty):
            q.receive(timeout=0)

    def test_mtype_selection_leaves_others(self, q: unimq.Queue) -> None:
        _needs_mtype(q)
        q.send(b"two", mtype=2)
        with pytest.raises(unimq.QueueEmpty):
            q.receive(mtype=3, timeout=0)
        with pytest.raises(unimq.QueueEmpty):
            q.receive(mtype=-1, timeout=0)
        assert q.receive(mtype=2, timeout=0).data == b"two"

    def test_mtype_bounds(self, q: unimq.Queue) -> None:
        _needs_mtype(q)
        q.send(b"max", mtype=unimq.MTYPE_MAX)
        assert q.receive(mtype=unimq.MTYPE_MAX, timeout=1).mtype == 2**31 - 1
        for bad in (0, -1, 2**31):
            with pytest.raises(ValueError, match="mtype"):
                q.send(b"x", mtype=bad)
        with pytest.raises(ValueError, match="mtype"):
            q.receive(mtype=2**31, timeout=0)
        with pytest.raises(TypeError, match="mtype"):
            q.send(b"x", mtype="3")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="mtype"):
            q.send(b"x", mtype=2.0)  # type: ignore[arg-type]
        assert q.qsize() == 0
