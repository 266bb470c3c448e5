"""The click group, the --json option and the one place errors become exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

import unimq

__all__ = ["EXIT_CODES", "UnimqGroup", "cli", "console", "emit", "fail", "json_option"]

F = TypeVar("F", bound=Callable[..., Any])

#: Documented exit codes, most specific first (API.md "Command line").
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (unimq.QueueEmpty, 3),
    (unimq.QueueNotFound, 4),
    (unimq.PermissionDenied, 5),
    (unimq.QueueExists, 6),
    (unimq.LimitExceeded, 7),
    (unimq.MessageTooLarge, 8),
    (unimq.InvalidURL, 2),
    (unimq.UnsupportedOperation, 2),
    (unimq.BackendNotInstalled, 1),
    (unimq.UnimqError, 1),
    (FileNotFoundError, 4),
    (PermissionError, 5),
    (FileExistsError, 6),
    (ValueError, 2),
    (OSError, 1),
]

console = Console(stderr=False, highlight=False, soft_wrap=True)


def exit_code(exc: BaseException) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def fail(message: str, code: int) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    click.echo(f"unimq: error: {message}", err=True)
    sys.exit(code)


class UnimqGroup(click.Group):
    """Maps unimq (and OS) errors to one stderr line and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (unimq.UnimqError, OSError, ValueError) as exc:
            fail(" ".join(str(exc).split()) or type(exc).__name__, exit_code(exc))
        except KeyboardInterrupt:
            click.echo("unimq: interrupted", err=True)
            sys.exit(130)


def json_option(fn: F) -> F:
    """Add ``--json`` (machine-readable output on stdout)."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(fn)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``human`` to print it for people."""
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        human()


@click.group(
    cls=UnimqGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  unimq demo                                 typed messages over every backend
  unimq create posix:///orders --max-messages 10 --max-message-size 1024
  unimq send sysv://51234 "hello" --mtype 3
  unimq recv sysv://51234 --mtype 3 --count 5 --timeout 2
  unimq ls --json
Exit codes: 0 ok, 1 other error, 2 usage, 3 empty/timeout, 4 not found,
5 permission, 6 exists, 7 limit exceeded, 8 too large.""",
)
@click.version_option(package_name="unimq")
def cli() -> None:
    """Use and manage Linux message queues (System V and POSIX) with one tool.

    Queues are named by URL: posix:///name, sysv://KEY (decimal or 0x hex),
    sysv:///path?proj=N (ftok), memory://name (this process only).
    """
