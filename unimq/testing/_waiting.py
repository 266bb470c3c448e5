"""Waiting on other threads and processes without fixed sleeps and without
waiting forever: helper threads that act once the test thread blocks (and are
always joined), a watch over child processes, and a SIGALRM counter."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import wait as wait_for_handles
from multiprocessing.process import BaseProcess
from types import FrameType, TracebackType
from typing import Any, Generic, Self, TypeVar

import pytest

import unimq

__all__ = ["Alarms", "Background", "ChildWatch", "in_background", "wait_until_blocked"]

T = TypeVar("T")

#: How long a helper waits for the test thread to block before acting anyway.
BLOCK_WAIT = 10.0
#: How long joining a helper thread may take before the test fails.
JOIN_WAIT = 60.0


def _thread_state(pid: int, tid: int) -> str | None:
    """The scheduler state letter of one thread (``R``, ``S``, ``D``...), or None."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    # "tid (comm) S ...": comm may contain spaces and parentheses; the state follows the last ")".
    return text[text.rfind(b")") + 2 : text.rfind(b")") + 3].decode() or None


def wait_until_blocked(
    tid: int,
    *,
    pid: int | None = None,
    timeout: float = BLOCK_WAIT,
    cancel: threading.Event | None = None,
) -> bool:
    """Wait until thread ``tid`` (of process ``pid``, default this one) sleeps in
    the kernel, as it does while blocked in a receive or send; True if seen in time.

    Linux only (it reads ``/proc``). The state is seen twice in a row, a little
    apart, so that a thread that merely waited for the GIL a moment is not
    taken for blocked; still, tests must be right whatever the order.
    """
    pid = os.getpid() if pid is None else pid
    deadline = time.monotonic() + timeout
    delay = 0.0005
    seen = False
    while time.monotonic() < deadline and not (cancel is not None and cancel.is_set()):
        state = _thread_state(pid, tid)
        if state is None:
            return False
        if state in ("S", "D"):
            if seen:
                return True
            seen = True
        else:
            seen = False
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    return False


class Background(Generic[T]):
    """One action run by a helper thread; see :func:`in_background`."""

    def __init__(self, action: Callable[[], T], when: Callable[[threading.Event], object]) -> None:
        self._action = action
        self._when = when
        self._cancel = threading.Event()
        self._done = False
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="unimq-testing-helper", daemon=True)

    def _run(self) -> None:
        try:
            self._when(self._cancel)
            if self._cancel.is_set():
                return  # the test is over before it was time to act
            self._result = self._action()
            self._done = True
        except BaseException as exc:  # handed to the test thread in join()
            self._error = exc

    @property
    def done(self) -> bool:
        """Whether the action ran and returned."""
        return self._done

    @property
    def result(self) -> T:
        """What the action returned (after the ``with`` block)."""
        if not self._done:
            raise RuntimeError("the background action has not completed")
        return self._result  # type: ignore[return-value]

    def join(self, *, cancel: bool) -> None:
        if cancel:
            self._cancel.set()
        if self._thread.ident is None:
            return  # never started
        self._thread.join(JOIN_WAIT)
        if self._thread.is_alive():
            pytest.fail(f"a helper thread did not finish within {JOIN_WAIT} s", pytrace=False)


@contextmanager
def in_background(
    action: Callable[[], T], *, when: Callable[[threading.Event], object] | None = None
) -> Iterator[Background[T]]:
    """Run ``action`` in a helper thread while the ``with`` body runs; the thread
    is always joined when the block ends, and what the action raised is raised
    there.

    By default the action runs once the thread that entered the block is
    blocked (:func:`wait_until_blocked`), so that ``q.receive(timeout=None)`` in
    the body really waits for the helper's ``send``. ``when(cancel)`` replaces
    that wait; it is handed an event that is set when the body has ended.
    """
    entered = threading.Event()
    if when is None:
        tid = threading.get_native_id()

        def when(cancel: threading.Event) -> object:
            # Only the body's waits count, not this thread's own start-up handshake.
            entered.wait(BLOCK_WAIT)
            return wait_until_blocked(tid, cancel=cancel)

    helper = Background(action, when)
    try:
        helper._thread.start()
        entered.set()
        yield helper
    except BaseException:
        helper.join(cancel=True)
        raise
    helper.join(cancel=True)
    if helper._error is not None:
        raise helper._error


