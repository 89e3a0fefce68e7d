/* Integration: the canary. A node's Redis links can stay connected and
 * answer while its subscriber link delivers nothing (a proxy that stopped
 * forwarding one way); only the probes each worker publishes through its
 * command link and expects back on its subscriber link can tell. Here the
 * node reaches a real redis-server through a small TCP relay of our own
 * (a thread with poll(2), loopback), which on command stops forwarding
 * Redis's bytes to the node on the subscriber connections open at that
 * moment, while it keeps both sockets open and still forwards what the
 * node sends. The heartbeat is set far out of the way (600 s), so the
 * canary is what must notice: /readyz goes 503 within the canary's
 * timeout, the worker reconnects its subscriber link, and a client that
 * follows the channel with its cursor gets every message exactly once
 * and in order, the ones published during the stall too. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

#define CANARY_MS 200
#define CANARY_TIMEOUT_MS 1000
/* From the stall to /readyz 503: the timeout, a canary period for the
 * check to come round, and slack for a loaded machine. */
#define NOTICE_MS 2500

#define CANARY_WARNING "canary probes published through Redis have not come back"
#define CANARY_BACK "canary probes come back through Redis again"
#define CANARY_DETAIL                                                                              \
    "worker 0: probes published through Redis have not come back on the subscriber link for "      \
    "1000 ms; reconnecting it"

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

/* ---- The relay -------------------------------------------------------------- */

#define RELAY_MAX 32
#define SNIFF_MAX 4096

typedef enum link_kind { KIND_UNKNOWN = 0, KIND_SUBSCRIBER, KIND_COMMAND } link_kind;

typedef struct relay_pair {
    int node_fd, redis_fd; /* -1 once closed */
    link_kind kind;
    int stalled;           /* Redis's bytes are read and dropped, not forwarded */
    long long dropped;     /* bytes dropped so far */
    char sniff[SNIFF_MAX]; /* the node's first bytes, until the kind is known */
    size_t sniffed;
} relay_pair;

typedef struct relay {
    int listen_fd, port, redis_port;
    int wake[2]; /* the test's commands wake the relay's poll */
    pthread_t thread;
    int running;
    pthread_mutex_t mu; /* guards everything below */
    relay_pair pair[RELAY_MAX];
    int stall_req, stall_done; /* a stall asked, and carried out */
    int quit;
    /* What the relay saw. */
    int accepted, subscribers, commands, stalled, stalled_closed_by_node, closed_by_redis;
    int after_select; /* connections whose first command came after AUTH or SELECT */
    long long dropped;
} relay;

static relay rl;

/* The name of the first command in RESP bytes p[0..n) after any AUTH,
 * SELECT, CLIENT SETNAME and ROLE, into out; 1 when found, 0 if more bytes are needed, -1 if the
 * bytes are not RESP commands. */
static int first_command(const char *p, size_t n, char *out, size_t outlen, int *skipped) {
    size_t pos = 0;
    *skipped = 0;
    for (;;) {
        if (pos >= n) return 0;
        if (p[pos] != '*') return -1;
        const char *eol = memmem(p + pos, n - pos, "\r\n", 2);
        if (eol == NULL) return 0;
        long args = strtol(p + pos + 1, NULL, 10);
        if (args <= 0) return -1;
        pos = (size_t)(eol - p) + 2;
        char name[32] = "";
        for (long i = 0; i < args; i++) {
            if (pos >= n) return 0;
            if (p[pos] != '$') return -1;
            eol = memmem(p + pos, n - pos, "\r\n", 2);
            if (eol == NULL) return 0;
            long len = strtol(p + pos + 1, NULL, 10);
            if (len < 0) return -1;
            pos = (size_t)(eol - p) + 2;
            if (i == 0) {
                /* The name is all that matters of the first command. */
                if (pos + (size_t)len > n) return 0;
                snprintf(name, sizeof(name), "%.*s", (int)(len < 31 ? len : 31), p + pos);
                int setup = strcasecmp(name, "AUTH") == 0 || strcasecmp(name, "SELECT") == 0;
                /* Every link names itself, and in sentinel mode asks ROLE. */
                int any = strcasecmp(name, "CLIENT") == 0 || strcasecmp(name, "ROLE") == 0;
                if (!setup && !any) {
                    snprintf(out, outlen, "%s", name);
                    return 1;
                }
                *skipped += setup;
            }
            if (pos + (size_t)len + 2 > n) return 0;
            pos += (size_t)len + 2;
        }
    }
}

