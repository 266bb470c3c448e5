# Typed stub for the parts of posix_ipc (>= 1.3.2) that unimq uses.
from collections.abc import Callable
from typing import Any

O_CREAT: int
O_EXCL: int
O_CREX: int
O_NONBLOCK: int
O_RDONLY: int
O_WRONLY: int
O_RDWR: int
QUEUE_PRIORITY_MAX: int
VERSION: str

class Error(Exception): ...
class SignalError(Error): ...
class PermissionsError(Error): ...
class ExistentialError(Error): ...
class BusyError(Error): ...

class MessageQueue:
    name: str
    mqd: int
    block: bool
    mode: int
    max_messages: int
    max_message_size: int
    current_messages: int
    def __init__(
        self,
        name: str | None,
        flags: int = ...,
        mode: int = ...,
        max_messages: int = ...,
        max_message_size: int = ...,
        read: bool = ...,
        write: bool = ...,
    ) -> None: ...
    def send(self, message: bytes, timeout: float | None = ..., priority: int = ...) -> None: ...
    def receive(self, timeout: float | None = ...) -> tuple[bytes, int]: ...
    def request_notification(
        self, notification: int | tuple[Callable[[Any], object], Any] | None = ...
    ) -> None: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def unlink(self) -> None: ...

def unlink_message_queue(name: str) -> None: ...
