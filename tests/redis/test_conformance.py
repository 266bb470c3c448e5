"""The whole queue contract (unimq.testing) over redis:// against the session's
valkey-server, exactly as a third-party backend runs it."""

from __future__ import annotations

import itertools
import os

import pytest

import unimq
from tests.redis.server import ValkeyServer
from unimq.testing import Backend, QueueContract

_names = itertools.count()


class TestRedis(QueueContract):
    @pytest.fixture
    def backend(self, valkey: ValkeyServer) -> Backend:
        return Backend(
            make_url=lambda: f"{valkey.url}/unimq-test-{os.getpid()}-{next(_names)}",
            capabilities=unimq.Capability.MTYPE
            | unimq.Capability.PRIORITY
            | unimq.Capability.INTERPROCESS
            | unimq.Capability.NATIVE_TIMEOUT,
            stat_fields=frozenset({"bytes", "max_bytes", "last_send_time", "last_receive_time"}),
        )
