"""Operations commands: metrics (Prometheus endpoint) and gc (orphaned queues)."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from unimq import system
from unimq.cli._app import cli


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
@click.option(
    "--once", is_flag=True, help="Print the metrics text once on stdout and exit (no server)."
)
def metrics_command(listen: str, urls: tuple[str, ...], once: bool) -> None:
    """Serve Prometheus/OpenMetrics metrics for every queue visible here.

    Depth, bytes, capacity, last send/receive/change time per queue (labels
    kind, url, owner), which sources could be read, and the kernel's queue
    limits, read fresh on every scrape. POSIX queues need a mounted mqueue
    filesystem (unimq mount).

    \b
    Examples:
      unimq metrics --listen 127.0.0.1:9464
      unimq metrics --once > /var/lib/node_exporter/textfile/unimq.prom
    """
    if once:
        click.echo(system.metrics_text(urls), nl=False)
        return
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        with system.serve_metrics(listen, urls) as server:
            click.echo(f"serving queue metrics on {server.url} (Ctrl-C or SIGTERM stops)")
            sys.stdout.flush()
            try:
                while not stop.wait(3600):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
