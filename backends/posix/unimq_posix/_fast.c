/*
 * unimq_posix._fast: the C channel of PosixQueue (optional).
 *
 * A Channel owns one POSIX message queue descriptor: it opens it itself
 * (mq_open + mq_getattr here, so every failure carries the real errno) and
 * closes it exactly once.  Descriptors:
 *
 *   - the queue descriptor (always non-blocking), from open until close;
 *   - the blocking twin: a second descriptor of the same queue without
 *     O_NONBLOCK, opened by the first wait without a time limit, on which
 *     that wait sleeps in mq_receive/mq_send (the kernel hands a message
 *     straight to a blocked receiver: one system call and one wake-up, as
 *     fast as posix_ipc's blocking calls).  It is used only when the name
 *     still leads to the queue the handle opened (st_dev/st_ino compared);
 *     otherwise, or when it cannot be opened, waits poll();
 *   - an eventfd, only where the wake signal cannot be used (below).
 *
 * The non-blocking attempts (send_nowait/receive_nowait) hold the GIL for the
 * whole call, so close() (which also holds the GIL) cannot run in between.
 * The waits (send_wait/receive_wait) count themselves "in flight" first, then
 * wait without the GIL: timeout=None on the twin; a timeout poll()s the queue
 * descriptor on CLOCK_MONOTONIC (mq_timedreceive would take a CLOCK_REALTIME
 * deadline, which a step of the wall clock stretches) and retries the
 * non-blocking call.  close() with no call in flight closes the descriptors at
 * once; otherwise it marks the channel closing and wakes every waiter, each
 * sees the state and leaves, and the last one to leave closes the
 * descriptors.  So no call ever uses a descriptor number after close (the
 * kernel reuses numbers at once).
 *
 * Spinning (_spin.h): a wait that close() can wake with the wake signal
 * first retries the non-blocking call on the queue descriptor without the
 * GIL, registered as a waiter, for a few microseconds (never past its
 * deadline), then runs the signal handlers and sleeps as described above.
 *
 * Waking: a thread sleeping in mq_receive/mq_send/poll() is woken by the wake
 * signal of _wake.h (the same file as the SysV channel's): a thread-directed
 * real-time signal, the first from SIGRTMIN+8 whose disposition was SIG_DFL
 * at import (module attribute WAKE_SIGNAL, 0 when none was free; a handler
 * someone else installed is never replaced), with a no-op handler installed
 * without SA_RESTART, so the call fails with EINTR.  Such waiters register in
 * the waiter registry; close() re-sends the signal until each has left it (a
 * signal sent just before the thread enters the call would be lost), so
 * close() returns once no thread sleeps in the kernel on the handle.  Where
 * the signal cannot be used (none free, another handler installed on it
 * later, or the waiting thread blocks it), the wait polls the queue
 * descriptor and an eventfd (created then), which close() writes.  So a
 * handle holds one descriptor until its first wait without a time limit, two
 * after it (plus the eventfd only on that fallback).
 *
 * Failures raise OSError with the real errno (the backend has one table that
 * maps them).  EINTR runs the Python signal handlers (their exceptions
 * propagate) and the call resumes with the remaining time, measured on
 * CLOCK_MONOTONIC.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "_spin.h"
#include "_wake.h"

#define STACK_BUF 8192
/* Waits longer than this (seconds) are treated as "no limit". */
#define WAIT_FOREVER 1e9

enum { ST_CLOSED = 0, ST_OPEN = 1, ST_CLOSING = 2 };

typedef struct Channel {
    PyObject_HEAD
    mqd_t mqd;            /* -1 when closed */
    mqd_t twin;           /* the blocking twin, -1 until the first untimed wait */
    int twin_refused;     /* 1: the name led elsewhere (or could not be opened): poll */
    int access;           /* O_RDONLY / O_WRONLY / O_RDWR, for the twin */
    PyObject *name;       /* the queue's name (bytes), for the twin */
    int wakefd;           /* eventfd, -1 unless a wait could not use the wake signal */
    int state;            /* ST_OPEN, ST_CLOSING (waiters still in flight), ST_CLOSED */
    Py_ssize_t inflight;  /* calls that released the GIL with the descriptors in use */
    long maxmsg;          /* mq_maxmsg */
    Py_ssize_t msgsize;   /* mq_msgsize: receive buffers are this large */
    int recv_large;       /* the last message received was large (see rbuf) */
    PyTypeObject *message; /* unimq.Message, a 3-tuple subclass (data, mtype, priority) */
    struct Channel *prev, *next; /* the open channels, for fork (under the GIL) */
    /* One poller per direction (0: receive, 1: send): the other waiters of that
     * direction wait for this lock, so a ready queue wakes one thread, not all. */
    PyThread_type_lock pollers[2];
    wake_registry reg; /* the threads the wake signal wakes (in the kernel or poll()) */
    spin_budget spin[2]; /* how long a wait spins before it sleeps, per direction (_spin.h) */
} Channel;

/* Every initialized channel, so that a forked child can reset them: in the
 * child only the forking thread exists (no call is in flight), and the
 * eventfd is shared with the parent (a close() there must not wake the
 * child's waits, nor the child's the parent's), so the child drops its copy
 * and creates its own at its first wait. */
static Channel *live = NULL;

static void release(Channel *self);

static void
after_fork_child(void)
{
    for (Channel *c = live; c != NULL; c = c->next) {
        registry_check_fork(&c->reg); /* the parent's waiters do not exist here */
        /* The twin stays: a descriptor of the queue like the main one, used by
         * this process's own waits only. */
        if (c->wakefd != -1)
            close(c->wakefd);
        c->wakefd = -1;
        c->inflight = 0;
        for (int i = 0; i < 2; i++) /* a parent's thread may have held them */
            if (c->pollers[i] != NULL)
                c->pollers[i] = PyThread_allocate_lock(); /* the old one leaks, once */
        if (c->state == ST_CLOSING)
            release(c);
    }
}

static void
link_live(Channel *self)
{
    self->prev = NULL;
    self->next = live;
    if (live != NULL)
        live->prev = self;
    live = self;
}

static void
unlink_live(Channel *self)
{
    if (self->prev != NULL)
        self->prev->next = self->next;
    else if (live == self)
        live = self->next;
    if (self->next != NULL)
        self->next->prev = self->prev;
    self->prev = self->next = NULL;
}

