"""Queue commands: ls, stat, create, send, recv, rm, purge, watch, check."""

from __future__ import annotations

import base64
import fnmatch
import importlib
import json
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import click
from pydantic import BaseModel, ValidationError
from rich.live import Live
from rich.progress import Progress
from rich.table import Table

import unimq
from unimq import system
from unimq.cli._app import cli, console, emit, fail, json_option


def _progress(total: int, label: str) -> Progress | None:
    """A progress bar for bulk work, only on a terminal."""
    if total < 50 or not sys.stderr.isatty():
        return None
    return Progress(transient=True)


def _stat_row(st: unimq.QueueStat) -> dict[str, Any]:
    return st.model_dump(mode="json")


def _owner(st: unimq.QueueStat) -> str:
    return "" if st.uid is None else str(st.uid)


@cli.command("ls")
@click.option("--kind", type=click.Choice(["sysv", "posix"]), help="Only this kind.")
@json_option
def ls_command(kind: str | None, as_json: bool) -> None:
    """List every queue of both kinds visible here (like ipcs -q plus the mqueue fs).

    \b
    Examples:
      unimq ls
      unimq ls --kind sysv --json
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", system.MqueueNotMountedWarning)
        queues = system.list_queues(kind)
    notes = [
        str(w.message) for w in caught if issubclass(w.category, system.MqueueNotMountedWarning)
    ]
    for note in notes:
        click.echo(f"unimq: note: {note}", err=True)

    def human() -> None:
        table = Table("KIND", "URL", "KEY", "ID", "OWNER", "MODE", "MESSAGES", "BYTES", box=None)
        for st in queues:
            table.add_row(
                st.kind,
                st.url,
                "" if st.key is None else f"0x{st.key:08x}",
                "" if st.id is None else str(st.id),
                _owner(st),
                "" if st.mode is None else f"{st.mode:o}",
                "?" if st.messages < 0 else str(st.messages),
                "" if st.bytes is None else str(st.bytes),
            )
        console.print(table)

    emit(as_json, [_stat_row(st) for st in queues], human)


@cli.command("stat")
@click.argument("url")
@json_option
def stat_command(url: str, as_json: bool) -> None:
    """Show one queue's state: counts, limits, owner, mode, times.

    \b
    Example:
      unimq stat posix:///orders
    """
    with unimq.open(url, access="r") as q:
        st = q.stat()

    def human() -> None:
        table = Table(box=None, show_header=False)
        for key, value in st.model_dump().items():
            if value is not None:
                table.add_row(key, f"{value:o}" if key == "mode" else str(value))
        console.print(table)

    emit(as_json, _stat_row(st), human)


@cli.command("create")
@click.argument("url")
@click.option("--max-messages", type=int, help="POSIX/memory: how many messages fit.")
@click.option("--max-message-size", type=int, help="POSIX/memory: largest message in bytes.")
@click.option("--max-bytes", type=int, help="SysV/memory: capacity in bytes (msg_qbytes).")
@click.option("--mode", default="600", show_default=True, help="Permission bits, octal.")
@click.option("--exclusive", is_flag=True, help="Fail (exit 6) if the queue exists.")
@json_option
def create_command(
    url: str,
    max_messages: int | None,
    max_message_size: int | None,
    max_bytes: int | None,
    mode: str,
    exclusive: bool,
    as_json: bool,
) -> None:
    """Create a queue (or open it if it exists, unless --exclusive).

    \b
    Examples:
      unimq create posix:///orders --max-messages 10 --max-message-size 1024
      unimq create sysv://51234 --max-bytes 8192 --mode 660 --exclusive
    """
    try:
        mode_bits = int(mode, 8)
    except ValueError:
        raise click.BadParameter(f"{mode!r} is not an octal mode", param_hint="--mode") from None
    options = {
        k: v
        for k, v in (
            ("max_messages", max_messages),
            ("max_message_size", max_message_size),
            ("max_bytes", max_bytes),
        )
        if v is not None
    }
    with unimq.open(url, create=True, exclusive=exclusive, mode=mode_bits, **options) as q:
        st = q.stat()
    emit(as_json, _stat_row(st), lambda: click.echo(f"ready: {st.url}"))


def _load_model(ref: str) -> type[BaseModel]:
    module_name, _, attr = ref.partition(":")
    if not attr:
        raise click.BadParameter("use module:Class", param_hint="--model")
    try:
        model = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {ref}: {exc}", param_hint="--model") from None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise click.BadParameter(f"{ref} is not a pydantic model", param_hint="--model")
    return model


def _payloads(data: str | None, file: Any, lines: bool) -> list[bytes]:
    if file is not None:
        if data is not None:
            raise click.UsageError("give DATA or --file, not both")
        raw: bytes = file.read()
    elif data == "-" or (data is None and not sys.stdin.isatty()):
        raw = sys.stdin.buffer.read()
    elif data is not None:
        raw = data.encode()
    else:
        raise click.UsageError("give DATA, '-' for standard input, or --file")
    if lines:
        return [line for line in raw.splitlines() if line]
    return [raw]


@cli.command("send")
@click.argument("url")
@click.argument("data", required=False)
@click.option("--mtype", type=int, default=1, show_default=True, help="SysV/memory message type.")
@click.option("--priority", type=int, default=0, show_default=True, help="POSIX/memory priority.")
@click.option("--model", "model_ref", help="Validate each message as JSON of module:Class first.")
@click.option("--lines", is_flag=True, help="One message per input line.")
@click.option("--file", type=click.File("rb"), help="Read the message from a file.")
@click.option("--timeout", type=float, help="Seconds to wait while the queue is full.")
@json_option
def send_command(
    url: str,
    data: str | None,
    mtype: int,
    priority: int,
    model_ref: str | None,
    lines: bool,
    file: Any,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Send DATA (or standard input, or a file) to the queue at URL.

    \b
    Examples:
      unimq send sysv://51234 "hello" --mtype 3
      seq 1000 | unimq send posix:///numbers - --lines --priority 2
      unimq send posix:///orders '{"sku": "A1", "qty": 2}' --model shop.models:Order
    """
    payloads = _payloads(data, file, lines)
    if model_ref:
        model = _load_model(model_ref)
        for i, payload in enumerate(payloads):
            try:
                model.model_validate_json(payload)
            except ValidationError as exc:
                first = exc.errors()[0]
                fail(
                    f"message {i + 1} is not a valid {model.__name__}: {first['msg']} "
                    f"at {'.'.join(map(str, first['loc'])) or 'top level'}; nothing was sent",
                    1,
                )
    with unimq.open(url, access="w") as q:
        bar = _progress(len(payloads), "sending")
        if bar is None:
            for payload in payloads:
                q.send(payload, mtype=mtype, priority=priority, timeout=timeout)
        else:
            with bar:
                task = bar.add_task("sending", total=len(payloads))
                for payload in payloads:
                    q.send(payload, mtype=mtype, priority=priority, timeout=timeout)
                    bar.advance(task)
    emit(
        as_json,
        {"url": url, "sent": len(payloads)},
        lambda: click.echo(f"sent {len(payloads)} message(s) to {url}"),
    )


