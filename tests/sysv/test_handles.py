"""SysV handle lifetime, signals during waits and set() validation (issue 16).

Runs on whichever path this installation has; test_fast_path.py runs this
directory again with UNIMQ_PURE_PYTHON=1.
"""

from __future__ import annotations

import errno
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import unimq
from tests.helpers import CATCH, NOBODY, child_json, privileged, wait_exited
from unimq.testing import wait_until_blocked

pytest.importorskip("unimq_sysv")
from unimq_sysv import SysVQueue

from unimq.testing import Waiter as Call

WAKE = 10.0


@pytest.fixture
def sq(sysv_url: str) -> Iterator[SysVQueue]:
    q = unimq.open(sysv_url, create=True, max_bytes=64)
    assert isinstance(q, SysVQueue)
    yield q
    q.close()


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_closed_handle_takes_nothing_afterwards(sysv_url: str, timeout: float | None) -> None:
    """A receive blocked on handle A is woken by A.close(); a message sent to the
    same queue afterwards stays queued for the next reader."""
    a = unimq.open(sysv_url, create=True, max_bytes=64)
    call = Call(lambda: a.receive(timeout=timeout))
    call.start()
    try:
        assert call.started_call.wait(WAKE)
        assert call.native_id is not None
        assert wait_until_blocked(call.native_id), "the receive never blocked"
        assert call.is_alive()
    finally:
        a.close()
        call.join(WAKE)
    assert not call.is_alive(), "close() did not wake the blocked receive"
    assert isinstance(call.error, unimq.QueueClosed)
    with unimq.open(sysv_url) as b:
        b.send(b"for the next reader")
        assert b.receive(timeout=1).data == b"for the next reader"
        b.remove()


def _signal_main_thread_when_waiting(
    q: SysVQueue, calls: list[int], handled: threading.Event, count: int
) -> threading.Thread:
    """A thread that sends SIGUSR1 to the main thread ``count`` times, each time
    after the previous one was handled."""
    main = threading.main_thread().ident
    assert main is not None

    def run() -> None:
        # A signal that arrives in the instant before the wait enters its system
        # call is handled only when the call returns (as with CPython's own
        # blocking calls): send again until the handler ran.
        for _ in range(count):
            handled.clear()
            for _ in range(int(WAKE / 0.05)):
                signal.pthread_kill(main, signal.SIGUSR1)
                if handled.wait(0.05):
                    break
            if len(calls) >= count:
                return

    return threading.Thread(target=run)


@pytest.mark.parametrize("timeout", [None, 30.0])
@pytest.mark.parametrize("direction", ["receive", "send"])
def test_user_signal_handlers_run_during_waits(
    sq: SysVQueue, sysv_url: str, timeout: float | None, direction: str
) -> None:
    """A user's SIGUSR1 handler runs while the main thread waits, and the wait
    goes on afterwards (PEP 475 style) until the queue is ready."""
    calls: list[int] = []
    handled = threading.Event()
    ready = threading.Event()
    peer = unimq.open(sysv_url)

    def handler(signum: int, frame: object) -> None:
        calls.append(signum)
        handled.set()
        if len(calls) == 3:  # after three interruptions, make the queue ready
            assert not ready.is_set()
            ready.set()
            if direction == "receive":
                peer.send(b"ready", timeout=0)
            else:
                peer.receive(timeout=0)

    if direction == "send":
        sq.send(b"f" * 64)
    old = signal.signal(signal.SIGUSR1, handler)
    sender = _signal_main_thread_when_waiting(sq, calls, handled, 3)
    try:
        sender.start()
        if direction == "receive":
            assert sq.receive(timeout=timeout).data == b"ready"
        else:
            sq.send(b"g" * 64, timeout=timeout)
            assert sq.receive(timeout=0).data == b"g" * 64
    finally:
        sender.join()
        signal.signal(signal.SIGUSR1, old)
        peer.close()
    assert len(calls) >= 3 and set(calls) == {signal.SIGUSR1}


@pytest.mark.parametrize("timeout", [None, 30.0])
@pytest.mark.parametrize("direction", ["receive", "send"])
def test_handler_exceptions_propagate_and_lose_nothing(
    sq: SysVQueue, timeout: float | None, direction: str
) -> None:
    """KeyboardInterrupt (or any exception) from a handler ends the wait; nothing
    was taken or enqueued, and the handle still works."""
    calls: list[int] = []
    handled = threading.Event()

    def handler(signum: int, frame: object) -> None:
        calls.append(signum)
        handled.set()
        if len(calls) == 2:
            raise KeyboardInterrupt

    if direction == "send":
        sq.send(b"f" * 64)
    old = signal.signal(signal.SIGUSR1, handler)
    sender = _signal_main_thread_when_waiting(sq, calls, handled, 2)
    try:
        sender.start()
        wait: Callable[[], object] = (
            (lambda: sq.receive(timeout=timeout))
            if direction == "receive"
            else (lambda: sq.send(b"never", timeout=timeout))
        )
        with pytest.raises(KeyboardInterrupt):
            wait()
    finally:
        sender.join()
        signal.signal(signal.SIGUSR1, old)
    assert len(calls) >= 2
    if direction == "send":
        assert [m.data for m in sq.drain()] == [b"f" * 64]
    sq.send(b"after", timeout=0)
    assert sq.receive(timeout=0).data == b"after"
    assert sq.stat().messages == 0


