"""Cancellation never loses a message, on asyncio and trio, every backend.

A cancelled receive leaves the message in the queue or hands it to the next
receive on the handle; a cancelled send raised (nothing enqueued) or returned
(enqueued exactly once). Counted with a real second process where the
backend is interprocess.
"""

from __future__ import annotations

import asyncio
import platform
import random
import subprocess
import sys
import threading

import anyio
import pytest

import unimq
import unimq.aio
from tests.aio.conftest import OpenAsync
from tests.helpers import ROOT

pytestmark = pytest.mark.anyio

#: msgrcv's system call number, to see a helper thread blocked inside it.
_MSGRCV = {"x86_64": 70, "aarch64": 188}.get(platform.machine())


async def test_cancelled_receive_loses_nothing(open_async: OpenAsync) -> None:
    q = await open_async()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_blocked() -> None:
                await anyio.wait_all_tasks_blocked()
                scope.cancel()

            tg.start_soon(cancel_when_blocked)
            await q.receive()
    assert scope.cancelled_caught
    await q.send(b"after the cancel")
    with anyio.fail_after(30):
        assert (await q.receive()).data == b"after the cancel"
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)  # exactly once


async def test_timed_receive_cancelled_loses_nothing(open_async: OpenAsync) -> None:
    q = await open_async()
    with anyio.move_on_after(0.02):
        await q.receive(timeout=30)
    await q.send(b"x")
    with anyio.fail_after(30):
        assert (await q.receive(timeout=30)).data == b"x"
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)


def _helper(thread: threading.Thread) -> bool:
    return thread.name.startswith("unimq-aio")


def _in_msgrcv(native_id: int) -> bool:
    try:
        with open(f"/proc/self/task/{native_id}/syscall") as f:
            return f.read().split()[0] == str(_MSGRCV)
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("kind", ["sysv"], indirect=True)
async def test_cancel_while_the_helper_is_inside_msgrcv(open_async: OpenAsync, url: str) -> None:
    if _MSGRCV is None:
        pytest.skip(f"msgrcv's syscall number on {platform.machine()} is not listed")
    q = await open_async()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_inside_msgrcv() -> None:
                with anyio.fail_after(30):
                    while True:
                        helpers = [
                            t for t in threading.enumerate() if t.name.startswith("unimq-aio")
                        ]
                        # Any of them: an idle helper of an earlier test may linger.
                        if any(t.native_id and _in_msgrcv(t.native_id) for t in helpers):
                            break
                        await anyio.sleep(0.001)
                scope.cancel()

            tg.start_soon(cancel_inside_msgrcv)
            await q.receive()
    assert scope.cancelled_caught
    # A peer process sends one message: the helper (still in msgrcv) takes it
    # for the next receive on this handle; it is neither lost nor duplicated.
    _run_peer("q.send(b'from a peer', timeout=30)", url)
    with anyio.fail_after(30):
        assert (await q.receive()).data == b"from a peer"
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)
    assert (await q.stat()).messages == 0


@pytest.mark.parametrize("kind", ["sysv"], indirect=True)  # waits in helper threads
async def test_a_receive_cancelled_before_its_hand_off_starts_no_helper(
    open_async: OpenAsync,
) -> None:
    q = await open_async()
    with anyio.CancelScope() as scope:
        scope.cancel()  # lands at the receive's first checkpoint: in its retries
        await q.receive()
    assert scope.cancelled_caught
    # It was cancelled before handing its wait to a helper thread: no thread,
    # no orphaned msgrcv; the next message goes to the next receive.
    assert q._waiter.threads == 0  # type: ignore[attr-defined]
    await q.send(b"kept")
    assert (await q.receive(timeout=0)).data == b"kept"


async def test_cancelled_send_enqueued_nothing(open_async: OpenAsync) -> None:
    q = await open_async(capacity=1, size=16)
    await q.send(b"f" * 16)
    with anyio.move_on_after(0.02) as scope:
        await q.send(b"n" * 16)
    assert scope.cancelled_caught  # it raised: so nothing was enqueued
    assert (await q.receive()).data == b"f" * 16
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_plain_asyncio_task_cancel(open_async: OpenAsync) -> None:
    q = await open_async()
    task = asyncio.get_running_loop().create_task(q.receive())
    await anyio.wait_all_tasks_blocked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await q.send(b"kept")
    with anyio.fail_after(30):
        assert (await q.receive()).data == b"kept"


async def test_closing_wakes_every_waiting_task(open_async: OpenAsync) -> None:
    q = await open_async(capacity=1, size=16)
    mtypes = [0, 0] + ([5] if q.capabilities & unimq.Capability.MTYPE else [])
    outcomes: list[str] = []

    async def receiver(mtype: int) -> None:
        try:
            await q.receive(mtype=mtype)
        except unimq.QueueClosed:
            outcomes.append("closed")

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for m in mtypes:
                tg.start_soon(receiver, m)
            await anyio.wait_all_tasks_blocked()
            await q.aclose()
    assert outcomes == ["closed"] * len(mtypes)

    full = await open_async(capacity=1, size=16)
    await full.send(b"f" * 16)

    async def sender(timeout: float | None) -> None:
        try:
            await full.send(b"n" * 16, timeout=timeout)
        except unimq.QueueClosed:
            outcomes.append("send closed")

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender, None)
            tg.start_soon(sender, 30)
            await anyio.wait_all_tasks_blocked()
            await full.aclose()
    assert outcomes.count("send closed") == 2
    reopened = await open_async(capacity=1, size=16)
    assert (await reopened.receive()).data == b"f" * 16  # the closed sends enqueued nothing
    with pytest.raises(unimq.QueueEmpty):
        await reopened.receive(timeout=0)


