"""A typed send sends only what the receiver decodes into the same value, and a
dead-letter queue never makes a receive give up on messages already queued.
Over every backend (real kernel queues)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import unimq
from tests.conformance.conftest import small_options
from tests.conftest import UrlFactory
from unimq import cstruct
from unimq.typed import _queue as _typed


class Order(BaseModel):
    sku: str
    qty: int


class Invoice(BaseModel):
    number: int


class RushOrder(Order):
    deadline: str = "today"


class Odd(BaseModel):
    kind: Literal["odd"] = "odd"
    n: int


class Even(BaseModel):
    kind: Literal["even"] = "even"
    n: int


class Reading(BaseModel):
    x: float
    note: str | None = None


class Nested(BaseModel):
    readings: list[Reading]


class Carried(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")
    x: float


class Rec(BaseModel):
    name: Annotated[str, cstruct.char(8)]
    n: Annotated[int, cstruct.int32]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (Invoice(number=1), "sends Order values, not Invoice"),
        ("hello", "model_validate_json"),
        (b'{"sku": "a", "qty": 1}', "model_validate_json"),
        ({"sku": "a", "qty": 1}, r"a dict is not sent as it is: .*Order\.model_validate"),
        (None, "not NoneType"),
        (42, "not int"),
    ],
)
def test_only_instances_of_the_model_are_sent(raw: unimq.Queue, value: object, needle: str) -> None:
    orders = raw.typed(Order)
    with pytest.raises(TypeError, match=needle):
        orders.send(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        orders.put(value)  # type: ignore[arg-type]
    assert raw.qsize() == 0


def test_a_subclass_instance_is_an_order(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    orders.send(RushOrder(sku="r", qty=1))
    assert orders.receive(timeout=1) == Order(sku="r", qty=1)


def test_values_that_skipped_validation_are_refused(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    with pytest.raises(ValueError, match="lacks required field"):
        orders.send(Order.model_construct(sku="a"))
    wrong = Order(sku="a", qty=1)
    wrong.qty = "many"  # type: ignore[assignment]  # no validate_assignment
    with pytest.raises(ValueError, match="qty"):
        orders.send(wrong)
    assert raw.qsize() == 0


def test_mapping_takes_only_its_models_with_their_mtypes(raw: unimq.Queue) -> None:
    if not raw.capabilities & unimq.Capability.MTYPE:
        pytest.skip("mappings need message types")
    mixed = raw.typed({3: Odd, 4: Even})
    for bad in ({"kind": "odd", "n": 1}, Order(sku="a", qty=1), '{"n": 1}'):
        with pytest.raises(TypeError, match="not one of the models bound"):
            mixed.send(bad)
    with pytest.raises(ValueError, match="travels with mtype 3"):
        mixed.send(Odd(n=1), mtype=4)
    mixed.send(Odd(n=1), mtype=3)  # the same mtype is fine
    assert raw.qsize() == 1


def test_a_union_takes_instances_of_its_members(raw: unimq.Queue) -> None:
    numbers = raw.typed(Annotated[Odd | Even, Field(discriminator="kind")])
    for bad in ({"kind": "odd", "n": 1}, Order(sku="a", qty=1), "odd"):
        with pytest.raises(TypeError, match="is not a"):
            numbers.send(bad)
    numbers.send(Even(n=2))
    assert numbers.receive(timeout=1) == Even(n=2)
    many = raw.typed(list[Order])
    with pytest.raises(TypeError, match="is not a list"):
        many.send(Order(sku="a", qty=1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Expected `Order`"):
        many.send([{"sku": "a", "qty": 1}])  # type: ignore[list-item]
    many.send([Order(sku="a", qty=1)])
    assert many.receive(timeout=1) == [Order(sku="a", qty=1)]


@pytest.mark.parametrize(
    "value",
    [
        Reading(x=math.nan),
        Reading(x=math.inf),
        Reading(x=-math.inf, note=None),
        Nested(readings=[Reading(x=1.0), Reading(x=math.nan)]),
    ],
    ids=["nan", "inf", "-inf", "nested"],
)
def test_json_refuses_what_it_cannot_carry(raw: unimq.Queue, value: BaseModel) -> None:
    typed = raw.typed(type(value))
    with pytest.raises(ValueError, match="not a finite number"):
        typed.send(value)
    assert raw.qsize() == 0


def test_json_round_trips_what_the_model_says_how_to_carry(raw: unimq.Queue) -> None:
    carried = raw.typed(Carried)
    for x in (math.inf, -math.inf, math.nan):
        carried.send(Carried(x=x))
        got = carried.receive(timeout=1).x
        assert got == x or (math.isnan(got) and math.isnan(x))
    readings = raw.typed(Reading)
    readings.send(Reading(x=1.5, note=None))  # a null that is really None goes
    assert readings.receive(timeout=1) == Reading(x=1.5)


def test_cstruct_refuses_a_nul_in_a_string(raw: unimq.Queue) -> None:
    with pytest.raises(ValidationError, match="cannot hold a NUL"):
        Rec(name="ab\x00cd", n=1)
    recs = raw.typed(Rec, codec="cstruct")
    sneaky = Rec(name="ok", n=1)
    sneaky.name = "ab\x00cd"  # no validate_assignment
    with pytest.raises(ValueError, match="holds a NUL character at byte 2"):
        recs.send(sneaky)
    assert raw.qsize() == 0
    recs.send(Rec(name="ab\\0cd", n=1))  # a backslash and a zero are just text
    assert recs.receive(timeout=1).name == "ab\\0cd"


# ------------------------------------------------------------------ dead letters


@pytest.fixture
def dlq(raw: unimq.Queue, make_url: UrlFactory) -> Iterator[unimq.Queue]:
    kind = raw.scheme
    with unimq.open(make_url(kind), create=True, **small_options(kind, 8, 1024)) as q:
        yield q


def test_dead_letters_do_not_end_a_non_waiting_receive(raw: unimq.Queue, dlq: unimq.Queue) -> None:
    orders = raw.typed(Order, dead_letter=dlq)
    raw.send(b"garbage")
    raw.send(b"more garbage")
    raw.send(b'{"sku": "ok", "qty": 1}')
    assert orders.receive(timeout=0) == Order(sku="ok", qty=1)
    assert orders.dead_lettered == 2
    assert dlq.qsize() == 2
    raw.send(b"garbage")
    with pytest.raises(unimq.QueueEmpty, match="1 undecodable one"):
        orders.receive(timeout=0)
    assert dlq.qsize() == 3


def test_dead_letter_warnings_are_rate_limited(
    raw: unimq.Queue,
    dlq: unimq.Queue,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(_typed, "_clock", lambda: now[0])
    orders = raw.typed(Order, dead_letter=dlq)
    with caplog.at_level(logging.DEBUG, logger="unimq.typed"):
        for _ in range(2):
            for _ in range(3):
                raw.send(b"garbage")
            with pytest.raises(unimq.QueueEmpty):
                orders.receive(timeout=0)
            while True:  # empty the dead-letter queue so it never fills
                try:
                    dlq.receive(timeout=0)
                except unimq.QueueEmpty:
                    break
            now[0] += orders.dead_letter_log_interval  # the next report is due
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(warnings) == 2  # one per interval, not one per message
    assert len(debug) == 4
    assert "json_invalid" in warnings[0].getMessage()
    assert "more since the last report" not in warnings[0].getMessage()
    assert "2 more since the last report" in warnings[1].getMessage()
    assert orders.dead_lettered == 6


def test_dead_letter_envelope(raw: unimq.Queue, dlq: unimq.Queue) -> None:
    orders = raw.typed(Order, dead_letter=dlq)
    raw.send(b"nope")
    with pytest.raises(unimq.QueueEmpty):
        orders.receive(timeout=0)
    envelope = json.loads(dlq.receive(timeout=1).data)
    assert envelope["source"] == raw.url
