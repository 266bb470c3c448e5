"""Queue names an attacker chose are shown escaped everywhere, and every queue
``ls`` lists can be stat'ed, watched and removed by the URL it prints.

POSIX names may hold any byte but '/' and NUL, so the hostile queues are made
by a C program (any local user could run it), inside a private IPC and mount
namespace where an mqueue filesystem can be mounted for listing.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import unimq
from tests.helpers import ROOT, can_unshare, compile_c
from unimq import system
from unimq.cli import cli
from unimq.cli._display import visible

UNIMQ = Path(sys.executable).with_name("unimq")
FLAGS = ("--ipc", "--mount", "--propagation", "private")

MAKE_QUEUE = r"""
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
int main(int argc, char **argv) {
    struct mq_attr a = {0};
    a.mq_maxmsg = 2;
    a.mq_msgsize = 16;
    mqd_t q = mq_open(argv[1], O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
    return mq_send(q, "hi", 2, 0) == 0 ? 0 : 2;
}
"""

#: Markup that would recolour or hide text, an escape sequence, a bell, a TAB,
#: a bidi override (reverses what follows on screen) and a C1 CSI.
HOSTILE = "/q_[red]FAKE[bold]\x1b[31mX\x07\tY[blink on red]\u202eZ\u009b2J"
HOSTILE_URL = str(unimq.QueueURL("posix", HOSTILE))
SHOWN = visible(HOSTILE, backslash=True)


def test_visible_escapes_every_invisible_character() -> None:
    assert visible("plain [red] text") == "plain [red] text"
    assert visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert visible("\t\n\r\x00\x7f\x9b") == "\\x09\\x0a\\x0d\\x00\\x7f\\x9b"
    assert visible("\u202e\u2028\ufeff") == "\\u202e\\u2028\\ufeff"
    assert visible("bad\udcffbyte") == "bad\\xffbyte"
    assert visible("a\\x1b", backslash=True) == "a\\\\x1b"
    for text in (HOSTILE, "\x00\udcff\U000e0001"):
        assert visible(text, backslash=True).isprintable()


def test_url_of_a_hostile_name_is_plain_ascii_and_reopens_it() -> None:
    assert HOSTILE_URL.isascii() and HOSTILE_URL.isprintable()
    assert not any(c in HOSTILE_URL for c in "[]\t\x1b ")
    assert unimq.parse_url(HOSTILE_URL) == unimq.QueueURL("posix", HOSTILE)


@pytest.fixture
def make_queue(tmp_path: Path) -> Path:
    try:
        return compile_c(MAKE_QUEUE, "make_queue", tmp_path, "-lrt")
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot compile the C peer: {exc}")


def in_namespace(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a bash script in a private IPC and mount namespace (skip if refused)."""
    reason = can_unshare(*FLAGS)
    if reason:
        pytest.skip(reason)
    return subprocess.run(
        ["unshare", *FLAGS, "bash", "-eu", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={
            "PATH": f"{UNIMQ.parent}:/usr/bin:/bin:/usr/sbin:/sbin",
            "PYTHONPATH": str(ROOT),
            **env,
        },
    )


def test_hostile_posix_name_is_escaped_in_ls_watch_stat_and_errors(
    tmp_path: Path, make_queue: Path
) -> None:
    mnt = tmp_path / "mq"
    out = tmp_path / "out"
    out.mkdir()
    proc = in_namespace(
        f"""
        mkdir -p {mnt} && mount -t mqueue none {mnt}
        {make_queue} "$HOSTILE"
        {make_queue} /plain
        unimq ls --kind posix > {out}/ls.txt
        unimq ls --kind posix --json > {out}/ls.json
        unimq watch --iterations 1 > {out}/watch.txt
        unimq watch --json --iterations 1 > {out}/watch.json
        unimq stat '{HOSTILE_URL}' > {out}/stat.txt
        unimq stat '{HOSTILE_URL}' --json > {out}/stat.json
        unimq send '{HOSTILE_URL}' 'way too long for sixteen bytes' 2> {out}/error.txt || true
        for url in $(unimq ls --kind posix | awk 'NR > 1 {{print $2}}'); do
            unimq stat "$url" --json >> {out}/restat.jsonl
        done
        unimq rm --all-matching 'posix:///*' --yes > {out}/rm.txt
        ls -A {mnt} | wc -l > {out}/left.txt
        """,
        HOSTILE=HOSTILE,
    )
    assert proc.returncode == 0, proc.stderr
    texts = {p.name: p.read_text() for p in out.iterdir()}
    for name, text in texts.items():
        # Nothing reaches the screen that the terminal would act on.
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, name
        assert "\u009b" not in text and "\t" not in text, name
    for name in ("ls.txt", "watch.txt"):
        assert HOSTILE_URL in texts[name], texts[name]  # the URL, whole and percent-encoded
        assert "FAKE" in texts[name] and "[red]" not in texts[name]
    # stat shows the name escaped, with its markup as literal text.
    assert SHOWN in texts["stat.txt"]
    assert "[red]FAKE[bold]" in texts["stat.txt"]
    # JSON carries the exact name (control characters as JSON escapes) and the URL.
    listed = json.loads(texts["ls.json"])
    assert {q["name"] for q in listed} == {HOSTILE, "/plain"}
    assert {q["url"] for q in listed} == {HOSTILE_URL, "posix:///plain"}
    assert "\\u001b" in texts["ls.json"]
    sample = json.loads(texts["watch.json"])
    assert {q["url"] for q in sample} == {HOSTILE_URL, "posix:///plain"}
    assert json.loads(texts["stat.json"])["name"] == HOSTILE
    # The error names the queue by its URL: escaped too.
    assert texts["error.txt"].startswith("unimq: error: ")
    assert HOSTILE_URL in texts["error.txt"]
    # Every URL ls printed reopened the queue it names, and rm removed both.
    restat = [json.loads(line) for line in texts["restat.jsonl"].splitlines()]
    assert {q["name"] for q in restat} == {HOSTILE, "/plain"}
    assert sorted(texts["rm.txt"].splitlines()) == sorted(
        [f"removed {HOSTILE_URL}", "removed posix:///plain"]
    )
    assert texts["left.txt"].strip() == "0"


def test_rich_markup_in_a_cell_is_never_interpreted() -> None:
    from rich.console import Console
    from rich.table import Table

    from unimq.cli._display import cell

    console = Console(width=200, force_terminal=True, color_system="truecolor")
    table = Table("URL")
    table.add_row(cell("/q_[blink on red]"))
    with console.capture() as captured:
        console.print(table)
    text = captured.get()
    assert "[blink on red]" in text
    assert "\x1b[5" not in text  # no blink attribute was emitted


# ------------------------------------------------------------------ IPC_PRIVATE queues


def _private_queue() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    msqid: int = libc.msgget(0, 0o1600)  # IPC_PRIVATE | IPC_CREAT, mode 600
    if msqid < 0:
        pytest.skip(f"msgget(IPC_PRIVATE) failed: errno {ctypes.get_errno()}")
    return msqid


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_private_sysv_queue_is_listed_stated_watched_and_removed_by_its_url() -> None:
    msqid = _private_queue()
    url = f"sysv://id:{msqid}"
    try:
        code, out, _ = run("ls", "--kind", "sysv", "--json")
        assert code == 0
        mine = [q for q in json.loads(out) if q["id"] == msqid]
        assert [(q["url"], q["key"]) for q in mine] == [(url, 0)]
        code, out, _ = run("ls", "--kind", "sysv")
        assert url in out
        code, out, _ = run("stat", url, "--json")
        assert code == 0
        assert json.loads(out)["id"] == msqid
        code, out, _ = run("watch", url, "--json", "--iterations", "1")
        assert code == 0 and json.loads(out)[0]["url"] == url
        # Opening it to send cannot work (msgget opens by key): a clear usage error.
        code, _, err = run("send", url, "x")
        assert code == 2
        assert "identifier" in err and "cannot be opened" in err
    finally:
        code, out, err = run("rm", url, "--missing-ok")
    assert code == 0, err
    assert out.strip() == f"removed {url}"
    assert msqid not in {q.id for q in system.list_queues("sysv")}
    code, _, err = run("rm", url)
    assert code == 4
    assert "does not exist" in err


def test_library_removes_by_identifier() -> None:
    msqid = _private_queue()
    assert system.sysv_queue_by_id(msqid).key == 0
    unimq.remove(f"sysv://id:{msqid}")
    with pytest.raises(unimq.QueueNotFound):
        system.sysv_queue_by_id(msqid)
    with pytest.raises(unimq.QueueNotFound):
        unimq.remove(f"sysv://id:{msqid}")
    unimq.remove(f"sysv://id:{msqid}", missing_ok=True)
    with pytest.raises(unimq.InvalidURL, match="takes no options"):
        unimq.remove(f"sysv://id:{msqid}?max_bytes=5")


def test_rm_all_matching_goes_through_private_queues() -> None:
    """`rm --all-matching 'sysv*' --yes` with an IPC_PRIVATE queue among the
    matches removes every match (run in a private IPC namespace: on the host
    the pattern would match other programs' queues)."""
    make_private = "import ctypes; print(ctypes.CDLL(None, use_errno=True).msgget(0, 0o1600))"
    proc = in_namespace(
        f"""
        unimq create sysv://0x7a55aa01 > /dev/null
        unimq create sysv://0x7a55aa02 > /dev/null
        python3 -c '{make_private}' > /dev/null
        unimq ls --kind sysv --json
        unimq rm --all-matching 'sysv*' --yes --json
        unimq ls --kind sysv --json
        """
    )
    assert proc.returncode == 0, proc.stderr
    before, removed, after = (json.loads(line) for line in proc.stdout.splitlines())
    assert len(before) == 3
    assert sum(q["url"].startswith("sysv://id:") for q in before) == 1
    assert sorted(removed["removed"]) == sorted(q["url"] for q in before)
    assert removed["failed"] == []
    assert after == []


def test_urls_are_never_cut_on_a_narrow_terminal() -> None:
    from rich.console import Console
    from rich.table import Table

    from unimq.cli._display import cell, url_column

    urls = [HOSTILE_URL, "sysv://0x0000c822"]
    console = Console(width=40, force_terminal=True, color_system=None)
    table = Table("KIND", url_column(urls), "KEY", "ID", "OWNER", "MESSAGES", box=None)
    for url in urls:
        table.add_row("posix", cell(url), "", "", "0", "1")
    with console.capture() as captured:
        console.print(table)
    text = captured.get()
    assert "…" not in text
    assert "sysv://0x0000c822" in text  # short URLs fit whole on their line
    alone = Table(url_column(urls), box=None, show_header=False, pad_edge=False)
    alone.add_row(cell(HOSTILE_URL))
    with console.capture() as captured:
        console.print(alone)
    assert "".join(line.strip() for line in captured.get().splitlines()) == HOSTILE_URL
