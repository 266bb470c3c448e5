"""Operations commands: metrics (Prometheus endpoint) and gc (orphaned queues)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType

import click
from rich.table import Table

from unimq import system
from unimq.cli._app import cli, emit, json_option, render


@cli.command("metrics")
@click.option(
    "--listen",
    default="127.0.0.1:9464",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve /metrics on (port 0 picks a free one).",
)
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="URL",
    help="Also report this queue (any backend); repeatable.",
)
@click.option("--once", is_flag=True, help="Print the metrics once on stdout and exit (no server).")
@click.option(
    "--every",
    type=click.FloatRange(min=0.001),
    metavar="SECONDS",
    help="Instead of serving, print the figures as one JSON line every SECONDS (log shippers).",
)
@click.option("--count", type=click.IntRange(min=1), help="With --every: stop after N lines.")
@json_option
def metrics_command(
    listen: str,
    urls: tuple[str, ...],
    once: bool,
    every: float | None,
    count: int | None,
    as_json: bool,
) -> None:
    """Serve Prometheus/OpenMetrics metrics for every queue visible here.

    Depth, bytes, capacity, last send/receive/change time per queue (labels
    kind, url, owner), which sources could be read, and the kernel's queue
    limits, read fresh on every scrape. POSIX queues need a mounted mqueue
    filesystem (unimq mount).

    \b
    Examples:
      unimq metrics --listen 127.0.0.1:9464
      unimq metrics --once > /var/lib/node_exporter/textfile/unimq.prom
      unimq metrics --once --json          the same figures as one JSON line
      unimq metrics --every 15 >> /var/log/unimq.jsonl
    """
    if count is not None and every is None:
        raise click.UsageError("--count only applies with --every")
    if once and every is not None:
        raise click.UsageError("give --once or --every, not both")
    if once:
        if as_json:
            click.echo(json.dumps(system.metrics_json(urls)))
        else:
            click.echo(system.metrics_text(urls), nl=False)
        return
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        if every is not None:
            lines = 0
            try:
                while True:
                    click.echo(json.dumps(system.metrics_json(urls)))
                    sys.stdout.flush()
                    lines += 1
                    if (count is not None and lines >= count) or stop.wait(every):
                        return
            except KeyboardInterrupt:
                return
        with system.serve_metrics(listen, urls) as server:
            if as_json:
                click.echo(json.dumps({"listening": server.url}))
            else:
                click.echo(f"serving queue metrics on {server.url} (Ctrl-C or SIGTERM stops)")
            sys.stdout.flush()
            try:
                while not stop.wait(3600):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@cli.command("gc")
@click.option(
    "--kind", type=click.Choice(["sysv", "posix"]), help="Only this kind (default: both)."
)
@click.option(
    "--match",
    "pattern",
    metavar="PATTERN",
    help="Only queues whose URL matches this glob (sysv://0x0000c822 and sysv://51234 "
    "spellings alike); also allows removing the SysV candidates it names.",
)
@click.option(
    "--older-than",
    "older_than",
    default="0s",
    show_default=True,
    metavar="AGE",
    help="Only queues unchanged for this long: 90s, 10m, 2h, 1d.",
)
@click.option("--yes", is_flag=True, help="Remove them (default: a dry run that only lists).")
@json_option
def gc_command(
    kind: str | None, pattern: str | None, older_than: str, yes: bool, as_json: bool
) -> None:
    """Find (and with --yes remove) queues whose users are all gone.

    \b
    Removed with --yes:
      - temporary queues (unimq.temporary) whose creating process is gone;
      - POSIX queues no process holds open (scans /proc/*/fd), unchanged for AGE.
    Listed as candidates, removed only when named with --match:
      - SysV queues whose last sender and last receiver are both gone,
        unchanged for AGE. The kernel records no creator for SysV queues, so
        a never-used queue (both pids 0) is never a candidate.
    Says what it could not inspect (other users' processes, other namespaces).

    \b
    Examples:
      unimq gc                              dry run: what would go
      unimq gc --older-than 1h --yes
      unimq gc --match 'sysv://0x5d*' --yes
    """
    found = system.orphans(kind, match=pattern, older_than=older_than)
    if yes:
        system.remove_orphans(found)

    def human() -> None:
        if not found.orphans:
            click.echo("no orphaned queues found")
        else:
            table = Table("URL", "ACTION", "IDLE", "MESSAGES", "WHY", box=None)
            for o in found.orphans:
                action: str = o.action
                if yes and o.action == "remove":
                    action = "removed" if o.url in found.removed else "FAILED"
                elif o.action == "remove":
                    action = "would remove"
                else:
                    action = "candidate"
                messages = "" if o.messages is None else str(o.messages)
                table.add_row(o.url, action, _age(o.idle), messages, o.reason)
            render(table)
            if not yes and any(o.action == "remove" for o in found.orphans):
                click.echo("dry run: nothing was removed; add --yes to remove them")
            if any(o.action == "candidate" for o in found.orphans):
                click.echo("candidates are removed only when named with --match PATTERN --yes")
        for url, why in found.failed.items():
            click.echo(f"could not remove {url}: {why}", err=True)
        for note in found.not_inspected:
            click.echo(f"not inspected: {note}", err=True)

    emit(as_json, {**found.model_dump(), "dry_run": not yes}, human)
    if found.failed:
        sys.exit(1)
