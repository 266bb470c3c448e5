"""Faults: killed consumers and producers, queues removed under waiters, and a
storm of signals during waits. Each test prints what it counted."""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import signal
import struct
import threading
import time
import zlib
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory
from tests.helpers import BOUND, DeathWatch
from unimq.system._limits import read_sysctl
from unimq.testing import in_background, wait_until_blocked

CTX = multiprocessing.get_context("fork")
KINDS = [k for k, ok in (("posix", HAVE_POSIX), ("sysv", HAVE_SYSV)) if ok]


def opts(kind: str) -> dict[str, Any]:
    """Queue options: on POSIX as large as this machine lets an unprivileged
    process ask (up to 10 x 8192), read from the live fs.mqueue sysctls."""
    if kind != "posix":
        return {}
    return {
        "max_messages": min(10, read_sysctl("fs.mqueue.msg_max") or 10),
        "max_message_size": min(8192, read_sysctl("fs.mqueue.msgsize_max") or 8192),
    }


def recording_consumer(url: str, log_fd: int) -> None:
    """Receive forever, writing each sequence number to a pipe right after receive()."""
    with unimq.open(url) as q:
        while True:
            seq = int(q.receive(timeout=30).data)
            os.write(log_fd, struct.pack("=I", seq))


@pytest.mark.parametrize("kind", KINDS)
def test_consumer_killed_mid_stream_loses_at_most_one(kind: str, make_url: UrlFactory) -> None:
    url = make_url(kind)
    total = 3000
    read_fd, write_fd = os.pipe()
    remaining: list[int] = []
    try:
        with unimq.open(url, create=True, **opts(kind)) as q:
            consumer = CTX.Process(target=recording_consumer, args=(url, write_fd))
            consumer.start()
            os.close(write_fd)
            write_fd = -1
            killed = False
            # A consumer that dies before the planned kill closes q: a send blocked
            # on the full queue then ends at once and the test fails.
            with DeathWatch(consumer, q) as watch:
                try:
                    for seq in range(total):
                        if seq == total // 2:
                            watch.expect_exit()
                            os.kill(consumer.pid or 0, signal.SIGKILL)  # mid-stream
                            consumer.join(BOUND)
                            killed = True
                        try:
                            q.send(str(seq).encode(), timeout=None if not killed else 0)
                        except unimq.QueueFull:  # nobody consumes any more: take over
                            remaining += [int(m.data) for m in q.drain()]
                            q.send(str(seq).encode())
                finally:
                    if consumer.is_alive():
                        consumer.kill()
                    consumer.join(BOUND)
            remaining += [int(m.data) for m in q.drain()]
        logged = b""
        while chunk := os.read(read_fd, 65536):
            logged += chunk
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    recorded = [s for (s,) in struct.iter_unpack("=I", logged[: len(logged) // 4 * 4])]
    seen = recorded + remaining
    assert len(seen) == len(set(seen)), "a message was delivered twice"
    lost = sorted(set(range(total)) - set(seen))
    print(
        f"\n{kind}: consumer SIGKILLed after {len(recorded)} of {total}; lost {lost} (at most once)"
    )
    assert len(lost) <= 1  # only a message received but not yet recorded can be lost
    if lost:
        assert lost[0] == (max(recorded) + 1 if recorded else 0)


def big_producer(url: str) -> None:
    with unimq.open(url) as q:
        room = q.max_message_size - 8  # the header: sequence number and crc
        seq = 0
        while True:
            body = os.urandom(min(room, 2048 + seq % 4096))
            q.send(struct.pack("=II", seq, zlib.crc32(body)) + body)
            seq += 1


@pytest.mark.parametrize("kind", KINDS)
def test_producer_killed_mid_send_leaves_whole_messages(kind: str, make_url: UrlFactory) -> None:
    url = make_url(kind)
    with unimq.open(url, create=True, **opts(kind)) as q:
        producer = CTX.Process(target=big_producer, args=(url,))
        producer.start()
        received = 0
        try:
            while received < 300:  # consume while it sends, then kill it mid-send
                # Bounded: a producer that died fails the test here.
                data = q.receive(timeout=30).data
                _seq, crc = struct.unpack_from("=II", data)
                assert zlib.crc32(data[8:]) == crc
                received += 1
        finally:
            os.kill(producer.pid or 0, signal.SIGKILL)
            producer.join(BOUND)
        whole = 0
        for msg in q.drain():
            _seq, crc = struct.unpack_from("=II", msg.data)
            assert zlib.crc32(msg.data[8:]) == crc, "a torn message"
            whole += 1
    print(
        f"\n{kind}: producer SIGKILLed mid-send after {received} received; {whole} left, all whole"
    )


def blocked_receiver(url: str, timeout: float | None, results: Any, opened: Any) -> None:
    start = time.monotonic()
    try:
        with unimq.open(url) as q:
            opened.set()
            q.receive(timeout=timeout)
        results.put(("received", time.monotonic() - start))
    except unimq.UnimqError as exc:
        results.put((type(exc).__name__, time.monotonic() - start))


def test_sysv_removal_wakes_blocked_processes(make_url: UrlFactory) -> None:
    if not HAVE_SYSV:
        pytest.skip("sysv backend not installed")
    url = make_url("sysv")
    results: Any = CTX.Queue()
    with unimq.open(url, create=True):
        ready = [CTX.Event() for _ in range(2)]
        waiters = [
            CTX.Process(target=blocked_receiver, args=(url, t, results, r))
            for t, r in zip((None, 30.0), ready, strict=True)
        ]
        try:
            for w in waiters:
                w.start()
            for w, r in zip(waiters, ready, strict=True):
                assert r.wait(BOUND), "a receiver never opened the queue"
                assert w.pid is not None
                assert wait_until_blocked(w.pid, pid=w.pid), "a receiver never blocked"
            removed = time.monotonic()
            unimq.remove(url)
            # Neither receiver would end by itself within the bound: removal must wake both.
            outcomes = [results.get(timeout=BOUND) for _ in waiters]
            woke_after = time.monotonic() - removed
        finally:
            unimq.remove(url, missing_ok=True)
            for w in waiters:
                w.join(BOUND)
                if w.is_alive():
                    w.kill()
                    w.join()
    results.close()
    assert sorted(o[0] for o in outcomes) == ["QueueRemoved", "QueueRemoved"]
    print(f"\nsysv: removal woke a blocked and a timed receiver: QueueRemoved ({woke_after:.3f} s)")


def test_posix_removal_leaves_waiters_waiting(make_url: UrlFactory) -> None:
    if not HAVE_POSIX:
        pytest.skip("posix backend not installed")
    url = make_url("posix")
    results: Any = CTX.Queue()
    with unimq.open(url, create=True, max_messages=2, max_message_size=16) as q:
        opened = CTX.Event()
        waiter = CTX.Process(target=blocked_receiver, args=(url, 1.0, results, opened))
        waiter.start()
        try:
            assert opened.wait(BOUND), "the receiver never opened the queue"
            assert waiter.pid is not None
            # Blocked, or already timed out (then the removal comes late, still no wake-up).
            wait_until_blocked(waiter.pid, pid=waiter.pid)
            unimq.remove(url)  # only the name goes; the waiter's descriptor still works
            outcome, waited = results.get(timeout=BOUND)
        finally:
            waiter.join(BOUND)
            if waiter.is_alive():
                waiter.kill()
                waiter.join()
        q.send(b"still usable")
        assert q.receive(timeout=0).data == b"still usable"
    results.close()
    print(f"\nposix: after unlink the blocked receiver kept waiting and timed out ({waited:.2f} s)")
    assert outcome == "QueueEmpty"
    assert waited >= 0.95


class SharedCount:
    """A counter in anonymous shared memory that forked children see (no file
    descriptor, unlike multiprocessing.Value). Written by one process only."""

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, 8)

    @property
    def value(self) -> int:
        return int(struct.unpack_from("=q", self._mem)[0])

    @value.setter
    def value(self, new: int) -> None:
        struct.pack_into("=q", self._mem, 0, new)

    def close(self) -> None:
        self._mem.close()


def producer_of(url: str, count: int, handled: SharedCount) -> None:
    """Send ``count`` numbers; after every 50, wait (bounded) until the
    receiver's signal handler has run a few more times, so that signals do
    arrive while it waits on the empty queue."""
    with unimq.open(url) as q:
        for seq in range(count):
            q.send(str(seq).encode())
            if seq % 50 == 49 and seq < count - 1:
                target = handled.value + 5
                deadline = time.monotonic() + BOUND
                while handled.value < target:  # a counter in shared memory: poll, bounded
                    if time.monotonic() > deadline:
                        raise SystemExit("the receiver's signal handler stopped running")
                    time.sleep(0.0005)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("timed", [False, True])
def test_signal_storm_loses_and_duplicates_nothing(
    kind: str, timed: bool, make_url: UrlFactory
) -> None:
    url = make_url(kind)
    total = 2000
    calls = SharedCount()  # the producer reads it

    def handler(signum: int, frame: object) -> None:
        calls.value += 1

    old_usr1 = signal.signal(signal.SIGUSR1, handler)
    old_alrm = signal.signal(signal.SIGALRM, handler)
    stop = threading.Event()

    def pester() -> None:
        while not stop.wait(0.0005):  # a signal every half millisecond until stopped
            os.kill(os.getpid(), signal.SIGUSR1)

    got = []
    with unimq.open(url, create=True, **opts(kind)) as q:
        producer = CTX.Process(target=producer_of, args=(url, total, calls))
        pest = threading.Thread(target=pester)
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        try:
            pest.start()
            producer.start()
            # A producer that fails closes q: a receive(timeout=None) does not hang.
            with DeathWatch(producer, q):
                for _ in range(total):
                    got.append(int(q.receive(timeout=10.0 if timed else None).data))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            stop.set()
            pest.join()
            signal.signal(signal.SIGUSR1, old_usr1)
            signal.signal(signal.SIGALRM, old_alrm)
            producer.join(BOUND)
            if producer.is_alive():
                producer.kill()
                producer.join()
        assert q.qsize() == 0
    print(
        f"\n{kind} ({'timed' if timed else 'blocking'}): {calls.value} signal handlers ran "
        f"during {total} receives; none lost, none duplicated"
    )
    handled = calls.value
    calls.close()
    assert got == list(range(total))
    assert producer.exitcode == 0
    assert handled > 100


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("timed", [False, True])
def test_keyboard_interrupt_during_waits_consumes_nothing(
    kind: str, timed: bool, make_url: UrlFactory
) -> None:
    """SIGINT while blocked: KeyboardInterrupt propagates out of receive() and
    send(), and the interrupted call took or left nothing: the next message
    is intact, and a blocked send that was interrupted did not enqueue."""
    url = make_url(kind)
    rounds = 20
    timeout = 10.0 if timed else None

    def interrupt() -> None:
        os.kill(os.getpid(), signal.SIGINT)

    with unimq.open(url, create=True, **opts(kind)) as q:
        for i in range(rounds):
            # The helper sends SIGINT once this thread is blocked, and is joined.
            with in_background(interrupt), pytest.raises(KeyboardInterrupt):
                q.receive(timeout=timeout)  # the queue is empty: waits until SIGINT
            q.send(b"%d" % i)
            assert q.receive(timeout=0).data == b"%d" % i
            assert q.qsize() == 0
        # Interrupt blocked sends on a full queue: none of them enqueues.
        filled = 0
        with contextlib.suppress(unimq.QueueFull):
            while True:
                q.send(b"fill", timeout=0)
                filled += 1
        for _ in range(rounds):
            with in_background(interrupt), pytest.raises(KeyboardInterrupt):
                q.send(b"never", timeout=timeout)
        assert [m.data for m in q.drain()] == [b"fill"] * filled
    print(f"\n{kind} ({'timed' if timed else 'blocking'}): {2 * rounds} SIGINTs, nothing taken")