static PyObject *
Channel_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Channel *self = (Channel *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->mqd = (mqd_t)-1;
        self->twin = (mqd_t)-1;
        self->wakefd = -1;
        self->state = ST_CLOSED;
        registry_init(&self->reg);
        self->reg.state = STATE_CLOSED; /* open once __init__ opened the queue */
    }
    return (PyObject *)self;
}

static PyObject *
set_errno(int err)
{
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* Channel(name, oflag, mode, max_messages, max_message_size, message)
 * oflag: O_RDONLY / O_WRONLY / O_RDWR, with O_CREAT | O_EXCL to create (then
 * with exactly ``mode``, whatever the umask, and the two attributes). */
static int
Channel_init(Channel *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "oflag", "mode", "max_messages", "max_message_size",
                             "message", NULL};
    PyObject *name_bytes = NULL, *message;
    int oflag, mode;
    long maxmsg, msgsize;
    if (self->state != ST_CLOSED || self->message != NULL) {
        PyErr_SetString(PyExc_TypeError, "Channel is already initialized");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&iillO!", kwlist, PyUnicode_FSConverter,
                                     &name_bytes, &oflag, &mode, &maxmsg, &msgsize, &PyType_Type,
                                     &message))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)message, &PyTuple_Type)) {
        Py_DECREF(name_bytes);
        PyErr_SetString(PyExc_TypeError, "message must be a tuple subclass");
        return -1;
    }
    const char *name = PyBytes_AS_STRING(name_bytes);
    mqd_t mqd;
    int err = 0;
    if (oflag & O_CREAT) {
        struct mq_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.mq_maxmsg = maxmsg;
        attr.mq_msgsize = msgsize;
        mqd = mq_open(name, oflag | O_NONBLOCK | O_CLOEXEC, (mode_t)mode, &attr);
        if (mqd == (mqd_t)-1)
            err = errno;
        /* The exact mode, as SysV applies it, instead of filtered by the umask. */
        else if (fchmod((int)mqd, (mode_t)mode) == -1) {
            err = errno;
            mq_close(mqd);
            mq_unlink(name);
            mqd = (mqd_t)-1;
        }
    }
    else {
        mqd = mq_open(name, (oflag & ~(O_CREAT | O_EXCL)) | O_NONBLOCK | O_CLOEXEC);
        if (mqd == (mqd_t)-1)
            err = errno;
    }
    if (mqd == (mqd_t)-1) {
        Py_DECREF(name_bytes);
        set_errno(err);
        return -1;
    }
    struct mq_attr got;
    if (mq_getattr(mqd, &got) == -1) {
        err = errno;
        mq_close(mqd);
        Py_DECREF(name_bytes);
        set_errno(err);
        return -1;
    }
    self->mqd = mqd;
    self->maxmsg = got.mq_maxmsg;
    self->msgsize = (Py_ssize_t)got.mq_msgsize;
    for (int i = 0; i < 2; i++) {
        self->pollers[i] = PyThread_allocate_lock();
        if (self->pollers[i] == NULL) {
            if (i == 1)
                PyThread_free_lock(self->pollers[0]);
            self->pollers[0] = NULL;
            mq_close(mqd);
            self->mqd = (mqd_t)-1;
            Py_DECREF(name_bytes);
            PyErr_NoMemory();
            return -1;
        }
    }
    self->message = (PyTypeObject *)Py_NewRef(message);
    self->name = name_bytes; /* the reference PyUnicode_FSConverter made */
    self->access = oflag & O_ACCMODE;
    self->twin = (mqd_t)-1;
    self->twin_refused = 0;
    self->reg.state = STATE_OPEN;
    self->state = ST_OPEN;
    link_live(self);
    return 0;
}

/* Close the descriptors now (no call may be in flight). */
static void
release(Channel *self)
{
    if (self->mqd != (mqd_t)-1)
        mq_close(self->mqd);
    if (self->twin != (mqd_t)-1)
        mq_close(self->twin);
    if (self->wakefd != -1)
        close(self->wakefd);
    self->mqd = (mqd_t)-1;
    self->twin = (mqd_t)-1;
    self->wakefd = -1;
    self->state = ST_CLOSED;
    __atomic_store_n(&self->reg.state, STATE_CLOSED, __ATOMIC_RELEASE);
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
    /* A call in flight holds a reference, so none is in flight here. */
    release(self);
    unlink_live(self);
    for (int i = 0; i < 2; i++)
        if (self->pollers[i] != NULL)
            PyThread_free_lock(self->pollers[i]);
    pthread_mutex_destroy(&self->reg.lock);
    Py_CLEAR(self->name);
    Channel_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
closed_error(void)
{
    return set_errno(EBADF);
}

/* ---------------------------------------------------------------- lifetime */

/* close(): release now, or wake the waiters and let the last one release.
 * Returns once no thread sleeps in the kernel on the handle (those the wake
 * signal wakes have left; eventfd pollers and the threads waiting for a
 * poller leave on their own, at once).  A close() interrupted by a signal
 * handler's exception (while a waiter does not leave) can be called again. */
static PyObject *
Channel_close(Channel *self, PyObject *unused)
{
    if (self->state == ST_CLOSED)
        Py_RETURN_NONE;
    if (self->state == ST_OPEN) {
        registry_begin_close(&self->reg); /* no waiter registers from now on */
        if (self->inflight == 0) {
            release(self);
            Py_RETURN_NONE;
        }
        self->state = ST_CLOSING;
        if (self->wakefd != -1) {
            uint64_t one = 1;
            /* Cannot fail short of a full counter (2**64 - 2 closes). */
            if (write(self->wakefd, &one, sizeof one) == -1) {
                /* nothing better to do: waiters also see the state on their next wake-up */
            }
        }
    }
    for (;;) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = registry_wake_all(&self->reg, 0.05);
        Py_END_ALLOW_THREADS
        if (done || self->state == ST_CLOSED)
            Py_RETURN_NONE;
        if (PyErr_CheckSignals() < 0) /* e.g. Ctrl-C while a waiter does not leave */
            return NULL;
    }
}

static void
leave(Channel *self)
{
    if (--self->inflight == 0 && self->state == ST_CLOSING)
        release(self);
}

/* ---------------------------------------------------------------- one attempt */

