"""The public names are pinned: adding or removing one is a deliberate change."""

from __future__ import annotations

import unimq

CORE_NAMES = {
    "MTYPE_MAX",
    "PRIORITY_MAX",
    "AttributeMismatchWarning",
    "BackendNotInstalled",
    "BackendUnavailable",
    "Capability",
    "DecodeError",
    "InvalidKey",
    "InvalidName",
    "InvalidURL",
    "LimitExceeded",
    "Message",
    "MessageTooLarge",
    "NotificationBusy",
    "PermissionDenied",
    "Queue",
    "QueueClosed",
    "QueueEmpty",
    "QueueExists",
    "QueueFull",
    "QueueNotFound",
    "QueueRemoved",
    "QueueStat",
    "QueueURL",
    "UnimqError",
    "UnsupportedOperation",
    "available_backends",
    "get_backend",
    "known_schemes",
    "open",
    "parse_url",
    "register_backend",
    "remove",
}


def test_all_is_sorted_and_complete() -> None:
    assert unimq.__all__ == sorted(unimq.__all__, key=lambda n: (not n.isupper(), n))
    assert set(unimq.__all__) >= CORE_NAMES
    for name in unimq.__all__:
        assert hasattr(unimq, name), name


def test_py_typed_is_shipped() -> None:
    from importlib.resources import files

    assert files("unimq").joinpath("py.typed").is_file()
