"""Which backend class serves which URL scheme.

Backends load lazily: ``unimq.open("posix://…")`` imports ``unimq_posix``
only then. Schemes come from a built-in table of ``"module:Class"``
references, from the ``unimq.backends`` entry-point group, and from
:func:`register_backend`.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING

from unimq._errors import BackendNotInstalled, InvalidURL

if TYPE_CHECKING:
    from unimq._queue import Queue

__all__ = [
    "BUILTIN_BACKENDS",
    "available_backends",
    "get_backend",
    "known_schemes",
    "register_backend",
]

ENTRY_POINT_GROUP = "unimq.backends"

#: scheme -> ("module:Class", pip extra or None)
BUILTIN_BACKENDS = MappingProxyType(
    {
        "memory": ("unimq._memory:MemoryQueue", None),
        "posix": ("unimq_posix:PosixQueue", "posix"),
        "sysv": ("unimq_sysv:SysVQueue", "sysv"),
        "redis": ("unimq_redis:RedisQueue", "redis"),
        "rediss": ("unimq_redis:RedisQueue", "redis"),
        "redis+unix": ("unimq_redis:RedisQueue", "redis"),
        "redis+sentinel": ("unimq_redis:RedisQueue", "redis"),
        "rediss+sentinel": ("unimq_redis:RedisQueue", "redis"),
    }
)

_lock = threading.Lock()
_loaded: dict[str, type[Queue]] = {}
_registered: dict[str, str | type[Queue]] = {}
_entry_points: dict[str, str] | None = None


def register_backend(scheme: str, backend: str | type[Queue], *, replace: bool = False) -> None:
    """Serve ``scheme://`` URLs with ``backend`` (a Queue subclass or ``"module:Class"``).

    :raises ValueError: if the scheme is taken and ``replace`` is false.
    """
    scheme = scheme.lower()
    with _lock:
        if not replace and (scheme in _registered or scheme in BUILTIN_BACKENDS):
            raise ValueError(f"scheme {scheme!r} is already registered; pass replace=True")
        _registered[scheme] = backend
        _loaded.pop(scheme, None)


def _discovered() -> dict[str, str]:
    global _entry_points
    if _entry_points is None:
        _entry_points = {ep.name.lower(): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _entry_points


def known_schemes() -> list[str]:
    """Every scheme unimq knows, installed or not, sorted."""
    return sorted({*BUILTIN_BACKENDS, *_registered, *_discovered()})


def _load(scheme: str, ref: str, extra: str | None) -> type[Queue]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.split(".")[0]
        if extra is not None:
            dist = package.replace("_", "-")
            hint = (
                f"pip install 'unimq[{extra}]' once the packages are on your index; from a "
                f"clone of unimq: pip install ./backends/{extra}, or the built {dist} wheel "
                "(see the README)"
            )
        else:
            hint = f"install the package that provides {package}"
        raise BackendNotInstalled(
            f"the {scheme}:// backend needs the {package.replace('_', '-')} package, "
            f"which cannot be imported ({exc}); install it with: {hint}"
        ) from exc
    try:
        cls: type[Queue] = getattr(module, attr)
    except AttributeError:
        raise BackendNotInstalled(
            f"{module_name} has no backend class {attr!r} for {scheme}://"
        ) from None
    return cls


def get_backend(scheme: str) -> type[Queue]:
    """The backend class for ``scheme``, imported on first use.

    :raises InvalidURL: for an unknown scheme (listing the known ones).
    :raises BackendNotInstalled: if the scheme's package is missing.
    """
    cls = _loaded.get(scheme)
    if cls is not None:
        return cls
    with _lock:
        target = _registered.get(scheme)
    if target is not None and not isinstance(target, str):
        cls = target
    elif target is not None:
        cls = _load(scheme, target, None)
    elif scheme in BUILTIN_BACKENDS:
        ref, extra = BUILTIN_BACKENDS[scheme]
        cls = _load(scheme, ref, extra)
    elif scheme in _discovered():
        cls = _load(scheme, _discovered()[scheme], None)
    else:
        known = known_schemes()
        close = difflib.get_close_matches(scheme, known, n=1)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidURL(
            f"unknown queue URL scheme {scheme!r}{guess} Known schemes: {', '.join(known)}"
        )
    _loaded[scheme] = cls
    return cls


def available_backends() -> dict[str, bool]:
    """Each known scheme and whether its backend imports here."""
    result: dict[str, bool] = {}
    for scheme in known_schemes():
        try:
            get_backend(scheme)
        except (BackendNotInstalled, InvalidURL):
            result[scheme] = False
        else:
            result[scheme] = True
    return result
