/*
 * Waking a thread blocked in a system call that the kernel never restarts
 * after a signal handler ran (SysV msgsnd/msgrcv, kernel-facts S12/S18), and
 * the registry of such waiters that close() wakes. No Python API here: any C
 * extension of unimq (the SysV channel, the async layer) can include it.
 *
 *   wake_install()        pick and install the wake signal (at module import)
 *   wake_usable()         whether the calling thread can be woken by it now
 *   wake_timer_arm()      a timer that wakes the calling thread at a deadline
 *   registry_enter/leave  a waiter registers before its system call and
 *                         unregisters (acknowledges) after it
 *   registry_begin_close  no new waiter may enter
 *   registry_wake_all     signal each waiter until it left (bounded rounds)
 *
 * The wake signal is the first real-time signal from SIGRTMIN+8 upward whose
 * disposition is SIG_DFL at import; its handler does nothing and is installed
 * without SA_RESTART, so the interrupted call fails with EINTR. A handler
 * someone else installed is never replaced, and where the signal cannot be
 * used the caller polls instead.
 */
#ifndef UNIMQ_WAKE_H
#define UNIMQ_WAKE_H

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define WAKE_FIRST 8 /* the wake signal is searched from SIGRTMIN + WAKE_FIRST */

static int wake_signo = 0; /* 0: no wake signal: blocking waits poll */

static inline void
wake_handler(int signo)
{
    (void)signo; /* its only effect: the interrupted msgsnd/msgrcv fails with EINTR */
}

/* Install the no-op handler on the first free real-time signal; 0 if none is free. */
static inline int
wake_install(void)
{
    for (int s = SIGRTMIN + WAKE_FIRST; s <= SIGRTMAX; s++) {
        struct sigaction old;
        if (sigaction(s, NULL, &old) != 0)
            continue;
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == wake_handler)
            return s; /* installed by an earlier import (another interpreter) */
        if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
            continue; /* someone else's: never replaced */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = wake_handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART: the interrupted call returns EINTR */
        if (sigaction(s, &sa, NULL) == 0)
            return s;
    }
    return 0;
}

/* Whether the wake signal exists and still has our handler. */
static inline int
wake_handler_installed(void)
{
    struct sigaction cur;
    return wake_signo != 0 && sigaction(wake_signo, NULL, &cur) == 0 &&
           !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == wake_handler;
}

/* Whether the calling thread can be woken by the signal now: it is still ours
 * and this thread does not block it. */
static inline int
wake_usable(void)
{
    if (!wake_handler_installed())
        return 0;
    sigset_t mask;
    if (pthread_sigmask(SIG_BLOCK, NULL, &mask) != 0 || sigismember(&mask, wake_signo))
        return 0;
    return 1;
}

/* ---- the waiter registry */

enum { STATE_OPEN = 0, STATE_CLOSING = 1, STATE_CLOSED = 2 };

typedef struct wake_node {
    pthread_t thread;
    int polling;     /* 1: never signalled (it checks the state on each wake-up) */
    int interrupted; /* set by registry_interrupt: the wait ends without the operation */
    struct wake_node *prev, *next;
} wake_node;

typedef struct {
    pthread_mutex_t lock;
    int state;
    int count;
    wake_node *head;
    pid_t pid; /* the process whose threads are registered */
} wake_registry;

static inline void
registry_init(wake_registry *r)
{
    pthread_mutex_init(&r->lock, NULL);
    r->state = STATE_OPEN;
    r->count = 0;
    r->head = NULL;
    r->pid = getpid();
}

/* In a child forked while threads waited, the registered threads do not exist
 * (and the lock may have been held by one of them): start afresh. */
static inline void
registry_check_fork(wake_registry *r)
{
    pid_t pid = getpid();
    if (r->pid != pid) {
        pthread_mutex_init(&r->lock, NULL);
        r->count = 0;
        r->head = NULL;
        r->pid = pid;
    }
}

static inline int
registry_is_open(wake_registry *r)
{
    return __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == STATE_OPEN;
}