def _run_peer(code: str, url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", f"import unimq\nwith unimq.open({url!r}) as q:\n    {code}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


_SENDER = """
import sys, unimq
with unimq.open(sys.argv[1]) as q:
    for i in range(int(sys.argv[2])):
        q.send(b"%06d" % i, timeout=60)
"""

_RECEIVER = """
import sys, unimq
got = []
with unimq.open(sys.argv[1]) as q:
    while True:
        data = q.receive(timeout=60).data
        if data == b"END":
            break
        got.append(data.decode())
print(" ".join(got))
"""


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _feed_from_thread(url: str, n: int) -> threading.Thread:
    def feed() -> None:
        with unimq.open(url) as q:
            for i in range(n):
                q.send(b"%06d" % i, timeout=60)

    thread = threading.Thread(target=feed)
    thread.start()
    return thread


async def test_receives_cancelled_at_random_lose_and_duplicate_nothing(
    open_async: OpenAsync, url: str, kind: str
) -> None:
    n = 300
    q = await open_async(capacity=4, size=16)
    interprocess = bool(q.capabilities & unimq.Capability.INTERPROCESS)
    peer = _spawn(_SENDER, url, str(n)) if interprocess else None
    thread = None if interprocess else _feed_from_thread(url, n)
    rng = random.Random(1)
    got: list[int] = []
    cancels = 0
    try:
        with anyio.fail_after(60):
            while len(got) < n:
                with anyio.move_on_after(rng.choice([0, 0.0001, 0.0005, 0.002])) as scope:
                    msg = await q.receive()
                    got.append(int(msg.data))
                cancels += scope.cancelled_caught
    finally:
        if peer is not None:
            _, err = peer.communicate(timeout=60)
            assert peer.returncode == 0, err
        if thread is not None:
            thread.join(timeout=60)
    assert got == list(range(n))  # none lost, none twice, in order
    assert cancels > 0
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0.05)


@pytest.mark.parametrize("kind", ["posix", "sysv", "redis"], indirect=True)
async def test_sends_cancelled_at_random_enqueue_once_or_not_at_all(
    open_async: OpenAsync, url: str
) -> None:
    n = 200
    q = await open_async(capacity=4, size=16)
    peer = _spawn(_RECEIVER, url)
    rng = random.Random(2)
    returned: list[str] = []
    cancels = 0
    try:
        with anyio.fail_after(60):
            for i in range(n):
                with anyio.move_on_after(rng.choice([0, 0.0001, 0.0005, 0.002])) as scope:
                    await q.send(b"%06d" % i)
                    returned.append(f"{i:06d}")  # it returned: it was enqueued
                cancels += scope.cancelled_caught
            await q.send(b"END", timeout=30)
    except BaseException:
        peer.kill()
        raise
    finally:
        out, err = peer.communicate(timeout=60)
    assert peer.returncode == 0, err
    assert out.split() == returned
    assert cancels > 0


@pytest.mark.parametrize("kind", ["sysv"], indirect=True)  # waits in helper threads
async def test_closing_sends_back_what_cancelled_receives_handed_on(
    open_async: OpenAsync, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A helper that took a message for a receive cancelled meanwhile hands it
    # to the next receive on the handle (the stash). When the handle closes
    # first, the messages go back into the queue, not away with the handle.
    # (A real cancellation lands there only in a narrow race: the stash is
    # filled directly, as the helper does.)
    q = await open_async()
    held = [unimq.Message(b"first", 5), unimq.Message(b"second", 2)]
    for msg in held:
        q._stash.put(msg)
    with caplog.at_level("INFO", logger="unimq.queue"):
        await q.aclose()
    assert "sent 2 message(s) that cancelled receives took back" in caplog.text
    with unimq.open(url) as again:
        assert [again.receive(timeout=0), again.receive(timeout=0)] == held
        with pytest.raises(unimq.QueueEmpty):
            again.receive(timeout=0)


@pytest.mark.parametrize("kind", ["sysv"], indirect=True)
async def test_what_cannot_be_sent_back_at_close_is_logged_as_lost(
    open_async: OpenAsync, caplog: pytest.LogCaptureFixture
) -> None:
    q = await open_async()
    q._stash.put(unimq.Message(b"orphaned", 3))
    await q.remove()
    with caplog.at_level("WARNING", logger="unimq.queue"):
        await q.aclose()
    assert "1 message(s) that cancelled receives took could not be sent back" in caplog.text
