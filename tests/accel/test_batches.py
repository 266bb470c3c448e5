"""One call per batch: ``send_many_nowait``/``receive_many_nowait`` of the C
channels (SysV and POSIX) and their pure-Python equivalents, on real queues.

Each test runs on the path this process uses (C, or pure Python under
``UNIMQ_PURE_PYTHON=1``: tests/accel/test_fast_path.py runs tests/accel again
that way); the POSIX channel tests run both channels side by side.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory, new_posix_name
from tests.helpers import CATCH, can_unshare, child_json, posix_channel_class

PURE = os.environ.get("UNIMQ_PURE_PYTHON", "").strip().lower() not in ("", "0", "false", "no")
KINDS = [k for k, ok in (("posix", HAVE_POSIX), ("sysv", HAVE_SYSV)) if ok]
pytestmark = pytest.mark.skipif(not KINDS, reason="no kernel backend installed")


def small(kind: str, make_url: UrlFactory, **extra: Any) -> unimq.Queue:
    """A queue that holds exactly 4 messages of 16 bytes."""
    if kind == "posix":
        return unimq.open(
            make_url("posix"), create=True, max_messages=4, max_message_size=64, **extra
        )
    return unimq.open(make_url("sysv"), create=True, max_bytes=64, **extra)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def q(kind: str, make_url: UrlFactory) -> Iterator[unimq.Queue]:
    handle = small(kind, make_url)
    yield handle
    handle.close()


def oserror(call: Callable[[], object]) -> OSError:
    """The OSError ``call`` raises (fails the test when it raises none)."""
    try:
        call()
    except OSError as exc:
        return exc
    raise AssertionError("no OSError was raised")


def items(n: int, start: int = 0) -> list[bytes]:
    return [b"%015d" % i for i in range(start, start + n)]  # 15 digits + nothing: 15 bytes


def test_batches_are_one_call_into_the_channel(kind: str, q: unimq.Queue) -> None:
    ch = q._channel  # type: ignore[attr-defined]
    if kind == "sysv" and ch is None:
        assert PURE or not __import__("unimq_sysv").ACCELERATED
        # The pure SysV path uses the core's loops over its single primitives.
        assert q._send_many_nowait.__func__ is unimq.Queue._send_many_nowait  # type: ignore[attr-defined]
        return
    assert q._send_many_nowait == ch.send_many_nowait
    assert q._receive_many_nowait == ch.receive_many_nowait


def test_order_and_limits(q: unimq.Queue) -> None:
    batch = [(d, 1, 0) for d in items(3)]
    assert q._send_many_nowait(batch, 0) == 3
    assert q._receive_many_nowait(0, 2) == [unimq.Message(d) for d in items(2)]
    assert q._receive_many_nowait(0, 5) == [unimq.Message(items(3)[2])]
    assert q._receive_many_nowait(0, 5) == []
    assert q._receive_many_nowait(0, 0) == []


def test_start_sends_the_rest_only(q: unimq.Queue) -> None:
    batch = [(d, 1, 0) for d in items(4)]
    assert q._send_many_nowait(batch, 2) == 2
    assert q._send_many_nowait(batch, 4) == 0
    assert [m.data for m in q.receive_many(10, timeout=0)] == items(4)[2:]


def test_a_full_queue_ends_the_batch_with_the_exact_count(q: unimq.Queue) -> None:
    batch = [(d, 1, 0) for d in items(6)]
    assert q._send_many_nowait(batch, 0) == 4  # holds exactly 4
    assert q._send_many_nowait(batch, 4) == 0
    assert [m.data for m in q.receive_many(10, timeout=0)] == items(4)
    assert q._send_many_nowait(batch, 4) == 2
    assert [m.data for m in q.receive_many(10, timeout=0)] == items(6)[4:]


def test_send_many_timeout_zero_reports_the_count(q: unimq.Queue) -> None:
    q.send(items(1)[0])
    with pytest.raises(unimq.QueueFull) as info:
        q.send_many(items(5, 1), timeout=0)
    assert info.value.sent == 3
    assert [m.data for m in q.receive_many(10, timeout=0)] == items(4)


def test_receive_many_takes_queued_messages_in_one_call(q: unimq.Queue) -> None:
    q.send_many(items(4))
    assert [m.data for m in q.receive_many(3, timeout=0)] == items(3)
    assert [m.data for m in q.receive_many(3, timeout=None)] == items(4)[3:]
    with pytest.raises(unimq.QueueEmpty):
        q.receive_many(3, timeout=0)


def test_closed_channel_refuses_batches(q: unimq.Queue) -> None:
    send_many, receive_many = q._send_many_nowait, q._receive_many_nowait
    q.close()
    if q._channel is not None:  # type: ignore[attr-defined]
        # (the pure SysV path has no channel: a msqid needs no release)
        assert oserror(lambda: send_many([(b"x", 1, 0)], 0)).errno == errno.EBADF
        assert oserror(lambda: receive_many(0, 4)).errno == errno.EBADF
    with pytest.raises(unimq.QueueClosed):
        q.send_many([b"x"])
    with pytest.raises(unimq.QueueClosed):
        q.receive_many(4, timeout=0)


def test_access_keeps_refusing_the_forbidden_direction(kind: str, make_url: UrlFactory) -> None:
    url = make_url(kind)
    opts: dict[str, Any] = (
        {"max_messages": 4, "max_message_size": 64} if kind == "posix" else {"max_bytes": 64}
    )
    with unimq.open(url, create=True, **opts) as rw:
        rw.send(b"keep")
        with unimq.open(url, access="r") as r, pytest.raises(unimq.PermissionDenied) as info:
            r.send_many([b"x", b"y"])
        assert info.value.sent == 0
        with unimq.open(url, access="w") as w, pytest.raises(unimq.PermissionDenied):
            w.receive_many(4, timeout=0)
        assert rw.receive_many(4, timeout=0) == [unimq.Message(b"keep")]


def test_sysv_error_after_k_carries_the_count(make_url: UrlFactory) -> None:
    """mtype 0 is EINVAL for msgsnd: the third message fails after two went."""
    if not HAVE_SYSV:
        pytest.skip("sysv backend not installed")
    with small("sysv", make_url) as q:
        batch = [(b"a", 1, 0), (b"b", 2, 0), (b"c", 0, 0), (b"d", 1, 0)]
        # C: OSError(EINVAL) from msgsnd; pure: sysv_ipc refuses it with ValueError.
        with pytest.raises((OSError, ValueError)) as info:
            q._send_many_nowait(batch, 0)
        if isinstance(info.value, OSError):
            assert info.value.errno == errno.EINVAL
        assert info.value.unimq_sent == 2  # type: ignore[attr-defined]
        with pytest.raises((OSError, ValueError)) as info:
            q._send_many_nowait(batch, 2)
        assert info.value.unimq_sent == 0  # type: ignore[attr-defined]
        assert [m.data for m in q.receive_many(10, timeout=0)] == [b"a", b"b"]


def test_sysv_receive_selects_by_mtype(make_url: UrlFactory) -> None:
    if not HAVE_SYSV:
        pytest.skip("sysv backend not installed")
    with small("sysv", make_url) as q:
        q.send_many([unimq.Message(b"1", 1), unimq.Message(b"2", 2), unimq.Message(b"3", 1)])
        assert q._receive_many_nowait(1, 10) == [unimq.Message(b"1", 1), unimq.Message(b"3", 1)]
        assert q._receive_many_nowait(-5, 10) == [unimq.Message(b"2", 2)]


# ---------------------------------------------------------------- POSIX channels side by side


@pytest.fixture(params=["c", "py"])
def channel(request: pytest.FixtureRequest) -> Iterator[Any]:
    if not HAVE_POSIX:
        pytest.skip("posix backend not installed")
    from unimq_posix._channel import unlink as py_unlink

    cls: Any = posix_channel_class(request.param)
    name = new_posix_name()
    ch = cls(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, 4, 64, unimq.Message)
    yield ch
    ch.close()
    py_unlink(name)


def test_posix_channel_batches(channel: Any) -> None:
    batch = [(b"a", 1, 1), (b"b", 1, 9), (b"c", 1, 1), (b"d", 1, 0), (b"e", 1, 0)]
    assert channel.send_many_nowait(batch, 0) == 4
    assert channel.send_many_nowait(batch, 4) == 0
    assert channel.receive_many_nowait(0, 3) == [
        unimq.Message(b"b", 1, 9),
        unimq.Message(b"a", 1, 1),
        unimq.Message(b"c", 1, 1),
    ]
    assert channel.receive_many_nowait(0, 3) == [unimq.Message(b"d")]
    assert channel.receive_many_nowait(0, 3) == []


def test_posix_channel_error_after_k_carries_the_count(channel: Any) -> None:
    """A body over mq_msgsize (EMSGSIZE) after two messages went."""
    batch = [(b"a", 1, 0), (b"b", 1, 0), (b"x" * 65, 1, 0), (b"d", 1, 0)]
    exc = oserror(lambda: channel.send_many_nowait(batch, 0))
    assert exc.errno == errno.EMSGSIZE
    assert exc.unimq_sent == 2  # type: ignore[attr-defined]
    assert [m.data for m in channel.receive_many_nowait(0, 10)] == [b"a", b"b"]


def test_posix_channel_closed(channel: Any) -> None:
    channel.close()
    assert oserror(lambda: channel.send_many_nowait([(b"x", 1, 0)], 0)).errno == errno.EBADF
    assert oserror(lambda: channel.receive_many_nowait(0, 2)).errno == errno.EBADF


# ---------------------------------------------------------------- limits changed under a handle


def _namespace() -> None:
    reason = can_unshare("--ipc")
    if reason:
        pytest.skip(reason)


@pytest.mark.skipif(not HAVE_SYSV, reason="sysv backend not installed")
def test_sysv_receive_many_grows_its_buffer_within_a_batch() -> None:
    """A message over the receive buffer (kernel.msgmax raised after the handle
    was opened) in the middle of a batch: E2BIG, the buffer grows, the batch
    goes on, in order."""
    _namespace()
    code = (
        CATCH
        + """
