"""Queue commands: ls, stat, create, send, recv, rm, purge, check."""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import importlib
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import click
from pydantic import BaseModel, ValidationError
from rich.table import Table

import unimq
from unimq import system
from unimq._names import sysv_id
from unimq._options import check_timeout
from unimq._waiting import Deadline
from unimq.cli._app import (
    OutputClosed,
    abandon_stdout,
    cli,
    emit,
    error_text,
    exit_code,
    fail,
    json_option,
    out,
    render,
)
from unimq.cli._display import cell, url_column, visible
from unimq.cli._keep import Stopper, Terminated, keep_message, output_problem

__all__ = ["stat_of"]

logger = logging.getLogger("unimq.cli")


def _stat_row(st: unimq.QueueStat) -> dict[str, Any]:
    return st.model_dump(mode="json")


def _owner(st: unimq.QueueStat) -> str:
    return "" if st.uid is None else str(st.uid)


def shown_url(url: str) -> str:
    """The queue's URL as every message shows it: parsed and percent-encoded."""
    return str(unimq.parse_url(url))


def _by_id(url: str) -> int | None:
    """The msqid of a ``sysv://id:N`` address, or None for any other URL."""
    parsed = unimq.parse_url(url)
    return sysv_id(parsed.target) if parsed.scheme == "sysv" else None


def stat_of(url: str) -> unimq.QueueStat:
    """One queue's state, by any address ``ls`` prints (``sysv://id:N`` included)."""
    msqid = _by_id(url)
    if msqid is not None:
        return system.sysv_queue_by_id(msqid)
    with unimq.open(url, access="r") as q:
        return q.stat()


def _partial(as_json: bool, record: dict[str, Any], message: str, exc: BaseException) -> NoReturn:
    """Report a command that did part of its work, then exit with the error's code."""
    if isinstance(exc, Terminated):
        code = 128 + exc.signum
        reason = f"interrupted ({signal.Signals(exc.signum).name})"
    else:
        code = exit_code(exc)
        reason = error_text(exc)
    if as_json:
        with contextlib.suppress(OutputClosed):  # the stderr line below says it all
            out(json.dumps({**record, "error": reason, "exit_code": code}))
    fail(f"{message}: {reason}", code)


@cli.command("ls")
@click.argument("servers", nargs=-1, metavar="[SERVER_URL]...")
@click.option("--kind", type=click.Choice(["sysv", "posix"]), help="Only this kind.")
@json_option
def ls_command(servers: tuple[str, ...], kind: str | None, as_json: bool) -> None:
    """List every queue of both kinds visible here (like ipcs -q plus the mqueue fs),
    or the queues on the network servers named (redis://host:port).

    Each URL is printed as stat prints it (percent-encoded where the name needs
    it, never with a password), so it reopens the same queue; a SysV queue
    without a key (IPC_PRIVATE) is listed as sysv://id:N, which stat, watch and
    rm take.

    \b
    Examples:
      unimq ls
      unimq ls --kind sysv --json
      unimq ls redis://cache.example:6379
    """
    if servers:
        if kind is not None:
            raise click.UsageError("--kind lists this machine's kernel queues, not a server's")
        queues: list[unimq.QueueStat] = []
        for server in servers:
            backend = unimq.get_backend(unimq.parse_url(server).scheme)
            lister = getattr(backend, "_list", None)
            if lister is None:
                raise click.UsageError(
                    f"{shown_url(server)}: ls takes network server URLs (redis://host:port); "
                    "kernel queues are listed without one"
                )
            queues += lister(server)
        _show_queues(queues, as_json)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", system.MqueueNotMountedWarning)
        queues = system.list_queues(kind)
    for w in caught:
        if issubclass(w.category, system.MqueueNotMountedWarning):
            click.echo(f"unimq: note: {visible(str(w.message))}", err=True)
    _show_queues(queues, as_json)


