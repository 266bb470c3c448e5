"""SysV extras (issue 18): receive_except (MSG_EXCEPT), peek and browse (MSG_COPY).

Runs on whichever path this installation has; test_fast_path.py runs this
directory again with UNIMQ_PURE_PYTHON=1 (ctypes msgrcv there).
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import unimq
from tests.conftest import UrlFactory
from tests.helpers import CATCH, NO_MSG_COPY_SHIM, can_unshare, child_json, compile_c, run_python

pytest.importorskip("unimq_sysv")
from unimq_sysv import SysVQueue
from unimq_sysv._queue import knows_msg_copy

WAKE = 10.0  # bound on waits that end at once when the code works


@pytest.fixture
def sq(sysv_url: str) -> Iterator[SysVQueue]:
    q = unimq.open(sysv_url, create=True, max_bytes=1024)
    assert isinstance(q, SysVQueue)
    yield q
    q.close()


def fill(q: unimq.Queue, mtypes: tuple[int, ...]) -> list[unimq.Message]:
    sent = []
    for n, mtype in enumerate(mtypes):
        data = b"m%d-t%d" % (n, mtype)
        q.send(data, mtype=mtype)
        sent.append(unimq.Message(data, mtype, 0))
    return sent


def waiters(q: SysVQueue) -> int:
    channel = q._channel
    if channel is not None:
        return channel.waiters
    with q._wait_lock:
        return sum(q._waiting.values())


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` (bounded): the state it waits for has no event to wait on."""
    end = time.monotonic() + WAKE
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        time.sleep(0.001)


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


# ---------------------------------------------------------------------- receive_except


def test_receive_except_takes_the_other_types_in_queue_order(sq: SysVQueue) -> None:
    sent = fill(sq, (1, 2, 1, 3, 2))
    got = [sq.receive_except(1, timeout=0) for _ in range(3)]
    assert got == [sent[1], sent[3], sent[4]]
    with pytest.raises(unimq.QueueEmpty) as info:
        sq.receive_except(1, timeout=0)
    assert info.value.errno == errno.EAGAIN
    # The skipped type is untouched, in order.
    assert list(sq.drain()) == [sent[0], sent[2]]


def test_receive_except_times_out_and_takes_nothing(sq: SysVQueue) -> None:
    sent = fill(sq, (4, 4))
    with pytest.raises(unimq.QueueEmpty) as info:
        sq.receive_except(4, timeout=0.05)
    assert info.value.errno == errno.ETIMEDOUT
    assert "within 0.05 s" in str(info.value)
    assert list(sq.browse()) == sent


def test_receive_except_waits_for_a_message_of_another_type(sq: SysVQueue) -> None:
    call = Call(lambda: sq.receive_except(7, timeout=None))
    call.start()
    wait_until(lambda: waiters(sq) == 1, "receive_except waits")
    sq.send(b"skipped", mtype=7)
    sq.send(b"wanted", mtype=8)
    call.join(WAKE)
    assert not call.is_alive()
    assert call.error is None
    assert call.result == unimq.Message(b"wanted", 8, 0)
    assert sq.receive(timeout=0) == unimq.Message(b"skipped", 7, 0)


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_close_wakes_receive_except(sysv_url: str, timeout: float | None) -> None:
    q = unimq.open(sysv_url, create=True, max_bytes=1024)
    assert isinstance(q, SysVQueue)
    call = Call(lambda: q.receive_except(1, timeout=timeout))
    call.start()
    wait_until(lambda: waiters(q) == 1, "receive_except waits")
    q.close()
    call.join(WAKE)
    assert not call.is_alive(), "close() did not wake receive_except"
    assert isinstance(call.error, unimq.QueueClosed)
    with unimq.open(sysv_url) as other:
        other.send(b"for the next reader", mtype=2)
        assert other.receive(timeout=0).data == b"for the next reader"
    with pytest.raises(unimq.QueueClosed):
        q.receive_except(1, timeout=0)


