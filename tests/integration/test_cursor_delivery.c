/* Integration: cursors. A client that always sends back the last cursor it
 * received gets every message of its channels once and in stream order,
 * whichever node it asks. When the server cannot prove that (history
 * trimmed by MAXLEN, Redis flushed, a cursor from nowhere) the answer says
 * "missed":true at once, and the client goes on from the new cursor without
 * a further gap. A real redis-server and two real nodes on loopback, driven
 * over HTTP and redis-cli from outside.
 *
 * Messages carry their own number as data, so a reader can tell a gap, a
 * duplicate and a reordering apart. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "itrun.h"

/* A Redis server and the two nodes that use it. */
typedef struct cluster {
    it_redis redis;
    it_node a, b;
} cluster;

/* The group's cluster, and one with a short history that the tests about
 * trimming and flushing start for themselves. cl is the one in use. */
static cluster main_cluster, short_cluster;
static cluster *cl = &main_cluster;

/* Short linger so that "no node caches the channel any more" is a short
 * wait; two workers per node as in test_cluster. */
#define LINGER_MS 400
#define CURSOR_MAX 2048
#define MAX_MESSAGES 100 /* poll.max_messages, default */

static int cluster_start(cluster *c, const char *history_length) {
    memset(c, 0, sizeof(*c));
    setenv("HOLDLINE_POLL_LINGER_MS", "400", 1);
    setenv("HOLDLINE_HTTP_WORKERS", "2", 1);
    if (history_length) setenv("HOLDLINE_HISTORY_LENGTH", history_length, 1);
    int rc = -1;
    if (it_redis_start(&c->redis) == 0 && it_node_start(&c->a, c->redis.port, NULL) == 0 &&
        it_node_start(&c->b, c->redis.port, NULL) == 0)
        rc = 0;
    unsetenv("HOLDLINE_HISTORY_LENGTH");
    return rc;
}

/* Stops both nodes and Redis; -1 unless both nodes exited 0 without a
 * crash report. */
static int cluster_stop(cluster *c) {
    int a = it_node_stop(&c->a), b = it_node_stop(&c->b);
    it_redis_stop(&c->redis);
    int bad = 0;
    if (a != 0 || b != 0) {
        fprintf(stderr, "node exit status: a=%d b=%d (want 0)\n", a, b);
        bad = 1;
    }
    if (it_log_has_crash(c->a.log) || it_log_has_crash(c->b.log)) {
        fprintf(stderr, "sanitizer or crash report in %s or %s\n", c->a.log, c->b.log);
        bad = 1;
    }
    return bad ? -1 : 0;
}

/* History long enough for every message of the stress runs (5,000 over 3
 * channels), so that a client starting at cursor 0 can get them all even
 * when it falls far behind the publisher; with the default 1000 a slow
 * client would rightly be told it missed some. */
static int setup(void **state) {
    (void)state;
    return cluster_start(&main_cluster, "20000");
}

static int teardown(void **state) {
    (void)state;
    return cluster_stop(&main_cluster);
}

/* Approximate trimming (MAXLEN ~ 10) still keeps about a hundred entries,
 * so the tests that need trimming publish several hundred. */
static int setup_short_history(void **state) {
    (void)state;
    if (cluster_start(&short_cluster, "10") != 0) return -1;
    cl = &short_cluster;
    return 0;
}

static int teardown_short_history(void **state) {
    (void)state;
    cl = &main_cluster;
    return cluster_stop(&short_cluster);
}

/* Clients switch node on every poll: A, B, A, ... */
static int node_port(int turn) {
    return turn % 2 ? cl->b.port : cl->a.port;
}

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

/* A channel name unique to this run. */
static void channel_name(char *out, size_t outlen, const char *tag) {
    snprintf(out, outlen, "%s-%ld", tag, (long)getpid());
}

typedef it_msg poll_msg;

/* One answer to a poll (or any JSON answer), as far as these tests look. */
typedef struct poll_answer {
    int status;              /* 0 if no answer arrived */
    int parsed;              /* 1 if the body read as the JSON object expected */
    char cursor[CURSOR_MAX]; /* "cursor" of the body */
    char header[CURSOR_MAX]; /* the Holdline-Cursor header */
    int has_header;
    int missed;     /* "missed": 1, 0, or -1 when absent */
    char error[64]; /* "error" of an error answer */
    poll_msg *msgs; /* malloc'd; free with answer_free */
    size_t n, cap;
    char body[160]; /* the start of the body, for failure messages */
    long long took_ms;
} poll_answer;

static void answer_free(poll_answer *a) {
    free(a->msgs);
    a->msgs = NULL;
    a->n = a->cap = 0;
}

/* Fills a from an HTTP answer (r may be one that never arrived). */
static void answer_from_resp(const it_resp *r, poll_answer *a) {
    memset(a, 0, sizeof(*a));
    a->missed = -1;
    a->status = r->status;
    if (r->status == 0) return;
    a->has_header = it_resp_header(r, "Holdline-Cursor", a->header, sizeof(a->header)) == 0;
    if (r->body == NULL) return;
    snprintf(a->body, sizeof(a->body), "%s", r->body);
    it_json j;
    a->parsed = it_json_parse(r->body, &j) == 0 && strlen(j.cursor) < sizeof(a->cursor);
    snprintf(a->cursor, sizeof(a->cursor), "%s", j.cursor);
    snprintf(a->error, sizeof(a->error), "%s", j.error);
    a->missed = j.missed;
    a->msgs = j.msgs; /* taken over */
    a->n = j.n;
    a->cap = j.cap;
}

/* Appends s for a query string: with escape, every byte but A-Z a-z 0-9
 * - . _ ~ becomes %XX; without, ':' and ',' go as they are too. Returns 0,
 * or -1 if out is too small. */