import importlib
def sysctl(name, value):
    open(f"/proc/sys/kernel/{name}", "w").write(str(value))
q = unimq.open("sysv://4343", create=True)
sysctl("msgmnb", 131072); sysctl("msgmax", 65536)
other = unimq.open("sysv://4343")
q.set(max_bytes=131072)
big = bytes(range(256)) * 80
other.send_many([b"a", big, b"c", b"d"])
got = q.receive_many(3, timeout=0)
rest = q.receive_many(3, timeout=0)
bufsize = q._channel.bufsize if q._channel is not None else None
q.remove(); q.close(); other.close()
print(json.dumps({"got": [len(m.data) for m in got], "same": got[1].data == big,
    "rest": [m.data.decode() for m in rest], "bufsize": bufsize,
    "fast": importlib.import_module("unimq_sysv").ACCELERATED}))
"""
    )
    out = child_json(code, namespace=True)
    assert out["got"] == [1, 20480, 1]
    assert out["same"] is True
    assert out["rest"] == ["d"]
    if out["fast"]:
        assert isinstance(out["bufsize"], int) and out["bufsize"] >= 20480


@pytest.mark.skipif(not HAVE_SYSV, reason="sysv backend not installed")
def test_sysv_send_many_error_after_k_sets_sent() -> None:
    """kernel.msgmax lowered under open handles: the third item is refused by
    the kernel (EINVAL) after two went; the error says .sent == 2 (unimq.aio
    too)."""
    _namespace()
    code = (
        CATCH
        + """