def test_removal_wakes_receive_except(sysv_url: str) -> None:
    q = unimq.open(sysv_url, create=True, max_bytes=1024)
    assert isinstance(q, SysVQueue)
    try:
        call = Call(lambda: q.receive_except(1))
        call.start()
        wait_until(lambda: waiters(q) == 1, "receive_except waits")
        unimq.remove(sysv_url)
        call.join(WAKE)
        assert not call.is_alive(), "removal did not wake receive_except"
        assert isinstance(call.error, unimq.QueueRemoved), call.error
        with pytest.raises(unimq.QueueRemoved):
            q.receive_except(1, timeout=0)
    finally:
        q.close()


@pytest.mark.parametrize(
    ("mtype", "error"),
    [(0, ValueError), (-3, ValueError), (2**31, ValueError), (True, TypeError), (1.0, TypeError)],
)
def test_receive_except_checks_mtype(sq: SysVQueue, mtype: Any, error: type) -> None:
    sq.send(b"kept", mtype=2)
    with pytest.raises(error, match="mtype"):
        sq.receive_except(mtype, timeout=0)
    assert sq.receive(timeout=0).data == b"kept"


def test_receive_except_checks_timeout_and_access(sysv_url: str, sq: SysVQueue) -> None:
    sq.send(b"kept", mtype=2)
    with pytest.raises(ValueError, match="timeout"):
        sq.receive_except(1, timeout=-1)
    with unimq.open(sysv_url, access="w") as writer:
        assert isinstance(writer, SysVQueue)
        with pytest.raises(unimq.PermissionDenied, match="access='w'"):
            writer.receive_except(1, timeout=0)
        with pytest.raises(unimq.PermissionDenied, match="access='w'"):
            writer.peek()
    assert sq.receive(timeout=0).data == b"kept"


# ---------------------------------------------------------------------- peek and browse


def test_peek_by_index_leaves_the_queue_unchanged(sq: SysVQueue) -> None:
    sent = fill(sq, (5, 1, 9, 1))
    assert sq.peek() == sent[0]
    assert [sq.peek(i) for i in (3, 1, 2, 0)] == [sent[3], sent[1], sent[2], sent[0]]
    with pytest.raises(unimq.QueueEmpty, match="no message at index 4") as info:
        sq.peek(4)
    assert info.value.errno == errno.ENOMSG
    assert sq.stat().messages == 4
    assert list(sq.drain()) == sent


def test_browse_yields_every_message_and_takes_none(sq: SysVQueue) -> None:
    assert list(sq.browse()) == []
    sent = fill(sq, (3, 1, 2, 3, 1))
    assert list(sq.browse()) == sent
    assert list(sq.browse()) == sent  # again: nothing was taken
    assert sq.stat().messages == len(sent)
    assert sq.receive(mtype=2, timeout=0) == sent[2]
    assert list(sq.browse()) == [sent[0], sent[1], sent[3], sent[4]]


@pytest.mark.parametrize(
    ("index", "error"), [(-1, ValueError), (True, TypeError), ("0", TypeError)]
)
def test_peek_checks_index(sq: SysVQueue, index: Any, error: type) -> None:
    with pytest.raises(error, match="index"):
        sq.peek(index)


def test_peek_after_close_and_after_removal(sysv_url: str) -> None:
    q = unimq.open(sysv_url, create=True, max_bytes=1024)
    assert isinstance(q, SysVQueue)
    try:
        q.send(b"x")
        unimq.remove(sysv_url)
        with pytest.raises(unimq.QueueRemoved):
            q.peek()
        with pytest.raises(unimq.QueueRemoved):
            list(q.browse())
    finally:
        q.close()
    with pytest.raises(unimq.QueueClosed):
        q.peek()
    with pytest.raises(unimq.QueueClosed):
        next(q.browse())


