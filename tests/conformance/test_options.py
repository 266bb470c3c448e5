"""Option values of unimq's own backends: range-checked, InvalidURL naming the option."""

from __future__ import annotations

from typing import Any

import pytest

import unimq
from tests.conftest import UrlFactory


@pytest.mark.parametrize(
    "value", ["99999999999999999999", "2147483648", "0", "-1", "1_000", " 5", "\u0663", "+5"]
)
def test_option_values_out_of_range_are_invalid_url(
    kind: str, make_url: UrlFactory, value: str
) -> None:
    name = "max_bytes" if kind == "sysv" else "max_messages"
    url = make_url(kind)
    with pytest.raises(unimq.InvalidURL, match=name):
        unimq.open(f"{url}?{name}={value}", create=True)
    options: dict[str, Any] = {name: int(value) if value.isascii() and value.isdigit() else value}
    with pytest.raises(unimq.InvalidURL, match=name):
        unimq.open(url, create=True, **options)
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)  # nothing was created


@pytest.mark.parametrize("value", ["0x10", "16", 16])
def test_option_values_in_range(kind: str, make_url: UrlFactory, value: object) -> None:
    name = "max_bytes" if kind == "sysv" else "max_message_size"
    options: dict[str, Any] = {name: value}
    with unimq.open(make_url(kind), create=True, **options) as q:
        assert q.max_message_size == 16
        q.remove()
