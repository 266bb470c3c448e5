"""Map pydantic models to fixed C struct layouts, for peers that send raw structs.

Declare each field's C type with a marker in ``typing.Annotated``::

    class Record(BaseModel):
        mtext: Annotated[str, cstruct.char(256)]
        myname: Annotated[str, cstruct.char(16)]
        seq: Annotated[int, cstruct.int32]

    q.typed(Record, codec="cstruct")

matches ``struct { long mtype; char mtext[256]; char myname[16]; int seq; }``
sent with ``msgsnd(id, &m, sizeof m - sizeof(long), 0)``: on a queue with
message types the leading ``long`` is the kernel's mtype, and the body is laid
out as gcc lays it out after it (280 bytes here: 276 of fields plus the
struct's trailing padding to ``long`` alignment). On POSIX queues there is no
mtype prefix.

Layouts use native x86-64/aarch64 sizes and gcc's natural alignment, or no
padding at all with ``packed=True`` (``__attribute__((packed))``). Strings are
UTF-8, NUL-padded on send and cut at the first NUL on receive; a string must
leave room for its terminating NUL and hold no NUL of its own, and an integer
must fit its C type: each is a validation error when the model is built, and
again at send time, never a silent cut. :meth:`CStructCodec.layout` shows sizes and offsets.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar, get_origin, get_type_hints

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from unimq.typed._struct_code import build_decoder, build_encoder

__all__ = [
    "CField",
    "CStructCodec",
    "CType",
    "Layout",
    "char",
    "double",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "long",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]

M = TypeVar("M", bound=BaseModel)
LONG_SIZE = struct.calcsize("l")
_FLOAT = struct.Struct("=f")


@dataclass(frozen=True)
class CType:
    """A C scalar or char array: its struct code, size, alignment and value range."""

    name: str
    code: str
    size: int
    align: int
    lo: float | None = None
    hi: float | None = None
    is_string: bool = False

    def check(self, value: Any) -> Any:
        """Validate ``value`` for this C type (fits, has room for its NUL); return it."""
        if self.is_string:
            raw = value.encode("utf-8")
            if b"\0" in raw:
                raise PydanticCustomError(
                    "c_string_nul",
                    "{ctype} cannot hold a NUL character (at byte {index}): a C string ends at "
                    "its first NUL, so the peer would read it cut there",
                    {"ctype": self.name, "index": raw.index(0)},
                )
            if len(raw) > self.size - 1:
                raise PydanticCustomError(
                    "c_string_too_long",
                    "{length} bytes do not fit {ctype}: at most {limit} bytes plus the NUL",
                    {"length": len(raw), "ctype": self.name, "limit": self.size - 1},
                )
            return value
        if self.code == "f":
            try:
                _FLOAT.pack(value)
            except OverflowError:
                raise PydanticCustomError(
                    "c_float_range",
                    "{value} does not fit {ctype} (magnitude at most 3.4028235e+38)",
                    {"value": value, "ctype": self.name},
                ) from None
        if self.lo is not None and self.hi is not None and not self.lo <= value <= self.hi:
            raise PydanticCustomError(
                "c_int_range",
                "{value} does not fit {ctype} ({lo}..{hi})",
                {"value": value, "ctype": self.name, "lo": self.lo, "hi": self.hi},
            )
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        # Building the model already checks that the value fits its C field.
        return core_schema.no_info_after_validator_function(self.check, handler(source))


def char(n: int) -> CType:
    """``char name[n]``: a UTF-8 string of at most n-1 bytes, NUL-padded."""
    if n < 1:
        raise ValueError("char arrays need at least one byte")
    return CType(f"char[{n}]", f"{n}s", n, 1, is_string=True)


def _int(name: str, code: str, signed: bool) -> CType:
    size = struct.calcsize(code)
    lo, hi = (
        (-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1) if signed else (0, 2 ** (8 * size) - 1)
    )
    return CType(name, code, size, size, lo, hi)


int8 = _int("int8_t", "b", True)
int16 = _int("int16_t", "h", True)
int32 = _int("int32_t", "i", True)
int64 = _int("int64_t", "q", True)
uint8 = _int("uint8_t", "B", False)
uint16 = _int("uint16_t", "H", False)
uint32 = _int("uint32_t", "I", False)
uint64 = _int("uint64_t", "Q", False)
long = _int("long", "q" if LONG_SIZE == 8 else "i", True)  # "=" formats: "l" is 4 bytes
float32 = CType("float", "f", 4, 4)
float64 = CType("double", "d", 8, 8)
double = float64


@dataclass(frozen=True)
class CField:
    """One field of a layout."""

    name: str
    ctype: CType
    offset: int


@dataclass(frozen=True)
class Layout:
    """Where each field lies in the message body, and the body's size."""

    fields: tuple[CField, ...]
    size: int
    min_size: int
    packed: bool
    mtype_prefix: bool
    format: str

    def describe(self) -> str:
        """A C declaration of the layout, with offsets."""
        lines = ["struct {"]
        if self.mtype_prefix:
            lines.append("    long mtype;                 /* the kernel's message type */")
        for f in self.fields:
            decl = f"{f.ctype.name.split('[')[0]} {f.name}"
            if f.ctype.is_string:
                decl += f"[{f.ctype.size}]"
            lines.append(f"    {decl + ';':<28}/* body offset {f.offset} */")
        attr = " __attribute__((packed))" if self.packed else ""
        lines.append(f"}}{attr};   /* body: {self.size} bytes */")
        return "\n".join(lines)