import anyio, unimq.aio
q = unimq.open("sysv://4344", create=True)

async def main():
    async with await unimq.aio.open("sysv://4344") as aq:
        open("/proc/sys/kernel/msgmax", "w").write("64")
        try:
            await aq.send_many([b"c", b"x" * 100, b"d"], timeout=0)
        except unimq.UnimqError as e:
            return {"type": type(e).__name__, "sent": e.sent}

aio_err = anyio.run(main)
aio_got = [m.data.decode() for m in q.receive_many(10, timeout=0)]
err = None
try:
    q.send_many([b"a", b"b", b"x" * 100, b"d"], timeout=0)
except unimq.UnimqError as e:
    err = {"type": type(e).__name__, "sent": e.sent}
got = [m.data.decode() for m in q.receive_many(10, timeout=0)]
q.remove(); q.close()
print(json.dumps({"err": err, "got": got, "aio_err": aio_err, "aio_got": aio_got}))
"""
    )
    out = child_json(code, namespace=True)
    assert out["got"] == ["a", "b"]
    assert out["err"] == {"type": "MessageTooLarge", "sent": 2}
    assert out["aio_got"] == ["c"]
    assert out["aio_err"] == {"type": "MessageTooLarge", "sent": 1}


def test_receive_many_takes_any_int_limit(q: unimq.Queue) -> None:
    q.send_many(items(2))
    assert [m.data for m in q.receive_many(10**30, timeout=0)] == items(2)
