"""Spinning before a blocking wait (the C channels' _spin.h): a waiter retries
its non-blocking call for a few microseconds before it sleeps in the kernel.

What must hold whatever the spin: close() ends a spinning wait, a timeout
bounds the spin, a signal that arrives during the spin runs its handler
before the wait sleeps, and a waiter on an idle queue burns (almost) no CPU.
The CPU a waiting thread used is read with getrusage(RUSAGE_THREAD) in that
thread; no assertion is about elapsed time.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import pytest

import unimq
from tests.accel.test_batches import KINDS, PURE, small
from tests.conftest import UrlFactory
from tests.helpers import ROOT, wait_for
from unimq.testing import Waiter

pytestmark = [
    pytest.mark.skipif(not KINDS, reason="no kernel backend installed"),
    pytest.mark.skipif(PURE, reason="spinning is the C channels' (pure-Python run)"),
]

#: A spin this long (1 s, the most _spin() takes) cannot end on its own
#: before the test acts on the spinning waiter.
LONG_SPIN = 1_000_000_000


def fast_module(kind: str) -> ModuleType:
    mod: ModuleType = pytest.importorskip(f"unimq_{kind}._fast")
    return mod


def cpu_seconds() -> float:
    """CPU time (user + system) of the calling thread."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def spin(kind: str) -> Iterator[Callable[[int], None]]:
    """Set the process-wide spin limit for the test; restored afterwards."""
    mod = fast_module(kind)
    before = mod._spin()
    yield lambda ns: mod._spin(ns)
    mod._spin(before)


def channel(q: unimq.Queue) -> Any:
    ch = q._channel  # type: ignore[attr-defined]
    if ch is None:
        pytest.skip("this handle has no C channel")
    return ch


def measured(call: Callable[[], object]) -> Callable[[], tuple[float, object]]:
    """``call`` run in the waiting thread, with the CPU time it used there."""

    def run() -> tuple[float, object]:
        start = cpu_seconds()
        try:
            result: object = call()
        except unimq.UnimqError as exc:
            result = exc
        return cpu_seconds() - start, result

    return run


def test_the_two_copies_of_the_header_are_one_file() -> None:
    posix = ROOT / "backends/posix/unimq_posix/_spin.h"
    sysv = ROOT / "backends/sysv/unimq_sysv/_spin.h"
    assert posix.read_bytes() == sysv.read_bytes(), "change both copies of _spin.h together"


def test_spin_setting(kind: str, spin: Callable[[int], None]) -> None:
    mod = fast_module(kind)
    online = os.sysconf("SC_NPROCESSORS_ONLN")
    text = Path(mod.__file__ or "").with_name("_spin.h").read_text()
    default = int(text.split("#define SPIN_DEFAULT_NS ")[1].split("L")[0])
    # The default: spinning only where another CPU can run the peer meanwhile.
    expected = default if online > 1 else 0
    assert mod._spin() == expected
    assert mod._spin(5000) == expected  # setting returns the previous value
    assert mod._spin(0) == 5000
    assert mod._spin() == 0
    with pytest.raises(ValueError, match=r"0\.\.1e9"):
        mod._spin(-1)
    with pytest.raises(ValueError, match=r"0\.\.1e9"):
        mod._spin(LONG_SPIN + 1)
    with pytest.raises(TypeError):
        mod._spin(1, 2)
    assert mod._spin() == 0


def test_close_ends_a_spinning_receive_many(
    kind: str, make_url: UrlFactory, spin: Callable[[int], None]
) -> None:
    spin(LONG_SPIN)
    q = small(kind, make_url)
    try:
        ch = channel(q)
        w = Waiter(measured(lambda: q.receive_many(8)))
        w.start()
        wait_for(lambda: ch.waiters == 1, "the receiver to start waiting (spinning)")
        q.close()
        w.finish()
        assert w.error is None
        cpu, result = w.result
        assert isinstance(result, unimq.QueueClosed)
        # It left when close() came, not when its 1 s spin was over.
        assert cpu < 0.25, f"the spinning waiter used {cpu:.3f} s of CPU after close()"
    finally:
        q.close()


