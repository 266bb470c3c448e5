"""Run every example as a real subprocess against unique keys and names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory
from tests.helpers import wait_for
from unimq.testing import exists, wait_until_blocked

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
needs_sysv = pytest.mark.skipif(not HAVE_SYSV, reason="unimq-sysv is not installed")
needs_posix = pytest.mark.skipif(not HAVE_POSIX, reason="unimq-posix is not installed")


def start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args!r} hung; stderr: {err}")
    assert proc.returncode == 0, err
    return out


@needs_sysv
def test_sender_and_receiver(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    receiver = start("sysv_receiver.py", url)
    sender = start("sysv_sender.py", url, "25")
    assert "sent 25 messages" in finish(sender)
    out = finish(receiver).splitlines()
    assert out[:25] == [f"message {i}" for i in range(25)]
    assert out[-1] == "received 25 messages; end marker seen, queue removed"
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)


@needs_sysv
def test_receiver_started_after_sender(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    finish(start("sysv_sender.py", url, "3"))
    out = finish(start("sysv_receiver.py", url)).splitlines()
    assert out == ["message 0", "message 1", "message 2", out[-1]]


@needs_sysv
def test_odd_and_even_consumers(make_url: UrlFactory) -> None:
    url = make_url("sysv")
    odd = start("sysv_types.py", "odd", url)
    even = start("sysv_types.py", "even", url)
    # Let both consumers block first (order does not matter for the result): the
    # queue they create exists, then each one sleeps in its receive.
    wait_for(lambda: exists(url), "a consumer created the queue")
    for consumer in (odd, even):
        assert wait_until_blocked(consumer.pid, pid=consumer.pid, timeout=60), (
            f"consumer {consumer.args!r} never blocked (exit code {consumer.poll()})"
        )
    finish(start("sysv_types.py", "produce", url, "40"))
    odd_out = finish(odd).splitlines()
    even_out = finish(even).splitlines()
    assert odd_out == [f"odd: {n}" for n in range(1, 41, 2)]
    assert even_out == [f"even: {n}" for n in range(2, 41, 2)]
    with unimq.open(url) as q:
        assert q.qsize() == 0


@needs_posix
def test_posix_server_and_clients(make_url: UrlFactory) -> None:
    url = make_url("posix")
    server = start("posix_server.py", url)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == f"serving on {url}"
    first = finish(start("posix_client.py", url, "4"))
    assert first.splitlines() == [f"{n}^2 = {n * n}" for n in range(1, 5)]
    second = finish(start("posix_client.py", url, "2", "--stop"))
    assert second.splitlines() == ["1^2 = 1", "2^2 = 4"]
    assert "served 6 requests" in finish(server)
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)


def test_demo_runs_on_every_installed_backend() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "unimq", "demo"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for scheme in ("memory", "posix", "sysv"):
        assert f"{scheme}://" in proc.stdout
    assert proc.stdout.count("3 typed messages round-tripped: ok") == 1 + HAVE_POSIX + HAVE_SYSV
