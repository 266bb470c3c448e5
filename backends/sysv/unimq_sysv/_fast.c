/*
 * unimq_sysv._fast: the send/receive primitives of SysVQueue in C (optional).
 *
 * A Channel is bound to one msqid and provides exactly the primitives the
 * core's backend contract asks for (unimq/_queue.py), bound straight onto the
 * handle so the hot path is one C call:
 *
 *   send_nowait(data, mtype, priority) -> bool
 *   receive_nowait(mtype) -> Message | None
 *   send_wait(data, mtype, priority, timeout | None) -> bool
 *   receive_wait(mtype, timeout | None) -> Message | None
 *   send_many_nowait(batch, start) -> int          (one call per batch)
 *   receive_many_nowait(mtype, limit) -> list[Message]
 *   close()
 *
 * Errors: every failure raises OSError with the real errno (the backend's one
 * errno table turns it into a unimq error). EAGAIN on send and ENOMSG on
 * receive are not failures: False / None.
 *
 * Lifetime: a channel is open, closing or closed; every call checks it, and a
 * call on a channel that is not open raises OSError(EBADF) (the *_wait
 * primitives return False / None instead: the core then raises QueueClosed).
 * close() wakes every thread waiting in this channel and returns once each of
 * them has left its system call, so the msqid is never used after close().
 *
 * Waking a thread blocked in msgsnd/msgrcv: SysV IPC calls are never restarted
 * after a signal handler ran (kernel-facts S12/S18), so a thread-directed
 * signal (pthread_kill) with a no-op handler installed WITHOUT SA_RESTART makes
 * the call fail with EINTR. The signal is the first real-time signal from
 * SIGRTMIN+8 upward whose disposition is SIG_DFL when this module is imported
 * (module attribute WAKE_SIGNAL; 0 when none was free): a handler someone else
 * installed is never replaced. A signal sent just before the waiter enters the
 * system call would be lost, so close() re-sends until every waiter has
 * acknowledged leaving (unregistered itself). Where the signal cannot be used
 * (none free, someone installed another handler on it later, or the waiting
 * thread blocks it), waits poll with IPC_NOWAIT and backoff instead,
 * checking the channel's state on every wake-up.
 *
 * Timed waits: the kernel has no timed msgsnd/msgrcv. The thread blocks in the
 * kernel all the same, and a POSIX timer (timer_create, SIGEV_THREAD_ID) sends
 * it the wake signal at the deadline, then every millisecond until the wait
 * ended (so a signal lost just before the system call is followed by another).
 * Measured here: a message arriving mid-wait is taken as fast as by an
 * untimed wait (median 36 us send-to-receive across processes, against 814 us
 * when polling) and an idle waiter costs no CPU (polling: 1.6% of a core).
 * Where the signal or the timer is unavailable, a finite timeout polls with
 * IPC_NOWAIT, sleeping with backoff (50 us doubling to 1.5 ms) without the
 * GIL; a polling waiter sees close() at its next wake-up (it is never sent
 * the signal: it polls because the signal is not safe to send it).
 *
 * The user's signals: EINTR runs Python's handlers (PyErr_CheckSignals);
 * their exceptions propagate, otherwise the wait resumes.
 *
 * Spinning (_spin.h): a wait that blocks in the kernel first retries with
 * IPC_NOWAIT without the GIL, registered as a waiter, for a few microseconds
 * (never past its deadline; close() and interrupt() end it), then runs the
 * signal handlers and blocks.
 *
 * The waiter registry, the wake signal and the deadline timer live in
 * _wake.h, without Python or message-queue code: the async layer can reuse
 * them for any blocking call.
 *
 * Receive buffer: kernel.msgmax when the channel was made. On E2BIG (a larger
 * message, after an administrator raised kernel.msgmax) the buffer grows
 * (to the current kernel.msgmax, at least doubling) and the call is retried:
 * a consumer is never stuck behind a large message.
 *
 * Without a C compiler the package still installs and the backend uses
 * sysv_ipc (pure-Python fallback, same behaviour).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "_spin.h"
#include "_wake.h"

#define STACK_BUF 8192
#define BACKOFF_START 0.00005 /* s: first sleep of a polling wait */
#define BACKOFF_CAP 0.0015    /* s: longest sleep of a polling wait */

/* ------------------------------------------------------------------ the channel */

typedef struct {
    PyObject_HEAD
    int msqid;
    int initialized;
    Py_ssize_t bufsize;    /* receive buffer: grows on E2BIG */
    PyTypeObject *message; /* unimq.Message, a 3-tuple subclass (data, mtype, priority) */
    wake_registry reg;
    spin_budget spin[2]; /* how long a wait spins before it sleeps, per direction (_spin.h) */
} Channel;

struct msg {
    long mtype;
    char mtext[STACK_BUF];
};

/* A receive buffer: the stack one, or a larger one on the heap (raw allocator:
 * it may be grown without the GIL). */
typedef struct {
    struct msg *m;
    size_t cap;
    struct msg *stack;
} rbuf;