def _show_queues(queues: list[unimq.QueueStat], as_json: bool) -> None:
    def human() -> None:
        table = Table(
            "KIND",
            url_column(st.url for st in queues),
            "KEY",
            "ID",
            "OWNER",
            "MODE",
            "MESSAGES",
            "BYTES",
            box=None,
        )
        for st in queues:
            table.add_row(
                st.kind,
                cell(st.url),
                "" if st.key is None else f"0x{st.key:08x}",
                "" if st.id is None else str(st.id),
                _owner(st),
                "" if st.mode is None else f"{st.mode:o}",
                "?" if st.messages < 0 else str(st.messages),
                "" if st.bytes is None else str(st.bytes),
            )
        render(table)

    emit(as_json, [_stat_row(st) for st in queues], human)


@cli.command("stat")
@click.argument("url")
@json_option
def stat_command(url: str, as_json: bool) -> None:
    """Show one queue's state: counts, limits, owner, mode, times.

    \b
    Examples:
      unimq stat posix:///orders
      unimq stat sysv://id:65538         a queue without a key, as ls lists it
    """
    st = stat_of(url)

    def human() -> None:
        table = Table(box=None, show_header=False)
        for key, value in st.model_dump().items():
            if value is not None:
                table.add_row(key, cell(f"{value:o}" if key == "mode" else str(value)))
        render(table)

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

    Prints "created URL", or "exists URL" when the queue was there already
    (its attributes are then left as they are, with a warning if they differ).

    \b
    Examples:
      unimq create posix:///orders --max-messages 10 --max-message-size 1024
      unimq create sysv://51234 --max-bytes 8192 --mode 660 --exclusive
    """
    try:
        mode_bits = int(mode, 8)
    except ValueError:
        raise click.BadParameter(f"{mode!r} is not an octal mode", param_hint="--mode") from None
    options: dict[str, Any] = {
        k: v
        for k, v in (
            ("max_messages", max_messages),
            ("max_message_size", max_message_size),
            ("max_bytes", max_bytes),
        )
        if v is not None
    }
    try:
        q = unimq.open(url, create=True, exclusive=True, mode=mode_bits, **options)
        created = True
    except unimq.QueueExists:
        if exclusive:
            raise
        q = unimq.open(url, create=True, mode=mode_bits, **options)
        created = False
    with q:
        st = q.stat()
    logger.info("%s %s", "created" if created else "opened the existing queue", st.url)
    emit(
        as_json,
        {**_stat_row(st), "created": created},
        lambda: out(f"{'created' if created else 'exists'} {visible(st.url)}"),
    )


def _load_model(ref: str) -> type[BaseModel]:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise click.BadParameter(f"{ref!r}: use module:Class", param_hint="--model")
    # As `python -m` does: modules in the current directory can be imported.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        model = importlib.import_module(module_name)
        for part in attr.split("."):
            model = getattr(model, part)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(
            f"cannot load {ref}: {exc} (modules are looked up in the current directory "
            f"{cwd} and on PYTHONPATH)",
            param_hint="--model",
        ) from None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise click.BadParameter(f"{ref} is not a pydantic model class", param_hint="--model")
    return model


def _payloads(data: str | None, file: Any, lines: bool) -> list[bytes]:
    if file is not None:
        if data is not None:
            raise click.UsageError("give DATA or --file, not both")
        raw: bytes = file.read()
    elif data == "-" or (data is None and sys.stdin is not None and not sys.stdin.isatty()):
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
@click.option(
    "--model",
    "model_ref",
    help="Validate each message as JSON of module:Class first (the current directory "
    "is importable, as with python -m).",
)
@click.option("--lines", is_flag=True, help="One message per input line (empty lines skipped).")
@click.option("--file", type=click.File("rb"), help="Read the message from a file.")
@click.option(
    "--timeout", type=float, help="Seconds each message may wait while the queue is full."
)
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

    With --model every message is validated before the first is sent: one
    invalid message means none is sent (exit 1). If sending stops part way
    (the queue stayed full past --timeout: exit 3), the error says how many
    went, and --json prints {"sent": K, "total": N, ...}: resend only the rest.

    \b
    Examples:
      unimq send sysv://51234 "hello" --mtype 3
      seq 1000 | unimq send posix:///numbers - --lines --priority 2
      unimq send posix:///orders '{"sku": "A1", "qty": 2}' --model shop.models:Order
    """
    payloads = _payloads(data, file, lines)
    total = len(payloads)
    if model_ref:
        model = _load_model(model_ref)
        for i, payload in enumerate(payloads):
            try:
                model.model_validate_json(payload)
            except ValidationError as exc:
                first = exc.errors()[0]
                fail(
                    f"message {i + 1} of {total} is not a valid {model.__name__}: "
                    f"{first['msg']} at {'.'.join(map(str, first['loc'])) or 'top level'}; "
                    "nothing was sent",
                    1,
                )
    if timeout is not None:
        timeout = check_timeout(timeout)
    sent = 0
    shown = shown_url(url)
    with unimq.open(url, access="w") as q, Stopper() as stop:
        try:
            if total == 1:
                stop.check()
                _send_one(q, payloads[0], mtype, priority, timeout, stop)
                sent = 1
            else:
                items: list[bytes] | list[unimq.Message] = (
                    payloads
                    if mtype == 1 and priority == 0
                    else [unimq.Message(p, mtype, priority) for p in payloads]
                )
                sent = _send_batches(q, items, timeout, stop)
        except _Stopped as stopped:
            sent = stopped.sent
            if sent:
                logger.info("sent %d of %d message(s) to %s", sent, total, shown)
            _partial(
                as_json,
                {"url": shown, "sent": sent, "total": total},
                f"sent {sent} of {total} message(s) to {shown}, then stopped"
                + (f" (messages {sent + 1}..{total} were not sent)" if total > 1 else ""),
                stopped.error,
            )
        except (unimq.UnimqError, OSError, ValueError, Terminated) as exc:
            if sent:
                logger.info("sent %d of %d message(s) to %s", sent, total, shown)
            _partial(
                as_json,
                {"url": shown, "sent": sent, "total": total},
                f"sent {sent} of {total} message(s) to {shown}, then stopped"
                + (f" (messages {sent + 1}..{total} were not sent)" if total > 1 else ""),
                exc,
            )
    logger.info("sent %d message(s) to %s", sent, shown)
    emit(
        as_json,
        {"url": shown, "sent": sent, "total": total},
        lambda: out(f"sent {sent} message(s) to {visible(shown)}"),
    )