def test_large_messages_grow_the_buffer() -> None:
    """A message larger than the buffer the handle was opened with (kernel.msgmax
    raised afterwards) is peeked, browsed and received by MSG_EXCEPT all the same:
    the buffer grows on E2BIG (in a private IPC namespace)."""
    reason = can_unshare("--ipc")
    if reason:
        pytest.skip(reason)
    code = (
        CATCH
        + """
import unimq
q = unimq.open("sysv://4243", create=True)       # receive buffer: kernel.msgmax = 8192
for name, value in (("msgmax", 65536), ("msgmnb", 131072)):
    open(f"/proc/sys/kernel/{name}", "w").write(str(value))
big = bytes(range(256)) * 80                       # 20480 bytes
with unimq.open("sysv://4243") as sender:
    sender.set(max_bytes=65536)
    sender.send(b"small", mtype=1)
    sender.send(big, mtype=2)
before = q._channel.bufsize if q._channel is not None else q._buffer
peeked = q.peek(1)
browsed = list(q.browse())
taken = q.receive_except(1, timeout=0)
left = list(q.browse())
q.remove(); q.close()
print(json.dumps({
    "before": before,
    "peek": peeked.data == big and peeked.mtype == 2,
    "browse": [len(m.data) for m in browsed],
    "taken": taken.data == big and taken.mtype == 2,
    "left": [m.data.decode() for m in left],
}))
"""
    )
    out = child_json(code, namespace=True)
    assert out == {
        "before": 8192,
        "peek": True,
        "browse": [5, 20480],
        "taken": True,
        "left": ["small"],
    }


# ---------------------------------------------------------------------- kernels without MSG_COPY


@pytest.fixture(scope="module")
def no_msg_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return compile_c(
            NO_MSG_COPY_SHIM,
            "nomsgcopy.so",
            tmp_path_factory.mktemp("shim"),
            "-shared",
            "-fPIC",
            "-ldl",
        )
    except FileNotFoundError:
        pytest.skip("no C compiler (cc) on this machine")


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EINVAL])
def test_kernel_without_msg_copy_is_unsupported(
    make_url: UrlFactory, no_msg_copy: Path, err: int
) -> None:
    url = make_url("sysv")
    code = f"""
import json, unimq
q = unimq.open({url!r}, create=True, max_bytes=1024)
q.send(b"stays", mtype=3)
out = {{}}
for name, call in (("peek", lambda: q.peek()), ("browse", lambda: list(q.browse()))):
    try:
        call()
        out[name] = "no error"
    except unimq.UnsupportedOperation as exc:
        out[name] = [str(exc), exc.errno]
out["left"] = q.receive(timeout=0).data.decode()
import unimq_sysv
out["fast"] = unimq_sysv.ACCELERATED
q.remove(); q.close()
print(json.dumps(out))
"""
    proc = run_python(code, env={"LD_PRELOAD": str(no_msg_copy), "NO_MSG_COPY_ERRNO": str(err)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    import unimq_sysv

    assert out["fast"] is unimq_sysv.ACCELERATED  # the child ran the same path
    for name in ("peek", "browse"):
        message, got_errno = out[name]
        assert got_errno == err
        assert "MSG_COPY" in message
        assert "CONFIG_CHECKPOINT_RESTORE" in message
        assert "receive the messages and send them again" in message
    assert out["left"] == "stays"


def test_msg_copy_works_on_this_kernel(sq: SysVQueue) -> None:
    """This machine's kernel has MSG_COPY (CONFIG_CHECKPOINT_RESTORE): the
    supported branch above is the real one here, not a fallback."""
    if os.environ.get("LD_PRELOAD"):
        pytest.skip("a preloaded library may change msgrcv")
    sq.send(b"here")
    assert sq.peek() == unimq.Message(b"here", 1, 0)


@pytest.mark.parametrize(
    ("release", "known"),
    [
        ("3.7.10", False),
        ("2.6.32-754.el6.x86_64", False),
        ("3.8.0", True),
        ("6.1.0-13-amd64", True),
    ],
)
def test_kernels_before_3_8_are_refused(release: str, known: bool) -> None:
    """Before Linux 3.8 the MSG_COPY bit is ignored: msgrcv would take the message."""
    assert knows_msg_copy(release) is known
