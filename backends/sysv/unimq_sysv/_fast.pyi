from unimq._message import Message

class Channel:
    """msgsnd/msgrcv on one msqid, raising sysv_ipc's exception classes."""

    def __init__(
        self,
        msqid: int,
        bufsize: int,
        busy: type[BaseException],
        existential: type[BaseException],
        permissions: type[BaseException],
        base: type[BaseException],
        message: type[Message],
    ) -> None: ...
    def send(self, message: bytes, block: bool, mtype: int, /) -> None: ...
    def receive(self, block: bool, mtype: int, /) -> Message: ...
    def wait_send(
        self, message: bytes, mtype: int, timeout: float, start: float, cap: float, /
    ) -> bool: ...
    def wait_receive(
        self, mtype: int, timeout: float, start: float, cap: float, /
    ) -> Message | None: ...
