from unimq._message import Message

class Channel:
    """Non-blocking mq_send/mq_receive on one descriptor, raising posix_ipc's classes."""

    def __init__(
        self,
        mqd: int,
        msgsize: int,
        busy: type[BaseException],
        existential: type[BaseException],
        message: type[Message],
    ) -> None: ...
    def send(self, message: bytes, timeout: None, priority: int, /) -> None: ...
    def receive(self) -> Message: ...
