"""Typed queues over every backend: JSON and C-struct codecs, mtype bindings,
decode errors, dead letters and schema export."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

import unimq
from tests.conformance.conftest import small_options
from tests.conftest import UrlFactory
from unimq import cstruct


class Order(BaseModel):
    sku: str
    qty: int


class Odd(BaseModel):
    kind: Literal["odd"] = "odd"
    n: int


class Even(BaseModel):
    kind: Literal["even"] = "even"
    n: int


class Seed(BaseModel):
    """The seeds' struct { long msgtype; char mtext[256]; char myname[16]; int seq; }."""

    mtext: Annotated[str, cstruct.char(256)]
    myname: Annotated[str, cstruct.char(16)]
    seq: Annotated[int, cstruct.int32]


def has(q: unimq.Queue, cap: unimq.Capability) -> bool:
    return bool(q.capabilities & cap)


def test_json_round_trip_is_the_models_own_json(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    orders.send(Order(sku="A1", qty=2))
    msg = raw.receive(timeout=1)
    assert json.loads(msg.data) == {"sku": "A1", "qty": 2}  # no envelope
    raw.send(b'{"sku":"B2","qty":5}')
    got = orders.receive(timeout=1)
    assert isinstance(got, Order)
    assert got == Order(sku="B2", qty=5)


def test_queue_spellings_return_models(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    orders.put(Order(sku="x", qty=1))
    orders.put_nowait(Order(sku="y", qty=2))
    assert orders.get(timeout=1).sku == "x"
    assert orders.get_nowait().sku == "y"
    with pytest.raises(unimq.QueueEmpty):
        orders.get_nowait()


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        (b'{"sku": "A1", "qty"', "json_invalid"),
        (b"\xff\xfe not utf-8", "json_invalid"),
        (b"", "json_invalid"),
        (b"plain text", "json_invalid"),
        (b'{"sku": "A1", "qty": "many"}', "int_parsing"),
        (b'{"sku": "A1"}', "missing"),
    ],
)
def test_decode_error_keeps_the_message(raw: unimq.Queue, payload: bytes, error_type: str) -> None:
    orders = raw.typed(Order)
    prio = 3 if has(raw, unimq.Capability.PRIORITY) else 0
    mtype = 7 if has(raw, unimq.Capability.MTYPE) else 1
    raw.send(payload, priority=prio, mtype=mtype)
    with pytest.raises(unimq.DecodeError) as info:
        orders.receive(timeout=1)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.message == unimq.Message(payload, mtype, prio)
    assert isinstance(err.__cause__, ValidationError)
    assert err.__cause__.errors()[0]["type"] == error_type
    assert raw.qsize() == 0  # at most once: the message left the queue, the error holds it


def test_dead_letter_forwards_and_goes_on(raw: unimq.Queue, make_url: UrlFactory) -> None:
    kind = raw.scheme
    dlq_url = make_url(kind)
    with unimq.open(dlq_url, create=True, **small_options(kind, 8, 1024)) as dlq:
        orders = raw.typed(Order, dead_letter=dlq)
        prio = 2 if has(raw, unimq.Capability.PRIORITY) else 0
        mtype = 5 if has(raw, unimq.Capability.MTYPE) else 1
        raw.send(b"garbage", priority=prio, mtype=mtype)
        raw.send(b'{"sku":"ok","qty":1}', priority=prio, mtype=mtype)
        assert orders.receive(timeout=1) == Order(sku="ok", qty=1)
        dead = dlq.receive(timeout=1)
        assert dead.mtype == mtype
        assert dead.priority == prio
        envelope = json.loads(dead.data)
        assert base64.b64decode(envelope["data"]) == b"garbage"
        assert "json_invalid" in envelope["reason"]
        assert envelope["source"] == raw.url
        # Only undecodable messages in time: QueueEmpty, and they are all dead-lettered.
        raw.send(b"bad again", priority=prio, mtype=mtype)
        with pytest.raises(unimq.QueueEmpty):
            orders.receive(timeout=0.2)
        assert base64.b64decode(json.loads(dlq.receive(timeout=1).data)["data"]) == b"bad again"


def test_mapping_binds_models_to_mtypes(raw: unimq.Queue) -> None:
    if not has(raw, unimq.Capability.MTYPE):
        with pytest.raises(unimq.UnsupportedOperation, match="discriminated union"):
            raw.typed({3: Odd, 4: Even})
        return
    mixed = raw.typed({3: Odd, 4: Even})
    for n in range(1, 7):
        mixed.send(Odd(n=n) if n % 2 else Even(n=n))
    evens = [mixed.receive(Even, timeout=1) for _ in range(3)]
    assert all(isinstance(e, Even) for e in evens)
    assert [e.n for e in evens] == [2, 4, 6]
    first = mixed.receive(timeout=1)
    assert isinstance(first, Odd)
    assert first.n == 1
    with pytest.raises(TypeError, match="not one of the models bound"):
        mixed.send(Order(sku="x", qty=1))
    with pytest.raises(TypeError, match="not bound"):
        mixed.receive(Order, timeout=0)
    raw.send(b'{"n": 1}', mtype=9)
    raw.receive(mtype=3, timeout=1)
    raw.receive(mtype=3, timeout=1)
    with pytest.raises(unimq.DecodeError, match="no model bound"):
        mixed.receive(timeout=1)