static int url_put(char *out, size_t outlen, const char *s, int escape) {
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
                    (!escape && (*p == ':' || *p == ','));
        if (n + 4 >= outlen) return -1;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            n += (size_t)snprintf(out + n, outlen - n, "%%%02X", *p);
        }
    }
    out[n] = '\0';
    return 0;
}

/* "/poll/<channels>?cursor=<cursor>&timeout=<s>"; cursor NULL sends none. */
static void poll_path(char *out, size_t outlen, const char *channels, const char *cursor,
                      int escape, int timeout) {
    snprintf(out, outlen, "/poll/%s?", channels);
    if (cursor) {
        snprintf(out + strlen(out), outlen - strlen(out), "cursor=");
        if (url_put(out, outlen, cursor, escape) != 0) out[0] = '\0';
        snprintf(out + strlen(out), outlen - strlen(out), "&");
    }
    snprintf(out + strlen(out), outlen - strlen(out), "timeout=%d", timeout);
}

/* One poll on port. headers (may be NULL) end in CRLF. Safe to call from
 * several threads: it_http uses its own connection and no shared state. */
static void do_poll(int port, const char *channels, const char *cursor, int escape, int timeout,
                    const char *headers, poll_answer *a) {
    char path[CURSOR_MAX * 3 + 512];
    poll_path(path, sizeof(path), channels, cursor, escape, timeout);
    it_resp r;
    long long t0 = it_now_ms();
    int rc = it_http(port, "GET", path, NULL, 0, headers, (timeout + 3) * 1000, &r);
    if (rc != 0) memset(&r, 0, sizeof(r));
    answer_from_resp(&r, a);
    a->took_ms = it_now_ms() - t0;
    it_resp_free(&r);
}

/* The number a test message carries, or -1 if data is not a decimal. */
static long msg_number(const poll_msg *m) {
    size_t n = strlen(m->data);
    if (n == 0 || n > 15 || strspn(m->data, "0123456789") != n) return -1;
    return strtol(m->data, NULL, 10);
}

/* POSTs data to channel; returns the status (0 without an answer) and
 * copies the answer's "id" into id[64] if id is not NULL. No cmocka calls:
 * the stress publisher may run beside client threads. */
static int publish(int port, const char *channel, const char *data, char *id) {
    char path[300];
    snprintf(path, sizeof(path), "/publish/%s", channel);
    it_resp r;
    if (it_http(port, "POST", path, data, strlen(data), NULL, 5000, &r) != 0) return 0;
    if (id) {
        it_json j;
        id[0] = '\0';
        if (it_json_parse(r.body, &j) == 0) snprintf(id, 64, "%s", j.id);
        it_json_free(&j);
    }
    int status = r.status;
    it_resp_free(&r);
    return status;
}

/* publish, retrying a 503 (or no answer) until timeout_ms has passed. */
static int publish_retry(int port, const char *channel, const char *data, char *id,
                         int timeout_ms) {
    long long end = it_now_ms() + timeout_ms;
    for (;;) {
        int st = publish(port, channel, data, id);
        if ((st != 503 && st != 0) || it_now_ms() >= end) return st;
        sleep_ms(20);
    }
}

/* Publishes the numbers from..to (data = the number) alternating nodes,
 * starting on node `turn`, and asserts each got 201 with a stream id. */
static void publish_numbers(const char *channel, long from, long to, int turn) {
    for (long k = from; k <= to; k++) {
        char data[32], id[64];
        snprintf(data, sizeof(data), "%ld", k);
        int st = publish_retry(node_port(turn++), channel, data, id, 5000);
        if (st != 201) fail_msg("publish %ld on %s: status %d", k, channel, st);
        unsigned long long ms, seq;
        if (it_id_parse(id, &ms, &seq) != 0)
            fail_msg("publish %ld: id '%s' is not a stream id", k, id);
    }
}

/* ---- one client following its channels, on the main thread ---- */

/* A client as an application writes one: it sends back the last cursor it
 * got and asks the nodes in turn. next is the number the next message must
 * carry (-1: any), so that a gap, a duplicate or a reordering fails. */
typedef struct reader {
    const char *channels;
    char cursor[CURSOR_MAX];
    int turn;
    long next;
    int polls;
    size_t received;
} reader;

static void reader_init(reader *r, const char *channels, const char *cursor, long next) {
    memset(r, 0, sizeof(*r));
    r->channels = channels;
    snprintf(r->cursor, sizeof(r->cursor), "%s", cursor);
    r->next = next;
}

/* Checks an answer's messages against r->next and takes its cursor. */
static void reader_take(reader *r, const poll_answer *a) {
    if (a->status != 200 || !a->parsed)
        fail_msg("poll %d on %s with cursor '%s': status %d, body '%s'", r->polls, r->channels,
                 r->cursor, a->status, a->body);
    if (a->cursor[0] == '\0') fail_msg("poll %d: answer without a cursor: %s", r->polls, a->body);
    if (a->n > MAX_MESSAGES) fail_msg("poll %d: %zu messages in one answer", r->polls, a->n);
    for (size_t i = 0; i < a->n; i++) {
        long k = msg_number(&a->msgs[i]);
        if (k < 0)
            fail_msg("poll %d: message data '%s' is not a number", r->polls, a->msgs[i].data);
        if (r->next >= 0 && k != r->next)
            fail_msg("poll %d on %s: got message %ld, want %ld (%s)", r->polls, r->channels, k,
                     r->next, k < r->next ? "duplicate or reordered" : "gap");
        r->next = k + 1;
        r->received++;
    }
    snprintf(r->cursor, sizeof(r->cursor), "%s", a->cursor);
}

