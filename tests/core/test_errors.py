"""The exception tree, builtin parents, attributes and pickling."""

from __future__ import annotations

import pickle
import queue

import pytest

import unimq

PARENTS = {
    unimq.QueueEmpty: queue.Empty,
    unimq.QueueFull: queue.Full,
    unimq.QueueNotFound: FileNotFoundError,
    unimq.QueueExists: FileExistsError,
    unimq.PermissionDenied: PermissionError,
    unimq.QueueClosed: ValueError,
    unimq.MessageTooLarge: ValueError,
    unimq.LimitExceeded: OSError,
    unimq.InvalidURL: ValueError,
    unimq.InvalidName: unimq.InvalidURL,
    unimq.InvalidKey: unimq.InvalidURL,
    unimq.UnsupportedOperation: ValueError,
    unimq.BackendNotInstalled: ImportError,
    unimq.DecodeError: ValueError,
}


@pytest.mark.parametrize(("cls", "parent"), PARENTS.items())
def test_builtin_parents(cls: type[unimq.UnimqError], parent: type[BaseException]) -> None:
    assert issubclass(cls, unimq.UnimqError)
    assert issubclass(cls, parent)


def test_every_error_has_a_docstring_and_public_module() -> None:
    for name in unimq.__all__:
        obj = getattr(unimq, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert obj.__doc__, name
            assert obj.__module__ == "unimq"


@pytest.mark.parametrize("cls", [*PARENTS, unimq.QueueRemoved, unimq.NotificationBusy])
def test_errno_url_and_pickle(cls: type[unimq.UnimqError]) -> None:
    err = cls("what happened; what to do", errno=13, url="posix:///x")
    assert str(err) == "what happened; what to do"
    assert err.errno == 13 and err.url == "posix:///x"
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is cls
    assert (str(clone), clone.errno, clone.url) == (str(err), 13, "posix:///x")


def test_specific_attributes_survive_pickle() -> None:
    err = unimq.MessageTooLarge("too big", size=10, limit=5)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.size, clone.limit) == (10, 5)
    lim = pickle.loads(pickle.dumps(unimq.LimitExceeded("x", limit="fs.mqueue.msg_max", errno=22)))
    assert (lim.limit, lim.errno) == ("fs.mqueue.msg_max", 22)
    msg = unimq.Message(b"raw", 3, 0)
    dec = pickle.loads(pickle.dumps(unimq.DecodeError("bad", message=msg)))
    assert dec.message == msg
