"""A POSIX request/reply server on a named queue with explicit attributes.

    python examples/posix_server.py [URL]      (default posix:///unimq-example-server)

Clients (examples/posix_client.py) send JSON requests {"reply_to": URL, "n": N};
the server answers {"n": N, "square": N*N} on the client's own reply queue. A
request with priority 9 and body "stop" ends the server, which then removes its
queue. Requests are served highest priority first.
"""

from __future__ import annotations

import json
import sys

import unimq


def main(url: str = "posix:///unimq-example-server") -> int:
    served = 0
    with unimq.open(url, create=True, max_messages=8, max_message_size=512) as requests:
        print(f"serving on {url}", flush=True)
        while True:
            msg = requests.receive(timeout=60)
            if msg.data == b"stop":
                break
            req = json.loads(msg.data)
            with unimq.open(req["reply_to"], access="w") as reply:
                reply.send(json.dumps({"n": req["n"], "square": req["n"] ** 2}).encode())
            served += 1
        requests.remove()
    print(f"served {served} requests", flush=True)
    return served


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "posix:///unimq-example-server")
