"""``posix:///name``: POSIX message queues (mq_open).

The handle's channel owns its descriptor: the C one (``unimq_posix._fast``)
calls mq_* itself; the fallback (:mod:`unimq_posix._channel`) calls
posix_ipc. Both have the same interface, lifetime and errno convention.
"""

from __future__ import annotations

import errno as E
import os
import signal as _signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import posix_ipc

from unimq._accel import load_channel
from unimq._errors import MessageTooLarge
from unimq._message import Capability, Message, QueueStat
from unimq._names import posix_name
from unimq._options import Access, OptionParser, positive_int
from unimq._queue import Op, Queue
from unimq._url import QueueURL
from unimq_posix._channel import PyChannel
from unimq_posix._channel import unlink as _py_unlink
from unimq_posix._errors import Context, posix_error
from unimq_posix._limits import HARD_MSGMAX, HARD_MSGSIZEMAX, preflight, requested_attributes

if TYPE_CHECKING:
    from unimq_posix._fast import Channel as _CChannel

__all__ = ["ACCELERATED", "HARD_MSGMAX", "HARD_MSGSIZEMAX", "PosixQueue", "open_channel"]


class ChannelLike(Protocol):
    """What both channels provide (see unimq_posix._fast.Channel)."""

    @property
    def max_messages(self) -> int: ...
    @property
    def max_message_size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def send_nowait(self, data: bytes, mtype: int, priority: int, /) -> bool: ...
    def receive_nowait(self, mtype: int, /) -> Message | None: ...
    def send_wait(
        self, data: bytes, mtype: int, priority: int, timeout: float | None, /
    ) -> bool: ...
    def receive_wait(self, mtype: int, timeout: float | None, /) -> Message | None: ...
    def send_many_nowait(self, batch: list[tuple[bytes, int, int]], start: int, /) -> int: ...
    def receive_many_nowait(self, mtype: int, limit: int, /) -> list[Message]: ...
    def close(self) -> None: ...
    def fileno(self) -> int: ...
    def stat(self) -> tuple[int, int, int, int, int]: ...
    def notify(self, arg: object, /) -> None: ...


_CType: type[_CChannel] | None = load_channel("unimq_posix._fast")

#: True when the handles run on the C channel (unimq_posix._fast).
ACCELERATED = _CType is not None

_Channel: Callable[..., ChannelLike] = PyChannel if _CType is None else _CType
_unlink: Callable[[str], None]
if _CType is None:
    _unlink = _py_unlink
else:
    from unimq_posix._fast import unlink as _c_unlink

    _unlink = _c_unlink

_ACCESS_FLAGS = {"rw": os.O_RDWR, "r": os.O_RDONLY, "w": os.O_WRONLY}


def open_channel(
    name: str, oflag: int, mode: int = 0o600, max_messages: int = 0, max_message_size: int = 0
) -> ChannelLike:
    """A channel on the queue ``name``; OSError with the errno on failure."""
    return _Channel(name, oflag, mode, max_messages, max_message_size, Message)


