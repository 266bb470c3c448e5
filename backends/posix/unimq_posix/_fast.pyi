from unimq._message import Message

class Channel:
    """mq_send/mq_receive on one non-blocking descriptor (waiting in C when blocking)."""

    def __init__(
        self,
        mqd: int,
        msgsize: int,
        busy: type[BaseException],
        existential: type[BaseException],
        message: type[Message],
        wait_mqd: int = -1,
    ) -> None: ...
    def send(self, message: bytes, block: bool, priority: int, /) -> None: ...
    def receive(self, block: bool, /) -> Message: ...