static PyObject *
Channel_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Channel *self = (Channel *)type->tp_alloc(type, 0);
    if (self != NULL)
        registry_init(&self->reg);
    return (PyObject *)self;
}

static int
Channel_init(Channel *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"msqid", "bufsize", "message", NULL};
    int msqid;
    Py_ssize_t bufsize;
    PyObject *message;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "inO!", kwlist, &msqid, &bufsize, &PyType_Type,
                                     &message))
        return -1;
    if (self->initialized) {
        PyErr_SetString(PyExc_TypeError, "a Channel is initialized once");
        return -1;
    }
    if (!PyType_IsSubtype((PyTypeObject *)message, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "message must be a tuple subclass");
        return -1;
    }
    if (bufsize < 0 || bufsize > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "bufsize must be 0..INT_MAX");
        return -1;
    }
    self->msqid = msqid;
    self->bufsize = bufsize;
    self->message = (PyTypeObject *)Py_NewRef(message);
    self->initialized = 1;
    return 0;
}

static int
Channel_traverse(Channel *self, visitproc visit, void *arg)
{
    Py_VISIT(self->message);
    return 0;
}

static int
Channel_clear(Channel *self)
{
    Py_CLEAR(self->message);
    return 0;
}

static void
Channel_dealloc(Channel *self)
{
    PyObject_GC_UnTrack(self);
    Channel_clear(self);
    pthread_mutex_destroy(&self->reg.lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
raise_errno(int err)
{
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* 0 if the channel is open, else -1 with OSError(EBADF) set. */
static int
check_open(Channel *self)
{
    if (!self->initialized) {
        PyErr_SetString(PyExc_TypeError, "Channel.__init__ was not called");
        return -1;
    }
    if (!registry_is_open(&self->reg)) {
        raise_errno(EBADF);
        return -1;
    }
    return 0;
}

/* A Message(data, mtype, priority) equal to, and hashing like, one built in
 * Python; takes the three new references, even on failure. */
static PyObject *
new_message(PyTypeObject *type, PyObject *data, PyObject *mtype, PyObject *priority)
{
    PyObject *msg = NULL;
    if (data != NULL && mtype != NULL && priority != NULL) {
#if PY_VERSION_HEX >= 0x030E0000
        /* Tuples cache their hash from 3.14 on: only tuple's own constructor
         * initializes that cache for a subclass instance. */
        PyObject *items = PyTuple_Pack(3, data, mtype, priority);
        if (items != NULL) {
            PyObject *args = PyTuple_Pack(1, items);
            Py_DECREF(items);
            if (args != NULL) {
                msg = PyTuple_Type.tp_new(type, args, NULL);
                Py_DECREF(args);
            }
        }
        Py_DECREF(data);
        Py_DECREF(mtype);
        Py_DECREF(priority);
        return msg;
#else
        /* Before 3.14 a tuple has no hash cache: filling a fresh instance is
         * what tuple.__new__(Message, ...) does. */
        msg = type->tp_alloc(type, 3);
#endif
    }
    if (msg == NULL) {
        Py_XDECREF(data);
        Py_XDECREF(mtype);
        Py_XDECREF(priority);
        return NULL;
    }
    PyTuple_SET_ITEM(msg, 0, data);
    PyTuple_SET_ITEM(msg, 1, mtype);
    PyTuple_SET_ITEM(msg, 2, priority);
    return msg;
}

/* The message to send: in *stack when it fits, else on the heap (NULL: no memory). */
static struct msg *
send_buffer(PyObject *data, long mtype, struct msg *stack)
{
    Py_ssize_t len = PyBytes_GET_SIZE(data);
    struct msg *m = stack;
    if (len > STACK_BUF) {
        m = PyMem_RawMalloc(offsetof(struct msg, mtext) + (size_t)len);
        if (m == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    m->mtype = mtype;
    memcpy(m->mtext, PyBytes_AS_STRING(data), (size_t)len);
    return m;
}

static void
release_send_buffer(struct msg *m, struct msg *stack)
{
    if (m != stack)
        PyMem_RawFree(m);
}

/* A receive buffer of self->bufsize bytes (-1 with MemoryError set). */
static int
rbuf_init(Channel *self, rbuf *b, struct msg *stack)
{
    b->stack = stack;
    b->m = stack;
    b->cap = STACK_BUF;
    size_t want = (size_t)__atomic_load_n(&self->bufsize, __ATOMIC_RELAXED);
    if (want > STACK_BUF) {
        b->m = PyMem_RawMalloc(offsetof(struct msg, mtext) + want);
        if (b->m == NULL) {
            b->m = stack;
            PyErr_NoMemory();
            return -1;
        }
        b->cap = want;
    }
    return 0;
}

static void
rbuf_release(rbuf *b)
{
    if (b->m != b->stack)
        PyMem_RawFree(b->m);
    b->m = b->stack;
}

/* kernel.msgmax now, or -1. Async-signal and GIL free. */
static long
read_msgmax(void)
{
    char text[32];
    int fd = open("/proc/sys/kernel/msgmax", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    char *end;
    long value = strtol(text, &end, 10);
    return end == text ? -1 : value;
}

/* Without the GIL: grow b after E2BIG to max(kernel.msgmax now, 2 x its size)
 * and remember the size for later calls. -1 with errno set when it cannot. */
static int
rbuf_grow(Channel *self, rbuf *b)
{
    if (b->cap >= INT_MAX) {
        errno = E2BIG;
        return -1;
    }
    long limit = read_msgmax();
    size_t want = b->cap * 2;
    if (limit > 0 && (size_t)limit > want)
        want = (size_t)limit;
    if (want > INT_MAX)
        want = INT_MAX;
    struct msg *m = PyMem_RawMalloc(offsetof(struct msg, mtext) + want);
    if (m == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (b->m != b->stack)
        PyMem_RawFree(b->m);
    b->m = m;
    b->cap = want;
    if ((Py_ssize_t)want > __atomic_load_n(&self->bufsize, __ATOMIC_RELAXED))
        __atomic_store_n(&self->bufsize, (Py_ssize_t)want, __ATOMIC_RELAXED);
    return 0;
}

/* One msgrcv, growing the buffer on E2BIG; -1 with errno set. No GIL needed. */
static ssize_t
receive_into(Channel *self, rbuf *b, long mtype, int flags)
{
    for (;;) {
        ssize_t got = msgrcv(self->msqid, b->m, b->cap, mtype, flags);
        if (got >= 0 || errno != E2BIG)
            return got;
        if (rbuf_grow(self, b) < 0)
            return -1;
    }
}

/* The Message for a received body of got bytes. */
static PyObject *
received(Channel *self, struct msg *m, ssize_t got)
{
    return new_message(self->message, PyBytes_FromStringAndSize(m->mtext, got),
                       PyLong_FromLong(m->mtype), PyLong_FromLong(0));
}

/* What a non-blocking receive into b returns (b is released): the Message,
 * None when nothing matched (ENOMSG), or NULL with OSError(err). */
static PyObject *
nowait_result(Channel *self, rbuf *b, ssize_t got, int err)
{
    PyObject *result;
    if (got >= 0)
        result = received(self, b->m, got);
    else if (err == ENOMSG)
        result = Py_NewRef(Py_None);
    else
        result = raise_errno(err);
    rbuf_release(b);
    return result;
}

/* ------------------------------------------------------------------ argument parsing */

/* An exact int (bool, float and int subclasses refused: the core passes exact ints). */
static int
long_arg(PyObject *obj, const char *name, long *out)
{
    if (!PyLong_CheckExact(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = PyLong_AsLong(obj);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

/* None (-1.0: no limit) or seconds >= 0 as an int or float (not bool). */
static int
timeout_arg(PyObject *obj, double *out)
{
    if (obj == Py_None) {
        *out = -1.0;
        return 0;
    }
    if (!PyFloat_CheckExact(obj) && !PyLong_CheckExact(obj)) {
        PyErr_Format(PyExc_TypeError, "timeout must be a float or None, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    double t = PyFloat_AsDouble(obj);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (!(t >= 0)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be >= 0 or None");
        return -1;
    }
    *out = t;
    return 0;
}

static int
send_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, long *mtype)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", want, nargs);
        return -1;
    }
    if (!PyBytes_CheckExact(args[0])) {
        PyErr_Format(PyExc_TypeError, "data must be bytes, not %.100s", Py_TYPE(args[0])->tp_name);
        return -1;
    }
    long priority;
    if (long_arg(args[1], "mtype", mtype) < 0 || long_arg(args[2], "priority", &priority) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ waiting */

/* Without the GIL: sleep min(*delay, time left) and double *delay up to the
 * cap. end < 0: no deadline. Returns 1 (without sleeping) once the deadline
 * has passed. A signal cuts the sleep short. */
static int
backoff_sleep(double end, double *delay)
{
    double d = *delay;
    if (end >= 0) {
        double left = end - monotonic();
        if (left <= 0)
            return 1;
        if (left < d)
            d = left;
    }
    sleep_seconds(d);
    *delay = *delay * 2 < BACKOFF_CAP ? *delay * 2 : BACKOFF_CAP;
    return 0;
}

typedef struct {
    int sending;
    struct msg *sm; /* send: the message and its body length */
    size_t slen;
    rbuf *rb; /* receive: the buffer and the selection */
    long mtype;
    int rflags; /* receive: extra msgrcv flags (MSG_EXCEPT), 0 for receive */
} operation;

static ssize_t
attempt(Channel *self, operation *op, int flags)
{
    if (op->sending)
        return msgsnd(self->msqid, op->sm, op->slen, flags) == 0 ? 0 : -1;
    return receive_into(self, op->rb, op->mtype, flags | op->rflags);
}

#define WAIT_ERROR -2 /* a Python exception is set */
#define WAIT_NONE -3  /* nothing done: the time ran out or the channel is closing */

/* Wait until the operation succeeds (>= 0), the timeout (< 0: none) passes or
 * close() wakes it (WAIT_NONE), or it fails (WAIT_ERROR: OSError with the
 * errno, or a signal handler's exception). Called with the GIL. */
static ssize_t
wait_for(Channel *self, operation *op, double timeout)
{
    int busy = op->sending ? EAGAIN : ENOMSG;
    /* Block in the kernel, woken by the signal: from close(), or from a timer
     * at the deadline. Else poll with backoff. */
    int blocking = wake_usable();
    int timed = 0;
    timer_t timer;
    double end = timeout < 0 ? -1.0 : monotonic() + timeout;
    if (blocking && timeout >= 0) {
        if (wake_timer_arm(&timer, timeout) == 0)
            timed = 1;
        else
            blocking = 0;
    }
    wake_node node;
    if (registry_enter(&self->reg, &node, !blocking) < 0) {
        if (timed)
            timer_delete(timer);
        return WAIT_NONE;
    }
    double delay = BACKOFF_START;
    ssize_t got;
    /* A waiter that blocks in the kernel spins first (_spin.h): the first
     * round retries with IPC_NOWAIT, without the GIL, then runs the signal
     * handlers and blocks. (A polling waiter has its own backoff.) */
    long limit = 0;
    spin_budget *budget = &self->spin[op->sending];
    if (blocking) {
        double left = timeout < 0 ? -1.0 : (end - monotonic()) * 1e9;
        if (timeout < 0 || left > 0)
            limit = spin_limit(budget, left > 1e12 ? (long)1e12 : (long)left);
    }
    for (;;) {
        int err = 0, closing = 0, expired = 0, spun = 0;
        got = -1;
        /* A signal that arrived while a handler ran (or just before the wait)
         * is handled now rather than after the blocking call returns; one that
         * arrives in the instant before the call starts still waits for it,
         * as with CPython's own blocking calls. */
        if (blocking && PyErr_CheckSignals() < 0) {
            got = WAIT_ERROR;
            break;
        }
        Py_BEGIN_ALLOW_THREADS
        if (!registry_is_open(&self->reg) || node_interrupted(&node)) {
            closing = 1; /* close(), or interrupt() for this thread: leave, doing nothing */
        }
        else if (limit > 0) { /* the spin: a busy queue ends it (errno EAGAIN/ENOMSG) */
            long start = spin_now_ns();
            do {
                if (!registry_is_open(&self->reg) || node_interrupted(&node)) {
                    err = EINTR; /* the next round sees it */
                    break;
                }
                got = attempt(self, op, IPC_NOWAIT);
                err = errno;
            } while (got == -1 && err == busy && spin_again(start, limit));
            spun = 1;
        }
        else if (blocking) {
            if (timed && monotonic() >= end) {
                got = attempt(self, op, IPC_NOWAIT); /* the last try, at the deadline */
                expired = 1;
            }
            else {
                got = attempt(self, op, 0);
            }
            err = errno;
        }
        else {
            got = attempt(self, op, IPC_NOWAIT);
            err = errno;
            if (got == -1 && err == busy)
                expired = backoff_sleep(end, &delay);
        }
        Py_END_ALLOW_THREADS
        if (spun) { /* not done: run the handlers, then block */
            spin_result(budget, got >= 0);
            limit = spun = 0;
            if (got == -1 && err == busy)
                err = EINTR;
        }
        if (got >= 0)
            break; /* done, even if close() began meanwhile: nothing is lost */
        if (closing) {
            got = WAIT_NONE;
            break;
        }
        if (err != EINTR && err != busy) {
            raise_errno(err);
            got = WAIT_ERROR;
            break;
        }
        if (PyErr_CheckSignals() < 0) { /* the user's handlers; their exceptions propagate */
            got = WAIT_ERROR;
            break;
        }
        if (expired) {
            got = WAIT_NONE;
            break;
        }
    }
    registry_leave(&self->reg, &node);
    if (timed)
        timer_delete(timer); /* a signal it sent meanwhile was delivered on the way out */
    return got;
}

/* ------------------------------------------------------------------ methods */

/* send_nowait(data: bytes, mtype: int, priority: int) -> bool */
static PyObject *
Channel_send_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    long mtype;
    if (send_args(args, nargs, 3, &mtype) < 0 || check_open(self) < 0)
        return NULL;
    struct msg stack;
    struct msg *m = send_buffer(args[0], mtype, &stack);
    if (m == NULL)
        return NULL;
    int rc = msgsnd(self->msqid, m, (size_t)PyBytes_GET_SIZE(args[0]), IPC_NOWAIT);
    int err = errno;
    release_send_buffer(m, &stack);
    if (rc == 0)
        Py_RETURN_TRUE;
    if (err == EAGAIN)
        Py_RETURN_FALSE;
    return raise_errno(err);
}

/* receive_nowait(mtype: int) -> Message | None */
static PyObject *
Channel_receive_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    long mtype;
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "receive_nowait(mtype)");
        return NULL;
    }
    if (long_arg(args[0], "mtype", &mtype) < 0 || check_open(self) < 0)
        return NULL;
    struct msg stack;
    rbuf b;
    if (rbuf_init(self, &b, &stack) < 0)
        return NULL;
    ssize_t got = msgrcv(self->msqid, b.m, b.cap, mtype, IPC_NOWAIT);
    int err = errno;
    if (got == -1 && err == E2BIG) {
        Py_BEGIN_ALLOW_THREADS
        got = receive_into(self, &b, mtype, IPC_NOWAIT);
        err = errno;
        Py_END_ALLOW_THREADS
    }
    return nowait_result(self, &b, got, err);
}

/* send_wait(data: bytes, mtype: int, priority: int, timeout: float | None) -> bool */
static PyObject *
Channel_send_wait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    long mtype;
    double timeout;
    if (send_args(args, nargs, 4, &mtype) < 0 || timeout_arg(args[3], &timeout) < 0)
        return NULL;
    if (!self->initialized) {
        check_open(self);
        return NULL;
    }
    struct msg stack;
    struct msg *m = send_buffer(args[0], mtype, &stack);
    if (m == NULL)
        return NULL;
    operation op = {1, m, (size_t)PyBytes_GET_SIZE(args[0]), NULL, mtype};
    ssize_t rc = wait_for(self, &op, timeout);
    release_send_buffer(m, &stack);
    if (rc == WAIT_ERROR)
        return NULL;
    return PyBool_FromLong(rc >= 0);
}

/* The waiting receive of receive_wait and receive_except_wait: msgrcv with
 * ``flags`` through wait_for (its waiting, wake-up and close()); None when the
 * wait ended without a message. */
static PyObject *
receive_waiting(Channel *self, long mtype, int flags, double timeout)
{
    if (!self->initialized) {
        check_open(self);
        return NULL;
    }
    struct msg stack;
    rbuf b;
    if (rbuf_init(self, &b, &stack) < 0)
        return NULL;
    operation op = {0, NULL, 0, &b, mtype, flags};
    ssize_t got = wait_for(self, &op, timeout);
    PyObject *result = NULL;
    if (got == WAIT_NONE)
        result = Py_NewRef(Py_None);
    else if (got >= 0)
        result = received(self, b.m, got);
    rbuf_release(&b);
    return result;
}

/* receive_wait(mtype: int, timeout: float | None) -> Message | None */
static PyObject *
Channel_receive_wait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    long mtype;
    double timeout;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "receive_wait(mtype, timeout)");
        return NULL;
    }
    if (long_arg(args[0], "mtype", &mtype) < 0 || timeout_arg(args[1], &timeout) < 0)
        return NULL;
    return receive_waiting(self, mtype, 0, timeout);
}

/* receive_spin(mtype: int, ns: int) -> Message | None: receive_nowait retried
 * for up to ns nanoseconds (sched_yield between tries, without the GIL); None
 * when nothing came or close() began meanwhile. For a caller that would
 * otherwise hand the wait to another thread although it has nothing else to
 * do: unimq.aio's task, when its event loop has no other task ready to run
 * (a reply on its way is taken without two thread wake-ups). */
static PyObject *
Channel_receive_spin(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    long mtype, ns;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "receive_spin(mtype, ns)");
        return NULL;
    }
    if (long_arg(args[0], "mtype", &mtype) < 0 || long_arg(args[1], "ns", &ns) < 0 ||
        check_open(self) < 0)
        return NULL;
    struct msg stack;
    rbuf b;
    if (rbuf_init(self, &b, &stack) < 0)
        return NULL;
    ssize_t got = -1;
    int err = ENOMSG;
    wake_node node;
    if (registry_enter(&self->reg, &node, 1) == 0) { /* close() waits until we left */
        Py_BEGIN_ALLOW_THREADS
        long start = spin_now_ns();
        do {
            got = receive_into(self, &b, mtype, IPC_NOWAIT);
            err = errno;
        } while (got == -1 && err == ENOMSG && registry_is_open(&self->reg) &&
                 spin_again(start, ns));
        Py_END_ALLOW_THREADS
        registry_leave(&self->reg, &node);
    }
    return nowait_result(self, &b, got, err);
}

