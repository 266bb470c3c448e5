"""A batch's entries become Messages: the C extension (unimq_redis._fast) and
the pure-Python path give the same Messages and the same errors."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unimq_redis import _build

from unimq import Message
from unimq._accel import accelerator_allowed

Extend = Callable[..., None]

IMPLEMENTATIONS: list[Any] = [
    pytest.param(_build._python_extend, id="python"),
    pytest.param(
        _build._c_extend,
        id="c",
        marks=pytest.mark.skipif(
            _build._c_extend is None, reason="unimq_redis._fast not built or UNIMQ_PURE_PYTHON=1"
        ),
    ),
]


def entry(seq: int, payload: bytes) -> bytes:
    return b"%016d%016d" % (seq, 0) + payload


@pytest.fixture(params=IMPLEMENTATIONS)
def extend(request: pytest.FixtureRequest) -> Extend:
    fn: Extend = request.param
    return fn


def test_the_loaded_one_is_the_c_one_unless_turned_off() -> None:
    allowed = accelerator_allowed()
    assert _build.ACCELERATED is (allowed and _build._c_extend is not None)
    if _build.ACCELERATED:
        assert _build.extend_messages is _build._c_extend
    else:
        assert _build.extend_messages is _build._python_extend


@pytest.mark.parametrize("n", [0, 1, 100])
def test_messages_of_a_run(extend: Extend, n: int) -> None:
    payloads = [b"m%d" % i for i in range(n)]
    entries = [entry(i, p) for i, p in enumerate(payloads)]
    out: list[Message] = [Message(b"before", 9, 9)]
    extend(out, entries, 0, n, 3, 7, Message, 32)
    assert out == [Message(b"before", 9, 9)] + [Message(p, 3, 7) for p in payloads]
    assert all(type(m) is Message and type(m.data) is bytes for m in out)


def test_a_slice_of_the_entries_empty_and_binary_payloads(extend: Extend) -> None:
    payloads = [b"", b"\x00\xff\r\n$-1\r\n", bytes(range(256)), b"x" * 70000]
    entries = [entry(i, p) for i, p in enumerate(payloads)]
    out: list[Message] = []
    extend(out, entries, 1, 2, -5, 0, Message, 32)  # any int passes through
    assert out == [Message(payloads[1], -5, 0), Message(payloads[2], -5, 0)]
    out.clear()
    extend(out, entries, 0, 4, 1, 1, Message, 32)
    assert [m.data for m in out] == payloads


@pytest.mark.parametrize(
    ("start", "count", "fits"),
    [(-1, 1, False), (0, -1, False), (0, 4, False), (3, 1, False), (2, 2, False), (4, 0, False),
     (3, 0, True), (0, 3, True), (1, 2, True)],
)  # fmt: skip
def test_a_range_outside_the_entries_is_refused(
    extend: Extend, start: int, count: int, fits: bool
) -> None:
    entries = [entry(i, b"p%d" % i) for i in range(3)]
    out: list[Message] = []
    if fits:
        extend(out, entries, start, count, 1, 0, Message, 32)
        assert [m.data for m in out] == [b"p%d" % i for i in range(start, start + count)]
    else:
        with pytest.raises(ValueError, match="out of a list of 3"):
            extend(out, entries, start, count, 1, 0, Message, 32)
        assert out == []


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (b"0" * 31, "entry 2 of the server's reply is 31 bytes, shorter than a unimq entry"),
        (None, "entry 2 of the server's reply is NoneType, not bytes"),
        (7, "entry 2 of the server's reply is int, not bytes"),
    ],
)
def test_a_malformed_entry_is_refused_and_nothing_is_appended(
    extend: Extend, bad: Any, match: str
) -> None:
    entries: list[Any] = [entry(0, b"a"), entry(1, b"b"), bad, entry(3, b"d")]
    out: list[Message] = [Message(b"kept", 1, 0)]
    with pytest.raises(ValueError, match=match):
        extend(out, entries, 0, 4, 1, 0, Message, 32)
    assert out == [Message(b"kept", 1, 0)]  # the two good ones before it were taken back
    extend(out, entries, 0, 2, 1, 0, Message, 32)  # the part before it is fine
    assert len(out) == 3


def test_the_c_one_checks_its_arguments() -> None:
    fn = _build._c_extend
    if fn is None:
        pytest.skip("unimq_redis._fast not built or UNIMQ_PURE_PYTHON=1")
    entries = [entry(0, b"a")]
    with pytest.raises(TypeError, match="takes 8 arguments"):
        fn([], entries, 0, 1, 1, 0, Message)
    with pytest.raises(TypeError, match="must be lists"):
        fn((), entries, 0, 1, 1, 0, Message, 32)
    with pytest.raises(TypeError, match="must be int"):
        fn([], entries, 0, 1, "1", 0, Message, 32)
    with pytest.raises(TypeError, match="tuple subclass"):
        fn([], entries, 0, 1, 1, 0, dict, 32)


def test_the_c_one_leaks_nothing() -> None:
    fn = _build._c_extend
    if fn is None:
        pytest.skip("unimq_redis._fast not built or UNIMQ_PURE_PYTHON=1")
    mtype, priority = 123456789, 987654321  # not cached small ints
    entries = [entry(i, b"payload") for i in range(100)]
    bad = [*entries[:50], b"short"]
    refs = (sys.getrefcount(mtype), sys.getrefcount(priority), sys.getrefcount(entries[0]))

    def rounds(k: int) -> None:
        for _ in range(k):
            out: list[Message] = []
            fn(out, entries, 0, 100, mtype, priority, Message, 32)
            with pytest.raises(ValueError, match="shorter"):
                fn(out, bad, 0, 51, mtype, priority, Message, 32)
            del out

    rounds(100)
    gc.collect()
    tracemalloc.start()
    try:
        rounds(2000)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        rounds(20000)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024  # 20,000 more rounds (3 million messages) kept nothing
    assert (sys.getrefcount(mtype), sys.getrefcount(priority), sys.getrefcount(entries[0])) == refs


@given(
    st.lists(st.binary(max_size=64), max_size=40),
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(-(2**31), 2**31),
    st.integers(0, 32767),
)
def test_both_give_the_same(
    payloads: list[bytes], start: int, count: int, mtype: int, priority: int
) -> None:
    entries = [entry(i, p) for i, p in enumerate(payloads)]
    results: list[tuple[str, Any]] = []
    for fn in (_build._python_extend, _build._c_extend or _build._python_extend):
        out: list[Message] = []
        try:
            fn(out, entries, start, count, mtype, priority, Message, 32)
            results.append(("ok", out))
        except ValueError as exc:
            results.append(("error", str(exc)))
    assert results[0] == results[1]
    if results[0][0] == "ok":
        assert results[0][1] == [
            Message(p, mtype, priority) for p in payloads[start : start + count]
        ]
