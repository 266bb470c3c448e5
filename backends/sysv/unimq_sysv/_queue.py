"""``sysv://KEY`` and ``sysv:///path?proj=N``: System V message queues through sysv_ipc."""

from __future__ import annotations

import errno as E
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import sysv_ipc

from unimq._accel import load_channel
from unimq._errors import LimitExceeded, MessageTooLarge, PermissionDenied, QueueEmpty, QueueFull
from unimq._limits import has_cap_sys_resource, msgmax, read_sysctl, sysctl_hint
from unimq._message import Capability, Message, QueueStat, new_message
from unimq._names import format_key, sysv_key
from unimq._options import Access, OptionParser, positive_int
from unimq._queue import Queue
from unimq._url import QueueURL
from unimq._waiting import Backoff, Deadline
from unimq._warnings import AttributeMismatchWarning
from unimq_sysv._errors import Op, is_eintr, map_error, proc_entry

if TYPE_CHECKING:
    from unimq_sysv._fast import Channel

__all__ = ["ACCELERATED", "SysVQueue"]

#: The C hot path, or None: then sysv_ipc's own calls are used.
_Channel: type[Channel] | None = load_channel("unimq_sysv._fast")

#: True when send/receive run through the C hot path (unimq_sysv._fast).
ACCELERATED = _Channel is not None

#: The permission bits msgget() is asked for, by access (kernel-facts S3 / pitfall 11).
ROLE_BITS = {"r": 0o400, "w": 0o200, "rw": 0o600}

_BusyError = sysv_ipc.BusyError
_SysvError = sysv_ipc.Error


def _signed(key: int) -> int:
    """key_t is a signed 32-bit int."""
    return key - 2**32 if key >= 2**31 else key


def _key_of(url: QueueURL) -> int:
    return sysv_key(url.target, url.options.get("proj"), url=str(url))


def _time(value: float) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


T = TypeVar("T")


def _poll(attempt: Callable[[], T], timeout: float, start: float, cap: float) -> T | None:
    """The pure-Python twin of the C channel's wait_send/wait_receive: call the
    non-blocking ``attempt`` until it stops raising BusyError, sleeping with
    backoff between tries; None once ``timeout`` seconds have passed."""
    deadline = Deadline(timeout)
    backoff = Backoff(start, cap)
    while True:
        try:
            return attempt()
        except _BusyError:
            pass
        if deadline.expired():
            return None
        backoff.sleep(deadline)  # runs signal handlers; their exceptions propagate


