from typing import Final, Literal

from unimq._message import Message

#: The real-time signal close() uses to wake blocked waiters (0: none free; waits poll).
WAKE_SIGNAL: Final[int]
#: Messages up to this many bytes are sent and received through a stack buffer.
STACK_BUF: Final[int]

class Channel:
    """msgsnd/msgrcv on one msqid: the SysV backend's primitives; OSError with errno."""

    def __init__(self, msqid: int, bufsize: int, message: type[Message]) -> None: ...
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
    @property
    def state(self) -> Literal["open", "closing", "closed"]: ...
    @property
    def waiters(self) -> int: ...
    @property
    def bufsize(self) -> int: ...