def test_close_ends_a_spinning_send_many(
    kind: str, make_url: UrlFactory, spin: Callable[[int], None]
) -> None:
    spin(LONG_SPIN)
    q = small(kind, make_url)
    try:
        ch = channel(q)
        q.send_many([b"%016d" % i for i in range(4)], timeout=0)  # full
        w = Waiter(measured(lambda: q.send_many([b"x"])))
        w.start()
        wait_for(lambda: ch.waiters == 1, "the sender to start waiting (spinning)")
        q.close()
        w.finish()
        assert w.error is None
        cpu, result = w.result
        assert isinstance(result, unimq.QueueClosed) and result.sent == 0
        assert cpu < 0.25, f"the spinning waiter used {cpu:.3f} s of CPU after close()"
    finally:
        q.close()


def test_a_timeout_bounds_the_spin(
    kind: str, make_url: UrlFactory, spin: Callable[[int], None]
) -> None:
    spin(LONG_SPIN)
    with small(kind, make_url) as q:
        channel(q)
        cpu, result = measured(lambda: q.receive_many(8, timeout=0.05))()
        assert isinstance(result, unimq.QueueEmpty)
        # A spin past the deadline would have used up to 1 s of CPU.
        assert cpu < 0.25, f"a 0.05 s wait used {cpu:.3f} s of CPU"
        q.send_many([b"%016d" % i for i in range(4)], timeout=0)
        cpu, result = measured(lambda: q.send_many([b"x"], timeout=0.05))()
        assert isinstance(result, unimq.QueueFull) and result.sent == 0
        assert cpu < 0.25, f"a 0.05 s wait used {cpu:.3f} s of CPU"


def test_a_spinning_waiter_is_woken_by_what_it_waits_for(
    kind: str, make_url: UrlFactory, spin: Callable[[int], None]
) -> None:
    """The spin takes the message itself (the waiter never sleeps)."""
    spin(LONG_SPIN)
    with small(kind, make_url) as q:
        ch = channel(q)
        w = Waiter(lambda: q.receive_many(8))
        w.start()
        wait_for(lambda: ch.waiters == 1, "the receiver to start waiting (spinning)")
        q.send_many([b"a", b"b"])
        w.finish()
        assert w.error is None
        assert [m.data for m in w.result] in ([b"a"], [b"a", b"b"])


def test_an_idle_blocked_receive_many_uses_no_cpu(kind: str, make_url: UrlFactory) -> None:
    """With the default spin, a waiter on an idle queue sleeps in the kernel
    after microseconds: over a 0.3 s wait its thread uses (almost) no CPU."""
    with small(kind, make_url) as q:
        channel(q)
        w = Waiter(measured(lambda: q.receive_many(8)))
        w.start()
        w.blocked()  # asleep in the kernel: the spin is over
        threading.Event().wait(0.3)  # the window whose CPU time is measured
        q.send(b"wake")
        w.finish()
        assert w.error is None
        cpu, result = w.result
        assert isinstance(result, list) and [m.data for m in result] == [b"wake"]
        assert cpu < 0.1, f"an idle waiter used {cpu:.3f} s of CPU in 0.3 s"


class Boom(Exception):
    pass


@pytest.mark.parametrize("timeout", [None, 120.0])
def test_a_signal_during_the_spin_runs_its_handler_before_the_sleep(
    kind: str, make_url: UrlFactory, spin: Callable[[int], None], timeout: float | None
) -> None:
    """A signal that lands while the main thread spins (not in a system
    call, so nothing is interrupted) still runs its handler once the spin
    ends: the wait does not go to sleep with it pending. Were it left
    pending, the receive would sleep until the rescue message came."""
    spin(LONG_SPIN)
    with small(kind, make_url) as q:
        ch = channel(q)
        main = threading.main_thread().ident
        assert main is not None and threading.current_thread().ident == main
        done = threading.Event()
        rescued: list[bool] = []

        def handler(signo: int, frame: FrameType | None) -> None:
            raise Boom

        def poke() -> None:
            wait_for(lambda: ch.waiters == 1, "the receiver to start waiting (spinning)")
            signal.pthread_kill(main, signal.SIGUSR1)
            if not done.wait(30):  # a bounded rescue: the test then fails below
                rescued.append(True)
                q.send(b"rescue")

        old = signal.signal(signal.SIGUSR1, handler)
        helper = threading.Thread(target=poke)
        helper.start()
        try:
            with pytest.raises(Boom):
                q.receive_many(8, timeout=timeout)
        finally:
            done.set()
            helper.join(60)
            signal.signal(signal.SIGUSR1, old)
        assert not helper.is_alive()
        assert not rescued, "the handler ran only once a message woke the sleeping wait"


