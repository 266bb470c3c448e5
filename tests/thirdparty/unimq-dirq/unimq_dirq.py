"""``dirq:///path/to/queue``: a unimq backend that keeps each queue in a directory.

Each message is one file, named so that sorting the names gives the order of
delivery: highest priority first, then first in, first out. A lock file
(``flock``) makes every send and receive one step for all threads and
processes of the machine, and waits poll with a short pause (unimq's core
owns the deadline and calls the wait again with the time left).

The directory holds ``.attrs`` (the queue's options and mode, JSON),
``.lock`` and the messages ``m<32767 - priority>-<sequence>``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import unimq
from unimq import Capability, Message, QueueStat, QueueURL

__all__ = ["DirQueue"]

Access = Literal["rw", "r", "w"]

DEFAULTS = {"max_messages": 10, "max_message_size": 8192}
_PAUSE = 0.002  # seconds between two tries of a waiting send or receive


def _positive_int(name: str, value: object) -> int:
    """An option parser: an integer >= 1, given as int or as text from the URL."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise unimq.InvalidURL(f"option {name!r} must be a number, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise unimq.InvalidURL(f"option {name!r} must be a positive integer, not {value!r}")
    return value


def _dir_mode(mode: int) -> int:
    """Directory bits for a queue mode: each class with any access gets rwx."""
    bits = 0
    for shift in (6, 3, 0):
        if mode >> shift & 0o6:
            bits |= 0o7 << shift
    return bits