/* 1: sent; 0: full (EAGAIN); -1: an exception is set. GIL held. */
static int
try_send(Channel *self, const char *data, size_t len, unsigned int priority)
{
    for (;;) {
        if (mq_send(self->mqd, data, len, priority) == 0)
            return 1;
        if (errno == EAGAIN)
            return 0;
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

/* A Message(data, 1, priority); takes the reference to data (NULL: fails). */
static PyObject *
build_message(Channel *self, PyObject *data, unsigned int priority)
{
    PyObject *mtype = PyLong_FromLong(1);
    PyObject *prio = PyLong_FromUnsignedLong(priority);
    PyObject *result = NULL;
    if (data != NULL && mtype != NULL && prio != NULL)
        result = self->message->tp_alloc(self->message, 3);
    if (result == NULL) {
        Py_XDECREF(data);
        Py_XDECREF(mtype);
        Py_XDECREF(prio);
        return NULL;
    }
    /* As tuple.__new__(Message, (data, 1, priority)) builds it: tp_alloc zeroes
     * the object, but tuples that cache their hash (3.14+) mark "not computed"
     * with -1, which tuple's own constructors set. */
#if PY_VERSION_HEX >= 0x030E0000
    ((PyTupleObject *)result)->ob_hash = -1;
#endif
    PyTuple_SET_ITEM(result, 0, data);
    PyTuple_SET_ITEM(result, 1, mtype);
    PyTuple_SET_ITEM(result, 2, prio);
    return result;
}

/* ---------------------------------------------------------------- receive buffers
 *
 * mq_receive wants room for mq_msgsize bytes whatever the message's size, and
 * tells the size only afterwards.  A message is normally received into a
 * buffer (on the stack up to STACK_BUF bytes) and copied into its bytes
 * object.  A large message that (nearly) fills mq_msgsize, as fixed-size
 * records on a queue sized for them do, is instead received straight into a
 * bytes object of mq_msgsize bytes, shrunk to the message when it is shorter
 * (_PyBytes_Resize: a realloc in place), so its bytes are not copied again.
 * "Large": at least DIRECT_MIN bytes and at least 7/8 of mq_msgsize
 * (direct_fit); measured here, shrinking 8 KiB to 4 KiB costs more than
 * copying 4 KiB, while receiving 8 KiB into its object saves ~4% of a
 * receive.  The size being known only afterwards, the choice follows the
 * channel's previous message (recv_large).  A message that is not large but
 * arrived in a bytes object is copied out, and the object serves the next
 * receive of the same call: a call holds at most one such buffer, never more
 * than mq_msgsize bytes besides the messages it returns, and every message
 * returned is shrunk to its size.  Above DIRECT_MAX_BUF bytes of mq_msgsize
 * every message is copied (buffers that large come from mmap). */
#define DIRECT_MIN 1024
#define DIRECT_MAX_BUF 65536

static inline int
direct_fit(Py_ssize_t got, Py_ssize_t msgsize)
{
    return got >= DIRECT_MIN && got >= msgsize - msgsize / 8 && msgsize <= DIRECT_MAX_BUF;
}

typedef struct {
    PyObject *direct; /* a bytes object of mq_msgsize bytes, or NULL */
    char *heap;       /* mq_msgsize bytes when that exceeds STACK_BUF, or NULL */
    char *at;         /* where the last receive wrote */
    char stack[STACK_BUF];
} rbuf;

static void
rbuf_init(rbuf *b)
{
    b->direct = NULL;
    b->heap = NULL;
    b->at = NULL;
}

static void
rbuf_release(rbuf *b)
{
    Py_CLEAR(b->direct);
    if (b->heap != NULL)
        PyMem_Free(b->heap);
    b->heap = NULL;
}

/* Where the next mq_receive writes mq_msgsize bytes at most (GIL held); NULL
 * with MemoryError. */
static char *
rbuf_target(Channel *self, rbuf *b)
{
    if (b->direct == NULL && self->recv_large) {
        b->direct = PyBytes_FromStringAndSize(NULL, self->msgsize);
        if (b->direct == NULL)
            return NULL;
    }
    if (b->direct != NULL)
        return b->at = PyBytes_AS_STRING(b->direct);
    if (self->msgsize <= STACK_BUF)
        return b->at = b->stack;
    if (b->heap == NULL) {
        b->heap = PyMem_Malloc((size_t)self->msgsize);
        if (b->heap == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    return b->at = b->heap;
}

/* The payload of the got bytes the last receive wrote (GIL held): the bytes
 * object it was received into, shrunk, or a copy. NULL with an exception. */
static PyObject *
rbuf_take(Channel *self, rbuf *b, Py_ssize_t got)
{
    int large = direct_fit(got, self->msgsize);
    self->recv_large = large;
    if (large && b->direct != NULL && b->at == PyBytes_AS_STRING(b->direct)) {
        PyObject *data = b->direct;
        b->direct = NULL;
        if (got != self->msgsize && _PyBytes_Resize(&data, got) < 0)
            return NULL;
        return data;
    }
    return PyBytes_FromStringAndSize(b->at, got);
}

/* A Message, Py_None when empty (EAGAIN), or NULL with an exception. GIL held. */
static PyObject *
try_receive(Channel *self)
{
    rbuf b;
    rbuf_init(&b);
    char *buf = rbuf_target(self, &b);
    if (buf == NULL)
        return NULL;
    PyObject *result = NULL;
    unsigned int priority = 0;
    for (;;) {
        ssize_t got = mq_receive(self->mqd, buf, (size_t)self->msgsize, &priority);
        if (got >= 0) {
            result = build_message(self, rbuf_take(self, &b, (Py_ssize_t)got), priority);
            break;
        }
        if (errno == EAGAIN) {
            result = Py_NewRef(Py_None);
            break;
        }
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            break;
        }
        if (PyErr_CheckSignals() < 0)
            break;
    }
    rbuf_release(&b);
    return result;
}

/* ---------------------------------------------------------------- waiting */

/* timeout: None (no limit) or seconds >= 0. 0 on success, -1 with an exception. */
static int
parse_timeout(PyObject *obj, int *forever, struct timespec *deadline)
{
    *forever = 1;
    if (obj == Py_None)
        return 0;
    double t = PyFloat_AsDouble(obj);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (!(t >= 0.0)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be None or a number >= 0");
        return -1;
    }
    if (t >= WAIT_FOREVER)
        return 0;
    *forever = 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double whole = floor(t);
    deadline->tv_sec = now.tv_sec + (time_t)whole;
    deadline->tv_nsec = now.tv_nsec + (long)((t - whole) * 1e9);
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec += 1;
        deadline->tv_nsec -= 1000000000L;
    }
    return 0;
}

static int
ensure_wakefd(Channel *self)
{
    if (self->wakefd == -1) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd == -1) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        self->wakefd = fd;
    }
    return 0;
}

