"""``unimq watch``: what the kernel shows of a queue, sampled on a steady clock.

The kernels keep no message counters, so throughput cannot be seen from
outside: a queue that moves 400,000 messages a second in and out can keep the
same depth. What can be seen is named for what it is:

- ``messages`` and ``bytes``: the depth now;
- ``depth_change_per_s``: how the depth moved since the previous sample (net
  of sends and receives, so *not* throughput);
- SysV: the time (whole seconds) and pid of the last send and the last
  receive (``msg_stime``/``msg_lspid``, ``msg_rtime``/``msg_lrpid``);
- POSIX: the time (whole seconds) the queue last sent or received anything,
  from its inode; POSIX keeps no pids and does not say which it was.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import click
from rich.live import Live
from rich.table import Table
from rich.text import Text

import unimq
from unimq import system
from unimq.cli._app import cli, emit, render
from unimq.cli._display import cell, url_column
from unimq.cli._queues import _by_id

__all__ = ["Ticker", "activity", "watch_command"]

CAPTION = (
    "depth change/s is the net change of the depth, not throughput: the kernels count no "
    "messages. SysV keeps the last send and receive time (seconds) and pid; POSIX keeps only "
    "when the queue was last used (seconds), no pids."
)


class Ticker:
    """Wake-ups at start + k * interval on the monotonic clock.

    Each wait is measured to the next deadline, so the time a sample takes
    does not add up (a fixed sleep after each sample drifts by that time,
    10% at 0.01 s). Deadlines missed entirely (a sample longer than the
    interval) are skipped, never made up in a burst.
    """

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._slot = 0

    def wait(self) -> None:
        """Sleep until the next deadline."""
        self._slot += 1
        now = self._clock()
        deadline = self._start + self._slot * self.interval
        if now > deadline:  # fell behind: go on with the next deadline still ahead
            self._slot += int((now - deadline) // self.interval) + 1
            deadline = self._start + self._slot * self.interval
        self._sleep(deadline - now)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def activity(st: unimq.QueueStat, used: datetime | None) -> dict[str, Any]:
    """The send/receive traces the kernel keeps for this queue."""
    if st.kind == "posix":
        return {
            "last_send_time": None,
            "last_send_pid": None,
            "last_receive_time": None,
            "last_receive_pid": None,
            "last_activity_time": _iso(used),
        }
    times = [t for t in (st.last_send_time, st.last_receive_time) if t is not None]
    return {
        "last_send_time": _iso(st.last_send_time),
        "last_send_pid": st.last_send_pid,
        "last_receive_time": _iso(st.last_receive_time),
        "last_receive_pid": st.last_receive_pid,
        "last_activity_time": _iso(max(times)) if times else None,
    }


class _Sampler:
    """Samples one queue (kept open) or every queue, and remembers the last sample."""

    def __init__(self, url: str | None, stack: contextlib.ExitStack) -> None:
        self._url = url
        self._msqid = None if url is None else _by_id(url)
        self._queue: unimq.Queue | None = None
        if url is not None and self._msqid is None:
            self._queue = stack.enter_context(unimq.open(url, access="r"))
        self._previous: dict[str, tuple[float, int]] = {}

    def _stats(self) -> list[tuple[unimq.QueueStat, datetime | None]]:
        if self._msqid is not None:
            return [(system.sysv_queue_by_id(self._msqid), None)]
        if self._queue is not None:
            st = self._queue.stat()
            used = st.last_change_time
            fileno = getattr(self._queue, "fileno", None)
            if st.kind == "posix" and callable(fileno):
                used = datetime.fromtimestamp(os.fstat(fileno()).st_mtime, UTC)
            return [(st, used)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", system.MqueueNotMountedWarning)
            # For POSIX the listing's last_change_time is the inode's mtime, which
            # the kernel sets on every send and receive.
            return [(st, st.last_change_time) for st in system.list_queues()]

    def sample(self) -> list[dict[str, Any]]:
        stats = self._stats()
        now = time.monotonic()
        sampled_at = datetime.now(UTC).isoformat()
        rows = []
        for st, used in stats:
            before = self._previous.get(st.url)
            change = elapsed = None
            if before is not None and now > before[0] and st.messages >= 0 and before[1] >= 0:
                elapsed = now - before[0]
                change = (st.messages - before[1]) / elapsed
            self._previous[st.url] = (now, st.messages)
            rows.append(
                {
                    "url": st.url,
                    "kind": st.kind,
                    "name": st.name,
                    "sampled_at": sampled_at,
                    "messages": st.messages,
                    "bytes": st.bytes,
                    "depth_change_per_s": change,
                    "seconds_since_previous_sample": elapsed,
                    **activity(st, used),
                }
            )
        return rows


def _ago(stamp: str | None, pid: int | None = None) -> str:
    if stamp is None:
        return "-"
    seconds = max(0.0, (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds())
    if seconds < 120:
        text = f"{seconds:.0f}s ago"
    elif seconds < 7200:
        text = f"{seconds / 60:.0f}m ago"
    else:
        text = f"{seconds / 3600:.0f}h ago"
    return text if pid is None else f"{text}, pid {pid}"


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        url_column(str(r["url"]) for r in rows),
        "MESSAGES",
        "BYTES",
        "DEPTH CHANGE/S",
        "LAST SEND",
        "LAST RECEIVE",
        "LAST USED",
        title="unimq watch",
        caption=CAPTION,
        box=None,
    )
    for r in rows:
        posix = r["kind"] == "posix"
        change = r["depth_change_per_s"]
        table.add_row(
            cell(r["url"]),
            "?" if r["messages"] < 0 else str(r["messages"]),
            "" if r["bytes"] is None else str(r["bytes"]),
            "" if change is None else f"{change:+.1f}",
            "not kept" if posix else _ago(r["last_send_time"], r["last_send_pid"]),
            "not kept" if posix else _ago(r["last_receive_time"], r["last_receive_pid"]),
            Text(_ago(r["last_activity_time"])),
        )
    return table


def _ticks(iterations: int | None) -> Iterator[int]:
    tick = 0
    while iterations is None or tick < iterations:
        yield tick
        tick += 1


@cli.command("watch")
@click.argument("url", required=False)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Seconds between samples (kept on a steady clock).",
)
@click.option("--iterations", type=click.IntRange(min=1), help="Stop after this many samples.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array per sample.")
def watch_command(url: str | None, interval: float, iterations: int | None, as_json: bool) -> None:
    """Live view of queue depth and activity (one queue, or every queue).

    Shows the depth, how it changed per second since the previous sample
    (net: not throughput, which the kernel does not count), and the traces
    the kernel keeps of senders and receivers: SysV the time and pid of the
    last send and receive, POSIX only when it was last used.

    \b
    Examples:
      unimq watch posix:///orders
      unimq watch --iterations 3 --json
    """
    with contextlib.ExitStack() as stack:
        sampler = _Sampler(url, stack)
        ticker = Ticker(interval)
        live = None
        for tick in _ticks(iterations):
            if tick:
                ticker.wait()
            rows = sampler.sample()
            if as_json:
                emit(True, rows, lambda: None)
            elif live is not None:
                live.update(_table(rows))
            elif _is_terminal():
                live = stack.enter_context(Live(_table(rows), refresh_per_second=4))
            else:
                render(_table(rows))


def _is_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except (OSError, ValueError):
        return False
