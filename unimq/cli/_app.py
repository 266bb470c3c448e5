"""The click group, --json, logging, standard output, and the one place errors
become exit codes."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console, RenderableType

import unimq
from unimq.cli._display import visible

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_CODES",
    "OutputClosed",
    "UnimqGroup",
    "abandon_stdout",
    "cli",
    "emit",
    "exit_code",
    "fail",
    "json_option",
    "out",
    "render",
    "warn",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Documented exit codes, most specific first (API.md "Command line").
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (unimq.QueueEmpty, 3),
    (unimq.QueueFull, 3),
    (unimq.QueueNotFound, 4),
    (unimq.QueueRemoved, 4),
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

#: What a Unix tool killed by SIGPIPE reports (128 + 13): the reader of standard
#: output went away (``unimq ls | head -0``). Nothing is printed.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

logger = logging.getLogger("unimq.cli")


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an error."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def error_text(exc: BaseException) -> str:
    """An error as one line (the error's own text, whitespace folded)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def warn(message: str) -> None:
    """One ``unimq: warning:`` line on stderr, control characters shown escaped."""
    click.echo(f"unimq: warning: {visible(message)}", err=True)


def fail(message: str, code: int) -> NoReturn:
    """Print one line on stderr (control characters shown escaped) and exit with ``code``."""
    click.echo(f"unimq: error: {visible(' '.join(message.split()))}", err=True)
    sys.exit(code)


def abandon_stdout() -> None:
    """Drop what is buffered for standard output, whose reader is gone or whose
    write was interrupted: the interpreter's final flush must neither fail (exit
    120 instead of the documented code) nor block on a full pipe."""
    _silence_stdout()


# ---------------------------------------------------------------------- standard output


class OutputClosed(Exception):
    """Standard output cannot be written: closed, not writable, or its reader is gone."""

    def __init__(self, reason: str, *, broken_pipe: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.broken_pipe = broken_pipe


def out(text: str) -> None:
    """Write ``text`` and a newline to standard output and flush it.

    :raises OutputClosed: if it could not be written (saying why).
    """
    stream = sys.stdout
    if stream is None:  # the process started with file descriptor 1 closed
        raise OutputClosed("standard output is closed", broken_pipe=False)
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        raise OutputClosed(
            "the reader of standard output has gone (broken pipe)", broken_pipe=True
        ) from None
    except OSError as exc:
        raise OutputClosed(
            f"cannot write to standard output: {exc.strerror or exc}", broken_pipe=False
        ) from None


def render(renderable: RenderableType) -> None:
    """Print a Rich renderable through :func:`out`: styled on a terminal, plain
    and never wrapped otherwise (so a listed URL is always whole)."""
    stream = sys.stdout
    if stream is None:
        raise OutputClosed("standard output is closed", broken_pipe=False)
    try:
        terminal = stream.isatty()
    except (OSError, ValueError):
        terminal = False
    console = Console(
        highlight=False,
        soft_wrap=True,
        force_terminal=terminal,
        no_color=not terminal,
        width=None if terminal else 4096,
    )
    with console.capture() as captured:
        console.print(renderable)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    out(text)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``human`` to print it for people."""
    if as_json:
        out(json.dumps(data, default=str))
    else:
        human()


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's final flush of a broken pipe
    prints no "Exception ignored" noise."""
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------- logging


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to whatever sys.stderr is at the time, with names shown escaped."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record))


_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("unimq: %(levelname)s: %(name)s: %(message)s"))

#: ``UNIMQ_LOG`` values (case-insensitive) and the level each turns on.
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(verbose: int) -> None:
    """Send the ``unimq`` loggers' records to stderr: WARNING and above by default,
    INFO with ``-v`` or ``UNIMQ_LOG=info``, DEBUG with ``-vv`` or ``UNIMQ_LOG=debug``."""
    level = logging.WARNING
    env = os.environ.get("UNIMQ_LOG", "").strip().lower()
    if env:
        if env not in LOG_LEVELS:
            raise click.BadParameter(
                f"UNIMQ_LOG={env!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="UNIMQ_LOG"
            )
        level = LOG_LEVELS[env]
    if verbose:
        level = min(level, logging.INFO if verbose == 1 else logging.DEBUG)
    root = logging.getLogger("unimq")
    if _handler not in root.handlers:
        root.addHandler(_handler)
    root.setLevel(level)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    warn(str(message))


# ---------------------------------------------------------------------- the group


class UnimqGroup(click.Group):
    """Maps unimq (and OS) errors to one stderr line and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        previous = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            return super().invoke(ctx)
        except OutputClosed as exc:
            if exc.broken_pipe:
                _silence_stdout()
                sys.exit(EXIT_BROKEN_PIPE)
            fail(exc.reason, 1)
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except (unimq.UnimqError, OSError, ValueError) as exc:
            fail(error_text(exc), exit_code(exc))
        except KeyboardInterrupt:
            click.echo("unimq: interrupted", err=True)
            sys.exit(130)
        finally:
            warnings.showwarning = previous


def json_option(fn: F) -> F:
    """Add ``--json`` (machine-readable output on stdout)."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(fn)


@click.group(
    cls=UnimqGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  unimq demo                                 typed messages over every backend
  unimq create posix:///orders --max-messages 10 --max-message-size 1024
  unimq send sysv://51234 "hello" --mtype 3
  unimq recv sysv://51234 --mtype 3 --count 5 --timeout 2
  unimq -v rm posix:///orders                log what is done (or UNIMQ_LOG=info)
  unimq ls --json
Exit codes: 0 ok, 1 other error, 2 usage, 3 empty/timeout, 4 not found,
5 permission, 6 exists, 7 limit exceeded, 8 too large; 141 when the reader
of standard output went away (as for any Unix tool killed by SIGPIPE).""",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log what unimq does on stderr: -v queues created and removed, messages "
    "sent and received (INFO); -vv more (DEBUG). Also UNIMQ_LOG=info|debug.",
)
@click.version_option(package_name="unimq")
def cli(verbose: int) -> None:
    """Use and manage Linux message queues (System V and POSIX) with one tool.

    Queues are named by URL: posix:///name, sysv://KEY (decimal or 0x hex),
    sysv:///path?proj=N (ftok), sysv://id:N (by identifier: stat, watch and rm
    only), memory://name (this process only).
    """
    configure_logging(verbose)