/* One poll with r's cursor on the next node. The caller frees a. */
static void reader_poll(reader *r, int timeout, poll_answer *a) {
    do_poll(node_port(r->turn), r->channels, r->cursor, r->turn % 2, timeout, NULL, a);
    r->turn++;
    r->polls++;
    reader_take(r, a);
}

/* Polls until message `last` arrived, asserting no answer says missed. */
static void read_until(reader *r, long last, int within_ms) {
    long long end = it_now_ms() + within_ms;
    while (r->next <= last) {
        if (it_now_ms() >= end)
            fail_msg("%s: waited for message %ld, got up to %ld in %d polls", r->channels, last,
                     r->next - 1, r->polls);
        poll_answer a;
        reader_poll(r, 2, &a);
        int missed = a.missed;
        answer_free(&a);
        if (missed != 0)
            fail_msg("%s: poll %d says missed=%d after the client kept up", r->channels, r->polls,
                     missed);
    }
}

/* A poll that has to be held: sent to the next node, checked to be still
 * waiting after 300 ms, then answered by a publish of `number` on the other
 * node. */
static void reader_held_poll(reader *r, const char *channel, long number) {
    char path[CURSOR_MAX * 3 + 512], req[CURSOR_MAX * 3 + 640];
    poll_path(path, sizeof(path), r->channels, r->cursor, 1, 5);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    const char *reqs[] = {req};
    int port = node_port(r->turn);
    it_conn c;
    assert_int_equal(it_multi_open(&c, 1, &port, reqs), 0);
    if (it_multi_wait(&c, 1, 300) != 0)
        fail_msg("a poll at the end of %s was answered at once: %d %s", r->channels, c.resp.status,
                 c.resp.body ? c.resp.body : "");
    char data[32];
    snprintf(data, sizeof(data), "%ld", number);
    assert_int_equal(publish_retry(node_port(r->turn + 1), channel, data, NULL, 5000), 201);
    long long t0 = it_now_ms();
    assert_int_equal(it_multi_wait(&c, 1, 3000), 1);
    long long took = it_now_ms() - t0;
    poll_answer a;
    answer_from_resp(&c.resp, &a);
    it_multi_free(&c, 1);
    r->turn++;
    r->polls++;
    reader_take(r, &a);
    int missed = a.missed;
    size_t n = a.n;
    answer_free(&a);
    assert_int_equal(missed, 0);
    assert_int_equal(n, 1);
    printf("held poll answered %lld ms after the publish on the other node\n", took);
}

/* The answer to one poll with cursor=0 after publishing `count` numbers
 * from 1: its cursor goes to out. */
static void cursor_after(const char *channel, long count, char *out, size_t outlen) {
    publish_numbers(channel, 1, count, 0);
    reader r;
    reader_init(&r, channel, "0", 1);
    read_until(&r, count, 5000);
    snprintf(out, outlen, "%s", r.cursor);
}

/* ---- 50 clients against one publisher ---- */

#define STRESS_MESSAGES 5000
#define STRESS_CLIENTS 50
#define STRESS_DEADLINE_MS 60000
/* After the last publish, clients that make no progress for this long are
 * stopped: the server will not send the rest. */
#define STRESS_STALL_MS 10000

struct stress_run;

typedef struct stress_client {
    struct stress_run *run;
    pthread_t thread;
    int index;
    char channels[256]; /* the poll's channel list */
    int has[3];         /* which of the run's channels it polls */
    size_t expected;
    unsigned char *seen; /* how often each message number arrived */
    long last[3];        /* the highest number per channel so far */
    char last_id[3][64];
    size_t distinct; /* read by the main thread while the client runs */
    long deliveries, duplicates, out_of_order, id_disorder, polls, missed, failed_polls,
        bad_answers, over_max, header_mismatch, foreign;
    char problem[256]; /* the first thing that went wrong */
} stress_client;

typedef struct stress_run {
    char channel[3][64];
    stress_client client[STRESS_CLIENTS];
    int stop; /* set by the main thread to end the clients */
    long long deadline_ms;
} stress_run;

