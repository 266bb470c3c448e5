"""A System V receive that finds the queue empty retries in C, for a few
microseconds, when its event loop has no other task to run (unimq.aio's
_spin and the channel's receive_spin): a reply on its way is taken without a
helper thread. The retry never runs while another task is ready."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import unimq
import unimq.aio
import unimq.aio._helper as helper_module
import unimq.aio._loop as loop_module
from tests.aio.conftest import OpenAsync
from tests.helpers import wait_for
from unimq.aio._loop import TRIO_SCAN, checkpoint, loop_idle

pytestmark = pytest.mark.anyio


async def test_loop_idle_sees_a_ready_task() -> None:
    await anyio.wait_all_tasks_blocked()
    assert loop_idle()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep, 0)  # queued to run, not started yet
        assert not loop_idle()
    await anyio.wait_all_tasks_blocked()
    assert loop_idle()


#: receive_spin is the kernel C channels'.
kernel_only = pytest.mark.parametrize("kind", ["sysv", "posix"])


@pytest.fixture
def long_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spins long enough (60 s) that the test, not the budget, ends them."""
    monkeypatch.setattr(helper_module, "SPIN_SECONDS", 60.0)
    monkeypatch.setattr(loop_module, "IDLE_SPIN_NS", 60_000_000_000)


def _spin_of(q: unimq.aio.AsyncQueue) -> Callable[[int, int], Any]:
    waiter: Any = q._waiter
    spin = waiter._receive_spin
    if spin is None:
        pytest.skip("this handle has no C channel (pure-Python run)")
    return spin  # type: ignore[no-any-return]


@kernel_only
@pytest.mark.usefixtures("long_spin")
async def test_an_idle_loop_takes_a_reply_in_its_spin(
    open_async: OpenAsync, url: str, kind: str
) -> None:
    """The reply comes while the task spins: the spin takes it (SysV: no helper
    thread is started; POSIX: the loop's poller is never asked)."""
    q = await open_async()
    spin = _spin_of(q)
    channel: Any = q._h._channel  # type: ignore[attr-defined]
    taken: list[Any] = []

    def recording(mtype: int, ns: int) -> Any:
        msg = spin(mtype, ns)
        taken.append(msg)
        return msg

    q._waiter._receive_spin = recording  # type: ignore[attr-defined]
    spinning = (lambda: channel.waiters == 1) if kind == "sysv" else (lambda: channel.inflight == 1)
    with unimq.open(url) as peer:

        def reply() -> None:
            wait_for(spinning, "the task to spin")
            peer.send(b"reply", priority=4) if kind == "posix" else peer.send(b"reply", mtype=4)

        t = threading.Thread(target=reply)
        t.start()
        try:
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(90):  # bounded even if the task never spins
                msg = await q.receive()
        finally:
            t.join(90)
    assert msg.data == b"reply"
    assert taken == [msg]  # one spin, which took it
    if kind == "sysv":
        assert q._waiter.threads == 0  # type: ignore[attr-defined]  # no hand-off


@kernel_only
@pytest.mark.usefixtures("long_spin")
async def test_no_spin_while_another_task_is_ready(open_async: OpenAsync, url: str) -> None:
    """Another task keeps running while the receive waits: every retry in C
    happens only once that task has finished (a 60 s spin would starve it)."""
    q = await open_async()
    spin = _spin_of(q)
    state = {"busy": True}
    calls: list[bool] = []

    def recording(mtype: int, ns: int) -> Any:
        calls.append(state["busy"])
        return spin(mtype, ns)

    q._waiter._receive_spin = recording  # type: ignore[attr-defined]
    sync_q = unimq.open(url)

    async def busy() -> None:
        for _ in range(200):
            await checkpoint()
        sync_q.send(b"from the busy task")
        state["busy"] = False

    async with anyio.create_task_group() as tg:
        tg.start_soon(busy)
        with anyio.fail_after(30):
            msg = await q.receive()
    sync_q.close()
    assert msg.data == b"from the busy task"
    assert True not in calls, "the receive spun while another task was ready"


async def test_loop_idle_sees_a_task_picked_for_the_same_batch(anyio_backend: str) -> None:
    """trio runs the tasks ready at one moment as a batch, taken out of its run
    queue: one of them that has not run yet still makes the loop busy."""
    seen: list[bool] = []

    async def look() -> None:
        seen.append(loop_idle())

    await anyio.wait_all_tasks_blocked()
    async with anyio.create_task_group() as tg:
        tg.start_soon(look)
        tg.start_soon(look)  # the two start in one batch (trio) or one loop pass (asyncio)
    assert seen[0] is False  # the first sees the second one ready
    if anyio_backend == "trio":  # asyncio: the first one's done callbacks may be pending
        assert seen[1] is True


async def test_a_loop_with_many_tasks_is_never_idle(anyio_backend: str) -> None:
    event = anyio.Event()
    async with anyio.create_task_group() as tg:
        for _ in range(TRIO_SCAN + 1):
            tg.start_soon(event.wait)
        await anyio.wait_all_tasks_blocked()
        assert loop_idle() == (anyio_backend == "asyncio")  # trio does not look at them all
        event.set()