class PosixQueue(Queue):
    """A POSIX message queue: priorities 0..32767, capacity in messages.

    Descriptors, with the C channel: a handle holds one descriptor (the
    queue's, non-blocking) from open to close, and two from its first send or
    receive without a time limit that has to wait: such waits sleep in
    ``mq_receive``/``mq_send`` on a second, blocking descriptor of the same
    queue (the kernel hands a message straight to a blocked receiver), opened
    then, and only while the name still leads to the handle's queue. Timed
    waits ``poll()`` the queue descriptor on the monotonic clock. ``close()``
    wakes these waiters with a thread-directed real-time signal (the first
    free one from ``SIGRTMIN+8``; ``unimq_posix._fast.WAKE_SIGNAL``, never one
    with someone else's handler). Where no such signal is free, or the waiting
    thread blocks it, waits ``poll()`` the queue descriptor and an eventfd
    that ``close()`` writes (created by the first such wait; a forked child
    makes its own). The pure-Python fallback always waits that way. One
    thread per direction per handle polls (the others wait for it, so a
    message wakes one thread); all waits run without the GIL; signal handlers
    run during a wait, their exceptions propagate, and the wait resumes.
    ``close()`` wakes every waiter of the handle with :class:`QueueClosed`,
    and the descriptors are closed once the last of them has left, so a
    waiter never touches a queue that reuses the freed numbers.

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
    attribute_options: ClassVar[frozenset[str]] = frozenset(options)
    _driver_errors: ClassVar[tuple[type[BaseException], ...]] = (posix_ipc.Error,)

    def __init__(self, url: QueueURL, access: Access, channel: ChannelLike) -> None:
        super().__init__(url, access, channel.max_message_size)
        self._channel = channel
        self._name = url.target
        self._max_messages = channel.max_messages
        # The channel's methods are the primitives: one call into C on the hot path.
        self._install(
            channel.send_nowait, channel.receive_nowait, channel.send_wait, channel.receive_wait
        )
        self._install_batches(channel.send_many_nowait, channel.receive_many_nowait)
        spin = getattr(channel, "receive_spin", None)  # the C channel's only
        if spin is not None:
            #: receive_nowait retried for up to ns nanoseconds (unimq.aio, idle loop).
            self._receive_spin: Callable[[int, int], Message | None] = spin

    # ------------------------------------------------------------------ opening

    @classmethod
    def _check_url(cls, url: QueueURL) -> None:
        posix_name(url.target, url=str(url))

    @classmethod
    def _open_existing(cls, url: QueueURL, *, access: Access, options: dict[str, Any]) -> Self:
        try:
            channel = open_channel(url.target, _ACCESS_FLAGS[access])
        except OSError as exc:
            raise posix_error("open", exc, Context(str(url), access)) from exc
        return cls(url, access, channel)

    @classmethod
    def _create(cls, url: QueueURL, *, mode: int, access: Access, options: dict[str, Any]) -> Self:
        attributes = requested_attributes(options)
        try:
            channel = open_channel(
                url.target, _ACCESS_FLAGS[access] | os.O_CREAT | os.O_EXCL, mode, *attributes
            )
        except OSError as exc:
            raise posix_error("create", exc, Context(str(url), access, attributes)) from exc
        return cls(url, access, channel)

    @classmethod
    def _remove_url(cls, url: QueueURL) -> None:
        try:
            _unlink(url.target)
        except OSError as exc:
            raise posix_error("remove", exc, Context(str(url))) from exc

    @classmethod
    def _preflight(cls, url: QueueURL, options: dict[str, Any]) -> list[str]:
        return preflight(str(url), url.target, options)

    def _attributes(self) -> dict[str, int]:
        return {"max_messages": self._max_messages, "max_message_size": self._max_size}

    def _mismatch_hint(self) -> str:
        return " (mq_open ignores the attributes of an existing queue)"

    def _error(self, op: Op, exc: OSError) -> BaseException:
        return posix_error(
            op, exc, Context(self._url_text, self._access, max_message_size=self._max_size)
        )

    # ------------------------------------------------------------------ state

    def _stat(self) -> QueueStat:
        current, mode, uid, gid, qsize = self._channel.stat()
        return QueueStat(
            url=str(self._url),
            kind="posix",
            name=self._name,
            messages=current,
            max_messages=self._max_messages,
            max_message_size=self._max_size,
            bytes=None if qsize < 0 else qsize,
            mode=mode & 0o7777,
            uid=uid,
            gid=gid,
        )

    def _close(self) -> None:
        self._channel.close()

    def _remove(self) -> None:
        self._remove_url(self._url)

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
        """The queue's descriptor, for select/poll/epoll (readable: a message is waiting).

        Valid until :meth:`close`; after that the number may belong to anything.
        """
        if self._closed:
            raise self._closed_error()
        return self._channel.fileno()

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
        if signal is not None and callback is not None:
            raise ValueError("notify() takes a signal or a callback, not both")
        arg: object = None
        if callback is not None:
            if not callable(callback):
                raise TypeError(f"callback must be callable, not {type(callback).__name__}")
            arg = callback
        elif signal is not None:
            if isinstance(signal, bool) or not isinstance(signal, int):
                raise TypeError(f"signal must be an int, not {type(signal).__name__}")
            if not 1 <= signal < _signal.NSIG:
                raise ValueError(f"signal must be 1..{_signal.NSIG - 1}, got {signal}")
            arg = signal
        try:
            self._channel.notify(arg)
        except OSError as exc:
            raise self._mapped("notify", exc) from exc
