"""The ``unimq`` command line (click)."""

from __future__ import annotations

import sys

import click

from unimq._demo import run_demo

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="unimq")
def cli() -> None:
    """Manage and use Linux message queues (SysV and POSIX) with one tool."""


@cli.command()
def demo() -> None:
    """Send and receive typed messages over every available backend.

    \b
    Example:
      unimq demo
    """
    outcome = run_demo(click.echo)
    failed = [s for s, o in outcome.items() if o not in ("ok", "not installed")]
    if failed:
        raise click.ClickException(f"demo failed on: {', '.join(failed)}")


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="unimq", standalone_mode=True))
