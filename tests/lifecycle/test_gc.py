"""unimq gc / unimq.system.orphans against real queues in a private IPC namespace.

Everything runs in ``unshare --ipc --mount --propagation private``: the
namespace holds only the queues these tests make (so "exactly those and
nothing else" can be asserted) and they vanish with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import NOBODY, ROOT, as_user, can_unshare, wait_exited
from unimq import UnimqError
from unimq.system._orphans import parse_age
from unimq.system._runtime import process_start, process_state, runtime_dir

NAMESPACE = ["unshare", "--ipc", "--mount", "--propagation", "private"]

# The driver: sets up a crashed creator and decoys, runs the CLI, prints one JSON line.
DRIVER = r'''
import json, os, signal, subprocess, sys, tempfile
from tests.lifecycle import kernel
from unimq import system
from unimq.system._orphans import confirm, register
from unimq.system._runtime import process_start

where = system.mount(tempfile.mkdtemp())
env = dict(os.environ)

def gc(*args, user=None):
    cmd = [sys.executable, "-m", "unimq", "gc", "--json", *args]
    run_env = env
    if user is not None:
        home = tempfile.mkdtemp()
        os.chown(home, user, user)
        run_env = {**env, "UNIMQ_RUNTIME_DIR": home}
        # as the parent's tests.helpers.as_user builds it (reaches pyenv Pythons too)
        prefix = json.loads(os.environ["UNIMQ_TEST_AS_NOBODY"])
        assert user == 65534, user
        cmd = [*prefix, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)

CHILD = """
import sys
from tests.lifecycle import kernel
from unimq.system._orphans import confirm, register
for key in (0x7E180001, 0x7E180002):
    path = register(f"sysv://0x{key:08x}", "sysv", key=key)
    confirm(path, id=kernel.sysv_create(key))
