"""Capacity-matched batches: the batch table of bench.run again, with the kernel
queues given the room faster-fifo's shared ring has (``FIFO_BYTES``, 1 MiB).

    python -m bench.matched --json OUT --outer-ipc NS [--count N] [--runs R] [--sizes 16,4096]

At this machine's default limits a POSIX queue holds 10 messages and a SysV
queue 16 KiB, while faster-fifo gets 1 MiB. Here the same cases run in a
private IPC namespace whose sysctls are raised first: kernel.msgmnb to 1 MiB
(every SysV queue's ``msg_qbytes``) and fs.mqueue.msg_max to
``MAX_MESSAGES``, and each POSIX queue gets as many messages of the payload's
size as RLIMIT_MSGQUEUE lets one queue have (``posix_depth``). Those sysctls
belong to the namespace and vanish with it; the host's are never written.

The process refuses, writing nothing, unless it can tell that its IPC
namespace is a private one: it must differ from PID 1's (when readable), from
the kernel's initial namespace, and from ``--outer-ipc``, the namespace of
the process that started it. ``launch()`` (used by bench.run) starts it
through ``unshare --ipc``; where unshare is refused (it needs CAP_SYS_ADMIN)
the results carry ``{"skipped": reason}`` instead of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import batches
from bench.codecs import SMALL

ROOT = Path(__file__).resolve().parent.parent
#: The kernel's initial IPC namespace (PROC_IPC_INIT_INO): the host's, on a machine
#: that is not itself a container.
INITIAL_IPC = "ipc:[4026531839]"
#: fs.mqueue.msg_max in the namespace: the deepest POSIX queue asked for.
MAX_MESSAGES = 1000
#: Bytes the kernel charges to RLIMIT_MSGQUEUE per message besides its payload
#: (a struct msg_msg and a posix_msg_tree_node, 48 bytes each on 64-bit Linux).
MQ_OVERHEAD = 96
#: The share of RLIMIT_MSGQUEUE (per user, shared by every POSIX queue of the
#: user) one benchmark queue may take; the rest stays for the user's other queues.
RLIMIT_SHARE = 0.75
#: The POSIX queue of the typed JSON batches: messages of this size at most.
TYPED_MESSAGE_SIZE = 1 << (len(SMALL.model_dump_json()) - 1).bit_length()
#: The sysctls written in the namespace, besides fs.mqueue.msg_max.
MSGMNB = batches.FIFO_BYTES
SYSCTL = Path("/proc/sys")


# ---------------------------------------------------------------- the guard


def ipc_namespace(pid: str = "self") -> str | None:
    """``pid``'s IPC namespace (``ipc:[inode]``), or None when it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/ipc")
    except OSError:
        return None


def refusal(outer: str | None) -> str | None:
    """Why this process must not write IPC sysctls, or None: its IPC namespace is
    a private one (not PID 1's, not the initial one, not ``outer``)."""
    return refusal_for(ipc_namespace(), ipc_namespace("1"), outer)


def refusal_for(own: str | None, init: str | None, outer: str | None) -> str | None:
    """``refusal()`` for a process in IPC namespace ``own`` (None: unreadable),
    PID 1's namespace being ``init`` and its launcher's ``outer``."""
    if own is None:
        return "cannot read /proc/self/ns/ipc, so cannot tell which IPC namespace this is"
    hint = "start it through `unshare --ipc` (python -m bench.run does)"
    for same, whose in (
        (own == init, "PID 1's"),
        (own == INITIAL_IPC, "the kernel's initial"),
        (own == outer, "its launcher's (--outer-ipc)"),
    ):
        if same:
            return (
                f"this process runs in {whose} IPC namespace ({own}), whose sysctls are "
                f"the host's: {hint}"
            )
    if init is None and outer is None:
        return (
            f"cannot tell whether IPC namespace {own} is private: /proc/1/ns/ipc is "
            "unreadable here and no --outer-ipc was given (the namespace this was "
            f"started from); {hint}"
        )
    return None


# ---------------------------------------------------------------- the limits


def _sysctl(name: str) -> int:
    return int((SYSCTL / name).read_text())


def raise_limits(sizes: list[int]) -> dict[str, int]:
    """Write the namespace's IPC sysctls; return them as read back.

    Only ever called after ``refusal()`` returned None."""
    wanted = {
        "kernel/msgmnb": MSGMNB,
        "fs/mqueue/msg_max": MAX_MESSAGES,
        "fs/mqueue/msgsize_max": max(8192, *sizes, TYPED_MESSAGE_SIZE),
    }
    for name, value in wanted.items():
        (SYSCTL / name).write_text(f"{value}\n")
    got = {name.replace("/", "."): _sysctl(name) for name in (*wanted, "kernel/msgmax")}
    for name, value in wanted.items():
        if got[name.replace("/", ".")] != value:
            raise RuntimeError(f"{name} reads {got[name.replace('/', '.')]} after writing {value}")
    return got


def rlimit_msgqueue() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_MSGQUEUE)[0]


