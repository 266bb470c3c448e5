"""No call blocks the event loop beyond a non-blocking system call.

asyncio's debug mode logs every callback (one step of a task) that runs
longer than ``slow_callback_duration``; a receive or send that blocked in the
kernel, slept, or joined a thread would show up as such a step. The workload
streams messages through a real peer process in both directions, so the
async side both finds messages and waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import anyio
import pytest

import unimq
import unimq.aio
from tests.aio.conftest import OpenAsync, small_options
from tests.helpers import ROOT

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

THRESHOLD = 0.05

_PEER = """
import sys, unimq
to_us, from_us, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with unimq.open(to_us) as q:
    for i in range(n):
        q.send(b"%015d" % i, timeout=60)
with unimq.open(from_us) as q:
    for _ in range(n):
        q.receive(timeout=60)
"""


class _Slow(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.steps: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("Executing"):
            self.steps.append(text)


@pytest.fixture
def slow_steps() -> Iterator[_Slow]:
    """Turns on asyncio's debug mode for the running loop (set by the test) and
    collects its "Executing <step> took N seconds" warnings."""
    handler = _Slow()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _debug_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = THRESHOLD
    return loop


async def test_the_detector_sees_a_blocking_step(slow_steps: _Slow) -> None:
    loop = _debug_loop()
    try:
        await anyio.sleep(0)  # debug mode times the steps that start from now on
        time.sleep(THRESHOLD * 3)  # what a blocking receive would do
        await anyio.sleep(0)
    finally:
        loop.set_debug(False)
    assert slow_steps.steps, "asyncio debug mode did not report a blocking step"


async def _workload(
    q: unimq.aio.AsyncQueue, back: unimq.aio.AsyncQueue, url: str, back_url: str, n: int
) -> None:
    """Messages both ways through a peer process, timeouts, stat; under debug mode."""
    peer = subprocess.Popen(  # forked before debug mode: fork itself may take a while
        [sys.executable, "-c", _PEER, url, back_url, str(n)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    loop = _debug_loop()
    try:
        await anyio.sleep(0)  # debug mode times the steps from here on
        with anyio.fail_after(60):
            got = [int((await q.receive()).data) for _ in range(n)]
            for i in range(n):
                await back.send(b"%015d" % i)
            for _ in range(3):
                with pytest.raises(unimq.QueueEmpty):
                    await q.receive(timeout=0.01)
            await q.stat()
    except BaseException:
        peer.kill()
        raise
    finally:
        loop.set_debug(False)
        _, err = peer.communicate(timeout=60)
    assert peer.returncode == 0, err
    assert got == list(range(n))


async def test_sends_and_receives_never_block_the_loop(
    open_async: OpenAsync, url: str, kind: str, make_url: Callable[[str], str], slow_steps: _Slow
) -> None:
    n = 1500
    q = await open_async(capacity=4, size=16)
    if not q.capabilities & unimq.Capability.INTERPROCESS:
        pytest.skip("needs a peer process")
    back_url = make_url(kind)
    back = await unimq.aio.open(back_url, create=True, **small_options(kind, 4, 16))
    try:
        await _workload(q, back, url, back_url, n)
        first = list(slow_steps.steps)
        if first:
            # This machine is shared: a step can also be slow because the process
            # was not scheduled. A blocking call is slow every time: run it again.
            slow_steps.steps.clear()
            await _workload(q, back, url, back_url, n)
            assert slow_steps.steps == [], (
                f"slow steps in both runs: {first} then {slow_steps.steps}"
            )
    finally:
        await back.aclose()
