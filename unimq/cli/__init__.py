"""The ``unimq`` command line (click + rich).

Every command takes ``--json``. User errors print one line on stderr and exit
with a documented code: 0 ok, 1 other error, 2 usage, 3 empty/timeout,
4 not found, 5 permission, 6 exists, 7 limit exceeded, 8 too large, and 141
when the reader of standard output went away.
"""

from __future__ import annotations

import signal

from unimq.cli import _queues, _system, _watch  # noqa: F401  (registers the commands)
from unimq.cli._app import EXIT_CODES, cli

__all__ = ["EXIT_CODES", "cli", "main"]


def main() -> None:
    """Console-script entry point."""
    # Python ignores SIGPIPE, so a write to a pipe nobody reads fails with EPIPE
    # instead of killing the process: recv can then keep a message it has taken,
    # and the other commands exit quietly with 141. Make sure it stays so.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    cli.main(prog_name="unimq")
