"""The POSIX channels: ``unimq_posix._fast.Channel`` (C) and ``PyChannel``
(posix_ipc fallback) side by side, on real queues.

Both own their descriptor, wait without busy looping, wake on close(), release
their descriptors only once no call uses them, and raise OSError with the errno.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import platform
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, new_posix_name
from tests.helpers import ROOT, compile_c, run_python
from unimq.testing import Waiter

pytestmark = pytest.mark.skipif(not HAVE_POSIX, reason="posix backend not installed")

if HAVE_POSIX:
    import unimq_posix
    from unimq_posix._channel import PyChannel
    from unimq_posix._channel import unlink as py_unlink

WAKE = 10.0  # bound on how long a woken thread may take; never reached when it works


def c_channel() -> Any:
    if not unimq_posix.ACCELERATED:
        pytest.skip("unimq_posix._fast is not built (or UNIMQ_PURE_PYTHON is set)")
    from unimq_posix import _fast

    return _fast.Channel


@pytest.fixture(params=["c", "py"])
def impl(request: pytest.FixtureRequest) -> tuple[Any, Callable[[str], None]]:
    if request.param == "c":
        from unimq_posix import _fast

        return c_channel(), _fast.unlink
    return PyChannel, py_unlink


@pytest.fixture
def name(impl: tuple[Any, Callable[[str], None]]) -> Iterator[str]:
    queue = new_posix_name()
    yield queue
    assert errno_of(lambda: impl[1](queue)) in (None, errno.ENOENT)


def make(impl: tuple[Any, Any], name: str, *, capacity: int = 2, create: bool = True) -> Any:
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
    return impl[0](name, flags, 0o600, capacity, 64, unimq.Message)


def errno_of(call: Callable[[], object]) -> int | None:
    """The errno of the OSError ``call`` raises (None when it raises none)."""
    try:
        call()
    except OSError as exc:
        return exc.errno
    return None


def wake_signal() -> int:
    """The C channel's wake signal (0: none was free)."""
    from unimq_posix import _fast

    return int(_fast.WAKE_SIGNAL)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_descriptors_one_until_the_first_wait(impl: Any, name: str) -> None:
    """A handle holds one descriptor. The fallback adds its eventfd at the
    first wait; the C channel (woken by its signal) none for a timed wait and
    its blocking twin at the first wait without a time limit."""
    c = impl[0] is not PyChannel
    before = fd_count()
    ch = make(impl, name)
    assert fd_count() == before + 1
    assert ch.send_nowait(b"a", 1, 0) is True
    assert ch.receive_nowait(0) == unimq.Message(b"a", 1, 0)
    assert ch.receive_nowait(0) is None
    assert fd_count() == before + 1
    assert ch.receive_wait(0, 0.01) is None  # timed out: the first wait
    assert fd_count() == before + (1 if c and wake_signal() else 2)
    if c:
        assert ch.twin == "none"
    assert ch.send_nowait(b"b", 1, 0) is True
    assert ch.receive_wait(0, None) == unimq.Message(b"b", 1, 0)
    assert ch.send_wait(b"c", 1, 0, None) is True
    assert fd_count() == before + 2
    if c:
        assert ch.twin == ("open" if wake_signal() else "none")
    ch.close()
    ch.close()
    assert fd_count() == before
    assert ch.closed


def test_close_defers_release_until_the_waiter_left(impl: Any, name: str) -> None:
    before = fd_count()
    ch = make(impl, name)
    waiter = Waiter(lambda: ch.receive_wait(0, None))
    waiter.start()
    waiter.blocked()
    ch.close()
    waiter.finish()
    assert (waiter.result, waiter.error) == (None, None)
    assert fd_count() == before, "descriptors kept after the last waiter left"
    assert errno_of(lambda: ch.fileno()) == errno.EBADF
    assert errno_of(lambda: ch.send_nowait(b"x", 1, 0)) == errno.EBADF
    assert ch.receive_wait(0, 1.0) is None  # closed: no wait, no error
    assert ch.send_wait(b"x", 1, 0, 1.0) is False


