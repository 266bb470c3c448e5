"""The guided demo behind ``unimq demo``: typed messages over every available backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

from pydantic import BaseModel

import unimq
from unimq._registry import get_backend

__all__ = ["Order", "run_demo"]


class Order(BaseModel):
    """The demo's message model."""

    sku: str
    qty: int


ORDERS = [Order(sku="apple", qty=2), Order(sku="pear", qty=5), Order(sku="plum", qty=4)]
ODD, EVEN = 3, 4  # message types, as in the classic SysV examples


def _demo_url(scheme: str) -> str:
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if scheme == "posix":
        return f"posix:///unimq-demo-{tag}"
    if scheme == "sysv":
        return f"sysv://{0x5D000000 + int(uuid.uuid4().hex[:6], 16)}"
    return f"memory://demo-{tag}"


def _run_one(scheme: str, say: Callable[[str], None]) -> list[Order]:
    url = _demo_url(scheme)
    opts = {"max_bytes": 4096} if scheme == "sysv" else {"max_messages": 8, "max_message_size": 256}
    received: list[Order] = []
    q = unimq.open(url, create=True, exclusive=True, **opts)
    try:
        st = q.stat()
        room = (
            f"{st.max_bytes} bytes in all"
            if scheme == "sysv"
            else f"room for {st.max_messages} messages of {st.max_message_size} B"
        )
        say(f"  created {url} ({room})")
        caps = q.capabilities
        for i, order in enumerate(ORDERS):
            payload = order.model_dump_json().encode()
            if caps & unimq.Capability.MTYPE:
                q.send(payload, mtype=ODD if order.qty % 2 else EVEN)
            elif caps & unimq.Capability.PRIORITY:
                q.send(payload, priority=i)
            else:
                q.send(payload)
            say(f"  sent     {payload.decode()}")
        if caps & unimq.Capability.MTYPE:
            say("  receiving mtype 3 (odd quantities) first, then the rest in FIFO order")
            first = q.receive(mtype=ODD, timeout=1)
            received.append(Order.model_validate_json(first.data))
            say(f"  received mtype={first.mtype} {first.data.decode()}")
        elif caps & unimq.Capability.PRIORITY:
            say("  receiving: highest priority first")
        for msg in q.drain():
            received.append(Order.model_validate_json(msg.data))
            tag = (
                f"mtype={msg.mtype}"
                if caps & unimq.Capability.MTYPE
                else f"priority={msg.priority}"
            )
            say(f"  received {tag} {msg.data.decode()}")
        q.remove()
        say(f"  removed  {url}")
    finally:
        q.close()
        unimq.remove(url, missing_ok=True)
    return received


#: The schemes the demo runs: every backend that needs nothing but this machine.
LOCAL_SCHEMES = ("memory", "posix", "sysv")


def run_demo(say: Callable[[str], None] = print) -> dict[str, str]:
    """Send and receive typed orders on each backend; return scheme -> outcome.

    Every queue the demo creates is removed, even on error.
    """
    outcome: dict[str, str] = {}
    # The backends of this machine; network ones (redis://) need a server to talk to.
    for scheme in LOCAL_SCHEMES:
        say(f"{scheme}://")
        try:
            get_backend(scheme)
        except unimq.BackendNotInstalled as exc:
            say(f"  not installed: {exc}")
            outcome[scheme] = "not installed"
            continue
        try:
            got = _run_one(scheme, say)
        except unimq.UnimqError as exc:
            say(f"  failed: {exc}")
            outcome[scheme] = f"failed: {exc}"
            continue
        ok = sorted(o.sku for o in got) == sorted(o.sku for o in ORDERS)
        outcome[scheme] = "ok" if ok else "lost messages"
        say(f"  {len(got)} typed messages round-tripped: {'ok' if ok else 'MISMATCH'}")
    return outcome
