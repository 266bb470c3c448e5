from typing import Literal

from unimq._message import Message

#: The signal close() wakes waiters with (0: none was free; waits poll with an eventfd).
WAKE_SIGNAL: int
#: Messages of at least this many bytes are received straight into their bytes object.
DIRECT_MIN: int
#: Above this mq_msgsize every message is received into a buffer and copied.
DIRECT_MAX_BUF: int

class Channel:
    """One POSIX queue descriptor, owned (see the module's C source for the lifetime rules)."""

    def __init__(
        self,
        name: str,
        oflag: int,
        mode: int,
        max_messages: int,
        max_message_size: int,
        message: type[Message],
    ) -> None: ...
    @property
    def max_messages(self) -> int: ...
    @property
    def max_message_size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def waiters(self) -> int: ...
    @property
    def twin(self) -> Literal["none", "open", "refused"]: ...
    def send_nowait(self, data: bytes, mtype: int, priority: int, /) -> bool: ...
    def receive_nowait(self, mtype: int, /) -> Message | None: ...
    def send_wait(
        self, data: bytes, mtype: int, priority: int, timeout: float | None, /
    ) -> bool: ...
    def receive_wait(self, mtype: int, timeout: float | None, /) -> Message | None: ...
    def send_many_nowait(self, batch: list[tuple[bytes, int, int]], start: int, /) -> int:
        """Send batch[start:] without waiting, in order; how many went (OSError.unimq_sent)."""
    def receive_many_nowait(self, mtype: int, limit: int, /) -> list[Message]:
        """Take up to limit queued messages without waiting (maybe none)."""
    def close(self) -> None: ...
    def fileno(self) -> int: ...
    def stat(self) -> tuple[int, int, int, int, int]: ...
    def notify(self, arg: object, /) -> None: ...

def unlink(name: str, /) -> None: ...
def _spin(max_ns: int = ..., /) -> int:
    """How long a wait spins before it sleeps (ns, 0: never); with an argument, set it
    (process-wide) and return the previous value."""
