"""One SysV queue, two consumers: one takes only odd numbers (mtype 3), one only even (mtype 4).

    python examples/sysv_types.py produce [URL] [COUNT]   numbers 1..COUNT, tagged by parity
    python examples/sysv_types.py odd [URL]               consume mtype 3 until a 0
    python examples/sysv_types.py even [URL]              consume mtype 4 until a 0

The default URL is sysv://1234. Each consumer stops at a 0 sent with its own type.
"""

from __future__ import annotations

import sys

import unimq

ODD, EVEN = 3, 4


def produce(url: str = "sysv://1234", count: int = 10) -> None:
    with unimq.open(url, create=True) as q:
        for n in range(1, count + 1):
            q.send(str(n).encode(), mtype=ODD if n % 2 else EVEN)
        q.send(b"0", mtype=ODD)
        q.send(b"0", mtype=EVEN)


def consume(kind: str, url: str = "sysv://1234") -> list[int]:
    mtype = ODD if kind == "odd" else EVEN
    got: list[int] = []
    with unimq.open(url, create=True) as q:
        while (n := int(q.receive(mtype=mtype, timeout=30).data)) != 0:
            got.append(n)
            print(f"{kind}: {n}")
    return got


if __name__ == "__main__":
    role, rest = sys.argv[1], sys.argv[2:]
    url = rest[0] if rest else "sysv://1234"
    if role == "produce":
        produce(url, int(rest[1]) if len(rest) > 1 else 10)
    else:
        consume(role, url)
