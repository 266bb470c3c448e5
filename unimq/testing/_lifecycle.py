"""Contract: opening, closing, removing, stat, options, access, pickling and
the queue.Queue spellings (every backend)."""

from __future__ import annotations

import gc
import os
import pickle
import queue

import pytest

import unimq
from unimq.testing._backend import Backend
from unimq.testing._fixtures import BackendFixtures, OpenQueue


class LifecycleContract(BackendFixtures):
    """What every backend does from open to remove."""

    def test_capabilities(self, backend: Backend, q: unimq.Queue) -> None:
        assert q.capabilities == backend.capabilities
        assert isinstance(q.capabilities, unimq.Capability)

    def test_open_missing_is_queue_not_found(self, url: str) -> None:
        with pytest.raises(unimq.QueueNotFound) as info:
            unimq.open(url)
        assert isinstance(info.value, FileNotFoundError)
        assert "create=True" in str(info.value)

    def test_exclusive_create(self, backend: Backend, url: str) -> None:
        opts = backend.options(4, 64)
        with unimq.open(url, create=True, exclusive=True, **opts):
            with pytest.raises(unimq.QueueExists) as info:
                unimq.open(url, create=True, exclusive=True, **opts)
            assert isinstance(info.value, FileExistsError)
            # Without exclusive, create=True opens the existing queue.
            with unimq.open(url, create=True, **opts) as again:
                assert again.stat().messages == 0

    def test_exclusive_needs_create(self, url: str) -> None:
        with pytest.raises(unimq.InvalidURL, match="create"):
            unimq.open(url, exclusive=True)

    def test_bad_mode(self, url: str) -> None:
        for bad in (-1, 0o1000, "0600"):
            with pytest.raises(unimq.InvalidURL, match="mode"):
                unimq.open(url, create=True, mode=bad)  # type: ignore[arg-type]

    def test_open_existing_shares_messages(self, q: unimq.Queue, url: str) -> None:
        q.send(b"shared")
        with unimq.open(url) as other:
            assert other.receive(timeout=1).data == b"shared"

    def test_close_is_idempotent_and_everything_after_raises(self, q: unimq.Queue) -> None:
        q.close()
        q.close()
        assert q.closed
        assert "[closed]" in repr(q)
        for call in (
            lambda: q.send(b"x"),
            lambda: q.receive(timeout=0),
            q.stat,
            q.remove,
            lambda: q.put(b"x"),
            q.get_nowait,
            q.qsize,
        ):
            with pytest.raises(unimq.QueueClosed) as info:
                call()
            assert isinstance(info.value, ValueError)

    def test_with_closes_but_never_removes(self, backend: Backend, url: str) -> None:
        with unimq.open(url, create=True, **backend.options(4, 64)) as q:
            q.send(b"stays")
        assert q.closed
        with unimq.open(url) as again:
            assert again.receive(timeout=1).data == b"stays"

    def test_remove_then_missing(self, q: unimq.Queue, url: str) -> None:
        q.remove()
        with pytest.raises(unimq.QueueNotFound):
            unimq.open(url)
        with pytest.raises(unimq.QueueNotFound):
            unimq.remove(url)
        unimq.remove(url, missing_ok=True)
        q.remove(missing_ok=True)

    def test_module_level_remove(self, backend: Backend, url: str) -> None:
        unimq.open(url, create=True, **backend.options(4, 64)).close()
        unimq.remove(url)
        with pytest.raises(unimq.QueueNotFound):
            unimq.open(url)

    def test_stat_fields(self, backend: Backend, q: unimq.Queue) -> None:
        q.send(b"abc")
        q.send(b"defg")
        st = q.stat()
        assert isinstance(st, unimq.QueueStat)
        assert st.kind == type(q).scheme
        assert st.url == q.url
        assert st.messages == 2
        assert st.max_message_size == q.max_message_size
        if st.bytes is not None or "bytes" in backend.stat_fields:
            assert st.bytes == 7
        assert st.mode is not None and st.mode & 0o777 == 0o600
        assert st.uid == os.geteuid()
        assert st.gid == os.getegid()
        # The options the queue was made with (open_queue's default 8 x 256) show.
        for name, value in backend.options(8, 256).items():
            if name in unimq.QueueStat.model_fields:
                assert getattr(st, name) == value, name
        if "last_send_pid" in backend.stat_fields:
            assert st.last_send_pid == os.getpid()
        if "last_send_time" in backend.stat_fields:
            assert st.last_send_time is not None
        q.receive(timeout=0)
        after = q.stat()
        assert after.messages == 1
        if "last_receive_pid" in backend.stat_fields:
            assert after.last_receive_pid == os.getpid()
        missing = [f for f in sorted(backend.stat_fields) if getattr(after, f) is None]
        assert not missing, f"stat() leaves declared fields empty: {missing}"

    def test_mode_applies(self, backend: Backend, url: str) -> None:
        with unimq.open(url, create=True, mode=0o640, **backend.options(4, 64)) as q:
            assert q.stat().mode == 0o640

    def test_queue_queue_spellings(self, open_queue: OpenQueue) -> None:
        q = open_queue(capacity=2, size=16)
        assert q.empty() and not q.full() and q.qsize() == 0
        q.put(b"a" * 16)
        q.put_nowait(b"b" * 16)
        assert q.qsize() == 2 and q.full()
        with pytest.raises(queue.Full):
            q.put_nowait(b"c")
        with pytest.raises(queue.Full):
            q.put(b"c", block=False, timeout=10)
        with pytest.raises(queue.Full):
            q.put(b"c", timeout=0.05)
        assert q.get() == b"a" * 16
        assert q.get(timeout=1) == b"b" * 16
        with pytest.raises(queue.Empty):
            q.get_nowait()
        with pytest.raises(queue.Empty):
            q.get(block=False, timeout=10)
        with pytest.raises(ValueError, match="non-negative"):
            q.get(timeout=-1)
        with pytest.raises(ValueError, match="non-negative"):
            q.put(b"x", timeout=-1)

    def test_unknown_option_names_valid_ones(self, url: str) -> None:
        with pytest.raises(unimq.InvalidURL, match="valid options") as info:
            unimq.open(url, create=True, bogus=1)
        assert "access" in str(info.value)
        with pytest.raises(unimq.InvalidURL, match="bogus"):
            unimq.open(url + "?bogus=1", create=True)

    def test_option_from_url_and_conflict(self, backend: Backend, url: str) -> None:
        name, value = next(iter(backend.options(4, 64).items()))
        with unimq.open(f"{url}?{name}={value}", create=True) as q:
            st = q.stat()
            assert value in (st.max_messages, st.max_bytes)
            # The same value twice is fine; different values are an error.
            unimq.open(f"{url}?{name}={value}", **{name: value}).close()
            with pytest.raises(unimq.InvalidURL, match="give it once"):
                unimq.open(f"{url}?{name}={value}", **{name: value + 1})

    @pytest.mark.parametrize("bad", ["0", "-3", "lots", "1.5"])
    def test_bad_option_values(self, backend: Backend, url: str, bad: str) -> None:
        name = next(iter(backend.options(4, 64)))
        with pytest.raises(unimq.InvalidURL, match=name):
            unimq.open(f"{url}?{name}={bad}", create=True)

    def test_access_read_only_and_write_only(self, q: unimq.Queue, url: str) -> None:
        with unimq.open(url, access="w") as writer, unimq.open(url + "?access=r") as reader:
            writer.send(b"one-way")
            assert reader.receive(timeout=1).data == b"one-way"
            assert reader.access == "r" and "access=r" in reader.url
            with pytest.raises(unimq.PermissionDenied):
                reader.send(b"x")
            with pytest.raises(unimq.PermissionDenied):
                writer.receive(timeout=0)
        with pytest.raises(unimq.InvalidURL, match="access"):
            unimq.open(url, access="x")

    def test_pickle_round_trip_in_process(self, q: unimq.Queue) -> None:
        q.send(b"via pickle")
        clone = pickle.loads(pickle.dumps(q))
        try:
            assert type(clone) is type(q)
            assert clone.url == q.url
            assert clone.receive(timeout=1).data == b"via pickle"
        finally:
            clone.close()

    def test_unclosed_handle_warns(self, backend: Backend, url: str) -> None:
        h = unimq.open(url, create=True, **backend.options(4, 64))
        text = repr(h)
        with pytest.warns(ResourceWarning, match="unclosed"):
            del h
            gc.collect()
        assert url in text

    def test_repr_shows_url(self, q: unimq.Queue) -> None:
        assert q.url in repr(q)
        assert "[closed]" not in repr(q)
