/*
 * unimq_sysv._fast: the send/receive hot path of SysVQueue in C (optional).
 *
 * A Channel is bound to one msqid and mirrors sysv_ipc.MessageQueue's
 * send(message, block, type) and receive(block, type), raising the same
 * sysv_ipc exception classes for the same errno values, so the backend keeps
 * one error mapping whichever path runs.  What it saves per call, compared
 * with sysv_ipc:
 *   - positional fast-call arguments instead of keyword parsing;
 *   - no malloc/free per message: messages up to STACK_BUF bytes are built
 *     and received in a stack buffer;
 *   - a non-blocking attempt first, holding the GIL (the syscall does not
 *     wait); the GIL is released only when the call has to block;
 *   - timed waits (the kernel has none for SysV) poll with IPC_NOWAIT and
 *     sleep with backoff in C, without the GIL: an idle waiter costs a
 *     syscall pair per wake-up instead of a Python loop iteration.
 * Without a C compiler the package still installs and the backend uses
 * sysv_ipc directly (pure-Python fallback, same behaviour).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/types.h>
#include <time.h>

#define STACK_BUF 8192

typedef struct {
    PyObject_HEAD
    int msqid;
    Py_ssize_t bufsize;  /* receive buffer: the largest message accepted */
    PyObject *busy;        /* sysv_ipc.BusyError: EAGAIN (send), ENOMSG (receive) */
    PyObject *existential; /* sysv_ipc.ExistentialError: EIDRM (and EINVAL on receive) */
    PyObject *permissions; /* sysv_ipc.PermissionsError: EACCES */
    PyObject *base;        /* sysv_ipc.Error: EINTR */
    PyTypeObject *message; /* unimq.Message, a 3-tuple subclass (data, mtype, priority) */
} Channel;

struct msg {
    long mtype;
    char mtext[STACK_BUF];
};

static int
Channel_init(Channel *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"msqid",       "bufsize", "busy",    "existential",
                             "permissions", "base",    "message", NULL};
    PyObject *busy, *existential, *permissions, *base, *message;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "inOOOOO!", kwlist, &self->msqid,
                                     &self->bufsize, &busy, &existential, &permissions, &base,
                                     &PyType_Type, &message))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)message, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "message must be a tuple subclass");
        return -1;
    }
    Py_XSETREF(self->message, (PyTypeObject *)Py_NewRef(message));
    if (self->bufsize < 0) {
        PyErr_SetString(PyExc_ValueError, "bufsize must be >= 0");
        return -1;
    }
    Py_XSETREF(self->busy, Py_NewRef(busy));
    Py_XSETREF(self->existential, Py_NewRef(existential));
    Py_XSETREF(self->permissions, Py_NewRef(permissions));
    Py_XSETREF(self->base, Py_NewRef(base));
    return 0;
}

static int
Channel_traverse(Channel *self, visitproc visit, void *arg)
{
    Py_VISIT(self->busy);
    Py_VISIT(self->existential);
    Py_VISIT(self->permissions);
    Py_VISIT(self->base);
    Py_VISIT(self->message);
    return 0;
}

static int
Channel_clear(Channel *self)
{
    Py_CLEAR(self->busy);
    Py_CLEAR(self->existential);
    Py_CLEAR(self->permissions);
    Py_CLEAR(self->base);
    Py_CLEAR(self->message);
    return 0;
}

