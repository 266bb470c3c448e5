"""``posix:///name``: POSIX message queues (mq_open) through posix_ipc."""

from __future__ import annotations

import contextlib
import errno as E
import math
import os
import select
import signal as _signal
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self

import posix_ipc

from unimq._accel import load_channel
from unimq._errors import (
    LimitExceeded,
    MessageTooLarge,
    NotificationBusy,
    QueueEmpty,
    QueueFull,
)
from unimq._limits import has_cap_sys_resource, read_sysctl
from unimq._message import Capability, Message, QueueStat, new_message
from unimq._names import posix_name
from unimq._options import Access, OptionParser, positive_int
from unimq._queue import Queue
from unimq._url import QueueURL
from unimq._waiting import Deadline
from unimq._warnings import AttributeMismatchWarning
from unimq_posix._errors import map_io_error, map_open_error, map_unlink_error

if TYPE_CHECKING:
    from unimq_posix._fast import Channel

__all__ = ["ACCELERATED", "PosixQueue"]

#: The C hot path, or None: then posix_ipc's own calls are used.
_Channel: type[Channel] | None = load_channel("unimq_posix._fast")

#: True when send/receive run through the C hot path (unimq_posix._fast).
ACCELERATED = _Channel is not None

#: Ceilings the kernel applies even with CAP_SYS_RESOURCE (HARD_MSGMAX, HARD_MSGSIZEMAX).
HARD_MSGMAX = 65536
HARD_MSGSIZEMAX = 16 * 1024 * 1024

_BusyError = posix_ipc.BusyError
_Existential = posix_ipc.ExistentialError
_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT


def _limit_check(url: str, max_messages: int, max_message_size: int) -> None:
    """Compare the attributes with the sysctls before mq_open, which would only say EINVAL."""
    privileged = has_cap_sys_resource()
    checks = (
        ("max_messages", max_messages, "fs.mqueue.msg_max", HARD_MSGMAX),
        ("max_message_size", max_message_size, "fs.mqueue.msgsize_max", HARD_MSGSIZEMAX),
    )
    for option, value, sysctl, hard in checks:
        if value > hard:
            raise LimitExceeded(
                f"{option}={value} for {url} exceeds the kernel's hard ceiling of {hard}, "
                "which no privilege lifts; ask for less",
                limit=sysctl,
                errno=E.EINVAL,
                url=url,
            )
        current = read_sysctl(sysctl)
        if not privileged and current is not None and value > current:
            raise LimitExceeded(
                f"{option}={value} for {url} exceeds {sysctl} ({current}), which binds "
                "processes without CAP_SYS_RESOURCE (root in a container included); ask for "
                f"{option} <= {current}, or raise it as root with 'sysctl -w {sysctl}={value}' "
                f"(or 'unimq limits set {sysctl} {value}')",
                limit=sysctl,
                errno=E.EINVAL,
                url=url,
            )


def _blocking_twin(
    name: str, mq: posix_ipc.MessageQueue, access: Access
) -> posix_ipc.MessageQueue | None:
    """Another descriptor of the queue ``mq`` holds, without O_NONBLOCK; None when
    the name no longer leads to that queue (unlinked or replaced since)."""
    try:
        twin = posix_ipc.MessageQueue(name, 0, read=access != "w", write=access != "r")
    except (posix_ipc.Error, OSError, ValueError):
        return None
    mine, theirs = os.fstat(mq.mqd), os.fstat(twin.mqd)
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        twin.close()
        return None
    return twin


