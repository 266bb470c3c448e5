"""q.typed(Model) on an AsyncQueue: the sync typed behaviour, as coroutines."""

from __future__ import annotations

import json

import pydantic
import pytest

import unimq
import unimq.aio
from tests.aio.conftest import OpenAsync

pytestmark = pytest.mark.anyio


class Order(pydantic.BaseModel):
    sku: str
    qty: int


class Odd(pydantic.BaseModel):
    n: int


class Even(pydantic.BaseModel):
    n: int


async def test_models_round_trip_as_their_own_json(open_async: OpenAsync) -> None:
    q = await open_async(size=128)
    orders = q.typed(Order)
    await orders.send(Order(sku="A1", qty=2), timeout=1)
    raw = await q.receive(timeout=1)
    assert json.loads(raw.data) == {"sku": "A1", "qty": 2}
    await orders.send(Order(sku="B2", qty=3))
    assert await orders.receive(timeout=1) == Order(sku="B2", qty=3)
    assert "properties" in orders.json_schema()
    assert repr(orders).startswith("<unimq.aio.AsyncTypedQueue")


async def test_typed_checks_match_sync(open_async: OpenAsync) -> None:
    q = await open_async(size=32)
    orders = q.typed(Order)
    with pytest.raises(TypeError, match="sends Order values, not Odd"):
        await orders.send(Odd(n=1))  # type: ignore[arg-type]
    with pytest.raises(unimq.MessageTooLarge, match="Order encodes to"):
        await orders.send(Order(sku="x" * q.max_message_size, qty=1))
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)  # nothing was sent


async def test_undecodable_message_is_kept_in_the_error(open_async: OpenAsync) -> None:
    q = await open_async(size=128)
    orders = q.typed(Order)
    await q.send(b'{"sku": "A1"}')
    with pytest.raises(unimq.DecodeError) as err:
        await orders.receive(timeout=1)
    assert err.value.message is not None
    assert err.value.message.data == b'{"sku": "A1"}'


async def test_batches_of_models(open_async: OpenAsync) -> None:
    q = await open_async(capacity=6, size=64)
    orders = q.typed(Order)
    assert await orders.send_many([Order(sku=f"S{i}", qty=i) for i in range(3)]) == 3
    await q.send(b"not json")
    await orders.send(Order(sku="S9", qty=9))
    # As the sync layer: the first bad payload raises, carrying every raw
    # message of the batch (nothing is lost).
    with pytest.raises(unimq.DecodeError) as err:
        await orders.receive_many(10, timeout=1)
    assert err.value.message is not None and err.value.message.data == b"not json"
    assert err.value.received is not None
    assert [m.data for m in err.value.received][3:] == [b"not json", b'{"sku":"S9","qty":9}']
    with pytest.raises(unimq.QueueEmpty):
        await q.receive(timeout=0)


async def test_mapping_selects_by_mtype(open_async: OpenAsync) -> None:
    q = await open_async(capacity=4, size=64)
    if not q.capabilities & unimq.Capability.MTYPE:
        with pytest.raises(unimq.UnsupportedOperation):
            q.typed({3: Odd, 4: Even})
        return
    mixed = q.typed({3: Odd, 4: Even})
    await mixed.send(Odd(n=1))
    await mixed.send(Even(n=2))
    assert await mixed.receive(Even, timeout=1) == Even(n=2)
    value, msg = await mixed.receive_message(timeout=1)
    assert value == Odd(n=1) and msg.mtype == 3


async def test_async_for_and_async_with(open_async: OpenAsync) -> None:
    q = await open_async(size=128)
    orders = q.typed(Order)
    await orders.send(Order(sku="A", qty=1))
    async with orders:
        async for order in orders:
            assert order.sku == "A"
            await q.aclose()
    assert q.closed