#: The longest a CLI wait lasts before it looks at a pending SIGINT/SIGTERM.
WAIT_SLICE = 0.1


#: Messages per send_many call of ``send --lines`` (one call into C per batch).
SEND_BATCH = 64


class _Stopped(Exception):
    """Sending stopped part way: how many went, and why."""

    def __init__(self, sent: int, error: BaseException) -> None:
        super().__init__(sent)
        self.sent = sent
        self.error = error


def _send_batches(
    q: unimq.Queue,
    items: list[bytes] | list[unimq.Message],
    timeout: float | None,
    stop: Stopper,
) -> int:
    """Send every item in order with send_many, as ``_send_one`` would one by
    one: each message may wait ``timeout`` for room (the deadline restarts
    whenever one went), waits are sliced so that a signal is honoured between
    slices, never inside a send, and the count of sent messages is exact
    (``_Stopped`` carries it)."""
    sent = 0
    total = len(items)
    deadline = Deadline(timeout)
    try:
        while sent < total:
            stop.check()
            left = deadline.remaining()
            chunk = items[sent : sent + SEND_BATCH]
            try:
                sent += q.send_many(
                    chunk, timeout=WAIT_SLICE if left is None else min(left, WAIT_SLICE)
                )
            except unimq.QueueFull as exc:
                went = exc.sent or 0
                sent += went
                if went:
                    deadline = Deadline(timeout)
                elif left is not None and (left <= WAIT_SLICE or deadline.expired()):
                    raise unimq.QueueFull(
                        f"{shown_url(q.url)} stayed full for {timeout:g} s", url=q.url
                    ) from None
                continue
            except (unimq.MessageTooLarge, unimq.UnsupportedOperation) as exc:
                if exc.sent:
                    sent += exc.sent
                    raise
                # A bad item stops send_many before the chunk's first message;
                # one by one, the messages before it go, as they always did.
                for item in chunk:
                    msg = item if isinstance(item, unimq.Message) else unimq.Message(item)
                    stop.check()
                    _send_one(q, msg.data, msg.mtype, msg.priority, timeout, stop)
                    sent += 1
                raise AssertionError("unreachable: send_many refused this chunk") from exc
            except unimq.UnimqError as exc:
                sent += exc.sent or 0
                raise
            deadline = Deadline(timeout)
    except (unimq.UnimqError, OSError, ValueError, Terminated) as exc:
        raise _Stopped(sent, exc) from exc
    return sent


