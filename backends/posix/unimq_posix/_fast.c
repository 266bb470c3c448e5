/*
 * unimq_posix._fast: the send/receive hot path of PosixQueue in C (optional).
 *
 * PosixQueue keeps its descriptor non-blocking and waits with poll(), so the
 * hot path is one mq_send/mq_receive that does not sleep: a Channel bound to
 * the descriptor makes that call holding the GIL, with positional fast-call
 * arguments, into a stack buffer (no malloc per message), and raises the
 * posix_ipc exception classes posix_ipc raises for the same errno values, so
 * the backend keeps one error mapping whichever path runs.  With block=True
 * (timeout=None) the channel also does the waiting, without the GIL: on a
 * second, blocking descriptor of the same queue when the backend gives one
 * (a blocked mq_receive gets the message handed over by mq_send, one syscall
 * and one wake-up), else poll() on the main descriptor and the call again.  A
 * signal runs the Python handlers (whose exception propagates) and the wait
 * resumes.  Timed waits stay in Python.  Without a
 * C compiler the package still installs and the backend calls posix_ipc
 * (pure-Python fallback, same behaviour).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <mqueue.h>
#include <poll.h>

#define STACK_BUF 8192

typedef struct {
    PyObject_HEAD
    mqd_t mqd;
    mqd_t wait_mqd;        /* a blocking descriptor of the same queue, or -1 */
    Py_ssize_t msgsize;    /* mq_msgsize: receive buffers must be at least this large */
    PyObject *busy;        /* posix_ipc.BusyError: EAGAIN */
    PyObject *existential; /* posix_ipc.ExistentialError: EBADF, EINVAL */
    PyTypeObject *message; /* unimq.Message, a 3-tuple subclass (data, mtype, priority) */
} Channel;

static int
Channel_init(Channel *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"mqd",     "msgsize",  "busy", "existential",
                             "message", "wait_mqd", NULL};
    int mqd, wait_mqd = -1;
    PyObject *busy, *existential, *message;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "inOOO!|i", kwlist, &mqd, &self->msgsize, &busy,
                                     &existential, &PyType_Type, &message, &wait_mqd))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)message, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "message must be a tuple subclass");
        return -1;
    }
    Py_XSETREF(self->message, (PyTypeObject *)Py_NewRef(message));
    if (self->msgsize < 0) {
        PyErr_SetString(PyExc_ValueError, "msgsize must be >= 0");
        return -1;
    }
    self->mqd = (mqd_t)mqd;
    self->wait_mqd = (mqd_t)wait_mqd;
    Py_XSETREF(self->busy, Py_NewRef(busy));
    Py_XSETREF(self->existential, Py_NewRef(existential));
    return 0;
}

static int
Channel_traverse(Channel *self, visitproc visit, void *arg)
{
    Py_VISIT(self->busy);
    Py_VISIT(self->existential);
    Py_VISIT(self->message);
    return 0;
}

