/* A POSIX peer (server and client) for unimq's interop tests. Link with -lrt. */
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXMSG 8
#define MSGSIZE 512

static mqd_t must_open(const char *name, int flags) {
    struct mq_attr attr = {0};
    attr.mq_maxmsg = MAXMSG;
    attr.mq_msgsize = MSGSIZE;
    mqd_t q = mq_open(name, flags, 0600, &attr);
    if (q == (mqd_t)-1) { perror(name); exit(2); }
    return q;
}

int main(int argc, char **argv) {
    char buf[MSGSIZE + 1];
    unsigned prio;
    if (argc >= 3 && strcmp(argv[1], "server") == 0) {
        /* server NAME: requests "REPLY_NAME N"; reply "N SQUARE" with priority N % 5; "stop" ends */
        mqd_t q = must_open(argv[2], O_CREAT | O_RDWR);
        int served = 0;
        for (;;) {
            ssize_t n = mq_receive(q, buf, MSGSIZE, &prio);
            if (n < 0) { perror("mq_receive"); return 3; }
            buf[n] = 0;
            if (strcmp(buf, "stop") == 0) break;
            char reply_name[300]; int value;
            if (sscanf(buf, "%299s %d", reply_name, &value) != 2) { fprintf(stderr, "bad request\n"); return 4; }
            mqd_t r = mq_open(reply_name, O_WRONLY);
            if (r == (mqd_t)-1) { perror(reply_name); return 5; }
            int len = snprintf(buf, sizeof buf, "%d %d", value, value * value);
            if (mq_send(r, buf, (size_t)len, (unsigned)(value % 5)) < 0) { perror("mq_send"); return 6; }
            mq_close(r);
            served++;
        }
        mq_close(q);
        mq_unlink(argv[2]);
        printf("served %d\n", served);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "client") == 0) {
        /* client SERVER N: requests 1..N on SERVER, replies on a queue of its own */
        char reply_name[64];
        snprintf(reply_name, sizeof reply_name, "/unimq-c-client-%d", (int)getpid());
        mqd_t r = must_open(reply_name, O_CREAT | O_EXCL | O_RDONLY);
        mqd_t s = mq_open(argv[2], O_WRONLY);
        if (s == (mqd_t)-1) { perror(argv[2]); return 2; }
        int n = atoi(argv[3]);
        for (int i = 1; i <= n; i++) {
            int len = snprintf(buf, sizeof buf, "{\"reply_to\": \"posix://%s\", \"n\": %d}", reply_name, i);
            if (mq_send(s, buf, (size_t)len, 1) < 0) { perror("mq_send"); return 3; }
            ssize_t got = mq_receive(r, buf, MSGSIZE, &prio);
            if (got < 0) { perror("mq_receive"); return 4; }
            buf[got] = 0;
            printf("%u %s\n", prio, buf);
        }
        mq_close(s);
        mq_close(r);
        mq_unlink(reply_name);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "prio-send") == 0) {
        /* prio-send NAME: eight messages with priorities 0..3 twice */
        mqd_t q = must_open(argv[2], O_CREAT | O_WRONLY);
        for (int i = 0; i < 8; i++) {
            int len = snprintf(buf, sizeof buf, "c%d", i);
            if (mq_send(q, buf, (size_t)len, (unsigned)(i % 4)) < 0) { perror("mq_send"); return 3; }
        }
        mq_close(q);
        return 0;
    }
    fprintf(stderr, "usage: peer_posix server NAME | client SERVER N | prio-send NAME\n");
    return 1;
}