def _send_one(
    q: unimq.Queue,
    payload: bytes,
    mtype: int,
    priority: int,
    timeout: float | None,
    stop: Stopper,
) -> None:
    """Send one message, waiting at most ``timeout`` for room in slices, so that
    a signal never lands inside a send and leaves the count of sent messages
    in doubt."""
    deadline = Deadline(timeout)
    while True:
        left = deadline.remaining()
        try:
            q.send(
                payload,
                mtype=mtype,
                priority=priority,
                timeout=WAIT_SLICE if left is None else min(left, WAIT_SLICE),
            )
            return
        except unimq.QueueFull:
            if left is not None and (left <= WAIT_SLICE or deadline.expired()):
                raise unimq.QueueFull(
                    f"{shown_url(q.url)} stayed full for {timeout:g} s", url=q.url
                ) from None
            stop.check()


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except (OSError, ValueError):
        return False


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
@click.option(
    "--count", type=int, help="How many messages (default 1; with --peek: all queued, at most N)."
)
@click.option("--timeout", type=float, help="Seconds to wait for each message (default: forever).")
@click.option("--mtype", type=int, default=0, help="SysV/memory selection: 0, N, or -N.")
@click.option(
    "--except-mtype",
    type=int,
    metavar="N",
    help="SysV: the first message of any type but N (msgrcv MSG_EXCEPT).",
)
@click.option(
    "--peek",
    is_flag=True,
    help="SysV: show the queued messages without taking them (msgrcv MSG_COPY); never waits.",
)
@click.option("--follow", is_flag=True, help="Keep receiving until interrupted.")
@click.option("--show-tags", is_flag=True, help="Prefix each line with mtype and priority.")
@json_option
def recv_command(
    url: str,
    count: int | None,
    timeout: float | None,
    mtype: int,
    except_mtype: int | None,
    peek: bool,
    follow: bool,
    show_tags: bool,
    as_json: bool,
) -> None:
    """Receive messages and print them (text if UTF-8, else base64).

    --peek (SysV) shows the queued messages in order and takes none: all of
    them, or the first --count; it never waits (an empty queue shows nothing,
    exit 0). Other kinds of queue cannot peek: exit 2. --except-mtype N (SysV)
    takes the first message whose type is not N.

    On a terminal, control characters in the text are shown escaped (\\x1b);
    into a pipe or file the text is written as it is. Exits 3 if fewer than
    --count messages arrived in time. Messages are taken one at a time. No
    message is lost: standard output is checked before each is taken (closed,
    read-only, or a pipe nobody reads: exit 1, nothing taken), and a message
    that still cannot be written is saved to a file named on stderr (exit 1).

    \b
    Examples:
      unimq recv sysv://51234 --mtype 3
      unimq recv posix:///orders --count 10 --timeout 2 --json
      unimq recv posix:///events --follow
      unimq recv sysv://51234 --peek --count 5
      unimq recv sysv://51234 --except-mtype 9
    """
    if count is not None and count < 1:
        raise click.BadParameter("must be at least 1", param_hint="--count")
    if timeout is not None:
        timeout = check_timeout(timeout)
    if except_mtype is not None and mtype != 0:
        raise click.UsageError("give --mtype or --except-mtype, not both")
    if peek:
        for given, name in (
            (follow, "--follow"),
            (timeout is not None, "--timeout"),
            (mtype != 0, "--mtype"),
            (except_mtype is not None, "--except-mtype"),
        ):
            if given:
                raise click.UsageError(f"{name} does not apply with --peek (it never waits)")
        _peek(url, count, as_json, show_tags)
        return
    if count is None:
        count = 1
    received = 0
    shown = shown_url(url)
    with unimq.open(url, access="r") as q, Stopper() as stop:
        take = _taker(q, mtype, except_mtype)
        try:
            while follow or received < count:
                stop.check()
                problem = output_problem()
                if problem is not None:
                    before = f" ({received} received and written before)" if received else ""
                    fail(f"{problem}; no message was taken from {shown}{before}", 1)
                try:
                    # One message at a time, each checked for a writable stdout first:
                    # a batch would take messages a closed stdout could not show.
                    with stop.waiting():
                        msgs = [take(timeout)]
                except unimq.QueueEmpty:
                    fail(
                        f"received {received} of {count} message(s) from {shown} "
                        "before the timeout",
                        3,
                    )
                # From here until they are written, a signal cannot lose the messages.
                for i, msg in enumerate(msgs):
                    _write_or_keep(msg, as_json, show_tags, received, shown, q, stop, msgs[i + 1 :])
                    received += 1
                    logger.debug("received a message of %d bytes from %s", len(msg.data), shown)
        except Terminated as exc:
            logger.info("received %d message(s) from %s", received, shown)
            if follow and exc.signum == signal.SIGINT:
                return  # Ctrl-C is how --follow ends
            _partial(False, {}, f"received and wrote {received} message(s) from {shown}", exc)
    logger.info("received %d message(s) from %s", received, shown)


