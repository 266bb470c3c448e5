"""unimq against real C programs (tests/interop/c), run as subprocesses."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import unimq
from tests.conftest import UrlFactory
from tests.helpers import wait_for
from unimq import cstruct


class Seed(BaseModel):
    mtext: Annotated[str, cstruct.char(256)]
    myname: Annotated[str, cstruct.char(16)]
    seq: Annotated[int, cstruct.int32]


class Order(BaseModel):
    sku: str
    qty: int


def run(exe: Path, *args: str, timeout: float = 60) -> str:
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def key_of(url: str) -> str:
    return url.removeprefix("sysv://")


def test_layout_matches_gcc(peer_sysv: Path) -> None:
    size, *offsets = map(int, run(peer_sysv, "layout").split())
    layout = cstruct.CStructCodec(Seed).layout()
    assert layout.size == size == 280
    assert [f.offset for f in layout.fields] == offsets


def test_c_sender_python_receiver(peer_sysv: Path, make_url: UrlFactory) -> None:
    url = make_url("sysv")
    run(peer_sysv, "send", key_of(url), "500")
    with unimq.open(url) as q:
        got = []
        while (msg := q.receive(timeout=5)).mtype != 2:
            assert msg.mtype == 1
            got.append(msg.data.decode())
        assert got == [f"message {i} from C" for i in range(500)]
        assert q.qsize() == 0


def test_python_sender_c_receiver(peer_sysv: Path, make_url: UrlFactory) -> None:
    url = make_url("sysv")
    with unimq.open(url, create=True) as q:
        receiver = subprocess.Popen(
            [str(peer_sysv), "recv", key_of(url)], stdout=subprocess.PIPE, text=True
        )
        for i in range(500):  # bounded: a receiver that died fails the test
            q.send(f"python says {i}".encode(), mtype=1, timeout=30)
        q.send(b"", mtype=2, timeout=30)
        out, _ = receiver.communicate(timeout=60)
    lines = out.splitlines()
    assert lines[:-1] == [f"python says {i}" for i in range(500)]
    assert lines[-1] == "count 500"


def test_c_structs_to_python_consumers_by_type(peer_sysv: Path, make_url: UrlFactory) -> None:
    url = make_url("sysv")
    with unimq.open(url, create=True) as q:
        # 100 structs of 280 bytes exceed msg_qbytes: the C producer blocks until we consume.
        producer = subprocess.Popen([str(peer_sysv), "struct-produce", key_of(url), "100", "1"])
        odd = q.typed(Seed, codec="cstruct", mtype=3)
        even = q.typed(Seed, codec="cstruct", mtype=4)
        evens = [even.receive(timeout=10) for _ in range(50)]
        odds = [odd.receive(timeout=10) for _ in range(50)]
        assert producer.wait(timeout=30) == 0
        assert [s.seq for s in evens] == list(range(2, 101, 2))
        assert [s.seq for s in odds] == list(range(1, 101, 2))
        assert all(s.mtext == f"text {s.seq}" for s in odds + evens)
        assert all(s.myname.startswith("c") for s in odds)
        assert q.qsize() == 0


def test_python_structs_to_c_consumers_by_type(peer_sysv: Path, make_url: UrlFactory) -> None:
    url = make_url("sysv")
    with unimq.open(url, create=True) as q:
        consumers = {
            t: subprocess.Popen(
                [str(peer_sysv), "struct-consume", key_of(url), str(t)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for t in (3, 4)
        }
        for t, seeds in (
            (3, q.typed(Seed, codec="cstruct", mtype=3)),
            (4, q.typed(Seed, codec="cstruct", mtype=4)),
        ):
            for i in range(40):
                n = 2 * i + (1 if t == 3 else 2)
                # More than msg_qbytes: waits for the C consumers, bounded.
                seeds.send(Seed(mtext=f"py text {n}", myname="python", seq=n), timeout=30)
            seeds.send(Seed(mtext="", myname="", seq=-1), timeout=30)
        outputs = {t: p.communicate(timeout=60)[0].splitlines() for t, p in consumers.items()}
    for t, lines in outputs.items():
        assert len(lines) == 40
        for line in lines:
            mtype, size, seq, name, text = line.split(" ", 4)
            assert int(mtype) == t
            assert int(size) == 280
            assert int(seq) % 2 == (1 if t == 3 else 0)
            assert name == "python"
            assert text == f"py text {seq}"


def _consume(url: str, mtype: int, out: Any) -> None:
    with unimq.open(url) as q:
        seeds = q.typed(Seed, codec="cstruct", mtype=mtype)
        got = []
        while (s := seeds.receive(timeout=30)).seq != -1:
            got.append(s.seq)
        out.put(got)


def test_many_c_producers_many_python_consumers(peer_sysv: Path, make_url: UrlFactory) -> None:
    url = make_url("sysv")
    ctx = multiprocessing.get_context("fork")
    results: Any = ctx.Queue()
    with unimq.open(url, create=True) as q:
        consumers = [ctx.Process(target=_consume, args=(url, t, results)) for t in (3, 3, 4, 4)]
        for c in consumers:
            c.start()
        producers = [
            subprocess.Popen(
                [str(peer_sysv), "struct-produce", key_of(url), "400", str(1 + 400 * i)]
            )
            for i in range(3)
        ]
        for p in producers:
            assert p.wait(timeout=60) == 0
        stop = Seed(mtext="", myname="", seq=-1)
        for t in (3, 3, 4, 4):
            q.typed(Seed, codec="cstruct", mtype=t).send(stop)
        got = [results.get(timeout=60) for _ in consumers]
        for c in consumers:
            c.join(timeout=30)
            assert c.exitcode == 0
        assert q.qsize() == 0
    every = sorted(s for part in got for s in part)
    assert every == list(range(1, 1201))  # nothing lost, nothing duplicated


def test_malformed_json_from_c(peer_sysv: Path, make_url: UrlFactory) -> None:
    url = make_url("sysv")
    run(peer_sysv, "json-bad", key_of(url))
    expected = [
        b'{"sku": "A1", "qty"',
        b"\xff\xfe\xfd",
        b"",
        b"plain text",
        b'{"sku": "A1", "qty": "many"}',
        b'{"sku": "A1"}',
    ]
    with unimq.open(url) as q:
        orders = q.typed(Order)
        for raw in expected:
            with pytest.raises(unimq.DecodeError) as info:
                orders.receive(timeout=5)
            assert info.value.message is not None
            assert info.value.message.data == raw
        assert orders.receive(timeout=5) == Order(sku="good", qty=7)


def test_malformed_json_from_c_dead_lettered(peer_sysv: Path, make_url: UrlFactory) -> None:
    url, dlq_url = make_url("sysv"), make_url("sysv")
    run(peer_sysv, "json-bad", key_of(url))
    with unimq.open(url) as q, unimq.open(dlq_url, create=True) as dlq:
        assert q.typed(Order, dead_letter=dlq).receive(timeout=5) == Order(sku="good", qty=7)
        dead = list(dlq.drain())
    assert len(dead) == 6
    assert all(json.loads(m.data)["mtype"] == 1 for m in dead)


def test_c_posix_server_python_client(peer_posix: Path, make_url: UrlFactory) -> None:
    server_url = make_url("posix")
    name = server_url.removeprefix("posix://")
    reply_url = make_url("posix")
    server = subprocess.Popen([str(peer_posix), "server", name], stdout=subprocess.PIPE, text=True)
    try:
        with unimq.open(reply_url, create=True, max_messages=8, max_message_size=512) as replies:
            opened: list[unimq.Queue] = []

            def server_queue_opened() -> bool:
                # The C server says nothing when its queue is ready: poll, bounded.
                assert server.poll() is None, f"the C server exited with {server.returncode}"
                try:
                    opened.append(unimq.open(server_url, access="w"))
                except unimq.QueueNotFound:
                    return False
                return True

            wait_for(server_queue_opened, "the C server created its queue")
            with opened[0] as requests:
                st = requests.stat()
                assert (st.max_messages, st.max_message_size) == (8, 512)
                reply_name = reply_url.removeprefix("posix://")
                for n in range(1, 8):
                    requests.send(f"{reply_name} {n}".encode())
                    msg = replies.receive(timeout=10)
                    assert msg.data == f"{n} {n * n}".encode()
                    assert msg.priority == n % 5
                requests.send(b"stop", priority=9)
        assert server.communicate(timeout=30)[0].strip() == "served 7"
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=60)


def test_python_posix_server_c_client(peer_posix: Path, make_url: UrlFactory) -> None:
    server_url = make_url("posix")
    with unimq.open(server_url, create=True, max_messages=8, max_message_size=512) as requests:
        client = subprocess.Popen(
            [str(peer_posix), "client", server_url.removeprefix("posix://"), "5"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(5):
            msg = requests.receive(timeout=10)
            assert msg.priority == 1
            req = json.loads(msg.data)
            with unimq.open(req["reply_to"], access="w") as reply:
                reply.send(str(req["n"] ** 3).encode(), priority=req["n"])
        out = client.communicate(timeout=30)[0].splitlines()
    assert out == [f"{n} {n**3}" for n in range(1, 6)]


def test_c_priorities_seen_by_python(peer_posix: Path, make_url: UrlFactory) -> None:
    url = make_url("posix")
    with unimq.open(url, create=True, max_messages=8, max_message_size=512) as q:
        run(peer_posix, "prio-send", url.removeprefix("posix://"))
        got = [(m.priority, m.data.decode()) for m in q.drain()]
    assert got == [
        (3, "c3"),
        (3, "c7"),
        (2, "c2"),
        (2, "c6"),
        (1, "c1"),
        (1, "c5"),
        (0, "c0"),
        (0, "c4"),
    ]
