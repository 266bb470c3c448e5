"""``sysv://KEY`` and ``sysv:///path?proj=N``: System V message queues.

Control operations (msgget, msgctl) go through sysv_ipc. Send and receive go
through the C channel (``unimq_sysv._fast``) where it was built, else through
sysv_ipc with the same semantics (``UNIMQ_PURE_PYTHON=1`` forces that).
"""

from __future__ import annotations

import contextlib
import errno as E
import functools
import operator
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import sysv_ipc

from unimq._accel import load_channel
from unimq._errors import (
    LimitExceeded,
    MessageTooLarge,
    QueueEmpty,
    UnimqError,
    UnsupportedOperation,
)
from unimq._message import Capability, Message, QueueStat, new_message
from unimq._names import format_key, sysv_key
from unimq._options import OPTION_MAX, Access, OptionParser, positive_int
from unimq._queue import MTYPE_MAX, Op, Queue
from unimq._url import QueueURL
from unimq._waiting import Backoff
from unimq.system._limits import msgmax, read_sysctl, sysctl_hint
from unimq.system._sysvproc import sysv_msg_entries, sysv_msg_entry
from unimq_sysv._errors import Context, driver_oserror, msgmnb_error, sysv_error
from unimq_sysv._sysvextras import IPC_NOWAIT, MSG_COPY, MSG_EXCEPT, msgrcv

if TYPE_CHECKING:
    from unimq_sysv._fast import Channel

__all__ = ["ACCELERATED", "SysVQueue"]

#: The C primitives, or None: then sysv_ipc's own calls are used.
_Channel: type[Channel] | None = load_channel("unimq_sysv._fast")

#: True when send/receive run through the C primitives (unimq_sysv._fast).
ACCELERATED = _Channel is not None

#: The permission bits msgget() is asked for, by access (kernel-facts S3 / pitfall 11).
ROLE_BITS = {"r": 0o400, "w": 0o200, "rw": 0o600}
#: Largest uid/gid IPC_SET accepts: (uid_t)-1 = 2**32-1 means "unchanged" to the kernel.
ID_MAX = 2**32 - 2

_BusyError = sysv_ipc.BusyError
_SysvError = sysv_ipc.Error
_monotonic = time.monotonic
T = TypeVar("T")


def _signed(key: int) -> int:
    """key_t is a signed 32-bit int."""
    return key - 2**32 if key >= 2**31 else key


def _key_of(url: QueueURL) -> int:
    return sysv_key(url.target, url.options.get("proj"), url=str(url))


def _time(value: float) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _driver_call(op: Op, ctx: Context, call: Callable[[], T]) -> T:
    """A sysv_ipc control call, its failure as the table's unimq error."""
    try:
        return call()
    except (_SysvError, OSError) as exc:
        oserr = driver_oserror(op, exc)
        if oserr is None:
            raise
        raise sysv_error(op, oserr, ctx) from exc


def _int_setting(name: str, value: object, low: int, high: int) -> int:
    """An int argument of set(): bool and non-integers refused (TypeError), then range."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if not low <= number <= high:
        bounds = f"0..0o{high:o}" if name == "mode" else f"{low}..{high}"
        raise ValueError(f"{name} must be {bounds}, got {number!r}")
    return int(number)


def _positive_mtype(mtype: object) -> int:
    """The type receive_except() skips: an int 1..MTYPE_MAX (bool refused)."""
    if isinstance(mtype, bool):
        raise TypeError("mtype must be an int, not bool")
    try:
        number = operator.index(mtype)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"mtype must be an int, not {type(mtype).__name__}") from None
    if not 1 <= number <= MTYPE_MAX:
        raise ValueError(f"receive_except needs mtype 1..{MTYPE_MAX}, got {number}")
    return int(number)


def knows_msg_copy(release: str) -> bool:
    """Whether a kernel of this ``uname -r`` release knows the MSG_COPY flag
    (Linux 3.8+). Older kernels ignore the unknown bit and would *take* the
    message of type ``index``: peek refuses to run there."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return match is None or (int(match[1]), int(match[2])) >= (3, 8)