/* What a wait does once the queue is ready: one non-blocking mq_send or
 * mq_receive, made without the GIL (the call is in flight, so the descriptor
 * stays open), so a woken waiter takes its message before it competes for the
 * GIL. */
typedef struct {
    int sending;
    const char *data; /* send */
    size_t len;
    char *buf; /* receive */
    size_t size;
    unsigned int priority; /* send: given; receive: received */
    ssize_t got;
} Attempt;

enum { W_DONE = 1, W_TIMEOUT = 0, W_ERROR = -1, W_CLOSED = 2, W_SIGNAL = 3, W_BUSY = 4 };

/* Without the GIL: poll the queue and the eventfd until the attempt succeeds,
 * the deadline passes, close() writes the eventfd, or a signal arrives (the
 * caller runs the handlers with the GIL and calls again). *err: the errno for
 * W_ERROR. */
static int
wait_nogil(mqd_t mqd, int wakefd, Attempt *a, int forever, const struct timespec *deadline,
           int *err)
{
    struct pollfd fds[2] = {
        {.fd = (int)mqd, .events = a->sending ? POLLOUT : POLLIN, .revents = 0},
        {.fd = wakefd, .events = POLLIN, .revents = 0},
    };
    for (;;) {
        struct timespec left, *timeout = NULL;
        if (!forever) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            left.tv_sec = deadline->tv_sec - now.tv_sec;
            left.tv_nsec = deadline->tv_nsec - now.tv_nsec;
            if (left.tv_nsec < 0) {
                left.tv_sec -= 1;
                left.tv_nsec += 1000000000L;
            }
            if (left.tv_sec < 0)
                return W_TIMEOUT;
            timeout = &left;
        }
        fds[0].revents = fds[1].revents = 0;
        int rc = ppoll(fds, 2, timeout, NULL);
        if (rc == -1) {
            if (errno == EINTR)
                return W_SIGNAL;
            *err = errno;
            return W_ERROR;
        }
        if (fds[1].revents)
            return W_CLOSED;
        if (rc == 0)
            return W_TIMEOUT;
        if (fds[0].revents & POLLNVAL) {
            *err = EBADF;
            return W_ERROR;
        }
        int ok;
        if (a->sending)
            ok = mq_send(mqd, a->data, a->len, a->priority) == 0;
        else {
            a->got = mq_receive(mqd, a->buf, a->size, &a->priority);
            ok = a->got >= 0;
        }
        if (ok)
            return W_DONE;
        if (errno == EINTR)
            return W_SIGNAL;
        if (errno != EAGAIN) {
            *err = errno;
            return W_ERROR;
        }
        /* another thread or process got there first: wait again */
    }
}

/* In flight, with the GIL: wait (see wait_nogil), running signal handlers
 * between waits. W_DONE, W_TIMEOUT, W_CLOSED, or W_ERROR with an exception. */
static int take_poller(Channel *self, PyThread_type_lock poller, int forever,
                       const struct timespec *deadline);

static int poll_attempt(Channel *self, Attempt *a, int forever, const struct timespec *deadline,
                        int signalled);
static int spin_attempt(Channel *self, Attempt *a, int forever, const struct timespec *deadline);
static int block_attempt(Channel *self, mqd_t twin, Attempt *a);
static mqd_t get_twin(Channel *self);

static int
wait_attempt(Channel *self, Attempt *a, int forever, const struct timespec *deadline)
{
    /* Whether close() can wake this thread with the wake signal (else: eventfd). */
    int signalled = wake_usable();
    if (forever && signalled) {
        mqd_t twin = get_twin(self);
        if (twin != (mqd_t)-1)
            return block_attempt(self, twin, a);
    }
    if (!signalled && ensure_wakefd(self) < 0)
        return W_ERROR;
    PyThread_type_lock poller = self->pollers[a->sending];
    int w = take_poller(self, poller, forever, deadline);
    if (w != W_DONE)
        return w;
    w = poll_attempt(self, a, forever, deadline, signalled);
    PyThread_release_lock(poller);
    return w;
}

/* The blocking twin, opened by the first untimed wait (GIL held): -1 when
 * the wait must poll.  The name no longer leading to the queue this handle
 * opened (unlinked, another queue of that name since, or no longer open to
 * this user) is final: the twin is not tried again.  A shortage (no
 * descriptor or memory left) is not: the next untimed wait tries again. */
static mqd_t
get_twin(Channel *self)
{
    if (self->twin != (mqd_t)-1 || self->twin_refused)
        return self->twin;
    mqd_t twin = mq_open(PyBytes_AS_STRING(self->name), self->access | O_CLOEXEC);
    if (twin == (mqd_t)-1) {
        int err = errno;
        if (err != EMFILE && err != ENFILE && err != ENOMEM && err != EINTR)
            self->twin_refused = 1;
        return (mqd_t)-1;
    }
    struct stat mine, theirs;
    if (fstat((int)self->mqd, &mine) == -1 || fstat((int)twin, &theirs) == -1 ||
        mine.st_dev != theirs.st_dev || mine.st_ino != theirs.st_ino) {
        mq_close(twin);
        self->twin_refused = 1;
        return (mqd_t)-1;
    }
    self->twin = twin;
    return twin;
}

/* In flight, GIL held: sleep in mq_receive/mq_send on the twin until done,
 * close() (the wake signal: EINTR, then the closing state), an error, or a
 * signal handler's exception.  The user's signals run their handlers and the
 * call resumes. */