/* hl_rlink.c: a subscriber link's first command is the PSUBSCRIBE of its
 * heartbeat pattern (then hl_store.c's SUBSCRIBE of the control channel);
 * a command link's is hl_store.c's FUNCTION LOAD. AUTH and SELECT, when
 * configured, then CLIENT SETNAME go first on both. */
static void classify(relay *r, relay_pair *p, const char *buf, size_t n) {
    if (p->kind != KIND_UNKNOWN) return;
    size_t room = SNIFF_MAX - p->sniffed;
    size_t k = n < room ? n : room;
    memcpy(p->sniff + p->sniffed, buf, k);
    p->sniffed += k;
    char name[32];
    int skipped;
    int rc = first_command(p->sniff, p->sniffed, name, sizeof(name), &skipped);
    if (rc == 0 && p->sniffed < SNIFF_MAX) return;
    int sub =
        rc == 1 && (strcasecmp(name, "PSUBSCRIBE") == 0 || strcasecmp(name, "SUBSCRIBE") == 0);
    p->kind = sub ? KIND_SUBSCRIBER : KIND_COMMAND;
    r->after_select += skipped > 0;
    if (sub)
        r->subscribers++;
    else
        r->commands++;
}

static int write_full(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void pair_close(relay_pair *p) {
    if (p->node_fd >= 0) close(p->node_fd);
    if (p->redis_fd >= 0) close(p->redis_fd);
    p->node_fd = p->redis_fd = -1;
}

static void relay_accept(relay *r) {
    int fd = accept(r->listen_fd, NULL, NULL);
    if (fd < 0) return;
    int up = it_connect(r->redis_port);
    pthread_mutex_lock(&r->mu);
    relay_pair *p = NULL;
    for (int i = 0; i < RELAY_MAX && p == NULL; i++)
        if (r->pair[i].node_fd < 0 && r->pair[i].redis_fd < 0) p = &r->pair[i];
    if (up < 0 || p == NULL) {
        pthread_mutex_unlock(&r->mu);
        close(fd);
        if (up >= 0) close(up);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(p, 0, sizeof(*p));
    p->node_fd = fd;
    p->redis_fd = up;
    r->accepted++;
    pthread_mutex_unlock(&r->mu);
}

/* Moves what is readable on one side of p; called with r->mu held. */
static void relay_move(relay *r, relay_pair *p, int from_node) {
    char buf[65536];
    int from = from_node ? p->node_fd : p->redis_fd;
    ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        if (from_node && p->stalled) r->stalled_closed_by_node++;
        if (!from_node) r->closed_by_redis++;
        pair_close(p);
        return;
    }
    if (from_node) {
        classify(r, p, buf, (size_t)n);
        if (write_full(p->redis_fd, buf, (size_t)n) != 0) pair_close(p);
    } else if (p->stalled) {
        /* Read, not left in the socket: a subscriber whose output
         * backs up in Redis is closed by Redis at its pubsub buffer
         * limit, which would end the stall by itself. */
        p->dropped += n;
        r->dropped += n;
    } else if (write_full(p->node_fd, buf, (size_t)n) != 0) {
        pair_close(p);
    }
}

static void *relay_main(void *arg) {
    relay *r = arg;
    struct pollfd pf[2 + 2 * RELAY_MAX];
    int idx[2 + 2 * RELAY_MAX];
    for (;;) {
        pthread_mutex_lock(&r->mu);
        if (r->quit) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        if (r->stall_req != r->stall_done) {
            /* Only the subscriber connections open now; later ones (the
             * node's reconnect) are forwarded as usual. */
            for (int i = 0; i < RELAY_MAX; i++)
                if (r->pair[i].node_fd >= 0 && r->pair[i].kind == KIND_SUBSCRIBER &&
                    !r->pair[i].stalled) {
                    r->pair[i].stalled = 1;
                    r->stalled++;
                }
            r->stall_done = r->stall_req;
        }
        int k = 0;
        pf[k] = (struct pollfd){r->listen_fd, POLLIN, 0};
        idx[k++] = -1;
        pf[k] = (struct pollfd){r->wake[0], POLLIN, 0};
        idx[k++] = -2;
        for (int i = 0; i < RELAY_MAX; i++) {
            if (r->pair[i].node_fd < 0) continue;
            pf[k] = (struct pollfd){r->pair[i].node_fd, POLLIN, 0};
            idx[k++] = 2 * i;
            pf[k] = (struct pollfd){r->pair[i].redis_fd, POLLIN, 0};
            idx[k++] = 2 * i + 1;
        }
        pthread_mutex_unlock(&r->mu);
        if (poll(pf, (nfds_t)k, 100) <= 0) continue;
        for (int j = 0; j < k; j++) {
            if (!(pf[j].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (idx[j] == -1) {
                relay_accept(r);
            } else if (idx[j] == -2) {
                char c[64];
                (void)read(r->wake[0], c, sizeof(c));
            } else {
                pthread_mutex_lock(&r->mu);
                relay_pair *p = &r->pair[idx[j] / 2];
                int fd = idx[j] % 2 == 0 ? p->node_fd : p->redis_fd;
                if (fd == pf[j].fd) relay_move(r, p, idx[j] % 2 == 0);
                pthread_mutex_unlock(&r->mu);
            }
        }
    }
    return NULL;
}

static int relay_start(relay *r, int redis_port) {
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < RELAY_MAX; i++)
        r->pair[i].node_fd = r->pair[i].redis_fd = -1;
    r->redis_port = redis_port;
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (r->listen_fd < 0 || bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(r->listen_fd, 16) != 0 ||
        getsockname(r->listen_fd, (struct sockaddr *)&sa, &sl) != 0 || pipe(r->wake) != 0)
        return -1;
    r->port = ntohs(sa.sin_port);
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) return -1;
    r->running = 1;
    return 0;
}

static void relay_wake(relay *r) {
    (void)write(r->wake[1], "x", 1);
}

/* Stops forwarding Redis's bytes on the subscriber connections open now;
 * returns how many, once the relay has done it. */
static int relay_stall_subscribers(relay *r) {
    pthread_mutex_lock(&r->mu);
    int before = r->stalled, want = ++r->stall_req;
    pthread_mutex_unlock(&r->mu);
    relay_wake(r);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int done = r->stall_done == want, n = r->stalled - before;
        pthread_mutex_unlock(&r->mu);
        if (done) return n;
        sleep_ms(1);
    }
}