# ------------------------------------------------------------------ receive_spin


def spinning(kind: str, ch: Any) -> Callable[[], bool]:
    """Whether a receive_spin runs now: SysV registers it as a waiter, POSIX
    counts it as a call in flight."""
    if kind == "sysv":
        return lambda: bool(ch.waiters == 1)
    return lambda: bool(ch.inflight == 1)


def test_receive_spin_takes_a_message_sent_while_it_spins(kind: str, make_url: UrlFactory) -> None:
    """The spin (unimq.aio's retry on an idle loop) takes what arrives during it."""
    with small(kind, make_url) as q:
        ch = channel(q)
        w = Waiter(lambda: ch.receive_spin(0, LONG_SPIN))
        w.start()
        wait_for(spinning(kind, ch), "the spin to start")
        q.send(b"during", mtype=3) if kind == "sysv" else q.send(b"during", priority=3)
        w.finish()
        assert w.error is None
        assert w.result == ((b"during", 3, 0) if kind == "sysv" else (b"during", 1, 3))
        assert q.stat().messages == 0


def test_receive_spin_selects_like_receive(make_url: UrlFactory) -> None:
    if "sysv" not in KINDS:
        pytest.skip("the sysv backend is not installed")
    with small("sysv", make_url) as q:
        ch = channel(q)
        q.send(b"five", mtype=5)
        q.send(b"two", mtype=2)
        assert ch.receive_spin(7, 1000) is None  # no type 7: the others stay
        assert ch.receive_spin(-3, 1000) == (b"two", 2, 0)  # lowest type <= 3
        assert ch.receive_spin(0, 0) == (b"five", 5, 0)  # ns 0: one try
        assert ch.receive_spin(0, 1000) is None


def test_receive_spin_takes_the_highest_priority_first(make_url: UrlFactory) -> None:
    if "posix" not in KINDS:
        pytest.skip("the posix backend is not installed")
    with small("posix", make_url) as q:
        ch = channel(q)
        q.send(b"low", priority=1)
        q.send(b"high", priority=7)
        assert ch.receive_spin(0, 0) == (b"high", 1, 7)  # ns 0: one try
        assert ch.receive_spin(0, 1000) == (b"low", 1, 1)
        assert ch.receive_spin(0, 1000) is None


def test_receive_spin_checks_its_arguments(kind: str, make_url: UrlFactory) -> None:
    with small(kind, make_url) as q:
        ch = channel(q)
        with pytest.raises(TypeError):
            ch.receive_spin(0)
        with pytest.raises(TypeError):
            ch.receive_spin(0, 1.5)
        if kind == "sysv":
            with pytest.raises(TypeError):
                ch.receive_spin(True, 10)


def test_receive_spin_is_bounded_by_its_budget(kind: str, make_url: UrlFactory) -> None:
    with small(kind, make_url) as q:
        ch = channel(q)
        cpu, result = measured(lambda: ch.receive_spin(0, 20_000_000))()  # 20 ms
        assert result is None
        # A spin that ignored its budget would never return (nothing is sent).
        assert cpu < 1.0, f"a 20 ms spin used {cpu:.3f} s of CPU"


def test_close_ends_receive_spin(kind: str, make_url: UrlFactory) -> None:
    """close() ends a spin running without the GIL (POSIX: the descriptor is
    released only once it left): nothing is taken after close()."""
    q = small(kind, make_url)
    try:
        ch = channel(q)
        w = Waiter(measured(lambda: ch.receive_spin(0, LONG_SPIN)))
        w.start()
        wait_for(spinning(kind, ch), "the spin to start")
        q.close()
        w.finish()
        assert w.error is None
        cpu, result = w.result
        assert result is None
        assert cpu < 0.25, f"the spinning caller used {cpu:.3f} s of CPU after close()"
        with pytest.raises(OSError, match="Bad file descriptor") as info:
            ch.receive_spin(0, 0)
        assert info.value.errno == errno.EBADF
    finally:
        q.close()