def _message_json(msg: unimq.Message) -> dict[str, Any]:
    try:
        text: str | None = msg.data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "data": text,
        "base64": None if text is not None else base64.b64encode(msg.data).decode(),
        "mtype": msg.mtype,
        "priority": msg.priority,
        "size": len(msg.data),
    }


def _message_text(msg: unimq.Message) -> str:
    try:
        return msg.data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(msg.data).decode()


@cli.command("recv")
@click.argument("url")
@click.option("--count", type=int, default=1, show_default=True, help="How many messages.")
@click.option("--timeout", type=float, help="Seconds to wait for each message (default: forever).")
@click.option("--mtype", type=int, default=0, help="SysV/memory selection: 0, N, or -N.")
@click.option("--follow", is_flag=True, help="Keep receiving until interrupted.")
@click.option("--show-tags", is_flag=True, help="Prefix each line with mtype and priority.")
@json_option
def recv_command(
    url: str,
    count: int,
    timeout: float | None,
    mtype: int,
    follow: bool,
    show_tags: bool,
    as_json: bool,
) -> None:
    """Receive messages and print them (text if UTF-8, else base64).

    Exits 3 if fewer than --count messages arrived in time.

    \b
    Examples:
      unimq recv sysv://51234 --mtype 3
      unimq recv posix:///orders --count 10 --timeout 2 --json
      unimq recv posix:///events --follow
    """
    if count < 1:
        raise click.BadParameter("must be at least 1", param_hint="--count")
    received = 0
    with unimq.open(url, access="r") as q:
        try:
            while follow or received < count:
                msg = q.receive(mtype=mtype, timeout=timeout)
                received += 1
                if as_json:
                    click.echo(_json_line(_message_json(msg)))
                elif show_tags:
                    click.echo(f"[mtype={msg.mtype} priority={msg.priority}] {_message_text(msg)}")
                else:
                    click.echo(_message_text(msg))
        except unimq.QueueEmpty:
            fail(f"received {received} of {count} message(s) from {url} before the timeout", 3)
        except KeyboardInterrupt:
            if not follow:
                raise


def _json_line(data: Any) -> str:
    return json.dumps(data)


def _matching(pattern: str) -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", system.MqueueNotMountedWarning)
        queues = system.list_queues()
    for st in queues:
        names = [st.url] + ([st.name] if st.name else [])
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            yield st.url