class SysVQueue(Queue):
    """A System V message queue: message types, capacity in bytes (msg_qbytes).

    The kernel has no timed wait for SysV queues: a finite timeout polls
    with IPC_NOWAIT, starting at 50 us and doubling to a 1.5 ms cap, so a
    message arriving mid-wait is seen within about 1.5 ms (0.75 ms on
    average), and an idle waiter costs about 1.5% of a core. ``timeout=None``
    blocks in the kernel; ``timeout=0`` never waits.

    Removing the queue wakes blocked senders and receivers of every process
    with :class:`unimq.QueueRemoved`.
    """

    scheme: ClassVar[str] = "sysv"
    capabilities: ClassVar[Capability] = (
        Capability.MTYPE | Capability.INTERPROCESS | Capability.SET_ATTRIBUTES
    )
    options: ClassVar[dict[str, OptionParser]] = {"max_bytes": positive_int}
    address_keys: ClassVar[frozenset[str]] = frozenset({"proj"})

    def __init__(self, url: QueueURL, access: Access, mq: sysv_ipc.MessageQueue, key: int) -> None:
        self._mq = mq
        self._key = key
        self._id = mq.id
        self._qbytes: int | None = None
        super().__init__(url, access, self._size_limit())
        # The kernel checks permissions per call, not per handle; a handle opened
        # for one direction refuses the other itself, at no cost on the hot path.
        send: Callable[[bytes, bool, int], None] = mq.send
        receive: Callable[[bool, int], Message]
        # Timed waits (SysV has no timed msgsnd/msgrcv): IPC_NOWAIT attempts with
        # backoff sleeps, in C without the GIL, or in Python on the fallback path.
        wait_send: Callable[[bytes, int, float, float, float], bool]
        wait_receive: Callable[[int, float, float, float], Message | None]
        if _Channel is not None:
            channel = _Channel(
                mq.id,
                msgmax(),  # the receive buffer, as for sysv_ipc: never E2BIG
                sysv_ipc.BusyError,
                sysv_ipc.ExistentialError,
                sysv_ipc.PermissionsError,
                sysv_ipc.Error,
                Message,
            )
            send, receive = channel.send, channel.receive
            wait_send, wait_receive = channel.wait_send, channel.wait_receive
        else:

            def receive(block: bool, mtype: int, _receive: Any = mq.receive) -> Message:
                data, got = _receive(block, mtype)
                return new_message((data, got, 0))

            def wait_send(
                data: bytes, mtype: int, timeout: float, start: float, cap: float
            ) -> bool:
                def attempt() -> bool:
                    send(data, False, mtype)
                    return True

                return _poll(attempt, timeout, start, cap) is not None

            def wait_receive(
                mtype: int, timeout: float, start: float, cap: float
            ) -> Message | None:
                return _poll(lambda: receive(False, mtype), timeout, start, cap)

        self._mq_send = send if access != "r" else self._refuse
        self._mq_receive = receive if access != "w" else self._refuse
        self._wait_send = wait_send if access != "r" else self._refuse
        self._wait_receive = wait_receive if access != "w" else self._refuse

    def _refuse(self, *args: object) -> Any:
        op = "send" if self._access == "r" else "receive"
        raise PermissionDenied(
            f"cannot {op} on {self._url_text}: this handle was opened with "
            f"access={self._access!r}; open another handle with access='rw'",
            url=self._url_text,
        )

    def _size_limit(self) -> int:
        try:
            self._qbytes = self._mq.max_size
        except _SysvError:
            self._qbytes = None  # no read permission: only kernel.msgmax is known
        limit = msgmax()
        return limit if self._qbytes is None else min(limit, self._qbytes)

    # ------------------------------------------------------------------ opening

    @classmethod
    def _check_url(cls, url: QueueURL) -> None:
        _key_of(url)

    @classmethod
    def _open(
        cls,
        url: QueueURL,
        *,
        create: bool,
        exclusive: bool,
        mode: int,
        access: Access,
        options: dict[str, Any],
    ) -> Self:
        text = str(url)
        key = _key_of(url)
        max_bytes: int | None = options.get("max_bytes")
        if create and max_bytes is not None:
            _check_qbytes(text, max_bytes)
        buffer = msgmax()  # receive buffer = largest possible message: never E2BIG

        def attempt(flags: int, bits: int, op: Op) -> sysv_ipc.MessageQueue:
            try:
                return sysv_ipc.MessageQueue(_signed(key), flags, bits, buffer)
            except (_SysvError, OSError) as exc:
                raise map_error(exc, text, op, key=key, access=access) from exc

        if not create:
            return cls(url, access, attempt(0, ROLE_BITS[access], "open"), key)
        while True:
            try:
                mq = attempt(sysv_ipc.IPC_CREX, mode, "create")
            except FileExistsError:
                if exclusive:
                    raise
            else:
                if max_bytes is not None:
                    try:
                        mq.max_size = max_bytes
                    except (_SysvError, OSError) as exc:
                        mq.remove()  # do not leave a half-configured queue behind
                        raise map_error(exc, text, "set", key=key) from exc
                return cls(url, access, mq, key)
            try:
                mq = attempt(0, ROLE_BITS[access], "open")
            except FileNotFoundError:
                continue  # removed between the two calls: create it again
            handle = cls(url, access, mq, key)
            if max_bytes is not None and handle._qbytes not in (None, max_bytes):
                warnings.warn(
                    f"{text} already exists with max_bytes={handle._qbytes}, not the "
                    f"{max_bytes} asked for; the existing value applies. Change it with "
                    "SysVQueue.set(max_bytes=...) or remove and recreate the queue",
                    AttributeMismatchWarning,
                    stacklevel=4,
                )
            return handle

    @classmethod
    def _remove_url(cls, url: QueueURL, *, missing_ok: bool) -> None:
        text = str(url)
        key = _key_of(url)
        try:
            mq = sysv_ipc.MessageQueue(_signed(key), 0, 0)
            mq.remove()
        except (_SysvError, OSError) as exc:
            err = map_error(exc, text, "remove", key=key)
            if missing_ok and isinstance(err, FileNotFoundError):
                return
            raise err from exc

    # ------------------------------------------------------------------ send / receive

    def _send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None:
        try:
            self._mq_send(data, timeout is None, mtype)
            return
        except _BusyError:
            if timeout == 0:
                raise QueueFull(
                    f"{self._url_text} is full", errno=E.EAGAIN, url=self._url_text
                ) from None
        except (_SysvError, OSError) as exc:
            if not is_eintr(exc):
                raise self._map(exc, "send") from exc
        try:
            if timeout is None:
                while True:  # the backward jump runs pending signal handlers (PEP 475 style)
                    try:
                        self._mq_send(data, True, mtype)
                        return
                    except (_SysvError, OSError) as exc:
                        if not is_eintr(exc):
                            raise
            if self._wait_send(data, mtype, timeout, Backoff.START, Backoff.CAP):
                return
        except (_SysvError, OSError) as exc:
            raise self._map(exc, "send") from exc
        raise QueueFull(
            f"{self._url_text} stayed full for {timeout} s", errno=E.EAGAIN, url=self._url_text
        )

    def _receive(self, mtype: int, timeout: float | None) -> Message:
        try:
            return self._mq_receive(timeout is None, mtype)
        except _BusyError:
            if timeout == 0:
                raise QueueEmpty(
                    f"no matching message in {self._url_text}", errno=E.ENOMSG, url=self._url_text
                ) from None
        except (_SysvError, OSError) as exc:
            if not is_eintr(exc):
                raise self._map(exc, "receive") from exc
        try:
            if timeout is None:
                while True:  # the backward jump runs pending signal handlers (PEP 475 style)
                    try:
                        return self._mq_receive(True, mtype)
                    except (_SysvError, OSError) as exc:
                        if not is_eintr(exc):
                            raise
            msg = self._wait_receive(mtype, timeout, Backoff.START, Backoff.CAP)
        except (_SysvError, OSError) as exc:
            raise self._map(exc, "receive") from exc
        if msg is None:
            raise QueueEmpty(
                f"no matching message in {self._url_text} within {timeout} s",
                errno=E.ENOMSG,
                url=self._url_text,
            )
        return msg

    def _map(self, exc: BaseException, op: Op) -> BaseException:
        return map_error(
            exc, self._url_text, op, msqid=self._id, key=self._key, access=self._access
        )

    # ------------------------------------------------------------------ state

    def _stat(self) -> QueueStat:
        mq = self._mq
        try:
            qbytes = mq.max_size
            entry = proc_entry(self._id)
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
        except (_SysvError, OSError) as exc:
            raise self._map(exc, "stat") from exc

    def _close(self) -> None:
        # A msqid is a plain number: there is nothing to release in the kernel.
        pass

    def _remove(self, missing_ok: bool) -> None:
        try:
            self._mq.remove()
        except (_SysvError, OSError) as exc:
            err = self._map(exc, "remove")
            if missing_ok and isinstance(err, FileNotFoundError):
                return
            raise err from exc

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

        :raises PermissionDenied: unless the caller owns or created the queue.
        :raises LimitExceeded: for ``max_bytes`` above kernel.msgmnb without
            CAP_SYS_RESOURCE.
        :raises ValueError: for values out of range.
        """
        if self._closed:
            raise self._closed_error()
        if mode is not None and not 0 <= mode <= 0o777:
            raise ValueError(f"mode must be permission bits 0..0o777, got {mode!r}")
        for name, value in (("uid", uid), ("gid", gid), ("max_bytes", max_bytes)):
            if value is not None and value < (1 if name == "max_bytes" else 0):
                raise ValueError(f"{name} out of range: {value}")
        if max_bytes is not None:
            _check_qbytes(self._url_text, max_bytes)
        try:
            if mode is not None:
                self._mq.mode = mode
            if uid is not None:
                self._mq.uid = uid
            if gid is not None:
                self._mq.gid = gid
            if max_bytes is not None:
                self._mq.max_size = max_bytes
        except (_SysvError, OSError) as exc:
            raise self._map(exc, "set") from exc
        self._max_size = self._size_limit()

    def __repr__(self) -> str:
        state = " [closed]" if self._closed else ""
        return (
            f"<unimq_sysv.SysVQueue {self._url_text!r} key={format_key(self._key)} "
            f"id={self._id}{state}>"
        )


def _check_qbytes(url: str, max_bytes: int) -> None:
    """Raising msg_qbytes above kernel.msgmnb needs CAP_SYS_RESOURCE (else EPERM, S22)."""
    msgmnb = read_sysctl("kernel.msgmnb")
    if msgmnb is not None and max_bytes > msgmnb and not has_cap_sys_resource():
        raise LimitExceeded(
            f"max_bytes={max_bytes} for {url} exceeds kernel.msgmnb ({msgmnb}), which binds "
            f"processes without CAP_SYS_RESOURCE; ask for max_bytes <= {msgmnb}, or "
            + sysctl_hint("kernel.msgmnb", max_bytes),
            limit="kernel.msgmnb",
            errno=E.EPERM,
            url=url,
        )