fd = kernel.posix_create("/unimq-test-crashed", 4, 64)
kernel.posix_send(fd, b"left behind")
print("ready", flush=True)
sys.stdin.readline()
"""
child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
assert child.stdout.readline() == "ready\n"

# Decoys. A temporary of a living creator (this process):
path = register("sysv://0x7e180003", "sysv", key=0x7E180003)
confirm(path, id=kernel.sysv_create(0x7E180003))
# A never-used queue (last sender and receiver pids 0):
kernel.sysv_create(0x7E180004)
# A POSIX queue this process holds open:
held = kernel.posix_create("/unimq-test-held", 4, 64)
# A queue last used by a process that has exited (sender and receiver known, dead):
dead_used = kernel.sysv_create(0x7E180005)
subprocess.run([sys.executable, "-c",
    "from tests.lifecycle import kernel; "
    f"kernel.sysv_send({dead_used}, b'a'); kernel.sysv_send({dead_used}, b'b'); "
    f"kernel.sysv_receive({dead_used})"], check=True, env=env, timeout=60)
# A queue last used by this living process:
live_used = kernel.sysv_create(0x7E180006)
kernel.sysv_send(live_used, b"x")
kernel.sysv_receive(live_used)
# A registry entry naming this pid with another start time: the pid was reused.
path = register("sysv://0x7e180007", "sysv", key=0x7E180007)
confirm(path, id=kernel.sysv_create(0x7E180007))
entry = json.loads(path.read_text())
entry["creator_start"] += 1
path.write_text(json.dumps(entry))
# A registry entry of a dead creator whose queue is already gone (stale):
path = register("sysv://0x7e180008", "sysv", key=0x7E180008)
entry = json.loads(path.read_text())
gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                      capture_output=True, text=True, check=True).stdout
entry["creator_pid"] = int(gone)
path.write_text(json.dumps(entry))

os.kill(child.pid, signal.SIGKILL)
child.wait(timeout=60)

human = subprocess.run([sys.executable, "-m", "unimq", "gc"], capture_output=True, text=True,
                       env={**env, "COLUMNS": "300"}, timeout=60)
out = {"dry": gc(), "nobody": gc(user=65534), "human": [human.returncode, human.stdout],
       "sysv_only": gc("--kind", "sysv")}
out["yes"] = gc("--yes")
out["again"] = gc()
out["match"] = gc("--yes", "--match", f"sysv://{0x7E180005}")
out["sysv_left"] = sorted(f"0x{r['key']:08x}" for r in __import__(
    "unimq.system._sysvproc", fromlist=["x"]).sysv_msg_entries())
out["posix_left"] = sorted(os.listdir(where))
out["registry_left"] = len(os.listdir(os.path.join(os.environ["UNIMQ_RUNTIME_DIR"], "temporary")))
kernel.posix_close(held)
print(json.dumps(out))
'''


def run_in_namespace(code: str, tmp_path: Path) -> dict[str, Any]:
    reason = can_unshare(*NAMESPACE[1:])
    if reason is not None:
        pytest.skip(reason)
    runtime = tmp_path / "runtime"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "UNIMQ_RUNTIME_DIR": str(runtime),
        "UNIMQ_TEST_AS_NOBODY": json.dumps(as_user(NOBODY, [])),
    }
    proc = subprocess.run(
        [*NAMESPACE, sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def by_action(report: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"remove": set(), "candidate": set()}
    for o in report["orphans"]:
        found[o["action"]].add(o["url"])
    return found


CRASHED = {"sysv://0x7e180001", "sysv://0x7e180002", "posix:///unimq-test-crashed"}
REUSED_PID = "sysv://0x7e180007"
DEAD_USERS = "sysv://0x7e180005"


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_in_namespace(DRIVER, tmp_path_factory.mktemp("gc"))


def test_dry_run_finds_the_crashed_creators_queues_and_nothing_else(
    outcome: dict[str, Any],
) -> None:
    dry = outcome["dry"]
    assert dry["dry_run"] is True
    assert by_action(dry) == {"remove": {*CRASHED, REUSED_PID}, "candidate": {DEAD_USERS}}
    assert dry["removed"] == []
    temporary = {o["url"] for o in dry["orphans"] if o["temporary"]}
    assert temporary == {"sysv://0x7e180001", "sysv://0x7e180002", REUSED_PID}
    assert any("0x7e180008" in s for s in dry["stale"])
    assert dry["not_inspected"] == []


def test_human_output_is_a_dry_run_table(outcome: dict[str, Any]) -> None:
    code, text = outcome["human"]
    assert code == 0
    assert "would remove" in text and "candidate" in text
    assert "dry run: nothing was removed" in text
    assert "candidates are removed only when named with --match" in text
    for url in (*CRASHED, REUSED_PID, DEAD_USERS):
        assert url in text


def test_kind_filter(outcome: dict[str, Any]) -> None:
    urls = {o["url"] for o in outcome["sysv_only"]["orphans"]}
    assert urls == {"sysv://0x7e180001", "sysv://0x7e180002", REUSED_PID, DEAD_USERS}


def test_yes_removes_exactly_those(outcome: dict[str, Any]) -> None:
    assert set(outcome["yes"]["removed"]) == {*CRASHED, REUSED_PID}
    assert outcome["yes"]["failed"] == {}
    assert by_action(outcome["again"]) == {"remove": set(), "candidate": {DEAD_USERS}}
    assert outcome["again"]["stale"] == []


def test_a_sysv_candidate_goes_only_when_matched_by_its_decimal_key(
    outcome: dict[str, Any],
) -> None:
    assert outcome["match"]["removed"] == [DEAD_USERS]
    # Left: the living creator's temporary, the never-used one, the live user's.
    assert outcome["sysv_left"] == ["0x7e180003", "0x7e180004", "0x7e180006"]
    assert outcome["posix_left"] == ["unimq-test-held"]
    assert outcome["registry_left"] == 1  # the living creator's entry


def test_without_privilege_it_says_what_it_could_not_inspect(outcome: dict[str, Any]) -> None:
    report = outcome["nobody"]
    assert any("other users" in note for note in report["not_inspected"])
    # Root's descriptors are hidden from nobody: a held queue looks unused, so it
    # is only a candidate, never removed without --match.
    actions = {o["url"]: o["action"] for o in report["orphans"]}
    assert actions["posix:///unimq-test-held"] == "candidate"
    assert all(a == "candidate" for url, a in actions.items() if url.startswith("posix"))


def test_older_than_keeps_recent_queues(tmp_path: Path) -> None:
    code = """
    import json, os, sys, tempfile
    from tests.lifecycle import kernel
    from unimq import system
    system.mount(tempfile.mkdtemp())
    fd = kernel.posix_create("/unimq-test-recent", 4, 64)
    kernel.posix_close(fd)
    recent = system.orphans(older_than="1h")
    now = system.orphans(older_than=0)
    print(json.dumps({"recent": [o.url for o in recent.orphans],
                      "now": [o.url for o in now.orphans]}))
    """
    out = run_in_namespace(code, tmp_path)
    assert out == {"recent": [], "now": ["posix:///unimq-test-recent"]}


# ---------------------------------------------------------------------- pieces


def test_process_identity_survives_pid_reuse() -> None:
    start = process_start(os.getpid())
    assert start is not None
    assert process_state(os.getpid(), start) == "alive"
    assert process_state(os.getpid(), start + 1) == "gone"


def test_a_killed_unreaped_process_counts_as_gone() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        start = process_start(child.pid)
        assert start is not None
        assert process_state(child.pid, start) == "alive"
        os.kill(child.pid, signal.SIGKILL)
        wait_exited(child.pid)  # a zombie now: ended, not reaped
        assert process_start(child.pid) is None
        assert process_state(child.pid, start) == "gone"
    finally:
        child.kill()
        child.wait(timeout=60)
        assert child.stdin is not None
        child.stdin.close()


def test_runtime_dir_refuses_unsafe_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o700)
    loose.chmod(0o777)
    monkeypatch.setenv("UNIMQ_RUNTIME_DIR", str(loose))
    with pytest.raises(UnimqError, match="writable by others"):
        runtime_dir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    monkeypatch.setenv("UNIMQ_RUNTIME_DIR", str(link))
    with pytest.raises(UnimqError, match="not a directory"):
        runtime_dir()
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, NOBODY, NOBODY)
    monkeypatch.setenv("UNIMQ_RUNTIME_DIR", str(other))
    if os.geteuid() == 0:
        with pytest.raises(UnimqError, match="belongs to uid 65534"):
            runtime_dir()
    fresh = tmp_path / "fresh" / "unimq"
    monkeypatch.setenv("UNIMQ_RUNTIME_DIR", str(fresh))
    assert runtime_dir() == fresh
    assert fresh.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("5", 5)]
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "5q", "-1s", "1h30m"])
def test_parse_age_rejects(text: str) -> None:
    with pytest.raises(UnimqError, match="age must be like"):
        parse_age(text)