def _marker(annotation: Any) -> CType | None:
    if get_origin(annotation) is not None and hasattr(annotation, "__metadata__"):
        for meta in annotation.__metadata__:
            if isinstance(meta, CType):
                return meta
    return None


def compute_layout(model: type[BaseModel], *, packed: bool, mtype_prefix: bool) -> Layout:
    """The gcc layout of ``model``'s fields (after a ``long`` mtype when ``mtype_prefix``)."""
    hints = get_type_hints(model, include_extras=True)
    fields: list[CField] = []
    fmt = ["="]  # standard sizes, no automatic alignment: padding is explicit
    start = LONG_SIZE if mtype_prefix else 0
    offset = start
    max_align = LONG_SIZE if mtype_prefix else 1
    for name in model.model_fields:
        ctype = _marker(hints.get(name))
        if ctype is None:
            raise TypeError(
                f"{model.__name__}.{name} has no C type marker; declare it as "
                f"Annotated[..., cstruct.int32] (or char(N), double, ...)"
            )
        if not packed:
            pad = -offset % ctype.align
            if pad:
                fmt.append(f"{pad}x")
            offset += pad
            max_align = max(max_align, ctype.align)
        fields.append(CField(name, ctype, offset - start))
        fmt.append(ctype.code)
        offset += ctype.size
    unpadded = offset - start
    if not packed:
        offset += -offset % max_align
    size = offset - start
    if size > unpadded:
        fmt.append(f"{size - unpadded}x")
    return Layout(tuple(fields), size, unpadded, packed, mtype_prefix, "".join(fmt))


# model_config keys that change what validation of a str/int/float field returns.
_VALIDATING_CONFIG = ("str_strip_whitespace", "str_to_lower", "str_to_upper", "str_min_length")


def _plain_model(model: type[BaseModel], layout: Layout) -> bool:
    """Whether decoding may skip pydantic, because validation could neither reject
    nor change what the C fields yield: no validators, post-init, private state or
    extras, no config that transforms strings or refuses inf/nan, and every field
    annotated with exactly its C field's Python type and no other constraint."""
    decorators = model.__pydantic_decorators__
    if any(
        getattr(decorators, name)
        for name in ("validators", "field_validators", "root_validators", "model_validators")
    ):
        return False
    config = model.model_config
    if (
        model.__pydantic_post_init__ is not None
        or model.__pydantic_root_model__
        or model.__private_attributes__
        or config.get("extra") == "allow"
        or any(config.get(key) for key in _VALIDATING_CONFIG)
        or config.get("str_max_length") is not None
        or config.get("allow_inf_nan", True) is not True
    ):
        return False
    hints = get_type_hints(model, include_extras=False)
    for f in layout.fields:
        expected = str if f.ctype.is_string else (float if f.ctype.code in "fd" else int)
        if hints.get(f.name) is not expected or len(model.model_fields[f.name].metadata) != 1:
            return False
    return True