/* ------------------------------------------------------------------ batches */

/* Raise OSError(err) carrying unimq_sent = sent: how many messages of the
 * batch went before it (the core adds it to the error's .sent). */
static PyObject *
raise_errno_after(int err, Py_ssize_t sent)
{
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", err, strerror(err));
    if (exc == NULL)
        return NULL;
    PyObject *count = PyLong_FromSsize_t(sent);
    if (count == NULL || PyObject_SetAttrString(exc, "unimq_sent", count) < 0) {
        Py_XDECREF(count);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(count);
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* One (data: bytes, mtype: int, priority: int) of a batch (the core checked
 * them; a wrong item is still refused here, never sent). */
static int
batch_item(PyObject *item, PyObject **data, long *mtype)
{
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3) {
        PyErr_Format(PyExc_TypeError, "a batch item must be a (data, mtype, priority) tuple, not %.100s",
                     Py_TYPE(item)->tp_name);
        return -1;
    }
    *data = PyTuple_GET_ITEM(item, 0);
    if (!PyBytes_CheckExact(*data)) {
        PyErr_Format(PyExc_TypeError, "data must be bytes, not %.100s", Py_TYPE(*data)->tp_name);
        return -1;
    }
    long priority;
    if (long_arg(PyTuple_GET_ITEM(item, 1), "mtype", mtype) < 0 ||
        long_arg(PyTuple_GET_ITEM(item, 2), "priority", &priority) < 0)
        return -1;
    return 0;
}

/* send_many_nowait(batch: list[tuple[bytes, int, int]], start: int) -> int
 *
 * msgsnd(IPC_NOWAIT) batch[start:] in order, in one call, until one finds the
 * queue full (EAGAIN); returns how many went. Any other failure after k
 * messages went raises OSError with .unimq_sent == k. Holds the GIL like
 * send_nowait, so the list cannot change under it. */
static PyObject *
Channel_send_many_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t start;
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send_many_nowait(batch: list, start: int)");
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    PyObject *batch = args[0];
    if (start < 0 || start > PyList_GET_SIZE(batch)) {
        PyErr_SetString(PyExc_ValueError, "start must be 0..len(batch)");
        return NULL;
    }
    if (check_open(self) < 0)
        return NULL;
    struct msg stack;
    struct msg *heap = NULL; /* grown for bodies over STACK_BUF, reused */
    size_t heapcap = 0;
    Py_ssize_t n = start;
    for (; n < PyList_GET_SIZE(batch); n++) {
        PyObject *data;
        long mtype;
        if (batch_item(PyList_GET_ITEM(batch, n), &data, &mtype) < 0) {
            if (n > start) { /* attach the count to the TypeError as well */
                PyObject *type, *value, *tb;
                PyErr_Fetch(&type, &value, &tb);
                PyErr_NormalizeException(&type, &value, &tb);
                PyObject *count = PyLong_FromSsize_t(n - start);
                if (count != NULL) {
                    PyObject_SetAttrString(value, "unimq_sent", count);
                    Py_DECREF(count);
                }
                PyErr_Restore(type, value, tb);
            }
            break;
        }
        size_t len = (size_t)PyBytes_GET_SIZE(data);
        struct msg *m = &stack;
        if (len > STACK_BUF) {
            if (len > heapcap) {
                struct msg *bigger = PyMem_RawRealloc(heap, offsetof(struct msg, mtext) + len);
                if (bigger == NULL) {
                    PyMem_RawFree(heap);
                    return raise_errno_after(ENOMEM, n - start);
                }
                heap = bigger;
                heapcap = len;
            }
            m = heap;
        }
        m->mtype = mtype;
        memcpy(m->mtext, PyBytes_AS_STRING(data), len);
        if (msgsnd(self->msqid, m, len, IPC_NOWAIT) == 0)
            continue;
        int err = errno;
        PyMem_RawFree(heap);
        if (err == EAGAIN)
            return PyLong_FromSsize_t(n - start);
        return raise_errno_after(err, n - start);
    }
    PyMem_RawFree(heap);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t(n - start);
}