typedef struct relay_stats {
    int accepted, subscribers, commands, stalled, stalled_closed_by_node, closed_by_redis;
    int open_subscribers, open_stalled, after_select;
    long long dropped;
} relay_stats;

static relay_stats relay_read(relay *r) {
    relay_stats s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_lock(&r->mu);
    s.accepted = r->accepted;
    s.subscribers = r->subscribers;
    s.commands = r->commands;
    s.stalled = r->stalled;
    s.stalled_closed_by_node = r->stalled_closed_by_node;
    s.closed_by_redis = r->closed_by_redis;
    s.dropped = r->dropped;
    s.after_select = r->after_select;
    for (int i = 0; i < RELAY_MAX; i++) {
        if (r->pair[i].node_fd < 0) continue;
        s.open_subscribers += r->pair[i].kind == KIND_SUBSCRIBER;
        s.open_stalled += r->pair[i].stalled;
    }
    pthread_mutex_unlock(&r->mu);
    return s;
}

static void relay_stop(relay *r) {
    if (!r->running) return;
    pthread_mutex_lock(&r->mu);
    r->quit = 1;
    pthread_mutex_unlock(&r->mu);
    relay_wake(r);
    pthread_join(r->thread, NULL);
    for (int i = 0; i < RELAY_MAX; i++)
        pair_close(&r->pair[i]);
    close(r->listen_fd);
    close(r->wake[0]);
    close(r->wake[1]);
    pthread_mutex_destroy(&r->mu);
    r->running = 0;
}

/* ---- The node behind it ----------------------------------------------------- */

static it_redis redis;
static it_node node;

static const char *const node_env[] = {
    "HOLDLINE_HTTP_WORKERS=1",
    "HOLDLINE_HTTP_BIND=127.0.0.1",
    /* Out of the way: a link that receives nothing is the heartbeat's to
     * find otherwise, and here the canary must. */
    "HOLDLINE_REDIS_HEARTBEAT_MS=600000",
    "HOLDLINE_REDIS_CANARY_MS=200",
    "HOLDLINE_REDIS_CANARY_TIMEOUT_MS=1000",
    /* The subscriber link comes back after this (+-25%): long enough for
     * the test to see holdline_canary_ok at 0 in between. */
    "HOLDLINE_REDIS_RECONNECT_MIN_MS=300",
    /* A database other than 0: both links then SELECT first, and the
     * relay must look past it. */
    "HOLDLINE_REDIS_DB=3",
    NULL,
};

