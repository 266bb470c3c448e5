"""Load: 4 producer and 4 consumer processes, 100,000 messages with mixed
priorities through one redis:// queue: none lost, none duplicated, and each
consumer sees every producer's messages of one priority in order."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import unimq

PRODUCERS = 4
CONSUMERS = 4
TOTAL = 100_000
STOP = b"stop"


def produce(url: str, producer: int, count: int) -> None:
    with unimq.open(url) as q:
        for seq in range(count):
            q.send(f"{producer}:{seq}".encode(), priority=(seq * 7 + producer) % 4, timeout=60)


def consume(url: str, out: str) -> None:
    got: list[tuple[int, int, int]] = []
    with unimq.open(url) as q:
        while True:
            m = q.receive(timeout=60)
            if m.data == STOP:
                break
            p, s = m.data.split(b":")
            got.append((int(p), int(s), m.priority))
    Path(out).write_text(json.dumps(got))


@pytest.mark.slow
def test_4x4_processes_100k_messages(url: str, tmp_path: Path) -> None:
    ctx: Any = multiprocessing.get_context("spawn")
    with unimq.open(url, create=True, max_messages=5_000, max_message_size=64) as q:
        outs = [str(tmp_path / f"c{i}.json") for i in range(CONSUMERS)]
        consumers = [ctx.Process(target=consume, args=(url, o)) for o in outs]
        producers = [
            ctx.Process(target=produce, args=(url, p, TOTAL // PRODUCERS)) for p in range(PRODUCERS)
        ]
        procs = consumers + producers
        for p in procs:
            p.start()
        try:
            for p in producers:
                p.join(300)
                assert p.exitcode == 0
            for _ in consumers:
                q.send(STOP, priority=0, timeout=60)  # after every priority-0 message
            for p in consumers:
                p.join(300)
                assert p.exitcode == 0
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(10)
        assert q.stat().messages == 0
        q.remove()
    seen: set[tuple[int, int]] = set()
    total = 0
    for out in outs:
        got = [tuple(x) for x in json.loads(Path(out).read_text())]
        total += len(got)
        seen.update((p, s) for p, s, _ in got)
        last: dict[tuple[int, int], int] = {}
        for p, s, prio in got:
            assert prio == (s * 7 + p) % 4
            assert last.get((p, prio), -1) < s, "order within a priority broken"
            last[(p, prio)] = s
    assert total == TOTAL, "a message was duplicated or lost"
    assert seen == {(p, s) for p in range(PRODUCERS) for s in range(TOTAL // PRODUCERS)}