/* receive_many_nowait(mtype: int, limit: int) -> list[Message]
 *
 * msgrcv(IPC_NOWAIT) up to limit messages in one call, through the one
 * receive buffer (grown on E2BIG like receive_nowait), until the queue has no
 * matching message. A failure after k messages were taken returns those k
 * (the failure recurs on the next call): a taken message is never lost. */
static PyObject *
Channel_receive_many_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    long mtype;
    if (nargs != 2 || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "receive_many_nowait(mtype: int, limit: int)");
        return NULL;
    }
    if (long_arg(args[0], "mtype", &mtype) < 0)
        return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (check_open(self) < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    struct msg stack;
    rbuf b;
    if (rbuf_init(self, &b, &stack) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    while (PyList_GET_SIZE(out) < limit) {
        ssize_t got = msgrcv(self->msqid, b.m, b.cap, mtype, IPC_NOWAIT);
        int err = errno;
        if (got == -1 && err == E2BIG) {
            Py_BEGIN_ALLOW_THREADS
            got = receive_into(self, &b, mtype, IPC_NOWAIT);
            err = errno;
            Py_END_ALLOW_THREADS
        }
        if (got < 0) {
            if (err != ENOMSG && PyList_GET_SIZE(out) == 0)
                Py_SETREF(out, raise_errno(err));
            break;
        }
        PyObject *msg = received(self, b.m, got);
        if (msg == NULL || PyList_Append(out, msg) < 0) {
            Py_XDECREF(msg);
            Py_SETREF(out, NULL);
            break;
        }
        Py_DECREF(msg);
    }
    rbuf_release(&b);
    return out;
}

/* close(): wake every waiter and return once each has left. Idempotent; a
 * second close() (after one interrupted by a signal handler) waits again. */
static PyObject *
Channel_close(Channel *self, PyObject *Py_UNUSED(ignored))
{
    if (registry_begin_close(&self->reg) < 0 &&
        __atomic_load_n(&self->reg.state, __ATOMIC_ACQUIRE) == STATE_CLOSED)
        Py_RETURN_NONE;
    for (;;) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = registry_wake_all(&self->reg, 0.05);
        Py_END_ALLOW_THREADS
        if (done)
            Py_RETURN_NONE;
        if (PyErr_CheckSignals() < 0) /* e.g. Ctrl-C while a waiter does not leave */
            return NULL;
    }
}