class ChildWatch:
    """Lets a test wait on a queue for what a child process sends, even with
    ``timeout=None``, without ever waiting on a dead child.

    A helper thread watches the child. When the child exits (or outlives
    ``limit`` seconds and is killed), the helper sends a marker into ``wake``,
    so a receive blocked there returns at once; :meth:`receive` turns the marker
    into a test failure naming the child's exit code. Leaving the ``with``
    block reaps the child (killing it if the block failed or it overstays
    ``limit``) and joins the helper.
    """

    def __init__(self, child: BaseProcess, wake: unimq.Queue, *, limit: float = 60.0) -> None:
        self.child = child
        self._wake = wake
        self._limit = limit
        self._marker = b"unimq.testing: the child process exited " + secrets.token_hex(8).encode()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="unimq-testing-watch", daemon=True)

    def _watch(self) -> None:
        wait_for_handles([self.child.sentinel], timeout=self._limit)
        if self.child.is_alive():
            self.child.kill()
            self.child.join()
        if not self._finished.is_set():
            # Full, closed or removed: then the test is not waiting there.
            with contextlib.suppress(unimq.UnimqError):
                self._wake.send(self._marker, timeout=5)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def receive(self, queue: unimq.Queue, **kwargs: Any) -> unimq.Message:
        """``queue.receive(**kwargs)``, failing the test at once if the child exited first."""
        msg = queue.receive(**kwargs)
        if msg.data == self._marker:
            self.child.join()
            pytest.fail(
                f"the child process exited with code {self.child.exitcode} "
                "before sending what the test waits for",
                pytrace=False,
            )
        return msg

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finished.set()
        if exc_type is not None and self.child.is_alive():
            self.child.kill()
        self.child.join(self._limit)
        if self.child.is_alive():
            self.child.kill()
            self.child.join()
        self._thread.join(JOIN_WAIT)
        if self._thread.is_alive():
            pytest.fail(f"the child watch did not finish within {JOIN_WAIT} s", pytrace=False)


class Alarms:
    """A SIGALRM handler that counts its calls (install with ``with Alarms() as alarms``).

    ``wait_for(n)`` lets a helper thread wait until the handler has run ``n``
    times. The previous handler is restored and the interval timer stopped at
    the end of the block.
    """

    def __init__(self) -> None:
        self.calls: list[int] = []
        # Reentrant: a second SIGALRM may interrupt the handler in the same thread.
        self._cond = threading.Condition(threading.RLock())
        self._old: Any = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        with self._cond:
            self.calls.append(signum)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = BLOCK_WAIT) -> bool:
        """Wait until the handler has run ``count`` times; True if it did in time."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.calls) >= count, timeout)

    def every(self, interval: float) -> None:
        """Deliver SIGALRM every ``interval`` seconds until :meth:`stop`."""
        signal.setitimer(signal.ITIMER_REAL, interval, interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)

    def __enter__(self) -> Self:
        self._old = signal.signal(signal.SIGALRM, self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        signal.signal(signal.SIGALRM, self._old)


class Waiter(threading.Thread):
    """Runs ``fn`` in a thread and keeps its result or exception; :meth:`blocked`
    returns once the call sleeps in the kernel, :meth:`finish` joins (bounded)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.started_call = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        self.started_call.set()
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc

    def blocked(self) -> None:
        """Return once the thread sleeps in its wait (it must not have returned)."""
        assert self.started_call.wait(JOIN_WAIT)
        assert self.native_id is not None
        seen = wait_until_blocked(self.native_id)
        assert self.is_alive(), f"the waiter returned early: {self.result!r} {self.error!r}"
        assert seen, "the waiter never blocked"

    def finish(self) -> None:
        self.join(JOIN_WAIT)
        assert not self.is_alive(), "close() did not wake the waiting call"
