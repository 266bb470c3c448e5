"""The ``unimq`` command line (click + rich).

Every command takes ``--json``. User errors print one line on stderr and exit
with a documented code: 0 ok, 1 other error, 2 usage, 3 empty/timeout,
4 not found, 5 permission, 6 exists, 7 limit exceeded, 8 too large.
"""

from __future__ import annotations

from unimq.cli import _ops, _queues, _system  # noqa: F401  (registers the commands)
from unimq.cli._app import EXIT_CODES, cli

__all__ = ["EXIT_CODES", "cli", "main"]


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="unimq")