/* interrupt(thread_ident) -> bool: end the wait of that thread (threading.get_ident())
 * in this channel, if it waits: its send_wait/receive_wait returns False/None
 * without the operation. Never blocks; the caller repeats it until the wait
 * has returned (a signal sent just before the thread blocks is lost). */
static PyObject *
Channel_interrupt(Channel *self, PyObject *arg)
{
    unsigned long ident = PyLong_AsUnsignedLong(arg);
    if (ident == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    int found;
    Py_BEGIN_ALLOW_THREADS
    found = registry_interrupt(&self->reg, (pthread_t)ident);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(found);
}

/* ------------------------------------------------------------------ SysV extras: MSG_EXCEPT, MSG_COPY */

#ifndef MSG_EXCEPT
#define MSG_EXCEPT 020000
#endif
#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

/* One non-blocking msgrcv(selector, IPC_NOWAIT | flags) -> Message | None
 * (ENOMSG). The buffer grows on E2BIG as for receive; for MSG_COPY the kernel
 * copies at most kernel.msgmax bytes, so growth stops there (E2BIG raised). */
static PyObject *
extra_nowait(Channel *self, long selector, int flags)
{
    if (check_open(self) < 0)
        return NULL;
    struct msg stack;
    rbuf b;
    if (rbuf_init(self, &b, &stack) < 0)
        return NULL;
    ssize_t got;
    int err;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        got = msgrcv(self->msqid, b.m, b.cap, selector, IPC_NOWAIT | flags);
        err = errno;
        if (got >= 0 || err != E2BIG)
            break;
        if (flags & MSG_COPY) {
            long limit = read_msgmax();
            if (limit > 0 && b.cap >= (size_t)limit)
                break; /* larger than the kernel copies: E2BIG */
        }
        if (rbuf_grow(self, &b) < 0) {
            err = errno;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    return nowait_result(self, &b, got, err);
}

/* receive_except_nowait(mtype: int) -> Message | None: msgrcv with MSG_EXCEPT. */
static PyObject *
Channel_receive_except_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    long mtype;
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "receive_except_nowait(mtype)");
        return NULL;
    }
    if (long_arg(args[0], "mtype", &mtype) < 0)
        return NULL;
    if (mtype <= 0) {
        PyErr_SetString(PyExc_ValueError, "MSG_EXCEPT needs mtype > 0");
        return NULL;
    }
    return extra_nowait(self, mtype, MSG_EXCEPT);
}

