"""receive_many never loses what it took when an error stops the batch."""

from __future__ import annotations

import errno

import pytest

import unimq


def test_an_error_after_the_first_message_returns_what_was_taken() -> None:
    with unimq.open("memory://batch-errors", create=True) as q:
        try:
            q.send_many([b"a", b"b", b"c"])
            real = q._receive_nowait
            calls = 0

            def flaky(mtype: int) -> unimq.Message | None:
                nonlocal calls
                calls += 1
                if calls >= 3:  # from the third message on, the queue "went away"
                    raise OSError(errno.EIDRM, "removed")
                return real(mtype)

            q._receive_nowait = flaky
            got = q.receive_many(10, timeout=0)
            assert [m.data for m in got] == [b"a", b"b"]
            # The error comes with the next call; the message it hid is still queued.
            with pytest.raises(unimq.UnimqError):
                q.receive_many(10, timeout=0)
            q._receive_nowait = real
            assert [m.data for m in q.receive_many(10, timeout=0)] == [b"c"]
        finally:
            q.remove()


def test_an_error_right_after_the_first_returns_the_first() -> None:
    with unimq.open("memory://batch-errors-2", create=True) as q:
        try:
            q.send_many([b"a", b"b"])
            real = q._receive_nowait
            calls = 0

            def flaky(mtype: int) -> unimq.Message | None:
                nonlocal calls
                calls += 1
                if calls == 2:
                    raise OSError(errno.EIDRM, "removed")
                return real(mtype)

            q._receive_nowait = flaky
            assert [m.data for m in q.receive_many(10, timeout=0)] == [b"a"]
        finally:
            q.remove()