__attribute__((format(printf, 2, 3))) static void note(stress_client *c, const char *fmt, ...) {
    if (c->problem[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->problem, sizeof(c->problem), fmt, ap);
    va_end(ap);
}

/* Checks one answer; no cmocka calls here, the main thread asserts on
 * the counts once every client has stopped. */
static void client_take(stress_client *c, const poll_answer *a) {
    stress_run *run = c->run;
    if (a->missed != 0) {
        c->missed++;
        note(c, "poll %ld: missed=%d", c->polls, a->missed);
    }
    if (a->n > MAX_MESSAGES) {
        c->over_max++;
        note(c, "poll %ld: %zu messages in one answer", c->polls, a->n);
    }
    if (!a->has_header || strcmp(a->header, a->cursor) != 0) c->header_mismatch++;
    for (size_t i = 0; i < a->n; i++) {
        const poll_msg *m = &a->msgs[i];
        long k = msg_number(m);
        int ch = -1;
        for (int j = 0; j < 3; j++)
            if (c->has[j] && strcmp(m->channel, run->channel[j]) == 0) ch = j;
        if (ch < 0 || k < 0 || k >= STRESS_MESSAGES || k % 3 != ch) {
            c->foreign++;
            note(c, "message '%s' on '%s' is not one of mine", m->data, m->channel);
            continue;
        }
        c->deliveries++;
        if (c->seen[k]++ > 0) {
            c->duplicates++;
            note(c, "message %ld twice", k);
        } else if (k < c->last[ch]) {
            c->out_of_order++;
            note(c, "message %ld after %ld", k, c->last[ch]);
        }
        if (k > c->last[ch]) c->last[ch] = k;
        if (c->last_id[ch][0] && it_id_after(m->id, c->last_id[ch]) != 1) {
            c->id_disorder++;
            note(c, "id %s after %s on %s", m->id, c->last_id[ch], m->channel);
        }
        snprintf(c->last_id[ch], sizeof(c->last_id[ch]), "%s", m->id);
        if (c->seen[k] == 1) __atomic_add_fetch(&c->distinct, 1, __ATOMIC_RELAXED);
    }
}

static void *client_main(void *arg) {
    stress_client *c = arg;
    stress_run *run = c->run;
    char cursor[CURSOR_MAX] = "0"; /* fresh channels: everything */
    int turn = c->index;
    while (!__atomic_load_n(&run->stop, __ATOMIC_RELAXED) && it_now_ms() < run->deadline_ms &&
           __atomic_load_n(&c->distinct, __ATOMIC_RELAXED) < c->expected) {
        poll_answer a;
        /* Half the clients send the cursor URL-escaped, half as it is. */
        do_poll(node_port(turn++), c->channels, cursor, c->index % 2, 5, NULL, &a);
        c->polls++;
        if (a.status == 0) {
            c->failed_polls++;
            note(c, "poll %ld: no answer within %lld ms", c->polls, a.took_ms);
        } else if (a.status != 200 || !a.parsed || a.cursor[0] == '\0') {
            c->bad_answers++;
            note(c, "poll %ld: status %d, body '%s'", c->polls, a.status, a.body);
        } else {
            client_take(c, &a);
            snprintf(cursor, sizeof(cursor), "%s", a.cursor);
        }
        int ok = a.status == 200 && a.parsed && a.cursor[0] != '\0';
        answer_free(&a);
        if (!ok) sleep_ms(100); /* no busy loop against a broken server */
    }
    return NULL;
}

/* Publishes message k on channel k % 3 over HTTP, one after the other,
 * alternating nodes. Returns how many got a 201 with a stream id that comes
 * after the channel's previous one. */
static int publish_http_all(stress_run *run, char *problem, size_t plen) {
    char last[3][64] = {"", "", ""};
    int ok = 0;
    for (int k = 0; k < STRESS_MESSAGES; k++) {
        char data[16], id[64];
        snprintf(data, sizeof(data), "%d", k);
        long long left = run->deadline_ms - it_now_ms();
        int st =
            publish_retry(node_port(k), run->channel[k % 3], data, id, left > 0 ? (int)left : 0);
        if (st != 201) {
            snprintf(problem, plen, "publish %d: status %d", k, st);
            break;
        }
        if (last[k % 3][0] && it_id_after(id, last[k % 3]) != 1) {
            snprintf(problem, plen, "publish %d: id '%s' not after '%s'", k, id, last[k % 3]);
            break;
        }
        snprintf(last[k % 3], sizeof(last[k % 3]), "%s", id);
        ok++;
    }
    return ok;
}

/* The same with redis-cli fed FCALL holdline_publish lines on stdin, as any
 * service publishes durably. Returns how many stream ids it printed. */
static int publish_redis_cli_all(stress_run *run, char *problem, size_t plen) {
    char in[256], out[256];
    snprintf(in, sizeof(in), "%s/fcall-%ld.txt", it_run_dir(), (long)getpid());
    snprintf(out, sizeof(out), "%s/fcall-%ld.out", it_run_dir(), (long)getpid());
    FILE *f = fopen(in, "w");
    if (f == NULL) {
        snprintf(problem, plen, "cannot write %.200s", in);
        return 0;
    }
    for (int k = 0; k < STRESS_MESSAGES; k++)
        fprintf(f, "FCALL holdline_publish 1 {holdline:%s}:log %d\n", run->channel[k % 3], k);
    fclose(f);
    unlink(out);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "exec redis-cli -p %d < '%s'", cl->redis.port, in);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    pid_t pid = it_spawn(argv, out);
    long long left = run->deadline_ms - it_now_ms();
    int st = it_stop(pid, 0, left > 0 ? (int)left : 0); /* signal 0: just wait */
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(problem, plen, "redis-cli: wait status %d", st);
        return 0;
    }
    /* redis-cli goes on after an error reply and still exits 0, so every
     * line it printed must be a stream id, in order per channel. */
    f = fopen(out, "r");
    if (f == NULL) {
        snprintf(problem, plen, "no output from redis-cli");
        return 0;
    }
    char line[512], last[3][64] = {"", "", ""};
    int ids = 0;
    unsigned long long ms, seq;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        int ch = ids % 3;
        if (it_id_parse(line, &ms, &seq) != 0 ||
            (last[ch][0] && it_id_after(line, last[ch]) != 1)) {
            if (!problem[0]) snprintf(problem, plen, "redis-cli line %d: '%.160s'", ids + 1, line);
            continue;
        }
        snprintf(last[ch], sizeof(last[ch]), "%.63s", line);
        ids++;
    }
    fclose(f);
    return ids;
}

typedef enum { BY_HTTP, BY_REDIS_CLI } publisher;