def test_waits_in_both_directions(impl: Any, name: str) -> None:
    ch = make(impl, name, capacity=1)
    sender = threading.Timer(0.05, ch.send_nowait, args=(b"later", 1, 4))
    sender.start()
    try:
        assert ch.receive_wait(0, None) == unimq.Message(b"later", 1, 4)
    finally:
        sender.join()
    assert ch.send_nowait(b"full", 1, 0) is True
    assert ch.send_wait(b"more", 1, 0, 0.02) is False  # no room within the time
    taker = threading.Timer(0.05, ch.receive_nowait, args=(0,))
    taker.start()
    try:
        assert ch.send_wait(b"room", 1, 3, 30.0) is True  # woken when the timer made room
    finally:
        taker.join()
    assert ch.receive_nowait(0) == unimq.Message(b"room", 1, 3)
    ch.close()


@pytest.mark.parametrize("huge", [86400.0 * 30, 1e12, 1e300])
def test_huge_timeouts_are_waits(impl: Any, name: str, huge: float) -> None:
    ch = make(impl, name)
    sender = threading.Timer(0.05, ch.send_nowait, args=(b"x", 1, 0))
    sender.start()
    try:
        assert ch.receive_wait(0, huge) == unimq.Message(b"x", 1, 0)
    finally:
        sender.join()
    ch.close()


