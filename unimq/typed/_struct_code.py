"""Per-layout encode/decode functions for :mod:`unimq.cstruct`, compiled once.

A generic loop over fields costs more than the struct packing itself, so each
codec gets two functions written for its layout (as ``dataclasses`` writes
``__init__``): straight-line code, one local per field, no per-call lookups.
Field names appear in the source only as ``repr()`` string literals and the
helpers are passed in as globals, so no user text is ever evaluated as code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["build_decoder", "build_encoder"]

_slot = BaseModel.__dict__
# Setting the instance slots through their descriptors skips attribute lookup.
_SET_DICT = _slot["__dict__"].__set__
_SET_FIELDS = _slot["__pydantic_fields_set__"].__set__
_SET_EXTRA = _slot["__pydantic_extra__"].__set__
_SET_PRIVATE = _slot["__pydantic_private__"].__set__


def _compile(name: str, source: str, env: dict[str, Any]) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<unimq.cstruct {name}>", "exec"), env, namespace)
    fn: Callable[..., Any] = namespace[name]
    return fn


def build_encoder(
    model: type[BaseModel],
    names: Sequence[str],
    strings: Sequence[tuple[int, int]],
    pack: Callable[..., bytes],
    bad_string: Callable[[str, bytes, int], Exception],
    explain: Callable[[Exception, dict[str, Any]], Exception],
) -> Callable[[Any], bytes]:
    """``encode(value) -> bytes`` for ``model``.

    :param strings: ``(index, room)`` of each char[N] field, room = N - 1.
    :param bad_string: the error for field ``name`` whose UTF-8 bytes do not
        fit ``room`` bytes or hold a NUL (C would read the string as cut there).
    :param explain: turns an error from the field values (``value.__dict__``)
        into a ValueError naming the field.
    """
    room = dict(strings)
    body = [
        "def encode(value):",
        "    if value.__class__ is not model and not isinstance(value, model):",
        "        raise TypeError(f'expected {model.__name__}, got {type(value).__name__}')",
        "    d = value.__dict__",
        "    try:",  # free in Python 3.11 unless something raises
    ]
    for i, name in enumerate(names):
        if i in room:
            body += [
                f"        v{i} = d[{name!r}].encode()",
                f"        if len(v{i}) > {room[i]} or b'\\0' in v{i}:",
                f"            raise bad_string({name!r}, v{i}, {room[i]})",
            ]
        else:
            body.append(f"        v{i} = d[{name!r}]")
    args = "".join(f"v{i}, " for i in range(len(names)))
    body += [
        f"        return pack({args})",
        # Values that bypassed validation (model_construct, assignment without
        # validate_assignment): a wrong type, a number out of range, bad text.
        "    except (struct.error, OverflowError, TypeError, AttributeError, KeyError,",
        "            UnicodeEncodeError) as exc:",
        "        raise explain(exc, d) from None",
    ]
    env = {
        "model": model,
        "pack": pack,
        "bad_string": bad_string,
        "explain": explain,
        "struct": struct,
    }
    return _compile("encode", "\n".join(body), env)


def build_decoder(
    model: type[BaseModel],
    names: Sequence[str],
    strings: Sequence[int],
    unpack: Callable[[bytes], tuple[Any, ...]],
    fit: Callable[[bytes], bytes],
    not_utf8: Callable[[str, UnicodeDecodeError], Exception],
    size: int,
    validate: Callable[[dict[str, Any]], Any] | None,
) -> Callable[[bytes], Any]:
    """``decode(data) -> model`` for ``model``.

    :param strings: index of each char[N] field, cut at its first NUL.
    :param fit: pads a short body to ``size`` or raises for a wrong length.
    :param validate: pydantic's validator for models that need it; None builds
        the instance directly (see ``cstruct._plain_model``).
    """
    targets = "".join(f"v{i}, " for i in range(len(names)))
    body = [
        "def decode(data):",
        f"    if len(data) != {size}:",
        "        data = fit(data)",
        f"    ({targets}) = unpack(data)",
    ]
    for i in strings:
        body += [
            "    try:",
            f"        v{i} = v{i}.partition(b'\\0')[0].decode()",
            "    except UnicodeDecodeError as exc:",
            f"        raise not_utf8({names[i]!r}, exc) from None",
        ]
    fields = "{" + "".join(f"{name!r}: v{i}, " for i, name in enumerate(names)) + "}"
    if validate is not None:
        body.append(f"    return validate({fields})")
    else:
        fields_set = "{" + "".join(f"{name!r}, " for name in names) + "}"
        if not names:
            fields_set = "set()"
        body += [
            "    obj = new(model)",
            f"    set_dict(obj, {fields})",
            f"    set_fields(obj, {fields_set})",
            "    set_extra(obj, None)",
            "    set_private(obj, None)",
            "    return obj",
        ]
    env = {
        "model": model,
        "unpack": unpack,
        "fit": fit,
        "not_utf8": not_utf8,
        "validate": validate,
        "new": model.__new__,
        "set_dict": _SET_DICT,
        "set_fields": _SET_FIELDS,
        "set_extra": _SET_EXTRA,
        "set_private": _SET_PRIVATE,
    }
    return _compile("decode", "\n".join(body), env)
