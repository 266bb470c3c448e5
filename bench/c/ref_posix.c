/* Reference: POSIX mq_send/mq_receive throughput and ping-pong, sender and
 * receiver in separate processes. Prints one JSON line.
 *   ref_posix throughput NAME COUNT SIZE [MAXMSG]
 *   ref_posix spin NAME COUNT SIZE [MAXMSG]   (throughput without ever sleeping:
 *       O_NONBLOCK calls retried after sched_yield, the kernel path's ceiling)
 *   ref_posix pingpong NAME COUNT SIZE [MAXMSG]
 * The queues hold MAXMSG messages of SIZE bytes (10 unless given). */
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long maxmsg = 10;

static mqd_t open_q(const char *name, long size, int flags) {
    struct mq_attr a = {0};
    a.mq_maxmsg = maxmsg;
    a.mq_msgsize = size;
    mqd_t q = mq_open(name, O_CREAT | O_RDWR | flags, 0600, &a);
    if (q == (mqd_t)-1) { perror(name); exit(2); }
    return q;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage\n"); return 1; }
    const char *name = argv[2];
    long count = atol(argv[3]), size = atol(argv[4]);
    if (argc > 5) maxmsg = atol(argv[5]);
    char *buf = calloc(1, (size_t)size + 1);
    unsigned prio;
    int spin = strcmp(argv[1], "spin") == 0;
    if (spin || strcmp(argv[1], "throughput") == 0) {
        mqd_t q = open_q(name, size, spin ? O_NONBLOCK : 0);
        pid_t pid = fork();
        if (pid == 0) {
            for (long i = 0; i < count; i++)
                while (mq_send(q, buf, (size_t)size, 0) != 0) sched_yield(); /* EAGAIN */
            _exit(0);
        }
        double t0 = 0;
        for (long i = 0; i < count; i++) {
            while (mq_receive(q, buf, (size_t)size, &prio) < 0) sched_yield();
            if (i == 0) t0 = now();
        }
        double dt = now() - t0;
        waitpid(pid, NULL, 0);
        mq_close(q); mq_unlink(name);
        printf("{\"msgs_per_s\": %.1f}\n", (count - 1) / dt);
        return 0;
    }
    /* pingpong: NAME and NAME-r */
    char rname[300];
    snprintf(rname, sizeof rname, "%s-r", name);
    mqd_t q = open_q(name, size, 0), r = open_q(rname, size, 0);
    pid_t pid = fork();
    if (pid == 0) {
        for (long i = 0; i < count; i++) {
            ssize_t n = mq_receive(q, buf, (size_t)size, &prio);
            mq_send(r, buf, (size_t)n, 0);
        }
        _exit(0);
    }
    double *rtt = malloc(sizeof(double) * (size_t)count);
    for (long i = 0; i < count; i++) {
        double t = now();
        mq_send(q, buf, (size_t)size, 0);
        mq_receive(r, buf, (size_t)size, &prio);
        rtt[i] = now() - t;
    }
    waitpid(pid, NULL, 0);
    mq_close(q); mq_close(r); mq_unlink(name); mq_unlink(rname);
    qsort(rtt, (size_t)count, sizeof *rtt, cmp);
    printf("{\"median_us\": %.2f, \"p99_us\": %.2f}\n", rtt[count / 2] * 1e6, rtt[count * 99 / 100] * 1e6);
    return 0;
}
