"""Bad input, fuzzed with hypothesis against real queues: only documented
exceptions come out, nothing crashes, nothing is lost, nothing leaks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, new_url

KINDS = ["memory"] + [k for k, ok in (("posix", HAVE_POSIX), ("sysv", HAVE_SYSV)) if ok]
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DOCUMENTED = (unimq.UnimqError, ValueError, TypeError)


@pytest.fixture(params=KINDS, scope="module")
def q(request: pytest.FixtureRequest) -> Iterator[unimq.Queue]:
    kind: str = request.param
    opts: dict[str, Any] = (
        {"max_messages": 4, "max_message_size": 128} if kind != "sysv" else {"max_bytes": 512}
    )
    handle = unimq.open(new_url(kind), create=True, **opts)
    yield handle
    handle.remove()
    handle.close()


numbers = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.text(max_size=5),
)


@FUZZ
@given(data=st.binary(max_size=600), mtype=numbers, priority=numbers, timeout=numbers)
def test_send_arguments(
    q: unimq.Queue, data: bytes, mtype: Any, priority: Any, timeout: Any
) -> None:
    before = q.qsize()
    try:
        q.send(data, mtype=mtype, priority=priority, timeout=0 if timeout is None else timeout)
    except unimq.QueueFull:
        assert q.qsize() == before
    except DOCUMENTED:
        assert q.qsize() == before  # a rejected send changes nothing
    else:
        assert q.qsize() == before + 1
    for _ in q.drain():
        pass


@FUZZ
@given(mtype=numbers, timeout=numbers)
def test_receive_arguments(q: unimq.Queue, mtype: Any, timeout: Any) -> None:
    for _ in q.drain():  # a clean start even after a failed example
        pass
    q.send(b"keep")
    # Bound every wait: a valid selector that matches nothing would block.
    numeric = isinstance(timeout, int | float) and not isinstance(timeout, bool)
    if timeout is None or (numeric and not math.isnan(timeout) and timeout > 0.01):
        timeout = 0.01
    try:
        msg = q.receive(mtype=mtype, timeout=timeout)
    except DOCUMENTED:
        assert q.receive(timeout=0).data == b"keep"  # still there
    else:
        assert msg.data == b"keep"
    assert q.qsize() == 0


@FUZZ
@given(
    options=st.dictionaries(
        st.sampled_from(["max_messages", "max_message_size", "max_bytes", "access", "proj", "x"]),
        numbers,
        max_size=3,
    )
)
def test_open_options(options: dict[str, Any]) -> None:
    for kind in KINDS:
        url = new_url(kind)
        try:
            handle = unimq.open(url, create=True, **options)
        except DOCUMENTED:
            continue
        handle.remove()
        handle.close()


class Order(BaseModel):
    sku: str
    qty: int


valid_orders = st.builds(
    lambda sku, qty: Order(sku=sku, qty=qty).model_dump_json().encode(),
    st.text(max_size=16),
    st.integers(min_value=-(2**40), max_value=2**40),
)


@FUZZ
@given(payload=st.one_of(st.binary(max_size=120), valid_orders))
def test_random_bytes_into_typed_receive(q: unimq.Queue, payload: bytes) -> None:
    for _ in q.drain():
        pass
    orders = q.typed(Order)
    q.send(payload)
    try:
        expected: Order | None = Order.model_validate_json(payload)
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(unimq.DecodeError) as info:
            orders.receive(timeout=1)
        assert info.value.message is not None
        assert info.value.message.data == payload  # nothing lost
    else:
        assert orders.receive(timeout=1) == expected
    assert q.qsize() == 0
