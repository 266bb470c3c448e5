"""Typed batches: send_many / receive_many over models, nothing lost to bad payloads."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import unimq
from tests.typed.test_typed import Even, Odd, Order, has


def test_send_many_receive_many_round_trip(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    sent = [Order(sku=f"A{i}", qty=i) for i in range(5)]
    assert orders.send_many(sent) == 5
    assert orders.receive_many(3, timeout=0) == sent[:3]
    assert orders.receive_many(10, timeout=0) == sent[3:]
    with pytest.raises(unimq.QueueEmpty):
        orders.receive_many(10, timeout=0)


def test_a_wrong_value_sends_nothing(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    for bad in ({"sku": "a", "qty": 1}, "text", Odd(n=1)):
        with pytest.raises(TypeError):
            orders.send_many([Order(sku="ok", qty=1), bad])  # type: ignore[list-item]
        assert raw.stat().messages == 0


def test_undecodable_payload_in_a_batch_loses_nothing(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    raw.send(Order(sku="A", qty=1).model_dump_json().encode())
    raw.send(b"garbage")
    raw.send(Order(sku="B", qty=2).model_dump_json().encode())
    with pytest.raises(unimq.DecodeError) as info:
        orders.receive_many(10, timeout=0)
    assert info.value.message is not None and info.value.message.data == b"garbage"
    assert info.value.received is not None
    assert [m.data for m in info.value.received][1] == b"garbage"
    assert len(info.value.received) == 3


def test_the_first_bad_payload_of_a_batch_is_reported(raw: unimq.Queue) -> None:
    """The batch decode falls back to message by message: the error is the first
    bad payload's (valid JSON of the wrong shape is one too), never a later one's."""
    orders = raw.typed(Order)
    good = Order(sku="A", qty=1).model_dump_json().encode()
    raw.send_many([good, b'{"sku": "B"}', b"garbage", good])
    with pytest.raises(unimq.DecodeError) as info:
        orders.receive_many(10, timeout=0)
    assert info.value.message is not None and info.value.message.data == b'{"sku": "B"}'
    assert info.value.received is not None
    assert [m.data for m in info.value.received] == [good, b'{"sku": "B"}', b"garbage", good]


def test_dead_letters_in_a_batch(raw: unimq.Queue) -> None:
    with unimq.open("memory://typed-batch-dlq", create=True) as dlq:
        try:
            orders = raw.typed(Order, dead_letter=dlq)
            raw.send(b"garbage")
            raw.send(Order(sku="B", qty=2).model_dump_json().encode())
            assert orders.receive_many(10, timeout=0) == [Order(sku="B", qty=2)]
            assert dlq.stat().messages == 1
            # Only garbage queued: it is dead-lettered and the receive reports nothing decodable.
            raw.send(b"more garbage")
            with pytest.raises(unimq.QueueEmpty):
                orders.receive_many(10, timeout=0)
            assert dlq.stat().messages == 2
        finally:
            dlq.remove()


def test_mapped_models_batch_with_their_mtypes(raw: unimq.Queue) -> None:
    if not has(raw, unimq.Capability.MTYPE):
        pytest.skip("mappings need message types")
    mixed = raw.typed({3: Odd, 4: Even})
    mixed.send_many([Odd(n=1), Even(n=2), Odd(n=3)])
    assert mixed.receive_many(10, Odd, timeout=0) == [Odd(n=1), Odd(n=3)]
    assert mixed.receive_many(10, timeout=0) == [Even(n=2)]


class Reading(BaseModel):
    sensor: str
    value: float


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (Reading(sensor="nan", value=float("nan")), "not a finite number"),
        (Reading.model_construct(sensor=3, value=1.0), "str"),
    ],
)
def test_batch_encoding_is_the_single_encoding(bad: Reading, match: str) -> None:
    """send_many encodes a JSON batch with one pydantic-core check for the whole
    batch: the payloads are byte for byte those of send, and a bad value (a NaN,
    a field holding the wrong type) raises send's error and sends nothing."""
    with unimq.open("memory://typed-batch-encode", create=True) as q:
        try:
            readings = q.typed(Reading)
            values = [Reading(sensor=f"s{i}", value=i / 3) for i in range(5)]
            single = [readings._single.encode(v) for v in values]  # type: ignore[union-attr]
            assert readings.send_many(values) == 5
            assert [m.data for m in q.receive_many(10, timeout=0)] == single
            with pytest.raises(ValueError, match=match) as batch_error:
                readings.send_many([values[0], bad, values[1]])
            with pytest.raises(ValueError, match=match) as single_error:
                readings.send(bad)
            assert str(batch_error.value) == str(single_error.value)
            assert type(batch_error.value) is type(single_error.value)
            assert q.stat().messages == 0
        finally:
            q.remove()


def test_batch_encoding_keeps_the_bound_mtype() -> None:
    with unimq.open("memory://typed-batch-mtype", create=True) as q:
        try:
            orders = q.typed(Order, mtype=7)
            assert orders.send_many([Order(sku="A", qty=1), Order(sku="B", qty=2)]) == 2
            assert [m.mtype for m in q.receive_many(10, timeout=0)] == [7, 7]
        finally:
            q.remove()