class DirQueue(unimq.Queue):
    """A queue in a directory; see the module docstring."""

    scheme: ClassVar[str] = "dirq"
    capabilities: ClassVar[Capability] = Capability.PRIORITY | Capability.INTERPROCESS
    options: ClassVar[Mapping[str, Callable[[str, object], object]]] = {
        "max_messages": _positive_int,
        "max_message_size": _positive_int,
    }

    #: Options that are attributes of the queue: unimq warns when an existing
    #: queue has other values than the ones asked for.
    attribute_options: ClassVar[frozenset[str]] = frozenset(options)

    def __init__(self, url: QueueURL, access: Access, path: Path, attrs: dict[str, int]) -> None:
        super().__init__(url, access, attrs["max_message_size"])
        self._path = path
        self._attrs = attrs
        # The primitives unimq's core calls (directions ``access`` forbids are refused there).
        self._install(self._try_send, self._try_receive, self._wait_send, self._wait_receive)

    # -------------------------------------------------------------- open and remove

    @classmethod
    def _check_url(cls, url: QueueURL) -> None:
        if not url.target.startswith("/") or url.target.rstrip("/") == "":
            raise unimq.InvalidName(
                f"a dirq URL names a directory by its absolute path (dirq:///var/spool/q), "
                f"not {url.target!r}",
                url=str(url),
            )

    @classmethod
    def _open_existing(cls, url: QueueURL, *, access: Access, options: dict[str, Any]) -> Self:
        path = Path(url.target)
        attrs = _read_attrs(url, path)
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise unimq.PermissionDenied(f"no access to {url}: see its mode", url=str(url))
        return cls(url, access, path, attrs)

    @classmethod
    def _create(cls, url: QueueURL, *, mode: int, access: Access, options: dict[str, Any]) -> Self:
        path = Path(url.target)
        if not _create(path, {**DEFAULTS, **options, "mode": mode}):
            raise unimq.QueueExists(
                f"{url} already exists; open it without exclusive=True or remove it first",
                url=str(url),
            )
        return cls(url, access, path, _read_attrs(url, path))

    @classmethod
    def _remove_url(cls, url: QueueURL) -> None:
        _remove(str(url), Path(url.target))

    def _remove(self) -> None:
        _remove(self._url_text, self._path)

    def _attributes(self) -> dict[str, int]:
        return {k: self._attrs[k] for k in self.attribute_options}

    def _close(self) -> None:
        pass  # a handle holds no descriptor; waiters see ``closed`` at their next pause

    # -------------------------------------------------------------- send and receive

    def _try_send(self, data: bytes, mtype: int, priority: int) -> bool:
        with self._locked():
            names = self._names()
            if len(names) >= self._attrs["max_messages"]:
                return False
            seq = 1 + max((int(n.split("-")[1]) for n in names), default=0)
            tmp = self._path / f"t{secrets.token_hex(8)}"
            tmp.write_bytes(data)
            tmp.rename(self._path / f"m{32767 - priority:05d}-{seq:020d}")
            return True

    def _try_receive(self, mtype: int) -> Message | None:
        with self._locked():
            names = self._names()
            if not names:
                return None
            first = self._path / names[0]
            data = first.read_bytes()
            first.unlink()
        return Message(data, 1, 32767 - int(names[0][1:6]))

    def _wait_send(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> bool:
        self._pause(timeout)
        return not self.closed and self._try_send(data, mtype, priority)

    def _wait_receive(self, mtype: int, timeout: float | None) -> Message | None:
        self._pause(timeout)
        return None if self.closed else self._try_receive(mtype)

    def _stat(self) -> QueueStat:
        with self._locked():
            sizes = [(self._path / n).stat().st_size for n in self._names()]
            st = self._path.stat()
        return QueueStat(
            url=str(self._url),
            kind="dirq",
            name=str(self._path),
            messages=len(sizes),
            max_messages=self._attrs["max_messages"],
            max_message_size=self._attrs["max_message_size"],
            bytes=sum(sizes),
            mode=self._attrs["mode"],
            uid=st.st_uid,
            gid=st.st_gid,
        )

    # -------------------------------------------------------------- helpers

    def _names(self) -> list[str]:
        return sorted(n for n in os.listdir(self._path) if n.startswith("m"))

    def _removed(self) -> unimq.QueueRemoved:
        return unimq.QueueRemoved(
            f"{self._url_text} was removed while this handle used it; reopen with create=True",
            url=self._url_text,
        )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the queue's lock; the queue must still be the one this handle opened."""
        lock = self._path / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._removed() from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed (and maybe made again) while this call waited
                raise self._removed()
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _pause(timeout: float | None) -> None:
        """One polling pause of a wait (never longer than the time left)."""
        time.sleep(_PAUSE if timeout is None else min(_PAUSE, timeout))


def _create(path: Path, attrs: dict[str, int]) -> bool:
    """Make the queue directory whole, then move it into place in one step;
    False if a queue is already there."""
    tmp = path.with_name(f".{path.name}.new-{secrets.token_hex(4)}")
    try:
        tmp.mkdir(mode=0o700)
    except FileNotFoundError:
        raise unimq.QueueNotFound(
            f"cannot create dirq://{path}: {path.parent} does not exist"
        ) from None
    except PermissionError as exc:
        raise unimq.PermissionDenied(f"cannot create dirq://{path}: {exc}") from None
    try:
        (tmp / ".attrs").write_text(json.dumps(attrs))
        (tmp / ".lock").touch()
        tmp.chmod(_dir_mode(attrs["mode"]))
        try:
            tmp.rename(path)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                return False
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return True


def _read_attrs(url: QueueURL, path: Path) -> dict[str, int]:
    try:
        attrs: dict[str, int] = json.loads((path / ".attrs").read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise unimq.QueueNotFound(
            f"{url} does not exist; create it with create=True", url=str(url)
        ) from None
    except PermissionError:
        raise unimq.PermissionDenied(f"no access to {url}: see its mode", url=str(url)) from None
    return attrs


def _remove(url: str, path: Path) -> None:
    """Move the directory aside under its lock (so no operation is half done), then delete it."""
    try:
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise unimq.QueueNotFound(f"{url} does not exist", url=url) from None
    except PermissionError:
        raise unimq.PermissionDenied(f"may not remove {url}", url=url) from None
    grave = path.with_name(f".{path.name}.removed-{secrets.token_hex(4)}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.rename(path, grave)
        except FileNotFoundError:
            raise unimq.QueueNotFound(f"{url} does not exist", url=url) from None
    finally:
        os.close(fd)
    with suppress(FileNotFoundError):
        shutil.rmtree(grave)
