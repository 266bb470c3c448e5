"""unimq's ``redis://`` backend: queues on Redis or Valkey servers (and clusters).

Install with ``pip install 'unimq[redis]'``; then ``unimq.open("redis://host:6379/orders")``.
See docs/redis.md.
"""

from __future__ import annotations

from unimq_redis._queue import DEFAULTS, RedisQueue, list_queues

__all__ = ["DEFAULTS", "RedisQueue", "list_queues"]
