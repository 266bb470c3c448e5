"""A POSIX client for examples/posix_server.py.

    python examples/posix_client.py [SERVER_URL] [COUNT] [--stop]

Creates its own reply queue, sends COUNT requests, prints the replies, removes
the reply queue, and with --stop tells the server to finish (priority 9).
"""

from __future__ import annotations

import json
import os
import sys

import unimq

MAX_MESSAGES, MAX_MESSAGE_SIZE = 8, 512


def main(
    server: str = "posix:///unimq-example-server", count: int = 3, stop: bool = False
) -> list[int]:
    reply_url = f"posix:///unimq-example-client-{os.getpid()}"
    squares: list[int] = []
    with (
        unimq.open(
            server, create=True, max_messages=MAX_MESSAGES, max_message_size=MAX_MESSAGE_SIZE
        ) as requests,
        unimq.open(
            reply_url,
            create=True,
            exclusive=True,
            max_messages=MAX_MESSAGES,
            max_message_size=MAX_MESSAGE_SIZE,
        ) as replies,
    ):
        try:
            for n in range(1, count + 1):
                requests.send(json.dumps({"reply_to": reply_url, "n": n}).encode(), timeout=10)
                answer = json.loads(replies.receive(timeout=30).data)
                squares.append(answer["square"])
                print(f"{n}^2 = {answer['square']}")
            if stop:
                requests.send(b"stop", priority=9, timeout=10)
        finally:
            replies.remove()
    return squares


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--stop"]
    main(
        args[0] if args else "posix:///unimq-example-server",
        int(args[1]) if len(args) > 1 else 3,
        stop="--stop" in sys.argv,
    )