static int
block_attempt(Channel *self, mqd_t twin, Attempt *a)
{
    wake_node node;
    if (registry_enter(&self->reg, &node, 0) < 0)
        return W_CLOSED;
    int w = spin_attempt(self, a, 1, NULL);
    while (w == W_BUSY) {
        /* A signal that arrived before the wait (or while a handler ran) is
         * handled now, not after the next message. */
        if (PyErr_CheckSignals() < 0) {
            w = W_ERROR;
            break;
        }
        int ok = 0, closing = 0, err = 0;
        Py_BEGIN_ALLOW_THREADS
        /* Checked after close() marked the registry: a wake signal that came
         * before this check is seen here, one that comes after it interrupts
         * the call (or is sent again until this thread left). */
        if (!registry_is_open(&self->reg))
            closing = 1;
        else if (a->sending)
            ok = mq_send(twin, a->data, a->len, a->priority) == 0;
        else {
            a->got = mq_receive(twin, a->buf, a->size, &a->priority);
            ok = a->got >= 0;
        }
        err = errno;
        Py_END_ALLOW_THREADS
        if (ok) {
            w = W_DONE; /* even if close() began meanwhile: nothing is lost */
            break;
        }
        if (closing) {
            w = W_CLOSED;
            break;
        }
        if (err != EINTR) {
            set_errno(err);
            w = W_ERROR;
            break;
        }
    }
    registry_leave(&self->reg, &node);
    return w;
}

/* In flight and registered (close() wakes it), GIL held: before the wait
 * sleeps, retry the attempt without blocking on the queue descriptor, without
 * the GIL, for as long as _spin.h allows (never past the deadline).  W_DONE,
 * W_CLOSED, W_ERROR (an exception is set: a failure, or a signal handler's
 * exception), or W_BUSY: not done, sleep now.  The signal handlers run before
 * it returns W_BUSY, so a signal that came during the spin is not left
 * pending through the sleep. */
static int
spin_attempt(Channel *self, Attempt *a, int forever, const struct timespec *deadline)
{
    long left = -1;
    if (!forever) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left = (long)(deadline->tv_sec - now.tv_sec) * 1000000000L +
               (deadline->tv_nsec - now.tv_nsec);
        if (left <= 0)
            return W_BUSY;
    }
    spin_budget *budget = &self->spin[a->sending];
    long limit = spin_limit(budget, left);
    if (limit <= 0)
        return W_BUSY;
    int ok = 0, closing = 0, err = 0;
    mqd_t mqd = self->mqd;
    Py_BEGIN_ALLOW_THREADS
    long start = spin_now_ns();
    do {
        if (!registry_is_open(&self->reg)) {
            closing = 1;
            break;
        }
        if (a->sending)
            ok = mq_send(mqd, a->data, a->len, a->priority) == 0;
        else {
            a->got = mq_receive(mqd, a->buf, a->size, &a->priority);
            ok = a->got >= 0;
        }
        if (ok)
            break;
        err = errno;
    } while (err == EAGAIN && spin_again(start, limit));
    Py_END_ALLOW_THREADS
    if (ok) {
        spin_result(budget, 1);
        return W_DONE;
    }
    if (closing)
        return W_CLOSED;
    if (err == EAGAIN)
        spin_result(budget, 0);
    else if (err != EINTR) {
        set_errno(err);
        return W_ERROR;
    }
    if (PyErr_CheckSignals() < 0)
        return W_ERROR;
    return W_BUSY;
}

/* Wait, without the GIL, to become the direction's poller: W_DONE (the lock
 * is held), W_TIMEOUT, W_CLOSED (close() woke the poller, which let the lock
 * go), or W_ERROR (a signal handler raised). */
static int
take_poller(Channel *self, PyThread_type_lock poller, int forever,
            const struct timespec *deadline)
{
    for (;;) {
        PY_TIMEOUT_T us = -1;
        if (!forever) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            double left = (double)(deadline->tv_sec - now.tv_sec) +
                          (double)(deadline->tv_nsec - now.tv_nsec) / 1e9;
            if (left <= 0)
                return W_TIMEOUT;
            double limit = (double)PY_TIMEOUT_MAX / 1e6;
            us = (PY_TIMEOUT_T)((left < limit ? left : limit) * 1e6);
        }
        PyLockStatus got;
        Py_BEGIN_ALLOW_THREADS
        got = PyThread_acquire_lock_timed(poller, us, 1);
        Py_END_ALLOW_THREADS
        if (got == PY_LOCK_ACQUIRED) {
            if (self->state == ST_OPEN)
                return W_DONE;
            PyThread_release_lock(poller);
            return W_CLOSED;
        }
        if (self->state != ST_OPEN)
            return W_CLOSED;
        if (got == PY_LOCK_FAILURE)
            return W_TIMEOUT;
        if (PyErr_CheckSignals() < 0) /* PY_LOCK_INTR: a signal; a handler may raise */
            return W_ERROR;
    }
}

static int poll_loop(Channel *self, Attempt *a, int forever, const struct timespec *deadline,
                     int wakefd);

/* As the direction's poller: poll and attempt until done, timed out or
 * closed.  signalled: close() wakes this thread with the wake signal (it
 * registers), else with the eventfd. */
static int
poll_attempt(Channel *self, Attempt *a, int forever, const struct timespec *deadline,
             int signalled)
{
    if (!signalled)
        return poll_loop(self, a, forever, deadline, self->wakefd);
    wake_node node;
    if (registry_enter(&self->reg, &node, 0) < 0)
        return W_CLOSED;
    int w = spin_attempt(self, a, forever, deadline);
    if (w == W_BUSY)
        w = poll_loop(self, a, forever, deadline, -1); /* poll() ignores a negative fd */
    registry_leave(&self->reg, &node);
    return w;
}

static int
poll_loop(Channel *self, Attempt *a, int forever, const struct timespec *deadline, int wakefd)
{
    for (;;) {
        int w, err = 0;
        mqd_t mqd = self->mqd;
        Py_BEGIN_ALLOW_THREADS
        w = wait_nogil(mqd, wakefd, a, forever, deadline, &err);
        Py_END_ALLOW_THREADS
        if (w == W_DONE || w == W_TIMEOUT)
            return w;
        if (self->state != ST_OPEN)
            return W_CLOSED;
        if (w == W_CLOSED) { /* readable while open: not our close(); drain it */
            uint64_t count;
            if (read(wakefd, &count, sizeof count) == -1) {
                /* EAGAIN: another waiter drained it first */
            }
            continue;
        }
        if (w == W_ERROR) {
            set_errno(err);
            return W_ERROR;
        }
        if (PyErr_CheckSignals() < 0) /* a handler raised: nothing was taken or sent */
            return W_ERROR;
        if (self->state != ST_OPEN) /* a handler closed the handle */
            return W_CLOSED;
    }
}

