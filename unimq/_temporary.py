"""``unimq.temporary``: a queue with a unique name or key that does not outlive its use.

- POSIX: created, then unlinked at once while the descriptor stays open, so
  the kernel frees the queue with the last descriptor, even after a crash.
  Children inherit the handle across ``fork``; nothing can open it by name.
- SysV (and any other kind other processes can open): removed when the
  creating handle closes or the process exits normally, and recorded in the
  registry (:mod:`unimq.system._orphans`) so ``unimq gc`` removes it after a crash.
- memory: removed when the creating handle closes.
- a network backend (``unimq.temporary("redis://host:port")``): a unique name
  on that server, removed when the creating handle closes or the process exits
  normally; its keys carry an expiry (``ttl``) that the handle renews while it
  is open, so after a crash the server drops the queue by itself.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import threading
import uuid
import weakref
from pathlib import Path
from typing import Any

from unimq._errors import InvalidURL, QueueExists, QueueNotFound, UnimqError
from unimq._message import Capability
from unimq._open import open as open_queue
from unimq._queue import Queue
from unimq._registry import get_backend
from unimq._url import QueueURL
from unimq.system._orphans import confirm, register, unregister

__all__ = ["SYSV_TEMPORARY_KEYS", "temporary"]

_log = logging.getLogger("unimq")

#: SysV keys temporary queues are drawn from (``unimq gc --match 'sysv://0x6*'``).
SYSV_TEMPORARY_KEYS = (0x60000000, 0x6FFFFFFF)
_TRIES = 100

_lock = threading.Lock()
#: This process's open temporary handles, closed (and so removed) at exit.
_open: weakref.WeakSet[Queue] = weakref.WeakSet()


def _unique_name(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _unique_url(scheme: str, prefix: str) -> tuple[str, int | None]:
    token = _unique_name(prefix)
    if scheme == "posix":
        return f"posix:///{token}", None
    if scheme == "sysv":
        key = random.randint(*SYSV_TEMPORARY_KEYS)
        return f"sysv://0x{key:08x}", key
    return f"{scheme}://{token}", None


def _remove_at_close(path: Path | None, creator: int, handle: Queue) -> None:
    if os.getpid() != creator:
        return  # a forked child's copy is not the creating handle
    # The handle is already marked closed (so waiters woken by the removal
    # report QueueClosed); its descriptors are still open for _remove().
    try:
        handle._remove()
    except QueueNotFound:
        pass
    except Exception as exc:  # close() must release the handle whatever happens here
        _log.warning(
            "could not remove temporary queue %s: %s: %s ('unimq gc' will find it)",
            handle.url,
            type(exc).__name__,
            exc,
        )
        return
    _log.info("removed temporary %s", handle.url)
    if path is not None:
        unregister(path)


def temporary(
    kind: str = "memory",
    *,
    mode: int = 0o600,
    prefix: str = "unimq-tmp",
    ttl: float | None = None,
    **options: Any,
) -> Queue:
    """Create a queue with a unique name (or key) that goes away with its use.

    :param kind: the scheme: ``"posix"``, ``"sysv"``, ``"memory"``, or another
        backend's; for a network backend, a server URL without a queue name
        (``"redis://127.0.0.1:6379"``): the queue is made on that server.
    :param ttl: network backends only: seconds after which the server drops the
        queue once nothing renews it (the creating handle renews it while it is
        open); the backend's default (30 s for redis) when None.
    :param mode: permission bits (0o600 by default).
    :param prefix: the start of the generated POSIX/memory name.
    :param options: as for :func:`unimq.open` (``max_messages``, ``on_full``, ...).
    :return: an open handle; ``handle.url`` says what was created.

    POSIX queues are unlinked at once (the descriptor keeps them alive until
    the last one closes, even after a crash; forked children share it, a
    pickled handle cannot reopen it). Other kinds are removed when this handle
    closes (``with`` or ``close()``), is garbage-collected, or the process
    exits normally; SysV ones are registered so ``unimq gc`` removes them
    when the process crashed.

    :raises InvalidURL: for an unknown kind or option.
    :raises LimitExceeded: if a system limit stops creation.
    """
    server: str | None = None
    if isinstance(kind, str) and "://" in kind:
        server, kind = kind, kind.partition("://")[0]
    if not isinstance(kind, str) or not kind or "/" in kind or ":" in kind:
        raise InvalidURL(
            f"kind must be a scheme such as 'posix', 'sysv' or 'memory' (or a server URL "
            f"such as 'redis://127.0.0.1:6379'), not {kind!r}; temporary() makes the name itself"
        )
    if not prefix or "/" in prefix or "?" in prefix or "#" in prefix:
        raise InvalidURL(f"prefix must be a non-empty name without '/', '?' or '#', got {prefix!r}")
    scheme = kind.lower()
    cls = get_backend(scheme)
    if server is not None:
        expiry = ttl if ttl is not None else cls.temporary_ttl
        if expiry is not None:
            options["ttl"] = expiry
        cls._temporary_url(server, f"{prefix}-check")  # a bad server URL fails once, here
    elif ttl is not None:
        raise InvalidURL(
            f"ttl is for temporary queues on a server (such as unimq.temporary("
            f"'redis://host:port', ttl=...)); a {scheme}:// queue does not expire"
        )
    registered = (
        server is None and scheme != "posix" and bool(cls.capabilities & Capability.INTERPROCESS)
    )
    for _ in range(_TRIES):
        url: str | QueueURL
        if server is not None:
            url, key = cls._temporary_url(server, _unique_name(prefix)), None
        else:
            url, key = _unique_url(scheme, prefix)
        path = register(str(url), scheme, key=key) if registered else None
        try:
            handle = open_queue(url, create=True, exclusive=True, mode=mode, **options)
        except QueueExists:
            if path is not None:
                unregister(path)
            continue
        except BaseException:
            if path is not None:
                unregister(path)
            raise
        break
    else:
        raise UnimqError(f"could not find a free {scheme}:// name in {_TRIES} tries; try again")
    if scheme == "posix":
        # The name goes now; the open descriptor keeps the queue until the last one closes.
        handle.remove()
        _log.info("temporary %s unlinked at once (it lives while a descriptor is open)", url)
        return handle
    if path is not None:
        try:
            confirm(path, id=handle.stat().id)
        except (UnimqError, OSError) as exc:  # the entry still names the key: gc copes
            _log.debug("could not record the id of %s: %s", url, exc)
    creator = os.getpid()
    handle._before_close = lambda q: _remove_at_close(path, creator, q)
    with _lock:
        _open.add(handle)
    return handle


@atexit.register
def _close_all() -> None:
    with _lock:
        handles = list(_open)
    for handle in handles:
        with contextlib.suppress(Exception):  # exiting: nothing left to report to
            handle.close()