static void run_stress(publisher by, const char *tag) {
    stress_run *run = calloc(1, sizeof(*run));
    assert_non_null(run);
    for (int j = 0; j < 3; j++) {
        char name[32];
        snprintf(name, sizeof(name), "%s-%c", tag, 'a' + j);
        channel_name(run->channel[j], sizeof(run->channel[j]), name);
    }
    long long t0 = it_now_ms();
    run->deadline_ms = t0 + STRESS_DEADLINE_MS;
    int multi = 0;
    for (int i = 0; i < STRESS_CLIENTS; i++) {
        stress_client *c = &run->client[i];
        c->run = run;
        c->index = i;
        c->seen = calloc(STRESS_MESSAGES, 1);
        assert_non_null(c->seen);
        for (int j = 0; j < 3; j++)
            c->last[j] = -1;
        if (i % 4 == 3) {
            /* Every 4th client polls all three at once, in an order of its
             * own, so that the cursor has three parts. */
            int s = i % 3;
            snprintf(c->channels, sizeof(c->channels), "%s,%s,%s", run->channel[s],
                     run->channel[(s + 1) % 3], run->channel[(s + 2) % 3]);
            c->has[0] = c->has[1] = c->has[2] = 1;
            c->expected = STRESS_MESSAGES;
            multi++;
        } else {
            snprintf(c->channels, sizeof(c->channels), "%s", run->channel[i % 3]);
            c->has[i % 3] = 1;
            c->expected = (STRESS_MESSAGES - (size_t)(i % 3) + 2) / 3;
        }
    }
    int started = 0;
    for (; started < STRESS_CLIENTS; started++)
        if (pthread_create(&run->client[started].thread, NULL, client_main,
                           &run->client[started]) != 0)
            break;

    char problem[256] = "";
    int published = started < STRESS_CLIENTS ? 0
                    : by == BY_HTTP          ? publish_http_all(run, problem, sizeof(problem))
                                             : publish_redis_cli_all(run, problem, sizeof(problem));
    long long published_ms = it_now_ms() - t0;

    /* Wait for every client to have everything, for the deadline, or for
     * progress to stop (sooner when publishing itself failed). */
    int stall_ms = published == STRESS_MESSAGES ? STRESS_STALL_MS : 2000;
    size_t want = 0, have = 0, before = (size_t)-1;
    for (int i = 0; i < started; i++)
        want += run->client[i].expected;
    long long progress_ms = it_now_ms();
    for (;;) {
        have = 0;
        for (int i = 0; i < started; i++)
            have += __atomic_load_n(&run->client[i].distinct, __ATOMIC_RELAXED);
        long long now = it_now_ms();
        if (have != before) progress_ms = now;
        before = have;
        if (have == want || now >= run->deadline_ms || now - progress_ms >= stall_ms) break;
        sleep_ms(50);
    }
    long long done_ms = it_now_ms() - t0;
    __atomic_store_n(&run->stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < started; i++)
        pthread_join(run->client[i].thread, NULL);

    long deliveries = 0, duplicates = 0, out_of_order = 0, id_disorder = 0, polls = 0, missed = 0,
         failed = 0, bad = 0, over_max = 0, header_mismatch = 0, foreign = 0, missing = 0;
    int complete = 0, shown = 0;
    for (int i = 0; i < STRESS_CLIENTS; i++) {
        stress_client *c = &run->client[i];
        deliveries += c->deliveries;
        duplicates += c->duplicates;
        out_of_order += c->out_of_order;
        id_disorder += c->id_disorder;
        polls += c->polls;
        missed += c->missed;
        failed += c->failed_polls;
        bad += c->bad_answers;
        over_max += c->over_max;
        header_mismatch += c->header_mismatch;
        foreign += c->foreign;
        long lacks = 0;
        for (int k = 0; k < STRESS_MESSAGES; k++)
            lacks += c->has[k % 3] && c->seen[k] == 0;
        missing += lacks;
        complete += lacks == 0;
        if ((lacks || c->problem[0]) && shown < 5) {
            shown++;
            printf("  client %d (%s): lacks %ld of %zu; first problem: %s\n", i, c->channels, lacks,
                   c->expected, c->problem[0] ? c->problem : "none");
        }
        free(c->seen);
    }
    printf("%s: published %d of %d by %s in %lld ms; %d clients (%d on all 3 channels), "
           "%d complete after %lld ms\n",
           tag, published, STRESS_MESSAGES, by == BY_HTTP ? "HTTP" : "redis-cli FCALL",
           published_ms, STRESS_CLIENTS, multi, complete, done_ms);
    printf("  deliveries %ld of %zu expected, duplicates %ld, gaps (never received) %ld, "
           "out-of-order %ld, id out of order %ld, not mine %ld\n",
           deliveries, want, duplicates, missing, out_of_order, id_disorder, foreign);
    printf("  polls %ld, missed flags %ld, polls without answer %ld, bad answers %ld, "
           "answers over %d messages %ld, Holdline-Cursor != body cursor %ld\n",
           polls, missed, failed, bad, MAX_MESSAGES, over_max, header_mismatch);
    if (problem[0]) printf("  publisher: %s\n", problem);
    fflush(stdout);
    free(run);

    /* One verdict in decimal; the lines above say where it went wrong. */
    if (started != STRESS_CLIENTS || published != STRESS_MESSAGES || duplicates || out_of_order ||
        id_disorder || foreign || missed || over_max || failed || bad || missing ||
        header_mismatch || complete != STRESS_CLIENTS)
        fail_msg("%s: %d/%d clients started, %d/%d published, %d/%d clients complete, %ld gaps, "
                 "%ld duplicates, %ld out of order, %ld not mine, %ld missed flags, %ld bad or "
                 "no answers, %ld answers over %d messages",
                 tag, started, STRESS_CLIENTS, published, STRESS_MESSAGES, complete, STRESS_CLIENTS,
                 missing, duplicates, out_of_order + id_disorder, foreign, missed, bad + failed,
                 over_max, MAX_MESSAGES);
}

static void
test_http_publisher_50_clients_switching_nodes_get_every_message_once_in_order(void **state) {
    (void)state;
    run_stress(BY_HTTP, "stress-http");
}

static void
test_redis_cli_fcall_publisher_50_clients_get_every_message_once_in_order(void **state) {
    (void)state;
    run_stress(BY_REDIS_CLI, "stress-fcall");
}

/* ---- history trimmed, Redis flushed, a cursor from nowhere ---- */