static int
Channel_clear(Channel *self)
{
    Py_CLEAR(self->busy);
    Py_CLEAR(self->existential);
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

static PyObject *
raise_errno(Channel *self, int err, const char *busy_text)
{
    switch (err) {
    case EAGAIN:
        PyErr_SetString(self->busy, busy_text);
        return NULL;
    case EBADF:
    case EINVAL:
        PyErr_SetString(self->existential, "The queue does not exist");
        return NULL;
    case EMSGSIZE:
        PyErr_SetString(PyExc_ValueError, "The message is too long");
        return NULL;
    }
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* Wait without the GIL until the descriptor is ready for `events`.
 * 0: try the call again; -1: an exception is set (a signal handler raised,
 * or the descriptor was closed under the wait). */
static int
wait_ready(Channel *self, short events)
{
    struct pollfd pfd = {.fd = (int)self->mqd, .events = events, .revents = 0};
    int rc, err;
    Py_BEGIN_ALLOW_THREADS
    rc = poll(&pfd, 1, -1);
    err = errno;
    Py_END_ALLOW_THREADS
    if (rc == -1) {
        if (err == EINTR)
            return PyErr_CheckSignals(); /* run handlers; resume unless one raised */
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (pfd.revents & POLLNVAL) {
        raise_errno(self, EBADF, "");
        return -1;
    }
    return 0;
}

/* The blocking waits on wait_mqd, without the GIL: the kernel hands a message
 * straight to a blocked mq_receive. A signal runs the Python handlers and the
 * call resumes, unless a handler raised. -1: an exception is set. */
static int
send_blocking(Channel *self, const char *data, size_t len, unsigned int priority)
{
    for (;;) {
        int rc, err;
        Py_BEGIN_ALLOW_THREADS
        rc = mq_send(self->wait_mqd, data, len, priority);
        err = errno;
        Py_END_ALLOW_THREADS
        if (rc == 0)
            return 0;
        if (err != EINTR) {
            raise_errno(self, err, "The queue is full");
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

static ssize_t
receive_blocking(Channel *self, char *buf, unsigned int *priority)
{
    for (;;) {
        ssize_t got;
        int err;
        Py_BEGIN_ALLOW_THREADS
        got = mq_receive(self->wait_mqd, buf, (size_t)self->msgsize, priority);
        err = errno;
        Py_END_ALLOW_THREADS
        if (got != -1)
            return got;
        if (err != EINTR) {
            raise_errno(self, err, "The queue is empty");
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

/* send(message: bytes, block: bool, priority: int) -> None */
static PyObject *
Channel_send(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "send(message: bytes, block: bool, priority: int)");
        return NULL;
    }
    int block = PyObject_IsTrue(args[1]);
    if (block < 0)
        return NULL;
    unsigned long priority = PyLong_AsUnsignedLong(args[2]);
    if (priority == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    const char *data = PyBytes_AS_STRING(args[0]); /* immutable, kept alive by args */
    size_t len = (size_t)PyBytes_GET_SIZE(args[0]);
    while (mq_send(self->mqd, data, len, (unsigned int)priority) == -1) {
        if (errno != EAGAIN || !block)
            return raise_errno(self, errno, "The queue is full");
        if (self->wait_mqd != (mqd_t)-1) {
            if (send_blocking(self, data, len, (unsigned int)priority) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        if (wait_ready(self, POLLOUT) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* receive(block: bool) -> Message(data, 1, priority) */
static PyObject *
Channel_receive(Channel *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "receive(block: bool)");
        return NULL;
    }
    int block = PyObject_IsTrue(args[0]);
    if (block < 0)
        return NULL;
    char stack[STACK_BUF];
    char *buf = stack;
    if (self->msgsize > STACK_BUF) {
        buf = PyMem_Malloc((size_t)self->msgsize);
        if (buf == NULL)
            return PyErr_NoMemory();
    }
    unsigned int priority = 0;
    ssize_t got;
    PyObject *result = NULL;
    while ((got = mq_receive(self->mqd, buf, (size_t)self->msgsize, &priority)) == -1) {
        if (errno != EAGAIN || !block) {
            raise_errno(self, errno, "The queue is empty");
            break;
        }
        if (self->wait_mqd != (mqd_t)-1) {
            got = receive_blocking(self, buf, &priority); /* a message, or an exception */
            break;
        }
        if (wait_ready(self, POLLIN) < 0)
            break;
    }
    if (got != -1) {
        PyObject *data = PyBytes_FromStringAndSize(buf, got);
        PyObject *mtype = PyLong_FromLong(1);
        PyObject *prio = PyLong_FromUnsignedLong(priority);
        if (data != NULL && mtype != NULL && prio != NULL)
            result = self->message->tp_alloc(self->message, 3);
        if (result == NULL) {
            Py_XDECREF(data);
            Py_XDECREF(mtype);
            Py_XDECREF(prio);
        }
        else { /* as tuple.__new__(Message, (data, 1, priority)) builds it */
            PyTuple_SET_ITEM(result, 0, data);
            PyTuple_SET_ITEM(result, 1, mtype);
            PyTuple_SET_ITEM(result, 2, prio);
        }
    }
    if (buf != stack)
        PyMem_Free(buf);
    return result;
}

static PyMethodDef Channel_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Channel_send, METH_FASTCALL,
     "send(message, block, priority): mq_send; with block, wait until there is room."},
    {"receive", (PyCFunction)(void (*)(void))Channel_receive, METH_FASTCALL,
     "receive(block) -> Message: mq_receive; with block, wait until a message arrives."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "unimq_posix._fast.Channel",
    .tp_doc = "mq_send/mq_receive on one non-blocking descriptor, with posix_ipc's "
              "exception classes.",
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
    .m_name = "unimq_posix._fast",
    .m_doc = "Optional C hot path for unimq's POSIX backend.",
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
