"""Send data messages (mtype 1) and then an end marker (mtype 2) to a SysV queue.

    python examples/sysv_sender.py [URL] [COUNT]      (default sysv://51234, 5)

The classic pair to examples/sysv_receiver.py, which loops until the marker.
"""

from __future__ import annotations

import sys

import unimq

DATA, END = 1, 2  # mtype 2 is reserved for the end marker


def main(url: str = "sysv://51234", count: int = 5) -> None:
    with unimq.open(url, create=True) as q:
        for i in range(count):
            q.send(f"message {i}".encode(), mtype=DATA)
        q.send(b"", mtype=END)
    print(f"sent {count} messages and the end marker to {url}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "sysv://51234", int(args[1]) if len(args) > 1 else 5)