/* The first id of a stream, from a raw XRANGE reply. */
static void first_stream_id(const char *key, char *id, size_t idlen) {
    char out[4096];
    const char *argv[] = {"XRANGE", key, "-", "+", "COUNT", "1"};
    assert_int_equal(it_redis_cmd(cl->redis.port, out, sizeof(out), 6, argv), 0);
    /* "*1\r\n*2\r\n$15\r\n<id>\r\n..." */
    const char *p = strstr(out, "\r\n$");
    if (p) p = strstr(p + 3, "\r\n");
    if (p == NULL) fail_msg("XRANGE %s: %s", key, out);
    p += 2;
    size_t n = strcspn(p, "\r\n");
    snprintf(id, idlen, "%.*s", (int)n, p);
}

static long long redis_int(int argc, const char *const argv[]) {
    char out[256];
    assert_int_equal(it_redis_cmd(cl->redis.port, out, sizeof(out), argc, argv), 0);
    if (out[0] != ':') fail_msg("%s: %s", argv[0], out);
    return atoll(out + 1);
}

static void test_a_cursor_behind_maxlen_gets_missed_then_continues_without_gap(void **state) {
    (void)state;
    enum { N = 600 };
    char ch[64], key[128], cursor[CURSOR_MAX];
    channel_name(ch, sizeof(ch), "trimmed");
    snprintf(key, sizeof(key), "{holdline:%s}:log", ch);
    cursor_after(ch, 1, cursor, sizeof(cursor));
    /* Once no node caches the channel, the old cursor can only be checked
     * against what the stream still holds. */
    sleep_ms(LINGER_MS + 400);
    publish_numbers(ch, 2, N + 1, 1);
    const char *xlen[] = {"XLEN", key};
    long long held = redis_int(2, xlen);
    char oldest[64];
    first_stream_id(key, oldest, sizeof(oldest));
    if (held >= N)
        fail_msg("%s holds %lld entries: HOLDLINE_HISTORY_LENGTH=10 not applied", key, held);

    reader r;
    reader_init(&r, ch, cursor, -1);
    r.turn = 1; /* the cursor came from node A; ask B first */
    poll_answer a;
    reader_poll(&r, 5, &a);
    printf("cursor behind MAXLEN: the stream holds %lld of %d; first answer missed=%d with %zu "
           "messages from #%s (id %s, oldest held %s)\n",
           held, N + 1, a.missed, a.n, a.n ? a.msgs[0].data : "-", a.n ? a.msgs[0].id : "-",
           oldest);
    int missed = a.missed;
    size_t n = a.n;
    char first_id[64] = "";
    long first = n ? msg_number(&a.msgs[0]) : -1;
    if (n) snprintf(first_id, sizeof(first_id), "%s", a.msgs[0].id);
    answer_free(&a);
    assert_int_equal(missed, 1);
    assert_true(n > 0);
    /* The answer starts with the oldest message still held. */
    assert_string_equal(first_id, oldest);
    assert_true(first > 2);
    read_until(&r, N + 1, 15000);
    printf("  then messages %ld..%d in %d polls, none missing, none twice\n", first, N + 1,
           r.polls);
    reader_held_poll(&r, ch, N + 2);
}

static void test_a_cursor_from_before_flushall_gets_missed_then_continues(void **state) {
    (void)state;
    char ch[64], cursor[CURSOR_MAX];
    channel_name(ch, sizeof(ch), "flushed");
    cursor_after(ch, 3, cursor, sizeof(cursor));
    sleep_ms(LINGER_MS + 400);
    char out[64];
    const char *flush[] = {"FLUSHALL"};
    assert_int_equal(it_redis_cmd(cl->redis.port, out, sizeof(out), 1, flush), 0);
    assert_string_equal(out, "+OK");
    publish_numbers(ch, 4, 8, 1);

    /* The new epoch's stream holds 4..8 from its beginning: the answer may
     * carry them, and the client must not lose them either way. */
    reader r;
    reader_init(&r, ch, cursor, 4);
    r.turn = 1;
    poll_answer a;
    reader_poll(&r, 5, &a);
    printf("cursor from before FLUSHALL: missed=%d with %zu messages, cursor %s -> %s\n", a.missed,
           a.n, cursor, a.cursor);
    int missed = a.missed;
    answer_free(&a);
    assert_int_equal(missed, 1);
    read_until(&r, 8, 10000);
    reader_held_poll(&r, ch, 9);
    publish_numbers(ch, 10, 30, 0);
    read_until(&r, 30, 10000);
    printf("  then messages 4..30 in %d polls, none missing, none twice\n", r.polls);
}

/* The part of a cursor before its first ':' (the epoch), or fails. */
static void cursor_epoch(const char *cursor, char *out, size_t outlen) {
    size_t n = strcspn(cursor, ":");
    if (cursor[n] != ':' || n == 0) fail_msg("cursor '%s' does not look like <epoch>:<id>", cursor);
    snprintf(out, outlen, "%.*s", (int)n, cursor);
}

static void test_a_future_cursor_is_answered_at_once(void **state) {
    (void)state;
    char ch[64], cursor[CURSOR_MAX], epoch[64], future[CURSOR_MAX];
    channel_name(ch, sizeof(ch), "future");
    cursor_after(ch, 1, cursor, sizeof(cursor));
    cursor_epoch(cursor, epoch, sizeof(epoch));
    snprintf(future, sizeof(future), "%s:99999999999999-0", epoch);
    for (int turn = 0; turn < 2; turn++) {
        poll_answer a;
        do_poll(node_port(turn), ch, future, turn, 10, NULL, &a);
        printf("future cursor %s on node %c: status %d missed=%d after %lld ms\n", future,
               'A' + turn, a.status, a.missed, a.took_ms);
        int status = a.status, missed = a.missed;
        long long took = a.took_ms;
        char next[CURSOR_MAX];
        snprintf(next, sizeof(next), "%s", a.cursor);
        answer_free(&a);
        assert_int_equal(status, 200);
        assert_int_equal(missed, 1);
        assert_true(took < 2000);
        /* The cursor it hands back works: the next message arrives (after
         * whatever history the server chose to send again). */
        long k = 2 + turn;
        reader r;
        reader_init(&r, ch, next, -1);
        r.turn = turn + 1;
        publish_numbers(ch, k, k, turn);
        read_until(&r, k, 5000);
    }
}

