"""POSIX backend: each errno row of kernel-facts.md table 1b this machine can produce."""

from __future__ import annotations

import errno
import os
import select
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import unimq
from tests.conftest import new_posix_name
from tests.helpers import CATCH, NOBODY, child_json
from unimq.system._limits import has_cap_sys_resource

pytest.importorskip("unimq_posix")
from unimq_posix import PosixQueue


def read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read())


SMALL: dict[str, Any] = {"max_messages": 4, "max_message_size": 64}


@pytest.fixture
def pq(posix_url: str) -> Iterator[PosixQueue]:
    q = unimq.open(posix_url, create=True, **SMALL)
    assert isinstance(q, PosixQueue)
    yield q
    q.close()


def test_p1_missing_queue(posix_url: str) -> None:
    with pytest.raises(unimq.QueueNotFound) as info:
        unimq.open(posix_url)
    assert info.value.errno == errno.ENOENT
    assert "create=True" in str(info.value)


@pytest.mark.parametrize("url", ["posix:///", "posix://", "posix:///a/b", "posix:///" + "n" * 256])
def test_p1_p3_p4_p5_bad_names_rejected_before_syscall(url: str) -> None:
    with pytest.raises(unimq.InvalidURL):
        unimq.open(url, create=True, **SMALL)


def test_p5_name_of_255_is_accepted() -> None:
    url = "posix:///" + "n" * 250 + f"{os.getpid() % 100000:05d}"
    try:
        with unimq.open(url, create=True, **SMALL) as q:
            q.send(b"long name")
            assert q.receive(timeout=1).data == b"long name"
    finally:
        unimq.remove(url, missing_ok=True)


def test_p2_exclusive_create(pq: PosixQueue, posix_url: str) -> None:
    with pytest.raises(unimq.QueueExists) as info:
        unimq.open(posix_url, create=True, exclusive=True, **SMALL)
    assert info.value.errno == errno.EEXIST


def test_p3_nobody_cannot_open_roots_0600_queue(pq: PosixQueue, posix_url: str) -> None:
    out = child_json(
        CATCH + f"print(json.dumps(attempt(lambda: unimq.open({posix_url!r}))))", user=NOBODY
    )
    assert out["error"] == "PermissionDenied"
    assert out["errno"] == errno.EACCES
    assert "access" in str(out["text"])


def test_p3_read_only_grant(posix_url: str) -> None:
    with unimq.open(posix_url, create=True, mode=0o644, **SMALL) as q:
        q.send(b"for everyone")
        code = (
            CATCH
            + f"""
q = unimq.open({posix_url!r}, access="r")
data = q.receive(timeout=1).data.decode()
w = attempt(lambda: unimq.open({posix_url!r}, access="w"))
q.close()
print(json.dumps({{"data": data, "write": w}}))
"""
        )
        out = child_json(code, user=NOBODY)
    assert out["data"] == "for everyone"
    assert isinstance(out["write"], dict)
    assert out["write"]["error"] == "PermissionDenied"


def test_p4_attributes_checked_against_sysctls(posix_url: str) -> None:
    msg_max = read_int("/proc/sys/fs/mqueue/msg_max")
    size_max = read_int("/proc/sys/fs/mqueue/msgsize_max")
    if has_cap_sys_resource():
        pytest.skip("CAP_SYS_RESOURCE lifts these limits")
    with pytest.raises(unimq.LimitExceeded) as info:
        unimq.open(posix_url, create=True, max_messages=msg_max + 1, max_message_size=64)
    assert info.value.limit == "fs.mqueue.msg_max"
    assert f"({msg_max})" in str(info.value)
    assert "sysctl -w fs.mqueue.msg_max" in str(info.value)
    with pytest.raises(unimq.LimitExceeded) as info:
        unimq.open(posix_url, create=True, max_messages=2, max_message_size=size_max + 1)
    assert info.value.limit == "fs.mqueue.msgsize_max"
    for bad in (0, -1):
        with pytest.raises(unimq.InvalidURL, match="max_messages"):
            unimq.open(posix_url, create=True, max_messages=bad)
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(posix_url)  # nothing was created


def test_p9_oversize_rejected_before_send(pq: PosixQueue) -> None:
    with pytest.raises(unimq.MessageTooLarge) as info:
        pq.send(b"x" * 65)
    assert info.value.errno == errno.EMSGSIZE
    assert "mq_msgsize = 64" in str(info.value)
    assert pq.qsize() == 0


def test_p12_closed_handle(pq: PosixQueue) -> None:
    pq.close()
    with pytest.raises(unimq.QueueClosed):
        pq.send(b"x")
    with pytest.raises(unimq.QueueClosed):
        pq.fileno()
    with pytest.raises(unimq.QueueClosed):
        pq.notify()


def test_p16_receive_buffer_is_the_queue_size(posix_url: str) -> None:
    with unimq.open(posix_url, create=True, max_messages=2, max_message_size=8192) as q:
        q.send(b"\xff" * 8192)
        q.send(b"")
        assert q.receive(timeout=1).data == b"\xff" * 8192
        assert q.receive(timeout=1).data == b""


