"""URL parsing, POSIX names, SysV keys and options: all checked before any syscall."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

import unimq
from unimq._names import format_key, ftok, posix_name, sysv_key
from unimq._options import check_timeout, merge_options, positive_int
from unimq._url import QueueURL, parse_url


@pytest.mark.parametrize(
    ("text", "scheme", "target", "query"),
    [
        ("posix:///orders", "posix", "/orders", ()),
        ("POSIX:///orders?max_messages=5", "posix", "/orders", (("max_messages", "5"),)),
        ("sysv://51234", "sysv", "51234", ()),
        ("sysv://0xC822", "sysv", "0xC822", ()),
        ("sysv:///etc/hosts?proj=65", "sysv", "/etc/hosts", (("proj", "65"),)),
        ("memory://orders", "memory", "orders", ()),
        ("posix:///with%20space", "posix", "/with space", ()),
    ],
)
def test_parse(text: str, scheme: str, target: str, query: tuple[tuple[str, str], ...]) -> None:
    url = parse_url(text)
    assert (url.scheme, url.target, url.query) == (scheme, target, query)
    assert parse_url(str(url)) == url


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("orders", "scheme://target"),
        ("posix:///a?x=1&x=2", "twice"),
        ("posix://host/path", "both a host part"),
        ("posix:///a#frag", "fragment"),
        ("1posix:///a", "invalid scheme"),
        ("posix:///a\x00b", "NUL"),
    ],
)
def test_parse_rejects(text: str, needle: str) -> None:
    with pytest.raises(unimq.InvalidURL, match=needle):
        parse_url(text)


def test_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIMQ_URL", "memory://from-env")
    assert parse_url(None) == QueueURL("memory", "from-env")
    monkeypatch.delenv("UNIMQ_URL")
    with pytest.raises(unimq.InvalidURL, match="UNIMQ_URL"):
        unimq.open()


def test_open_uses_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIMQ_URL", f"memory://env-{os.getpid()}")
    with unimq.open(create=True) as q:
        assert q.url == f"memory://env-{os.getpid()}"
        q.remove()


def test_non_string_url() -> None:
    with pytest.raises(unimq.InvalidURL, match="string"):
        parse_url(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("", "start with '/'"),
        ("noslash", "start with '/'"),
        ("/", "empty"),
        ("/a/b", "second '/'"),
        ("/" + "x" * 256, "at most 255"),
        ("/.", "reserved"),
    ],
)
def test_posix_names_rejected(name: str, needle: str) -> None:
    with pytest.raises(unimq.InvalidName, match=needle) as info:
        posix_name(name)
    assert isinstance(info.value, unimq.InvalidURL)
    assert isinstance(info.value, ValueError)


def test_posix_name_255_is_accepted() -> None:
    name = "/" + "x" * 255
    assert posix_name(name) == name


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("51234", 51234),
        ("0xc822", 0xC822),
        ("0XC822", 0xC822),
        ("4294967295", 0xFFFFFFFF),
        ("-1", 0xFFFFFFFF),
    ],
)
def test_sysv_keys(text: str, key: int) -> None:
    assert sysv_key(text) == key


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0", "IPC_PRIVATE"),
        ("4294967296", "32 bits"),
        ("-2147483649", "32 bits"),
        ("abc", "not a number"),
        ("12.5", "not a number"),
        ("", "not a number"),
    ],
)
def test_sysv_keys_rejected(text: str, needle: str) -> None:
    with pytest.raises(unimq.InvalidKey, match=needle):
        sysv_key(text)


def test_proj_only_for_paths() -> None:
    with pytest.raises(unimq.InvalidKey, match="proj"):
        sysv_key("51234", "65")


def test_ftok_matches_glibc() -> None:
    sysv_ipc = pytest.importorskip("sysv_ipc")
    for path, proj in (("/etc/hosts", 65), ("/", 1), ("/tmp", 255)):
        assert ftok(path, proj) == sysv_ipc.ftok(path, proj, silence_warning=True) & 0xFFFFFFFF


def test_ftok_errors() -> None:
    with pytest.raises(unimq.InvalidKey, match="existing file"):
        sysv_key("/no/such/file", "1")
    with pytest.raises(unimq.InvalidKey, match=r"1\.\.255"):
        sysv_key("/etc/hosts", "0")
    with pytest.raises(unimq.InvalidKey, match="integer"):
        sysv_key("/etc/hosts", "A")


def test_format_key() -> None:
    assert format_key(51234) == "0x0000c822"


def test_options_merge() -> None:
    parsers = {"max_messages": positive_int}
    assert merge_options("posix", {"max_messages": "5"}, {}, parsers) == {"max_messages": 5}
    assert merge_options("posix", {"max_messages": "5"}, {"max_messages": 5}, parsers) == {
        "max_messages": 5
    }
    with pytest.raises(unimq.InvalidURL, match="give it once"):
        merge_options("posix", {"max_messages": "5"}, {"max_messages": 6}, parsers)
    with pytest.raises(unimq.InvalidURL, match="valid options: max_messages"):
        merge_options("posix", {}, {"max_msgs": 6}, parsers)
    for bad in (0, -1, True, "x", 2.5):
        with pytest.raises(unimq.InvalidURL, match="max_messages"):
            merge_options("posix", {}, {"max_messages": bad}, parsers)


def test_check_timeout() -> None:
    assert check_timeout(None) is None
    assert check_timeout(0) == 0.0
    assert check_timeout(float("inf")) is None
    for bad in (-1, float("nan"), -float("inf")):
        with pytest.raises(ValueError, match="non-negative"):
            check_timeout(bad)
    for wrong in ("1", True):
        with pytest.raises(TypeError):
            check_timeout(wrong)  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_fuzz_parse_url_only_raises_invalid_url(text: str) -> None:
    try:
        url = parse_url(text)
    except unimq.InvalidURL:
        return
    assert parse_url(str(url)).scheme == url.scheme


@given(st.text(max_size=40))
def test_fuzz_sysv_key_only_raises_invalid_key(text: str) -> None:
    try:
        key = sysv_key(text)
    except unimq.InvalidKey:
        return
    assert 1 <= key <= 0xFFFFFFFF


@given(st.text(max_size=300))
def test_fuzz_posix_name_only_raises_invalid_name(text: str) -> None:
    try:
        posix_name(text)
    except unimq.InvalidName:
        return
    assert text.startswith("/") and "/" not in text[1:]
