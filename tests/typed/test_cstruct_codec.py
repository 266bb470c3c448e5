"""The C-struct codec's compiled encode/decode: round trips over every C type
(hypothesis), the direct-construction path equal to pydantic's own result,
models that must be validated, and errors that name the field."""

from __future__ import annotations

import math
import struct
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from unimq import cstruct


class Every(BaseModel):
    """One field of each C type, in an order that needs padding."""

    a: Annotated[int, cstruct.int8]
    b: Annotated[float, cstruct.double]
    c: Annotated[int, cstruct.uint16]
    d: Annotated[str, cstruct.char(5)]
    e: Annotated[int, cstruct.int64]
    f: Annotated[float, cstruct.float32]
    g: Annotated[int, cstruct.uint64]
    h: Annotated[int, cstruct.int16]
    i: Annotated[int, cstruct.uint8]
    j: Annotated[int, cstruct.uint32]
    k: Annotated[int, cstruct.int32]
    m: Annotated[int, cstruct.long]


def ints(ctype: cstruct.CType) -> st.SearchStrategy[int]:
    assert ctype.lo is not None and ctype.hi is not None
    return st.integers(min_value=int(ctype.lo), max_value=int(ctype.hi))


def c_string(limit: int) -> st.SearchStrategy[str]:
    """Text without NUL whose UTF-8 fits ``limit`` bytes."""
    return st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"])).filter(
        lambda s: len(s.encode()) <= limit
    )


float32s = st.floats(width=32, allow_nan=False)
everything = st.builds(
    Every,
    a=ints(cstruct.int8),
    b=st.floats(allow_nan=False),
    c=ints(cstruct.uint16),
    d=c_string(4),
    e=ints(cstruct.int64),
    f=float32s,
    g=ints(cstruct.uint64),
    h=ints(cstruct.int16),
    i=ints(cstruct.uint8),
    j=ints(cstruct.uint32),
    k=ints(cstruct.int32),
    m=ints(cstruct.long),
)


def same_instance(got: BaseModel, expected: BaseModel) -> None:
    """Equal in everything pydantic keeps per instance, not only ``==``."""
    assert type(got) is type(expected)
    assert got.__dict__ == expected.__dict__
    assert got.__pydantic_fields_set__ == expected.__pydantic_fields_set__
    assert got.__pydantic_extra__ == expected.__pydantic_extra__
    assert got.__pydantic_private__ == expected.__pydantic_private__
    assert got.model_dump_json() == expected.model_dump_json()


@settings(max_examples=300, deadline=None)
@given(everything, st.booleans(), st.booleans())
def test_round_trip_every_c_type(value: Every, packed: bool, prefix: bool) -> None:
    codec = cstruct.CStructCodec(Every, packed=packed, mtype_prefix=prefix)
    body = codec.encode(value)
    assert len(body) == codec.layout().size
    same_instance(codec.decode(body), value)
    # What the direct construction builds is what pydantic builds from the same fields.
    same_instance(codec.decode(body), Every.model_validate(value.model_dump()))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=120))
def test_any_bytes_decode_or_raise_value_error(data: bytes) -> None:
    codec = cstruct.CStructCodec(Every)
    try:
        value = codec.decode(data)
    except ValueError:
        return
    assert codec.decode(codec.encode(value)).model_dump_json() == value.model_dump_json()


def test_layout_is_what_struct_with_native_alignment_gives() -> None:
    """Natural alignment without the mtype prefix is C's own: struct's "@" mode."""
    layout = cstruct.CStructCodec(Every, mtype_prefix=False).layout()
    native = "@bdH5sqfQhBIil"
    assert [f.offset for f in layout.fields][:3] == [0, 8, 16]
    assert layout.size == struct.calcsize(native + "0q")  # "0q": pad the end to 8


class Shouting(BaseModel):
    model_config = ConfigDict(str_to_upper=True)
    name: Annotated[str, cstruct.char(8)]


class Checked(BaseModel):
    name: Annotated[str, cstruct.char(8), AfterValidator(lambda s: s.strip())]
    n: Annotated[int, cstruct.int32, Field(ge=0)]


class Aliased(BaseModel):
    name: Annotated[str, cstruct.char(8)] = Field(alias="Name")
    ratio: Annotated[float, cstruct.float32] = Field(alias="Ratio", allow_inf_nan=False)


class NoNan(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)
    x: Annotated[float, cstruct.double]


class WithPostInit(BaseModel):
    n: Annotated[int, cstruct.int32]

    def model_post_init(self, context: Any) -> None:
        self.__dict__["n"] = self.n * 2