def posix_depth(size: int, rlimit: int) -> int:
    """Messages of ``size`` bytes for one POSIX queue: up to faster-fifo's bytes and
    ``MAX_MESSAGES``, within ``RLIMIT_SHARE`` of RLIMIT_MSGQUEUE."""
    budget = int(rlimit * RLIMIT_SHARE)
    return max(1, min(MAX_MESSAGES, batches.FIFO_BYTES // size, budget // (size + MQ_OVERHEAD)))


def posix_queue(size: int, rlimit: int) -> dict[str, int]:
    """The attributes of the POSIX queue for ``size``-byte messages, as the kernel
    gave them: opened once, read back with stat(), removed. Where this user's
    other queues leave less room (EMFILE), the depth halves until one opens."""
    import unimq

    depth = posix_depth(size, rlimit)
    while True:
        url = f"posix:///unimq-bench-matched-probe-{os.getpid()}"
        try:
            q = unimq.open(url, create=True, max_messages=depth, max_message_size=size)
        except unimq.LimitExceeded:
            if depth == 1:
                raise
            depth //= 2
            continue
        try:
            st = q.stat()
        finally:
            q.remove(missing_ok=True)
            q.close()
        if st.max_messages is None or st.max_message_size is None:
            raise RuntimeError(f"stat() of {url} did not give the queue's attributes: {st}")
        return {"max_messages": st.max_messages, "max_message_size": st.max_message_size}


def sysv_bytes() -> int:
    """``msg_qbytes`` of a new SysV queue here (stat() of one, then removed)."""
    import unimq

    q = unimq.open(f"sysv://{0x5C000000 + os.getpid() % 0xFFFFFF}", create=True)
    try:
        qbytes = q.stat().max_bytes
        if qbytes is None:
            raise RuntimeError(f"stat() of {q.url} did not give msg_qbytes")
        return qbytes
    finally:
        q.remove(missing_ok=True)
        q.close()


# ---------------------------------------------------------------- the run


def measure(count: int, runs: int, sizes: list[int]) -> dict[str, Any]:
    """The batch cases per size and the typed batches, paired rounds as in
    bench.run; call only inside the namespace, after ``raise_limits``."""
    from bench import run

    rlimit = rlimit_msgqueue()
    out: dict[str, Any] = {
        "queues": {},
        "batches": {},
        "batches_runs": {},
        "rlimit_msgqueue": rlimit,
    }
    qbytes = sysv_bytes()
    with run.c_programs() as c:
        for size in sizes:
            posix = posix_queue(size, rlimit)
            out["queues"][str(size)] = {
                "posix": posix,
                "sysv max_bytes": qbytes,
                "faster-fifo max_bytes": batches.FIFO_BYTES,
            }
            samples = run.interleaved(batches.cases(run, c, size, count, posix), runs)
            row = {name: statistics.median(values) for name, values in samples.items()}
            out["batches"][str(size)] = row
            out["batches_runs"][str(size)] = samples
            print(
                f"matched batches {size} B (POSIX {posix['max_messages']} x "
                f"{posix['max_message_size']} B, SysV {qbytes} B): "
                + ", ".join(f"{k} {v / 1000:.0f}k" for k, v in row.items()),
                flush=True,
            )
        typed = posix_queue(TYPED_MESSAGE_SIZE, rlimit)
        out["queues"]["typed"] = {"posix": typed, "sysv max_bytes": qbytes}
        tcount = (count // 2) - (count // 2) % batches.BATCH
        typed_samples = run.interleaved(batches.typed_cases(run, tcount, typed), runs)
        out["typed_batches"] = {k: statistics.median(v) for k, v in typed_samples.items()}
        out["typed_batches_runs"] = typed_samples
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True, type=Path, help="write the results here")
    parser.add_argument("--outer-ipc", help="the IPC namespace this was started from")
    parser.add_argument("--count", type=int, default=20000, help="messages per run")
    parser.add_argument("--runs", type=int, default=1, help="rounds (median reported)")
    parser.add_argument("--sizes", default="16,256,4096", help="payload sizes, comma-separated")
    args = parser.parse_args(argv)
    why = refusal(args.outer_ipc)
    if why is not None:
        print(f"bench.matched: refused, no sysctl written: {why}", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    limits = raise_limits(sizes)
    print(f"matched limits (IPC namespace {ipc_namespace()}): {limits}", flush=True)
    count = args.count - args.count % batches.BATCH
    results = {"limits": limits, **measure(count, args.runs, sizes)}
    args.json.write_text(json.dumps(results, indent=2))
    return 0


def launch(count: int, runs: int, sizes: list[int]) -> dict[str, Any]:
    """This module's run in a new IPC namespace (``unshare --ipc``), or
    ``{"skipped": reason}`` where no such namespace can be made."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return {"skipped": "unshare (util-linux) is not installed"}
    probe = subprocess.run([unshare, "--ipc", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        said = probe.stderr.strip() or f"exit status {probe.returncode}"
        return {"skipped": f"`unshare --ipc` was refused ({said}); it needs CAP_SYS_ADMIN"}
    outer = ipc_namespace()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "matched.json"
        cmd = [unshare, "--ipc", "--", sys.executable, "-m", "bench.matched", "--json", str(path)]
        cmd += ["--count", str(count), "--runs", str(runs), "--sizes", ",".join(map(str, sizes))]
        if outer is not None:
            cmd += ["--outer-ipc", outer]
        subprocess.run(cmd, check=True, cwd=ROOT, env=env)
        result: dict[str, Any] = json.loads(path.read_text())
    return result


if __name__ == "__main__":
    sys.exit(main())