/* receive_except_wait(mtype: int, timeout: float | None) -> Message | None:
 * receive_wait with MSG_EXCEPT (same waiting, wake-up and close()). */
static PyObject *
Channel_receive_except_wait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    long mtype;
    double timeout;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "receive_except_wait(mtype, timeout)");
        return NULL;
    }
    if (long_arg(args[0], "mtype", &mtype) < 0 || timeout_arg(args[1], &timeout) < 0)
        return NULL;
    if (mtype <= 0) {
        PyErr_SetString(PyExc_ValueError, "MSG_EXCEPT needs mtype > 0");
        return NULL;
    }
    return receive_waiting(self, mtype, MSG_EXCEPT, timeout);
}

/* peek(index: int) -> Message | None: a copy of the message at that position
 * (msgrcv with IPC_NOWAIT | MSG_COPY), None when there is none. ENOSYS: the
 * kernel lacks CONFIG_CHECKPOINT_RESTORE. */
static PyObject *
Channel_peek(Channel *self, PyObject *arg)
{
    long index;
    if (long_arg(arg, "index", &index) < 0)
        return NULL;
    if (index < 0) {
        PyErr_SetString(PyExc_ValueError, "index must be >= 0");
        return NULL;
    }
    return extra_nowait(self, index, MSG_COPY);
}

