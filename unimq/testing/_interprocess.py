"""Contract: handles crossing process boundaries (backends with
:attr:`unimq.Capability.INTERPROCESS`)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

import pytest

import unimq
from unimq.testing._fixtures import BackendFixtures, OpenQueue
from unimq.testing._waiting import ChildWatch, wait_until_blocked


def _needs_interprocess(q: unimq.Queue) -> None:
    if not q.capabilities & unimq.Capability.INTERPROCESS:
        pytest.skip("the backend's queues live in one process")


def _echo_child(requests: unimq.Queue, replies: unimq.Queue, count: int) -> None:
    """Runs in a child: receives ``count`` messages and sends each back upper-cased."""
    try:
        for _ in range(count):
            replies.send(requests.receive(timeout=20).data.upper(), timeout=20)
    finally:
        requests.close()
        replies.close()


def _send_once_parent_blocks(url: str, payload: bytes, pid: int, tid: int) -> None:
    """Runs in a child: sends ``payload`` once the parent's thread waits."""
    wait_until_blocked(tid, pid=pid)
    with unimq.open(url) as h:
        h.send(payload, timeout=5)


class InterprocessContract(BackendFixtures):
    """A handle pickles as its URL; another process reaches the same queue."""

    @pytest.mark.parametrize("method", ["spawn", "fork"])
    def test_handle_pickles_into_child_process(
        self, q: unimq.Queue, open_queue: OpenQueue, new_url: Any, method: str
    ) -> None:
        _needs_interprocess(q)
        replies = open_queue(capacity=4, size=64, url=new_url())
        ctx: Any = multiprocessing.get_context(method)
        child = ctx.Process(target=_echo_child, args=(q, replies, 3))
        child.start()
        with ChildWatch(child, replies) as watch:
            got = []
            for word in (b"one", b"two", b"three"):
                q.send(word, timeout=5)
                got.append(watch.receive(replies, timeout=20).data)
            assert got == [b"ONE", b"TWO", b"THREE"]
        assert child.exitcode == 0

    def test_receive_waits_for_another_process(self, q: unimq.Queue, url: str) -> None:
        _needs_interprocess(q)
        ctx: Any = multiprocessing.get_context("spawn")
        args = (url, b"from child", os.getpid(), threading.get_native_id())
        child = ctx.Process(target=_send_once_parent_blocks, args=args)
        child.start()
        with ChildWatch(child, q) as watch:
            assert watch.receive(q, timeout=None).data == b"from child"
        assert child.exitcode == 0