# ---------------------------------------------------------------------- set()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": True}, TypeError, "mode must be an int, not bool"),
        ({"mode": 0o600 + 0.0}, TypeError, "mode must be an int, not float"),
        ({"mode": "0600"}, TypeError, "mode must be an int"),
        ({"mode": -1}, ValueError, "mode must be 0..0o777"),
        ({"mode": 0o1000}, ValueError, "mode must be 0..0o777"),
        ({"uid": True}, TypeError, "uid must be an int, not bool"),
        ({"uid": -1}, ValueError, "uid must be 0..4294967294"),
        ({"uid": 2**32 - 1}, ValueError, "uid must be 0..4294967294"),  # (uid_t)-1: "unchanged"
        ({"uid": 2**32 + 65534}, ValueError, "uid must be"),  # was silently truncated
        ({"uid": 2**64}, ValueError, "uid must be"),
        ({"gid": 2**32 - 1}, ValueError, "gid must be 0..4294967294"),
        ({"gid": 1.5}, TypeError, "gid must be an int"),
        ({"max_bytes": True}, TypeError, "max_bytes must be an int, not bool"),
        ({"max_bytes": 0}, ValueError, "max_bytes must be 1..2147483647"),
        ({"max_bytes": 2**31}, ValueError, "max_bytes must be 1..2147483647"),
        ({"max_bytes": 64.0}, TypeError, "max_bytes must be an int"),
        # A bad value anywhere: nothing is changed, not even the valid ones.
        ({"mode": 0o644, "uid": 2**32}, ValueError, "uid must be"),
    ],
)
def test_set_validates_everything(
    sq: SysVQueue, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    before = sq.stat()
    with pytest.raises(error, match=match):
        sq.set(**kwargs)
    after = sq.stat()
    assert (after.mode, after.uid, after.gid, after.max_bytes) == (
        before.mode,
        before.uid,
        before.gid,
        before.max_bytes,
    )


def test_set_accepts_the_edges(sq: SysVQueue) -> None:
    if not privileged():
        pytest.skip("giving the queue to uid 0 with mode 0 and reading it back needs root")
    sq.set(mode=0o777, max_bytes=1)
    sq.set(mode=0, uid=0, gid=0, max_bytes=64)
    st = sq.stat()
    assert (st.mode, st.uid, st.gid, st.max_bytes) == (0, 0, 0, 64)
    sq.set(mode=0o600)


def test_set_max_bytes_above_msgmnb_is_a_limit(sq: SysVQueue) -> None:
    from unimq.system._limits import has_cap_sys_resource, read_sysctl

    msgmnb = read_sysctl("kernel.msgmnb")
    if msgmnb is None or has_cap_sys_resource():
        pytest.skip("kernel.msgmnb does not bind this process")
    with pytest.raises(unimq.LimitExceeded) as info:
        sq.set(max_bytes=msgmnb + 1)
    assert info.value.limit == "kernel.msgmnb"
    assert info.value.errno == errno.EPERM


def test_set_by_another_user_is_permission_denied_not_a_limit(sq: SysVQueue, sysv_url: str) -> None:
    sq.set(mode=0o666)
    code = (
        CATCH
        + f"""
h = unimq.open({sysv_url!r})
r = attempt(lambda: h.set(max_bytes=32))
h.close()
print(json.dumps(r))
"""
    )
    out = child_json(code, user=NOBODY)
    assert out["error"] == "PermissionDenied"
    assert out["errno"] == errno.EPERM


def test_set_after_close_is_queue_closed(sq: SysVQueue) -> None:
    sq.close()
    with pytest.raises(unimq.QueueClosed):
        sq.set(mode=0o600)


def test_close_in_a_forked_child_while_the_parent_waits(sysv_url: str) -> None:
    """A child forked while a thread waited on the handle has no such thread:
    its close() returns at once (and the parent's waiter is unaffected)."""
    import os

    q = unimq.open(sysv_url, create=True, max_bytes=64)
    call = Call(lambda: q.receive(timeout=30))
    call.start()
    try:
        assert call.started_call.wait(WAKE)
        assert call.native_id is not None
        assert wait_until_blocked(call.native_id), "the receive never blocked"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # the child: close the inherited handle, exit without pytest's teardown
            code = 1
            try:
                q.close()
                code = 0
            finally:
                os._exit(code)
        try:
            wait_exited(pid, timeout=WAKE)  # fails the test if close() did not return
        except BaseException:
            os.kill(pid, signal.SIGKILL)
            raise
        finally:
            status = os.waitpid(pid, 0)[1]
        assert os.waitstatus_to_exitcode(status) == 0
        assert call.is_alive(), "the child's close() woke the parent's waiter"
        with unimq.open(sysv_url) as other:
            other.send(b"for the parent")
        call.join(WAKE)
        assert call.result == unimq.Message(b"for the parent", 1, 0)
    finally:
        q.close()
        call.join(WAKE)
        unimq.remove(sysv_url, missing_ok=True)
