"""The Queue interface every backend implements.

The front class holds everything users see, once: argument checks, access
checks, deadlines and the wait loop, the timeout errors, ``QueueClosed``,
the open-or-create loop, the attribute-mismatch warning, ``missing_ok``,
the ``queue.Queue`` spellings, pickling, ``repr`` and ``ResourceWarning``.
A backend subclasses it and provides primitives (non-blocking attempts, one
wait-until-ready-and-try per direction, its errno table); see "backend
contract" below.
"""

from __future__ import annotations

import abc
import contextlib
import errno as E
import logging
import operator
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar, overload

from unimq._errors import (
    InvalidURL,
    LimitExceeded,
    MessageTooLarge,
    PermissionDenied,
    QueueClosed,
    QueueEmpty,
    QueueExists,
    QueueFull,
    QueueNotFound,
    UnimqError,
    UnsupportedOperation,
)
from unimq._message import Capability, Message, QueueStat
from unimq._options import Access, OptionParser, check_timeout
from unimq._url import QueueURL
from unimq._warnings import AttributeMismatchWarning, warn_user

if TYPE_CHECKING:
    from pydantic import BaseModel

    from unimq._overflow import Overflow
    from unimq.typed._codecs import Codec
    from unimq.typed._queue import TypedQueue

M = TypeVar("M")

__all__ = ["MTYPE_MAX", "PRIORITY_MAX", "WAIT_CHUNK", "Op", "Queue"]

#: The operations an errno table distinguishes.
Op = Literal["open", "create", "send", "receive", "stat", "set", "remove", "notify"]