class PosixQueue(Queue):
    """A POSIX message queue: priorities 0..32767, capacity in messages.

    Timed waits use ``poll()`` on the queue's descriptor (which is always
    non-blocking), so timeouts run on the monotonic clock and signal handlers
    run during a wait, their exceptions propagate, and the wait then resumes
    with the remaining time. With the C hot path, ``timeout=None`` waits sleep
    in ``mq_receive``/``mq_send`` on a second, blocking descriptor of the same
    queue (the kernel hands a message straight to a blocked receiver), with
    the same signal behaviour.

    ``remove()`` unlinks the *name* only: this and other open handles keep
    working until closed, and blocked waiters are not woken (kernel
    semantics). A forked child shares this handle's open file description.
    """

    scheme: ClassVar[str] = "posix"
    capabilities: ClassVar[Capability] = (
        Capability.PRIORITY
        | Capability.INTERPROCESS
        | Capability.NATIVE_TIMEOUT
        | Capability.NOTIFY
        | Capability.FILENO
    )
    options: ClassVar[dict[str, OptionParser]] = {
        "max_messages": positive_int,
        "max_message_size": positive_int,
    }

    def __init__(self, url: QueueURL, access: Access, mq: posix_ipc.MessageQueue) -> None:
        super().__init__(url, access, mq.max_message_size)
        self._mq = mq
        self._name = url.target
        self._fd = mq.mqd
        self._max_messages = mq.max_messages
        # Bound once: the hot path makes one attribute load and one call. The C
        # channel serves the directions this handle may use (and waits itself
        # when blocking); posix_ipc's methods refuse the others with
        # PermissionsError and never wait (the descriptor is non-blocking).
        send: Callable[[bytes, bool, int], None]
        receive: Callable[[bool], Message]
        # A second, blocking descriptor lets the C channel sleep in mq_receive/mq_send
        # itself for timeout=None: the kernel then hands a message straight to the
        # blocked call, which is faster than poll() and a second call.
        self._twin = None if _Channel is None else _blocking_twin(url.target, mq, access)
        channel = (
            None
            if _Channel is None
            else _Channel(
                mq.mqd,
                mq.max_message_size,
                _BusyError,
                _Existential,
                Message,
                -1 if self._twin is None else self._twin.mqd,
            )
        )
        if channel is not None and access != "r":
            send = channel.send
        else:

            def send(data: bytes, block: bool, priority: int, _send: Any = mq.send) -> None:
                _send(data, None, priority)

        if channel is not None and access != "w":
            receive = channel.receive
        else:

            def receive(block: bool, _receive: Any = mq.receive) -> Message:
                data, priority = _receive()
                return new_message((data, 1, priority))

        self._mq_send = send
        self._mq_receive = receive

    # ------------------------------------------------------------------ opening

    @classmethod
    def _check_url(cls, url: QueueURL) -> None:
        posix_name(url.target, url=str(url))

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
        read, write = access != "w", access != "r"
        max_messages: int = options.get("max_messages") or (
            read_sysctl("fs.mqueue.msg_default") or 10
        )
        max_message_size: int = options.get("max_message_size") or (
            read_sysctl("fs.mqueue.msgsize_default") or 8192
        )

        def attempt(flags: int) -> posix_ipc.MessageQueue:
            try:
                return posix_ipc.MessageQueue(
                    url.target,
                    flags | posix_ipc.O_NONBLOCK,
                    mode,
                    max_messages,
                    max_message_size,
                    read=read,
                    write=write,
                )
            except (posix_ipc.Error, OSError, ValueError) as exc:
                raise map_open_error(
                    exc,
                    text,
                    create=bool(flags & posix_ipc.O_CREAT),
                    max_messages=max_messages,
                    max_message_size=max_message_size,
                ) from exc

        if not create:
            return cls(url, access, attempt(0))
        _limit_check(text, max_messages, max_message_size)
        while True:
            try:
                mq = attempt(posix_ipc.O_CREX)
            except FileExistsError:
                if exclusive:
                    raise
            else:
                # Apply the mode exactly, as SysV does, instead of filtered by the umask.
                os.fchmod(mq.mqd, mode)
                return cls(url, access, mq)
            try:
                mq = attempt(0)
            except FileNotFoundError:
                continue  # removed between the two calls: try to create it again
            _warn_mismatch(text, mq, options)
            return cls(url, access, mq)

    @classmethod
    def _remove_url(cls, url: QueueURL, *, missing_ok: bool) -> None:
        try:
            posix_ipc.unlink_message_queue(url.target)
        except posix_ipc.Error as exc:
            err = map_unlink_error(exc, str(url))
            if missing_ok and isinstance(err, FileNotFoundError):
                return
            raise err from exc

    # ------------------------------------------------------------------ send / receive

    def _send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None:
        try:
            self._mq_send(data, timeout is None, priority)
            return
        except _BusyError:
            if timeout == 0:
                raise QueueFull(
                    f"{self._url_text} is full", errno=E.EAGAIN, url=self._url_text
                ) from None
        except (posix_ipc.Error, ValueError) as exc:
            raise map_io_error(exc, self._url_text, "send", self._access) from exc
        deadline = Deadline(timeout)
        while self._wait(_POLLOUT, deadline):
            try:
                self._mq_send(data, False, priority)
                return
            except _BusyError:
                continue  # another sender filled the slot first
            except (posix_ipc.Error, ValueError) as exc:
                raise map_io_error(exc, self._url_text, "send", self._access) from exc
        raise QueueFull(
            f"{self._url_text} stayed full for {timeout} s", errno=E.ETIMEDOUT, url=self._url_text
        )

    def _receive(self, mtype: int, timeout: float | None) -> Message:
        try:
            return self._mq_receive(timeout is None)
        except _BusyError:
            if timeout == 0:
                raise QueueEmpty(
                    f"no message in {self._url_text}", errno=E.EAGAIN, url=self._url_text
                ) from None
        except posix_ipc.Error as exc:
            raise map_io_error(exc, self._url_text, "receive", self._access) from exc
        deadline = Deadline(timeout)
        while self._wait(_POLLIN, deadline):
            try:
                return self._mq_receive(False)
            except _BusyError:
                continue  # another receiver took it first
            except posix_ipc.Error as exc:
                raise map_io_error(exc, self._url_text, "receive", self._access) from exc
        raise QueueEmpty(
            f"no message in {self._url_text} within {timeout} s",
            errno=E.ETIMEDOUT,
            url=self._url_text,
        )

    def _wait(self, event: int, deadline: Deadline) -> bool:
        """Wait until the descriptor is ready for ``event``; False when the deadline passed.

        poll() retries after signals itself (PEP 475): handlers run, their
        exceptions propagate, and the remaining time is recomputed.
        """
        left = deadline.remaining()
        if left == 0.0:
            return False
        poller = select.poll()
        poller.register(self._fd, event)
        poller.poll(None if left is None else math.ceil(left * 1000))
        return True

    # ------------------------------------------------------------------ state

    def _stat(self) -> QueueStat:
        st = os.fstat(self._fd)
        qsize: int | None = None
        if self._access != "w":
            try:
                line = os.pread(self._fd, 128, 0).decode("ascii", "replace")
                qsize = int(line.split("QSIZE:", 1)[1].split()[0])
            except (OSError, IndexError, ValueError):
                qsize = None
        return QueueStat(
            url=str(self._url),
            kind="posix",
            name=self._name,
            messages=self._mq.current_messages,
            max_messages=self._max_messages,
            max_message_size=self._max_size,
            bytes=qsize,
            mode=st.st_mode & 0o7777,
            uid=st.st_uid,
            gid=st.st_gid,
        )

    def _close(self) -> None:
        for mq in (self._mq, self._twin):
            if mq is not None:
                with contextlib.suppress(posix_ipc.Error):  # already closed: idempotent
                    mq.close()

    def _remove(self, missing_ok: bool) -> None:
        self._remove_url(self._url, missing_ok=missing_ok)

    def _too_large(self, size: int) -> MessageTooLarge:
        return MessageTooLarge(
            f"message of {size} bytes is larger than the queue's max_message_size "
            f"(mq_msgsize = {self._max_size}) of {self._url_text}; send less, or remove the "
            "queue and create it with a larger max_message_size (up to fs.mqueue.msgsize_max)",
            size=size,
            limit=self._max_size,
            errno=E.EMSGSIZE,
            url=self._url_text,
        )

    # ------------------------------------------------------------------ POSIX extras

    @property
    def name(self) -> str:
        """The queue's name, "/" included."""
        return self._name

    def fileno(self) -> int:
        """The queue's descriptor, for select/poll/epoll (readable: a message is waiting)."""
        if self._closed:
            raise self._closed_error()
        return self._fd

    def notify(self, signal: int | None = None, callback: Callable[[], None] | None = None) -> None:
        """Ask to be told once when the queue goes from empty to non-empty.

        :param signal: deliver this signal number to this process.
        :param callback: call this (no arguments) in a new thread.
        With neither, cancel this process's registration. Calling it again
        replaces this process's own registration. The registration is
        one-shot, and the kernel skips it while a receiver is blocked.

        :raises NotificationBusy: if another process holds the registration.
        :raises ValueError: for both arguments at once or an invalid signal.
        """
        if self._closed:
            raise self._closed_error()
        arg: Any
        if signal is not None and callback is not None:
            raise ValueError("notify() takes a signal or a callback, not both")
        if callback is not None:
            arg = (lambda _param: callback(), None)
        elif signal is not None:
            if not 1 <= signal < _signal.NSIG:
                raise ValueError(f"signal must be 1..{_signal.NSIG - 1}, got {signal}")
            arg = signal
        else:
            arg = None
        try:
            self._mq.request_notification(arg)
        except posix_ipc.BusyError as exc:
            raise NotificationBusy(
                f"another process holds the notification of {self._url_text}; only one "
                "registration exists per queue, and it ends after one notification or when "
                "that process cancels it (notify() with no arguments) or closes the queue",
                errno=E.EBUSY,
                url=self._url_text,
            ) from exc
        except posix_ipc.Error as exc:
            raise map_io_error(exc, self._url_text, "receive", self._access) from exc


def _warn_mismatch(url: str, mq: posix_ipc.MessageQueue, options: dict[str, Any]) -> None:
    actual = {"max_messages": mq.max_messages, "max_message_size": mq.max_message_size}
    diffs = [
        f"{k}={v} asked but {actual[k]} in place" for k, v in options.items() if actual[k] != v
    ]
    if diffs:
        warnings.warn(
            f"{url} already exists with other attributes ({', '.join(diffs)}); the existing "
            "ones apply (mq_open ignores mq_attr for an existing queue). Remove the queue and "
            "create it again to change them",
            AttributeMismatchWarning,
            stacklevel=5,
        )
