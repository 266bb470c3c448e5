"""``unimq.open`` and ``unimq.remove``: URL in, backend call out."""

from __future__ import annotations

import logging
from typing import Any

from unimq._errors import InvalidURL, QueueNotFound
from unimq._names import sysv_id
from unimq._options import OptionParser, merge_options, parse_access, positive_int
from unimq._overflow import check as check_overflow
from unimq._overflow import install as install_overflow
from unimq._overflow import parse_on_full
from unimq._queue import Queue
from unimq._registry import get_backend
from unimq._url import QueueURL, parse_url

__all__ = ["open", "prepare_open", "remove"]

logger = logging.getLogger("unimq.queue")

#: Options of every kind, handled by the core (not passed to the backend).
CORE_OPTIONS: dict[str, OptionParser] = {
    "access": parse_access,
    "on_full": parse_on_full,
    "keep": positive_int,
}


def _split(url: str | QueueURL | None) -> tuple[type[Queue], QueueURL, dict[str, str]]:
    """The backend, the queue's address (URL without options) and the URL's options."""
    parsed = parse_url(url)
    cls = get_backend(parsed.scheme)
    address = tuple((k, v) for k, v in parsed.query if k in cls.address_keys)
    options = {k: v for k, v in parsed.query if k not in cls.address_keys}
    base = parsed.with_query(address)
    cls._check_url(base)
    return cls, base, options


def prepare_open(
    url: str | QueueURL | None,
    *,
    create: bool,
    exclusive: bool,
    mode: int,
    **options: Any,
) -> tuple[type[Queue], QueueURL, dict[str, Any]]:
    """Everything :func:`open` checks before any system call: the backend, the
    queue's address and the merged options (``access``, ``on_full`` and
    ``keep`` included); shared with :func:`unimq.aio.open`."""
    cls, base, url_options = _split(url)
    if exclusive and not create:
        raise InvalidURL("exclusive=True only makes sense with create=True")
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        raise InvalidURL(f"mode must be permission bits 0..0o777, got {mode!r}")
    parsers = {**cls.options, **CORE_OPTIONS}
    merged = merge_options(base.scheme, url_options, options, parsers)
    check_overflow(merged.get("on_full", "wait"), merged.get("keep"), merged.get("access", "rw"))
    return cls, base, merged


def open(
    url: str | QueueURL | None = None,
    *,
    create: bool = False,
    exclusive: bool = False,
    mode: int = 0o600,
    **options: Any,
) -> Queue:
    """Open the queue at ``url`` (default: ``$UNIMQ_URL``).

    :param create: create the queue if it does not exist.
    :param exclusive: with ``create``, fail with :class:`QueueExists` if it exists.
    :param mode: permission bits for a new queue (0o600 by default).
    :param options: backend options (``max_messages``, ``max_message_size``,
        ``max_bytes``), ``access`` (``"rw"``, ``"r"`` or ``"w"``) and ``on_full``
        (``"wait"``, ``"drop_oldest"`` or ``"keep_latest"`` with ``keep=N``; see
        :doc:`lifecycle`); also accepted in the URL query.
    :raises InvalidURL: for a bad URL, unknown option or conflicting values.
    :raises QueueNotFound: if the queue does not exist and ``create`` is false.
    :raises QueueExists: if ``exclusive`` and the queue exists.
    :raises PermissionDenied: if the queue's mode forbids the requested access.
    :raises LimitExceeded: if a system limit stops creation (the message names it).
    :raises BackendNotInstalled: if the scheme's backend package is missing.
    """
    cls, base, merged = prepare_open(url, create=create, exclusive=exclusive, mode=mode, **options)
    access = merged.pop("access", "rw")
    on_full = merged.pop("on_full", "wait")
    keep = merged.pop("keep", None)
    handle = cls._open_queue(
        base,
        create=bool(create),
        exclusive=bool(exclusive),
        mode=mode,
        access=access,
        options=merged,
    )
    install_overflow(handle, on_full, keep)
    return handle


def remove(url: str | QueueURL | None = None, *, missing_ok: bool = False) -> None:
    """Remove the queue at ``url`` without holding a handle on it.

    The URL is checked as :func:`open` checks it: an unknown option, or a
    value that does not parse, is :class:`InvalidURL` (options that only
    matter when creating are accepted and ignored). ``sysv://id:N`` removes
    the SysV queue whose identifier (msqid) is N, the one address a queue
    created with IPC_PRIVATE has.

    :raises InvalidURL: for a bad URL or option.
    :raises QueueNotFound: if it does not exist (unless ``missing_ok``).
    :raises PermissionDenied: if the caller may not remove it.
    """
    parsed = parse_url(url)
    msqid = sysv_id(parsed.target) if parsed.scheme == "sysv" else None
    if msqid is not None:
        if parsed.query:
            raise InvalidURL(
                f"{parsed} takes no options: an identifier address names one existing queue",
                url=str(parsed),
            )
        from unimq.system import _remove_sysv_id

        _remove_sysv_id(msqid, missing_ok=missing_ok)
        return
    cls, base, url_options = _split(parsed)
    # The same option check as open(): an unknown or malformed option is an error
    # here too (the options themselves do not matter for removal).
    merge_options(base.scheme, url_options, {}, {**cls.options, **CORE_OPTIONS})
    try:
        cls._remove_url(base)
    except QueueNotFound:
        if not missing_ok:
            raise
    else:
        logger.info("removed %s", base)


def _reopen(url: str) -> Queue:
    """Unpickle a handle: open its URL again (no create)."""
    return open(url)