static PyObject *
Channel_get_state(Channel *self, void *closure)
{
    static const char *names[] = {"open", "closing", "closed"};
    return PyUnicode_FromString(names[__atomic_load_n(&self->reg.state, __ATOMIC_ACQUIRE)]);
}

static PyObject *
Channel_get_waiters(Channel *self, void *closure)
{
    pthread_mutex_lock(&self->reg.lock);
    int count = self->reg.count;
    pthread_mutex_unlock(&self->reg.lock);
    return PyLong_FromLong(count);
}

static PyObject *
Channel_get_bufsize(Channel *self, void *closure)
{
    return PyLong_FromSsize_t(__atomic_load_n(&self->bufsize, __ATOMIC_RELAXED));
}

static PyGetSetDef Channel_getset[] = {
    {"state", (getter)Channel_get_state, NULL, "'open', 'closing' or 'closed'.", NULL},
    {"waiters", (getter)Channel_get_waiters, NULL, "Threads waiting in this channel now.", NULL},
    {"bufsize", (getter)Channel_get_bufsize, NULL, "The receive buffer's size now.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Channel_methods[] = {
    {"send_nowait", (PyCFunction)(void (*)(void))Channel_send_nowait, METH_FASTCALL,
     "send_nowait(data, mtype, priority) -> bool: one msgsnd with IPC_NOWAIT."},
    {"receive_nowait", (PyCFunction)(void (*)(void))Channel_receive_nowait, METH_FASTCALL,
     "receive_nowait(mtype) -> Message | None: one msgrcv with IPC_NOWAIT."},
    {"receive_spin", (PyCFunction)(void (*)(void))Channel_receive_spin, METH_FASTCALL,
     "receive_spin(mtype, ns) -> Message | None: receive_nowait retried for up to ns."},
    {"send_wait", (PyCFunction)(void (*)(void))Channel_send_wait, METH_FASTCALL,
     "send_wait(data, mtype, priority, timeout) -> bool: wait for room and send."},
    {"receive_wait", (PyCFunction)(void (*)(void))Channel_receive_wait, METH_FASTCALL,
     "receive_wait(mtype, timeout) -> Message | None: wait for a message and take it."},
    {"send_many_nowait", (PyCFunction)(void (*)(void))Channel_send_many_nowait, METH_FASTCALL,
     "send_many_nowait(batch, start) -> int: msgsnd(IPC_NOWAIT) batch[start:] until full."},
    {"receive_many_nowait", (PyCFunction)(void (*)(void))Channel_receive_many_nowait,
     METH_FASTCALL,
     "receive_many_nowait(mtype, limit) -> list[Message]: msgrcv(IPC_NOWAIT) up to limit."},
    {"interrupt", (PyCFunction)Channel_interrupt, METH_O,
     "interrupt(thread_ident) -> bool: end that thread's wait here (it does nothing)."},
    {"receive_except_nowait", (PyCFunction)(void (*)(void))Channel_receive_except_nowait,
     METH_FASTCALL, "receive_except_nowait(mtype) -> Message | None: msgrcv, MSG_EXCEPT."},
    {"receive_except_wait", (PyCFunction)(void (*)(void))Channel_receive_except_wait,
     METH_FASTCALL, "receive_except_wait(mtype, timeout) -> Message | None: MSG_EXCEPT, waiting."},
    {"peek", (PyCFunction)Channel_peek, METH_O,
     "peek(index) -> Message | None: a copy of the message at index (MSG_COPY)."},
    {"close", (PyCFunction)Channel_close, METH_NOARGS,
     "close(): wake every waiter, return once they left; later calls fail with EBADF."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "unimq_sysv._fast.Channel",
    .tp_doc = "msgsnd/msgrcv on one msqid: the SysV backend's primitives, OSError with errno.",
    .tp_basicsize = sizeof(Channel),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Channel_new,
    .tp_init = (initproc)Channel_init,
    .tp_dealloc = (destructor)Channel_dealloc,
    .tp_traverse = (traverseproc)Channel_traverse,
    .tp_clear = (inquiry)Channel_clear,
    .tp_methods = Channel_methods,
    .tp_getset = Channel_getset,
};

/* _spin([max_ns]) -> int: the longest a wait spins before it sleeps (ns, 0:
 * never; see _spin.h); with an argument, set it (process-wide) and return
 * the previous value. For tests and benchmarks. */
static PyObject *
fast_spin(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long previous = spin_max_ns;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "_spin([max_ns: int])");
        return NULL;
    }
    if (nargs == 1) {
        long value = PyLong_AsLong(args[0]);
        if (value == -1 && PyErr_Occurred())
            return NULL;
        if (value < 0 || value > 1000000000L) {
            PyErr_SetString(PyExc_ValueError, "max_ns must be 0..1e9");
            return NULL;
        }
        __atomic_store_n(&spin_max_ns, value, __ATOMIC_RELAXED);
    }
    return PyLong_FromLong(previous);
}

static PyMethodDef fast_functions[] = {
    {"_spin", (PyCFunction)(void (*)(void))fast_spin, METH_FASTCALL,
     "_spin([max_ns]) -> int: how long a wait spins before it sleeps (ns); set it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "unimq_sysv._fast",
    .m_doc = "Optional C primitives for unimq's SysV backend.",
    .m_size = -1,
    .m_methods = fast_functions,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    spin_setup();
    if (PyType_Ready(&ChannelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fast_module);
    if (m == NULL)
        return NULL;
    if (wake_signo == 0)
        wake_signo = wake_install();
    if (PyModule_AddObjectRef(m, "Channel", (PyObject *)&ChannelType) < 0 ||
        PyModule_AddIntConstant(m, "WAKE_SIGNAL", wake_signo) < 0 ||
        PyModule_AddIntConstant(m, "STACK_BUF", STACK_BUF) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