static int setup(void **state) {
    (void)state;
    memset(&redis, 0, sizeof(redis));
    memset(&node, 0, sizeof(node));
    if (it_redis_start(&redis) != 0) return -1;
    if (relay_start(&rl, redis.port) != 0) return -1;
    return it_node_start_env(&node, rl.port, NULL, node_env);
}

static int teardown(void **state) {
    (void)state;
    int bad = 0;
    if (node.pid > 0) {
        int st = it_node_stop(&node);
        if (st != 0) {
            fprintf(stderr, "node on port %d exit status %d (want 0)\n", node.port, st);
            bad = 1;
        }
    }
    if (node.log[0] && it_log_has_crash(node.log)) {
        fprintf(stderr, "sanitizer or crash report in %s\n", node.log);
        bad = 1;
    }
    relay_stop(&rl);
    it_redis_stop(&redis);
    return bad ? -1 : 0;
}

static void channel_name(char *out, size_t outlen, const char *tag) {
    snprintf(out, outlen, "%s-%ld", tag, (long)getpid());
}

/* Lines of the node's log that hold what. */
static int log_count(const char *what) {
    FILE *f = fopen(node.log, "r");
    if (f == NULL) return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

/* The value of a sample without labels in /metrics, or -1. */
static double metric(const char *name) {
    it_resp r;
    double v = -1;
    if (it_http(node.port, "GET", "/metrics", NULL, 0, NULL, 2000, &r) != 0) return -1;
    size_t n = strlen(name);
    for (const char *p = r.body; r.status == 200 && p && *p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    }
    it_resp_free(&r);
    return v;
}

/* GET /readyz: the status, and the detail of a 503. */
static int readyz(char *detail, size_t len) {
    it_resp r;
    if (it_http(node.port, "GET", "/readyz", NULL, 0, NULL, 2000, &r) != 0) return 0;
    int st = r.status;
    if (detail) {
        it_json j;
        it_json_parse(r.body, &j);
        snprintf(detail, len, "%s", j.detail);
        it_json_free(&j);
    }
    it_resp_free(&r);
    return st;
}

static int publish(const char *ch, const char *data) {
    char path[300];
    snprintf(path, sizeof(path), "/publish/%s", ch);
    it_resp r;
    if (it_http(node.port, "POST", path, data, strlen(data), NULL, 7000, &r) != 0) return 0;
    int st = r.status;
    it_resp_free(&r);
    return st;
}

__attribute__((format(printf, 3, 4))) static void note(char *problem, size_t len, const char *fmt,
                                                       ...) {
    if (problem[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, len, fmt, ap);
    va_end(ap);
}

/* ---- A relay that forwards everything ------------------------------------- */

static void test_a_subscriber_link_that_delivers_keeps_the_canary_quiet(void **state) {
    (void)state;
    char ch[64];
    channel_name(ch, sizeof(ch), "quiet");
    /* Five seconds of traffic through the relay, twenty-five canary
     * periods: polls answered by publishes, /readyz asked all along. */
    long long t0 = it_now_ms();
    int asked = 0, not_ready = 0, published = 0, delivered = 0;
    char cursor[4096] = "", detail[256] = "";
    while (it_now_ms() - t0 < 5000) {
        char req[4600];
        snprintf(req, sizeof(req), "GET /poll/%s?timeout=3%s%s HTTP/1.1\r\nHost: t\r\n\r\n", ch,
                 cursor[0] ? "&cursor=" : "", cursor);
        const char *reqs[] = {req};
        it_conn c;
        assert_int_equal(it_multi_open(&c, 1, &node.port, reqs), 0);
        /* The first poll subscribes the channel, and /readyz is 503 for
         * as long as Redis has a SUBSCRIBE to confirm (hl_worker.c); the
         * re-polls that follow find it subscribed. */
        long long until = it_now_ms() + 3000;
        while (published == 0 && metric("holdline_channels") < 1 && it_now_ms() < until)
            sleep_ms(5);
        for (int i = 0; i < 3; i++) {
            char d[200];
            int st = readyz(d, sizeof(d));
            asked++;
            if (st != 200 && not_ready++ == 0) snprintf(detail, sizeof(detail), "%d %s", st, d);
            sleep_ms(100);
        }
        char data[16];
        snprintf(data, sizeof(data), "%d", published);
        assert_int_equal(publish(ch, data), 201);
        published++;
        assert_int_equal(it_multi_wait(&c, 1, 5000), 1);
        it_json j;
        assert_int_equal(it_json_parse(c.resp.body, &j), 0);
        delivered += (int)j.n;
        snprintf(cursor, sizeof(cursor), "%s", j.cursor);
        it_json_free(&j);
        it_multi_free(&c, 1);
    }
    double failures = metric("holdline_canary_failures_total");
    double ok = metric("holdline_canary_ok");
    relay_stats s = relay_read(&rl);
    int warnings = log_count(CANARY_WARNING);
    printf("relay forwarding for %lld ms: /readyz asked %d times, %d not 200 (%s); %d published, "
           "%d delivered; canary ok %g, failures %g; relay: %d connections (%d subscriber, %d "
           "command, %d after a SELECT), %d closed by Redis; %d canary warnings\n",
           it_now_ms() - t0, asked, not_ready, detail, published, delivered, ok, failures,
           s.accepted, s.subscribers, s.commands, s.after_select, s.closed_by_redis, warnings);
    assert_int_equal(not_ready, 0);
    assert_int_equal(delivered, published);
    assert_true(failures == 0);
    assert_true(ok == 1);
    /* Both links went through the relay and neither was ever replaced. */
    assert_int_equal(s.accepted, 2);
    assert_int_equal(s.subscribers, 1);
    assert_int_equal(s.commands, 1);
    assert_int_equal(s.after_select, 2);
    assert_int_equal(warnings, 0);
}

/* ---- A subscriber link that stops delivering -------------------------------- */

#define STALL_BEFORE 10 /* messages delivered before the stall */
/* Then one every 40 ms or so from the stall on: through the stall, the
 * reconnect and well after it. */
#define STALL_TOTAL 80

typedef struct follower {
    char ch[64];
    int stop;                      /* atomic */
    int next;                      /* atomic: the number due next */
    long long got_ms[STALL_TOTAL]; /* when each number arrived */
    long polls, not_ok, dups, gaps, missed, foreign;
    int statuses[8]; /* the first non-200 statuses */
    int nstatuses;
    char problem[256];
} follower;

/* A client as the README has them: it polls with the last cursor it got,
 * and after anything but a 200 it waits a little and asks again. */
static void *follower_main(void *arg) {
    follower *f = arg;
    char cursor[4096] = "0";
    while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED) &&
           __atomic_load_n(&f->next, __ATOMIC_RELAXED) < STALL_TOTAL) {
        char path[4600];
        snprintf(path, sizeof(path), "/poll/%s?timeout=5&cursor=%s", f->ch, cursor);
        it_resp r;
        int st = it_http(node.port, "GET", path, NULL, 0, NULL, 9000, &r) == 0 ? r.status : 0;
        long long now = it_now_ms();
        f->polls++;
        it_json j;
        it_json_parse(st ? r.body : NULL, &j);
        if (st != 200 || !j.parsed || j.cursor[0] == '\0') {
            f->not_ok++;
            if (f->nstatuses < 8) f->statuses[f->nstatuses++] = st;
            it_json_free(&j);
            if (st) it_resp_free(&r);
            sleep_ms(50);
            continue;
        }
        if (j.missed == 1) {
            f->missed++;
            note(f->problem, sizeof(f->problem), "poll %ld: missed", f->polls);
        }
        for (size_t i = 0; i < j.n; i++) {
            char *end;
            long k = strtol(j.msgs[i].data, &end, 10);
            int next = __atomic_load_n(&f->next, __ATOMIC_RELAXED);
            if (*end != '\0' || end == j.msgs[i].data || k < 0 || k >= STALL_TOTAL) {
                f->foreign++;
                note(f->problem, sizeof(f->problem), "message '%s' is not ours", j.msgs[i].data);
            } else if (k < next) {
                f->dups++;
                note(f->problem, sizeof(f->problem), "message %ld again (%d due)", k, next);
            } else {
                if (k > next) {
                    f->gaps++;
                    note(f->problem, sizeof(f->problem), "message %ld when %d was due", k, next);
                }
                f->got_ms[k] = now;
                __atomic_store_n(&f->next, (int)k + 1, __ATOMIC_RELAXED);
            }
        }
        snprintf(cursor, sizeof(cursor), "%s", j.cursor);
        it_json_free(&j);
        it_resp_free(&r);
    }
    return NULL;
}

