/* Reference: SysV msgsnd/msgrcv throughput and ping-pong, sender and receiver
 * in separate processes. Prints one JSON line.
 *   ref_sysv throughput KEY COUNT SIZE
 *   ref_sysv spin KEY COUNT SIZE      (throughput without ever sleeping:
 *       IPC_NOWAIT calls retried after sched_yield, the kernel path's ceiling)
 *   ref_sysv pingpong KEY COUNT SIZE      (replies on mtype 2) */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct msg { long mtype; char text[8192]; };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage\n"); return 1; }
    int id = msgget((key_t)strtol(argv[2], NULL, 0), IPC_CREAT | 0600);
    if (id < 0) { perror("msgget"); return 2; }
    long count = atol(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    static struct msg m;
    m.mtype = 1;
    int spin = strcmp(argv[1], "spin") == 0;
    if (spin || strcmp(argv[1], "throughput") == 0) {
        int flag = spin ? IPC_NOWAIT : 0;
        pid_t pid = fork();
        if (pid == 0) {
            for (long i = 0; i < count; i++)
                while (msgsnd(id, &m, size, flag) != 0) sched_yield(); /* EAGAIN */
            _exit(0);
        }
        double t0 = 0;
        for (long i = 0; i < count; i++) {
            while (msgrcv(id, &m, sizeof m.text, 0, flag) < 0) sched_yield(); /* ENOMSG */
            if (i == 0) t0 = now();
        }
        double dt = now() - t0;
        waitpid(pid, NULL, 0);
        msgctl(id, IPC_RMID, NULL);
        printf("{\"msgs_per_s\": %.1f}\n", (count - 1) / dt);
        return 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
        static struct msg c;
        for (long i = 0; i < count; i++) {
            ssize_t n = msgrcv(id, &c, sizeof c.text, 1, 0);
            c.mtype = 2;
            msgsnd(id, &c, (size_t)n, 0);
        }
        _exit(0);
    }
    double *rtt = malloc(sizeof(double) * (size_t)count);
    for (long i = 0; i < count; i++) {
        double t = now();
        m.mtype = 1;
        msgsnd(id, &m, size, 0);
        msgrcv(id, &m, sizeof m.text, 2, 0);
        rtt[i] = now() - t;
    }
    waitpid(pid, NULL, 0);
    msgctl(id, IPC_RMID, NULL);
    qsort(rtt, (size_t)count, sizeof *rtt, cmp);
    printf("{\"median_us\": %.2f, \"p99_us\": %.2f}\n", rtt[count / 2] * 1e6, rtt[count * 99 / 100] * 1e6);
    return 0;
}
