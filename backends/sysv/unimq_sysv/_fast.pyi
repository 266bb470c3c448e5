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