typedef struct publisher {
    char ch[64];
    int limit;     /* atomic: publish up to this number */
    int published; /* atomic: numbers with a 201 */
    int stop;      /* atomic */
    long long accepted_ms[STALL_TOTAL];
    char problem[256];
} publisher;

static void *publisher_main(void *arg) {
    publisher *p = arg;
    for (int k = 0; k < STALL_TOTAL && !__atomic_load_n(&p->stop, __ATOMIC_RELAXED);) {
        if (k >= __atomic_load_n(&p->limit, __ATOMIC_RELAXED)) {
            sleep_ms(5);
            continue;
        }
        char data[16];
        snprintf(data, sizeof(data), "%d", k);
        int st = publish(p->ch, data);
        if (st != 201) {
            /* Publishes go through the command link, which never stalls. */
            note(p->problem, sizeof(p->problem), "publish %d: status %d", k, st);
            sleep_ms(50);
            continue;
        }
        p->accepted_ms[k] = it_now_ms();
        __atomic_store_n(&p->published, ++k, __ATOMIC_RELAXED);
        sleep_ms(40);
    }
    return NULL;
}

static int wait_int(const int *v, int want, int timeout_ms) {
    long long until = it_now_ms() + timeout_ms;
    while (__atomic_load_n(v, __ATOMIC_RELAXED) < want && it_now_ms() < until)
        sleep_ms(5);
    return __atomic_load_n(v, __ATOMIC_RELAXED) >= want;
}