class CStructCodec(Generic[M]):
    """Encode a model as a C struct body (and decode one back, validating it).

    :param model: a pydantic model whose fields all carry C type markers.
    :param packed: no padding between or after fields.
    :param mtype_prefix: the C struct starts with ``long mtype`` (SysV), which
        affects the alignment of the body's end.
    """

    encode: Callable[[M], bytes]
    """The message body gcc would lay out for a model instance; ValueError (naming
    the field) for a value that does not fit, TypeError for another type."""
    decode: Callable[[bytes], M]
    """The model from a message body; ValueError for a body of the wrong size or
    text that is not UTF-8, pydantic's ValidationError from the model's own rules."""

    def __init__(self, model: type[M], *, packed: bool = False, mtype_prefix: bool = True) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError("the cstruct codec maps a pydantic model class")
        self.model = model
        self._layout = layout = compute_layout(model, packed=packed, mtype_prefix=mtype_prefix)
        packer = struct.Struct(layout.format)
        names = tuple(f.name for f in layout.fields)
        strings = [(i, f.ctype.size - 1) for i, f in enumerate(layout.fields) if f.ctype.is_string]
        validator = model.__pydantic_validator__.validate_python
        # The encode and decode methods are straight-line functions compiled once for
        # this layout (see unimq.typed._struct_code); the helpers below are their cold paths.
        self.encode = build_encoder(
            model, names, strings, packer.pack, self._bad_string, self._explain
        )
        self.decode = build_decoder(
            model,
            names,
            [i for i, _room in strings],
            packer.unpack,
            self._fit,
            self._not_utf8,
            layout.size,
            None if _plain_model(model, layout) else partial(validator, by_name=True),
        )

    def layout(self) -> Layout:
        """The struct layout: size, offsets, and :meth:`Layout.describe`."""
        return self._layout

    def _bad_string(self, name: str, raw: bytes, room: int) -> Exception:
        if len(raw) > room:
            return ValueError(
                f"{self.model.__name__}.{name}: {len(raw)} bytes do not fit char[{room + 1}] "
                f"(at most {room} bytes plus the NUL)"
            )
        return ValueError(
            f"{self.model.__name__}.{name} holds a NUL character at byte {raw.index(0)}: a C "
            "string ends at its first NUL, so the peer would read it cut there"
        )

    def _explain(self, exc: Exception, values: dict[str, Any]) -> Exception:
        """An encoding error as a ValueError naming the field that does not fit."""
        prefix = self.model.__name__
        for f in self._layout.fields:
            if f.name not in values:
                return ValueError(f"{prefix}.{f.name} is not set")
            item = values[f.name]
            expected = str if f.ctype.is_string else (int, float) if f.ctype.code in "fd" else int
            if not isinstance(item, expected):
                return ValueError(
                    f"{prefix}.{f.name}: {type(item).__name__} is not a {f.ctype.name}"
                )
            try:
                f.ctype.check(item)
            except PydanticCustomError as err:
                return ValueError(f"{prefix}.{f.name}: {err}")
            except UnicodeEncodeError as err:
                return ValueError(f"{prefix}.{f.name} cannot be encoded as UTF-8: {err}")
        return ValueError(f"{prefix}: {exc}")

    def _fit(self, data: bytes) -> bytes:
        """Pad a body that lacks only the trailing padding; reject any other length."""
        size, min_size = self._layout.size, self._layout.min_size
        if not min_size <= len(data) <= size:
            raise ValueError(
                f"{len(data)} bytes is not a {self.model.__name__} struct "
                f"({min_size}..{size} bytes expected)"
            )
        return data + bytes(size - len(data))

    def _not_utf8(self, name: str, exc: UnicodeDecodeError) -> Exception:
        return ValueError(f"{self.model.__name__}.{name} is not UTF-8: {exc}")

    def json_schema(self) -> dict[str, Any]:
        """The model's JSON Schema, plus the C layout under ``x-c-struct``."""
        schema = self.model.model_json_schema()
        schema["x-c-struct"] = self._layout.describe()
        return schema

    def __repr__(self) -> str:
        return f"CStructCodec({self.model.__name__}, size={self._layout.size})"