#: The longest single wait handed to a backend primitive (seconds): longer
#: timeouts are waited in chunks, so no kernel clock or poll() argument ever
#: overflows, whatever timeout the caller gives.
WAIT_CHUNK = 3600.0
_CREATE_RACE_TRIES = 100
_monotonic = time.monotonic
_log = logging.getLogger("unimq.queue")

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
    #: Called once by close(), after ``closed`` became true and before
    #: ``_close()`` (unimq.temporary removes its queue here with ``_remove()``);
    #: see unimq/_temporary.py.
    _before_close: Callable[[Queue], None] | None = None
    #: A network backend's default expiry (seconds) for unimq.temporary(server URL),
    #: passed to open() as the ``ttl`` option; None: its temporary queues do not expire.
    temporary_ttl: ClassVar[float | None] = None
    #: The on_full policy wrapping the send primitives (unimq/_overflow.py), if any.
    _overflow: Overflow | None = None

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
    #
    # The core owns the operation skeleton: argument checks, access checks,
    # deadlines (monotonic), the retry loop, the QueueFull/QueueEmpty errors,
    # QueueClosed after close(), the open-or-create race, the attribute-mismatch
    # warning and ``missing_ok``. A backend provides primitives:
    #
    # - per handle, installed with :meth:`_install` (instance attributes, so the
    #   hot path is one call, often straight into C):
    #     send_nowait(data, mtype, priority) -> bool      one non-blocking attempt
    #     receive_nowait(mtype) -> Message | None          one non-blocking attempt
    #     send_wait(data, mtype, priority, timeout) -> bool
    #     receive_wait(mtype, timeout) -> Message | None
    #   The *_wait primitives wait at most ``timeout`` seconds (None: no limit,
    #   otherwise 0 < timeout <= WAIT_CHUNK) and make the attempt; they return
    #   False/None when the time ran out, when close() woke them, or spuriously
    #   (the core loops with the remaining time). They run Python signal
    #   handlers while waiting (handlers' exceptions propagate) and then resume.
    #   Every primitive raises ``OSError`` with the real errno for failures; the
    #   core passes it through :meth:`_error` (the backend's one errno table).
    #   After close() no primitive touches the handle's descriptors: they raise
    #   OSError(EBADF) or return False/None, and the core reports QueueClosed.
    # - per class: _open_existing, _create, _remove_url, _preflight, and per
    #   handle _attributes, _stat, _close, _remove.

    #: Exceptions of a wrapped module that mean "the driver failed"; the core
    #: wraps any that escapes a primitive in a UnimqError (``__cause__`` set).
    _driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: ``"module:function"`` of the backend's own async opener, for
    #: :func:`unimq.aio.open` (a backend whose calls are network round trips
    #: cannot be served by the event-loop-side attempts on this handle). It is
    #: awaited as ``opener(url, create=, exclusive=, mode=, access=, options=)``
    #: and returns an :class:`unimq.aio.AsyncQueue`. None: unimq.aio drives the
    #: sync handle's non-blocking primitives.
    async_opener: ClassVar[str | None] = None
    #: Options that are attributes of the queue, compared after opening an
    #: existing queue (AttributeMismatchWarning when they differ).
    attribute_options: ClassVar[frozenset[str]] = frozenset()

    _send_nowait: Callable[[bytes, int, int], bool]
    _receive_nowait: Callable[[int], Message | None]
    _send_wait: Callable[[bytes, int, int, float | None], bool]
    _receive_wait: Callable[[int, float | None], Message | None]

    def _install(
        self,
        send_nowait: Callable[[bytes, int, int], bool],
        receive_nowait: Callable[[int], Message | None],
        send_wait: Callable[[bytes, int, int, float | None], bool],
        receive_wait: Callable[[int, float | None], Message | None],
    ) -> None:
        """Bind the handle's primitives; directions ``access`` forbids refuse here."""
        if self._access == "r":
            send_nowait = send_wait = self._refuse
        if self._access == "w":
            receive_nowait = receive_wait = self._refuse
        self._send_nowait = send_nowait
        self._receive_nowait = receive_nowait
        self._send_wait = send_wait
        self._receive_wait = receive_wait

    def _install_batches(
        self,
        send_many_nowait: Callable[[list[tuple[bytes, int, int]], int], int],
        receive_many_nowait: Callable[[int, int], list[Message]],
    ) -> None:
        """Bind one-call batch primitives (see :meth:`_send_many_nowait`); a
        direction ``access`` forbids keeps the default, which refuses."""
        if self._access != "r":
            self._send_many_nowait = send_many_nowait  # type: ignore[method-assign, assignment]
        if self._access != "w":
            self._receive_many_nowait = receive_many_nowait  # type: ignore[method-assign, assignment]

    def _refuse(self, *args: object) -> Any:
        op = "send" if self._access == "r" else "receive"
        raise PermissionDenied(
            f"cannot {op} on {self._url_text}: this handle was opened with "
            f"access={self._access!r}; open another handle with access='rw'",
            errno=E.EBADF,
            url=self._url_text,
        )

    @classmethod
    @abc.abstractmethod
    def _open_existing(cls, url: QueueURL, *, access: Access, options: dict[str, Any]) -> Self:
        """Open the queue at ``url``; options are already checked.

        :raises QueueNotFound: if it does not exist.
        :raises PermissionDenied: if its mode forbids ``access``.
        """

    @classmethod
    @abc.abstractmethod
    def _create(cls, url: QueueURL, *, mode: int, access: Access, options: dict[str, Any]) -> Self:
        """Create the queue at ``url`` exclusively, with exactly ``mode``.

        :raises QueueExists: if it exists (the core then opens it, or re-raises
            for ``exclusive=True``).
        :raises LimitExceeded: if a system limit stops creation.
        """

    @classmethod
    @abc.abstractmethod
    def _remove_url(cls, url: QueueURL) -> None:
        """Remove the queue at ``url`` without holding a handle.

        :raises QueueNotFound: if it does not exist (the core applies ``missing_ok``).
        :raises PermissionDenied: if the caller may not remove it.
        """

    @classmethod
    def _preflight(cls, url: QueueURL, options: dict[str, Any]) -> list[str]:
        """Check the limits that could stop creating this queue, against their
        current values (never cached). Used by open(create=True) and by
        :func:`unimq.system.check`, so the two cannot disagree.

        :return: notes on what was checked (for ``check``).
        :raises LimitExceeded: naming the limit that stops it.
        """
        return []

    @classmethod
    def _temporary_url(cls, server: str, name: str) -> str | QueueURL:
        """The URL of queue ``name`` on the server ``server`` names (a URL
        without a queue), for :func:`unimq.temporary` on a network backend.

        :raises InvalidURL: if this backend takes no server URL, or ``server``
            already names a queue.
        """
        raise InvalidURL(
            f"{cls.scheme}:// queues are not made on a server: give unimq.temporary() "
            f"the kind {cls.scheme!r}, not a URL"
        )

    @classmethod  # noqa: B027 (an optional hook, empty by default)
    def _check_url(cls, url: QueueURL) -> None:
        """Validate the URL's target (name, key) before any system call."""

    def _attributes(self) -> dict[str, int]:
        """The queue's actual values of :attr:`attribute_options`."""
        return {}

    def _error(self, op: Op, exc: OSError) -> BaseException:
        """Map an ``OSError`` from a primitive (real errno) to a unimq error.

        The backend's one (operation, errno) table; the default keeps the errno.
        """
        return UnimqError(
            f"{op} on {self._url_text} failed: {exc.strerror or exc}",
            errno=exc.errno,
            url=self._url_text,
        )

    @abc.abstractmethod
    def _stat(self) -> QueueStat:
        """The queue's current state."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the handle (called once, after ``closed`` became true).

        Must wake every thread waiting in a primitive of this handle (they
        return False/None) and must not release a descriptor while a primitive
        may still use it.
        """

    @abc.abstractmethod
    def _remove(self) -> None:
        """Destroy the queue this handle refers to.

        :raises QueueNotFound: if it is already gone (the core applies ``missing_ok``).
        """

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
        :raises QueueClosed: if the handle was closed (also while waiting).
        :raises QueueRemoved: if the queue was removed under this handle.
        """
        if self._closed:
            raise self._closed_error()
        if type(data) is not bytes:
            data = _as_bytes(data)
        # Checked on every call, defaults included: True == 1 and 1.0 == 1.
        if type(mtype) is not int or type(priority) is not int or mtype != 1 or priority != 0:
            mtype, priority = self._check_send_tags(mtype, priority)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if len(data) > self._max_size:
            self._check_size(len(data))
        try:
            if self._send_nowait(data, mtype, priority):
                return
            if timeout == 0:
                raise self._full_error(None)
            self._send_waiting(data, mtype, priority, timeout)
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise self._mapped("send", exc) from exc
        except self._driver_errors as exc:
            raise self._unexpected("send", exc) from exc

    def _send_waiting(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> None:
        deadline = None if timeout is None else _monotonic() + timeout
        wait = self._send_wait
        while True:
            if self._closed:
                raise self._closed_error()
            chunk = _next_wait(deadline)
            if chunk == 0.0:
                raise self._full_error(timeout)
            if wait(data, mtype, priority, chunk):
                return

    def receive(self, *, mtype: int = 0, timeout: float | None = None) -> Message:
        """Receive one message.

        :param mtype: SysV/memory selection: 0 takes the first message, ``n > 0``
            the first of type n, ``n < 0`` the first of the lowest type <= abs(n).
        :param timeout: None waits for a message, 0 never waits, a positive
            number waits at most that many seconds.
        :raises QueueEmpty: if no (matching) message arrived in time.
        :raises UnsupportedOperation: for a non-zero ``mtype`` on POSIX.
        :raises QueueClosed: if the handle was closed (also while waiting).
        :raises QueueRemoved: if the queue was removed under this handle.
        """
        if self._closed:
            raise self._closed_error()
        if type(mtype) is not int or mtype != 0:
            mtype = self._check_receive_mtype(mtype)
        if timeout is not None:
            timeout = check_timeout(timeout)
        try:
            msg = self._receive_nowait(mtype)
            if msg is not None:
                return msg
            if timeout == 0:
                raise self._empty_error(None)
            return self._receive_waiting(mtype, timeout)
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise self._mapped("receive", exc) from exc
        except self._driver_errors as exc:
            raise self._unexpected("receive", exc) from exc

    def _receive_using(
        self,
        nowait: Callable[[int], Message | None],
        wait: Callable[[int, float | None], Message | None],
        selector: int,
        timeout: float | None,
    ) -> Message:
        """receive()'s skeleton over other primitives of the same contract (a
        backend's extra selections, e.g. SysV MSG_EXCEPT): the timeout check,
        QueueEmpty, QueueClosed and the error mapping. ``selector`` is checked
        by the caller."""
        if self._closed:
            raise self._closed_error()
        if timeout is not None:
            timeout = check_timeout(timeout)
        try:
            msg = nowait(selector)
            if msg is not None:
                return msg
            if timeout == 0:
                raise self._empty_error(None)
            return self._receive_waiting(selector, timeout, wait)
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise self._mapped("receive", exc) from exc
        except self._driver_errors as exc:
            raise self._unexpected("receive", exc) from exc

    def _receive_waiting(
        self,
        mtype: int,
        timeout: float | None,
        wait: Callable[[int, float | None], Message | None] | None = None,
    ) -> Message:
        deadline = None if timeout is None else _monotonic() + timeout
        if wait is None:
            wait = self._receive_wait
        while True:
            if self._closed:
                raise self._closed_error()
            chunk = _next_wait(deadline)
            if chunk == 0.0:
                raise self._empty_error(timeout)
            msg = wait(mtype, chunk)
            if msg is not None:
                return msg

    # ------------------------------------------------------------------ batches

    def send_many(
        self,
        items: Iterable[bytes | bytearray | memoryview | Message],
        *,
        timeout: float | None = None,
    ) -> int:
        """Send several messages in order; return how many were sent (all of them).

        A :class:`Message` item carries its own ``mtype`` and ``priority``;
        bytes-like items use the defaults. Every item is checked before the
        first is sent, so a bad item sends nothing. ``timeout`` is one deadline
        for the whole batch: if it passes after k messages, :class:`QueueFull`
        is raised with ``.sent == k``. Any error raised after the batch started
        carries ``.sent`` as well, so how many went is never ambiguous.

        :raises QueueFull: if the batch could not be enqueued in time (``.sent``).
        :raises MessageTooLarge: for an item larger than the queue allows (nothing sent).
        :raises TypeError: for an item that is not bytes-like or a Message (nothing sent).
        """
        if self._closed:
            raise self._closed_error()
        if timeout is not None:
            timeout = check_timeout(timeout)
        batch: list[tuple[bytes, int, int]] = []
        add, check, limit = batch.append, self._batch_item, self._max_size
        for item in items:
            # Plain bytes within the limit (the common case) without a call per item.
            add((item, 1, 0) if type(item) is bytes and len(item) <= limit else check(item))
        sent = 0
        try:
            sent = self._send_many_nowait(batch, 0)
            if sent == len(batch):
                return sent
            deadline = None if timeout is None else _monotonic() + timeout
            while sent < len(batch):
                if self._closed:
                    raise self._closed_error()
                if timeout == 0:
                    raise self._full_error(None)
                chunk = _next_wait(deadline)
                if chunk == 0.0:
                    raise self._full_error(timeout)
                data, mtype, priority = batch[sent]
                if self._send_wait(data, mtype, priority, chunk):
                    sent += 1
                    sent += self._send_many_nowait(batch, sent)
            return sent
        except UnimqError as exc:
            exc.sent = sent + batch_sent(exc)
            raise
        except OSError as exc:
            mapped = self._mapped("send", exc)
            if isinstance(mapped, UnimqError):
                mapped.sent = sent + batch_sent(exc)
            raise mapped from exc
        except self._driver_errors as exc:
            unexpected = self._unexpected("send", exc)
            unexpected.sent = sent + batch_sent(exc)
            raise unexpected from exc

    def receive_many(
        self, max_messages: int, *, mtype: int = 0, timeout: float | None = None
    ) -> list[Message]:
        """Wait (per ``timeout``) for the first message, then take whatever is
        already queued, up to ``max_messages``, without waiting again.

        :return: 1..max_messages messages, in the order single receives would
            have returned them.
        :raises QueueEmpty: if no (matching) message arrived in time.
        """
        if type(max_messages) is not int:
            max_messages = _index("max_messages", max_messages)
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        if max_messages > sys.maxsize:
            max_messages = sys.maxsize  # no queue holds more; the C channels take a Py_ssize_t
        if self._closed:
            raise self._closed_error()
        if type(mtype) is not int or mtype != 0:
            mtype = self._check_receive_mtype(mtype)
        if timeout is not None:
            timeout = check_timeout(timeout)
        # One call when messages are queued; else wait for the first, then take the rest.
        got = self._receive_many(mtype, max_messages)
        if got:
            return got
        first = self.receive(mtype=mtype, timeout=timeout)
        if max_messages == 1:
            return [first]
        try:
            rest = self._receive_many(mtype, max_messages - 1)
        except (OSError, UnimqError):
            # The first message is taken: return it; whatever stopped the batch
            # (removal, close) is raised by the next call, nothing is lost.
            return [first]
        rest.insert(0, first)
        return rest

    def _receive_many(self, mtype: int, limit: int) -> list[Message]:
        try:
            return self._receive_many_nowait(mtype, limit)
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise self._mapped("receive", exc) from exc
        except self._driver_errors as exc:
            raise self._unexpected("receive", exc) from exc

    def _batch_item(self, item: object) -> tuple[bytes, int, int]:
        """One checked ``(data, mtype, priority)`` of a send_many batch."""
        if type(item) is bytes:
            data, mtype, priority = item, 1, 0
        elif isinstance(item, Message):
            data, mtype, priority = item
            if type(data) is not bytes:
                data = _as_bytes(data)
            mtype, priority = self._check_send_tags(mtype, priority)
        else:
            data, mtype, priority = _as_bytes(item), 1, 0
        if len(data) > self._max_size:
            self._check_size(len(data))
        return data, mtype, priority

    def _send_many_nowait(self, batch: list[tuple[bytes, int, int]], start: int) -> int:
        """Send ``batch[start:]`` without waiting, in order; return how many went.

        A full queue ends the batch early (the count tells). An error after k
        messages went is raised with that count attached (see
        :func:`batch_sent`), so the caller never loses it. Backends may
        override it with one call per batch (the C channels do).
        """
        send = self._send_nowait
        n = start
        end = len(batch)
        try:
            while n < end:
                data, mtype, priority = batch[n]
                if not send(data, mtype, priority):
                    break
                n += 1
        except Exception as exc:
            exc.unimq_sent = n - start  # type: ignore[attr-defined]
            raise
        return n - start

    def _receive_many_nowait(self, mtype: int, limit: int) -> list[Message]:
        """Take up to ``limit`` queued messages without waiting (maybe none).

        An error after k messages were taken returns those k (the error
        recurs on the next call): a message taken off the queue is never lost.
        """
        receive = self._receive_nowait
        out: list[Message] = []
        try:
            while len(out) < limit:
                msg = receive(mtype)
                if msg is None:
                    break
                out.append(msg)
        except Exception:
            if not out:
                raise
        return out

    def stat(self) -> QueueStat:
        """The queue's current state (one model for every kind)."""
        if self._closed:
            raise self._closed_error()
        try:
            st = self._stat()
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise self._mapped("stat", exc) from exc
        except self._driver_errors as exc:
            raise self._unexpected("stat", exc) from exc
        overflow = self._overflow
        return st if overflow is None else st.model_copy(update={"dropped": overflow.dropped})

    def close(self) -> None:
        """Release this handle. Idempotent; the queue itself stays.

        Threads waiting in :meth:`send` or :meth:`receive` on this handle wake
        up with :class:`QueueClosed` and take or enqueue nothing afterwards.
        """
        if self._closed:
            return
        self._closed = True
        hook, self._before_close = self._before_close, None
        try:
            if hook is not None:
                hook(self)
        finally:
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
        try:
            self._remove()
        except QueueNotFound:
            if not missing_ok:
                raise
        except OSError as exc:
            if isinstance(exc, UnimqError):
                raise
            raise self._mapped("remove", exc) from exc
        except self._driver_errors as exc:
            raise self._unexpected("remove", exc) from exc
        else:
            _log.info("removed %s", self._url_text)

    # ------------------------------------------------------------------ opening (skeleton)

    @classmethod
    def _open_queue(
        cls,
        url: QueueURL,
        *,
        create: bool,
        exclusive: bool,
        mode: int,
        access: Access,
        options: dict[str, Any],
    ) -> Self:
        """Open, or create, the queue: the one open-or-create loop for every backend."""
        if not create:
            handle = cls._open_existing(url, access=access, options=options)
            handle._warn_mismatch(options)
            return handle
        try:
            cls._preflight(url, options)
        except LimitExceeded as limit:
            # The limits bind creation only: an existing queue opens as it is
            # (with the mismatch warning when its attributes differ).
            if exclusive:
                raise
            try:
                handle = cls._open_existing(url, access=access, options=options)
            except QueueNotFound:
                raise limit from None
            handle._warn_mismatch(options)
            return handle
        for _ in range(_CREATE_RACE_TRIES):
            try:
                handle = cls._create(url, mode=mode, access=access, options=options)
            except QueueExists:
                if exclusive:
                    raise
            else:
                _log.info("created %s (mode 0o%03o)", handle.url, mode)
                return handle
            try:
                handle = cls._open_existing(url, access=access, options=options)
            except QueueNotFound:
                continue  # removed between the two calls: create it again
            handle._warn_mismatch(options)
            return handle
        raise UnimqError(
            f"{url} was created and removed by other processes {_CREATE_RACE_TRIES} times "
            "while this process tried to open it; try again",
            url=str(url),
        )

    def _warn_mismatch(self, options: Mapping[str, Any]) -> None:
        asked = {k: v for k, v in options.items() if k in self.attribute_options}
        if not asked:
            return
        actual = self._attributes()
        diffs = [
            f"{k}={v} asked but {actual[k]} in place"
            for k, v in asked.items()
            if k in actual and actual[k] != v
        ]
        if diffs:
            warn_user(
                f"{self._url_text} already exists with other attributes ({', '.join(diffs)}); "
                "the existing ones apply. Remove the queue and create it again to change "
                "them" + self._mismatch_hint(),
                AttributeMismatchWarning,
            )

    def _mismatch_hint(self) -> str:
        """Backend-specific advice appended to the mismatch warning."""
        return ""

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
        from unimq.typed._queue import TypedQueue

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
            f"operation on closed queue handle {self._url_text!r}",
            errno=E.EBADF,
            url=self._url_text,
        )

    def _full_error(self, timeout: float | None) -> QueueFull:
        """The one QueueFull of every backend: errno EAGAIN (no room now) or
        ETIMEDOUT (no room within ``timeout`` seconds)."""
        if timeout is None:
            return QueueFull(f"{self._url_text} is full", errno=E.EAGAIN, url=self._url_text)
        return QueueFull(
            f"{self._url_text} stayed full for {timeout:g} s", errno=E.ETIMEDOUT, url=self._url_text
        )

    def _empty_error(self, timeout: float | None) -> QueueEmpty:
        """The one QueueEmpty of every backend (errno EAGAIN or ETIMEDOUT)."""
        if timeout is None:
            return QueueEmpty(
                f"no matching message in {self._url_text}", errno=E.EAGAIN, url=self._url_text
            )
        return QueueEmpty(
            f"no matching message in {self._url_text} within {timeout:g} s",
            errno=E.ETIMEDOUT,
            url=self._url_text,
        )

    def _mapped(self, op: Op, exc: OSError) -> BaseException:
        """An OSError from a primitive, as the unimq error the backend's table gives;
        QueueClosed when the handle was closed meanwhile."""
        if self._closed:
            return self._closed_error()
        err = self._error(op, exc)
        if err is exc:  # never re-raise the driver's own exception with itself as cause
            return self._unexpected(op, exc)
        return err

    def _unexpected(self, op: str, exc: BaseException) -> UnimqError:
        if self._closed:
            return self._closed_error()
        return UnimqError(
            f"{op} on {self._url_text} failed unexpectedly: {type(exc).__name__}: {exc}",
            errno=getattr(exc, "errno", None),
            url=self._url_text,
        )

    def _check_size(self, size: int) -> None:
        """Called when ``size`` exceeds ``_max_size``; raises MessageTooLarge.

        A backend whose limit can change at run time (SysV kernel.msgmax)
        re-reads it here and returns when the message fits now.
        """
        raise self._too_large(size)

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
        # Types first, on every call: mtype=True or priority=1.0 are errors even
        # where they compare equal to the defaults.
        mtype = _index("mtype", mtype)
        priority = _index("priority", priority)
        caps = self.capabilities
        if mtype != 1:
            if not caps & _MTYPE:
                raise UnsupportedOperation(
                    f"{self.scheme}:// queues have no message types (mtype={mtype!r}); "
                    "message types are a sysv:// (and memory://) feature"
                    + ("; use priority= here" if caps & _PRIORITY else ""),
                    url=self._url_text,
                )
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
            if not 0 <= priority <= PRIORITY_MAX:
                raise ValueError(f"priority must be 0..{PRIORITY_MAX}, got {priority}")
        return mtype, priority

    def _check_receive_mtype(self, mtype: int) -> int:
        mtype = _index("mtype", mtype)
        if mtype == 0:
            return 0
        if not self.capabilities & _MTYPE:
            raise UnsupportedOperation(
                f"{self.scheme}:// queues cannot select by message type (mtype={mtype!r}); "
                "selection by type is a sysv:// (and memory://) feature",
                url=self._url_text,
            )
        if not -MTYPE_MAX <= mtype <= MTYPE_MAX:
            raise ValueError(f"mtype selection must be within +-{MTYPE_MAX}, got {mtype}")
        return mtype


def batch_sent(exc: BaseException) -> int:
    """How many messages a batch send primitive sent before raising ``exc``.

    ``_send_many_nowait`` implementations (the core's loop, the C channels)
    attach it as ``exc.unimq_sent``; an error without it came before any.
    """
    sent = getattr(exc, "unimq_sent", 0)
    return sent if type(sent) is int else 0


def _next_wait(deadline: float | None) -> float | None:
    """How long the next wait primitive call may wait: None without a deadline,
    else the time left capped at WAIT_CHUNK, and 0.0 once the deadline passed."""
    if deadline is None:
        return None
    left = deadline - _monotonic()
    if left <= 0.0:
        return 0.0
    return left if left < WAIT_CHUNK else WAIT_CHUNK


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
