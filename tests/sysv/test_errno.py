"""SysV backend: each errno row of kernel-facts.md table 1a this machine can produce."""

from __future__ import annotations

import errno
import os
import statistics
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

import unimq
from tests.conftest import UrlFactory
from tests.helpers import BOUND, CATCH, NOBODY, child_json
from unimq.system._limits import msgmax, read_sysctl
from unimq.testing import Alarms, in_background, wait_until_blocked

pytest.importorskip("unimq_sysv")
from unimq_sysv import SysVQueue


@pytest.fixture
def sq(sysv_url: str) -> Iterator[SysVQueue]:
    q = unimq.open(sysv_url, create=True)
    assert isinstance(q, SysVQueue)
    yield q
    q.close()


def test_s1_missing_queue(sysv_url: str) -> None:
    with pytest.raises(unimq.QueueNotFound) as info:
        unimq.open(sysv_url)
    assert info.value.errno == errno.ENOENT


def test_s2_exclusive_create(sq: SysVQueue, sysv_url: str) -> None:
    with pytest.raises(unimq.QueueExists) as info:
        unimq.open(sysv_url, create=True, exclusive=True)
    assert info.value.errno == errno.EEXIST


def test_s3_nobody_denied_at_open_with_role_bits(sq: SysVQueue, sysv_url: str) -> None:
    out = child_json(
        CATCH + f"print(json.dumps(attempt(lambda: unimq.open({sysv_url!r}))))", user=NOBODY
    )
    assert out["error"] == "PermissionDenied"
    assert out["errno"] == errno.EACCES
    assert "owner uid 0" in str(out["text"])


def test_s3_read_only_consumer_of_0644_queue(sysv_url: str) -> None:
    with unimq.open(sysv_url, create=True, mode=0o644) as q:
        q.send(b"public", mtype=5)
        code = (
            CATCH
            + f"""
q = unimq.open({sysv_url!r}, access="r")
m = q.receive(timeout=1)
w = attempt(lambda: unimq.open({sysv_url!r}))
q.close()
print(json.dumps({{"data": m.data.decode(), "mtype": m.mtype, "rw": w}}))
"""
        )
        out = child_json(code, user=NOBODY)
    assert out["data"] == "public"
    assert out["mtype"] == 5
    assert isinstance(out["rw"], dict)
    assert out["rw"]["error"] == "PermissionDenied"


def test_s9_s15_s20_nobody_send_receive_stat_denied(sysv_url: str, make_url: UrlFactory) -> None:
    # A queue nobody may open for reading only: writes and reads are both refused.
    with unimq.open(sysv_url, create=True, mode=0o604) as q:
        q.send(b"x")
        code = (
            CATCH
            + f"""
r = unimq.open({sysv_url!r}, access="r")
recv = attempt(lambda: r.receive(timeout=0))
r.close()
send = attempt(lambda: unimq.open({sysv_url!r}, access="w"))
print(json.dumps({{"recv": recv, "send_open": send}}))
"""
        )
        out = child_json(code, user=NOBODY)
        assert out["recv"] == {"ok": True}
        assert isinstance(out["send_open"], dict)
        assert out["send_open"]["error"] == "PermissionDenied"
    # S20: IPC_STAT without read permission, even on nobody's own write-only queue.
    own = make_url("sysv")
    code = (
        CATCH
        + f"""
q = unimq.open({own!r}, create=True, mode=0o200)
s = attempt(q.stat)
sent = attempt(lambda: q.send(b"w"))
q.remove(); q.close()
print(json.dumps({{"stat": s, "send": sent}}))
"""
    )
    out = child_json(code, user=NOBODY)
    assert isinstance(out["stat"], dict)
    assert out["stat"]["error"] == "PermissionDenied"
    assert out["send"] == {"ok": True}


def test_s21_nobody_cannot_remove_or_set_roots_queue(sysv_url: str) -> None:
    with unimq.open(sysv_url, create=True, mode=0o666) as q:
        code = (
            CATCH
            + f"""
h = unimq.open({sysv_url!r})
rm = attempt(h.remove)
st = attempt(lambda: h.set(mode=0o600))
h.close()
print(json.dumps({{"remove": rm, "set": st}}))
"""
        )
        out = child_json(code, user=NOBODY)
        for key in ("remove", "set"):
            result = out[key]
            assert isinstance(result, dict)
            assert result["error"] == "PermissionDenied"
            assert result["errno"] == errno.EPERM
        q.send(b"still here")
        assert q.receive(timeout=0).data == b"still here"


def test_s6_mtype_range(sq: SysVQueue) -> None:
    for bad in (0, -1, 2**31):
        with pytest.raises(ValueError, match="mtype"):
            sq.send(b"x", mtype=bad)
    sq.send(b"ok", mtype=2**31 - 1)
    assert sq.receive(timeout=0).mtype == 2**31 - 1