static int
check_send_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, unsigned int *priority)
{
    if (nargs != want || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        want == 3 ? "send_nowait(data: bytes, mtype: int, priority: int)"
                                  : "send_wait(data: bytes, mtype: int, priority: int, timeout)");
        return -1;
    }
    unsigned long value = PyLong_AsUnsignedLong(args[2]);
    if (value == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (value > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "priority out of range");
        return -1;
    }
    *priority = (unsigned int)value;
    return 0;
}

/* send_nowait(data: bytes, mtype: int, priority: int) -> bool */
static PyObject *
Channel_send_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned int priority;
    if (check_send_args(args, nargs, 3, &priority) < 0)
        return NULL;
    if (self->state != ST_OPEN)
        return closed_error();
    int rc = try_send(self, PyBytes_AS_STRING(args[0]), (size_t)PyBytes_GET_SIZE(args[0]),
                      priority);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc);
}

/* receive_nowait(mtype: int) -> Message | None */
static PyObject *
Channel_receive_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "receive_nowait(mtype: int)");
        return NULL;
    }
    if (self->state != ST_OPEN)
        return closed_error();
    return try_receive(self);
}

/* receive_spin(mtype: int, ns: int) -> Message | None: receive_nowait retried
 * for up to ns nanoseconds (sched_yield between tries, without the GIL; the
 * call is in flight, so the descriptor stays open); None when nothing came or
 * close() began meanwhile. For a caller that would otherwise sleep although
 * it has nothing else to do: unimq.aio's task, when its event loop has no
 * other task ready to run (a reply on its way is taken without a trip
 * through the loop's poller). */
static PyObject *
Channel_receive_spin(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "receive_spin(mtype: int, ns: int)");
        return NULL;
    }
    long ns = PyLong_AsLong(args[1]);
    if (ns == -1 && PyErr_Occurred())
        return NULL;
    if (self->state != ST_OPEN)
        return closed_error();
    rbuf b;
    rbuf_init(&b);
    char *buf = rbuf_target(self, &b);
    if (buf == NULL)
        return NULL;
    mqd_t mqd = self->mqd;
    size_t size = (size_t)self->msgsize;
    unsigned int priority = 0;
    ssize_t got;
    int err = EAGAIN;
    self->inflight++;
    Py_BEGIN_ALLOW_THREADS
    long start = spin_now_ns();
    for (;;) {
        got = mq_receive(mqd, buf, size, &priority);
        if (got >= 0)
            break;
        err = errno;
        if ((err != EAGAIN && err != EINTR) || !registry_is_open(&self->reg) ||
            !spin_again(start, ns))
            break;
    }
    Py_END_ALLOW_THREADS
    leave(self);
    PyObject *result;
    if (got >= 0)
        result = build_message(self, rbuf_take(self, &b, (Py_ssize_t)got), priority);
    else if (err == EAGAIN)
        result = Py_NewRef(Py_None);
    else if (err == EINTR)
        result = PyErr_CheckSignals() < 0 ? NULL : Py_NewRef(Py_None);
    else
        result = set_errno(err);
    rbuf_release(&b);
    return result;
}

/* send_wait(data, mtype, priority, timeout: float | None) -> bool
 * False when the time ran out or close() woke the call. */
static PyObject *
Channel_send_wait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned int priority;
    int forever;
    struct timespec deadline;
    if (check_send_args(args, nargs, 4, &priority) < 0 ||
        parse_timeout(args[3], &forever, &deadline) < 0)
        return NULL;
    if (self->state != ST_OPEN)
        Py_RETURN_FALSE;
    Attempt a = {.sending = 1,
                 .data = PyBytes_AS_STRING(args[0]), /* immutable, kept alive by args */
                 .len = (size_t)PyBytes_GET_SIZE(args[0]),
                 .priority = priority};
    /* No attempt first: the core made one (send_nowait) just before; the
     * poll returns at once if there is room now (and the twin's mq_send
     * sends at once). */
    self->inflight++;
    int w = wait_attempt(self, &a, forever, &deadline);
    leave(self);
    if (w == W_ERROR)
        return NULL;
    return PyBool_FromLong(w == W_DONE);
}

/* receive_wait(mtype, timeout: float | None) -> Message | None
 * None when the time ran out or close() woke the call. */
static PyObject *
Channel_receive_wait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    int forever;
    struct timespec deadline;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "receive_wait(mtype: int, timeout: float | None)");
        return NULL;
    }
    if (parse_timeout(args[1], &forever, &deadline) < 0)
        return NULL;
    if (self->state != ST_OPEN)
        Py_RETURN_NONE;
    PyObject *result;
    /* No attempt first: the core made one (receive_nowait) just before; the
     * poll (or the twin's mq_receive) returns at once if a message is waiting.
     * The buffer belongs to this call: the wait writes it without the GIL. */
    rbuf b;
    rbuf_init(&b);
    Attempt a = {.sending = 0, .buf = rbuf_target(self, &b), .size = (size_t)self->msgsize};
    if (a.buf == NULL)
        return NULL;
    self->inflight++;
    int w = wait_attempt(self, &a, forever, &deadline);
    leave(self);
    if (w == W_DONE)
        result = build_message(self, rbuf_take(self, &b, (Py_ssize_t)a.got), a.priority);
    else
        result = w == W_ERROR ? NULL : Py_NewRef(Py_None);
    rbuf_release(&b);
    return result;
}

/* ---------------------------------------------------------------- state */

/* fileno() -> int: the queue descriptor (valid until close). */
static PyObject *
Channel_fileno(Channel *self, PyObject *unused)
{
    if (self->state != ST_OPEN)
        return closed_error();
    return PyLong_FromLong((long)self->mqd);
}

