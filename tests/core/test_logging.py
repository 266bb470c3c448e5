"""The library logs queue creation and removal at INFO under ``unimq.queue``."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import unimq


def test_create_and_remove_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="unimq")
    with unimq.open("memory://logged-queue", create=True, mode=0o640) as q:
        unimq.open("memory://logged-queue").close()  # opening an existing queue: no record
        q.remove()
    unimq.open("memory://logged-queue-2", create=True).close()
    unimq.remove("memory://logged-queue-2")
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert records == [
        ("unimq.queue", logging.INFO, "created memory://logged-queue (mode 0o640)"),
        ("unimq.queue", logging.INFO, "removed memory://logged-queue"),
        ("unimq.queue", logging.INFO, "created memory://logged-queue-2 (mode 0o600)"),
        ("unimq.queue", logging.INFO, "removed memory://logged-queue-2"),
    ]
    assert not any(b"payload" in r.getMessage().encode() for r in caplog.records)


def test_the_library_adds_only_a_null_handler() -> None:
    # In a fresh interpreter: the CLI (an application) adds its own handler when
    # run in this process by other tests.
    code = (
        "import logging, unimq, unimq.system, unimq.typed\n"
        "hs = logging.getLogger('unimq').handlers\n"
        "print(len(hs), all(type(h) is logging.NullHandler for h in hs))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["1", "True"]
