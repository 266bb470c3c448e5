"""What the contract needs to know about a backend, and the bookkeeping of the
queues a test run creates (only the ones it handed out)."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import unimq

__all__ = ["Backend", "QueueLedger", "exists", "message_options", "unique_name"]

_counter = itertools.count()


def unique_name(prefix: str = "unimq-test") -> str:
    """A name no other test, process or earlier run uses: prefix, pid, a counter
    and 32 random bits (``unimq-test-4242-7-9f3a01c2``)."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{random.getrandbits(32):08x}"


def message_options(capacity: int, size: int) -> dict[str, Any]:
    """Options for room for exactly ``capacity`` messages of ``size`` bytes, for a
    backend that counts messages (``max_messages``, ``max_message_size``): the
    default of :attr:`Backend.options`."""
    return {"max_messages": capacity, "max_message_size": size}


@dataclass(frozen=True)
class Backend:
    """The backend under test, as the contract sees it.

    ``make_url`` returns a URL of a queue that does not exist yet, one no other
    test or process uses (build it with :func:`unique_name`); the contract
    creates the queue itself, and removes it afterwards.

    ``capabilities`` is what the backend promises: the contract checks that
    handles report exactly this, and runs the tests of each capability (message
    types, priorities, other processes) only where it is declared.

    ``options(capacity, size)`` gives the :func:`unimq.open` options that make
    room for exactly ``capacity`` messages of ``size`` bytes (SysV, for example,
    counts bytes: ``{"max_bytes": capacity * size}``). Each option named like a
    :class:`unimq.QueueStat` field must show there with the value given.

    ``stat_fields`` names the optional :class:`unimq.QueueStat` fields the
    backend keeps (``"bytes"``, ``"last_send_pid"``, ``"last_send_time"``, ...):
    the contract requires them to be filled in, with the right values.
    """

    make_url: Callable[[], str]
    capabilities: unimq.Capability
    options: Callable[[int, int], Mapping[str, Any]] = message_options
    stat_fields: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = set(self.stat_fields) - set(unimq.QueueStat.model_fields)
        if unknown:
            raise ValueError(
                f"stat_fields names fields QueueStat does not have: {', '.join(sorted(unknown))}"
            )


def exists(url: str) -> bool:
    """Whether a queue exists at ``url`` (opening it, without creating it).

    A queue this process may not open still exists: :class:`unimq.PermissionDenied`
    counts as present.
    """
    try:
        unimq.open(url).close()
    except unimq.QueueNotFound:
        return False
    except unimq.PermissionDenied:
        return True
    return True


class QueueLedger:
    """Hands out fresh URLs and remembers them, so that exactly those queues are
    removed afterwards and checked to be gone.

    Nothing else is touched: a queue another process made, even one whose name
    looks like a test's, is neither removed nor reported.
    """

    def __init__(self, make_url: Callable[[], str] | None = None) -> None:
        self._make_url = make_url
        self.urls: list[str] = []

    def new_url(self) -> str:
        """A fresh URL, recorded for :meth:`cleanup`."""
        if self._make_url is None:
            raise TypeError("this ledger was made without make_url; use track(url)")
        url = self._make_url()
        if not isinstance(url, str) or "://" not in url:
            raise TypeError(f"make_url() must return a queue URL string, got {url!r}")
        return self.track(url)

    def track(self, url: str) -> str:
        """Record a URL made elsewhere, so that :meth:`cleanup` covers it too."""
        self.urls.append(url)
        return url

    def cleanup(self) -> list[str]:
        """Remove every queue handed out that still exists; return the ones
        that are still there afterwards, each with the reason (leaks)."""
        left: list[str] = []
        for url in self.urls:
            error: unimq.UnimqError | None = None
            try:
                unimq.remove(url, missing_ok=True)
            except unimq.UnimqError as exc:
                error = exc
            with contextlib.suppress(unimq.UnimqError):
                if not exists(url):
                    continue
            left.append(f"{url} ({error})" if error is not None else url)
        return left