/* stat() -> (curmsgs, st_mode, st_uid, st_gid, qsize or -1) */
static PyObject *
Channel_stat(Channel *self, PyObject *unused)
{
    if (self->state != ST_OPEN)
        return closed_error();
    struct mq_attr attr;
    struct stat st;
    if (mq_getattr(self->mqd, &attr) == -1 || fstat((int)self->mqd, &st) == -1)
        return PyErr_SetFromErrno(PyExc_OSError);
    long long qsize = -1;
    char line[129];
    ssize_t n = pread((int)self->mqd, line, sizeof line - 1, 0); /* EBADF when write-only */
    if (n > 0) {
        line[n] = '\0';
        const char *at = strstr(line, "QSIZE:");
        char *end;
        if (at != NULL) {
            long long value = strtoll(at + 6, &end, 10);
            if (end != at + 6)
                qsize = value;
        }
    }
    return Py_BuildValue("(lIIIL)", (long)attr.mq_curmsgs, (unsigned int)st.st_mode,
                         (unsigned int)st.st_uid, (unsigned int)st.st_gid, qsize);
}

/* ---------------------------------------------------------------- notify */

static void
notify_thread(union sigval value)
{
    PyObject *callback = (PyObject *)value.sival_ptr;
#if PY_VERSION_HEX >= 0x030D0000
    if (Py_IsFinalizing())
        return;
#else
    if (_Py_IsFinalizing())
        return;
#endif
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *result = PyObject_CallNoArgs(callback);
    if (result == NULL)
        PyErr_WriteUnraisable(callback);
    else
        Py_DECREF(result);
    Py_DECREF(callback); /* the reference the registration took */
    PyGILState_Release(gil);
}

/* notify(None | signal number | callable): mq_notify. A callable runs once,
 * with no arguments, in a new thread; a registration that is cancelled or
 * replaced before it fires keeps its reference to the callable. */
static PyObject *
Channel_notify(Channel *self, PyObject *arg)
{
    if (self->state != ST_OPEN)
        return closed_error();
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    /* This process's own registration is replaced: cancel it first (the
     * kernel would say EBUSY). Another process's stays, and EBUSY follows. */
    if (mq_notify(self->mqd, NULL) == -1)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (arg == Py_None)
        Py_RETURN_NONE;
    if (PyLong_Check(arg)) {
        long signo = PyLong_AsLong(arg);
        if (signo == -1 && PyErr_Occurred())
            return NULL;
        if (signo < 1 || signo >= NSIG) {
            PyErr_Format(PyExc_ValueError, "signal must be 1..%d", NSIG - 1);
            return NULL;
        }
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = (int)signo;
        if (mq_notify(self->mqd, &ev) == -1)
            return PyErr_SetFromErrno(PyExc_OSError);
        Py_RETURN_NONE;
    }
    if (!PyCallable_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "notify() takes None, a signal number or a callable");
        return NULL;
    }
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = notify_thread;
    ev.sigev_value.sival_ptr = Py_NewRef(arg);
    if (mq_notify(self->mqd, &ev) == -1) {
        int err = errno;
        Py_DECREF(arg);
        return set_errno(err);
    }
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- type */

static PyObject *
Channel_get_max_messages(Channel *self, void *closure)
{
    return PyLong_FromLong(self->maxmsg);
}

static PyObject *
Channel_get_max_message_size(Channel *self, void *closure)
{
    return PyLong_FromSsize_t(self->msgsize);
}

static PyObject *
Channel_get_closed(Channel *self, void *closure)
{
    return PyBool_FromLong(self->state != ST_OPEN);
}

