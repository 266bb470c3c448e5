/* A SysV peer playing the classic programs' roles, for unimq's interop tests. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>

struct text_msg { long mtype; char mtext[256]; };
struct seed { long msgtype; char mtext[256]; char myname[16]; int seq; };
#define SEED_BODY (sizeof(struct seed) - sizeof(long))

static int open_queue(const char *key_text) {
    key_t key = (key_t)strtoul(key_text, NULL, 0);
    int id = msgget(key, IPC_CREAT | 0600);
    if (id < 0) { perror("msgget"); exit(2); }
    return id;
}

static void must_send(int id, const void *msg, size_t size) {
    while (msgsnd(id, msg, size, 0) < 0) {
        if (errno == EINTR) continue;
        perror("msgsnd"); exit(3);
    }
}

static ssize_t must_recv(int id, void *msg, size_t size, long type) {
    ssize_t n;
    while ((n = msgrcv(id, msg, size, type, 0)) < 0) {
        if (errno == EINTR) continue;
        perror("msgrcv"); exit(4);
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "layout") == 0) {
        printf("%zu %zu %zu %zu\n", SEED_BODY, offsetof(struct seed, mtext) - sizeof(long),
               offsetof(struct seed, myname) - sizeof(long), offsetof(struct seed, seq) - sizeof(long));
        return 0;
    }
    if (argc < 3) { fprintf(stderr, "usage: peer_sysv MODE KEY ...\n"); return 1; }
    int id = open_queue(argv[2]);
    if (strcmp(argv[1], "send") == 0) {            /* send KEY N: data mtype 1, end mtype 2 */
        int n = atoi(argv[3]);
        struct text_msg m;
        for (int i = 0; i < n; i++) {
            m.mtype = 1;
            int len = snprintf(m.mtext, sizeof m.mtext, "message %d from C", i);
            must_send(id, &m, (size_t)len);
        }
        m.mtype = 2;
        must_send(id, &m, 0);
    } else if (strcmp(argv[1], "recv") == 0) {     /* recv KEY: until the end marker */
        struct text_msg m;
        int count = 0;
        for (;;) {
            ssize_t len = must_recv(id, &m, sizeof m.mtext, 0);
            if (m.mtype == 2) break;
            printf("%.*s\n", (int)len, m.mtext);
            count++;
        }
        printf("count %d\n", count);
    } else if (strcmp(argv[1], "struct-produce") == 0) {  /* KEY N FIRST: seq FIRST.., odd->3 even->4 */
        int n = atoi(argv[3]), first = atoi(argv[4]);
        struct seed s;
        for (int i = first; i < first + n; i++) {
            memset(&s, 0, sizeof s);
            s.msgtype = (i % 2) ? 3 : 4;
            snprintf(s.mtext, sizeof s.mtext, "text %d", i);
            snprintf(s.myname, sizeof s.myname, "c%d", (int)getpid() % 100000);
            s.seq = i;
            must_send(id, &s, SEED_BODY);
        }
    } else if (strcmp(argv[1], "struct-consume") == 0) {  /* KEY MTYPE: until seq -1 */
        long type = atol(argv[3]);
        struct seed s;
        for (;;) {
            ssize_t len = must_recv(id, &s, SEED_BODY, type);
            if (s.seq == -1) break;
            printf("%ld %zd %d %s %s\n", s.msgtype, len, s.seq, s.myname, s.mtext);
        }
    } else if (strcmp(argv[1], "json-bad") == 0) {  /* malformed JSON payloads, then a good one */
        static const char *payloads[] = {
            "{\"sku\": \"A1\", \"qty\"", "\xff\xfe\xfd", "", "plain text",
            "{\"sku\": \"A1\", \"qty\": \"many\"}", "{\"sku\": \"A1\"}",
            "{\"sku\": \"good\", \"qty\": 7}",
        };
        struct text_msg m;
        for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
            m.mtype = 1;
            size_t len = strlen(payloads[i]);
            memcpy(m.mtext, payloads[i], len);
            must_send(id, &m, len);
        }
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 1;
    }
    return 0;
}
