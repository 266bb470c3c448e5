"""System commands: limits [set], mount, umount, demo."""

from __future__ import annotations

import logging

import click
from rich.table import Table

from unimq import system
from unimq._demo import run_demo
from unimq.cli._app import cli, emit, fail, json_option, out, render
from unimq.cli._display import visible

logger = logging.getLogger("unimq.cli")

HINTS = {
    "msg_max": "most messages per POSIX queue (without CAP_SYS_RESOURCE)",
    "msgsize_max": "largest POSIX message (without CAP_SYS_RESOURCE)",
    "queues_max": "POSIX queues in this IPC namespace",
    "msg_default": "POSIX max_messages when none is given",
    "msgsize_default": "POSIX max_message_size when none is given",
    "msgmax": "largest SysV message",
    "msgmnb": "SysV queue capacity in bytes (default and ceiling)",
    "msgmni": "SysV queues in this IPC namespace",
}


@cli.group("limits", invoke_without_command=True)
@json_option
@click.pass_context
def limits_command(ctx: click.Context, as_json: bool) -> None:
    """Show the kernel's queue limits (sysctls, RLIMIT_MSGQUEUE, CAP_SYS_RESOURCE).

    \b
    Examples:
      unimq limits
      unimq limits set fs.mqueue.msg_max 100      (as root)
    """
    if ctx.invoked_subcommand is not None:
        return
    lim = system.limits()

    def human() -> None:
        table = Table("LIMIT", "VALUE", "MEANING", box=None)
        for name, value in lim.sysctls().items():
            table.add_row(name, "?" if value is None else str(value), HINTS[name.rsplit(".", 1)[1]])
        soft, hard = lim.rlimit_msgqueue_soft, lim.rlimit_msgqueue_hard
        table.add_row("RLIMIT_MSGQUEUE", f"{soft} (hard {hard})", "bytes of POSIX queues per user")
        table.add_row(
            "CAP_SYS_RESOURCE", "yes" if lim.cap_sys_resource else "no", "lifts the POSIX caps"
        )
        render(table)

    emit(as_json, lim.model_dump(), human)


@limits_command.command("set")
@click.argument("name")
@click.argument("value", type=int)
@json_option
def limits_set_command(name: str, value: int, as_json: bool) -> None:
    """Write a queue sysctl, e.g. fs.mqueue.msg_max or kernel.msgmnb (needs root)."""
    system.set_limit(name, value)
    emit(as_json, {"name": name, "value": value}, lambda: out(f"{visible(name)} = {value}"))


@cli.command("mount")
@click.argument("path", default=system.DEFAULT_MOUNT)
@click.option(
    "--force",
    is_flag=True,
    help="Mount even over a mount point or a non-empty directory (hiding what is there).",
)
@json_option
def mount_command(path: str, force: bool, as_json: bool) -> None:
    """Mount the mqueue filesystem (default /dev/mqueue); an existing mqueue mount is left alone.

    A directory that is already a mount point, or is not empty, is refused
    (exit 6) unless --force: mounting there would hide what it holds. A
    directory this command created is removed again if the mount fails.
    """
    where = system.mount(path, force=force)
    emit(as_json, {"mounted": where}, lambda: out(f"mqueue mounted at {visible(where)}"))


@cli.command("umount")
@click.argument("path", default=system.DEFAULT_MOUNT)
@json_option
def umount_command(path: str, as_json: bool) -> None:
    """Unmount the mqueue filesystem at PATH (the queues themselves stay)."""
    system.umount(path)
    emit(as_json, {"unmounted": path}, lambda: out(f"unmounted {visible(path)}"))


@cli.command("demo")
@json_option
def demo_command(as_json: bool) -> None:
    """Send and receive typed messages over every available backend.

    Creates a small uniquely named queue per backend and removes it again.
    """
    lines: list[str] = []
    outcome = run_demo(lines.append if as_json else out)
    emit(as_json, {"backends": outcome, "log": lines}, lambda: None)
    failed = [s for s, o in outcome.items() if o not in ("ok", "not installed")]
    if failed:
        fail(f"demo failed on: {', '.join(failed)}", 1)
