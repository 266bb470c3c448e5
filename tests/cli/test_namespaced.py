"""mount / umount / limits set / POSIX listing, only ever inside a private
IPC + mount namespace (never the host's mounts or sysctls)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.helpers import NOBODY, ROOT, as_user, can_unshare

UNIMQ = Path(sys.executable).with_name("unimq")
FLAGS = ("--ipc", "--mount", "--propagation", "private")


def in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    reason = can_unshare(*FLAGS)
    if reason:
        pytest.skip(reason)
    return subprocess.run(
        ["unshare", *FLAGS, "bash", "-euo", "pipefail", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": f"{UNIMQ.parent}:/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONPATH": str(ROOT)},
    )


def test_mount_list_and_umount(tmp_path: Path) -> None:
    mnt = tmp_path / "mq"
    proc = in_namespace(f"""
        unimq mount {mnt}
        unimq mount {mnt}                      # an existing mount is left alone
        unimq create posix:///ns-orders --max-messages 3 --max-message-size 32
        unimq send posix:///ns-orders hello --priority 2
        cat {mnt}/ns-orders
        unimq ls --kind posix --json
        unimq rm posix:///ns-orders
        ls -A {mnt} | wc -l
        unimq umount {mnt}
        unimq umount {mnt} || echo "second umount exit $?"
    """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == f"mqueue mounted at {mnt}"
    assert out[1] == f"mqueue mounted at {mnt}"
    qsize_line = next(line for line in out if line.startswith("QSIZE:"))
    assert qsize_line.split()[0] == "QSIZE:5"
    listed = json.loads(next(line for line in out if line.startswith("[")))
    assert [(q["name"], q["messages"], q["max_messages"], q["bytes"]) for q in listed] == [
        ("/ns-orders", 1, 3, 5)
    ]
    assert "0" in out
    assert out[-2] == f"unmounted {mnt}"
    assert out[-1] == "second umount exit 2"
    # The host never saw the mount.
    assert str(mnt) not in Path("/proc/self/mountinfo").read_text()


def test_limits_set_in_private_namespace() -> None:
    host_before = Path("/proc/sys/fs/mqueue/msg_max").read_text()
    proc = in_namespace("""
        unimq limits set fs.mqueue.msg_max 5
        unimq limits set msgmnb 4096
        unimq limits --json
        unimq create posix:///ns-q --max-messages 6 || echo "exit $?"
        unimq limits set fs.mqueue.msg_max -1 || echo "exit $?"
    """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[:2] == ["fs.mqueue.msg_max = 5", "msgmnb = 4096"]
    data = json.loads(out[2])
    assert (data["msg_max"], data["msgmnb"]) == (5, 4096)
    assert out[3] == "exit 7"
    assert out[4] == "exit 2"
    assert Path("/proc/sys/fs/mqueue/msg_max").read_text() == host_before


def test_mount_of_another_ipc_namespace_is_detected(tmp_path: Path) -> None:
    """A mount made in one IPC namespace keeps showing that namespace's queues
    after the process moves to a new one: mount_shows_this_namespace() tells."""
    if can_unshare("--ipc") is not None:
        pytest.skip("unshare --ipc is refused here")
    mnt = tmp_path / "mq"
    probe = f"from unimq import system; print(system.mount_shows_this_namespace({str(mnt)!r}))"
    proc = in_namespace(f"""
        mkdir -p {mnt}
        mount -t mqueue none {mnt}
        python -c {probe!r}
        unshare --ipc python -c {probe!r}
        umount {mnt}
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]


def test_mount_never_hides_what_is_there(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    other = tmp_path / "other"
    proc = in_namespace(f"""
        unimq mount {full} || echo "non-empty exit $?"
        cat {full}/keep.txt; echo
        mkdir -p {other} && mount -t tmpfs none {other} && touch {other}/on-tmpfs
        rm {other}/on-tmpfs
        unimq mount {other} || echo "mount point exit $?"
        grep -c " {other} " /proc/self/mountinfo
        unimq mount {other} --force
        grep " {other} " /proc/self/mountinfo | grep -c mqueue
        unimq mount {full} --force
        ls -A {full} | wc -l
        umount {full}
        cat {full}/keep.txt; echo
    """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "non-empty exit 6"
    assert out[1] == "mine"  # still there, not hidden
    assert out[2] == "mount point exit 6"
    assert out[3] == "1"  # only the tmpfs: nothing was mounted over it
    assert out[4] == f"mqueue mounted at {other}"
    assert out[5] == "1"
    assert out[6] == f"mqueue mounted at {full}"
    assert out[7] == "0"  # --force: the mqueue fs (empty) now hides the file
    assert out[8] == "mine"  # and it is back once unmounted
    errors = proc.stderr.splitlines()
    assert "is not empty" in errors[0] and "--force" in errors[0]
    assert "already a mount point (tmpfs filesystem)" in errors[1]


def test_failed_mount_removes_the_directories_it_made() -> None:
    """Without CAP_SYS_ADMIN (as nobody) the mount fails: exit 5, and the
    directories the command created for it are gone again."""
    shared = Path(tempfile.mkdtemp(prefix="unimq-mount-test-", dir="/tmp"))
    try:
        shared.chmod(0o1777)  # nobody may create directories here
        target = shared / "new" / "deeper"
        as_nobody = shlex.join(as_user(NOBODY, [sys.executable, "-m", "unimq", "mount"]))
        proc = in_namespace(f"""
            {as_nobody} {target} || echo "exit $?"
            ls -A {shared} | wc -l
        """)
    finally:
        shutil.rmtree(shared)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["exit 5", "0"]
    assert "needs CAP_SYS_ADMIN" in proc.stderr
