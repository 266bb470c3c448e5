from typing import Any

def extend_messages(
    out: list[Any],
    entries: list[bytes],
    start: int,
    count: int,
    mtype: int,
    priority: int,
    cls: type[tuple[Any, ...]],
    header: int,
) -> None: ...