static void test_last_event_id_header_works_as_the_cursor(void **state) {
    (void)state;
    char ch[64], c1[CURSOR_MAX], hdr[CURSOR_MAX + 64];
    channel_name(ch, sizeof(ch), "leid");
    cursor_after(ch, 1, c1, sizeof(c1));
    publish_numbers(ch, 2, 3, 1);

    /* No cursor parameter: the header is the cursor. */
    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s\r\n", c1);
    poll_answer a;
    do_poll(cl->b.port, ch, NULL, 0, 2, hdr, &a);
    reader r;
    reader_init(&r, ch, "", 2);
    reader_take(&r, &a);
    answer_free(&a);
    assert_int_equal(r.received, 2);
    char c3[CURSOR_MAX];
    snprintf(c3, sizeof(c3), "%s", r.cursor);

    /* A cursor parameter wins over the header. */
    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s\r\n", c3);
    do_poll(cl->a.port, ch, c1, 1, 2, hdr, &a);
    reader_init(&r, ch, "", 2);
    reader_take(&r, &a);
    answer_free(&a);
    assert_int_equal(r.received, 2);

    /* Neither: only what is newer than the request, so nothing here. */
    do_poll(cl->a.port, ch, NULL, 0, 1, NULL, &a);
    int status = a.status;
    size_t n = a.n;
    answer_free(&a);
    assert_int_equal(status, 200);
    assert_int_equal(n, 0);
}

static void assert_header_is_body_cursor(const char *what, const poll_answer *a) {
    if (a->status != 200 || !a->parsed) fail_msg("%s: status %d body %s", what, a->status, a->body);
    if (!a->has_header) fail_msg("%s: no Holdline-Cursor header", what);
    if (strcmp(a->header, a->cursor) != 0)
        fail_msg("%s: Holdline-Cursor '%s', body cursor '%s'", what, a->header, a->cursor);
}

static void test_holdline_cursor_header_equals_the_body_cursor(void **state) {
    (void)state;
    char ch[64], ch2[64], both[160];
    channel_name(ch, sizeof(ch), "hdr-a");
    channel_name(ch2, sizeof(ch2), "hdr-b");
    snprintf(both, sizeof(both), "%s,%s", ch, ch2);
    publish_numbers(ch, 1, 2, 0);
    publish_numbers(ch2, 1, 1, 1);
    poll_answer a;
    do_poll(cl->a.port, ch, "0", 0, 2, NULL, &a);
    assert_header_is_body_cursor("answer with messages", &a);
    assert_int_equal(a.n, 2);
    assert_true(a.cursor[0] != '\0');
    char cursor[CURSOR_MAX];
    snprintf(cursor, sizeof(cursor), "%s", a.cursor);
    answer_free(&a);

    do_poll(cl->b.port, ch, cursor, 1, 1, NULL, &a);
    assert_header_is_body_cursor("answer on timeout", &a);
    assert_int_equal(a.n, 0);
    assert_true(a.cursor[0] != '\0');
    answer_free(&a);

    do_poll(cl->b.port, both, "0", 0, 2, NULL, &a);
    assert_header_is_body_cursor("multi-channel answer", &a);
    assert_int_equal(a.n, 3);
    answer_free(&a);

    do_poll(cl->a.port, ch2, NULL, 0, 1, NULL, &a);
    assert_header_is_body_cursor("answer to a poll without cursor", &a);
    answer_free(&a);
}

static void assert_channel_info(int port, const char *ch, const char *last_id, long long length) {
    char path[300];
    snprintf(path, sizeof(path), "/channels/%s", ch);
    it_resp r;
    assert_int_equal(it_http(port, "GET", path, NULL, 0, NULL, 3000, &r), 0);
    it_json c;
    int parsed = it_json_parse(r.body, &c) == 0;
    it_json_free(&c);
    printf("GET %s: %d %s\n", path, r.status, r.body ? r.body : "");
    int status = r.status;
    it_resp_free(&r);
    assert_int_equal(status, 200);
    assert_true(parsed);
    assert_string_equal(c.channel, ch);
    assert_string_equal(c.last_id, last_id);
    assert_int_equal(c.length, length);
}

static void test_channels_endpoint_reports_last_id_and_length(void **state) {
    (void)state;
    char ch[64], id[64];
    channel_name(ch, sizeof(ch), "info");
    for (int i = 1; i <= 3; i++)
        assert_int_equal(publish(cl->a.port, ch, "x", id), 201);
    assert_channel_info(cl->b.port, ch, id, 3);
    assert_int_equal(publish(cl->b.port, ch, "y", id), 201);
    assert_channel_info(cl->a.port, ch, id, 4);
}

static void test_multi_channel_poll_with_more_than_max_channels_is_400(void **state) {
    (void)state;
    char list[17 * 64] = "";
    for (int i = 0; i < 17; i++) {
        char name[32], ch[64];
        snprintf(name, sizeof(name), "many%d", i);
        channel_name(ch, sizeof(ch), name);
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "," : "", ch);
        if (i != 15) continue;
        /* 16, the default poll.max_channels, is allowed. */
        poll_answer a;
        do_poll(cl->a.port, list, "0", 0, 1, NULL, &a);
        int status = a.status;
        answer_free(&a);
        assert_int_equal(status, 200);
    }
    poll_answer a;
    do_poll(cl->b.port, list, "0", 0, 1, NULL, &a);
    printf("17 channels: %d %s\n", a.status, a.body);
    int status = a.status;
    char error[64];
    snprintf(error, sizeof(error), "%s", a.error);
    answer_free(&a);
    assert_int_equal(status, 400);
    assert_true(error[0] != '\0');
}