/* Register the calling thread as a waiter; -1 (not registered) unless open. */
static inline int
registry_enter(wake_registry *r, wake_node *n, int polling)
{
    n->thread = pthread_self();
    n->polling = polling;
    n->interrupted = 0;
    n->prev = NULL;
    registry_check_fork(r);
    pthread_mutex_lock(&r->lock);
    if (r->state != STATE_OPEN) {
        pthread_mutex_unlock(&r->lock);
        return -1;
    }
    n->next = r->head;
    if (r->head != NULL)
        r->head->prev = n;
    r->head = n;
    r->count++;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

/* Unregister: the acknowledgement close() waits for. */
static inline void
registry_leave(wake_registry *r, wake_node *n)
{
    pthread_mutex_lock(&r->lock);
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        r->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    r->count--;
    pthread_mutex_unlock(&r->lock);
}

/* Interrupt the wait of one registered thread: mark it and, unless it polls,
 * send it the wake signal. 1 if the thread was waiting here, else 0. A signal
 * that arrives just before the thread enters the kernel is lost, so the caller
 * calls again until the wait has returned (unimq.aio does, every millisecond). */
static inline int
registry_interrupt(wake_registry *r, pthread_t thread)
{
    int found = 0;
    int ours = wake_handler_installed();
    registry_check_fork(r);
    pthread_mutex_lock(&r->lock);
    for (wake_node *n = r->head; n != NULL; n = n->next) {
        if (!pthread_equal(n->thread, thread))
            continue;
        __atomic_store_n(&n->interrupted, 1, __ATOMIC_RELEASE);
        if (!n->polling && ours)
            pthread_kill(n->thread, wake_signo);
        found = 1;
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}

static inline int
node_interrupted(wake_node *n)
{
    return __atomic_load_n(&n->interrupted, __ATOMIC_ACQUIRE);
}

static inline void
sleep_seconds(double d)
{
    struct timespec ts;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

/* Mark the registry closing (callable with the GIL: no call that starts
 * after this returns uses the channel). 0 if it was open, -1 if not. */
static inline int
registry_begin_close(wake_registry *r)
{
    int was_open;
    registry_check_fork(r);
    pthread_mutex_lock(&r->lock);
    was_open = r->state == STATE_OPEN;
    if (was_open)
        __atomic_store_n(&r->state, STATE_CLOSING, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&r->lock);
    return was_open ? 0 : -1;
}

/* Without the GIL, after registry_begin_close: wake every waiter, re-sending
 * the signal until each has left, for at most about `budget` seconds. Returns
 * 1 (and marks the registry closed) once none is left, else 0: the caller runs
 * Python's signal handlers and calls again, so close() stays interruptible.
 * A waiter that is the calling thread itself (close() from a signal handler
 * that ran during a wait) is not waited for: it leaves when the handler returns. */
static inline int
registry_wake_all(wake_registry *r, double budget)
{
    double delay = 0.00002, waited = 0;
    pthread_t me = pthread_self();
    for (;;) {
        int pending = 0;
        /* Never send the signal once someone else's disposition replaced ours
         * (SIG_DFL would end the process): such waiters leave on their own. */
        int ours = wake_handler_installed();
        pthread_mutex_lock(&r->lock);
        for (wake_node *n = r->head; n != NULL; n = n->next) {
            if (pthread_equal(n->thread, me))
                continue;
            pending = 1;
            if (!n->polling && ours)
                pthread_kill(n->thread, wake_signo);
        }
        pthread_mutex_unlock(&r->lock);
        if (!pending)
            break;
        if (waited >= budget)
            return 0;
        sleep_seconds(delay);
        waited += delay;
        delay = delay * 2 < 0.001 ? delay * 2 : 0.001;
    }
    __atomic_store_n(&r->state, STATE_CLOSED, __ATOMIC_RELEASE);
    return 1;
}

static inline double
monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A timer that sends the wake signal to the calling thread when `timeout`
 * seconds have passed, and again every millisecond until deleted (a signal
 * that arrives just before the thread enters its system call is lost; the
 * next one is not). -1 where such timers are unavailable: then poll. */
static inline int
wake_timer_arm(timer_t *timer, double timeout)
{
#ifdef SIGEV_THREAD_ID
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = wake_signo;
#ifdef sigev_notify_thread_id
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
#else
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
#endif
    if (timer_create(CLOCK_MONOTONIC, &sev, timer) != 0)
        return -1;
    struct itimerspec its;
    its.it_value.tv_sec = (time_t)timeout;
    its.it_value.tv_nsec = (long)((timeout - (double)its.it_value.tv_sec) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1; /* zero would disarm it */
    its.it_interval.tv_sec = 0;
    its.it_interval.tv_nsec = 1000000;
    if (timer_settime(*timer, 0, &its, NULL) != 0) {
        timer_delete(*timer);
        return -1;
    }
    return 0;
#else
    (void)timer;
    (void)timeout;
    return -1;
#endif
}

#endif /* UNIMQ_WAKE_H */
