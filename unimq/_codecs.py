"""Codecs turn typed values into message payloads and back.

The JSON codec's wire format is the model's own JSON, with no envelope, so any
peer that writes JSON interoperates. Pickle is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, TypeAdapter

__all__ = ["Codec", "JSONCodec"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Codec(Protocol[T]):
    """Encodes values of one type to bytes and back.

    ``decode`` raises ``ValueError`` (pydantic's ValidationError is one) for
    bytes that do not decode; the typed queue wraps it in DecodeError.
    """

    def encode(self, value: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...

    def json_schema(self) -> dict[str, Any]: ...


class JSONCodec(Generic[T]):
    """The value's own JSON via pydantic-core, validated on both ends.

    :param tp: a pydantic model class, or any type a ``TypeAdapter`` accepts
        (for example a discriminated union of models).
    """

    def __init__(self, tp: type[T] | Any) -> None:
        self.type = tp
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            # Straight to pydantic-core: no per-call wrapper work.
            self._to_json = tp.__pydantic_serializer__.to_json
            self._validate_json = tp.__pydantic_validator__.validate_json
            self._schema: Callable[[], dict[str, Any]] = tp.model_json_schema
        else:
            adapter: TypeAdapter[T] = TypeAdapter(tp)
            self._to_json = adapter.serializer.to_json
            self._validate_json = adapter.validator.validate_json
            self._schema = adapter.json_schema

    def encode(self, value: T) -> bytes:
        return self._to_json(value)

    def decode(self, data: bytes) -> T:
        return cast(T, self._validate_json(data))

    def json_schema(self) -> dict[str, Any]:
        return self._schema()

    def __repr__(self) -> str:
        return f"JSONCodec({getattr(self.type, '__name__', self.type)!r})"