def _taker(
    q: unimq.Queue, mtype: int, except_mtype: int | None
) -> Callable[[float | None], unimq.Message]:
    """receive(mtype=...) or, for --except-mtype, the SysV receive_except(N)."""
    if except_mtype is None:
        return lambda timeout: q.receive(mtype=mtype, timeout=timeout)
    receive_except: Callable[..., unimq.Message] | None = getattr(q, "receive_except", None)
    if receive_except is None:
        raise unimq.UnsupportedOperation(
            f"{q.scheme}:// queues cannot receive 'any type except N' (--except-mtype); "
            "that is a sysv:// feature (msgrcv MSG_EXCEPT)",
            url=q.url,
        )
    return lambda timeout: receive_except(except_mtype, timeout=timeout)


def _peek(url: str, count: int | None, as_json: bool, show_tags: bool) -> None:
    """recv --peek: the queued messages, none taken (SysV browse())."""
    shown = shown_url(url)
    with unimq.open(url, access="r") as q:
        browse: Callable[[], Iterator[unimq.Message]] | None = getattr(q, "browse", None)
        if browse is None:
            raise unimq.UnsupportedOperation(
                f"{q.scheme}:// queues cannot be peeked at (recv --peek): only sysv:// "
                "queues can show messages without taking them (msgrcv MSG_COPY); "
                "receive them with 'unimq recv' instead",
                url=q.url,
            )
        shown_count = 0
        for msg in browse():
            if count is not None and shown_count >= count:
                break
            out(_message_line(msg, as_json, show_tags))
            shown_count += 1
    logger.info("showed %d message(s) of %s without taking them", shown_count, shown)


def _message_line(msg: unimq.Message, as_json: bool, show_tags: bool) -> str:
    """A message as recv prints it: JSON, or its text (escaped on a terminal)."""
    if as_json:
        return json.dumps(_message_json(msg))
    text = _message_text(msg)
    if _stdout_is_terminal():
        # Whoever may send to the queue chooses these bytes: on a terminal, show
        # control characters (escape sequences) instead of handing them to it.
        text = visible(text)
    return f"[mtype={msg.mtype} priority={msg.priority}] {text}" if show_tags else text


