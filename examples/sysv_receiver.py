"""Receive messages from a SysV queue until the end marker (mtype 2), then remove it.

python examples/sysv_receiver.py [URL]      (default sysv://51234)
"""

from __future__ import annotations

import sys

import unimq

END = 2


def main(url: str = "sysv://51234") -> int:
    count = 0
    with unimq.open(url, create=True) as q:
        while True:
            msg = q.receive(timeout=30)
            if msg.mtype == END:
                break
            count += 1
            print(msg.data.decode())
        q.remove()
    print(f"received {count} messages; end marker seen, queue removed")
    return count


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sysv://51234")