static PyObject *
Channel_get_inflight(Channel *self, void *closure)
{
    return PyLong_FromLong((long)self->inflight);
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
Channel_get_twin(Channel *self, void *closure)
{
    if (self->twin != (mqd_t)-1)
        return PyUnicode_FromString("open");
    return PyUnicode_FromString(self->twin_refused ? "refused" : "none");
}

static PyGetSetDef Channel_getset[] = {
    {"waiters", (getter)Channel_get_waiters, NULL,
     "Threads the wake signal wakes, waiting in this channel now.", NULL},
    {"inflight", (getter)Channel_get_inflight, NULL,
     "Calls of this channel running now without the GIL (close() waits for them).", NULL},
    {"twin", (getter)Channel_get_twin, NULL,
     "The blocking twin: 'none' (not yet), 'open', or 'refused' (waits poll).", NULL},
    {"max_messages", (getter)Channel_get_max_messages, NULL, "mq_maxmsg", NULL},
    {"max_message_size", (getter)Channel_get_max_message_size, NULL, "mq_msgsize", NULL},
    {"closed", (getter)Channel_get_closed, NULL, "whether close() was called", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* Batches: defined at the end of the file. */
static PyObject *Channel_send_many_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs);
static PyObject *Channel_receive_many_nowait(Channel *self, PyObject *const *args,
                                             Py_ssize_t nargs);

static PyMethodDef Channel_methods[] = {
    {"send_nowait", (PyCFunction)(void (*)(void))Channel_send_nowait, METH_FASTCALL,
     "send_nowait(data, mtype, priority) -> bool: one non-blocking mq_send."},
    {"receive_nowait", (PyCFunction)(void (*)(void))Channel_receive_nowait, METH_FASTCALL,
     "receive_nowait(mtype) -> Message | None: one non-blocking mq_receive."},
    {"receive_spin", (PyCFunction)(void (*)(void))Channel_receive_spin, METH_FASTCALL,
     "receive_spin(mtype, ns) -> Message | None: receive_nowait retried for up to ns."},
    {"send_wait", (PyCFunction)(void (*)(void))Channel_send_wait, METH_FASTCALL,
     "send_wait(data, mtype, priority, timeout) -> bool: wait for room, then send."},
    {"receive_wait", (PyCFunction)(void (*)(void))Channel_receive_wait, METH_FASTCALL,
     "receive_wait(mtype, timeout) -> Message | None: wait for a message, then take it."},
    {"send_many_nowait", (PyCFunction)(void (*)(void))Channel_send_many_nowait, METH_FASTCALL,
     "send_many_nowait(batch, start) -> int: non-blocking mq_send of batch[start:] until full."},
    {"receive_many_nowait", (PyCFunction)(void (*)(void))Channel_receive_many_nowait,
     METH_FASTCALL,
     "receive_many_nowait(mtype, limit) -> list[Message]: non-blocking mq_receive, up to limit."},
    {"close", (PyCFunction)Channel_close, METH_NOARGS,
     "close(): release the descriptors; wakes waiters, the last one to leave releases."},
    {"fileno", (PyCFunction)Channel_fileno, METH_NOARGS, "The queue descriptor."},
    {"stat", (PyCFunction)Channel_stat, METH_NOARGS,
     "stat() -> (curmsgs, st_mode, st_uid, st_gid, qsize or -1)."},
    {"notify", (PyCFunction)Channel_notify, METH_O,
     "notify(None | signal | callable): mq_notify."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "unimq_posix._fast.Channel",
    .tp_doc = "One POSIX message queue descriptor, owned: non-blocking attempts, waits that "
              "close() wakes, and OSError with the real errno.",
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

/* unlink(name): mq_unlink, OSError with the real errno. */
static PyObject *
fast_unlink(PyObject *module, PyObject *arg)
{
    PyObject *name_bytes = NULL;
    if (!PyUnicode_FSConverter(arg, &name_bytes))
        return NULL;
    int rc = mq_unlink(PyBytes_AS_STRING(name_bytes));
    int err = errno;
    Py_DECREF(name_bytes);
    if (rc == -1)
        return set_errno(err);
    Py_RETURN_NONE;
}

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
    {"unlink", (PyCFunction)fast_unlink, METH_O, "unlink(name): mq_unlink."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "unimq_posix._fast",
    .m_doc = "Optional C channel for unimq's POSIX backend.",
    .m_size = -1,
    .m_methods = fast_functions,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    spin_setup();
    if (PyType_Ready(&ChannelType) < 0)
        return NULL;
    if (pthread_atfork(NULL, NULL, after_fork_child) != 0) {
        PyErr_SetString(PyExc_ImportError, "pthread_atfork failed");
        return NULL;
    }
    PyObject *m = PyModule_Create(&fast_module);
    if (m == NULL)
        return NULL;
    if (wake_signo == 0)
        wake_signo = wake_install();
    if (PyModule_AddObjectRef(m, "Channel", (PyObject *)&ChannelType) < 0 ||
        PyModule_AddIntConstant(m, "WAKE_SIGNAL", wake_signo) < 0 ||
        PyModule_AddIntConstant(m, "DIRECT_MIN", DIRECT_MIN) < 0 ||
        PyModule_AddIntConstant(m, "DIRECT_MAX_BUF", DIRECT_MAX_BUF) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* ---------------------------------------------------------------- batches
 *
 * One call per batch: non-blocking mq_send/mq_receive in a loop, with the GIL
 * held like send_nowait/receive_nowait (so close() cannot run in between and
 * no call is in flight). */

/* Raise OSError(err) carrying unimq_sent = sent: how many messages of the
 * batch went before it (the core adds it to the error's .sent). */
static PyObject *
batch_error(int err, Py_ssize_t sent)
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

/* Attach unimq_sent = sent to the exception being raised. */
static void
batch_mark(Py_ssize_t sent)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *count = PyLong_FromSsize_t(sent);
    if (count != NULL && value != NULL) {
        if (PyObject_SetAttrString(value, "unimq_sent", count) < 0)
            PyErr_Clear();
    }
    Py_XDECREF(count);
    PyErr_Restore(type, value, tb);
}

/* send_many_nowait(batch: list[tuple[bytes, int, int]], start: int) -> int
 *
 * mq_send batch[start:] in order until one finds the queue full (EAGAIN);
 * returns how many went. Any other failure after k messages went raises
 * OSError with .unimq_sent == k. */
static PyObject *
Channel_send_many_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send_many_nowait(batch: list, start: int)");
        return NULL;
    }
    PyObject *batch = args[0];
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (start < 0 || start > PyList_GET_SIZE(batch)) {
        PyErr_SetString(PyExc_ValueError, "start must be 0..len(batch)");
        return NULL;
    }
    if (self->state != ST_OPEN)
        return closed_error();
    Py_ssize_t n = start;
    for (; n < PyList_GET_SIZE(batch); n++) {
        PyObject *item = PyList_GET_ITEM(batch, n);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 0))) {
            PyErr_Format(PyExc_TypeError,
                         "a batch item must be a (data: bytes, mtype, priority) tuple, not %.100s",
                         Py_TYPE(item)->tp_name);
            goto failed;
        }
        unsigned long value = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(item, 2));
        if (value == (unsigned long)-1 && PyErr_Occurred())
            goto failed;
        if (value > UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "priority out of range");
            goto failed;
        }
        PyObject *data = PyTuple_GET_ITEM(item, 0);
        for (;;) {
            if (mq_send(self->mqd, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data),
                        (unsigned int)value) == 0)
                break;
            int err = errno;
            if (err == EAGAIN)
                return PyLong_FromSsize_t(n - start);
            if (err != EINTR)
                return batch_error(err, n - start);
            if (PyErr_CheckSignals() < 0)
                goto failed;
        }
    }
    return PyLong_FromSsize_t(n - start);
failed:
    if (n > start)
        batch_mark(n - start);
    return NULL;
}

/* receive_many_nowait(mtype: int, limit: int) -> list[Message]
 *
 * mq_receive up to limit messages (see rbuf for where each is received),
 * until the queue is empty. A failure after k messages were taken returns
 * those k (it recurs on the next call): a taken message is never lost. */
static PyObject *
Channel_receive_many_nowait(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "receive_many_nowait(mtype: int, limit: int)");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (self->state != ST_OPEN)
        return closed_error();
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    rbuf b;
    rbuf_init(&b);
    while (PyList_GET_SIZE(out) < limit) {
        char *buf = rbuf_target(self, &b);
        if (buf == NULL) {
            if (PyList_GET_SIZE(out) > 0)
                PyErr_Clear(); /* no memory for another message: return those taken */
            else
                Py_SETREF(out, NULL);
            break;
        }
        unsigned int priority = 0;
        ssize_t got = mq_receive(self->mqd, buf, (size_t)self->msgsize, &priority);
        if (got < 0) {
            int err = errno;
            if (err == EAGAIN || PyList_GET_SIZE(out) > 0)
                break; /* empty; or a failure that the next call reports */
            if (err == EINTR) {
                if (PyErr_CheckSignals() < 0) {
                    Py_SETREF(out, NULL);
                    break;
                }
                continue;
            }
            Py_SETREF(out, set_errno(err));
            break;
        }
        PyObject *msg = build_message(self, rbuf_take(self, &b, (Py_ssize_t)got), priority);
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
