"""Permissions between users, on both kernel backends: nobody gets in who the
mode does not let in, and a refused operation changes nothing.

Two unprivileged users (uids with no account and no capabilities, via
setpriv) play "alice", who owns the queue, and "bob", who tries to use it.
Root (the test process) only cleans up.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

import unimq
from tests.conftest import HAVE_POSIX, HAVE_SYSV, UrlFactory
from tests.helpers import CATCH, child_json

ALICE, BOB = 61001, 61002
KINDS = [k for k, ok in (("posix", HAVE_POSIX), ("sysv", HAVE_SYSV)) if ok]
SMALL = {"posix": "max_messages=4, max_message_size=64", "sysv": ""}

pytestmark = pytest.mark.skipif(
    shutil.which("setpriv") is None, reason="setpriv (util-linux) is needed to drop to a user"
)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(kind: str, make_url: UrlFactory) -> Iterator[str]:
    u = make_url(kind)
    yield u
    try:  # whatever the test left, root removes it
        with unimq.open(u) as h:
            h.remove()
    except unimq.QueueNotFound:
        pass


def as_user(uid: int, code: str) -> dict[str, object]:
    return child_json(CATCH + code, user=uid)


def alice_creates(url: str, kind: str, mode: str = "", data: str = "secret") -> None:
    mode_arg = f", mode={mode}" if mode else ""
    opts = f", {SMALL[kind]}" if SMALL[kind] else ""
    out = as_user(
        ALICE,
        f"""
q = unimq.open({url!r}, create=True{mode_arg}{opts})
q.send({data.encode()!r})
print(json.dumps({{"mode": q.stat().mode, "uid": q.stat().uid}}))
q.close()
""",
    )
    assert out["uid"] == ALICE


def test_default_mode_is_0600_and_other_users_get_nothing(kind: str, url: str) -> None:
    alice_creates(url, kind)
    with unimq.open(url) as q:
        assert q.stat().mode == 0o600
    out = as_user(
        BOB,
        f"""
r = {{a: attempt(lambda a=a: unimq.open({url!r}, access=a).close()) for a in ("r", "w", "rw")}}
print(json.dumps(r))
""",
    )
    for access, result in out.items():
        assert isinstance(result, dict)
        assert result.get("error") == "PermissionDenied", (access, result)
        assert "owner uid 61001" in str(result["text"]) or "does not grant" in str(result["text"])
    with unimq.open(url) as q:  # alice's message is untouched
        assert q.qsize() == 1
        assert q.receive(timeout=0).data == b"secret"


def test_read_only_grant(kind: str, url: str) -> None:
    alice_creates(url, kind, mode="0o644")
    out = as_user(
        BOB,
        f"""
q = unimq.open({url!r}, access="r")
data = q.receive(timeout=1).data.decode()
send = attempt(lambda: q.send(b"forged"))
q.close()
rw = attempt(lambda: unimq.open({url!r}))
w = attempt(lambda: unimq.open({url!r}, access="w"))
print(json.dumps({{"data": data, "send": send, "rw": rw, "w": w}}))
""",
    )
    assert out["data"] == "secret"
    for key in ("send", "rw", "w"):
        result = out[key]
        assert isinstance(result, dict)
        assert result.get("error") == "PermissionDenied", (key, result)
    with unimq.open(url) as q:
        assert q.qsize() == 0  # nothing forged got in


def test_write_only_grant(kind: str, url: str) -> None:
    alice_creates(url, kind, mode="0o622")
    out = as_user(
        BOB,
        f"""
q = unimq.open({url!r}, access="w")
q.send(b"from bob")
recv = attempt(lambda: q.receive(timeout=0))
q.close()
r = attempt(lambda: unimq.open({url!r}, access="r"))
print(json.dumps({{"recv": recv, "r": r}}))
""",
    )
    for key in ("recv", "r"):
        result = out[key]
        assert isinstance(result, dict)
        assert result.get("error") == "PermissionDenied", (key, result)
    with unimq.open(url) as q:  # alice's message and bob's, nothing taken
        assert [m.data for m in q.drain()] == [b"secret", b"from bob"]


def test_other_user_cannot_remove_or_change(kind: str, url: str) -> None:
    alice_creates(url, kind, mode="0o666")
    change = "h.set(mode=0o666)" if kind == "sysv" else "None"
    out = as_user(
        BOB,
        f"""
h = unimq.open({url!r})
rm = attempt(h.remove)
ch = attempt(lambda: {change})
h.close()
print(json.dumps({{"remove": rm, "change": ch}}))
""",
    )
    rm = out["remove"]
    assert isinstance(rm, dict)
    assert rm.get("error") == "PermissionDenied"
    if kind == "sysv":
        ch = out["change"]
        assert isinstance(ch, dict)
        assert ch.get("error") == "PermissionDenied"
    with unimq.open(url) as q:
        assert q.stat().mode == 0o666
        assert q.receive(timeout=0).data == b"secret"


def test_owner_can_remove_and_restrict(kind: str, url: str) -> None:
    """The other side of the coin: alice (unprivileged) manages her own queue."""
    alice_creates(url, kind)
    change = "q.set(mode=0o400)" if kind == "sysv" else "None"
    out = as_user(
        ALICE,
        f"""
q = unimq.open({url!r})
ch = attempt(lambda: {change})
rm = attempt(q.remove)
q.close()
print(json.dumps({{"change": ch, "remove": rm}}))
""",
    )
    assert out == {"change": {"ok": True}, "remove": {"ok": True}}
    with pytest.raises(unimq.QueueNotFound):
        unimq.open(url)
