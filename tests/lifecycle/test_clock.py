"""Timeouts run on the monotonic clock: the wall clock jumps during a timed wait.

Setting the real CLOCK_REALTIME needs CAP_SYS_TIME and changes it for the whole
machine (time namespaces virtualize only CLOCK_MONOTONIC and CLOCK_BOOTTIME),
so the jump is made the way libfaketime makes it: a small LD_PRELOAD library,
compiled here with cc, shifts what this one process reads from CLOCK_REALTIME
(clock_gettime, gettimeofday, time) by an offset it reads from a file. The
child blocks in a timed receive; once the kernel shows it asleep, the test
sends it SIGUSR1, whose Python handler moves the wall clock by an hour, and the
wait resumes (the core re-checks its deadline every WAIT_CHUNK, set small
here). A deadline kept on the wall clock would then end at once (clock
forward) or an hour late (clock back).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import new_url
from tests.helpers import ROOT, compile_c
from tests.lifecycle.conftest import backend_ready
from unimq.testing import wait_until_blocked

SHIM = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long offset(void) {
    const char *path = getenv("FAKE_CLOCK_OFFSET_FILE");
    char buf[32] = {0};
    if (!path) return 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? strtol(buf, NULL, 10) : 0;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    long r = syscall(SYS_clock_gettime, id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += offset();
    return (int)r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}
"""

CHILD = """
import json, os, signal, sys, time
import unimq, unimq._queue
# Re-check the deadline every quarter second, so a deadline kept on the wall
# clock would show at once after a forward jump (the backend's wait is not
# cut short by the jump itself).
unimq._queue.WAIT_CHUNK = 0.25
url, jump, offset_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
options = json.loads(sys.argv[4])
jumped = []
def on_usr1(signum, frame):
    before = time.time()
    with open(offset_file, "w") as f:
        f.write(str(jump))
    jumped.append(time.time() - before)
signal.signal(signal.SIGUSR1, on_usr1)
q = unimq.open(url, create=True, **options)
try:
    print("waiting", flush=True)
    start = time.monotonic()
    try:
        q.receive(timeout=2.0)
        outcome = "message"
    except unimq.QueueEmpty:
        outcome = "empty"
    elapsed = time.monotonic() - start
finally:
    q.remove()
    q.close()
print(json.dumps({"outcome": outcome, "elapsed": elapsed, "jumped": jumped}))
"""

OPTIONS = {
    "memory": {},
    "posix": {"max_messages": 2, "max_message_size": 64},
    "sysv": {"max_bytes": 128},
}


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (cc) to build the clock-shifting library")
    tmp = tmp_path_factory.mktemp("clock")
    return compile_c(SHIM, "fakeclock.so", tmp, "-shared", "-fPIC")


def wait_asleep(pid: int) -> None:
    """Until the child's only thread is asleep in the kernel (its timed wait)."""
    assert wait_until_blocked(pid, pid=pid, timeout=60), "the child never blocked"


@pytest.mark.parametrize("kind", ["memory", "posix", "sysv"])
@pytest.mark.parametrize("jump", [3600, -3600], ids=["forward", "back"])
def test_a_wall_clock_jump_does_not_move_a_timeout(
    kind: str, jump: int, shim: Path, tmp_path: Path
) -> None:
    if kind != "memory":
        reason = backend_ready(kind)
        if reason is not None:
            pytest.skip(reason)
    # memory: the child's own process-local queue
    url = "memory://unimq-test-clock" if kind == "memory" else new_url(kind)
    offset_file = tmp_path / "offset"
    offset_file.write_text("0")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LD_PRELOAD": str(shim),
        "FAKE_CLOCK_OFFSET_FILE": str(offset_file),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(CHILD),
            url,
            str(jump),
            str(offset_file),
            json.dumps(OPTIONS[kind]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        # Bounded: a child that hangs before its wait fails the test.
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the child never said it was waiting"
        assert proc.stdout.readline() == "waiting\n"
        wait_asleep(proc.pid)
        proc.send_signal(signal.SIGUSR1)
        out, err = proc.communicate(timeout=60)  # a wall-clock deadline would wait an hour
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
            if kind != "memory":
                import unimq

                unimq.remove(url, missing_ok=True)
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    # The wall clock really moved, by the hour, inside the wait.
    assert len(result["jumped"]) == 1
    assert abs(result["jumped"][0] - jump) < 60
    # The timeout still ran its full two seconds: not cut short by a forward
    # jump, and (the communicate above returned) not stretched by a backward one.
    assert result["outcome"] == "empty"
    assert result["elapsed"] >= 2.0