static void
Channel_dealloc(Channel *self)
{
    PyObject_GC_UnTrack(self);
    Channel_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Raise what sysv_ipc raises for this errno (see the module comment). */
static PyObject *
raise_errno(Channel *self, int err, int receiving)
{
    PyObject *cls = NULL;
    const char *text = NULL;
    switch (err) {
    case EACCES:
        cls = self->permissions;
        text = "Permission denied";
        break;
    case EAGAIN:
        cls = self->busy;
        text = "The queue is full";
        break;
    case ENOMSG:
        cls = self->busy;
        text = "No available messages of the specified type";
        break;
    case EIDRM:
        cls = self->existential;
        text = "The queue no longer exists";
        break;
    case EINVAL:
        if (receiving) {
            cls = self->existential;
            text = "The queue no longer exists";
        }
        break;
    case EINTR:
        cls = self->base;
        text = "Signaled while waiting";
        break;
    }
    if (cls == NULL) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyErr_SetString(cls, text);
    return NULL;
}

/* A Message(data, mtype, priority), as tuple.__new__(Message, ...) builds it;
 * takes the three new references, even on failure. */
static PyObject *
new_message(PyTypeObject *type, PyObject *data, PyObject *mtype, PyObject *priority)
{
    PyObject *msg = NULL;
    if (data != NULL && mtype != NULL && priority != NULL)
        msg = type->tp_alloc(type, 3);
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
        m = PyMem_Malloc(offsetof(struct msg, mtext) + (size_t)len);
        if (m == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    m->mtype = mtype;
    memcpy(m->mtext, PyBytes_AS_STRING(data), (size_t)len);
    return m;
}

/* A receive buffer of self->bufsize bytes: *stack when it fits, else the heap. */
static struct msg *
receive_buffer(Channel *self, struct msg *stack)
{
    if (self->bufsize <= STACK_BUF)
        return stack;
    struct msg *m = PyMem_Malloc(offsetof(struct msg, mtext) + (size_t)self->bufsize);
    if (m == NULL)
        PyErr_NoMemory();
    return m;
}

static void
release_buffer(struct msg *m, struct msg *stack)
{
    if (m != stack)
        PyMem_Free(m);
}

/* The Message for a received body of got bytes. */
static PyObject *
received(Channel *self, struct msg *m, ssize_t got)
{
    return new_message(self->message, PyBytes_FromStringAndSize(m->mtext, got),
                       PyLong_FromLong(m->mtype), PyLong_FromLong(0));
}

/* send(message: bytes, block: bool, mtype: int) -> None */
static PyObject *
Channel_send(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "send(message: bytes, block: bool, mtype: int)");
        return NULL;
    }
    int block = PyObject_IsTrue(args[1]);
    if (block < 0)
        return NULL;
    long mtype = PyLong_AsLong(args[2]);
    if (mtype == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    struct msg stack;
    struct msg *m = send_buffer(args[0], mtype, &stack);
    if (m == NULL)
        return NULL;
    int rc = msgsnd(self->msqid, m, (size_t)len, IPC_NOWAIT);
    int err = errno;
    if (rc == -1 && err == EAGAIN && block) {
        Py_BEGIN_ALLOW_THREADS
        rc = msgsnd(self->msqid, m, (size_t)len, 0);
        err = errno;
        Py_END_ALLOW_THREADS
    }
    release_buffer(m, &stack);
    if (rc == -1)
        return raise_errno(self, err, 0);
    Py_RETURN_NONE;
}

/* receive(block: bool, mtype: int) -> Message(data, mtype, 0) */
static PyObject *
Channel_receive(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "receive(block: bool, mtype: int)");
        return NULL;
    }
    int block = PyObject_IsTrue(args[0]);
    if (block < 0)
        return NULL;
    long mtype = PyLong_AsLong(args[1]);
    if (mtype == -1 && PyErr_Occurred())
        return NULL;
    struct msg stack;
    struct msg *m = receive_buffer(self, &stack);
    if (m == NULL)
        return NULL;
    ssize_t got = msgrcv(self->msqid, m, (size_t)self->bufsize, mtype, IPC_NOWAIT);
    int err = errno;
    if (got == -1 && err == ENOMSG && block) {
        Py_BEGIN_ALLOW_THREADS
        got = msgrcv(self->msqid, m, (size_t)self->bufsize, mtype, 0);
        err = errno;
        Py_END_ALLOW_THREADS
    }
    PyObject *result = NULL;
    if (got == -1) {
        raise_errno(self, err, 1);
    }
    else {
        result = received(self, m, got);
    }
    release_buffer(m, &stack);
    return result;
}

static double
monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Without the GIL: sleep min(*delay, time left) and double *delay up to cap.
 * Returns 1 (without sleeping) once the deadline has passed. A signal cuts
 * the sleep short; the caller then runs Python's handlers. */
static int
backoff_sleep(double end, double *delay, double cap)
{
    double left = end - monotonic();
    if (left <= 0)
        return 1;
    double d = *delay < left ? *delay : left;
    struct timespec ts;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
    *delay = *delay * 2 < cap ? *delay * 2 : cap;
    return 0;
}

/* The timing arguments of the wait_* methods: timeout, first sleep, cap (s). */
static int
parse_timing(PyObject *const *args, double *end, double *delay, double *cap)
{
    double timeout = PyFloat_AsDouble(args[0]);
    *delay = PyFloat_AsDouble(args[1]);
    *cap = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred())
        return -1;
    if (!(timeout >= 0 && *delay > 0 && *cap >= *delay)) {
        PyErr_SetString(PyExc_ValueError, "need timeout >= 0 and 0 < start <= cap");
        return -1;
    }
    *end = monotonic() + timeout;
    return 0;
}

/* One IPC_NOWAIT try: msgsnd of len body bytes, or msgrcv into len bytes. */
typedef ssize_t (*attempt_fn)(int msqid, struct msg *m, size_t len, long mtype);

static ssize_t
try_send(int msqid, struct msg *m, size_t len, long mtype)
{
    (void)mtype; /* already in m */
    return msgsnd(msqid, m, len, IPC_NOWAIT) == 0 ? 0 : -1;
}

