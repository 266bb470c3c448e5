/*
 * Spinning before a blocking wait: the waiter retries its non-blocking call
 * for a few microseconds before it sleeps in the kernel.  No Python API here
 * (both C channels include it; the two copies are byte-identical, a test
 * checks it).
 *
 * Why: a queue the kernel limits to a few messages (POSIX: 10 without
 * CAP_SYS_RESOURCE; SysV: msgmnb 16384 bytes, 4 messages of 4 KiB) makes a
 * fast producer and consumer block and wake each other every few messages,
 * and each sleep/wake-up costs a futex-like sleep and a context switch on
 * both sides.  With another CPU running the peer, the room (or the message)
 * it waits for usually comes within microseconds: retrying the non-blocking
 * call for that long takes it without sleeping.
 *
 * Bounded and adaptive: a waiter spins only when more than one CPU is online
 * (with one, the peer cannot run while it spins), for at most the handle's
 * current budget per direction.  A spin that succeeds raises that
 * direction's budget (up to spin_max_ns); one that fails halves it (down to
 * SPIN_FLOOR_NS).  So a waiter on an idle queue burns a few microseconds per
 * wait before it sleeps, and one that keeps its peer busy spins as long as
 * that pays.  Every iteration yields the CPU (sched_yield) to whatever else
 * is runnable there, and the caller checks its close()/deadline/interrupt
 * conditions on each one, so a spinning waiter leaves as soon as a sleeping
 * one would.
 *
 * spin_max_ns is process-wide, set at import from the CPU count
 * (SPIN_DEFAULT_NS, 0 on one CPU) and changeable through the module's
 * _spin() function (0 turns spinning off: tests and benchmarks compare).
 */
#ifndef UNIMQ_SPIN_H
#define UNIMQ_SPIN_H

#include <sched.h>
#include <time.h>
#include <unistd.h>

#define SPIN_DEFAULT_NS 20000L /* the most a wait spins (20 us) */
#define SPIN_FLOOR_NS 2000L    /* the least, once spinning failed repeatedly (2 us) */

static long spin_max_ns = -1; /* -1: not set yet (spin_setup) */

/* Set the default at module import: spinning only with another CPU online. */
static inline void
spin_setup(void)
{
    if (spin_max_ns < 0)
        spin_max_ns = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? SPIN_DEFAULT_NS : 0;
}

static inline long
spin_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* A direction's budget: 0 until its first spin (then spin_max_ns). */
typedef struct {
    long budget_ns;
} spin_budget;

/* How long the next spin may last (ns, 0: do not spin), at most left_ns
 * (< 0: no deadline). */
static inline long
spin_limit(const spin_budget *b, long left_ns)
{
    long max = __atomic_load_n(&spin_max_ns, __ATOMIC_RELAXED);
    if (max <= 0)
        return 0;
    long limit = __atomic_load_n(&b->budget_ns, __ATOMIC_RELAXED);
    if (limit <= 0 || limit > max)
        limit = max;
    if (left_ns >= 0 && left_ns < limit)
        limit = left_ns;
    return limit;
}

/* Record how a spin ended (1: it got what it waited for). */
static inline void
spin_result(spin_budget *b, int success)
{
    long max = __atomic_load_n(&spin_max_ns, __ATOMIC_RELAXED);
    long budget = __atomic_load_n(&b->budget_ns, __ATOMIC_RELAXED);
    if (budget <= 0 || budget > max)
        budget = max;
    if (success)
        budget = budget * 2 > max ? max : budget * 2;
    else
        budget = budget / 2 < SPIN_FLOOR_NS ? SPIN_FLOOR_NS : budget / 2;
    __atomic_store_n(&b->budget_ns, budget, __ATOMIC_RELAXED);
}

/* Whether a spin that began at start_ns with limit_ns may go on; yields the
 * CPU first. */
static inline int
spin_again(long start_ns, long limit_ns)
{
    sched_yield();
    return spin_now_ns() - start_ns < limit_ns;
}

#endif /* UNIMQ_SPIN_H */