#: Checked once: the running kernel knows MSG_COPY (it may still lack it: ENOSYS).
_KNOWS_MSG_COPY = knows_msg_copy(os.uname().release)


def _peek_index(index: object) -> int:
    if isinstance(index, bool):
        raise TypeError("index must be an int, not bool")
    try:
        number = operator.index(index)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"index must be an int, not {type(index).__name__}") from None
    if not 0 <= number <= MTYPE_MAX:
        raise ValueError(f"index must be 0..{MTYPE_MAX}, got {number}")
    return int(number)


class SysVQueue(Queue):
    """A System V message queue: message types, capacity in bytes (msg_qbytes).

    On the C path every wait blocks in the kernel (msgrcv/msgsnd). The kernel
    has no timed wait for SysV queues, so a finite timeout arms a POSIX timer
    that interrupts the call at the deadline; :meth:`close` interrupts it the
    same way. Both use a thread-directed real-time signal with a no-op handler
    (``unimq_sysv._fast.WAKE_SIGNAL``: the first one from SIGRTMIN+8 that
    nobody else handles when unimq_sysv is imported). Where that signal cannot
    be used (none free, another handler installed on it later, or the waiting
    thread blocks it), and on the pure-Python path, waits poll with
    IPC_NOWAIT instead, starting at 50 us and doubling to a 1.5 ms cap: a
    message arriving mid-wait is then seen within about 1.5 ms, and an idle
    waiter costs about 1.5% of a core. ``timeout=0`` never waits.

    Removing the queue wakes blocked senders and receivers of every process
    with :class:`unimq.QueueRemoved`.
    """

    scheme: ClassVar[str] = "sysv"
    capabilities: ClassVar[Capability] = (
        Capability.MTYPE | Capability.INTERPROCESS | Capability.SET_ATTRIBUTES
    )
    options: ClassVar[dict[str, OptionParser]] = {"max_bytes": positive_int}
    address_keys: ClassVar[frozenset[str]] = frozenset({"proj"})
    attribute_options: ClassVar[frozenset[str]] = frozenset({"max_bytes"})
    _driver_errors: ClassVar[tuple[type[BaseException], ...]] = (sysv_ipc.Error,)

    def __init__(self, url: QueueURL, access: Access, mq: sysv_ipc.MessageQueue, key: int) -> None:
        self._mq = mq
        self._key = key
        self._id: int = mq.id
        self._qbytes: int | None = None
        self._ctx = Context(str(url), key, self._id, access)
        limit = msgmax()
        self._buffer = limit  # sysv_ipc's receive buffer and send check (pure path)
        super().__init__(url, access, self._size_limit(limit))
        self._channel: Channel | None = None
        if _Channel is not None:
            channel = _Channel(self._id, limit, Message)
            self._channel = channel
            self._install(
                channel.send_nowait, channel.receive_nowait, channel.send_wait, channel.receive_wait
            )
            self._install_batches(channel.send_many_nowait, channel.receive_many_nowait)
            #: receive_nowait retried for up to ns nanoseconds (unimq.aio, idle loop).
            self._receive_spin: Callable[[int, int], Message | None] = channel.receive_spin
            self._except_nowait: Callable[[int], Message | None] = channel.receive_except_nowait
            self._except_wait: Callable[[int, float | None], Message | None] = (
                channel.receive_except_wait
            )
            self._peek_at: Callable[[int], Message | None] = channel.peek
        else:
            self._wait_lock = threading.Condition()
            self._waiting: dict[int, int] = {}  # thread id -> waits in progress
            self._interrupted: set[int] = set()  # threads whose wait must end (aio cancel)
            self._pid = os.getpid()  # a forked child has none of these threads
            self._install(
                self._py_send_nowait,
                self._py_receive_nowait,
                self._py_send_wait,
                self._py_receive_wait,
            )
            self._except_nowait = self._py_except_nowait
            self._except_wait = self._py_except_wait
            self._peek_at = self._py_peek

    def _size_limit(self, limit: int) -> int:
        """min(kernel.msgmax, msg_qbytes), both read now (msg_qbytes where readable)."""
        try:
            self._qbytes = self._mq.max_size
        except _SysvError:
            self._qbytes = None  # no read permission: only kernel.msgmax is known
        return limit if self._qbytes is None else min(limit, self._qbytes)

    # ------------------------------------------------------------------ opening

    @classmethod
    def _check_url(cls, url: QueueURL) -> None:
        _key_of(url)

    @classmethod
    def _open_existing(cls, url: QueueURL, *, access: Access, options: dict[str, Any]) -> Self:
        key = _key_of(url)
        ctx = Context(str(url), key, access=access)
        mq = _driver_call(
            "open", ctx, lambda: sysv_ipc.MessageQueue(_signed(key), 0, ROLE_BITS[access], msgmax())
        )
        return cls(url, access, mq, key)

    @classmethod
    def _create(cls, url: QueueURL, *, mode: int, access: Access, options: dict[str, Any]) -> Self:
        key = _key_of(url)
        ctx = Context(str(url), key, access=access)
        mq = _driver_call(
            "create",
            ctx,
            lambda: sysv_ipc.MessageQueue(_signed(key), sysv_ipc.IPC_CREX, mode, msgmax()),
        )
        max_bytes: int | None = options.get("max_bytes")
        if max_bytes is not None:
            set_ctx = Context(str(url), key, mq.id, access, max_bytes)
            try:
                _driver_call("set", set_ctx, lambda: setattr(mq, "max_size", max_bytes))
            except BaseException:
                # Never leave a half-configured queue behind.
                with contextlib.suppress(UnimqError):
                    _driver_call("remove", set_ctx, mq.remove)
                raise
        return cls(url, access, mq, key)

    @classmethod
    def _remove_url(cls, url: QueueURL) -> None:
        key = _key_of(url)
        ctx = Context(str(url), key)
        mq = _driver_call("remove", ctx, lambda: sysv_ipc.MessageQueue(_signed(key), 0, 0))
        _driver_call("remove", Context(str(url), key, mq.id), mq.remove)

    @classmethod
    def _preflight(cls, url: QueueURL, options: dict[str, Any]) -> list[str]:
        """kernel.msgmnb against max_bytes (without CAP_SYS_RESOURCE) and
        kernel.msgmni against the queues that exist, read now."""
        notes: list[str] = []
        text = str(url)
        max_bytes: int | None = options.get("max_bytes")
        if max_bytes is not None:
            too_big = msgmnb_error(text, max_bytes)
            if too_big is not None:
                raise too_big
            notes.append(
                f"max_bytes={max_bytes} is within kernel.msgmnb "
                f"({read_sysctl('kernel.msgmnb')}) or CAP_SYS_RESOURCE lifts it"
            )
        msgmni = read_sysctl("kernel.msgmni")
        if msgmni is not None:
            rows = sysv_msg_entries()
            key = _key_of(url)
            if all(row.get("key") != key for row in rows) and len(rows) >= msgmni:
                raise LimitExceeded(
                    f"cannot create {text}: this IPC namespace already has kernel.msgmni "
                    f"({msgmni}) SysV queues; remove unused queues (unimq ls / unimq rm, or "
                    "ipcrm) or " + sysctl_hint("kernel.msgmni", msgmni + 1),
                    limit="kernel.msgmni",
                    errno=E.ENOSPC,
                    url=text,
                )
            notes.append(f"kernel.msgmni: {len(rows)} of {msgmni} SysV queues in use")
        return notes

    def _attributes(self) -> dict[str, int]:
        self._size_limit(msgmax())
        return {} if self._qbytes is None else {"max_bytes": self._qbytes}

    def _mismatch_hint(self) -> str:
        return ", or change max_bytes with SysVQueue.set(max_bytes=...)"

    # ------------------------------------------------------------------ errors and limits

    def _error(self, op: Op, exc: OSError) -> BaseException:
        if exc.errno == E.EBADF and self._closed:
            return self._closed_error()
        err = sysv_error(op, exc, self._ctx)
        if isinstance(err, MessageTooLarge):  # kernel.msgmax was lowered: learn it
            self._refresh_limit()
        return err

    def _refresh_limit(self) -> None:
        """Read kernel.msgmax and msg_qbytes now; on the pure-Python path also
        let sysv_ipc's own size check and receive buffer follow."""
        limit = msgmax()
        self._max_size = self._size_limit(limit)
        if self._channel is None and self._max_size > self._buffer:
            self._grow(limit)

    def _check_size(self, size: int) -> None:
        # kernel.msgmax and msg_qbytes may have been raised since: read them now.
        self._refresh_limit()
        if size > self._max_size:
            raise self._too_large(size)

    def _too_large(self, size: int) -> MessageTooLarge:
        limit = self._max_size
        if self._qbytes is not None and self._qbytes < msgmax():
            why = (
                f"the queue's msg_qbytes ({self._qbytes}): it could never fit and would block "
                "forever; raise it with set(max_bytes=...) (up to kernel.msgmnb)"
            )
        else:
            why = f"kernel.msgmax ({limit}); send less, or " + sysctl_hint("kernel.msgmax", size)
        return MessageTooLarge(
            f"message of {size} bytes for {self._url_text} exceeds {why}",
            size=size,
            limit=limit,
            errno=E.EINVAL,
            url=self._url_text,
        )

    # ------------------------------------------------------------------ pure-Python primitives
    #
    # sysv_ipc has no way to wake a blocked msgrcv from another thread without
    # process-wide signals, so every wait polls with IPC_NOWAIT and backoff
    # (also timeout=None) and checks ``closed`` on each wake-up; close() waits
    # until the waiters have left.

    def _grow(self, size: int) -> None:
        """A sysv_ipc object on the same msqid with a larger receive buffer/send limit."""
        mq = _driver_call(
            "receive", self._ctx, lambda: sysv_ipc.MessageQueue(_signed(self._key), 0, 0, size)
        )
        if mq.id != self._id:
            raise OSError(E.EIDRM, "the key now names another queue")
        self._mq = mq
        self._buffer = size

    def _py_send_nowait(self, data: bytes, mtype: int, priority: int) -> bool:
        try:
            self._mq.send(data, False, mtype)
        except _BusyError:
            return False
        except _SysvError as exc:
            oserr = driver_oserror("send", exc)
            if oserr is None:
                raise  # not one sysv_ipc stands for an errno: the core wraps it
            raise oserr from exc
        return True

    def _py_receive_nowait(self, mtype: int) -> Message | None:
        while True:
            try:
                data, got = self._mq.receive(False, mtype)
            except _BusyError:
                return None
            except OSError as exc:
                if exc.errno != E.E2BIG or self._buffer >= OPTION_MAX:
                    raise
                # A larger message (kernel.msgmax was raised): grow and take it.
                self._grow(min(max(msgmax(), self._buffer * 2), OPTION_MAX))
                continue
            except _SysvError as exc:
                oserr = driver_oserror("receive", exc)
                if oserr is None:
                    raise  # not one sysv_ipc stands for an errno: the core wraps it
                raise oserr from exc
            return new_message((data, got, 0))

    def _poll(self, attempt: Callable[[], T | None], timeout: float | None) -> T | None:
        me = threading.get_ident()
        cond = self._wait_lock
        with cond:
            if self._closed:
                return None
            self._waiting[me] = self._waiting.get(me, 0) + 1
        try:
            deadline = None if timeout is None else _monotonic() + timeout
            delay = Backoff.START
            while not self._closed:
                if me in self._interrupted:
                    return None  # interrupt_wait() for this thread: leave, doing nothing
                result = attempt()
                if result is not None:
                    return result
                if deadline is not None:
                    left = deadline - _monotonic()
                    if left <= 0:
                        return None
                    if left < delay:
                        delay = left
                time.sleep(delay)  # runs signal handlers; their exceptions propagate
                delay = min(delay * 2, Backoff.CAP)
            return None
        finally:
            with cond:
                self._interrupted.discard(me)
                if self._waiting[me] == 1:
                    del self._waiting[me]
                else:
                    self._waiting[me] -= 1
                cond.notify_all()

    def _interrupt_wait(self, thread_id: int) -> None:
        """End the wait of thread ``thread_id`` (``threading.get_ident()``) in a
        primitive of this handle, if it waits: the primitive returns False/None
        without the operation (unimq.aio's cancellation). Never blocks; a caller
        that must be sure repeats it until the wait has returned."""
        if self._channel is not None:
            self._channel.interrupt(thread_id)
            return
        with self._wait_lock:
            if thread_id in self._waiting:
                self._interrupted.add(thread_id)

    def _py_send_wait(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> bool:
        def attempt() -> bool | None:
            return True if self._py_send_nowait(data, mtype, priority) else None

        return self._poll(attempt, timeout) is not None

    def _py_receive_wait(self, mtype: int, timeout: float | None) -> Message | None:
        return self._poll(lambda: self._py_receive_nowait(mtype), timeout)

    def _py_extra(self, selector: int, flags: int) -> Message | None:
        """One msgrcv(selector, IPC_NOWAIT | flags) through ctypes (sysv_ipc has
        neither MSG_EXCEPT nor MSG_COPY); None for ENOMSG, OSError otherwise."""
        if self._closed:
            raise OSError(E.EBADF, os.strerror(E.EBADF))
        return msgrcv(self._id, selector, IPC_NOWAIT | flags, self._buffer, msgmax)

    def _py_except_nowait(self, mtype: int) -> Message | None:
        return self._py_extra(mtype, MSG_EXCEPT)

    def _py_except_wait(self, mtype: int, timeout: float | None) -> Message | None:
        return self._poll(lambda: self._py_extra(mtype, MSG_EXCEPT), timeout)

    def _py_peek(self, index: int) -> Message | None:
        return self._py_extra(index, MSG_COPY)

    # ------------------------------------------------------------------ state

    def _stat(self) -> QueueStat:
        mq = self._mq

        def read() -> QueueStat:
            qbytes = mq.max_size
            entry = sysv_msg_entry(msqid=self._id)
            return QueueStat(
                url=str(self._url),
                kind="sysv",
                key=self._key,
                id=self._id,
                messages=mq.current_messages,
                max_messages=qbytes,
                max_message_size=min(msgmax(), qbytes),
                bytes=None if entry is None else entry["cbytes"],
                max_bytes=qbytes,
                mode=mq.mode & 0o777,
                uid=mq.uid,
                gid=mq.gid,
                creator_uid=mq.cuid,
                creator_gid=mq.cgid,
                last_send_time=_time(mq.last_send_time),
                last_receive_time=_time(mq.last_receive_time),
                last_change_time=_time(mq.last_change_time),
                last_send_pid=mq.last_send_pid or None,
                last_receive_pid=mq.last_receive_pid or None,
            )

        return _driver_call("stat", self._ctx, read)

    def _close(self) -> None:
        # A msqid is a plain number: nothing to release in the kernel; wake the waiters.
        if self._channel is not None:
            self._channel.close()
            return
        if os.getpid() != self._pid:
            return  # forked: the waiting threads stayed in the parent
        me = threading.get_ident()
        with self._wait_lock:
            while any(t != me for t in self._waiting):
                self._wait_lock.wait()

    def _remove(self) -> None:
        _driver_call("remove", self._ctx, self._mq.remove)

    # ------------------------------------------------------------------ SysV extras

    @property
    def key(self) -> int:
        """The queue's key (unsigned 32-bit)."""
        return self._key

    @property
    def id(self) -> int:
        """The kernel's msqid."""
        return self._id

    def set(
        self,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        """Change the queue's attributes (msgctl IPC_SET).

        Every value is checked before any change: ``mode`` 0..0o777, ``uid`` and
        ``gid`` 0..2**32-2, ``max_bytes`` 1..2**31-1 (bool is refused).

        :raises TypeError: for a value that is not an int.
        :raises ValueError: for a value out of range.
        :raises PermissionDenied: unless the caller owns or created the queue.
        :raises LimitExceeded: for ``max_bytes`` above kernel.msgmnb without
            CAP_SYS_RESOURCE.
        """
        if self._closed:
            raise self._closed_error()
        changes: list[tuple[str, int]] = []
        if mode is not None:
            changes.append(("mode", _int_setting("mode", mode, 0, 0o777)))
        if uid is not None:
            changes.append(("uid", _int_setting("uid", uid, 0, ID_MAX)))
        if gid is not None:
            changes.append(("gid", _int_setting("gid", gid, 0, ID_MAX)))
        if max_bytes is not None:
            max_bytes = _int_setting("max_bytes", max_bytes, 1, OPTION_MAX)
            too_big = msgmnb_error(self._url_text, max_bytes)
            if too_big is not None:
                raise too_big
            changes.append(("max_size", max_bytes))
        ctx = Context(self._url_text, self._key, self._id, self._access, max_bytes)
        mq = self._mq
        for name, value in changes:
            _driver_call("set", ctx, functools.partial(setattr, mq, name, value))
        self._refresh_limit()

    def receive_except(self, mtype: int, *, timeout: float | None = None) -> Message:
        """Receive the first message whose type is not ``mtype`` (msgrcv MSG_EXCEPT).

        Among the other types the order is the queue's (FIFO). Timeouts, waiting
        and wake-up by :meth:`close` are those of :meth:`receive`.

        :param mtype: the type to skip, 1..2**31-1.
        :raises QueueEmpty: if no message of another type arrived in time.
        :raises QueueClosed: if the handle was closed (also while waiting).
        :raises QueueRemoved: if the queue was removed under this handle.
        """
        mtype = _positive_mtype(mtype)
        if self._access == "w":
            self._refuse()
        return self._receive_using(self._except_nowait, self._except_wait, mtype, timeout)

    def peek(self, index: int = 0) -> Message:
        """A copy of the message at position ``index`` (0: the next one
        :meth:`receive` would take), left in the queue (msgrcv MSG_COPY).

        Never waits; needs read permission. Other processes' sends and receives
        move messages between calls.

        :raises QueueEmpty: if the queue holds no message at ``index`` now.
        :raises UnsupportedOperation: if the kernel lacks MSG_COPY (built without
            CONFIG_CHECKPOINT_RESTORE).
        """
        if self._closed:
            raise self._closed_error()
        index = _peek_index(index)
        if self._access == "w":
            self._refuse()
        if not _KNOWS_MSG_COPY:
            raise UnsupportedOperation(
                f"cannot peek at {self._url_text}: this kernel ({os.uname().release}) is older "
                "than Linux 3.8 and has no msgrcv MSG_COPY; receive the messages and send them "
                "again, or use a kernel built with CONFIG_CHECKPOINT_RESTORE",
                url=self._url_text,
            )
        try:
            msg = self._peek_at(index)
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise self._peek_error(exc) from exc
        if msg is None:
            raise QueueEmpty(
                f"{self._url_text} holds no message at index {index} now",
                errno=E.ENOMSG,
                url=self._url_text,
            )
        return msg

    def browse(self) -> Iterator[Message]:
        """Copies of the queued messages in order (:meth:`peek` at 0, 1, 2, ...),
        none taken; stops at the first index with no message.

        :raises UnsupportedOperation: if the kernel lacks MSG_COPY.
        """
        index = 0
        while True:
            try:
                msg = self.peek(index)
            except QueueEmpty:
                return
            yield msg
            index += 1

    def _peek_error(self, exc: OSError) -> BaseException:
        err = exc.errno
        if not self._closed and (
            err == E.ENOSYS or (err == E.EINVAL and sysv_msg_entry(msqid=self._id) is not None)
        ):
            return UnsupportedOperation(
                f"cannot peek at {self._url_text}: this kernel has no msgrcv MSG_COPY "
                f"({os.strerror(err or 0)}; it needs CONFIG_CHECKPOINT_RESTORE); receive the "
                "messages and send them again, or use a kernel built with "
                "CONFIG_CHECKPOINT_RESTORE",
                errno=err,
                url=self._url_text,
            )
        return self._mapped("receive", exc)

    def __repr__(self) -> str:
        state = " [closed]" if self._closed else ""
        return (
            f"<unimq_sysv.SysVQueue {self._url_text!r} key={format_key(self._key)} "
            f"id={self._id}{state}>"
        )