@pytest.mark.parametrize(
    ("model", "body", "expected"),
    [
        (Shouting, b"quiet\0\0\0", {"name": "QUIET"}),
        (Checked, struct.pack("=8si4x", b"  x  ", 3), {"name": "x", "n": 3}),
        (WithPostInit, struct.pack("=i4x", 2), {"n": 4}),
    ],
)
def test_models_with_their_own_validation_are_validated(
    model: type[BaseModel], body: bytes, expected: dict[str, Any]
) -> None:
    """What a C peer sends goes through the model's own validators and config."""
    assert cstruct.CStructCodec(model).decode(body).model_dump() == expected


def test_validation_still_rejects_on_decode() -> None:
    codec = cstruct.CStructCodec(Checked)
    body = struct.pack("=8si4x", b"ok", -5)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        codec.decode(body)
    nan = cstruct.CStructCodec(NoNan)
    with pytest.raises(ValidationError, match="finite"):
        nan.decode(struct.pack("=d", math.nan))


def test_aliased_fields_decode_by_name() -> None:
    codec = cstruct.CStructCodec(Aliased)
    value = Aliased(Name="al", Ratio=0.5)
    assert codec.decode(codec.encode(value)) == value
    with pytest.raises(ValidationError, match="finite"):
        codec.decode(struct.pack("=8sf4x", b"al", math.inf))


def test_float32_out_of_range_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="does not fit float"):
        Every.model_validate({**_every_fields(), "f": 1e39})
    assert Every.model_validate({**_every_fields(), "f": math.inf}).f == math.inf


def _every_fields() -> dict[str, Any]:
    return dict(a=1, b=2.0, c=3, d="abcd", e=5, f=6.0, g=7, h=8, i=9, j=10, k=11, m=12)


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("a", 200, r"Every\.a: 200 does not fit int8_t"),
        ("g", -1, r"Every\.g: -1 does not fit uint64_t"),
        ("f", 1e39, r"Every\.f: 1e\+39 does not fit float"),
        ("k", "eleven", r"Every\.k: str is not a int32_t"),
        ("b", None, r"Every\.b: NoneType is not a double"),
        ("d", "abcde", r"Every\.d: 5 bytes do not fit char\[5\]"),
        ("d", 42, r"Every\.d: int is not a char\[5\]"),
        ("d", "\ud800", r"Every\.d cannot be encoded as UTF-8"),
    ],
)
def test_encode_names_the_field_that_does_not_fit(field: str, bad: Any, message: str) -> None:
    """Values that bypassed validation (model_construct, assignment) fail at send."""
    codec = cstruct.CStructCodec(Every)
    value = Every(**_every_fields())
    value.__dict__[field] = bad
    with pytest.raises(ValueError, match=message):
        codec.encode(value)


def test_encode_takes_only_the_model_and_its_subclasses() -> None:
    codec = cstruct.CStructCodec(Every)

    class Sub(Every):
        pass

    sub = Sub(**_every_fields())
    assert codec.decode(codec.encode(sub)) == Every(**_every_fields())
    unset = Every.model_construct(a=1)
    with pytest.raises(ValueError, match=r"Every\.b is not set"):
        codec.encode(unset)
    with pytest.raises(TypeError, match="expected Every, got dict"):
        codec.encode(_every_fields())  # type: ignore[arg-type]


def test_decode_errors_name_field_and_length() -> None:
    codec = cstruct.CStructCodec(Every, mtype_prefix=False)
    size = codec.layout().size
    with pytest.raises(ValueError, match=rf"{size + 1} bytes is not a Every struct"):
        codec.decode(bytes(size + 1))
    body = bytearray(codec.encode(Every(**_every_fields())))
    offset = next(f.offset for f in codec.layout().fields if f.name == "d")
    body[offset] = 0xFF
    with pytest.raises(ValueError, match=r"Every\.d is not UTF-8"):
        codec.decode(bytes(body))


def test_empty_and_single_field_models() -> None:
    class Empty(BaseModel):
        pass

    class One(BaseModel):
        n: Annotated[int, cstruct.uint8]

    empty = cstruct.CStructCodec(Empty, mtype_prefix=False)
    assert empty.encode(Empty()) == b""
    same_instance(empty.decode(b""), Empty())
    one = cstruct.CStructCodec(One, mtype_prefix=False)
    assert one.encode(One(n=7)) == b"\x07"
    same_instance(one.decode(b"\x07"), One(n=7))


def test_decoded_instances_behave_like_validated_ones() -> None:
    codec = cstruct.CStructCodec(Every)
    got = codec.decode(codec.encode(Every(**_every_fields())))
    got.a = 2
    assert got.model_copy(update={"c": 4}).c == 4
    assert got.model_dump(exclude_unset=True)["a"] == 2
    assert Every.model_validate_json(got.model_dump_json()) == got
