"""SysVQueue._interrupt_wait: ends one thread's wait at once (unimq.aio's cancellation)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_SYSV
from unimq.testing import wait_until_blocked
from unimq.testing._waiting import JOIN_WAIT

pytestmark = pytest.mark.skipif(not HAVE_SYSV, reason="sysv backend not installed")


@pytest.mark.parametrize("timeout", [None, 30.0])
@pytest.mark.parametrize("direction", ["receive", "send"])
def test_interrupt_ends_one_wait_and_does_nothing(
    sysv_url: str, timeout: float | None, direction: str
) -> None:
    with unimq.open(sysv_url, create=True, max_bytes=64) as q:
        if direction == "send":
            q.send(b"f" * 64)
        results: list[Any] = []
        other_results: list[Any] = []

        def wait(into: list[Any]) -> None:
            if direction == "receive":
                into.append(q._receive_wait(0, timeout))
            else:
                into.append(q._send_wait(b"s" * 64, 1, 0, timeout))

        target = threading.Thread(target=wait, args=(results,))
        other = threading.Thread(target=wait, args=(other_results,))
        target.start()
        other.start()
        try:
            assert target.native_id is not None and other.native_id is not None
            assert wait_until_blocked(target.native_id)
            assert wait_until_blocked(other.native_id)
            assert target.ident is not None
            while target.is_alive():  # repeated until acknowledged, as unimq.aio does
                q._interrupt_wait(target.ident)  # type: ignore[attr-defined]
                target.join(0.001)
            assert results == [None if direction == "receive" else False]
            assert other.is_alive(), "only the interrupted thread's wait ended"
        finally:
            q.close()  # wakes the other waiter
            target.join(JOIN_WAIT)
            other.join(JOIN_WAIT)
        with unimq.open(sysv_url) as again:
            # Nothing was taken or added by the interrupted (and the woken) waiter.
            assert again.stat().messages == (1 if direction == "send" else 0)
            again.remove()


def test_interrupting_a_thread_that_does_not_wait_is_harmless(sysv_url: str) -> None:
    with unimq.open(sysv_url, create=True) as q:
        q._interrupt_wait(threading.get_ident())  # type: ignore[attr-defined]
        q.send(b"x")
        assert q.receive(timeout=1).data == b"x"
        q.remove()