def test_s7_larger_than_msgmax(sq: SysVQueue) -> None:
    limit = msgmax()
    with pytest.raises(unimq.MessageTooLarge) as info:
        sq.send(b"x" * (limit + 1))
    assert "kernel.msgmax" in str(info.value)
    assert info.value.limit == limit
    sq.send(b"y" * limit)
    assert len(sq.receive(timeout=1).data) == limit


def test_s11_larger_than_qbytes_would_block_forever(sysv_url: str) -> None:
    with unimq.open(sysv_url, create=True, max_bytes=2048) as q:
        with pytest.raises(unimq.MessageTooLarge) as info:
            q.send(b"z" * 4000, timeout=None)
        assert "msg_qbytes (2048)" in str(info.value)
        assert "never fit" in str(info.value)


def test_s8_s16_stale_handle_after_removal(sq: SysVQueue, sysv_url: str) -> None:
    other = unimq.open(sysv_url)
    try:
        sq.remove()
        with pytest.raises(unimq.QueueRemoved):
            other.send(b"x")
        with pytest.raises(unimq.QueueRemoved):
            other.receive(timeout=0)
        with pytest.raises(unimq.QueueRemoved):
            other.stat()
    finally:
        other.close()


def test_s10_full_by_bytes_and_by_count(sysv_url: str) -> None:
    with unimq.open(sysv_url, create=True, max_bytes=5) as q:
        for _ in range(5):
            q.send(b"", timeout=0)  # the count limit: qnum + 1 <= msg_qbytes
        with pytest.raises(unimq.QueueFull) as info:
            q.send(b"", timeout=0)
        assert info.value.errno == errno.EAGAIN
        assert q.full()