typedef struct bad_cursor {
    const char *what;
    int channels;   /* polls 1 or 2 channels */
    int with_epoch; /* the cursor starts with a real epoch */
    const char *rest;
    int as_header; /* sent as Last-Event-ID instead of ?cursor= */
} bad_cursor;

static void test_malformed_cursors_are_400(void **state) {
    (void)state;
    char one[64], other[64], two[160], good1[CURSOR_MAX], good2[CURSOR_MAX], epoch[64];
    channel_name(one, sizeof(one), "mal-a");
    channel_name(other, sizeof(other), "mal-b");
    snprintf(two, sizeof(two), "%s,%s", other, one);
    cursor_after(one, 1, good1, sizeof(good1));
    publish_numbers(other, 1, 1, 1);
    cursor_epoch(good1, epoch, sizeof(epoch));
    /* Real cursors pass, so the table below fails for the right reason. */
    poll_answer a;
    do_poll(cl->b.port, one, good1, 1, 1, NULL, &a);
    assert_int_equal(a.status, 200);
    answer_free(&a);
    do_poll(cl->a.port, two, "0", 0, 1, NULL, &a);
    assert_int_equal(a.status, 200);
    snprintf(good2, sizeof(good2), "%s", a.cursor);
    answer_free(&a);
    do_poll(cl->b.port, two, good2, 0, 1, NULL, &a);
    assert_int_equal(a.status, 200);
    answer_free(&a);

    const bad_cursor cases[] = {
        {"one part for two channels", 2, 1, ":1-0", 0},
        {"three parts for two channels", 2, 1, ":1-0,1-0,1-0", 0},
        {"trailing comma, one channel", 1, 1, ":1-0,", 0},
        {"letters", 1, 0, "abc", 0},
        {"epoch not hex", 1, 0, "zz:1-0", 0},
        {"epoch 0x1", 1, 0, "0x1:1-0", 0},
        {"epoch over 64 bits", 1, 0, "123456789abcdef01:1-0", 0},
        {"no epoch", 1, 0, ":1-0", 0},
        {"epoch without id", 1, 1, "", 0},
        {"id without sequence", 1, 1, ":1-", 0},
        {"id without time", 1, 1, ":-1", 0},
        {"bare -1", 1, 0, "-1", 0},
        {"bare 1-2-3", 1, 0, "1-2-3", 0},
        {"id 1-2-3", 1, 1, ":1-2-3", 0},
        {"30-digit number", 1, 0, "123456789012345678901234567890", 0},
        {"30-digit id time", 1, 1, ":123456789012345678901234567890-0", 0},
        {"id time over 64 bits", 1, 1, ":18446744073709551616-0", 0},
        {"id sequence over 64 bits", 1, 1, ":1-18446744073709551616", 0},
        {"two colons", 1, 1, ":1-0:2", 0},
        {"letter in id time", 1, 1, ":a-0", 0},
        {"letter in id sequence", 1, 1, ":1-x", 0},
        {"space in id", 1, 1, ": 1-0", 0},
        {"plus sign", 1, 1, ":+1-0", 0},
        {"non-ASCII", 1, 1, ":1-0\xc3\xa9", 0},
        {"Last-Event-ID not hex", 1, 0, "zz:1-0", 1},
        {"Last-Event-ID one part for two channels", 2, 1, ":1-0", 1},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_cursor *k = &cases[i];
        char cursor[256], hdr[300];
        snprintf(cursor, sizeof(cursor), "%s%s", k->with_epoch ? epoch : "", k->rest);
        snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s\r\n", cursor);
        do_poll(node_port((int)i), k->channels == 2 ? two : one, k->as_header ? NULL : cursor,
                (int)i % 2, 1, k->as_header ? hdr : NULL, &a);
        int ok = a.status == 400 && a.parsed && strcmp(a.error, "bad_cursor") == 0;
        if (!ok) {
            failures++;
            printf("  %s ('%s'): got %d %s, want 400 bad_cursor\n", k->what, cursor, a.status,
                   a.body);
        }
        answer_free(&a);
    }
    printf("malformed cursors: %d of %zu answered 400 bad_cursor\n",
           (int)(sizeof(cases) / sizeof(cases[0])) - failures, sizeof(cases) / sizeof(cases[0]));
    assert_int_equal(failures, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_http_publisher_50_clients_switching_nodes_get_every_message_once_in_order),
        cmocka_unit_test(test_redis_cli_fcall_publisher_50_clients_get_every_message_once_in_order),
        cmocka_unit_test_setup_teardown(
            test_a_cursor_behind_maxlen_gets_missed_then_continues_without_gap, setup_short_history,
            teardown_short_history),
        cmocka_unit_test_setup_teardown(
            test_a_cursor_from_before_flushall_gets_missed_then_continues, setup_short_history,
            teardown_short_history),
        cmocka_unit_test(test_a_future_cursor_is_answered_at_once),
        cmocka_unit_test(test_last_event_id_header_works_as_the_cursor),
        cmocka_unit_test(test_holdline_cursor_header_equals_the_body_cursor),
        cmocka_unit_test(test_channels_endpoint_reports_last_id_and_length),
        cmocka_unit_test(test_multi_channel_poll_with_more_than_max_channels_is_400),
        cmocka_unit_test(test_malformed_cursors_are_400),
    };
    return it_finish(
        cmocka_run_group_tests_name("cursor (redis + 2 nodes)", tests, setup, teardown));
}