static ssize_t
try_receive(int msqid, struct msg *m, size_t len, long mtype)
{
    return msgrcv(msqid, m, len, mtype, IPC_NOWAIT);
}

#define POLL_ERROR -1   /* a Python exception is set */
#define POLL_EXPIRED -2 /* the deadline passed */

/* Try, and while the queue is busy (EAGAIN full / ENOMSG empty) sleep with
 * backoff without the GIL, running Python's signal handlers after each
 * wake-up. Returns what attempt returned (>= 0), POLL_ERROR or POLL_EXPIRED. */
static ssize_t
poll_with_backoff(Channel *self, attempt_fn attempt, struct msg *m, size_t len, long mtype,
                  int busy, double end, double delay, double cap)
{
    for (;;) {
        ssize_t got;
        int err, expired = 0;
        Py_BEGIN_ALLOW_THREADS
        got = attempt(self->msqid, m, len, mtype);
        err = errno;
        if (got == -1 && err == busy)
            expired = backoff_sleep(end, &delay, cap);
        Py_END_ALLOW_THREADS
        if (got >= 0)
            return got;
        if (err != busy && err != EINTR) {
            raise_errno(self, err, busy == ENOMSG);
            return POLL_ERROR;
        }
        if (PyErr_CheckSignals() < 0)
            return POLL_ERROR;
        if (expired)
            return POLL_EXPIRED;
    }
}

/* wait_send(message: bytes, mtype: int, timeout: float, start: float, cap: float)
 *     -> bool: False when the queue stayed full for timeout seconds. */
static PyObject *
Channel_wait_send(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "wait_send(message: bytes, mtype: int, timeout, start, cap)");
        return NULL;
    }
    long mtype = PyLong_AsLong(args[1]);
    if (mtype == -1 && PyErr_Occurred())
        return NULL;
    double end, delay, cap;
    if (parse_timing(args + 2, &end, &delay, &cap) < 0)
        return NULL;
    struct msg stack;
    struct msg *m = send_buffer(args[0], mtype, &stack);
    if (m == NULL)
        return NULL;
    ssize_t rc = poll_with_backoff(self, try_send, m, (size_t)PyBytes_GET_SIZE(args[0]), mtype,
                                   EAGAIN, end, delay, cap);
    release_buffer(m, &stack);
    if (rc == POLL_ERROR)
        return NULL;
    return PyBool_FromLong(rc != POLL_EXPIRED);
}

/* wait_receive(mtype: int, timeout: float, start: float, cap: float)
 *     -> Message | None: None when no matching message came in timeout seconds. */
static PyObject *
Channel_wait_receive(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "wait_receive(mtype: int, timeout, start, cap)");
        return NULL;
    }
    long mtype = PyLong_AsLong(args[0]);
    if (mtype == -1 && PyErr_Occurred())
        return NULL;
    double end, delay, cap;
    if (parse_timing(args + 1, &end, &delay, &cap) < 0)
        return NULL;
    struct msg stack;
    struct msg *m = receive_buffer(self, &stack);
    if (m == NULL)
        return NULL;
    ssize_t got = poll_with_backoff(self, try_receive, m, (size_t)self->bufsize, mtype, ENOMSG,
                                    end, delay, cap);
    PyObject *result = NULL;
    if (got == POLL_EXPIRED)
        result = Py_NewRef(Py_None);
    else if (got >= 0)
        result = received(self, m, got);
    release_buffer(m, &stack);
    return result;
}

static PyMethodDef Channel_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Channel_send, METH_FASTCALL,
     "send(message, block, mtype): msgsnd; raises sysv_ipc's exception classes."},
    {"receive", (PyCFunction)(void (*)(void))Channel_receive, METH_FASTCALL,
     "receive(block, mtype) -> Message: msgrcv; raises sysv_ipc's exception classes."},
    {"wait_send", (PyCFunction)(void (*)(void))Channel_wait_send, METH_FASTCALL,
     "wait_send(message, mtype, timeout, start, cap) -> bool: poll msgsnd with backoff."},
    {"wait_receive", (PyCFunction)(void (*)(void))Channel_wait_receive, METH_FASTCALL,
     "wait_receive(mtype, timeout, start, cap) -> Message | None: poll msgrcv with backoff."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "unimq_sysv._fast.Channel",
    .tp_doc = "msgsnd/msgrcv on one msqid, with sysv_ipc's exception classes.",
    .tp_basicsize = sizeof(Channel),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Channel_init,
    .tp_dealloc = (destructor)Channel_dealloc,
    .tp_traverse = (traverseproc)Channel_traverse,
    .tp_clear = (inquiry)Channel_clear,
    .tp_methods = Channel_methods,
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "unimq_sysv._fast",
    .m_doc = "Optional C hot path for unimq's SysV backend.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    if (PyType_Ready(&ChannelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fast_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Channel", (PyObject *)&ChannelType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