@cli.command("rm")
@click.argument("urls", nargs=-1)
@click.option("--all-matching", "pattern", help="Remove every queue whose URL matches this glob.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--missing-ok", is_flag=True, help="A queue that does not exist is not an error.")
@json_option
def rm_command(
    urls: tuple[str, ...], pattern: str | None, yes: bool, missing_ok: bool, as_json: bool
) -> None:
    """Remove queues (SysV IPC_RMID, POSIX mq_unlink): messages are lost.

    \b
    Examples:
      unimq rm sysv://51234 posix:///orders
      unimq rm --all-matching 'posix:///test-*' --yes
    """
    targets = list(urls)
    if pattern:
        matched = list(_matching(pattern))
        if matched and not yes:
            if not sys.stdin.isatty():
                fail(f"{len(matched)} queue(s) match {pattern!r}; add --yes to remove them", 2)
            click.echo("\n".join(matched))
            click.confirm(f"remove these {len(matched)} queue(s)?", abort=True)
        targets += matched
    if not targets:
        raise click.UsageError("give at least one URL, or --all-matching PATTERN")
    for url in targets:
        unimq.remove(url, missing_ok=missing_ok)
    emit(
        as_json,
        {"removed": targets},
        lambda: click.echo("\n".join(f"removed {u}" for u in targets)),
    )


@cli.command("purge")
@click.argument("url")
@json_option
def purge_command(url: str, as_json: bool) -> None:
    """Receive and discard every message queued now; the queue stays.

    \b
    Example:
      unimq purge posix:///orders
    """
    with unimq.open(url, access="r") as q:
        n = sum(1 for _ in q.drain())
    emit(
        as_json, {"url": url, "purged": n}, lambda: click.echo(f"purged {n} message(s) from {url}")
    )


@cli.command("check")
@click.argument("url")
@click.option("--max-messages", type=int)
@click.option("--max-message-size", type=int)
@click.option("--max-bytes", type=int)
@json_option
def check_command(
    url: str,
    max_messages: int | None,
    max_message_size: int | None,
    max_bytes: int | None,
    as_json: bool,
) -> None:
    """Say whether the queue could be opened or created as asked, and what stops it.

    Exits 0 if it could, 7 if a system limit stops it, 5 for a permission,
    2 for a bad URL or option.

    \b
    Example:
      unimq check posix:///orders --max-messages 50
    """
    options = {
        k: v
        for k, v in (
            ("max_messages", max_messages),
            ("max_message_size", max_message_size),
            ("max_bytes", max_bytes),
        )
        if v is not None
    }
    result = system.check(url, **options)

    def human() -> None:
        if result.ok:
            click.echo(f"ok: {result.url}: " + "; ".join(result.notes))
        else:
            click.echo(f"no: {result.problem}")

    emit(as_json, result.model_dump(), human)
    if not result.ok:
        code = 7 if result.limit else 5 if result.exists else 2 if result.exists is None else 1
        sys.exit(code)


@cli.command("watch")
@click.argument("url", required=False)
@click.option("--interval", type=float, default=1.0, show_default=True)
@click.option("--iterations", type=int, help="Stop after this many refreshes.")
@json_option
def watch_command(url: str | None, interval: float, iterations: int | None, as_json: bool) -> None:
    """Live view of queue depth and rates (one queue, or every queue).

    \b
    Examples:
      unimq watch posix:///orders
      unimq watch --iterations 3 --json
    """
    previous: dict[str, tuple[float, int]] = {}

    def snapshot() -> list[dict[str, Any]]:
        if url is not None:
            with unimq.open(url, access="r") as q:
                stats = [q.stat()]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", system.MqueueNotMountedWarning)
                stats = system.list_queues()
        now = time.monotonic()
        rows = []
        for st in stats:
            before = previous.get(st.url)
            rate = None
            if before is not None and now > before[0] and st.messages >= 0:
                rate = (st.messages - before[1]) / (now - before[0])
            previous[st.url] = (now, st.messages)
            rows.append({"url": st.url, "messages": st.messages, "bytes": st.bytes, "rate": rate})
        return rows

    def table(rows: list[dict[str, Any]]) -> Table:
        t = Table("URL", "MESSAGES", "BYTES", "NET MSG/S", title="unimq watch", box=None)
        for r in rows:
            rate = "" if r["rate"] is None else f"{r['rate']:+.1f}"
            t.add_row(
                r["url"], str(r["messages"]), "" if r["bytes"] is None else str(r["bytes"]), rate
            )
        return t

    tick = 0
    if as_json or not sys.stdout.isatty():
        while iterations is None or tick < iterations:
            rows = snapshot()
            if as_json:
                click.echo(_json_line(rows))
            else:
                console.print(table(rows))
            tick += 1
            if iterations is None or tick < iterations:
                time.sleep(interval)
        return
    with Live(table(snapshot()), console=console, refresh_per_second=4) as live:
        while iterations is None or tick < iterations:
            time.sleep(interval)
            live.update(table(snapshot()))
            tick += 1