/* A busy node keeps subscribing new channels; while Redis has not yet
 * confirmed one, the node still serves everything else, so /readyz must
 * not send its traffic away. The stalled link keeps the confirmation from
 * ever coming, until the canary notices. */
static void test_a_new_channel_not_yet_confirmed_does_not_make_the_node_unready(void **state) {
    (void)state;
    char ch[64];
    channel_name(ch, sizeof(ch), "unconfirmed");
    assert_int_equal(readyz(NULL, 0), 200);
    assert_true(relay_stall_subscribers(&rl) >= 1);
    long long t0 = it_now_ms();
    /* A poll on a channel this node has never had: its SUBSCRIBE goes out
     * on the stalled link. */
    int fd = it_connect(node.port);
    assert_true(fd >= 0);
    char req[256];
    int n = snprintf(req, sizeof(req), "GET /poll/%s?timeout=20 HTTP/1.1\r\nHost: x\r\n\r\n", ch);
    assert_int_equal(it_write_all(fd, req, (size_t)n), 0);
    int samples = 0, not_ready = 0;
    char first[300] = "";
    /* Well inside the canary's timeout (1000 ms after the last probe
     * that came back). */
    while (it_now_ms() - t0 < 600) {
        char d[256];
        int st = readyz(d, sizeof(d));
        samples++;
        if (st != 200 && not_ready++ == 0) snprintf(first, sizeof(first), "%d %s", st, d);
        sleep_ms(20);
    }
    printf(
        "a new channel's SUBSCRIBE unconfirmed for 600 ms: %d readyz samples, %d not ready%s%s\n",
        samples, not_ready, not_ready ? ", the first: " : "", first);
    close(fd);
    assert_true(samples >= 10);
    assert_int_equal(not_ready, 0);
    /* Then the canary fires and the node comes back, as in the next test. */
    assert_true(it_wait_status(node.port, "/readyz", 503, 3000, 20) >= 0);
    assert_true(it_wait_status(node.port, "/readyz", 200, 5000, 20) >= 0);
}

