"""The SysV C channel (unimq_sysv._fast): its primitives, its lifetime and the
wake signal close() uses to interrupt a blocked msgrcv/msgsnd.

Path-independent behaviour (close() wakes waiters, signals during waits) is
tested in tests/conformance and tests/sysv, which also run on the pure-Python
path (tests/accel/test_fast_path.py::test_pure_python_fallback_passes_the_same_suites).
"""

from __future__ import annotations

import errno
import json
import platform
import signal
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_SYSV, UrlFactory
from tests.helpers import compile_c, run_python

pytestmark = pytest.mark.skipif(not HAVE_SYSV, reason="sysv backend not installed")

WAKE = 10.0  # bound on waits that end at once when the code works


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` (bounded): the state it waits for has no event to wait on."""
    end = time.monotonic() + WAKE
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        time.sleep(0.001)


@pytest.fixture
def q(make_url: UrlFactory) -> Iterator[unimq.Queue]:
    import unimq_sysv

    if not unimq_sysv.ACCELERATED:
        pytest.skip("unimq_sysv._fast is not built (or UNIMQ_PURE_PYTHON is set)")
    handle = unimq.open(make_url("sysv"), create=True, max_bytes=64)
    yield handle
    if not handle.closed:
        handle.remove(missing_ok=True)
    handle.close()


def channel(q: unimq.Queue) -> Any:
    return q._channel  # type: ignore[attr-defined]


class Call(threading.Thread):
    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc


def test_primitives_are_bound_straight_to_c(q: unimq.Queue) -> None:
    ch = channel(q)
    assert q._send_nowait == ch.send_nowait
    assert q._receive_nowait == ch.receive_nowait
    assert q._send_wait == ch.send_wait
    assert q._receive_wait == ch.receive_wait


def test_nowait_primitives(q: unimq.Queue) -> None:
    ch = channel(q)
    assert ch.receive_nowait(0) is None
    assert ch.send_nowait(b"a" * 64, 3, 0) is True
    assert ch.send_nowait(b"b", 3, 0) is False  # full: False, not an exception
    assert ch.receive_nowait(4) is None
    assert ch.receive_nowait(-3) == unimq.Message(b"a" * 64, 3, 0)


def test_arguments_are_exact_types(q: unimq.Queue) -> None:
    """The core refuses bool/float tags; the C primitives do too if called directly."""
    ch = channel(q)

    class Data(bytes):
        pass

    for bad in (True, 1.0, "1", None):
        with pytest.raises(TypeError, match="mtype"):
            ch.send_nowait(b"x", bad, 0)
        with pytest.raises(TypeError, match="priority"):
            ch.send_nowait(b"x", 1, bad if bad is not None else 0.0)
        with pytest.raises(TypeError, match="mtype"):
            ch.receive_nowait(bad)
        with pytest.raises(TypeError, match="mtype"):
            ch.receive_wait(bad, 0.01)
    for bad_data in ("text", bytearray(b"x"), Data(b"x"), memoryview(b"x")):
        with pytest.raises(TypeError, match="data"):
            ch.send_nowait(bad_data, 1, 0)
    for bad_timeout in (True, "1", [1]):
        with pytest.raises(TypeError, match="timeout"):
            ch.receive_wait(0, bad_timeout)
    for negative in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            ch.send_wait(b"x", 1, 0, negative)
    with pytest.raises(OverflowError):
        ch.receive_nowait(2**64)
    assert q.stat().messages == 0, "a refused call enqueued something"


def test_timed_waits_in_c(q: unimq.Queue) -> None:
    """SysV has no timed msgrcv/msgsnd: the channel polls with backoff without
    the GIL, and keeps the deadline, mtype selection and errors."""
    ch = channel(q)
    start = time.monotonic()
    assert ch.receive_wait(0, 0.05) is None
    assert time.monotonic() - start >= 0.05
    # Another thread runs while the wait sleeps (the GIL is released), and only
    # the selected type is taken.
    timers = [
        threading.Timer(0.05, q.send, args=(b"other",), kwargs={"mtype": 5}),
        threading.Timer(0.1, q.send, args=(b"wanted",), kwargs={"mtype": 7}),
    ]
    for t in timers:
        t.start()
    assert ch.receive_wait(7, 5.0) == unimq.Message(b"wanted", 7, 0)
    for t in timers:
        t.join()
    assert q.receive(timeout=0) == unimq.Message(b"other", 5, 0)
    # A full queue: False at the deadline, True once a reader makes room.
    q.send(b"f" * 64)
    assert ch.send_wait(b"g" * 64, 1, 0, 0.05) is False
    reader = threading.Timer(0.1, q.receive, kwargs={"timeout": 1})
    reader.start()
    assert ch.send_wait(b"g" * 64, 2, 0, 5.0) is True
    reader.join()
    assert q.receive(timeout=0) == unimq.Message(b"g" * 64, 2, 0)
    q.remove()
    with pytest.raises(OSError, match="Invalid argument") as info:
        ch.receive_wait(0, 1.0)
    assert info.value.errno == errno.EINVAL  # the raw errno; the table makes it QueueRemoved
    with pytest.raises(unimq.QueueRemoved):
        q.receive(timeout=1)
    with pytest.raises(unimq.QueueRemoved):
        q.send(b"x", timeout=1)


def test_timed_waits_do_not_leak(q: unimq.Queue) -> None:
    ch = channel(q)
    for _ in range(3):
        q.send(b"w")
        ch.receive_wait(0, 1.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3000):
            q.send(b"%d" % i, timeout=1.0)
            assert ch.receive_wait(0, 1.0).data == b"%d" % i
            assert ch.receive_wait(0, 0.0) is None
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, f"{after - before} bytes still allocated"


@pytest.mark.parametrize("direction", ["receive", "send"])
def test_close_wakes_a_kernel_blocked_waiter_every_time(
    make_url: UrlFactory, direction: str
) -> None:
    """timeout=None blocks in msgrcv/msgsnd; close() interrupts it with the wake
    signal, re-sent until the waiter acknowledged leaving. Repeated, so that the
    signal often arrives just before the thread enters the system call."""
    import unimq_sysv

    if not unimq_sysv.ACCELERATED:
        pytest.skip("unimq_sysv._fast is not built (or UNIMQ_PURE_PYTHON is set)")
    url = make_url("sysv")
    with unimq.open(url, create=True, max_bytes=8) as keeper:
        if direction == "send":
            keeper.send(b"12345678")
        for _ in range(40):
            q = unimq.open(url)
            ch = channel(q)
            if direction == "receive":
                call = Call(lambda q=q: q.receive())  # type: ignore[misc]
            else:
                call = Call(lambda q=q: q.send(b"abcdefgh"))  # type: ignore[misc]
            call.start()
            # Spin (no sleep): close() then often runs while the waiter is between
            # registering and entering msgrcv/msgsnd, where one signal would be lost.
            end = time.monotonic() + WAKE
            while ch.waiters != 1:
                assert time.monotonic() < end, "the waiter never registered"
            q.close()
            assert ch.state == "closed" and ch.waiters == 0
            call.join(WAKE)
            assert not call.is_alive(), "close() did not wake the blocked call"
            assert isinstance(call.error, unimq.QueueClosed), (call.result, call.error)
        # Nothing was taken or enqueued by any of the closed handles.
        assert keeper.stat().messages == (1 if direction == "send" else 0)
        keeper.remove()


def test_closed_channel_refuses_everything(q: unimq.Queue, make_url: UrlFactory) -> None:
    ch = channel(q)
    url = q.url
    q.close()
    assert ch.state == "closed"
    calls: list[Callable[[], object]] = [
        lambda: ch.send_nowait(b"x", 1, 0),
        lambda: ch.receive_nowait(0),
    ]
    for call in calls:
        with pytest.raises(OSError, match="Bad file descriptor") as info:
            call()
        assert info.value.errno == errno.EBADF
    assert ch.send_wait(b"x", 1, 0, None) is False
    assert ch.receive_wait(0, None) is None
    ch.close()  # idempotent
    with unimq.open(url) as other:
        other.send(b"stays")
        assert ch.receive_wait(0, 1.0) is None  # the closed channel takes nothing
        assert other.receive(timeout=0).data == b"stays"
        other.remove()


def test_wake_signal_is_a_free_realtime_signal() -> None:
    fast = pytest.importorskip("unimq_sysv._fast")
    if fast.WAKE_SIGNAL == 0:
        pytest.skip("no free real-time signal here: waits poll")
    assert signal.SIGRTMIN + 8 <= fast.WAKE_SIGNAL <= signal.SIGRTMAX
    # The kernel reports it caught (a handler installed from C; Python's own
    # getsignal() only knows handlers set through the signal module).
    with open("/proc/self/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    assert caught >> (fast.WAKE_SIGNAL - 1) & 1


_CHILD = """
import json, platform, signal, threading, time
{before}
import unimq, unimq_sysv
from unimq_sysv import _fast
{after}
q = unimq.open("sysv://{key}", create=True, max_bytes=64)
errors = []
tid = []
def wait():
    {mask}
    tid.append(threading.get_native_id())
    try:
        q.receive()
    except BaseException as exc:
        errors.append(type(exc).__name__)
def sleeping():
    # The waiter sits in msgrcv (x86-64: 70) or in a polling sleep (nanosleep 35,
    # clock_nanosleep 230), not merely registered.
    if not tid or q._channel.waiters != 1:
        return False
    if platform.machine() != "x86_64":
        return True
    with open(f"/proc/self/task/{{tid[0]}}/syscall") as f:
        return f.read().split()[0] in ("70", "35", "230")
t = threading.Thread(target=wait)
t.start()
end = time.monotonic() + 10
while not sleeping() and time.monotonic() < end:
    time.sleep(0.001)
q.close()
t.join(10)
unimq.remove("sysv://{key}")
print(json.dumps({{"wake": _fast.WAKE_SIGNAL, "alive": t.is_alive(), "errors": errors,
                  "calls": calls}}))
"""


@pytest.mark.parametrize(
    "case",
    [
        "taken_before_import",  # someone's handler on SIGRTMIN+8: the next free one is used
        "handler_installed_later",  # the user replaced ours: waits poll, close still wakes
        "blocked_in_thread",  # the waiting thread blocks the signal: its wait polls
    ],
)
def test_wake_signal_never_clobbers_and_falls_back(case: str, make_url: UrlFactory) -> None:
    import unimq_sysv

    if not unimq_sysv.ACCELERATED:
        pytest.skip("unimq_sysv._fast is not built (or UNIMQ_PURE_PYTHON is set)")
    key = int(make_url("sysv").removeprefix("sysv://"))
    handler = "calls = []\ndef handler(s, f): calls.append(s)\n"
    before = after = ""
    mask = "pass"
    if case == "taken_before_import":
        before = handler + "signal.signal(signal.SIGRTMIN + 8, handler)"
        after = "assert signal.getsignal(signal.SIGRTMIN + 8) is handler"
    elif case == "handler_installed_later":
        after = handler + "signal.signal(_fast.WAKE_SIGNAL, handler)"
    else:
        before = "calls = []"
        mask = "signal.pthread_sigmask(signal.SIG_BLOCK, {_fast.WAKE_SIGNAL})"
    proc = run_python(_CHILD.format(before=before, after=after, key=key, mask=mask), timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["alive"] is False, "close() did not wake the waiter"
    assert out["errors"] == ["QueueClosed"]
    assert out["calls"] == [], "close() signalled a handler that is not unimq's"
    if case == "taken_before_import":
        assert out["wake"] > signal.SIGRTMIN + 8


def test_close_from_a_signal_handler_during_the_wait(make_url: UrlFactory) -> None:
    """A handler that closes the handle its own thread waits on: no deadlock
    (close() does not wait for the calling thread), the wait ends QueueClosed."""
    url = make_url("sysv")
    code = f"""
import json, signal, threading, unimq
q = unimq.open({url!r}, create=True, max_bytes=64)
signal.signal(signal.SIGUSR1, lambda s, f: q.close())
main = threading.main_thread().ident
t = threading.Timer(0.2, signal.pthread_kill, args=(main, signal.SIGUSR1))
t.start()
try:
    q.receive()
    result = "returned"
except unimq.QueueClosed:
    result = "QueueClosed"
t.join()
unimq.remove({url!r})
print(json.dumps(result))
"""
    for pure in ("0", "1"):
        proc = run_python(code, timeout=60, env={"UNIMQ_PURE_PYTHON": pure})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == '"QueueClosed"'


def _in_syscall(native_id: int) -> str:
    with open(f"/proc/self/task/{native_id}/syscall") as f:
        return f.read().split()[0]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers of x86-64")
def test_timed_waits_block_in_the_kernel(q: unimq.Queue) -> None:
    """With the wake signal, a timed receive sits in msgrcv (x86-64 syscall 70),
    not in a polling sleep, and a timer ends it at the deadline."""
    from unimq_sysv import _fast

    if _fast.WAKE_SIGNAL == 0:
        pytest.skip("no free real-time signal here: waits poll")
    ids: list[int] = []

    def wait() -> Any:
        ids.append(threading.get_native_id())
        return q.receive(timeout=30)

    call = Call(wait)
    call.start()
    wait_until(lambda: bool(ids) and _in_syscall(ids[0]) == "70", "the waiter sits in msgrcv")
    q.send(b"wake")
    call.join(WAKE)
    assert call.result == unimq.Message(b"wake", 1, 0)
    # Many short timed waits end at their deadlines: a timer signal that comes
    # just before msgrcv starts is followed by another one.
    ch = channel(q)
    for _ in range(200):
        assert ch.receive_wait(0, 0.0005) is None
    with pytest.raises(unimq.QueueEmpty):
        q.receive(timeout=0.01)
    q.send(b"x" * 64)
    for _ in range(50):
        assert ch.send_wait(b"y", 1, 0, 0.0005) is False


def test_close_never_sends_the_signal_once_its_handler_was_replaced(
    make_url: UrlFactory,
) -> None:
    """Someone sets the wake signal back to SIG_DFL while a thread waits in the
    kernel: close() must not send it (that would end the process); it waits
    until the waiter leaves by itself (here: a message arrives)."""
    import unimq_sysv

    if not unimq_sysv.ACCELERATED:
        pytest.skip("unimq_sysv._fast is not built (or UNIMQ_PURE_PYTHON is set)")
    url = make_url("sysv")
    code = f"""
import json, platform, signal, threading, time, unimq
from unimq_sysv import _fast
q = unimq.open({url!r}, create=True, max_bytes=64)
got, tid = [], []
def wait():
    tid.append(threading.get_native_id())
    got.append(q.receive())
t = threading.Thread(target=wait)
t.start()
def in_msgrcv():
    with open(f"/proc/self/task/{{tid[0]}}/syscall") as f:
        return f.read().split()[0] == "70"
end = time.monotonic() + 10
while time.monotonic() < end and not (tid and in_msgrcv()):
    time.sleep(0.001)
signal.signal(_fast.WAKE_SIGNAL, signal.SIG_DFL)
def feed():
    while q._channel.state != "closing" and time.monotonic() < end:
        time.sleep(0.001)
    with unimq.open({url!r}) as other:
        other.send(b"let it go")
feeder = threading.Thread(target=feed)
feeder.start()
q.close()
t.join(10)
feeder.join(10)
unimq.remove({url!r})
print(json.dumps([m.data.decode() for m in got]))
"""
    if platform.machine() != "x86_64":
        pytest.skip("syscall numbers of x86-64")
    proc = run_python(code, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.strip() == '["let it go"]'


_LATE_ENTRY_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/msg.h>
#include <time.h>

/* Blocking msgrcv enters the kernel 50 ms late: a wake-up signal sent in
 * between interrupts this sleep, not the msgrcv that follows. */
ssize_t msgrcv(int id, void *buf, size_t size, long type, int flags)
{
    static ssize_t (*real)(int, void *, size_t, long, int);
    if (real == NULL)
        real = (ssize_t (*)(int, void *, size_t, long, int))dlsym(RTLD_NEXT, "msgrcv");
    if (!(flags & IPC_NOWAIT)) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    return real(id, buf, size, type, flags);
}
"""


def test_close_resends_until_the_waiter_left(make_url: UrlFactory, tmp_path: Path) -> None:
    """A signal that arrives before the waiter is inside msgrcv is lost; close()
    sends again until the waiter acknowledged leaving. Made deterministic with
    a real shim (LD_PRELOAD) that enters msgrcv late."""
    import unimq_sysv

    if not unimq_sysv.ACCELERATED:
        pytest.skip("unimq_sysv._fast is not built (or UNIMQ_PURE_PYTHON is set)")
    try:
        shim = compile_c(_LATE_ENTRY_SHIM, "late.so", tmp_path, "-shared", "-fPIC", "-ldl")
    except FileNotFoundError:
        pytest.skip("no C compiler (cc) on this machine")
    url = make_url("sysv")
    code = f"""
import json, threading, time, unimq
q = unimq.open({url!r}, create=True, max_bytes=64)
errors = []
def wait():
    try:
        q.receive()
    except BaseException as exc:
        errors.append(type(exc).__name__)
t = threading.Thread(target=wait)
t.start()
end = time.monotonic() + 10
while q._channel.waiters != 1 and time.monotonic() < end:
    pass  # close() right after registration: inside the shim's late entry
q.close()
t.join(10)
unimq.remove({url!r})
print(json.dumps({{"alive": t.is_alive(), "errors": errors}}))
"""
    proc = run_python(code, timeout=60, env={"LD_PRELOAD": str(shim)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"alive": False, "errors": ["QueueClosed"]}
