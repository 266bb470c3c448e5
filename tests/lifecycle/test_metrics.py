"""The metrics endpoint, scraped over HTTP and parsed with prometheus_client's parser."""

from __future__ import annotations

import json
import os
import pwd
import re
import select
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import IO

import pytest

import unimq
from tests.conftest import new_sysv_key
from tests.helpers import ROOT, can_unshare
from tests.lifecycle import kernel
from tests.lifecycle.conftest import backend_ready, parse_metrics, sample, scrape
from unimq import system
from unimq.system._sysvproc import sysv_msg_entry

NAMESPACE = ["unshare", "--ipc", "--mount", "--propagation", "private"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` from the repository (60 s at most), capturing its text output."""
    return subprocess.run(
        argv, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=60, check=False
    )


def read_line(stream: IO[str], timeout: float = 60) -> str:
    """One line from a child's stdout, failing instead of waiting unbounded."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return stream.readline()


@pytest.fixture
def sysv_queue() -> Iterator[tuple[int, int]]:
    """A real SysV queue made with msgget (not by unimq), holding two messages."""
    key = new_sysv_key()
    msqid = kernel.sysv_create(key)
    try:
        kernel.sysv_send(msqid, b"a" * 10, mtype=1)
        kernel.sysv_send(msqid, b"b" * 20, mtype=2)
        yield key, msqid
    finally:
        kernel.sysv_remove(msqid)


def test_cli_endpoint_reports_a_sysv_queue_and_the_limits(sysv_queue: tuple[int, int]) -> None:
    key, _ = sysv_queue
    url = f"sysv://0x{key:08x}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "unimq", "metrics", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = read_line(proc.stdout)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert match, line
        samples = parse_metrics(scrape(match.group(0)))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    row = sysv_msg_entry(key=key)
    assert row is not None
    owner = pwd.getpwuid(os.geteuid()).pw_name
    labels = {"kind": "sysv", "url": url, "owner": owner}
    assert sample(samples, "unimq_queue_messages", **labels) == 2
    assert sample(samples, "unimq_queue_bytes", **labels) == 30
    assert sample(samples, "unimq_queue_last_send_timestamp_seconds", **labels) == row["stime"]
    assert sample(samples, "unimq_queue_last_receive_timestamp_seconds", **labels) is None
    assert sample(samples, "unimq_listing_up", source="sysv") == 1
    with open("/proc/sys/kernel/msgmnb") as f:
        assert sample(samples, "unimq_limit", name="kernel.msgmnb") == int(f.read())
    assert sample(samples, "unimq_limit", name="RLIMIT_MSGQUEUE.soft") is not None


def test_sysv_capacity_comes_from_the_queue_itself(sysv_queue: tuple[int, int]) -> None:
    reason = backend_ready("sysv")
    if reason is not None:
        pytest.skip(reason)
    key, _ = sysv_queue
    url = f"sysv://0x{key:08x}"
    samples = parse_metrics(system.metrics_text())
    with unimq.open(url, access="r") as q:
        assert sample(samples, "unimq_queue_capacity_bytes", url=url) == q.stat().max_bytes


def test_library_server_reports_listed_urls_and_stops_on_close(memory_url: str) -> None:
    with unimq.open(memory_url, create=True, max_messages=8, max_message_size=64) as q:
        for i in range(3):
            q.send(b"x" * (i + 1))
        with system.serve_metrics("127.0.0.1:0", urls=[memory_url]) as server:
            assert server.url == f"http://127.0.0.1:{server.port}/metrics"
            samples = parse_metrics(scrape(server.url))
        q.remove()
    assert sample(samples, "unimq_queue_messages", kind="memory", url=memory_url) == 3
    assert sample(samples, "unimq_queue_capacity_messages", url=memory_url) == 8
    assert sample(samples, "unimq_listing_up", source=memory_url) == 1
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=30)


def test_an_unreadable_url_is_reported_not_fatal() -> None:
    samples = parse_metrics(system.metrics_text(["memory://unimq-test-missing-metrics"]))
    assert sample(samples, "unimq_listing_up", source="memory://unimq-test-missing-metrics") == 0
    assert sample(samples, "unimq_listing_up", source="sysv") == 1


def test_once_prints_parseable_text() -> None:
    proc = _run([sys.executable, "-m", "unimq", "metrics", "--once"])
    assert proc.returncode == 0, proc.stderr
    samples = parse_metrics(proc.stdout)
    assert sample(samples, "unimq_limit", name="kernel.msgmax") is not None


@pytest.mark.parametrize("address", ["nope", "127.0.0.1:99999", "127.0.0.1:"])
def test_bad_listen_address_is_a_usage_error(address: str) -> None:
    proc = _run([sys.executable, "-m", "unimq", "metrics", "--listen", address])
    assert proc.returncode == 2
    assert "HOST:PORT" in proc.stderr


POSIX_SERVER = """
    import os, sys, tempfile
    from tests.lifecycle import kernel
    from unimq import system
    where = system.mount(tempfile.mkdtemp())
    fd = kernel.posix_create("/unimq-test-metrics", 4, 64)
    kernel.posix_send(fd, b"x" * 5)
    kernel.posix_send(fd, b"y" * 7, priority=3)
    try:
        with system.serve_metrics("127.0.0.1:0") as server:
            print(server.url, flush=True)
            sys.stdin.readline()
    finally:
        kernel.posix_close(fd)
        kernel.posix_unlink("/unimq-test-metrics")
        system.umount(where)
        os.rmdir(where)
"""


def scrape_posix_namespace() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape a server inside a private IPC + mount namespace holding one POSIX queue."""
    reason = can_unshare(*NAMESPACE[1:])
    if reason is not None:
        pytest.skip(reason)
    proc = subprocess.Popen(
        [*NAMESPACE, sys.executable, "-c", textwrap.dedent(POSIX_SERVER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = read_line(proc.stdout).strip()
        assert url.startswith("http://127.0.0.1:"), url
        samples = parse_metrics(scrape(url))
    finally:
        _, err = proc.communicate("\n", timeout=60)
    assert proc.returncode == 0, err
    return samples


def test_posix_queue_from_the_mqueue_fs() -> None:
    samples = scrape_posix_namespace()
    url = "posix:///unimq-test-metrics"
    assert sample(samples, "unimq_listing_up", source="posix") == 1
    assert sample(samples, "unimq_queues", kind="posix") == 1
    assert sample(samples, "unimq_queue_bytes", kind="posix", url=url) == 12
    assert sample(samples, "unimq_queue_last_change_timestamp_seconds", url=url) is not None


def test_posix_depth_and_capacity_through_the_backend() -> None:
    reason = backend_ready("posix")
    if reason is not None:
        pytest.skip(reason)
    samples = scrape_posix_namespace()
    url = "posix:///unimq-test-metrics"
    assert sample(samples, "unimq_queue_messages", url=url) == 2
    assert sample(samples, "unimq_queue_capacity_messages", url=url) == 4
    assert sample(samples, "unimq_queue_max_message_size_bytes", url=url) == 64


def test_posix_not_mounted_is_reported_as_down() -> None:
    reason = can_unshare(*NAMESPACE[1:])
    if reason is not None:
        pytest.skip(reason)
    code = "from unimq import system; print(system.metrics_text())"
    proc = _run([*NAMESPACE, sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    samples = parse_metrics(proc.stdout)
    if system.mqueue_mount() is None:  # the namespace inherits the host's mounts
        assert sample(samples, "unimq_listing_up", source="posix") == 0


def test_json_figures_are_the_scraped_ones(sysv_queue: tuple[int, int]) -> None:
    key, _ = sysv_queue
    url = f"sysv://0x{key:08x}"
    proc = _run([sys.executable, "-m", "unimq", "metrics", "--once", "--json"])
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    (row,) = [q for q in figures["queues"] if q["url"] == url]
    assert row["messages"] == 2 and row["bytes"] == 30 and row["kind"] == "sysv"
    samples = parse_metrics(system.metrics_text())
    assert row["last_send_timestamp_seconds"] == sample(
        samples, "unimq_queue_last_send_timestamp_seconds", url=url
    )
    assert figures["up"]["sysv"] is True
    assert figures["limits"]["kernel.msgmnb"] == sample(
        samples, "unimq_limit", name="kernel.msgmnb"
    )


def test_every_writes_json_lines_until_count() -> None:
    proc = _run([sys.executable, "-m", "unimq", "metrics", "--every", "0.01", "--count", "3"])
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 3
    assert all("queues" in line and "limits" in line for line in lines)
    assert lines[0]["time"] <= lines[1]["time"] <= lines[2]["time"]


@pytest.mark.parametrize("args", [["--count", "2"], ["--once", "--every", "1"], ["--every", "0"]])
def test_every_usage_errors(args: list[str]) -> None:
    proc = _run([sys.executable, "-m", "unimq", "metrics", *args])
    assert proc.returncode == 2, proc.stderr
