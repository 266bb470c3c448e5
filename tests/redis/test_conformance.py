"""The whole conformance suite, over redis:// against the session's valkey-server.

The test functions are the conformance modules' own; the fixtures come from
tests/redis/conftest.py (kind "redis").
"""

from __future__ import annotations

from tests.conformance.test_handles import *  # noqa: F403
from tests.conformance.test_lifecycle import *  # noqa: F403
from tests.conformance.test_processes_and_signals import *  # noqa: F403
from tests.conformance.test_send_receive import *  # noqa: F403
