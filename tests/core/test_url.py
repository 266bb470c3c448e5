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
    assert parse_url(str(url)) == url
    assert not any(c in text for c in CONTROL)


@given(
    st.sampled_from(["posix", "sysv", "memory"]),
    st.text(min_size=1, max_size=60).filter(lambda t: "\x00" not in t and t.strip("/")),
    st.booleans(),
)
def test_fuzz_every_target_round_trips_through_its_url(
    scheme: str, target: str, path_form: bool
) -> None:
    """Whatever a name holds (markup, control characters, bytes that are not
    UTF-8 as os.listdir returns them), its URL is printable ASCII and reads back
    as the same target: what `ls` prints reopens the same queue."""
    target = "/" + target if path_form else target
    url = unimq.QueueURL(scheme, target)
    text = str(url)
    assert text.isascii() and text.isprintable()
    assert not any(c in text for c in "[] \t")
    assert parse_url(text) == url


CONTROL = [chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]]


@pytest.mark.parametrize("char", CONTROL, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    "template",
    [
        "posix:///a{}b",
        "sysv://0x7ad0{}0013",
        "memory://a{}b",
        "posix:///a?max_messages=1{}0",
        "{}posix:///a",
        "posix:///a{}",
    ],
)
def test_raw_control_characters_are_refused(char: str, template: str) -> None:
    """urllib drops TAB, CR and LF silently (posix:///a\tb would be /ab): every
    control character in the URL text is an InvalidURL, before any syscall."""
    with pytest.raises(unimq.InvalidURL, match="control character"):
        parse_url(template.format(char))
    with pytest.raises(unimq.InvalidURL):
        unimq.remove(template.format(char))


def test_percent_encoded_control_characters_name_what_they_say() -> None:
    url = parse_url("posix:///a%09b%1B%5Bred%5D")
    assert url.target == "/a\tb\x1b[red]"
    assert str(url) == "posix:///a%09b%1B%5Bred%5D"
    assert parse_url("posix:///bad%FFbyte").target == "/bad\udcffbyte"  # as os.listdir says
    with pytest.raises(unimq.InvalidURL, match="NUL"):
        parse_url("posix:///a%00b")


@pytest.mark.parametrize(
    "text", ["memory:///", "memory:////", "memory://", "posix:///", "sysv:///", "sysv://"]
)
def test_urls_that_name_no_queue(text: str) -> None:
    with pytest.raises(unimq.InvalidURL, match=r"names no queue|empty"):
        unimq.open(text, create=True)


def test_remove_checks_options_as_open_does(memory_url: str) -> None:
    with pytest.raises(unimq.InvalidURL, match="unknown URL option 'bogus'"):
        unimq.remove("posix:///x?bogus=1")
    with pytest.raises(unimq.InvalidURL, match="max_messages"):
        unimq.remove(memory_url + "?max_messages=-1")
    unimq.open(memory_url, create=True).close()
    unimq.remove(memory_url + "?max_messages=3")  # a valid option is accepted (and ignored)
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(memory_url)


@pytest.mark.parametrize(
    "text",
    [
        "\u0663",
        "1_000",
        "+5",
        " 5",
        "5 ",
        "0x",
        "-0x5",
        "0x 5",
        "\uff15",
        "0b101",
        "0o17",
        "1e3",
    ],
)
def test_sysv_keys_are_ascii_decimal_or_hex_only(text: str) -> None:
    with pytest.raises(unimq.InvalidKey, match="not a number"):
        sysv_key(text)


def test_leading_zeros_are_decimal() -> None:
    assert sysv_key("0123") == 123
    assert sysv_key("-2147483648") == 0x80000000


@pytest.mark.parametrize("proj", ["\u0666\u0665", "6_5", " 65", "+65", "0o101"])
def test_ftok_proj_is_ascii_too(proj: str) -> None:
    with pytest.raises(unimq.InvalidKey, match="proj"):
        sysv_key("/etc/hosts", proj)
    assert sysv_key("/etc/hosts", "0x41") == sysv_key("/etc/hosts", "65")


def test_identifier_addresses() -> None:
    from unimq._names import sysv_id

    url = parse_url("sysv://id:65538")
    assert (url.target, str(url)) == ("id:65538", "sysv://id:65538")
    assert sysv_id(url.target) == 65538
    assert sysv_id("65538") is None and sysv_id("id:\u0663") is None
    with pytest.raises(unimq.InvalidKey, match="identifier"):
        sysv_key("id:65538")


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
