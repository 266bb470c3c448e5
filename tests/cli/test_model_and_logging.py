"""--model imports from the current directory; logging is configured only by
the CLI (-v, UNIMQ_LOG) and says what was created, removed, sent, received."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import unimq
from tests.conftest import UrlFactory
from unimq.cli import cli

UNIMQ = str(Path(sys.executable).with_name("unimq"))


def unimq_run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("UNIMQ_LOG", "PYTHONPATH")}
    return subprocess.run(
        [UNIMQ, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**base, **(env or {})},
        check=False,
    )


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A project directory holding a package ``shop`` with ``shop.models.Order``."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "models.py").write_text(
        textwrap.dedent("""
            from pydantic import BaseModel

            class Order(BaseModel):
                sku: str
                qty: int
        """)
    )
    return tmp_path


def test_model_from_the_current_directory(sysv_url: str, shop: Path) -> None:
    unimq.open(sysv_url, create=True).close()
    ok = unimq_run(
        "send", sysv_url, '{"sku": "A1", "qty": 2}', "--model", "shop.models:Order", cwd=shop
    )
    assert ok.returncode == 0, ok.stderr
    bad = unimq_run("send", sysv_url, '{"sku": "A1"}', "--model", "shop.models:Order", cwd=shop)
    assert bad.returncode == 1
    assert "is not a valid Order" in bad.stderr
    elsewhere = unimq_run("send", sysv_url, "{}", "--model", "shop.models:Order", cwd=shop.parent)
    assert elsewhere.returncode == 2
    assert "No module named 'shop'" in elsewhere.stderr
    assert str(shop.parent) in elsewhere.stderr  # says where it looked
    not_a_model = unimq_run("send", sysv_url, "{}", "--model", "os:path", cwd=shop)
    assert not_a_model.returncode == 2
    assert "not a pydantic model" in not_a_model.stderr
    with unimq.open(sysv_url) as q:
        assert q.qsize() == 1


def test_verbose_logs_what_was_done(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    created = unimq_run("-v", "create", url)
    assert created.returncode == 0
    assert created.stdout.strip() == f"created {url}"
    assert f"unimq: INFO: unimq.cli: created {url}" in created.stderr.splitlines()
    again = unimq_run("create", url)
    assert again.stdout.strip() == f"exists {url}"
    assert again.stderr == ""  # nothing logged without -v
    sent = unimq_run("send", url, "x", env={"UNIMQ_LOG": "info"})
    assert f"unimq: INFO: unimq.cli: sent 1 message(s) to {url}" in sent.stderr.splitlines()
    got = unimq_run("-vv", "recv", url)
    assert "DEBUG: unimq.cli: received a message of 1 bytes" in got.stderr
    assert f"unimq: INFO: unimq.cli: received 1 message(s) from {url}" in got.stderr
    removed = unimq_run("-v", "rm", url)
    lines = removed.stderr.splitlines()
    assert f"unimq: INFO: unimq.queue: removed {url}" in lines  # the library's own record
    assert f"unimq: INFO: unimq.cli: removed {url}" in lines
    bogus = unimq_run("ls", env={"UNIMQ_LOG": "loud"})
    assert bogus.returncode == 2
    assert "UNIMQ_LOG" in bogus.stderr


def test_the_library_adds_only_a_null_handler(
    memory_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = logging.getLogger("unimq").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    assert not [
        h
        for h in handlers
        if not isinstance(h, logging.NullHandler) and type(h).__name__ != "_StderrHandler"
    ]
    unimq.open(memory_url, create=True).close()
    with caplog.at_level(logging.INFO, logger="unimq"):
        unimq.remove(memory_url)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("unimq.queue", "INFO", f"removed {memory_url}")
    ]


def test_create_json_says_whether_it_created(make_url: UrlFactory) -> None:
    url = make_url("posix")
    runner = CliRunner()
    first = runner.invoke(
        cli, ["create", url, "--max-messages", "2", "--max-message-size", "8", "--json"]
    )
    second = runner.invoke(cli, ["create", url, "--json"])
    assert json.loads(first.stdout)["created"] is True
    assert json.loads(second.stdout)["created"] is False


def test_negative_or_nan_timeouts_are_usage_errors(sysv_url: str) -> None:
    unimq.open(sysv_url, create=True).close()
    for value in ("-1", "nan"):
        for command in (["recv", sysv_url], ["send", sysv_url, "x"]):
            result = CliRunner().invoke(cli, [*command, "--timeout", value])
            assert result.exit_code == 2, (command, value, result.stderr)
            assert "non-negative" in result.stderr
