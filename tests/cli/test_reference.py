"""The CLI reference lists every command with the exit codes it can give, and
the site links only what exists (every example is on the Examples page)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from unimq.cli import EXIT_CODES, cli
from unimq.cli._app import EXIT_BROKEN_PIPE

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (ROOT / "docs" / "reference" / "cli.md").read_text()


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in sorted(group.commands.items()):
        names.append(prefix + name)
        if isinstance(command, click.Group):
            names += _commands(command, prefix + name + " ")
    return names


def _table(heading: str) -> dict[str, str]:
    section = REFERENCE.split(heading, 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, re.M)
    return dict(rows)


def test_every_command_has_its_exit_codes_listed() -> None:
    per_command = _table("What each command can exit with:")
    assert set(_commands(cli)) <= set(per_command), set(_commands(cli)) - set(per_command)
    documented = {int(c) for c in re.findall(r"^\| (\d+)", REFERENCE, re.M)}
    documented |= {129, 130, 143}
    for command, codes in per_command.items():
        for code in re.findall(r"\b(\d+)\b", re.sub(r"`[^`]*`", "", codes)):
            assert int(code) in documented, (command, code)


def test_the_general_table_covers_the_code() -> None:
    documented = {int(c) for c in re.findall(r"^\| (\d+) \|", REFERENCE, re.M)}
    assert {code for _cls, code in EXIT_CODES} <= documented
    assert EXIT_BROKEN_PIPE in documented
    help_text = cli.epilog or ""
    assert "141" in help_text and "8 too large" in help_text


def test_examples_page_shows_every_example() -> None:
    page = (ROOT / "docs" / "examples.md").read_text()
    for script in sorted((ROOT / "examples").glob("*.py")):
        assert f"--8<--\nexamples/{script.name}\n--8<--" in page, script.name


def test_site_links_no_repository_that_does_not_exist() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert "repo_url" not in config
    readme = (ROOT / "README.md").read_text()
    assert "pip install 'unimq[all]'" not in readme  # not on the package index
    assert "pip install . ./backends/posix ./backends/sysv" in readme
