"""Fixtures shared by every test: unique queue URLs that are always cleaned up,
and a session-wide check that the suite leaves no queue behind."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
from collections.abc import Callable, Iterator

import pytest

import unimq
from tests.helpers import list_posix_queues, list_sysv_keys

_counter = itertools.count()


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


HAVE_POSIX = _importable("unimq_posix")
HAVE_SYSV = _importable("unimq_sysv")


def new_posix_name() -> str:
    return f"/unimq-test-{os.getpid()}-{next(_counter)}-{random.randrange(1 << 30):x}"


#: Every SysV key handed out to a test in this session (the leak check's scope).
HANDED_OUT: set[int] = set()
#: Key ranges of the demo (0x5D...) and the benchmarks (0x5B...), also ours.
OWN_KEY_RANGES = ((0x5B000000, 0x5EFFFFFF),)


def new_sysv_key() -> int:
    used = list_sysv_keys()
    while True:
        key = random.randrange(0x10000000, 0x5AFFFFFF)
        if key not in used:
            HANDED_OUT.add(key)
            return key


def _ours_sysv(key: int) -> bool:
    return key in HANDED_OUT or any(lo <= key <= hi for lo, hi in OWN_KEY_RANGES)


def new_url(kind: str) -> str:
    if kind == "posix":
        return f"posix://{new_posix_name()}"
    if kind == "sysv":
        return f"sysv://{new_sysv_key()}"
    return f"memory://test-{os.getpid()}-{next(_counter)}"


UrlFactory = Callable[..., str]


@pytest.fixture
def make_url() -> Iterator[UrlFactory]:
    """``make_url("posix")`` returns a fresh URL; the queue is removed at teardown."""
    made: list[str] = []

    def factory(kind: str) -> str:
        url = new_url(kind)
        made.append(url)
        return url

    yield factory
    for url in made:
        with contextlib.suppress(unimq.UnimqError):
            unimq.remove(url, missing_ok=True)


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--large", action="store_true", help="run the reliability suite at its large size"
    )


_before: tuple[set[int], set[str] | None] = (set(), None)


def pytest_sessionstart(session: pytest.Session) -> None:
    global _before
    _before = (list_sysv_keys(), list_posix_queues())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if it left queues behind. Only queues this suite makes count
    (keys it handed out, names starting with "unimq-"), and nothing is removed
    here: another program's queues are never touched."""
    sysv_before, posix_before = _before
    leaked = [
        f"sysv key 0x{k:08x}" for k in sorted(list_sysv_keys() - sysv_before) if _ours_sysv(k)
    ]
    posix_after = list_posix_queues()
    if posix_before is not None and posix_after is not None:
        leaked += [
            f"posix /{n}" for n in sorted(posix_after - posix_before) if n.startswith("unimq-")
        ]
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "the test suite leaked message queues: " + ", ".join(leaked)
        if reporter is not None:
            reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
