"""What the redis:// scripts keep true of a queue's keys, checked from outside."""

from __future__ import annotations

from typing import cast

import redis


def check_index(control: redis.Redis, name: str) -> None:
    """The invariants the scripts keep, read from the server's keys."""
    prefix = f"unimq:{{{name}}}"
    meta = cast(dict[bytes, bytes], control.hgetall(f"{prefix}:meta"))
    lists = {k.decode() for k in control.scan_iter(match=f"{prefix}:l:*", count=1000)}
    assert int(meta[b"lists"]) == len(lists), (meta, lists)
    totals = {k.decode()[2:] for k in meta if k.startswith(b"c:")}
    assert totals == {k.split(":l:")[1] for k in lists}  # a total for each non-empty list
    if len(lists) >= 2:  # every list's score is its head's seq
        for key in lists:
            pr, mt = key.split(":l:")[1].split(":")
            head = control.lindex(key, 0)
            assert head is not None
            assert control.zscore(f"{prefix}:h:{pr}", mt) == int(head[:16]), key
    for w in ("rw", "sw"):
        if control.zcard(f"{prefix}:{w}"):
            assert meta.get(f"w:{w}".encode()) == b"1", w
