"""Typed messages: pydantic values over any queue.

``q.typed(Model)`` returns a :class:`TypedQueue`; :class:`JSONCodec` carries
the value's own JSON, and :mod:`unimq.cstruct` maps models to C structs.
"""

from __future__ import annotations

from unimq.cstruct import CStructCodec
from unimq.typed._codecs import Codec, JSONCodec
from unimq.typed._queue import TypedQueue

__all__ = ["CStructCodec", "Codec", "JSONCodec", "TypedQueue"]
