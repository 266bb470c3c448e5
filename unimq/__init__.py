"""unimq: one typed API over Linux System V and POSIX message queues.

>>> import unimq
>>> with unimq.open("memory://doc-example", create=True) as q:
...     q.send(b"hello", priority=3)
...     q.receive(timeout=1).data
...     q.remove()
b'hello'
"""

from __future__ import annotations

import logging as _logging

from unimq._errors import (
    BackendNotInstalled,
    BackendUnavailable,
    DecodeError,
    InvalidKey,
    InvalidName,
    InvalidURL,
    LimitExceeded,
    MessageTooLarge,
    NotificationBusy,
    PermissionDenied,
    QueueClosed,
    QueueEmpty,
    QueueExists,
    QueueFull,
    QueueNotFound,
    QueueRemoved,
    UnimqError,
    UnsupportedOperation,
)
from unimq._message import Capability, Message, QueueStat
from unimq._open import open, remove
from unimq._queue import MTYPE_MAX, PRIORITY_MAX, Queue
from unimq._registry import available_backends, get_backend, known_schemes, register_backend
from unimq._temporary import temporary
from unimq._url import QueueURL, parse_url
from unimq._warnings import AttributeMismatchWarning
from unimq.typed._queue import TypedQueue

__version__ = "0.1.0"

__all__ = [
    "MTYPE_MAX",
    "PRIORITY_MAX",
    "AttributeMismatchWarning",
    "BackendNotInstalled",
    "BackendUnavailable",
    "Capability",
    "DecodeError",
    "InvalidKey",
    "InvalidName",
    "InvalidURL",
    "LimitExceeded",
    "Message",
    "MessageTooLarge",
    "NotificationBusy",
    "PermissionDenied",
    "Queue",
    "QueueClosed",
    "QueueEmpty",
    "QueueExists",
    "QueueFull",
    "QueueNotFound",
    "QueueRemoved",
    "QueueStat",
    "QueueURL",
    "TypedQueue",
    "UnimqError",
    "UnsupportedOperation",
    "available_backends",
    "get_backend",
    "known_schemes",
    "open",
    "parse_url",
    "register_backend",
    "remove",
    "temporary",
]

# A library configures no logging: records go nowhere until the application
# adds a handler (see docs/logging.md); NullHandler also keeps Python's
# last-resort handler from printing unimq's warnings on stderr.
_logging.getLogger("unimq").addHandler(_logging.NullHandler())

# Tracebacks and reprs say unimq.QueueEmpty, not unimq._errors.QueueEmpty.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "unimq"
del _name, _obj