def test_p17_notify_busy_for_another_process(pq: PosixQueue, posix_url: str) -> None:
    pq.notify(signal=signal.SIGUSR2)
    pq.notify(signal=signal.SIGUSR2)  # this process's own registration is replaced, not EBUSY
    try:
        code = (
            CATCH
            + f"""
import signal
q = unimq.open({posix_url!r})
r = attempt(lambda: q.notify(signal=signal.SIGUSR2))
q.close()
print(json.dumps(r))
"""
        )
        out = child_json(code)
        assert out["error"] == "NotificationBusy"
        assert out["errno"] == errno.EBUSY
    finally:
        pq.notify()  # cancel
    # Once cancelled, another process may register.
    ok = child_json(
        CATCH
        + f"""
import signal
q = unimq.open({posix_url!r})
r = attempt(lambda: q.notify(signal=signal.SIGUSR2))
q.close()
print(json.dumps(r))
"""
    )
    assert ok == {"ok": True}


def test_p18_bad_notify_arguments(pq: PosixQueue) -> None:
    with pytest.raises(ValueError, match="signal"):
        pq.notify(signal=0)
    with pytest.raises(ValueError, match="not both"):
        pq.notify(signal=signal.SIGUSR2, callback=lambda: None)


def test_notify_signal_is_delivered(pq: PosixQueue) -> None:
    got: list[int] = []
    old = signal.signal(signal.SIGUSR2, lambda s, f: got.append(s))
    try:
        pq.notify(signal=signal.SIGUSR2)
        pq.send(b"wake up")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [signal.SIGUSR2]
        assert pq.receive(timeout=0).data == b"wake up"
    finally:
        signal.signal(signal.SIGUSR2, old)


def test_notify_callback_runs_once(pq: PosixQueue) -> None:
    event = threading.Event()
    calls: list[int] = []

    def callback() -> None:
        calls.append(1)
        event.set()

    pq.notify(callback=callback)
    pq.send(b"one")
    assert event.wait(5)
    pq.receive(timeout=0)
    pq.send(b"two")  # one-shot: no second call
    time.sleep(0.2)
    assert calls == [1]


def test_p19_unlink_missing(posix_url: str) -> None:
    with pytest.raises(unimq.QueueNotFound) as info:
        unimq.remove(posix_url)
    assert info.value.errno == errno.ENOENT
    unimq.remove(posix_url, missing_ok=True)


def test_p20_nobody_cannot_remove_roots_queue(pq: PosixQueue, posix_url: str) -> None:
    out = child_json(
        CATCH + f"print(json.dumps(attempt(lambda: unimq.remove({posix_url!r}))))", user=NOBODY
    )
    assert out["error"] == "PermissionDenied"
    assert out["errno"] == errno.EACCES
    pq.send(b"still there")
    assert pq.receive(timeout=0).data == b"still there"


def test_p21_double_close_is_silent(pq: PosixQueue) -> None:
    pq.close()
    pq.close()


def test_w4_existing_queue_with_other_attributes_warns(pq: PosixQueue, posix_url: str) -> None:
    with pytest.warns(unimq.AttributeMismatchWarning, match="max_messages=3 asked but 4"):
        other = unimq.open(posix_url, create=True, max_messages=3, max_message_size=64)
    other.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unimq.open(posix_url, create=True, **SMALL).close()  # same attributes: silent


def test_mode_is_applied_exactly_despite_umask(posix_url: str) -> None:
    old = os.umask(0o077)
    try:
        with unimq.open(posix_url, create=True, mode=0o664, **SMALL) as q:
            assert q.stat().mode == 0o664
    finally:
        os.umask(old)


def test_unlink_keeps_open_handles_working(pq: PosixQueue, posix_url: str) -> None:
    pq.send(b"before")
    pq.remove()
    assert pq.receive(timeout=1).data == b"before"
    pq.send(b"after unlink")
    assert pq.receive(timeout=1).data == b"after unlink"
    with unimq.open(posix_url, create=True, **SMALL) as fresh:  # a different queue now
        assert fresh.qsize() == 0
        pq.send(b"old")
        assert fresh.qsize() == 0
        fresh.remove()


def test_fileno_polls_readable(pq: PosixQueue) -> None:
    poller = select.poll()
    poller.register(pq.fileno(), select.POLLIN)
    assert poller.poll(0) == []
    pq.send(b"ready")
    assert poller.poll(1000)
    assert pq.receive(timeout=0).data == b"ready"


def test_stat_reports_qsize(pq: PosixQueue) -> None:
    pq.send(b"12345")
    st = pq.stat()
    assert st.bytes == 5
    assert st.name == pq.name
    assert st.max_message_size == 64


def test_defaults_come_from_the_running_kernel() -> None:
    url = f"posix://{new_posix_name()}"
    try:
        with unimq.open(url, create=True) as q:
            st = q.stat()
            assert st.max_messages == read_int("/proc/sys/fs/mqueue/msg_default")
            assert st.max_message_size == read_int("/proc/sys/fs/mqueue/msgsize_default")
    finally:
        unimq.remove(url, missing_ok=True)