def _write_or_keep(
    msg: unimq.Message,
    as_json: bool,
    show_tags: bool,
    received: int,
    shown: str,
    q: unimq.Queue,
    stop: Stopper,
    rest: list[unimq.Message] | None = None,
) -> None:
    """Write a received message out, or save it (and ``rest``: the messages
    taken with it and not written yet) and exit saying where they are."""
    line = _message_line(msg, as_json, show_tags)
    try:
        with stop.waiting():  # a write into a full pipe may block: interruptible
            out(line)
    except (OutputClosed, Terminated) as exc:
        if isinstance(exc, OutputClosed):
            reason, code = exc.reason, 1
        else:
            reason = f"interrupted ({signal.Signals(exc.signum).name})"
            code = 128 + exc.signum
        abandon_stdout()  # the lines are in the saved files; nothing more goes to stdout
        kept = [keep_message(m, shown, q.capabilities) for m in [msg, *(rest or ())]]
        text = kept[0]
        if len(kept) > 1:
            text += f"; the {len(kept) - 1} message(s) taken with it and not written: " + "; ".join(
                kept[1:]
            )
        fail(f"{reason} while writing message {received + 1} taken from {shown}; " + text, code)


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
@click.option(
    "--all-matching", "pattern", help="Remove every queue whose URL (or name) matches this glob."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--missing-ok", is_flag=True, help="A queue that does not exist is not an error.")
@json_option
def rm_command(
    urls: tuple[str, ...], pattern: str | None, yes: bool, missing_ok: bool, as_json: bool
) -> None:
    """Remove queues (SysV IPC_RMID, POSIX mq_unlink): messages are lost.

    Like rm(1), every queue is tried: one that cannot be removed is reported
    on stderr and the others are still removed; the exit code is that of the
    first failure. A queue matched by --all-matching that is gone by the time
    it is removed is not an error.

    \b
    Examples:
      unimq rm sysv://51234 posix:///orders
      unimq rm sysv://id:65538           a queue without a key, as ls lists it
      unimq rm --all-matching 'posix:///test-*' --yes
    """
    targets = [(url, missing_ok) for url in urls]
    if pattern:
        matched = list(_matching(pattern))
        if matched and not yes:
            if sys.stdin is None or not sys.stdin.isatty():
                fail(f"{len(matched)} queue(s) match {pattern!r}; add --yes to remove them", 2)
            click.echo("\n".join(visible(m) for m in matched))
            click.confirm(f"remove these {len(matched)} queue(s)?", abort=True)
        targets += [(url, True) for url in matched]
    if not targets:
        raise click.UsageError("give at least one URL, or --all-matching PATTERN")
    removed: list[str] = []
    failed: list[dict[str, Any]] = []
    for url, ok_if_missing in targets:
        try:
            unimq.remove(url, missing_ok=ok_if_missing)
            url = shown_url(url)  # never a password typed in the URL
        except (unimq.UnimqError, OSError, ValueError) as exc:
            code = exit_code(exc)
            with contextlib.suppress(unimq.UnimqError):
                url = shown_url(url)
            failed.append({"url": url, "error": error_text(exc), "exit_code": code})
            click.echo(f"unimq: error: {visible(error_text(exc))}", err=True)
            continue
        removed.append(url)
        logger.info("removed %s", url)
        if not as_json:
            out(f"removed {visible(url)}")
    if as_json:
        out(json.dumps({"removed": removed, "failed": failed}))
    if failed:
        fail(
            f"removed {len(removed)} of {len(targets)} queue(s); {len(failed)} could not be "
            "removed (see above)",
            failed[0]["exit_code"],
        )


@cli.command("purge")
@click.argument("url")
@json_option
def purge_command(url: str, as_json: bool) -> None:
    """Receive and discard every message queued now; the queue stays.

    If it stops part way (interrupted, the queue removed), the error says how
    many messages were discarded before.

    \b
    Example:
      unimq purge posix:///orders
    """
    n = 0
    shown = shown_url(url)
    with unimq.open(url, access="r") as q, Stopper() as stop:
        try:
            for _ in q.drain():
                n += 1
                stop.check()
        except (unimq.UnimqError, OSError, ValueError, Terminated) as exc:
            logger.info("purged %d message(s) from %s", n, shown)
            _partial(
                as_json,
                {"url": shown, "purged": n},
                f"purged {n} message(s) from {shown}, then stopped",
                exc,
            )
    logger.info("purged %d message(s) from %s", n, shown)
    emit(
        as_json,
        {"url": shown, "purged": n},
        lambda: out(f"purged {n} message(s) from {visible(shown)}"),
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
            out(f"ok: {visible(result.url)}: " + visible("; ".join(result.notes)))
        else:
            out(f"no: {visible(result.problem or '')}")

    emit(as_json, result.model_dump(), human)
    if not result.ok:
        code = 7 if result.limit else 5 if result.exists else 2 if result.exists is None else 1
        sys.exit(code)