static void
test_a_subscriber_link_that_stops_delivering_is_noticed_by_the_canary_and_nothing_is_lost(
    void **state) {
    (void)state;
    static follower fl;
    static publisher pb;
    memset(&fl, 0, sizeof(fl));
    memset(&pb, 0, sizeof(pb));
    channel_name(fl.ch, sizeof(fl.ch), "stalled");
    snprintf(pb.ch, sizeof(pb.ch), "%s", fl.ch);
    pthread_t ft, pt;
    assert_int_equal(pthread_create(&ft, NULL, follower_main, &fl), 0);
    assert_int_equal(pthread_create(&pt, NULL, publisher_main, &pb), 0);

    /* Delivery works: the first messages come live. */
    __atomic_store_n(&pb.limit, STALL_BEFORE, __ATOMIC_RELAXED);
    int before_ok = wait_int(&fl.next, STALL_BEFORE, 8000);
    relay_stats s0 = relay_read(&rl);
    double failures0 = metric("holdline_canary_failures_total");

    /* The subscriber connection stops delivering; the publisher goes on. */
    int stalled = relay_stall_subscribers(&rl);
    long long t_stall = it_now_ms();
    __atomic_store_n(&pb.limit, STALL_TOTAL, __ATOMIC_RELAXED);

    /* Watch /readyz and the canary gauge until readiness is back. */
    long long t_503 = -1, t_200 = -1, t_ok0 = -1, t_ok1 = -1;
    int next_at_503 = -1, other_detail = 0, samples = 0;
    char detail[256] = "", odd[256] = "";
    while (it_now_ms() - t_stall < 10000) {
        char d[256];
        int st = readyz(d, sizeof(d));
        long long now = it_now_ms();
        samples++;
        if (st == 503 && t_503 < 0) {
            t_503 = now;
            next_at_503 = __atomic_load_n(&fl.next, __ATOMIC_RELAXED);
            snprintf(detail, sizeof(detail), "%s", d);
        } else if (st == 503 && strcmp(d, CANARY_DETAIL) != 0 && other_detail++ == 0) {
            snprintf(odd, sizeof(odd), "%s", d);
        } else if (st == 200 && t_503 >= 0 && t_200 < 0) {
            t_200 = now;
        } else if (st != 200 && st != 503 && other_detail++ == 0) {
            snprintf(odd, sizeof(odd), "status %d", st);
        }
        double ok = metric("holdline_canary_ok");
        if (ok == 0 && t_ok0 < 0) t_ok0 = it_now_ms();
        if (ok == 1 && t_ok0 >= 0 && t_ok1 < 0) t_ok1 = it_now_ms();
        if (t_200 >= 0 && t_ok1 >= 0) break;
        sleep_ms(10);
    }
    relay_stats s1 = relay_read(&rl);
    double failures1 = metric("holdline_canary_failures_total");
    double ok1 = metric("holdline_canary_ok");
    int published_at_200 = __atomic_load_n(&pb.published, __ATOMIC_RELAXED);

    int all_published = wait_int(&pb.published, STALL_TOTAL, 10000);
    int all_got = wait_int(&fl.next, STALL_TOTAL, 10000);
    __atomic_store_n(&fl.stop, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&pb.stop, 1, __ATOMIC_RELAXED);
    pthread_join(pt, NULL);
    pthread_join(ft, NULL);
    /* The messages by when they were published: while the link was
     * stalled and nobody knew, while it was replaced, after. The first
     * came after the reconnect, none before. */
    long long first_after = -1, last_after = -1, live_lag = 0;
    int during_early = 0, published_stalled = 0, published_replacing = 0, published_after = 0;
    for (int k = STALL_BEFORE; k < STALL_TOTAL; k++) {
        long long at = pb.accepted_ms[k];
        int stalled_k = at > 0 && t_503 >= 0 && at < t_503;
        published_stalled += stalled_k;
        published_replacing += at > 0 && t_503 >= 0 && at >= t_503 && t_200 >= 0 && at < t_200;
        published_after += at > 0 && t_200 >= 0 && at >= t_200;
        if (fl.got_ms[k] == 0) continue;
        if (at > 0 && t_200 >= 0 && at >= t_200 && fl.got_ms[k] - at > live_lag)
            live_lag = fl.got_ms[k] - at;
        if (!stalled_k) continue;
        if (t_503 >= 0 && fl.got_ms[k] < t_503) during_early++;
        if (first_after < 0) first_after = fl.got_ms[k] - t_stall;
        last_after = fl.got_ms[k] - t_stall;
    }
    int warnings = log_count(CANARY_WARNING), backs = log_count(CANARY_BACK);
    relay_stats s2 = relay_read(&rl);

    printf("before the stall: %d messages delivered (%s), relay %d connections (%d subscriber, "
           "%d command), canary failures %g\n",
           STALL_BEFORE, before_ok ? "all" : "NOT all", s0.accepted, s0.subscribers, s0.commands,
           failures0);
    printf("stalled %d subscriber connection(s): /readyz 503 after %lld ms (\"%s\"), the "
           "follower then at %d; canary_ok 0 after %lld ms, 1 after %lld ms; /readyz 200 after "
           "%lld ms (%d samples, %d other answers%s%s); %d published by then: %d while stalled "
           "and not yet noticed, %d while the link was replaced; %d after\n",
           stalled, t_503 >= 0 ? t_503 - t_stall : -1, detail, next_at_503,
           t_ok0 >= 0 ? t_ok0 - t_stall : -1, t_ok1 >= 0 ? t_ok1 - t_stall : -1,
           t_200 >= 0 ? t_200 - t_stall : -1, samples, other_detail, odd[0] ? ": " : "", odd,
           published_at_200, published_stalled, published_replacing, published_after);
    printf("relay: %d connections (%d subscriber, %d command), the stalled one closed by the node "
           "%d time(s), %lld bytes from Redis dropped, %d open subscriber(s) now (%d stalled); "
           "canary failures %g -> %g, ok %g; log: %d warning(s), %d 'back' line(s)\n",
           s2.accepted, s2.subscribers, s2.commands, s1.stalled_closed_by_node, s2.dropped,
           s2.open_subscribers, s2.open_stalled, failures0, failures1, ok1, warnings, backs);
    printf("follower: %ld polls (%ld not 200: %d %d %d), messages 0..%d: %ld duplicates, %ld gaps, "
           "%ld missed, %ld foreign; those published in the stall arrived %lld..%lld ms after it "
           "(%d before the 503), those after the reconnect within %lld ms%s%s%s%s\n",
           fl.polls, fl.not_ok, fl.statuses[0], fl.statuses[1], fl.statuses[2], fl.next - 1,
           fl.dups, fl.gaps, fl.missed, fl.foreign, first_after, last_after, during_early, live_lag,
           fl.problem[0] ? "; " : "", fl.problem, pb.problem[0] ? "; " : "", pb.problem);

    assert_true(before_ok);
    assert_int_equal(s0.subscribers, 1);
    assert_int_equal(s0.commands, 1);
    assert_true(failures0 == 0);
    assert_int_equal(stalled, 1);
    /* Noticed within the canary's timeout, with the canary's reason. */
    assert_true(t_503 >= 0);
    assert_true(t_503 - t_stall >= CANARY_TIMEOUT_MS - CANARY_MS);
    assert_true(t_503 - t_stall <= NOTICE_MS);
    assert_string_equal(detail, CANARY_DETAIL);
    assert_int_equal(other_detail, 0);
    /* Nothing reached the follower while the link was stalled. */
    assert_int_equal(next_at_503, STALL_BEFORE);
    assert_int_equal(during_early, 0);
    assert_true(published_stalled >= 5);
    assert_true(published_replacing >= 1);
    assert_true(published_after >= 5);
    assert_true(t_ok0 >= 0);
    /* The worker dropped the stalled connection and subscribed anew; the
     * command link was never replaced. */
    assert_int_equal(s1.stalled_closed_by_node, 1);
    assert_int_equal(s2.subscribers, 2);
    assert_int_equal(s2.commands, 1);
    assert_int_equal(s2.open_subscribers, 1);
    assert_int_equal(s2.open_stalled, 0);
    assert_true(t_200 >= 0);
    assert_true(t_ok1 >= 0);
    assert_true(ok1 == 1);
    assert_true(failures1 == 1);
    assert_int_equal(warnings, 1);
    assert_int_equal(backs, 1);
    /* Every message, once, in order, the stall's too. */
    assert_string_equal(pb.problem, "");
    assert_true(all_published);
    assert_true(all_got);
    assert_string_equal(fl.problem, "");
    assert_int_equal(fl.next, STALL_TOTAL);
    assert_int_equal(fl.dups, 0);
    assert_int_equal(fl.gaps, 0);
    assert_int_equal(fl.missed, 0);
    /* And the canary stays quiet afterwards. */
    sleep_ms(1500);
    assert_true(metric("holdline_canary_failures_total") == 1);
    assert_int_equal(readyz(NULL, 0), 200);
}

int main(void) {
    /* IT_FILTER=<glob> runs only the matching tests. */
    if (getenv("IT_FILTER")) cmocka_set_test_filter(getenv("IT_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_subscriber_link_that_delivers_keeps_the_canary_quiet,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_subscriber_link_that_stops_delivering_is_noticed_by_the_canary_and_nothing_is_lost,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_new_channel_not_yet_confirmed_does_not_make_the_node_unready, setup, teardown),
    };
    return it_finish(
        cmocka_run_group_tests_name("canary (redis + relay + 1 node)", tests, NULL, NULL));
}
