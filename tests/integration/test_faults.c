/* Integration: faults around a running cluster, each test with its own real
 * redis-server and two real nodes. Redis killed with SIGKILL in the middle of
 * a stream and restarted from its append-only file; its pub/sub connections
 * cut with CLIENT KILL; Redis restarted empty; a node stopped with SIGTERM
 * while it holds a thousand waiters; Redis frozen with SIGSTOP so that only
 * the heartbeat can tell. Clients behave as the README asks: they send back
 * the last cursor they got, ask the nodes in turn and retry a publish that
 * was not confirmed with the same Idempotency-Key. Messages carry their own
 * number, so a gap, a duplicate and a reordering are told apart. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

/* A Redis server and the two nodes that use it. */
typedef struct cluster {
    it_redis redis;
    it_node a, b;
} cluster;

static cluster cl;

/* A Redis that a test froze with SIGSTOP; the teardown thaws it whatever
 * happened. */
static pid_t frozen_redis;

static const char *const node_env[] = {"HOLDLINE_HTTP_WORKERS=2", NULL};
static const char *const aof_args[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

static int cluster_start(const char *const redis_args[]) {
    memset(&cl, 0, sizeof(cl));
    if (it_redis_start_args(&cl.redis, redis_args) != 0) return -1;
    if (it_node_start_env(&cl.a, cl.redis.port, NULL, node_env) != 0) return -1;
    if (it_node_start_env(&cl.b, cl.redis.port, NULL, node_env) != 0) return -1;
    return 0;
}

static int setup(void **state) {
    (void)state;
    return cluster_start(NULL);
}

/* One node with one worker: whichever link reconnects first is the one
 * that set the epoch before. */
static int setup_single(void **state) {
    (void)state;
    static const char *const env[] = {"HOLDLINE_HTTP_WORKERS=1", NULL};
    memset(&cl, 0, sizeof(cl));
    if (it_redis_start(&cl.redis) != 0) return -1;
    return it_node_start_env(&cl.a, cl.redis.port, NULL, env);
}

static int setup_aof(void **state) {
    (void)state;
    return cluster_start(aof_args);
}

/* Stops what is still running; -1 unless every node that was still up
 * exited 0 without a crash report. */
static int teardown(void **state) {
    (void)state;
    if (frozen_redis > 0) {
        kill(frozen_redis, SIGCONT);
        frozen_redis = 0;
    }
    int bad = 0;
    it_node *nodes[] = {&cl.a, &cl.b};
    for (int i = 0; i < 2; i++) {
        if (nodes[i]->pid > 0) {
            int st = it_node_stop(nodes[i]);
            if (st != 0) {
                fprintf(stderr, "node on port %d exit status %d (want 0)\n", nodes[i]->port, st);
                bad = 1;
            }
        }
        if (nodes[i]->log[0] && it_log_has_crash(nodes[i]->log)) {
            fprintf(stderr, "sanitizer or crash report in %s\n", nodes[i]->log);
            bad = 1;
        }
    }
    it_redis_stop(&cl.redis);
    return bad ? -1 : 0;
}

static int node_port(int turn) {
    return turn % 2 ? cl.b.port : cl.a.port;
}

/* A channel name unique to this run. */
static void channel_name(char *out, size_t outlen, const char *tag) {
    snprintf(out, outlen, "%s-%ld", tag, (long)getpid());
}

/* POSTs data to channel, with an Idempotency-Key when key is not NULL.
 * Returns the status (0 without an answer) and fills j (free it). No
 * cmocka calls: publisher threads use it. */
static int publish(int port, const char *channel, const char *data, const char *key, it_json *j) {
    char path[300], hdr[128] = "";
    snprintf(path, sizeof(path), "/publish/%s", channel);
    if (key) snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s\r\n", key);
    it_resp r;
    memset(j, 0, sizeof(*j));
    if (it_http(port, "POST", path, data, strlen(data), hdr, 7000, &r) != 0) return 0;
    it_json_parse(r.body, j);
    int st = r.status;
    it_resp_free(&r);
    return st;
}

/* Publishes data and asserts a 201 with an id. */
static void publish_ok(int port, const char *channel, const char *data) {
    it_json j;
    int st = publish(port, channel, data, NULL, &j);
    if (st != 201 || j.id[0] == '\0') fail_msg("publish '%s' on %s: %d", data, channel, st);
    it_json_free(&j);
}

/* One poll; returns the status (0 without an answer within timeout + 3 s)
 * and fills j (free it) and *took. cursor NULL sends none. */
static int do_poll(int port, const char *channel, const char *cursor, int timeout, it_json *j,
                   long long *took) {
    char path[4600];
    snprintf(path, sizeof(path), "/poll/%s?timeout=%d%s%s", channel, timeout,
             cursor ? "&cursor=" : "", cursor ? cursor : "");
    it_resp r;
    long long t0 = it_now_ms();
    memset(j, 0, sizeof(*j));
    int rc = it_http(port, "GET", path, NULL, 0, NULL, (timeout + 3) * 1000, &r);
    if (took) *took = it_now_ms() - t0;
    if (rc != 0) return 0;
    it_json_parse(r.body, j);
    int st = r.status;
    it_resp_free(&r);
    return st;
}

/* The number a test message carries, or -1. */
static long msg_number(const it_msg *m) {
    size_t n = strlen(m->data);
    if (n == 0 || n > 15 || strspn(m->data, "0123456789") != n) return -1;
    return strtol(m->data, NULL, 10);
}

static long long xlen(const char *channel) {
    char key[300];
    snprintf(key, sizeof(key), "{holdline:%s}:log", channel);
    const char *argv[] = {"XLEN", key};
    return it_redis_int(cl.redis.port, 2, argv);
}

static long long numsub(const char *channel) {
    char ch[300];
    snprintf(ch, sizeof(ch), "holdline:%s", channel);
    const char *argv[] = {"PUBSUB", "NUMSUB", ch};
    return it_redis_int(cl.redis.port, 3, argv);
}

__attribute__((format(printf, 3, 4))) static void note(char *problem, size_t len, const char *fmt,
                                                       ...) {
    if (problem[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, len, fmt, ap);
    va_end(ap);
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* ---- idempotency ---- */

static void test_a_publish_repeated_with_its_idempotency_key_is_stored_once(void **state) {
    (void)state;
    char ch[64], other[64], key[64];
    channel_name(ch, sizeof(ch), "idem");
    channel_name(other, sizeof(other), "idem-other");
    snprintf(key, sizeof(key), "k-%ld.x_y:z", (long)getpid());
    it_json j1, j2, j3, j4;
    assert_int_equal(publish(cl.a.port, ch, "first", key, &j1), 201);
    /* The same key on the other node, even with another body: the first
     * publish's id, marked as a duplicate, and nothing new stored. */
    assert_int_equal(publish(cl.b.port, ch, "second", key, &j2), 201);
    assert_int_equal(publish(cl.a.port, ch, "first", key, &j3), 201);
    /* The same key on another channel is another message. */
    assert_int_equal(publish(cl.b.port, other, "first", key, &j4), 201);
    printf("idempotency: first id %s duplicate=%d; repeats: %s duplicate=%d, %s duplicate=%d; "
           "other channel %s duplicate=%d; stream lengths %lld and %lld\n",
           j1.id, j1.duplicate, j2.id, j2.duplicate, j3.id, j3.duplicate, j4.id, j4.duplicate,
           xlen(ch), xlen(other));
    assert_true(j1.id[0] != '\0');
    assert_int_not_equal(j1.duplicate, 1);
    assert_string_equal(j2.id, j1.id);
    assert_int_equal(j2.duplicate, 1);
    assert_string_equal(j3.id, j1.id);
    assert_int_equal(j3.duplicate, 1);
    assert_int_not_equal(j4.duplicate, 1);
    assert_int_equal(xlen(ch), 1);
    assert_int_equal(xlen(other), 1);
    /* A poll from the start sees the message once, with the first body. */
    it_json p;
    assert_int_equal(do_poll(cl.b.port, ch, "0", 1, &p, NULL), 200);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.msgs[0].data, "first");
    assert_string_equal(p.msgs[0].id, j1.id);
    it_json_free(&p);
    it_json_free(&j1);
    it_json_free(&j2);
    it_json_free(&j3);
    it_json_free(&j4);
}

/* ---- 1. Redis SIGKILLed mid-stream, restarted from its AOF ---- */

#define KILL_MESSAGES 300
#define KILL_AT 100 /* messages accepted before the kill */
#define KILL_CLIENTS 20
#define KILL_DOWN_MS 1000

typedef struct kill_run kill_run;

typedef struct kill_client {
    kill_run *run;
    pthread_t thread;
    int index;
    long next; /* the number the next message must carry */
    long polls, bad_answers, no_answer, missed, dups, gaps, slow_polls;
    long long recv_ms[KILL_MESSAGES]; /* when each number arrived */
    char problem[256];
} kill_client;

struct kill_run {
    char channel[64];
    kill_client client[KILL_CLIENTS];
    long long accepted_ms[KILL_MESSAGES]; /* when each publish got its 201 */
    int published;                        /* atomic: messages with a 201 */
    int burst;                            /* atomic: publish without pauses */
    int stop;                             /* atomic */
    long long deadline_ms;
    long attempts, answered_503, no_answer, duplicate_answers, other_status;
    char problem[256];
};

static void *kill_client_main(void *arg) {
    kill_client *c = arg;
    kill_run *run = c->run;
    char cursor[4096] = "0";
    int turn = c->index;
    while (!__atomic_load_n(&run->stop, __ATOMIC_RELAXED) && c->next < KILL_MESSAGES &&
           it_now_ms() < __atomic_load_n(&run->deadline_ms, __ATOMIC_RELAXED)) {
        it_json j;
        long long took;
        int st = do_poll(node_port(turn++), run->channel, cursor, 3, &j, &took);
        long long now = it_now_ms();
        c->polls++;
        if (took > 4000) c->slow_polls++;
        if (st == 0) {
            c->no_answer++;
            note(c->problem, sizeof(c->problem), "poll %ld: no answer in %lld ms", c->polls, took);
        } else if (st != 200 || !j.parsed || j.cursor[0] == '\0') {
            c->bad_answers++;
            note(c->problem, sizeof(c->problem), "poll %ld: status %d error '%s'", c->polls, st,
                 j.error);
        } else {
            if (j.missed != 0) {
                c->missed++;
                note(c->problem, sizeof(c->problem), "poll %ld: missed=%d", c->polls, j.missed);
            }
            for (size_t i = 0; i < j.n; i++) {
                long k = msg_number(&j.msgs[i]);
                if (k < 0 || k >= KILL_MESSAGES) {
                    c->gaps++;
                    note(c->problem, sizeof(c->problem), "message '%s' is not mine",
                         j.msgs[i].data);
                    continue;
                }
                if (k < c->next) {
                    c->dups++;
                    note(c->problem, sizeof(c->problem), "message %ld again (want %ld)", k,
                         c->next);
                    continue;
                }
                if (k > c->next) {
                    c->gaps++;
                    note(c->problem, sizeof(c->problem), "message %ld when %ld was due", k,
                         c->next);
                }
                c->recv_ms[k] = now;
                c->next = k + 1;
            }
            snprintf(cursor, sizeof(cursor), "%s", j.cursor);
        }
        int ok = st == 200;
        it_json_free(&j);
        if (!ok) sleep_ms(50);
    }
    return NULL;
}

static void *kill_publisher_main(void *arg) {
    kill_run *run = arg;
    for (int k = 0; k < KILL_MESSAGES; k++) {
        char data[16], key[64];
        snprintf(data, sizeof(data), "%d", k);
        snprintf(key, sizeof(key), "kill-%ld-%d", (long)getpid(), k);
        for (int attempt = 0;; attempt++) {
            it_json j;
            run->attempts++;
            int st = publish(node_port(k + attempt), run->channel, data, key, &j);
            int dup = j.duplicate == 1, has_id = j.id[0] != '\0';
            it_json_free(&j);
            if (st == 201 && has_id) {
                run->accepted_ms[k] = it_now_ms();
                run->duplicate_answers += dup;
                break;
            }
            if (st == 503)
                run->answered_503++;
            else if (st == 0)
                run->no_answer++;
            else
                run->other_status++;
            if (st != 503 && st != 0)
                note(run->problem, sizeof(run->problem), "publish %d: status %d", k, st);
            if (it_now_ms() > __atomic_load_n(&run->deadline_ms, __ATOMIC_RELAXED)) {
                note(run->problem, sizeof(run->problem), "publish %d: no 201 before the deadline",
                     k);
                return NULL;
            }
            sleep_ms(20);
        }
        __atomic_store_n(&run->published, k + 1, __ATOMIC_RELAXED);
        if (!__atomic_load_n(&run->burst, __ATOMIC_RELAXED)) sleep_ms(5);
    }
    return NULL;
}

static void test_redis_sigkilled_mid_stream_loses_nothing_and_duplicates_nothing(void **state) {
    (void)state;
    kill_run *run = calloc(1, sizeof(*run));
    channel_name(run->channel, sizeof(run->channel), "killed");
    run->deadline_ms = it_now_ms() + 40000;
    pid_t pid_a = cl.a.pid, pid_b = cl.b.pid;
    char out[256];
    const char *aof[] = {"CONFIG", "GET", "appendfsync"};
    assert_int_equal(it_redis_cmd(cl.redis.port, out, sizeof(out), 3, aof), 0);
    assert_non_null(strstr(out, "always"));

    for (int i = 0; i < KILL_CLIENTS; i++) {
        run->client[i].run = run;
        run->client[i].index = i;
        assert_int_equal(
            pthread_create(&run->client[i].thread, NULL, kill_client_main, &run->client[i]), 0);
    }
    sleep_ms(300);
    pthread_t publisher;
    assert_int_equal(pthread_create(&publisher, NULL, kill_publisher_main, run), 0);
    while (__atomic_load_n(&run->published, __ATOMIC_RELAXED) < KILL_AT &&
           it_now_ms() < run->deadline_ms)
        sleep_ms(2);
    /* Publishes back to back, so that one is in flight when Redis dies. */
    __atomic_store_n(&run->burst, 1, __ATOMIC_RELAXED);
    sleep_ms(10);
    int before = __atomic_load_n(&run->published, __ATOMIC_RELAXED);
    it_redis_stop(&cl.redis); /* SIGKILL */
    long long t_kill = it_now_ms();
    sleep_ms(KILL_DOWN_MS);
    int during = __atomic_load_n(&run->published, __ATOMIC_RELAXED);
    int restarted = it_redis_start_args(&cl.redis, aof_args);
    long long t_ping = it_now_ms(); /* it_redis_start_args returns at the first PONG */
    __atomic_store_n(&run->burst, 0, __ATOMIC_RELAXED);
    assert_int_equal(restarted, 0);

    pthread_join(publisher, NULL);
    long long t_published = it_now_ms();
    /* From here the clients have 10 s to catch up. */
    __atomic_store_n(&run->deadline_ms, t_published + 10000, __ATOMIC_RELAXED);
    /* Every client catches up, or is stopped at the deadline. */
    for (int i = 0; i < KILL_CLIENTS; i++)
        pthread_join(run->client[i].thread, NULL);
    __atomic_store_n(&run->stop, 1, __ATOMIC_RELAXED);

    /* The first message accepted after Redis came back, and when the clients
     * had it. */
    int first = -1;
    for (int k = 0; k < KILL_MESSAGES; k++)
        if (run->accepted_ms[k] >= t_ping) {
            first = k;
            break;
        }
    long long lat[KILL_CLIENTS];
    int have = 0;
    long polls = 0, bad = 0, none = 0, missed = 0, dups = 0, gaps = 0, slow = 0, incomplete = 0;
    for (int i = 0; i < KILL_CLIENTS; i++) {
        kill_client *c = &run->client[i];
        polls += c->polls;
        bad += c->bad_answers;
        none += c->no_answer;
        missed += c->missed;
        dups += c->dups;
        gaps += c->gaps;
        slow += c->slow_polls;
        incomplete += c->next != KILL_MESSAGES;
        if (c->problem[0]) printf("  client %d: %s\n", i, c->problem);
        if (first >= 0 && c->recv_ms[first] > 0) lat[have++] = c->recv_ms[first] - t_ping;
    }
    qsort(lat, (size_t)have, sizeof(lat[0]), cmp_ll);
    long long stored = xlen(run->channel);
    printf("redis SIGKILL after %d accepted publishes, %d more accepted while it was down for "
           "%lld ms; publisher: %ld attempts, %ld answered 503, %ld without answer, %ld other, %ld "
           "duplicate answers for retried keys; all %d accepted %lld ms after the restart\n",
           before, during - before, t_ping - t_kill, run->attempts, run->answered_503,
           run->no_answer, run->other_status, run->duplicate_answers, KILL_MESSAGES,
           t_published - t_ping);
    if (first >= 0)
        printf("  first message after the restart: #%d, accepted %lld ms after Redis answered PING "
               "again; received by %d of %d clients, %lld ms (median) / %lld ms (max) after the "
               "PING\n",
               first, run->accepted_ms[first] - t_ping, have, KILL_CLIENTS,
               have ? lat[have / 2] : -1, have ? lat[have - 1] : -1);
    printf("  %d clients, %ld polls: %ld duplicates, %ld gaps, %ld missed, %ld non-200, %ld "
           "unanswered, %ld over timeout+1 s, %ld incomplete; stream length %lld of %d\n",
           KILL_CLIENTS, polls, dups, gaps, missed, bad, none, slow, incomplete, stored,
           KILL_MESSAGES);
    if (run->problem[0]) printf("  publisher: %s\n", run->problem);

    assert_string_equal(run->problem, "");
    assert_int_equal(dups, 0);
    assert_int_equal(gaps, 0);
    assert_int_equal(missed, 0);
    assert_int_equal(bad, 0);
    assert_int_equal(none, 0);
    assert_int_equal(slow, 0);
    assert_int_equal(incomplete, 0);
    assert_int_equal(stored, KILL_MESSAGES);
    assert_true(first >= 0);
    assert_int_equal(have, KILL_CLIENTS);
    assert_true(lat[have - 1] < 2000);
    /* The same node processes served throughout. */
    assert_int_equal(cl.a.pid, pid_a);
    assert_int_equal(cl.b.pid, pid_b);
    assert_true(it_alive(pid_a));
    assert_true(it_alive(pid_b));
    free(run);
}

/* ---- 2. CLIENT KILL TYPE pubsub ---- */

/* Holds `n` polls with cursor on channel, alternating nodes. */
static void hold_polls(it_conn *c, int n, const char *channel, const char *const *cursors,
                       int timeout) {
    int *ports = calloc((size_t)n, sizeof(*ports));
    char **reqs = calloc((size_t)n, sizeof(*reqs));
    for (int i = 0; i < n; i++) {
        ports[i] = node_port(i);
        reqs[i] = malloc(4600);
        snprintf(reqs[i], 4600,
                 "GET /poll/%s?timeout=%d&cursor=%s HTTP/1.1\r\nHost: t\r\nConnection: "
                 "close\r\n\r\n",
                 channel, timeout, cursors[i]);
    }
    assert_int_equal(it_multi_open(c, (size_t)n, ports, (const char *const *)reqs), 0);
    for (int i = 0; i < n; i++)
        free(reqs[i]);
    free(reqs);
    free(ports);
}

static void test_waiters_get_messages_after_client_kill_type_pubsub(void **state) {
    (void)state;
    enum { N = 10 };
    char ch[64];
    channel_name(ch, sizeof(ch), "pskill");
    publish_ok(cl.a.port, ch, "1");
    it_json j;
    assert_int_equal(do_poll(cl.b.port, ch, "0", 1, &j, NULL), 200);
    assert_int_equal(j.n, 1);
    char cursor[N][4096];
    const char *cursors[N];
    for (int i = 0; i < N; i++) {
        snprintf(cursor[i], sizeof(cursor[i]), "%s", j.cursor);
        cursors[i] = cursor[i];
    }
    it_json_free(&j);

    for (int round = 0; round < 2; round++) {
        it_conn c[N];
        hold_polls(c, N, ch, cursors, 10);
        long long t = it_now_ms();
        while (numsub(ch) < 2 && it_now_ms() - t < 3000)
            sleep_ms(10);
        sleep_ms(200);
        long long subs_before = numsub(ch);
        long long killed = -1;
        if (round == 0) {
            const char *kill_argv[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
            killed = it_redis_int(cl.redis.port, 4, kill_argv);
        }
        /* Right after the kill (round 0), and a second later (round 1). */
        char data[8];
        snprintf(data, sizeof(data), "%d", round + 2);
        long long t0 = it_now_ms();
        publish_ok(node_port(round), ch, data);
        size_t got = it_multi_wait(c, N, 4000);
        long long took = it_now_ms() - t0;
        int right = 0;
        for (int i = 0; i < N; i++) {
            it_json a;
            it_json_parse(c[i].resp.body, &a);
            if (c[i].resp.status == 200 && a.n == 1 && strcmp(a.msgs[0].data, data) == 0 &&
                a.missed == 0) {
                right++;
                snprintf(cursor[i], sizeof(cursor[i]), "%s", a.cursor);
            } else {
                printf("  waiter %d: %d %s\n", i, c[i].resp.status,
                       c[i].resp.body ? c[i].resp.body : "(no answer)");
            }
            it_json_free(&a);
        }
        it_multi_free(c, N);
        printf("%s: %lld subscriptions on the channel before, CLIENT KILL killed %lld; message %s "
               "reached %d of %d waiters (%zu answered) within %lld ms\n",
               round == 0 ? "CLIENT KILL TYPE pubsub" : "one second later", subs_before, killed,
               data, right, N, got, took);
        assert_true(subs_before >= 2);
        if (round == 0) assert_true(killed >= 2);
        assert_int_equal(right, N);
        assert_true(took < 3000);
        if (round == 0) sleep_ms(1000);
    }
    assert_true(it_wait_status(cl.a.port, "/readyz", 200, 3000, 50) >= 0);
    assert_true(it_wait_status(cl.b.port, "/readyz", 200, 3000, 50) >= 0);
}

/* ---- 3. Redis restarted empty ---- */

#define EMPTY_CLIENTS 10
#define EMPTY_TIMEOUT 3
#define EMPTY_LAST 10 /* 1..5 before the restart, 6..10 after */

typedef struct empty_run empty_run;

typedef struct empty_client {
    empty_run *run;
    pthread_t thread;
    int index;
    char cursor[4096];
    long next;           /* after the missed answer: the number due next */
    int saw_missed;      /* atomic */
    long long missed_ms; /* when the missed answer came */
    long polls, missed, late, bad, dups, gaps, before_missed;
    long long worst_ms; /* the longest poll */
    char problem[256];
} empty_client;

struct empty_run {
    char channel[64];
    int ready; /* atomic: both nodes ready again after the restart */
    int stop;  /* atomic */
    empty_client client[EMPTY_CLIENTS];
};

static void *empty_client_main(void *arg) {
    empty_client *c = arg;
    empty_run *run = c->run;
    int turn = c->index;
    while (!__atomic_load_n(&run->stop, __ATOMIC_RELAXED) && c->next <= EMPTY_LAST) {
        it_json j;
        long long took;
        int st = do_poll(node_port(turn++), run->channel, c->cursor, EMPTY_TIMEOUT, &j, &took);
        c->polls++;
        if (took > c->worst_ms) c->worst_ms = took;
        if (took > EMPTY_TIMEOUT * 1000 + 1000) {
            c->late++;
            note(c->problem, sizeof(c->problem), "poll %ld answered after %lld ms", c->polls, took);
        }
        if (st != 200 || !j.parsed || j.cursor[0] == '\0' || j.missed < 0) {
            c->bad++;
            note(c->problem, sizeof(c->problem), "poll %ld: status %d error '%s'", c->polls, st,
                 j.error);
            it_json_free(&j);
            sleep_ms(50);
        } else {
            if (j.missed == 1) {
                c->missed++;
                if (c->saw_missed)
                    note(c->problem, sizeof(c->problem), "poll %ld: missed again", c->polls);
                c->missed_ms = it_now_ms();
                __atomic_store_n(&c->saw_missed, 1, __ATOMIC_RELAXED);
            }
            for (size_t i = 0; i < j.n; i++) {
                long k = msg_number(&j.msgs[i]);
                if (!c->saw_missed) {
                    c->before_missed++;
                    note(c->problem, sizeof(c->problem), "message '%s' before any missed",
                         j.msgs[i].data);
                } else if (k < c->next) {
                    c->dups++;
                    note(c->problem, sizeof(c->problem), "message %ld again (want %ld)", k,
                         c->next);
                } else {
                    if (k > c->next) {
                        c->gaps++;
                        note(c->problem, sizeof(c->problem), "message %ld when %ld was due", k,
                             c->next);
                    }
                    c->next = k + 1;
                }
            }
            snprintf(c->cursor, sizeof(c->cursor), "%s", j.cursor);
            it_json_free(&j);
        }
        /* The poll held across the restart is the one under test; the next
         * ones go out once both nodes say they are ready. */
        while (!__atomic_load_n(&run->ready, __ATOMIC_RELAXED) &&
               !__atomic_load_n(&run->stop, __ATOMIC_RELAXED))
            sleep_ms(10);
    }
    return NULL;
}

static void test_redis_restarted_empty_tells_cursor_holders_they_missed(void **state) {
    (void)state;
    empty_run *run = calloc(1, sizeof(*run));
    channel_name(run->channel, sizeof(run->channel), "emptied");
    for (int k = 1; k <= 5; k++) {
        char data[8];
        snprintf(data, sizeof(data), "%d", k);
        publish_ok(node_port(k), run->channel, data);
    }
    it_json j;
    assert_int_equal(do_poll(cl.b.port, run->channel, "0", 1, &j, NULL), 200);
    assert_int_equal(j.n, 5);
    for (int i = 0; i < EMPTY_CLIENTS; i++) {
        empty_client *c = &run->client[i];
        c->run = run;
        c->index = i;
        c->next = 6;
        snprintf(c->cursor, sizeof(c->cursor), "%s", j.cursor);
    }
    it_json_free(&j);
    for (int i = 0; i < EMPTY_CLIENTS; i++)
        assert_int_equal(
            pthread_create(&run->client[i].thread, NULL, empty_client_main, &run->client[i]), 0);
    sleep_ms(500); /* every client holds a poll with its cursor */

    it_redis_stop(&cl.redis);
    long long t0 = it_now_ms();
    int restarted = it_redis_start(&cl.redis); /* same port, no data */
    long long t_ping = it_now_ms();
    long long ra = it_wait_status(cl.a.port, "/readyz", 200, 8000, 20);
    long long rb = it_wait_status(cl.b.port, "/readyz", 200, 8000, 20);
    long long t_ready = it_now_ms();
    __atomic_store_n(&run->ready, 1, __ATOMIC_RELAXED);
    if (restarted != 0 || ra < 0 || rb < 0) __atomic_store_n(&run->stop, 1, __ATOMIC_RELAXED);
    assert_int_equal(restarted, 0);
    assert_true(ra >= 0 && rb >= 0);

    /* Every client is told it missed messages... */
    int told = 0;
    while (it_now_ms() - t_ready < 6000) {
        told = 0;
        for (int i = 0; i < EMPTY_CLIENTS; i++)
            told += __atomic_load_n(&run->client[i].saw_missed, __ATOMIC_RELAXED);
        if (told == EMPTY_CLIENTS) break;
        sleep_ms(20);
    }
    long long t_told = it_now_ms();
    /* ...then gets what is published after the restart, once and in order. */
    for (int k = 6; k <= EMPTY_LAST; k++) {
        char data[8];
        snprintf(data, sizeof(data), "%d", k);
        publish_ok(node_port(k), run->channel, data);
    }
    for (int waited = 0; waited < 1000; waited++) {
        int done = 0;
        for (int i = 0; i < EMPTY_CLIENTS; i++)
            done += __atomic_load_n(&run->client[i].next, __ATOMIC_RELAXED) > EMPTY_LAST;
        if (done == EMPTY_CLIENTS) break;
        sleep_ms(10);
    }
    __atomic_store_n(&run->stop, 1, __ATOMIC_RELAXED);
    long polls = 0, missed = 0, late = 0, bad = 0, dups = 0, gaps = 0, before = 0, behind = 0,
         twice = 0;
    long long worst = 0, first_missed = -1, last_missed = -1;
    for (int i = 0; i < EMPTY_CLIENTS; i++) {
        empty_client *c = &run->client[i];
        pthread_join(c->thread, NULL);
        polls += c->polls;
        missed += c->missed;
        twice += c->missed > 1;
        late += c->late;
        bad += c->bad;
        dups += c->dups;
        gaps += c->gaps;
        before += c->before_missed;
        behind += c->next <= EMPTY_LAST;
        if (c->worst_ms > worst) worst = c->worst_ms;
        if (c->saw_missed) {
            long long m = c->missed_ms - t0;
            if (first_missed < 0 || m < first_missed) first_missed = m;
            if (m > last_missed) last_missed = m;
        }
        if (c->problem[0]) printf("  client %d: %s\n", i, c->problem);
    }
    printf("redis restarted empty: PONG %lld ms after the kill, nodes ready after %lld / %lld ms; "
           "%d of %d clients told missed, %lld..%lld ms after the kill (all within %lld ms of "
           "ready)\n",
           t_ping - t0, ra, rb, told, EMPTY_CLIENTS, first_missed, last_missed, t_told - t_ready);
    printf("  %ld polls (timeout %d s), longest %lld ms: %ld missed answers (%ld clients twice), "
           "%ld late, %ld bad, %ld duplicates, %ld gaps, %ld messages before missed, %ld clients "
           "without 6..%d\n",
           polls, EMPTY_TIMEOUT, worst, missed, twice, late, bad, dups, gaps, before, behind,
           EMPTY_LAST);
    free(run);
    assert_int_equal(told, EMPTY_CLIENTS);
    assert_int_equal(twice, 0);
    assert_int_equal(late, 0);
    assert_int_equal(bad, 0);
    assert_int_equal(dups, 0);
    assert_int_equal(gaps, 0);
    assert_int_equal(before, 0);
    assert_int_equal(behind, 0);
}

/* The same with a single worker, so that the outcome does not depend on
 * which of several workers reconnects first: the worker that drew the
 * epoch before the data loss must not bring the same epoch back. */
static void
test_redis_restarted_empty_under_one_worker_tells_its_clients_they_missed(void **state) {
    (void)state;
    char ch[64];
    channel_name(ch, sizeof(ch), "emptied1");
    for (int k = 1; k <= 3; k++) {
        char data[8];
        snprintf(data, sizeof(data), "%d", k);
        publish_ok(cl.a.port, ch, data);
    }
    it_json j;
    assert_int_equal(do_poll(cl.a.port, ch, "0", 1, &j, NULL), 200);
    assert_int_equal(j.n, 3);
    char cursor[4096], before[4096];
    snprintf(cursor, sizeof(cursor), "%s", j.cursor);
    it_json_free(&j);
    /* A cursor the node handed out after the restart differs in its epoch
     * from the one before. */
    assert_int_equal(do_poll(cl.a.port, ch, NULL, 1, &j, NULL), 200);
    snprintf(before, sizeof(before), "%s", j.cursor);
    it_json_free(&j);

    it_redis_stop(&cl.redis);
    assert_int_equal(it_redis_start(&cl.redis), 0);
    long long ready = it_wait_status(cl.a.port, "/readyz", 200, 8000, 20);
    assert_true(ready >= 0);
    long long took;
    int st = do_poll(cl.a.port, ch, cursor, 3, &j, &took);
    int missed = j.missed;
    size_t n = j.n;
    char after[4096];
    it_json_free(&j);
    assert_int_equal(do_poll(cl.a.port, ch, NULL, 1, &j, NULL), 200);
    snprintf(after, sizeof(after), "%s", j.cursor);
    it_json_free(&j);
    printf("one worker, redis restarted empty: ready after %lld ms; the old cursor got %d "
           "missed=%d with %zu messages after %lld ms; cursor before %s, after %s\n",
           ready, st, missed, n, took, before, after);
    assert_int_equal(st, 200);
    assert_int_equal(missed, 1);
    assert_true(took < 1000);
    assert_true(strcspn(before, ":") != strcspn(after, ":") ||
                strncmp(before, after, strcspn(before, ":")) != 0);
}

/* ---- 4. SIGTERM with a thousand waiters ---- */

#define TERM_WAITERS 1000
#define TERM_CHANNELS 4
#define TERM_LAST 203 /* messages 0..3 before the waiters, 4..203 around the SIGTERM */

typedef struct term_run {
    char channel[TERM_CHANNELS][64];
    int port;
    int published; /* atomic: the highest number with a 201, -1 before */
    int failed;    /* atomic */
    char problem[256];
} term_run;

/* Message k goes to channel k % TERM_CHANNELS, all through one node. */
static void *term_publisher_main(void *arg) {
    term_run *run = arg;
    for (int k = 4; k <= TERM_LAST; k++) {
        char data[16];
        snprintf(data, sizeof(data), "%d", k);
        it_json j;
        int st = publish(run->port, run->channel[k % TERM_CHANNELS], data, NULL, &j);
        it_json_free(&j);
        if (st != 201) {
            note(run->problem, sizeof(run->problem), "publish %d: status %d", k, st);
            __atomic_store_n(&run->failed, 1, __ATOMIC_RELAXED);
            return NULL;
        }
        __atomic_store_n(&run->published, k, __ATOMIC_RELAXED);
        sleep_ms(10);
    }
    return NULL;
}

typedef struct term_client {
    int ch;
    long next; /* the number due next on its channel */
    char cursor[4096];
} term_client;

/* Checks an answer's messages against the client's next number and takes
 * its cursor; returns 0, or -1 with the reason in why. */
static int term_take(term_client *tc, const it_resp *r, char *why, size_t whylen) {
    it_json j;
    it_json_parse(r->body, &j);
    int rc = 0;
    if (r->status != 200 || !j.parsed || j.cursor[0] == '\0') {
        snprintf(why, whylen, "status %d body %.80s", r->status, r->body ? r->body : "");
        rc = -1;
    } else if (j.missed != 0) {
        snprintf(why, whylen, "missed=%d", j.missed);
        rc = -1;
    } else {
        for (size_t i = 0; i < j.n && rc == 0; i++) {
            long k = msg_number(&j.msgs[i]);
            if (k != tc->next) {
                snprintf(why, whylen, "message %ld when %ld was due", k, tc->next);
                rc = -1;
            }
            tc->next += TERM_CHANNELS;
        }
        snprintf(tc->cursor, sizeof(tc->cursor), "%s", j.cursor);
    }
    it_json_free(&j);
    return rc;
}

static void test_sigterm_hands_1000_waiters_their_cursor_and_they_continue_elsewhere(void **state) {
    (void)state;
    enum { N = TERM_WAITERS };
    /* Static: the publisher thread must never see a dead stack frame, even
     * when an assertion below ends the test early. */
    static term_run run;
    memset(&run, 0, sizeof(run));
    run.port = cl.b.port;
    run.published = -1;
    char cursor0[TERM_CHANNELS][4096];
    for (int c = 0; c < TERM_CHANNELS; c++) {
        char tag[16], data[8];
        snprintf(tag, sizeof(tag), "term%d", c);
        channel_name(run.channel[c], sizeof(run.channel[c]), tag);
        snprintf(data, sizeof(data), "%d", c);
        publish_ok(cl.b.port, run.channel[c], data);
        it_json j;
        assert_int_equal(do_poll(cl.b.port, run.channel[c], "0", 1, &j, NULL), 200);
        assert_int_equal(j.n, 1);
        snprintf(cursor0[c], sizeof(cursor0[c]), "%s", j.cursor);
        it_json_free(&j);
    }

    term_client *tc = calloc(N, sizeof(*tc));
    it_conn *c = calloc(N, sizeof(*c));
    int *ports = calloc(N, sizeof(*ports));
    char **reqs = calloc(N, sizeof(*reqs));
    for (int i = 0; i < N; i++) {
        tc[i].ch = i % TERM_CHANNELS;
        tc[i].next = 4 + tc[i].ch;
        snprintf(tc[i].cursor, sizeof(tc[i].cursor), "%s", cursor0[tc[i].ch]);
        ports[i] = cl.a.port;
        reqs[i] = malloc(4600);
        /* Keep-alive requests: the answer must close the connection. */
        snprintf(reqs[i], 4600, "GET /poll/%s?timeout=60&cursor=%s HTTP/1.1\r\nHost: t\r\n\r\n",
                 run.channel[tc[i].ch], tc[i].cursor);
    }
    assert_int_equal(it_multi_open(c, N, ports, (const char *const *)reqs), 0);
    sleep_ms(800);
    assert_int_equal(it_multi_wait(c, N, 10), 0); /* all held */

    pthread_t publisher;
    assert_int_equal(pthread_create(&publisher, NULL, term_publisher_main, &run), 0);
    while (__atomic_load_n(&run.published, __ATOMIC_RELAXED) < 4 &&
           !__atomic_load_n(&run.failed, __ATOMIC_RELAXED))
        sleep_ms(1);
    /* Message 4 is out; the SIGTERM comes while the publisher goes on. */
    pid_t pid_a = cl.a.pid;
    long long t0 = it_now_ms();
    kill(pid_a, SIGTERM);
    size_t answered = it_multi_wait(c, N, 3000);
    long long t_answered = it_now_ms() - t0;
    int st = it_stop(pid_a, 0, 10000);
    long long t_exit = it_now_ms() - t0;
    cl.a.pid = 0;

    int ok = 0, empty_same = 0, with_msgs = 0, closing = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        char conn[32] = "", why[160];
        int close_hdr = it_resp_header(&c[i].resp, "Connection", conn, sizeof(conn)) == 0 &&
                        strcasecmp(conn, "close") == 0;
        it_json j;
        it_json_parse(c[i].resp.body, &j);
        size_t n = j.n;
        /* The stopping node's answers send the client elsewhere; those
         * with a message may have been sent before the SIGTERM. */
        if (n == 0) closing += close_hdr;
        int same = strcmp(j.cursor, tc[i].cursor) == 0;
        it_json_free(&j);
        if (term_take(&tc[i], &c[i].resp, why, sizeof(why)) != 0) {
            if (wrong++ < 5) printf("  waiter %d: %s\n", i, why);
            continue;
        }
        ok++;
        if (n == 0 && same) empty_same++;
        if (n > 0) with_msgs++;
        if (n == 0 && !same && wrong++ < 5)
            printf("  waiter %d: no messages and cursor %s, not its own %s\n", i, tc[i].cursor,
                   cursor0[tc[i].ch]);
    }
    it_multi_free(c, N);
    printf("SIGTERM with %d waiters: %zu answered within %lld ms (%d with their own cursor and no "
           "message, %d with messages, %d of the empty ones with Connection: close); node exited "
           "with status %d after "
           "%lld ms\n",
           N, answered, t_answered, empty_same, with_msgs, closing, st, t_exit);

    /* They go on at the other node, with the cursors they were handed,
     * while the publisher goes on. */
    long long t_repoll = it_now_ms();
    int rounds = 0, incomplete = N, bad = 0;
    while (incomplete > 0 && it_now_ms() - t_repoll < 15000) {
        int pub_done = __atomic_load_n(&run.published, __ATOMIC_RELAXED) == TERM_LAST ||
                       __atomic_load_n(&run.failed, __ATOMIC_RELAXED);
        int *idx = calloc(N, sizeof(*idx));
        int m = 0;
        for (int i = 0; i < N; i++) {
            if (tc[i].next > TERM_LAST && pub_done) continue;
            idx[m] = i;
            ports[m] = cl.b.port;
            snprintf(reqs[m], 4600,
                     "GET /poll/%s?timeout=1&cursor=%s HTTP/1.1\r\nHost: t\r\nConnection: "
                     "close\r\n\r\n",
                     run.channel[tc[i].ch], tc[i].cursor);
            m++;
        }
        incomplete = m;
        if (m == 0) {
            free(idx);
            break;
        }
        rounds++;
        assert_int_equal(it_multi_open(c, (size_t)m, ports, (const char *const *)reqs), 0);
        it_multi_wait(c, (size_t)m, 5000);
        for (int k = 0; k < m; k++) {
            char why[160];
            if (term_take(&tc[idx[k]], &c[k].resp, why, sizeof(why)) != 0 && bad++ < 5)
                printf("  client %d on node B: %s\n", idx[k], why);
        }
        it_multi_free(c, (size_t)m);
        free(idx);
        if (bad) break;
    }
    pthread_join(publisher, NULL);
    printf("  on node B: %d rounds of re-polls in %lld ms, %d clients short of message %d, %d "
           "bad answers (gaps, duplicates, missed)\n",
           rounds, it_now_ms() - t_repoll, incomplete, TERM_LAST, bad);
    for (int i = 0; i < N; i++)
        free(reqs[i]);
    free(reqs);
    free(ports);
    free(c);
    free(tc);
    assert_string_equal(run.problem, "");
    assert_int_equal(answered, N);
    assert_true(t_answered < 1000);
    assert_int_equal(ok, N);
    assert_int_equal(wrong, 0);
    assert_int_equal(closing, empty_same);
    assert_true(empty_same >= N / 2);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(t_exit < 5000);
    assert_int_equal(bad, 0);
    assert_int_equal(incomplete, 0);
    assert_false(it_log_has_crash(cl.a.log));
}

/* ---- 5. heartbeat ---- */

static void test_a_frozen_redis_is_detected_by_the_heartbeat(void **state) {
    (void)state;
    char ch[64], path[128];
    channel_name(ch, sizeof(ch), "frozen");
    snprintf(path, sizeof(path), "GET /poll/%s?timeout=4 HTTP/1.1\r\nHost: t\r\n\r\n", ch);
    const char *reqs[] = {path};
    it_conn held;
    assert_int_equal(it_multi_open(&held, 1, &cl.a.port, reqs), 0);
    long long t_held = it_now_ms();
    sleep_ms(300);

    frozen_redis = cl.redis.pid;
    kill(frozen_redis, SIGSTOP);
    long long t0 = it_now_ms();
    long long down_a = -1, down_b = -1;
    char detail[256] = "", error[64] = "";
    while ((down_a < 0 || down_b < 0) && it_now_ms() - t0 < 8000) {
        for (int i = 0; i < 2; i++) {
            long long *down = i ? &down_b : &down_a;
            if (*down >= 0) continue;
            it_resp r;
            if (it_http(node_port(i), "GET", "/readyz", NULL, 0, NULL, 1000, &r) != 0) continue;
            if (r.status == 503) {
                *down = it_now_ms() - t0;
                it_json j;
                it_json_parse(r.body, &j);
                if (detail[0] == '\0') {
                    snprintf(detail, sizeof(detail), "%s", j.detail);
                    snprintf(error, sizeof(error), "%s", j.error);
                }
                it_json_free(&j);
            }
            it_resp_free(&r);
        }
        sleep_ms(50);
    }
    /* A publish now is refused, quickly. */
    it_json pj;
    long long tp = it_now_ms();
    int pub = publish(cl.b.port, ch, "frozen", NULL, &pj);
    long long pub_ms = it_now_ms() - tp;
    char pub_error[64];
    snprintf(pub_error, sizeof(pub_error), "%s", pj.error);
    it_json_free(&pj);
    /* The poll held through it times out as usual. */
    size_t got = it_multi_wait(&held, 1, 6000);
    long long held_ms = it_now_ms() - t_held;
    it_json hj;
    it_json_parse(held.resp.body, &hj);
    int held_status = held.resp.status;
    size_t held_n = hj.n;
    it_json_free(&hj);
    it_multi_free(&held, 1);

    kill(frozen_redis, SIGCONT);
    frozen_redis = 0;
    long long t1 = it_now_ms();
    long long up_a = it_wait_status(cl.a.port, "/readyz", 200, 8000, 20);
    long long up_b = it_wait_status(cl.b.port, "/readyz", 200, 8000, 20);
    long long up = it_now_ms() - t1;
    printf("redis SIGSTOPped: /readyz 503 after %lld ms (A) and %lld ms (B): %s \"%s\"; publish "
           "meanwhile %d %s in %lld ms; poll held through it answered %d with %zu messages after "
           "%lld ms (timeout 4 s); after SIGCONT /readyz 200 after %lld ms (A) and %lld ms (B)\n",
           down_a, down_b, error, detail, pub, pub_error, pub_ms, held_status, held_n, held_ms,
           up_a, up_b);
    assert_true(down_a >= 0 && down_a <= 5500);
    assert_true(down_b >= 0 && down_b <= 5500);
    assert_string_equal(error, "not_ready");
    assert_non_null(strcasestr(detail, "redis"));
    assert_int_equal(pub, 503);
    assert_int_equal(got, 1);
    assert_int_equal(held_status, 200);
    assert_int_equal(held_n, 0);
    assert_in_range(held_ms, 3800, 5500);
    assert_true(up_a >= 0 && up_b >= 0);
    assert_true(up <= 3500);

    /* Publish and poll work again, across the nodes. */
    it_json j;
    assert_int_equal(do_poll(cl.b.port, ch, NULL, 1, &j, NULL), 200);
    char cursor[4096];
    snprintf(cursor, sizeof(cursor), "%s", j.cursor);
    it_json_free(&j);
    publish_ok(cl.a.port, ch, "thawed");
    assert_int_equal(do_poll(cl.b.port, ch, cursor, 3, &j, NULL), 200);
    assert_int_equal(j.n, 1);
    assert_string_equal(j.msgs[0].data, "thawed");
    it_json_free(&j);
}

int main(void) {
    /* IT_FILTER=<glob> runs only the matching tests. */
    if (getenv("IT_FILTER")) cmocka_set_test_filter(getenv("IT_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_a_publish_repeated_with_its_idempotency_key_is_stored_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_redis_sigkilled_mid_stream_loses_nothing_and_duplicates_nothing, setup_aof,
            teardown),
        cmocka_unit_test_setup_teardown(test_waiters_get_messages_after_client_kill_type_pubsub,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restarted_empty_tells_cursor_holders_they_missed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_redis_restarted_empty_under_one_worker_tells_its_clients_they_missed, setup_single,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_sigterm_hands_1000_waiters_their_cursor_and_they_continue_elsewhere, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_a_frozen_redis_is_detected_by_the_heartbeat, setup,
                                        teardown),
    };
    return it_finish(cmocka_run_group_tests_name("faults (redis + 2 nodes)", tests, NULL, NULL));
}
