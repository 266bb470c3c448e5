"""The Queue interface every backend implements.

The front class holds everything users see once: argument checks, timeout
normalisation, the ``queue.Queue`` spellings, closing, pickling, ``repr`` and
``ResourceWarning``. A backend subclasses it and implements a handful of
primitives (``_open``, ``_send``, ``_receive``, ``_stat``, ``_close``,
``_remove`` and ``_remove_url``) that take already-checked arguments.
"""

from __future__ import annotations

import abc
import contextlib
import operator
import warnings
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, overload

from unimq._errors import MessageTooLarge, QueueClosed, QueueEmpty, UnsupportedOperation
from unimq._message import Capability, Message, QueueStat
from unimq._options import Access, OptionParser, check_timeout
from unimq._url import QueueURL

if TYPE_CHECKING:
    from pydantic import BaseModel

    from unimq._codecs import Codec
    from unimq._typed import TypedQueue

M = TypeVar("M")

__all__ = ["MTYPE_MAX", "PRIORITY_MAX", "Queue"]

#: Largest SysV message type unimq accepts (the kernel takes a long; C peers use int).
MTYPE_MAX = 2**31 - 1
#: Largest POSIX priority on Linux (MQ_PRIO_MAX - 1).
PRIORITY_MAX = 32767

_MTYPE = Capability.MTYPE
_PRIORITY = Capability.PRIORITY