@pytest.mark.parametrize("blocked", ["receive", "send"])
def test_s13_s19_removal_wakes_blocked_callers(sysv_url: str, blocked: str) -> None:
    q = unimq.open(sysv_url, create=True, max_bytes=16)
    if blocked == "send":
        q.send(b"f" * 16)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            if blocked == "send":
                q.send(b"g" * 16, timeout=None)
            else:
                q.receive(timeout=None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    try:
        assert thread.native_id is not None
        assert wait_until_blocked(thread.native_id), f"the {blocked} never blocked"
        unimq.remove(sysv_url)
    finally:
        unimq.remove(sysv_url, missing_ok=True)  # also ends the wait if the test failed
        thread.join(BOUND)
        q.close()
    assert not thread.is_alive(), "removal did not wake the blocked caller"
    assert len(errors) == 1
    assert isinstance(errors[0], unimq.QueueRemoved)


def test_s13_removal_wakes_timed_waiter(sysv_url: str) -> None:
    q = unimq.open(sysv_url, create=True)
    try:
        # The helper removes the queue once this thread is blocked in receive();
        # if removal did not wake it, receive would end QueueEmpty after 5 s.
        with in_background(lambda: unimq.remove(sysv_url)), pytest.raises(unimq.QueueRemoved):
            q.receive(timeout=5)
    finally:
        q.close()


def test_s14_large_message_from_another_handle(sq: SysVQueue, sysv_url: str) -> None:
    with unimq.open(sysv_url) as other:
        other.send(b"\x01" * 4096, mtype=9)
    assert sq.receive(timeout=1) == unimq.Message(b"\x01" * 4096, 9, 0)


def test_s17_no_message_of_that_type(sq: SysVQueue) -> None:
    sq.send(b"two", mtype=2)
    for selection in (3, -1):
        with pytest.raises(unimq.QueueEmpty) as info:
            sq.receive(mtype=selection, timeout=0)
        assert info.value.errno == errno.EAGAIN  # one QueueEmpty errno on every backend
    assert sq.receive(mtype=-2, timeout=0).data == b"two"


def test_s12_s18_eintr_retried_for_blocking_send(sysv_url: str) -> None:
    main_tid = threading.get_native_id()
    interrupted: list[bool] = []
    q = unimq.open(sysv_url, create=True, max_bytes=8)
    try:
        q.send(b"12345678")
        with Alarms() as alarms:

            def after_two_interruptions(cancel: threading.Event) -> None:
                # Room is made only after the blocked send was interrupted (and
                # its handler ran) twice: each time the send had to go on waiting.
                wait_until_blocked(main_tid, cancel=cancel)
                seen = len(alarms.calls)
                interrupted.append(alarms.wait_for(seen + 2))

            alarms.every(0.05)
            with in_background(lambda: q.receive(timeout=5), when=after_two_interruptions):
                q.send(b"abcdefgh", timeout=None)
            calls = len(alarms.calls)
    finally:
        q.close()
    assert interrupted == [True], "the handler did not run twice during the blocked send"
    assert calls >= 2


def test_s23_remove_twice(sq: SysVQueue, sysv_url: str) -> None:
    sq.remove()
    with pytest.raises(unimq.QueueNotFound):
        sq.remove()
    sq.remove(missing_ok=True)
    with pytest.raises(unimq.QueueNotFound):
        unimq.remove(sysv_url)


def test_set_changes_attributes(sq: SysVQueue) -> None:
    sq.set(mode=0o640, max_bytes=1024)
    st = sq.stat()
    assert st.mode == 0o640
    assert st.max_bytes == 1024
    assert sq.max_message_size == 1024
    with pytest.raises(ValueError, match="mode"):
        sq.set(mode=0o1000)


def test_existing_queue_with_other_max_bytes_warns(sysv_url: str) -> None:
    with unimq.open(sysv_url, create=True, max_bytes=1024):
        with pytest.warns(unimq.AttributeMismatchWarning, match="max_bytes=2048 asked but 1024"):
            unimq.open(sysv_url, create=True, max_bytes=2048).close()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            unimq.open(sysv_url, create=True, max_bytes=1024).close()


def test_ftok_url_and_key_forms(tmp_path: object) -> None:
    path = str(tmp_path)
    url = f"sysv://{path}?proj=77"
    try:
        with unimq.open(url, create=True) as q:
            assert isinstance(q, SysVQueue)
            assert q.url == url
            hex_url = f"sysv://0x{q.key:x}"
            with unimq.open(hex_url) as same:
                assert isinstance(same, SysVQueue)
                q.send(b"via ftok")
                assert same.receive(timeout=1).data == b"via ftok"
                assert same.key == q.key
                assert same.id == q.id
    finally:
        unimq.remove(url, missing_ok=True)


def test_stat_counts_bytes_and_pids(sq: SysVQueue) -> None:
    sq.send(b"abc")
    st = sq.stat()
    assert st.bytes == 3
    assert st.messages == 1
    assert st.key == sq.key
    assert st.id == sq.id
    assert st.last_send_pid == os.getpid()
    assert st.last_receive_pid is None
    assert st.max_bytes == read_sysctl("kernel.msgmnb")


def test_timeout_emulation_latency(sq: SysVQueue) -> None:
    """Print (not assert) the latency the IPC_NOWAIT polling adds to a timed receive."""
    added: list[float] = []
    sent_at: list[float] = []

    def send_now() -> None:
        sent_at.append(time.perf_counter())
        sq.send(b"ping")

    for _ in range(30):
        # The helper sends once this thread is blocked in the timed receive.
        with in_background(send_now):
            sq.receive(timeout=1)
            got = time.perf_counter()
        added.append(got - sent_at[-1])
    med = statistics.median(added) * 1e6
    print(f"\nSysV timed receive: median added latency {med:.0f} us over {len(added)} runs")
    assert all(a >= 0 for a in added)


def test_driver_exceptions_get_their_errno_back_in_one_place() -> None:
    """sysv_ipc's exception classes carry no errno: the backend's one mapping
    gives it back per operation; anything else is left for the core to wrap."""
    from unimq_sysv import _errors
    from unimq_sysv._errors import driver_oserror

    sysv_ipc = _errors.sysv_ipc  # type: ignore[attr-defined]  # the wrapped module, as the backend sees it

    cases = [
        ("send", sysv_ipc.BusyError(), errno.EAGAIN),
        ("receive", sysv_ipc.BusyError(), errno.ENOMSG),
        ("open", sysv_ipc.ExistentialError(), errno.ENOENT),
        ("create", sysv_ipc.ExistentialError(), errno.EEXIST),
        ("remove", sysv_ipc.ExistentialError(), errno.EINVAL),
        ("receive", sysv_ipc.ExistentialError(), errno.EIDRM),
        ("set", sysv_ipc.PermissionsError(), errno.EPERM),
        ("remove", sysv_ipc.PermissionsError(), errno.EPERM),
        ("open", sysv_ipc.PermissionsError(), errno.EACCES),
        ("receive", sysv_ipc.Error(), errno.EINTR),
    ]
    for op, exc, expected in cases:
        got = driver_oserror(op, exc)  # type: ignore[arg-type]
        assert got is not None and got.errno == expected, (op, exc, got)
    real = OSError(errno.E2BIG, "Argument list too long")
    assert driver_oserror("receive", real) is real
    assert driver_oserror("send", sysv_ipc.InternalError()) is None
    assert driver_oserror("send", sysv_ipc.NotAttachedError()) is None
