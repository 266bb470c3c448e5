"""The unimq exception tree.

Every error unimq raises derives from :class:`UnimqError`; most also derive
from the builtin a Python user would already catch::

    UnimqError(Exception)
     ├─ QueueEmpty(queue.Empty)               receive found nothing in time
     ├─ QueueFull(queue.Full)                 send could not enqueue in time
     ├─ QueueNotFound(FileNotFoundError)      open/remove of a missing queue
     ├─ QueueExists(FileExistsError)          exclusive create of an existing queue
     ├─ PermissionDenied(PermissionError)     mode/owner forbids it
     ├─ QueueRemoved                          the queue was removed under this handle
     ├─ QueueClosed(ValueError)               the handle was closed
     ├─ MessageTooLarge(ValueError)           size beyond the queue's or system's limit
     ├─ LimitExceeded(OSError)                a system limit (sysctl or rlimit) was hit
     ├─ InvalidURL(ValueError)                bad URL, option or argument
     │   ├─ InvalidName                       bad POSIX queue name
     │   └─ InvalidKey                        bad SysV key
     ├─ UnsupportedOperation(ValueError)      the backend lacks the feature
     ├─ BackendNotInstalled(ImportError)      scheme known, package missing
     ├─ DecodeError(ValueError)               typed receive could not decode
     └─ NotificationBusy                      POSIX notify already registered

Every instance carries ``.errno`` (the OS errno, or ``None``) and ``.url``
(the queue's URL, or ``None``).
"""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unimq._message import Message

__all__ = [
    "BackendNotInstalled",
    "DecodeError",
    "InvalidKey",
    "InvalidName",
    "InvalidURL",
    "LimitExceeded",
    "MessageTooLarge",
    "NotificationBusy",
    "PermissionDenied",
    "QueueClosed",
    "QueueEmpty",
    "QueueExists",
    "QueueFull",
    "QueueNotFound",
    "QueueRemoved",
    "UnimqError",
    "UnsupportedOperation",
]


class UnimqError(Exception):
    """Base class of every unimq error."""

    errno: int | None
    url: str | None
    #: Set on errors raised by ``send_many``: how many messages of the batch
    #: were enqueued before the error (None elsewhere).
    sent: int | None = None

    def __init__(self, message: str, *, errno: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.url = url

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errno and url across pickling (multiprocessing sends errors back).
        state = dict(self.__dict__)
        state["errno"] = self.errno  # a slot, not in __dict__, on the OSError family
        return (_rebuild, (type(self), self.args, state))


def _rebuild(cls: type[UnimqError], args: tuple[Any, ...], state: dict[str, Any]) -> UnimqError:
    err = cls.__new__(cls, *args)
    Exception.__init__(err, *args)
    for name, value in state.items():
        setattr(err, name, value)
    return err


class QueueEmpty(UnimqError, queue.Empty):
    """A receive found no (matching) message before its timeout."""


class QueueFull(UnimqError, queue.Full):
    """A send could not enqueue its message before its timeout."""


class QueueNotFound(UnimqError, FileNotFoundError):
    """The queue does not exist (open without ``create=True``, or remove)."""


class QueueExists(UnimqError, FileExistsError):
    """``exclusive=True`` and the queue already exists."""


class PermissionDenied(UnimqError, PermissionError):
    """The queue's mode or owner forbids the operation."""


class QueueRemoved(UnimqError):
    """The queue was removed while this handle was using it."""


class QueueClosed(UnimqError, ValueError):
    """An operation was attempted on a closed handle."""


class MessageTooLarge(UnimqError, ValueError):
    """A message is larger than the queue or the system allows.

    ``.size`` is the message's size and ``.limit`` the limit it broke.
    """

    size: int | None
    limit: int | None

    def __init__(
        self,
        message: str,
        *,
        size: int | None = None,
        limit: int | None = None,
        errno: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, errno=errno, url=url)
        self.size = size
        self.limit = limit


class LimitExceeded(UnimqError, OSError):
    """A system limit stops the operation.

    ``.limit`` names the sysctl (``fs.mqueue.msg_max``) or rlimit
    (``RLIMIT_MSGQUEUE``) and the message says how to raise it.
    """

    limit: str | None

    def __init__(
        self,
        message: str,
        *,
        limit: str | None = None,
        errno: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, errno=errno, url=url)
        self.limit = limit


class InvalidURL(UnimqError, ValueError):
    """A URL, option or argument is invalid; raised before any system call."""


class InvalidName(InvalidURL):
    """A POSIX queue name is invalid ("/" plus 1..255 characters, no other "/")."""


class InvalidKey(InvalidURL):
    """A SysV key is invalid (non-zero, within 32 bits) or ftok() failed."""


class UnsupportedOperation(UnimqError, ValueError):
    """The backend lacks the requested feature; the message names one that has it."""


class BackendNotInstalled(UnimqError, ImportError):
    """The URL's scheme is known but its backend package is not installed."""


class DecodeError(UnimqError, ValueError):
    """A typed receive got a payload that does not decode into the model.

    ``.message`` is the received :class:`unimq.Message` (nothing is lost) and
    ``__cause__`` the underlying validation error.
    """

    message: Message | None
    #: From a typed ``receive_many``: every raw message of the batch, in order
    #: (the decodable ones too, so that nothing taken is lost).
    received: list[Message] | None = None

    def __init__(
        self,
        text: str,
        *,
        message: Message | None = None,
        errno: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(text, errno=errno, url=url)
        self.message = message


class NotificationBusy(UnimqError):
    """Another process (or this one) already holds the queue's notification."""