class Queue(abc.ABC):
    """A handle on one message queue. Obtain it from :func:`unimq.open`.

    Handles are thread-safe for send and receive. ``close()`` releases the
    handle; ``remove()`` destroys the queue itself. A ``with`` block closes the
    handle and never removes the queue.
    """

    #: The URL scheme this backend serves.
    scheme: ClassVar[str]
    #: What this backend can do; see :class:`unimq.Capability`.
    capabilities: ClassVar[Capability] = Capability.NONE
    #: Backend options accepted by :func:`unimq.open` (``access`` is common to all).
    options: ClassVar[Mapping[str, OptionParser]] = {}
    #: URL query keys that are part of the queue's address (kept in ``url``).
    address_keys: ClassVar[frozenset[str]] = frozenset()

    # Class-level default so that __del__ of a half-built handle stays quiet.
    _closed: bool = True
    _url: QueueURL
    _url_text: str
    _access: Access
    #: Largest payload ``send`` accepts, checked before any system call.
    _max_size: int

    def __init__(self, url: QueueURL, access: Access, max_message_size: int) -> None:
        self._url = url
        self._access = access
        self._max_size = max_message_size
        text = str(url)
        if access != "rw":
            text += ("&" if url.query else "?") + f"access={access}"
        self._url_text = text
        self._closed = False

    # ------------------------------------------------------------------ backend contract

    @classmethod
    @abc.abstractmethod
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
        """Open (or create) the queue at ``url``; options are already checked.

        :raises QueueNotFound: if it does not exist and ``create`` is false.
        :raises QueueExists: if ``exclusive`` and it exists.
        :raises PermissionDenied: if its mode forbids ``access``.
        :raises LimitExceeded: if a system limit stops creation.
        """

    @classmethod
    @abc.abstractmethod
    def _remove_url(cls, url: QueueURL, *, missing_ok: bool) -> None:
        """Remove the queue at ``url`` without holding a handle.

        :raises QueueNotFound: if it does not exist and not ``missing_ok``.
        :raises PermissionDenied: if the caller may not remove it.
        """

    @classmethod  # noqa: B027 (an optional hook, empty by default)
    def _check_url(cls, url: QueueURL) -> None:
        """Validate the URL's target (name, key) before any system call."""

    @abc.abstractmethod
    def _send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None:
        """Enqueue ``data``; ``timeout`` is None, 0 or > 0 and already checked.

        :raises QueueFull: if it could not enqueue in time.
        :raises QueueRemoved: if the queue was removed under this handle.
        """

    @abc.abstractmethod
    def _receive(self, mtype: int, timeout: float | None) -> Message:
        """Dequeue one message; ``mtype`` is 0 on backends without types.

        :raises QueueEmpty: if no (matching) message arrived in time.
        :raises QueueRemoved: if the queue was removed under this handle.
        """

    @abc.abstractmethod
    def _stat(self) -> QueueStat:
        """The queue's current state."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the handle's resources (called once)."""

    @abc.abstractmethod
    def _remove(self, missing_ok: bool) -> None:
        """Destroy the queue this handle refers to."""

    # ------------------------------------------------------------------ identity

    @property
    def url(self) -> str:
        """The URL that reopens this queue (``access`` included when not ``rw``)."""
        return self._url_text

    @property
    def access(self) -> Access:
        """``"rw"``, ``"r"`` (receive only) or ``"w"`` (send only)."""
        return self._access

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def max_message_size(self) -> int:
        """The largest payload :meth:`send` accepts on this queue."""
        return self._max_size

    def __repr__(self) -> str:
        cls = type(self)
        state = " [closed]" if self._closed else ""
        return f"<{cls.__module__}.{cls.__qualname__} {self._url_text!r}{state}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # A handle pickles as its URL and reopens on the other side.
        from unimq._open import _reopen

        return (_reopen, (self._url_text,))

    # ------------------------------------------------------------------ send / receive

    def send(
        self,
        data: bytes | bytearray | memoryview,
        *,
        mtype: int = 1,
        priority: int = 0,
        timeout: float | None = None,
    ) -> None:
        """Send one message.

        :param data: the payload (bytes, bytearray or memoryview).
        :param mtype: SysV/memory message type, 1..2**31-1.
        :param priority: POSIX/memory priority, 0..32767; higher is received first.
        :param timeout: None waits while the queue is full, 0 never waits,
            a positive number waits at most that many seconds.
        :raises QueueFull: if the message could not be enqueued in time.
        :raises MessageTooLarge: if ``data`` is larger than the queue allows.
        :raises UnsupportedOperation: for ``mtype`` on POSIX or ``priority`` on SysV.
        :raises QueueClosed: if the handle was closed.
        :raises QueueRemoved: if the queue was removed under this handle.
        """
        if self._closed:
            raise self._closed_error()
        if type(data) is not bytes:
            data = _as_bytes(data)
        if mtype != 1 or priority != 0:
            mtype, priority = self._check_send_tags(mtype, priority)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if len(data) > self._max_size:
            raise self._too_large(len(data))
        self._send(data, mtype, priority, timeout)

    def receive(self, *, mtype: int = 0, timeout: float | None = None) -> Message:
        """Receive one message.

        :param mtype: SysV/memory selection: 0 takes the first message, ``n > 0``
            the first of type n, ``n < 0`` the first of the lowest type <= abs(n).
        :param timeout: None waits for a message, 0 never waits, a positive
            number waits at most that many seconds.
        :raises QueueEmpty: if no (matching) message arrived in time.
        :raises UnsupportedOperation: for a non-zero ``mtype`` on POSIX.
        :raises QueueClosed: if the handle was closed.
        :raises QueueRemoved: if the queue was removed under this handle.
        """
        if self._closed:
            raise self._closed_error()
        if mtype != 0:
            mtype = self._check_receive_mtype(mtype)
        if timeout is not None:
            timeout = check_timeout(timeout)
        return self._receive(mtype, timeout)

    def stat(self) -> QueueStat:
        """The queue's current state (one model for every kind)."""
        if self._closed:
            raise self._closed_error()
        return self._stat()

    def close(self) -> None:
        """Release this handle. Idempotent; the queue itself stays."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def remove(self, *, missing_ok: bool = False) -> None:
        """Destroy the queue (SysV IPC_RMID, POSIX mq_unlink); the handle stays open.

        On SysV, blocked senders and receivers fail with :class:`QueueRemoved`.
        On POSIX only the name goes: open handles keep working until closed.

        :raises QueueNotFound: if it is already gone and not ``missing_ok``.
        :raises PermissionDenied: if the caller may not remove it.
        """
        if self._closed:
            raise self._closed_error()
        self._remove(missing_ok)

    # ------------------------------------------------------------------ queue.Queue spellings

    def put(
        self, item: bytes | bytearray | memoryview, block: bool = True, timeout: float | None = None
    ) -> None:
        """Put ``item`` into the queue, like :meth:`queue.Queue.put`.

        If ``block`` is true and ``timeout`` is None (the default), block if
        necessary until room is available. If ``timeout`` is a non-negative
        number, block at most ``timeout`` seconds and raise :class:`QueueFull`
        (a :class:`queue.Full`) if no room was available within that time.
        Otherwise (``block`` is false), put the item if room is immediately
        available, else raise :class:`QueueFull` (``timeout`` is ignored then).
        """
        self.send(item, timeout=_block_timeout(block, timeout))

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Remove and return an item, like :meth:`queue.Queue.get`.

        If ``block`` is true and ``timeout`` is None (the default), block if
        necessary until an item is available. If ``timeout`` is a non-negative
        number, block at most ``timeout`` seconds and raise :class:`QueueEmpty`
        (a :class:`queue.Empty`) if no item was available within that time.
        Otherwise (``block`` is false), return an item if one is immediately
        available, else raise :class:`QueueEmpty` (``timeout`` is ignored then).
        """
        return self.receive(timeout=_block_timeout(block, timeout)).data

    def put_nowait(self, item: bytes | bytearray | memoryview) -> None:
        """Put an item without blocking; :class:`QueueFull` if there is no room."""
        self.put(item, block=False)

    def get_nowait(self) -> bytes:
        """Get an item without blocking; :class:`QueueEmpty` if there is none."""
        return self.get(block=False)

    def qsize(self) -> int:
        """Messages queued now (approximate: other processes change it at any time)."""
        return self.stat().messages

    def empty(self) -> bool:
        """Whether the queue is empty now (approximate)."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Whether a zero-length message would not fit now (approximate)."""
        st = self.stat()
        if st.max_messages is not None and st.messages >= st.max_messages:
            return True
        return st.max_bytes is not None and st.bytes is not None and st.bytes >= st.max_bytes

    def drain(self, *, mtype: int = 0) -> Iterator[Message]:
        """Yield the messages queued now, without waiting; stops when empty."""
        while True:
            try:
                yield self.receive(mtype=mtype, timeout=0)
            except QueueEmpty:
                return

    # ------------------------------------------------------------------ typed layer

    @overload
    def typed(
        self,
        model: type[M],
        /,
        *,
        codec: str | Codec[Any] = ...,
        mtype: int | None = ...,
        dead_letter: str | Queue | None = ...,
    ) -> TypedQueue[M]: ...

    @overload
    def typed(
        self,
        model: Mapping[int, type[BaseModel]] | Any,
        /,
        *,
        codec: str | Codec[Any] = ...,
        mtype: int | None = ...,
        dead_letter: str | Queue | None = ...,
    ) -> TypedQueue[Any]: ...

    def typed(
        self,
        model: Any,
        /,
        *,
        codec: str | Codec[Any] = "json",
        mtype: int | None = None,
        dead_letter: str | Queue | None = None,
    ) -> TypedQueue[Any]:
        """A typed view of this queue carrying pydantic values.

        :param model: a pydantic model (or any type pydantic validates, such as a
            discriminated union), or ``{mtype: Model}`` on SysV/memory queues.
        :param codec: ``"json"`` (the value's own JSON), ``"cstruct"`` (a C
            struct layout, see :mod:`unimq.cstruct`) or a codec instance.
        :param mtype: with one model, the mtype its messages carry and select.
        :param dead_letter: a queue (or URL) that receives undecodable messages.
        :raises UnsupportedOperation: for a mapping on a queue without mtypes.
        """
        from unimq._typed import TypedQueue

        return TypedQueue(self, model, codec=codec, mtype=mtype, dead_letter=dead_letter)

    # ------------------------------------------------------------------ resources

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._closed:
            warnings.warn(
                f"unclosed queue handle {self!r}; call close() or use 'with'",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
            with contextlib.suppress(Exception):  # nothing to report to at GC time
                self.close()

    # ------------------------------------------------------------------ helpers for backends

    def _closed_error(self) -> QueueClosed:
        return QueueClosed(
            f"operation on closed queue handle {self._url_text!r}", url=self._url_text
        )

    def _too_large(self, size: int) -> MessageTooLarge:
        """The error for a payload over ``_max_size``; backends refine the wording."""
        return MessageTooLarge(
            f"message of {size} bytes is larger than the {self._max_size} bytes "
            f"{self._url_text!r} accepts; send less or create the queue with a larger "
            "max_message_size",
            size=size,
            limit=self._max_size,
            url=self._url_text,
        )

    def _check_send_tags(self, mtype: int, priority: int) -> tuple[int, int]:
        caps = self.capabilities
        if mtype != 1:
            if not caps & _MTYPE:
                raise UnsupportedOperation(
                    f"{self.scheme}:// queues have no message types (mtype={mtype!r}); "
                    "message types are a sysv:// (and memory://) feature"
                    + ("; use priority= here" if caps & _PRIORITY else ""),
                    url=self._url_text,
                )
            mtype = _index("mtype", mtype)
            if not 1 <= mtype <= MTYPE_MAX:
                raise ValueError(f"mtype must be 1..{MTYPE_MAX} to send, got {mtype}")
        if priority != 0:
            if not caps & _PRIORITY:
                raise UnsupportedOperation(
                    f"{self.scheme}:// queues have no priorities (priority={priority!r}); "
                    "priorities are a posix:// (and memory://) feature"
                    + ("; use mtype= here" if caps & _MTYPE else ""),
                    url=self._url_text,
                )
            priority = _index("priority", priority)
            if not 0 <= priority <= PRIORITY_MAX:
                raise ValueError(f"priority must be 0..{PRIORITY_MAX}, got {priority}")
        return mtype, priority

    def _check_receive_mtype(self, mtype: int) -> int:
        if not self.capabilities & _MTYPE:
            raise UnsupportedOperation(
                f"{self.scheme}:// queues cannot select by message type (mtype={mtype!r}); "
                "selection by type is a sysv:// (and memory://) feature",
                url=self._url_text,
            )
        mtype = _index("mtype", mtype)
        if not -MTYPE_MAX <= mtype <= MTYPE_MAX:
            raise ValueError(f"mtype selection must be within +-{MTYPE_MAX}, got {mtype}")
        return mtype


def _index(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None


def _as_bytes(data: object) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, bytes):  # a bytes subclass
        return bytes(data)
    hint = "; encode it first, or use q.typed(Model)" if isinstance(data, str) else ""
    raise TypeError(f"message data must be bytes-like, not {type(data).__name__}{hint}")


def _block_timeout(block: bool, timeout: float | None) -> float | None:
    if not block:
        return 0.0
    if timeout is None:
        return None
    if not timeout >= 0:
        raise ValueError("'timeout' must be a non-negative number")
    return timeout
