"""The POSIX channels: ``unimq_posix._fast.Channel`` (C) and ``PyChannel``
(posix_ipc fallback) side by side, on real queues.

Both own their descriptor, wait without busy looping, wake on close(), release
their descriptors only once no call uses them, and raise OSError with the errno.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, new_posix_name

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


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_descriptors_one_until_the_first_wait(impl: Any, name: str) -> None:
    """A handle holds one descriptor; the eventfd comes with the first wait."""
    before = fd_count()
    ch = make(impl, name)
    assert fd_count() == before + 1
    assert ch.send_nowait(b"a", 1, 0) is True
    assert ch.receive_nowait(0) == unimq.Message(b"a", 1, 0)
    assert ch.receive_nowait(0) is None
    assert fd_count() == before + 1
    assert ch.receive_wait(0, 0.01) is None  # timed out: the first wait
    assert fd_count() == before + 2
    ch.close()
    ch.close()
    assert fd_count() == before
    assert ch.closed


def test_close_defers_release_until_the_waiter_left(impl: Any, name: str) -> None:
    before = fd_count()
    ch = make(impl, name)
    results: list[object] = []
    entered = threading.Event()

    def wait() -> None:
        entered.set()
        results.append(ch.receive_wait(0, None))

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert entered.wait(WAKE)
    waiter.join(0.2)
    assert waiter.is_alive()
    ch.close()
    waiter.join(WAKE)
    assert not waiter.is_alive(), "close() did not wake the waiter"
    assert results == [None]
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


def test_forked_child_waits_although_a_parent_thread_was_waiting(impl: Any, name: str) -> None:
    """A thread of the parent waits (holding the fallback's poller lock) while
    the process forks: the child's own waits still work. The parent closes its
    copy first, so that only the child competes for the message."""
    ch = make(impl, name)
    entered = threading.Event()
    results: list[object] = []

    def wait() -> None:
        entered.set()
        results.append(ch.receive_wait(0, 30.0))

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert entered.wait(WAKE)
    waiter.join(0.2)
    assert waiter.is_alive()
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: on purpose
        pid = os.fork()
    if pid == 0:  # the child: only this thread exists
        code = 1
        try:
            os.read(go_read, 1)
            sender = threading.Timer(0.05, ch.send_nowait, args=(b"child", 1, 0))
            sender.start()
            got = ch.receive_wait(0, 5.0)
            sender.join()
            code = 0 if got == unimq.Message(b"child", 1, 0) else 2
            ch.close()
        finally:
            os.write(done_write, bytes([code]))
            os._exit(code)
    ch.close()  # wakes the parent's waiter; the child keeps its own descriptor
    waiter.join(WAKE)
    assert results == [None]
    os.write(go_write, b"g")
    status = os.read(done_read, 1)
    os.waitpid(pid, 0)
    for fd in (go_read, go_write, done_read, done_write):
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