def test_discriminated_union_on_any_backend(raw: unimq.Queue) -> None:
    Number = Annotated[Odd | Even, Field(discriminator="kind")]
    numbers = raw.typed(Number)
    numbers.send(Odd(n=1))
    numbers.send(Even(n=2))
    assert numbers.receive(timeout=1) == Odd(n=1)
    assert numbers.receive(timeout=1) == Even(n=2)


def test_oversize_model_names_the_model(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    with pytest.raises(unimq.MessageTooLarge, match="Order encodes to"):
        orders.send(Order(sku="x" * 9000, qty=1))
    assert raw.qsize() == 0


def test_json_schema_export(raw: unimq.Queue) -> None:
    schema = raw.typed(Order).json_schema()
    assert schema["title"] == "Order"
    assert set(schema["properties"]) == {"sku", "qty"}
    if has(raw, unimq.Capability.MTYPE):
        per = raw.typed({3: Odd, 4: Even}).json_schema()
        assert per["mtypes"]["3"]["title"] == "Odd"
        assert per["mtypes"]["4"]["title"] == "Even"


def test_cstruct_round_trip(raw: unimq.Queue) -> None:
    seeds = raw.typed(Seed, codec="cstruct")
    seeds.send(Seed(mtext="hello from python", myname="py", seq=42))
    msg = raw.receive(timeout=1)
    expected = 280 if has(raw, unimq.Capability.MTYPE) else 276
    assert len(msg.data) == expected
    raw.send(msg.data, mtype=msg.mtype)
    assert seeds.receive(timeout=1) == Seed(mtext="hello from python", myname="py", seq=42)


def test_typed_repr_and_close(raw: unimq.Queue) -> None:
    orders = raw.typed(Order)
    assert "model=Order" in repr(orders)
    assert orders.queue is raw


def test_unknown_codec(raw: unimq.Queue) -> None:
    with pytest.raises(ValueError, match="unknown codec"):
        raw.typed(Order, codec="pickle")


# ---------------------------------------------------------------- cstruct layout


def test_seed_layout_matches_gcc() -> None:
    layout = cstruct.CStructCodec(Seed).layout()
    assert [(f.name, f.offset) for f in layout.fields] == [
        ("mtext", 0),
        ("myname", 256),
        ("seq", 272),
    ]
    assert layout.size == 280  # sizeof(struct) - sizeof(long): trailing padding included
    assert cstruct.CStructCodec(Seed, mtype_prefix=False).layout().size == 276
    assert cstruct.CStructCodec(Seed, packed=True).layout().size == 276


class Mixed(BaseModel):
    a: Annotated[int, cstruct.int8]
    b: Annotated[float, cstruct.double]
    c: Annotated[int, cstruct.uint16]
    d: Annotated[str, cstruct.char(3)]
    e: Annotated[int, cstruct.int64]
    f: Annotated[float, cstruct.float32]


def test_alignment_and_packing() -> None:
    natural = cstruct.CStructCodec(Mixed, mtype_prefix=False).layout()
    assert [f.offset for f in natural.fields] == [0, 8, 16, 18, 24, 32]
    assert natural.size == 40
    packed = cstruct.CStructCodec(Mixed, packed=True, mtype_prefix=False).layout()
    assert [f.offset for f in packed.fields] == [0, 1, 9, 11, 14, 22]
    assert packed.size == 26
    assert "__attribute__((packed))" in packed.describe()


def test_values_that_do_not_fit_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="do not fit char\\[16\\]"):
        Seed(mtext="x", myname="n" * 16, seq=1)
    with pytest.raises(ValidationError, match="does not fit int32_t"):
        Seed(mtext="x", myname="n", seq=2**31)
    codec = cstruct.CStructCodec(Seed)
    sneaky = Seed.model_construct(mtext="x", myname="n" * 40, seq=1)
    with pytest.raises(ValueError, match="myname"):
        codec.encode(sneaky)


def test_cstruct_decode_errors() -> None:
    codec = cstruct.CStructCodec(Seed)
    with pytest.raises(ValueError, match="not a Seed struct"):
        codec.decode(b"short")
    body = bytearray(codec.encode(Seed(mtext="ok", myname="me", seq=1)))
    body[0:2] = b"\xff\xfe"
    with pytest.raises(ValueError, match="not UTF-8"):
        codec.decode(bytes(body))
    # 276 bytes (no trailing padding) is accepted too.
    assert codec.decode(codec.encode(Seed(mtext="a", myname="b", seq=3))[:276]).seq == 3


def test_cstruct_needs_markers() -> None:
    with pytest.raises(TypeError, match="no C type marker"):
        cstruct.CStructCodec(Order)


def test_typed_checks_with_mypy_shape() -> None:
    q = unimq.open("memory://typed-shape", create=True)
    try:
        t: unimq.TypedQueue[Order] = q.typed(Order)
        t.send(Order(sku="s", qty=1))
        value: Order = t.receive(timeout=1)
        assert value.qty == 1
        q.remove()
    finally:
        q.close()
