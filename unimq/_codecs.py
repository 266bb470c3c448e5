"""Codecs turn typed values into message payloads and back.

The JSON codec's wire format is the model's own JSON, with no envelope, so any
peer that writes JSON interoperates. Pickle is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, TypeAdapter

__all__ = ["Codec", "JSONCodec"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Codec(Protocol[T]):
    """Encodes values of one type to bytes and back.

    ``decode`` raises ``ValueError`` (pydantic's ValidationError is one) for
    bytes that do not decode; the typed queue wraps it in DecodeError.
    """

    def encode(self, value: T) -> bytes:
        """Serialize one value to message bytes."""

    def decode(self, data: bytes) -> T:
        """Parse and validate message bytes."""

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of what this codec carries."""


class JSONCodec(Generic[T]):
    """The value's own JSON via pydantic-core, validated on both ends.

    :param tp: a pydantic model class, or any type a ``TypeAdapter`` accepts
        (for example a discriminated union of models).
    """

    def __init__(self, tp: type[T] | Any) -> None:
        self.type = tp
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            serializer, validator = tp.__pydantic_serializer__, tp.__pydantic_validator__
            self._schema: Callable[[], dict[str, Any]] = tp.model_json_schema
        else:
            adapter: TypeAdapter[T] = TypeAdapter(tp)
            serializer, validator = adapter.serializer, adapter.validator
            self._schema = adapter.json_schema
        # encode/decode ARE pydantic-core's own functions: no Python frame per call.
        self.encode: Callable[[T], bytes] = serializer.to_json
        self.decode: Callable[[bytes], T] = validator.validate_json

    def json_schema(self) -> dict[str, Any]:
        return self._schema()

    def __repr__(self) -> str:
        return f"JSONCodec({getattr(self.type, '__name__', self.type)!r})"