def test_signal_handlers_run_and_their_exceptions_propagate(impl: Any, name: str) -> None:
    """A handler runs during the wait and the wait resumes; when one raises, the
    exception propagates and nothing was taken or enqueued."""
    ch = make(impl, name, capacity=1)
    calls: list[int] = []

    def handler(signum: int, frame: object) -> None:
        calls.append(signum)
        if len(calls) == 3:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
        with pytest.raises(KeyboardInterrupt):
            ch.receive_wait(0, None)
        assert len(calls) == 3
        assert ch.send_nowait(b"full", 1, 0) is True
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            ch.send_wait(b"never", 1, 0, 30.0)
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            ch.send_wait(b"never", 1, 0, None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert ch.receive_nowait(0) == unimq.Message(b"full", 1, 0)
    assert ch.receive_nowait(0) is None
    ch.close()


def test_errors_carry_the_errno(impl: Any, name: str) -> None:
    assert errno_of(lambda: make(impl, name, create=False)) == errno.ENOENT
    ch = make(impl, name)
    assert errno_of(lambda: make(impl, name)) == errno.EEXIST
    reader = impl[0](name, os.O_RDONLY, 0, 0, 0, unimq.Message)
    assert errno_of(lambda: reader.send_nowait(b"x", 1, 0)) == errno.EBADF  # the wrong direction
    assert errno_of(lambda: ch.send_nowait(b"x" * 65, 1, 0)) == errno.EMSGSIZE
    reader.close()
    ch.close()
    impl[1](name)
    assert errno_of(lambda: impl[1](name)) == errno.ENOENT


def test_mode_is_exact_and_attributes_are_read_back(impl: Any, name: str) -> None:
    old = os.umask(0o077)
    try:
        ch = impl[0](name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o664, 3, 48, unimq.Message)
    finally:
        os.umask(old)
    current, mode, uid, _gid, qsize = ch.stat()
    assert (current, mode & 0o777, uid, qsize) == (0, 0o664, os.geteuid(), 0)
    assert (ch.max_messages, ch.max_message_size) == (3, 48)
    ch.close()


def test_received_messages_hash_like_constructed_ones(impl: Any, name: str) -> None:
    ch = make(impl, name)
    ch.send_nowait(b"p", 1, 5)
    ch.send_nowait(b"q", 1, 0)
    got = [ch.receive_nowait(0), ch.receive_wait(0, 1.0)]
    for msg, built in zip(got, [unimq.Message(b"p", 1, 5), unimq.Message(b"q", 1, 0)], strict=True):
        assert type(msg) is unimq.Message
        assert msg == built
        assert hash(msg) == hash(built) == hash(tuple(built))
    ch.close()


@pytest.mark.parametrize("timeout", [30.0, None])
def test_forked_child_waits_although_a_parent_thread_was_waiting(
    impl: Any, name: str, timeout: float | None
) -> None:
    """A thread of the parent waits (holding the fallback's poller lock) while
    the process forks: the child's own waits still work. The parent closes its
    copy first, so that only the child competes for the message."""
    ch = make(impl, name)
    waiter = Waiter(lambda: ch.receive_wait(0, timeout))
    waiter.start()
    waiter.blocked()
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: on purpose
        pid = os.fork()
    if pid == 0:  # the child: only this thread exists
        code = 1
        try:
            os.read(go_read, 1)
            signal.alarm(int(WAKE))  # a hung wait ends the child: the parent sees no status
            sender = threading.Timer(0.05, ch.send_nowait, args=(b"child", 1, 0))
            sender.start()
            got = ch.receive_wait(0, timeout)
            sender.join()
            code = 0 if got == unimq.Message(b"child", 1, 0) else 2
            ch.close()
        finally:
            os.write(done_write, bytes([code]))
            os._exit(code)
    ch.close()  # wakes the parent's waiter; the child keeps its own descriptor
    waiter.finish()
    assert (waiter.result, waiter.error) == (None, None)
    os.write(go_write, b"g")
    os.close(done_write)  # the child's end only: EOF once it exited
    status = os.read(done_read, 1)
    os.waitpid(pid, 0)
    for fd in (go_read, go_write, done_read):
        os.close(fd)
    assert status == b"\x00", "the child's wait did not get its message"


def test_waiters_behind_the_poller_keep_their_deadline_and_signals(impl: Any, name: str) -> None:
    """One thread per direction polls; the others wait for it, and still time
    out on their own deadline, run signal handlers, and wake on close()."""
    ch = make(impl, name)
    results: list[object] = []
    entered = threading.Event()

    def poller() -> None:
        entered.set()
        results.append(ch.receive_wait(0, None))

    first = threading.Thread(target=poller)
    first.start()
    assert entered.wait(WAKE)
    first.join(0.2)
    assert first.is_alive()
    assert ch.receive_wait(0, 0.05) is None  # behind the poller: its own deadline
    calls: list[int] = []

    def handler(signum: int, frame: object) -> None:
        calls.append(signum)
        if len(calls) == 2:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
        with pytest.raises(KeyboardInterrupt):
            ch.receive_wait(0, 30.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert ch.send_nowait(b"one", 1, 0) is True
    first.join(WAKE)
    assert results == [unimq.Message(b"one", 1, 0)]
    second = threading.Thread(target=poller)
    third = threading.Thread(target=poller)
    for t in (second, third):
        entered.clear()
        t.start()
        assert entered.wait(WAKE)
    second.join(0.2)
    third.join(0.01)
    ch.close()
    for t in (second, third):
        t.join(WAKE)
        assert not t.is_alive()
    assert results[1:] == [None, None]


# ---------------------------------------------------------------- the C channel's wake signal


def test_wake_header_is_the_sysv_one() -> None:
    """_wake.h exists twice (two distributions cannot share a C file): the
    copies must stay byte-identical."""
    posix = ROOT / "backends/posix/unimq_posix/_wake.h"
    sysv = ROOT / "backends/sysv/unimq_sysv/_wake.h"
    assert posix.read_bytes() == sysv.read_bytes(), "change both copies of _wake.h together"


def test_wake_signal_is_a_free_realtime_signal() -> None:
    c_channel()
    if wake_signal() == 0:
        pytest.skip("no free real-time signal here: waits poll with an eventfd")
    assert signal.SIGRTMIN + 8 <= wake_signal() <= signal.SIGRTMAX
    with open("/proc/self/status") as f:  # the handler is installed from C
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    assert caught >> (wake_signal() - 1) & 1


@pytest.fixture
def cname() -> Iterator[str]:
    """A queue name for a C channel test, unlinked afterwards."""
    c_channel()
    from unimq_posix import _fast

    queue = new_posix_name()
    yield queue
    assert errno_of(lambda: _fast.unlink(queue)) in (None, errno.ENOENT)


def c_impl() -> tuple[Any, Any]:
    from unimq_posix import _fast

    return c_channel(), _fast.unlink


def in_syscall(native_id: int) -> str:
    with open(f"/proc/self/task/{native_id}/syscall") as f:
        return f.read().split()[0]


#: x86-64 system call numbers: where a waiting thread sits.
MQ_TIMEDSEND, MQ_TIMEDRECEIVE, POLL, PPOLL = "242", "243", "7", "271"


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` (bounded): the states it waits for have no event."""
    end = time.monotonic() + WAKE
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        time.sleep(0.001)


class Call(threading.Thread):
    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.native_id_: int | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        self.native_id_ = threading.get_native_id()
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc

    def sits_in(self, *calls: str) -> bool:
        assert self.is_alive(), (self.result, self.error)
        return self.native_id_ is not None and in_syscall(self.native_id_) in calls


needs_x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers")


@needs_x86_64
def test_untimed_waits_sleep_in_the_kernel_on_the_twin(cname: str) -> None:
    """timeout=None sleeps in mq_receive/mq_send on the twin (the kernel hands
    the message over); a timed wait poll()s the queue descriptor."""
    impl, name = c_impl(), cname
    if wake_signal() == 0:
        pytest.skip("no free real-time signal here: waits poll with an eventfd")
    ch = make(impl, name, capacity=1)
    cases: list[tuple[Callable[[], object], str, Callable[[], object]]] = [
        (lambda: ch.receive_wait(0, None), MQ_TIMEDRECEIVE, lambda: ch.send_nowait(b"1", 1, 0)),
        (lambda: ch.send_wait(b"2", 1, 0, None), MQ_TIMEDSEND, lambda: ch.receive_nowait(0)),
        (lambda: ch.receive_wait(0, 30.0), PPOLL, lambda: ch.send_nowait(b"3", 1, 0)),
    ]
    for fn, where, unblock in cases:
        if where == MQ_TIMEDSEND:
            assert ch.send_nowait(b"full", 1, 0)
        call = Call(fn)
        call.start()
        wait_until(functools.partial(call.sits_in, where), f"the waiter sits in syscall {where}")
        unblock()
        call.join(WAKE)
        assert not call.is_alive() and call.error is None
        if where == MQ_TIMEDSEND:
            assert ch.receive_nowait(0) == unimq.Message(b"2", 1, 0)
    assert ch.twin == "open"
    ch.close()


@pytest.mark.parametrize("direction", ["receive", "send"])
def test_close_wakes_a_twin_blocked_waiter_every_time(cname: str, direction: str) -> None:
    """close() interrupts mq_receive/mq_send on the twin with the wake signal,
    re-sent until the waiter left; repeated, with close() spinning on the
    registration, so that the signal often comes before the system call."""
    impl, name = c_impl(), cname
    if wake_signal() == 0:
        pytest.skip("no free real-time signal here: waits poll with an eventfd")
    keeper = make(impl, name, capacity=1)
    if direction == "send":
        assert keeper.send_nowait(b"full", 1, 0)
    for _ in range(40):
        before = fd_count()
        ch = make(impl, name, create=False)
        if direction == "receive":
            call = Call(functools.partial(ch.receive_wait, 0, None))
        else:
            call = Call(functools.partial(ch.send_wait, b"never", 1, 0, None))
        call.start()
        end = time.monotonic() + WAKE
        while ch.waiters != 1:  # no sleep: close() races the entry into the kernel
            assert time.monotonic() < end, "the waiter never registered"
        assert ch.twin == "open"
        ch.close()
        assert ch.waiters == 0  # close() returned after every signalled waiter left
        call.join(WAKE)
        assert not call.is_alive(), "close() did not wake the blocked call"
        assert call.error is None and call.result in (None, False)
        assert fd_count() == before, "the twin outlived its handle"
    # Nothing was taken or enqueued by any of the closed handles.
    assert keeper.stat()[0] == (1 if direction == "send" else 0)
    keeper.close()


def test_twin_refused_when_the_name_leads_elsewhere(cname: str) -> None:
    """The name was unlinked and reused: the twin would be another queue, so the
    untimed wait polls the handle's own queue (and close() still wakes it)."""
    impl, name = c_impl(), cname
    ch = make(impl, name)
    feeder = make(impl, name, create=False)  # the same queue
    impl[1](name)
    other = make(impl, name)  # a new queue under the old name
    try:
        call = Call(lambda: ch.receive_wait(0, None))
        call.start()
        wait_until(lambda: ch.twin == "refused", "the twin was refused")
        assert feeder.send_nowait(b"for the handle's queue", 1, 0)
        call.join(WAKE)
        assert call.result == unimq.Message(b"for the handle's queue", 1, 0)
        assert other.receive_nowait(0) is None
        call = Call(lambda: ch.receive_wait(0, None))
        call.start()
        wait_until(lambda: ch.waiters == 1 or wake_signal() == 0, "the waiter registered")
        ch.close()
        call.join(WAKE)
        assert not call.is_alive() and call.result is None
    finally:
        for handle in (ch, feeder, other):
            handle.close()


_LATE_ENTRY_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mqueue.h>
#include <time.h>

/* A blocking mq_receive (the twin's) enters the kernel 50 ms late: a wake
 * signal sent in between interrupts this sleep, not the mq_receive. */
ssize_t mq_receive(mqd_t mqd, char *buf, size_t size, unsigned int *prio)
{
    static ssize_t (*real)(mqd_t, char *, size_t, unsigned int *);
    if (real == NULL)
        real = (ssize_t (*)(mqd_t, char *, size_t, unsigned int *))dlsym(RTLD_NEXT, "mq_receive");
    struct mq_attr attr;
    if (mq_getattr(mqd, &attr) == 0 && !(attr.mq_flags & O_NONBLOCK)) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    return real(mqd, buf, size, prio);
}
"""


def test_close_resends_until_the_waiter_left(tmp_path: Path) -> None:
    """A signal that arrives before the waiter is inside mq_receive is lost;
    close() sends again until the waiter left. Made deterministic with a real
    shim (LD_PRELOAD) that enters the twin's mq_receive late."""
    c_channel()
    if wake_signal() == 0:
        pytest.skip("no free real-time signal here: waits poll with an eventfd")
    try:
        shim = compile_c(_LATE_ENTRY_SHIM, "late.so", tmp_path, "-shared", "-fPIC", "-ldl")
    except FileNotFoundError:
        pytest.skip("no C compiler (cc) on this machine")
    queue = new_posix_name()
    code = f"""
import json, os, threading, time, unimq
from unimq_posix import _fast
ch = _fast.Channel({queue!r}, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, 1, 64, unimq.Message)
out = []
def wait():
    out.append(ch.receive_wait(0, None))
t = threading.Thread(target=wait)
t.start()
end = time.monotonic() + 10
while ch.waiters != 1 and time.monotonic() < end:
    pass  # close() right after registration: inside the shim's late entry
twin = ch.twin
ch.close()
t.join(10)
_fast.unlink({queue!r})
print(json.dumps({{"alive": t.is_alive(), "out": out, "twin": twin}}))
"""
    proc = run_python(code, timeout=60, env={"LD_PRELOAD": str(shim)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"alive": False, "out": [None], "twin": "open"}


_FALLBACK_CHILD = """
import json, os, platform, signal, threading, time
calls = []
def handler(s, f):
    calls.append(s)
{before}
import unimq
from unimq_posix import _fast
{after}
def fds():
    return len(os.listdir("/proc/self/fd"))
out = {{"wake": _fast.WAKE_SIGNAL, "runs": []}}
for timeout in (None, 30.0):
    ch = _fast.Channel({queue!r}, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, 1, 64, unimq.Message)
    base = fds()
    tid, result = [], []
    def wait():
        {mask}
        tid.append(threading.get_native_id())
        result.append(ch.receive_wait(0, timeout))
    t = threading.Thread(target=wait)
    t.start()
    def where():
        if not tid:
            return None
        with open(f"/proc/self/task/{{tid[0]}}/syscall") as f:
            return f.read().split()[0]
    end = time.monotonic() + 10
    while where() not in ("7", "271", "243") and time.monotonic() < end:
        time.sleep(0.001)  # until it sits in poll()/ppoll() or mq_timedreceive
    run = {{"syscall": where(), "extra_fds": fds() - base, "twin": ch.twin}}
    ch.close()
    t.join(10)
    _fast.unlink({queue!r})
    run.update(alive=t.is_alive(), result=result, fds_after=fds() - base)
    out["runs"].append(run)
out["calls"] = calls
print(json.dumps(out))
"""


@needs_x86_64
@pytest.mark.parametrize(
    "case",
    [
        "all_taken",  # every real-time signal from SIGRTMIN+8 has a handler: WAKE_SIGNAL 0
        "taken_before_import",  # someone's handler on SIGRTMIN+8: the next free one is used
        "handler_installed_later",  # the user replaced ours: waits poll with the eventfd
        "blocked_in_thread",  # the waiting thread blocks the signal: its wait polls
    ],
)
def test_wake_signal_never_clobbers_and_falls_back(case: str) -> None:
    """Where the wake signal cannot be used, waits poll the queue and an eventfd
    (no twin: nothing could wake it) and close() still wakes them; a handler
    that is not unimq's is never replaced nor signalled."""
    c_channel()
    before = after = ""
    mask = "pass"
    if case == "all_taken":
        before = "for s in range(signal.SIGRTMIN + 8, signal.SIGRTMAX + 1):\n"
        before += "    signal.signal(s, handler)"
    elif case == "taken_before_import":
        before = "signal.signal(signal.SIGRTMIN + 8, handler)"
        after = "assert signal.getsignal(signal.SIGRTMIN + 8) is handler"
    elif case == "handler_installed_later":
        after = "signal.signal(_fast.WAKE_SIGNAL, handler)"
    else:
        mask = "signal.pthread_sigmask(signal.SIG_BLOCK, {_fast.WAKE_SIGNAL})"
    code = _FALLBACK_CHILD.format(before=before, after=after, mask=mask, queue=new_posix_name())
    proc = run_python(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if case == "all_taken":
        assert out["wake"] == 0
    elif case == "taken_before_import":
        assert out["wake"] > signal.SIGRTMIN + 8
    assert out["calls"] == [], "a handler that is not unimq's was signalled"
    untimed, timed = out["runs"]
    if case == "taken_before_import":  # the next free signal does the same job
        assert (untimed["syscall"], untimed["twin"], untimed["extra_fds"]) == (
            MQ_TIMEDRECEIVE,
            "open",
            1,  # the twin
        )
        assert (timed["syscall"], timed["extra_fds"]) == (PPOLL, 0)
    else:
        for run in out["runs"]:
            assert run["syscall"] in (POLL, PPOLL), run
            assert run["twin"] == "none", run
            assert run["extra_fds"] == 1, run  # the eventfd
    for run in out["runs"]:
        assert run["alive"] is False, "close() did not wake the waiter"
        assert run["result"] == [None], run
        assert run["fds_after"] == -1, run  # the handle's descriptors are all closed


@needs_x86_64
def test_close_never_sends_the_signal_once_its_handler_was_replaced() -> None:
    """Someone sets the wake signal back to SIG_DFL while a thread sleeps on the
    twin: close() must not send it (that would end the process); it waits
    until the waiter leaves by itself (here: a message arrives)."""
    c_channel()
    if wake_signal() == 0:
        pytest.skip("no free real-time signal here: waits poll with an eventfd")
    queue = new_posix_name()
    code = f"""
import json, os, signal, threading, time, unimq
from unimq_posix import _fast
ch = _fast.Channel({queue!r}, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, 1, 64, unimq.Message)
got, tid = [], []
def wait():
    tid.append(threading.get_native_id())
    got.append(ch.receive_wait(0, None))
t = threading.Thread(target=wait)
t.start()
def in_mq_receive():
    with open(f"/proc/self/task/{{tid[0]}}/syscall") as f:
        return f.read().split()[0] == "243"
end = time.monotonic() + 10
while time.monotonic() < end and not (tid and in_mq_receive()):
    time.sleep(0.001)
signal.signal(_fast.WAKE_SIGNAL, signal.SIG_DFL)
def feed():
    while not ch.closed and time.monotonic() < end:
        time.sleep(0.001)
    other = _fast.Channel({queue!r}, os.O_WRONLY, 0, 0, 0, unimq.Message)
    other.send_nowait(b"let it go", 1, 0)
    other.close()
feeder = threading.Thread(target=feed)
feeder.start()
ch.close()
t.join(10)
feeder.join(10)
_fast.unlink({queue!r})
print(json.dumps([m.data.decode() for m in got]))
"""
    proc = run_python(code, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.strip() == '["let it go"]'


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_close_from_a_signal_handler_during_the_wait(timeout: float | None) -> None:
    """A handler that closes the handle its own thread waits on: no deadlock
    (close() does not wait for the calling thread), the wait ends, nothing
    is taken, and the descriptors are released."""
    impl = c_impl()
    queue = new_posix_name()
    ch = make(impl, queue)
    try:
        before = fd_count()
        old = signal.signal(signal.SIGUSR1, lambda s, f: ch.close())
        timer = threading.Timer(
            0.2, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGUSR1)
        )
        timer.start()
        try:
            assert ch.receive_wait(0, timeout) is None
        finally:
            timer.join()
            signal.signal(signal.SIGUSR1, old)
        assert ch.closed
        assert fd_count() < before, "the descriptors outlived the wait"
    finally:
        ch.close()
        impl[1](queue)
