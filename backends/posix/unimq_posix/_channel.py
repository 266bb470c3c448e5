"""The pure-Python channel: posix_ipc's calls with the C channel's lifetime rules.

Used when the C extension was not built or ``UNIMQ_PURE_PYTHON=1``. Same
interface and semantics as ``unimq_posix._fast.Channel``:

- it owns one non-blocking queue descriptor (a ``posix_ipc.MessageQueue``)
  and, from the first wait on, one eventfd that close() writes to wake waiters;
- posix_ipc releases the GIL even for non-blocking calls, so every call that
  uses the descriptor counts itself in flight (without a lock on the hot path);
  close() with calls in flight marks the channel closing and wakes them, and
  the last to leave closes the descriptors: no call uses a descriptor number
  after close;
- one thread per direction polls the queue; the other waiters of that
  direction wait for the poller's lock with their own deadline, so a message
  wakes one thread, not all of them (a herd of pollers retrying under the GIL
  collapsed 8+8 threads to a fraction of 1+1 throughput);
- failures raise ``OSError`` with an errno: posix_ipc's exceptions carry none,
  so :func:`driver_errno` maps (operation, exception class) to it, in this
  one place.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno as E
import os
import select
import threading
import time
import uuid
import weakref
from typing import Literal

import posix_ipc

from unimq._message import Message
from unimq_posix._limits import descriptor_shortage

__all__ = ["PyChannel", "driver_errno", "unlink"]

DriverOp = Literal["open", "create", "send", "receive", "stat", "notify", "remove"]

_OPEN, _CLOSING, _CLOSED = 1, 2, 0
_BusyError = posix_ipc.BusyError
_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_monotonic = time.monotonic
_new_message = tuple.__new__
#: The longest single lock wait or poll() (seconds); longer waits loop.
_LONGEST = 3600.0


def driver_errno(op: DriverOp, exc: BaseException) -> int:
    """The errno behind a posix_ipc exception raised by ``op``.

    posix_ipc raises classes, not errno values; the class and the call give
    the errno, except for the OSErrors mq_open raises without one (EMFILE,
    ENFILE, ENOSPC share it): then a descriptor shortage is EMFILE/ENFILE,
    and otherwise, for a create, the kernel's other two refusals remain,
    told apart by :func:`_probe_create`. The C channel has the real errno and
    needs none of this.
    """
    if isinstance(exc, _BusyError):
        return E.EBUSY if op == "notify" else E.EAGAIN
    if isinstance(exc, posix_ipc.ExistentialError):
        if op == "create":
            return E.EEXIST
        return E.ENOENT if op in ("open", "remove") else E.EBADF
    if isinstance(exc, posix_ipc.PermissionsError):
        return E.EACCES if op in ("open", "create", "remove") else E.EBADF
    if isinstance(exc, posix_ipc.SignalError):
        return E.EINTR
    if isinstance(exc, MemoryError):
        return E.ENOMEM
    if isinstance(exc, ValueError):
        return E.EMSGSIZE if op == "send" else E.EINVAL
    if isinstance(exc, OSError):
        if exc.errno is not None:
            return exc.errno
        if op in ("open", "create"):
            shortage = descriptor_shortage()
            if shortage is not None:
                return shortage
            if op == "create":
                return _probe_create()
            return E.EMFILE
    return E.EIO


def _probe_create() -> int:
    """Why the kernel refuses to create a queue, from the errno of creating the
    smallest one (1 x 1 byte, a unique name, removed at once) through libc:
    ENOSPC (fs.mqueue.queues_max stops any queue), EMFILE (RLIMIT_MSGQUEUE is
    used up), or EMFILE as well when it succeeds: then only the larger queue's
    charge did not fit."""
    lib = ctypes.CDLL(ctypes.util.find_library("rt") or "libc.so.6", use_errno=True)

    class Attr(ctypes.Structure):
        _fields_ = (
            ("flags", ctypes.c_long),
            ("maxmsg", ctypes.c_long),
            ("msgsize", ctypes.c_long),
            ("curmsgs", ctypes.c_long),
            ("reserved", ctypes.c_long * 4),
        )

    name = f"/unimq-probe-{os.getpid()}-{uuid.uuid4().hex[:12]}".encode()
    attr = Attr(0, 1, 1, 0)
    mqd = lib.mq_open(
        ctypes.c_char_p(name),
        ctypes.c_int(os.O_RDONLY | os.O_CREAT | os.O_EXCL),
        ctypes.c_uint(0o600),
        ctypes.byref(attr),
    )
    if mqd == -1:
        code = ctypes.get_errno()
        return code if code in (E.ENOSPC, E.EMFILE, E.ENFILE, E.ENOMEM) else E.EMFILE
    lib.mq_close(mqd)
    lib.mq_unlink(ctypes.c_char_p(name))
    return E.EMFILE


def _oserror(op: DriverOp, exc: BaseException) -> OSError:
    code = driver_errno(op, exc)
    err = OSError(code, os.strerror(code))
    err.__cause__ = exc
    return err


def unlink(name: str) -> None:
    """mq_unlink; OSError with the errno."""
    try:
        posix_ipc.unlink_message_queue(name)
    except (posix_ipc.Error, ValueError, OSError) as exc:
        raise _oserror("remove", exc) from exc


#: Open channels, reset in forked children (see PyChannel._after_fork).
_live: weakref.WeakSet[PyChannel] = weakref.WeakSet()


class PyChannel:
    """One POSIX queue descriptor through posix_ipc; see the module docstring."""

    max_messages: int
    max_message_size: int

    def __init__(
        self,
        name: str,
        oflag: int,
        mode: int,
        max_messages: int,
        max_message_size: int,
        message: type[Message],
    ) -> None:
        access = oflag & os.O_ACCMODE
        create = bool(oflag & os.O_CREAT)
        op: DriverOp = "create" if create else "open"
        try:
            mq = posix_ipc.MessageQueue(
                name,
                (posix_ipc.O_CREX if create else 0) | posix_ipc.O_NONBLOCK,
                mode,
                max_messages,
                max_message_size,
                read=access != os.O_WRONLY,
                write=access != os.O_RDONLY,
            )
        except (posix_ipc.Error, ValueError, OSError, MemoryError) as exc:
            raise _oserror(op, exc) from exc
        if create:
            try:  # the exact mode, as SysV applies it, instead of filtered by the umask
                os.fchmod(mq.mqd, mode)
            except OSError:
                mq.close()
                posix_ipc.unlink_message_queue(name)
                raise
        self._mq = mq
        self._message = message
        self.max_messages = mq.max_messages
        self.max_message_size = mq.max_message_size
        # Calls in flight, one entry each: list.append/pop are atomic, so the hot
        # path takes no lock. A call enters (append) before it looks at the state
        # and close() sets the state before it looks at the calls, so either the
        # call sees the channel closing, or close() sees the call.
        self._calls: list[None] = []
        self._state = _OPEN
        self._lock = threading.Lock()  # the rare paths: eventfd creation, release
        self._wakefd = -1
        # One poller per direction; the other waiters queue on these locks.
        self._pollers = {_POLLIN: threading.Lock(), _POLLOUT: threading.Lock()}
        _live.add(self)

    def _after_fork(self) -> None:
        """In a forked child only this thread exists: no call is in flight, and
        locks that other threads of the parent held are free again. The eventfd
        is shared with the parent (a close() there must not wake this process's
        waits, nor this one's the parent's): drop it, the next wait makes one."""
        if self._wakefd != -1:
            os.close(self._wakefd)
            self._wakefd = -1
        self._calls = []
        self._lock = threading.Lock()
        self._pollers = {_POLLIN: threading.Lock(), _POLLOUT: threading.Lock()}
        if self._state == _CLOSING:  # closed, waiting for calls that are not here
            self._release()

    # ------------------------------------------------------------------ lifetime

    @property
    def closed(self) -> bool:
        return self._state != _OPEN

    def _leave(self) -> None:
        calls = self._calls
        calls.pop()
        if self._state != _OPEN and not calls:
            self._release()

    def _release(self) -> None:
        """Close the descriptors, once (the last call leaving, or close() itself)."""
        with self._lock:
            if self._state == _CLOSED:
                return
            self._state = _CLOSED
            with contextlib.suppress(posix_ipc.Error):  # the descriptor is gone either way
                self._mq.close()
            if self._wakefd != -1:
                os.close(self._wakefd)
                self._wakefd = -1

    def close(self) -> None:
        """Release the descriptors now, or wake the calls in flight and let the
        last one release them."""
        with self._lock:
            if self._state != _OPEN:
                return
            self._state = _CLOSING
            if self._wakefd != -1:
                os.eventfd_write(self._wakefd, 1)
        if not self._calls:
            self._release()

    def _wake_fd(self) -> bool:
        """Create the eventfd on the first wait; False when the channel is closing."""
        with self._lock:
            if self._state != _OPEN:
                return False
            if self._wakefd == -1:
                self._wakefd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            return True

    # ------------------------------------------------------------------ attempts

    def _send(self, data: bytes, priority: int) -> bool:
        """One non-blocking mq_send, in flight."""
        try:
            self._mq.send(data, None, priority)
        except _BusyError:
            return False
        except (posix_ipc.Error, ValueError, OSError) as exc:
            raise _oserror("send", exc) from exc
        return True

    def _receive(self) -> Message | None:
        try:
            data, priority = self._mq.receive()
        except _BusyError:
            return None
        except (posix_ipc.Error, ValueError, OSError) as exc:
            raise _oserror("receive", exc) from exc
        return _new_message(self._message, (data, 1, priority))

    def send_nowait(self, data: bytes, mtype: int, priority: int) -> bool:
        self._calls.append(None)
        try:
            if self._state != _OPEN:
                raise OSError(E.EBADF, os.strerror(E.EBADF))
            return self._send(data, priority)
        finally:
            self._leave()

    def receive_nowait(self, mtype: int) -> Message | None:
        self._calls.append(None)
        try:
            if self._state != _OPEN:
                raise OSError(E.EBADF, os.strerror(E.EBADF))
            return self._receive()
        finally:
            self._leave()

    def send_many_nowait(self, batch: list[tuple[bytes, int, int]], start: int) -> int:
        """Send ``batch[start:]`` without waiting, in order, in flight once;
        how many went. An error after k went carries ``unimq_sent = k``."""
        self._calls.append(None)
        n = start
        try:
            if self._state != _OPEN:
                raise OSError(E.EBADF, os.strerror(E.EBADF))
            send = self._send
            while n < len(batch):
                data, _mtype, priority = batch[n]
                if not send(data, priority):
                    break
                n += 1
        except Exception as exc:
            exc.unimq_sent = n - start  # type: ignore[attr-defined]
            raise
        finally:
            self._leave()
        return n - start

    def receive_many_nowait(self, mtype: int, limit: int) -> list[Message]:
        """Take up to ``limit`` queued messages without waiting, in flight
        once. An error after k were taken returns those k (it recurs next call)."""
        self._calls.append(None)
        out: list[Message] = []
        try:
            if self._state != _OPEN:
                raise OSError(E.EBADF, os.strerror(E.EBADF))
            receive = self._receive
            while len(out) < limit:
                msg = receive()
                if msg is None:
                    break
                out.append(msg)
        except Exception:
            if not out:
                raise
        finally:
            self._leave()
        return out

    # ------------------------------------------------------------------ waits

    def send_wait(self, data: bytes, mtype: int, priority: int, timeout: float | None) -> bool:
        return self._wait(_POLLOUT, timeout, lambda: self._send(data, priority)) is True

    def receive_wait(self, mtype: int, timeout: float | None) -> Message | None:
        got = self._wait(_POLLIN, timeout, self._receive)
        return got if isinstance(got, tuple) else None

    def _wait(self, event: int, timeout: float | None, attempt: object) -> Message | bool | None:
        """Wait (at most ``timeout`` s) until ``attempt`` succeeds; its result, or
        None/False when the time ran out or close() woke the call."""
        deadline = None if timeout is None else _monotonic() + timeout
        poller = self._pollers[event]
        # Only the lock holder polls; the others sleep here with their deadline.
        # Lock waits run signal handlers and resume (PEP 475).
        if deadline is None:
            poller.acquire()
        elif not poller.acquire(timeout=min(max(deadline - _monotonic(), 0.0), _LONGEST)):
            return None  # spurious for waits beyond _LONGEST: the core waits again
        try:
            self._calls.append(None)
            try:
                if self._state != _OPEN or not self._wake_fd():
                    return None
                return self._poll_loop(event, deadline, attempt)
            finally:
                self._leave()
        finally:
            poller.release()

    def _poll_loop(
        self, event: int, deadline: float | None, attempt: object
    ) -> Message | bool | None:
        assert callable(attempt)
        poll = select.poll()
        poll.register(self._mq.mqd, event)
        poll.register(self._wakefd, _POLLIN)
        while True:
            got = attempt()
            if got:
                return got  # type: ignore[no-any-return]
            if deadline is None:
                ms = None
            else:
                left = deadline - _monotonic()
                if left <= 0:
                    return None
                ms = min(left, _LONGEST) * 1000.0  # poll() takes an int of milliseconds
            # poll() retries after signals itself with the remaining time
            # (handlers run, their exceptions propagate).
            for fd, _events in poll.poll(ms):
                if fd == self._wakefd and self._state == _OPEN:
                    # Readable while open: not our close(); drain it.
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(fd)
            if self._state != _OPEN:
                return None

    # ------------------------------------------------------------------ state

    def fileno(self) -> int:
        if self._state != _OPEN:
            raise OSError(E.EBADF, os.strerror(E.EBADF))
        return self._mq.mqd

    def stat(self) -> tuple[int, int, int, int, int]:
        """(curmsgs, st_mode, st_uid, st_gid, qsize or -1)."""
        self._calls.append(None)
        try:
            if self._state != _OPEN:
                raise OSError(E.EBADF, os.strerror(E.EBADF))
            try:
                current = self._mq.current_messages
            except (posix_ipc.Error, OSError) as exc:
                raise _oserror("stat", exc) from exc
            st = os.fstat(self._mq.mqd)
            qsize = -1
            try:
                line = os.pread(self._mq.mqd, 128, 0).decode("ascii", "replace")
                qsize = int(line.split("QSIZE:", 1)[1].split()[0])
            except (OSError, IndexError, ValueError):
                qsize = -1  # write-only descriptors cannot read the QSIZE line
            return current, st.st_mode, st.st_uid, st.st_gid, qsize
        finally:
            self._leave()

    def notify(self, arg: object) -> None:
        """mq_notify: None cancels, an int is a signal, a callable runs in a thread."""
        self._calls.append(None)
        try:
            if self._state != _OPEN:
                raise OSError(E.EBADF, os.strerror(E.EBADF))
            request: object = arg
            if callable(arg):
                callback = arg
                request = (lambda _param: callback(), None)
            self._mq.request_notification(request)  # type: ignore[arg-type]
        except (posix_ipc.Error, ValueError, OSError) as exc:
            raise _oserror("notify", exc) from exc
        finally:
            self._leave()


def _reset_after_fork() -> None:
    for channel in list(_live):
        channel._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
