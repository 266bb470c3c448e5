"""Every CLI command and every documented exit code, through click's CliRunner
(in-process) and through the installed ``unimq`` entry point (subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import unimq
from tests.conftest import UrlFactory
from tests.helpers import NOBODY, as_user, over_msg_max, unprivileged
from unimq.cli import cli

UNIMQ = Path(sys.executable).with_name("unimq")


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def err_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("unimq: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_has_examples_and_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "7 limit exceeded" in result.stdout
    for command in (
        "ls",
        "stat",
        "create",
        "send",
        "recv",
        "rm",
        "purge",
        "limits",
        "mount",
        "umount",
        "watch",
        "check",
        "demo",
    ):
        assert command in result.stdout
        sub = run(command, "--help")
        assert sub.exit_code == 0, command
        assert "--json" in sub.stdout, command


def test_create_send_recv_stat_purge_rm_sysv(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    assert run("create", url, "--max-bytes", "4096", "--mode", "640").exit_code == 0
    assert run("create", url, "--exclusive").exit_code == 6
    assert run("send", url, "hello", "--mtype", "3").exit_code == 0
    assert run("send", url, "-", "--lines", "--mtype", "4", input="a\nb\nc\n").exit_code == 0
    st = json.loads(run("stat", url, "--json").stdout)
    assert (st["messages"], st["max_bytes"], st["mode"]) == (4, 4096, 0o640)
    got = run("recv", url, "--mtype", "4", "--count", "2")
    assert got.stdout.splitlines() == ["a", "b"]
    tagged = run("recv", url, "--mtype", "-3", "--show-tags")
    assert tagged.stdout.strip() == "[mtype=3 priority=0] hello"
    purged = json.loads(run("purge", url, "--json").stdout)
    assert purged["purged"] == 1
    assert run("rm", url).stdout.strip() == f"removed {url}"
    assert run("rm", url).exit_code == 4
    assert run("rm", url, "--missing-ok").exit_code == 0


def test_posix_priorities_and_json_recv(make_url: UrlFactory) -> None:
    url = make_url("posix")
    assert run("create", url, "--max-messages", "4", "--max-message-size", "64").exit_code == 0
    run("send", url, "low", "--priority", "1")
    run("send", url, "high", "--priority", "9")
    lines = run("recv", url, "--count", "2", "--json").stdout.splitlines()
    assert [json.loads(x)["data"] for x in lines] == ["high", "low"]
    assert json.loads(lines[0])["priority"] == 9


def test_binary_payloads_are_base64(make_url: UrlFactory, tmp_path: Path) -> None:
    url = make_url("sysv")
    blob = tmp_path / "blob"
    blob.write_bytes(b"\xff\x00\xfe")
    run("create", url)
    assert run("send", url, "--file", str(blob)).exit_code == 0
    record = json.loads(run("recv", url, "--json").stdout)
    assert record["data"] is None
    assert record["base64"] == "/wD+"
    run("send", url, "--file", str(blob))
    assert run("recv", url).stdout.strip() == "base64:/wD+"


def test_exit_codes(make_url: UrlFactory) -> None:
    sysv, posix = make_url("sysv"), make_url("posix")
    # 4 not found
    assert run("recv", sysv, "--timeout", "0").exit_code == 4
    # 3 empty / timeout
    run("create", sysv)
    result = run("recv", sysv, "--timeout", "0.05")
    assert result.exit_code == 3
    assert "received 0 of 1" in err_line(result)
    # 2 usage: bad URL, unsupported feature, click usage errors
    assert run("stat", "nosuchscheme://x").exit_code == 2
    assert run("send", sysv, "x", "--priority", "3").exit_code == 2
    assert run("send").exit_code == 2  # missing URL
    assert run("recv", sysv, "--count", "0").exit_code == 2
    assert run("bogus-command").exit_code == 2
    # 6 exists
    assert run("create", sysv, "--exclusive").exit_code == 6
    # 7 limit exceeded
    result = run("create", posix, "--max-messages", str(over_msg_max()))
    assert result.exit_code == 7
    assert "fs.mqueue.msg_max" in err_line(result)
    # 8 too large
    run("create", posix, "--max-messages", "2", "--max-message-size", "16")
    result = run("send", posix, "x" * 17)
    assert result.exit_code == 8
    assert "17 bytes" in err_line(result)


def test_exit_code_5_permission(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    with unimq.open(url, create=True, mode=0o600):
        proc = subprocess.run(
            as_user(NOBODY, [str(UNIMQ), "send", url, "x"]),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.startswith("unimq: error: permission denied")


def test_model_validation_before_sending(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    run("create", url)
    ok = run("send", url, '{"sku": "A1", "qty": 2}', "--model", "unimq._demo:Order")
    assert ok.exit_code == 0
    bad = run("send", url, '{"sku": "A1"}', "--model", "unimq._demo:Order")
    assert bad.exit_code == 1
    assert "not a valid Order" in err_line(bad)
    assert run("send", url, "{}", "--model", "nowhere:Nothing").exit_code == 2
    with unimq.open(url) as q:
        assert q.qsize() == 1


def test_ls_json_matches_ipcs(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    with unimq.open(url, create=True) as q:
        q.send(b"12345")
        listed = json.loads(run("ls", "--kind", "sysv", "--json").stdout)
        ipcs = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in ipcs.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0].startswith("0x"):
            rows[int(parts[1])] = (
                int(parts[0], 16),
                int(parts[3], 8),
                int(parts[4]),
                int(parts[5]),
            )
    key = int(url.removeprefix("sysv://"))
    mine = [r for r in listed if r["url"] == f"sysv://0x{key:08x}"]
    assert len(mine) == 1
    entry = mine[0]
    assert rows[entry["id"]] == (entry["key"], entry["mode"], entry["bytes"], entry["messages"])
    assert (entry["messages"], entry["bytes"]) == (1, 5)
    assert {r["id"] for r in listed if r["kind"] == "sysv"} == set(rows)


def test_ls_without_mqueue_mount_says_so() -> None:
    from unimq import system

    if system.mqueue_mount() is not None:
        pytest.skip("an mqueue fs is mounted here")
    result = run("ls")
    assert result.exit_code == 0
    assert "no mqueue filesystem is mounted" in result.stderr


def test_rm_all_matching(make_url: UrlFactory) -> None:
    urls = [make_url("sysv") for _ in range(2)]
    for url in urls:
        unimq.open(url, create=True).close()
    keys = [f"sysv://0x{int(u.removeprefix('sysv://')):08x}" for u in urls]
    pattern = keys[0][:-1] + "*"  # matches the first key only (different last digit odds aside)
    needs_yes = run("rm", "--all-matching", pattern)
    assert needs_yes.exit_code == 2
    assert "--yes" in needs_yes.stderr
    removed = json.loads(run("rm", "--all-matching", keys[1], "--yes", "--json").stdout)
    assert removed["removed"] == [keys[1]]
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(urls[1])
    unimq.open(urls[0]).close()


def test_limits_and_check() -> None:
    data = json.loads(run("limits", "--json").stdout)
    assert data["msg_max"] == int(Path("/proc/sys/fs/mqueue/msg_max").read_text())
    assert "fs.mqueue.msg_max" in run("limits").stdout
    ok = run("check", "posix:///unimq-check-only", "--max-messages", "2")
    assert ok.exit_code == 0
    assert ok.stdout.startswith("ok:")
    too_many = run(
        "check", "posix:///unimq-check-only", "--max-messages", str(over_msg_max()), "--json"
    )
    assert too_many.exit_code == 7
    assert json.loads(too_many.stdout)["limit"] == "fs.mqueue.msg_max"
    assert run("check", "sysv://notakey").exit_code == 2
    with pytest.raises(unimq.QueueNotFound):
        unimq.open("posix:///unimq-check-only")  # check never creates


def test_limits_set_unprivileged_is_permission_denied() -> None:
    proc = subprocess.run(
        unprivileged([str(UNIMQ), "limits", "set", "fs.mqueue.msg_max", "20"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 5, proc.stderr
    assert "cannot write fs.mqueue.msg_max" in proc.stderr
    unknown = run("limits", "set", "fs.nothing", "1")
    assert unknown.exit_code == 2


def test_watch_json_iterations(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    with unimq.open(url, create=True) as q:
        q.send(b"x")
        result = run("watch", url, "--iterations", "2", "--interval", "0.05", "--json")
    ticks = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(ticks) == 2
    assert ticks[0][0]["messages"] == 1
    assert ticks[0][0]["depth_change_per_s"] is None  # no previous sample yet
    assert ticks[1][0]["depth_change_per_s"] == 0.0
    assert ticks[1][0]["seconds_since_previous_sample"] > 0
    assert "rate" not in ticks[1][0]  # depth change is not throughput: never called a rate


def test_demo_json() -> None:
    result = run("demo", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["backends"] == {"memory": "ok", "posix": "ok", "sysv": "ok"}


def test_installed_entry_point_and_module() -> None:
    assert UNIMQ.exists() or shutil.which("unimq")
    proc = subprocess.run([str(UNIMQ), "--version"], capture_output=True, text=True, check=True)
    assert "unimq" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "unimq", "stat", "posix:///unimq-not-there"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1
