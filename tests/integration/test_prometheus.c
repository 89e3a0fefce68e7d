/* Integration: GET /metrics. A real redis-server and a real node with two
 * workers for each test; the exposition is read by a small parser of our
 * own (name{labels} value) and linted by promtool (Debian's prometheus
 * package), idle and while hundreds of polls are held and messages go
 * out. Each counter is driven from outside and must move by what the test
 * did: polls answered with messages, at their timeout and with errors;
 * publishes stored, duplicated and refused; a stream's events; live
 * deliveries' lag; a Redis restart. The alert rules in
 * docs/holdline-alerts.yml must pass promtool check rules and name only
 * metrics a node exposes. A missing promtool is a failure, not a skip. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

#define WORKERS 2
#define ALERTS_FILE "docs/holdline-alerts.yml"

static it_redis redis;
static it_node node;

static const char *const node_env[] = {"HOLDLINE_HTTP_WORKERS=2", "HOLDLINE_SSE_HEARTBEAT_S=1",
                                       "HOLDLINE_HTTP_BIND=127.0.0.1", NULL};

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

static int setup(void **state) {
    (void)state;
    memset(&redis, 0, sizeof(redis));
    memset(&node, 0, sizeof(node));
    if (it_redis_start(&redis) != 0) return -1;
    return it_node_start_env(&node, redis.port, NULL, node_env);
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
    it_redis_stop(&redis);
    return bad ? -1 : 0;
}

/* A channel name unique to this run. */
static void channel_name(char *out, size_t outlen, const char *tag) {
    snprintf(out, outlen, "%s-%ld", tag, (long)getpid());
}

/* ---- Reading the exposition ---------------------------------------------- */

typedef struct sample {
    char name[128];
    char labels[256]; /* between the braces, as written; "" without */
    double v;
} sample;

typedef struct family {
    char name[128];
    char type[32];
    int help;
} family;

typedef struct expo {
    char *body; /* the whole text, NUL-terminated */
    size_t len;
    sample *s;
    size_t n, cap;
    family f[64];
    size_t nf;
    char problem[256]; /* the first line that did not parse */
} expo;

static void expo_free(expo *e) {
    free(e->body);
    free(e->s);
    memset(e, 0, sizeof(*e));
}

static family *family_of(expo *e, const char *name, int add) {
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return &e->f[i];
    if (!add || e->nf == sizeof(e->f) / sizeof(e->f[0])) return NULL;
    family *f = &e->f[e->nf++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

static int name_char(char c, int first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* One sample line "name{labels} value [timestamp]"; returns 0 or -1. */
static int parse_sample(const char *p, sample *out) {
    size_t n = 0;
    memset(out, 0, sizeof(*out));
    while (name_char(p[n], n == 0))
        n++;
    if (n == 0 || n >= sizeof(out->name)) return -1;
    memcpy(out->name, p, n);
    p += n;
    if (*p == '{') {
        const char *q = ++p;
        int quoted = 0;
        for (; *q && (quoted || *q != '}'); q++) {
            if (*q == '\\' && quoted && q[1]) {
                q++;
                continue;
            }
            if (*q == '"') quoted = !quoted;
        }
        if (*q != '}' || (size_t)(q - p) >= sizeof(out->labels)) return -1;
        memcpy(out->labels, p, (size_t)(q - p));
        p = q + 1;
    }
    if (*p != ' ') return -1;
    char *end;
    errno = 0;
    out->v = strtod(p + 1, &end);
    if (end == p + 1 || errno == ERANGE) return -1;
    while (*end == ' ')
        end++;
    if (*end != '\0') {
        /* A timestamp, which holdline never writes, would be an integer. */
        char *ts_end;
        (void)strtoll(end, &ts_end, 10);
        if (ts_end == end || *ts_end != '\0') return -1;
    }
    return 0;
}

/* Reads text (len bytes, not NUL-terminated) into e. Returns 0, or -1
 * with the offending line in e->problem. */
static int expo_parse(expo *e, const char *text, size_t len) {
    memset(e, 0, sizeof(*e));
    e->body = malloc(len + 1);
    if (e->body == NULL) return -1;
    memcpy(e->body, text, len);
    e->body[len] = '\0';
    e->len = len;
    if (len == 0 || e->body[len - 1] != '\n') {
        snprintf(e->problem, sizeof(e->problem), "the text does not end with a newline");
        return -1;
    }
    char *line = e->body;
    while (*line) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        int bad = 0;
        char name[128], rest[32];
        if (line[0] == '#') {
            if (sscanf(line, "# TYPE %127s %31s", name, rest) == 2) {
                family *f = family_of(e, name, 1);
                bad = f == NULL || f->type[0] != '\0';
                if (!bad) snprintf(f->type, sizeof(f->type), "%s", rest);
            } else if (sscanf(line, "# HELP %127s", name) == 1) {
                family *f = family_of(e, name, 1);
                bad = f == NULL || f->help;
                if (!bad) f->help = 1;
            }
        } else if (line[0] != '\0') {
            if (e->n == e->cap) {
                e->cap = e->cap ? e->cap * 2 : 256;
                e->s = realloc(e->s, e->cap * sizeof(*e->s));
                if (e->s == NULL) return -1;
            }
            bad = parse_sample(line, &e->s[e->n]) != 0;
            if (!bad) e->n++;
        }
        if (bad && e->problem[0] == '\0')
            snprintf(e->problem, sizeof(e->problem), "cannot read the line '%.200s'", line);
        *nl = '\n';
        line = nl + 1;
    }
    return e->problem[0] ? -1 : 0;
}

static const sample *find(const expo *e, const char *name, const char *labels) {
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels ? labels : "") == 0)
            return &e->s[i];
    return NULL;
}

/* The value of one sample; fails the test if it is not there. */
static double val(const expo *e, const char *name, const char *labels) {
    const sample *s = find(e, name, labels);
    if (s == NULL) fail_msg("/metrics has no sample %s{%s}", name, labels ? labels : "");
    return s->v;
}

/* GET /metrics into e; asserts a 200 with the text format's content type
 * and a body that parses. */
static void scrape(int port, expo *e) {
    it_resp r;
    assert_int_equal(it_http(port, "GET", "/metrics", NULL, 0, NULL, 5000, &r), 0);
    assert_int_equal(r.status, 200);
    char ctype[128];
    assert_int_equal(it_resp_header(&r, "Content-Type", ctype, sizeof(ctype)), 0);
    assert_non_null(strstr(ctype, "text/plain"));
    assert_non_null(strstr(ctype, "version=0.0.4"));
    int rc = expo_parse(e, r.body, r.body_len);
    it_resp_free(&r);
    if (rc != 0) fail_msg("/metrics does not parse: %s", e->problem);
}

/* Scrapes until name{labels} equals want or timeout_ms passes; returns the
 * milliseconds it took, or -1 (then *last holds the last value). */
static long long wait_value(int port, const char *name, const char *labels, double want,
                            int timeout_ms, double *last) {
    long long t0 = it_now_ms();
    for (;;) {
        expo e;
        scrape(port, &e);
        double v = val(&e, name, labels);
        expo_free(&e);
        if (last) *last = v;
        if (v == want) return it_now_ms() - t0;
        if (it_now_ms() - t0 > timeout_ms) return -1;
        sleep_ms(20);
    }
}

/* ---- promtool ------------------------------------------------------------- */

/* Runs promtool with args (after "promtool"), stdin from in_path (may be
 * NULL), stdout and stderr into a file; returns the exit status (-1 if
 * it did not exit within 20 s) and the output, malloc'd, in *out. */
static int run_promtool(const char *const args[], const char *in_path, char **out) {
    static int seq;
    char out_path[256];
    snprintf(out_path, sizeof(out_path), "%s/promtool-%d.out", it_run_dir(), seq++);
    const char *argv[8] = {"promtool"};
    int k = 1;
    for (int i = 0; args[i] && k < 7; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    /* posix_spawn, not fork: the load test runs threads meanwhile. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_path ? in_path : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    extern char **environ;
    int rc = posix_spawnp(&pid, "promtool", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("promtool could not be started (%s): it comes with Debian's prometheus package "
                 "(apt-get install prometheus), and this test needs it",
                 strerror(rc));
    int st = it_stop(pid, 0, 20000);
    FILE *f = fopen(out_path, "r");
    size_t cap = 1 << 16, n = 0;
    char *buf = calloc(1, cap + 1);
    if (f && buf) {
        n = fread(buf, 1, cap, f);
        buf[n] = '\0';
    }
    if (f) fclose(f);
    *out = buf;
    if (st < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int blank(const char *s) {
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r') return 0;
    return 1;
}

/* Asserts that promtool check metrics reads e's text without a problem:
 * exit status 0 and not a word of lint. */
static void assert_promtool_accepts(const expo *e, const char *when) {
    static int seq;
    char path[256];
    snprintf(path, sizeof(path), "%s/metrics-%d.txt", it_run_dir(), seq++);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(e->body, 1, e->len, f), e->len);
    assert_int_equal(fclose(f), 0);
    static const char *const args[] = {"check", "metrics", NULL};
    char *out = NULL;
    int st = run_promtool(args, path, &out);
    printf("promtool check metrics (%s, %zu samples, %zu bytes): exit %d%s%s\n", when, e->n, e->len,
           st, blank(out) ? "" : ", said: ", blank(out) ? "" : out);
    if (st == 127)
        fail_msg("promtool is not on PATH: it comes with Debian's prometheus package, and this "
                 "test needs it");
    int quiet = blank(out);
    free(out);
    assert_int_equal(st, 0);
    assert_true(quiet);
}

/* ---- Talking to the node -------------------------------------------------- */

static int publish(int port, const char *ch, const char *data, const char *key, it_json *j) {
    char path[300], hdr[128] = "";
    snprintf(path, sizeof(path), "/publish/%s", ch);
    if (key) snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s\r\n", key);
    it_resp r;
    memset(j, 0, sizeof(*j));
    if (it_http(port, "POST", path, data, strlen(data), hdr, 7000, &r) != 0) return 0;
    it_json_parse(r.body, j);
    int st = r.status;
    it_resp_free(&r);
    return st;
}

static void publish_ok(int port, const char *ch, const char *data) {
    it_json j;
    int st = publish(port, ch, data, NULL, &j);
    it_json_free(&j);
    if (st != 201) fail_msg("publish '%s' on %s: status %d", data, ch, st);
}

/* One poll; returns the status (0 without an answer) and fills j. */
static int do_poll(int port, const char *ch, const char *cursor, int timeout, it_json *j) {
    char path[4600];
    snprintf(path, sizeof(path), "/poll/%s?timeout=%d%s%s", ch, timeout, cursor ? "&cursor=" : "",
             cursor ? cursor : "");
    it_resp r;
    memset(j, 0, sizeof(*j));
    if (it_http(port, "GET", path, NULL, 0, NULL, (timeout + 5) * 1000, &r) != 0) return 0;
    it_json_parse(r.body, j);
    int st = r.status;
    it_resp_free(&r);
    return st;
}

/* Holds n polls (timeout in seconds) on the channels chans[i % nchans],
 * and waits until the node counts them all as waiters. */
static void hold_polls(it_conn *c, size_t n, char (*chans)[64], size_t nchans, int timeout,
                       const char *cursor) {
    int *ports = calloc(n, sizeof(*ports));
    char **reqs = calloc(n, sizeof(*reqs));
    assert_non_null(ports);
    assert_non_null(reqs);
    for (size_t i = 0; i < n; i++) {
        ports[i] = node.port;
        reqs[i] = malloc(512);
        assert_non_null(reqs[i]);
        snprintf(reqs[i], 512, "GET /poll/%s?timeout=%d%s%s HTTP/1.1\r\nHost: t\r\n\r\n",
                 chans[i % nchans], timeout, cursor ? "&cursor=" : "", cursor ? cursor : "");
    }
    int rc = it_multi_open(c, n, ports, (const char *const *)reqs);
    for (size_t i = 0; i < n; i++)
        free(reqs[i]);
    free(reqs);
    free(ports);
    assert_int_equal(rc, 0);
    double last;
    if (wait_value(node.port, "holdline_waiters", "transport=\"poll\"", (double)n, 5000, &last) < 0)
        fail_msg("holdline_waiters{transport=\"poll\"} is %g, %zu polls are held", last, n);
}

/* The families a node exposes and their types. */
static const struct {
    const char *name, *type;
} families[] = {
    {"holdline_build_info", "gauge"},
    {"holdline_waiters", "gauge"},
    {"holdline_connections", "gauge"},
    {"holdline_channels", "gauge"},
    {"holdline_polls_total", "counter"},
    {"holdline_messages_received_total", "counter"},
    {"holdline_messages_delivered_total", "counter"},
    {"holdline_publishes_total", "counter"},
    {"holdline_publish_duration_seconds", "histogram"},
    {"holdline_delivery_lag_seconds", "histogram"},
    {"holdline_missed_total", "counter"},
    {"holdline_http_requests_total", "counter"},
    {"holdline_redis_up", "gauge"},
    {"holdline_redis_reconnects_total", "counter"},
    {"holdline_canary_ok", "gauge"},
    {"holdline_canary_failures_total", "counter"},
    {"holdline_redis_master_changes_total", "counter"},
    {"holdline_redis_sentinels_ok", "gauge"},
    {"process_cpu_seconds_total", "counter"},
    {"process_start_time_seconds", "gauge"},
    {"process_resident_memory_bytes", "gauge"},
    {"process_virtual_memory_bytes", "gauge"},
    {"process_open_fds", "gauge"},
    {"process_max_fds", "gauge"},
};

/* A histogram's buckets are cumulative, end at +Inf, and +Inf is _count. */
static void assert_histogram(const expo *e, const char *name) {
    char bucket[160], count[160], sum[160];
    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    snprintf(count, sizeof(count), "%s_count", name);
    snprintf(sum, sizeof(sum), "%s_sum", name);
    double prev = 0, inf = -1;
    size_t buckets = 0;
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->s[i].name, bucket) != 0) continue;
        buckets++;
        if (e->s[i].v < prev) fail_msg("%s{%s} goes down", bucket, e->s[i].labels);
        prev = e->s[i].v;
        if (strcmp(e->s[i].labels, "le=\"+Inf\"") == 0) inf = e->s[i].v;
    }
    assert_true(buckets >= 2);
    assert_true(inf >= 0);
    assert_true(val(e, count, NULL) == inf);
    assert_true(val(e, sum, NULL) >= 0);
}

/* ---- Idle ---------------------------------------------------------------- */

static void test_promtool_accepts_the_metrics_of_an_idle_node(void **state) {
    (void)state;
    expo e;
    scrape(node.port, &e);
    time_t now = time(NULL);
    assert_promtool_accepts(&e, "idle");
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        family *f = family_of(&e, families[i].name, 0);
        if (f == NULL) fail_msg("/metrics has no family %s", families[i].name);
        if (strcmp(f->type, families[i].type) != 0 || !f->help)
            fail_msg("%s: TYPE '%s' (want %s), HELP %s", f->name, f->type, families[i].type,
                     f->help ? "present" : "missing");
    }
    assert_histogram(&e, "holdline_publish_duration_seconds");
    assert_histogram(&e, "holdline_delivery_lag_seconds");

    double open_fds = val(&e, "process_open_fds", NULL), max_fds = val(&e, "process_max_fds", NULL);
    double rss = val(&e, "process_resident_memory_bytes", NULL);
    double vsz = val(&e, "process_virtual_memory_bytes", NULL);
    double start = val(&e, "process_start_time_seconds", NULL);
    double cpu = val(&e, "process_cpu_seconds_total", NULL);
    printf("idle node: %zu samples in %zu families; open fds %g of %g, resident %g bytes, "
           "virtual %g bytes, started %.0f s ago, %g s of CPU\n",
           e.n, e.nf, open_fds, max_fds, rss, vsz, (double)now - start, cpu);
    /* Idle: nothing held, nothing counted but this very scrape's
     * connection, both links up and the canary's probes back. */
    assert_true(val(&e, "holdline_waiters", "transport=\"poll\"") == 0);
    assert_true(val(&e, "holdline_waiters", "transport=\"sse\"") == 0);
    assert_true(val(&e, "holdline_polls_total", "result=\"message\"") == 0);
    assert_true(val(&e, "holdline_publishes_total", "result=\"ok\"") == 0);
    assert_true(val(&e, "holdline_redis_up", "link=\"subscriber\"") == 1);
    assert_true(val(&e, "holdline_redis_up", "link=\"command\"") == 1);
    assert_true(val(&e, "holdline_canary_ok", NULL) == 1);
    assert_true(val(&e, "holdline_canary_failures_total", NULL) == 0);
    assert_true(val(&e, "holdline_redis_reconnects_total", NULL) == 0);
    int has_version = 0;
    for (size_t i = 0; i < e.n; i++)
        if (strcmp(e.s[i].name, "holdline_build_info") == 0 &&
            strncmp(e.s[i].labels, "version=\"", 9) == 0 && e.s[i].labels[9] != '"' &&
            e.s[i].v == 1)
            has_version = 1;
    assert_true(has_version);
    /* The process: a server has sockets and memory, started just now by
     * this test, and its descriptors stay under their limit. */
    assert_true(open_fds > 0);
    assert_true(max_fds >= open_fds);
    assert_true(rss > 0);
    assert_true(vsz >= rss);
    assert_true(cpu >= 0);
    assert_true(start > (double)now - 120 && start <= (double)now + 5);
    expo_free(&e);
}

/* ---- Under load ------------------------------------------------------------ */

#define LOAD_HELD 400
#define LOAD_CHANNELS 8
#define LOAD_CLIENTS 4

typedef struct load_run {
    char busy[64];
    int stop;          /* atomic */
    long published;    /* 201s from the publisher */
    long pub_failures; /* anything else */
    long answers[LOAD_CLIENTS];
    long client_msgs[LOAD_CLIENTS];
    long bad_answers;
} load_run;

typedef struct load_client {
    load_run *run;
    int index;
} load_client;

static void *load_publisher(void *arg) {
    load_run *run = arg;
    for (long k = 0; !__atomic_load_n(&run->stop, __ATOMIC_RELAXED); k++) {
        char data[32];
        snprintf(data, sizeof(data), "load-%ld", k);
        it_json j;
        int st = publish(node.port, run->busy, data, NULL, &j);
        it_json_free(&j);
        if (st == 201)
            run->published++;
        else
            run->pub_failures++;
        sleep_ms(2);
    }
    return NULL;
}

/* A client that follows the busy channel with its cursor. */
static void *load_follower(void *arg) {
    load_client *lc = arg;
    load_run *run = lc->run;
    char cursor[4096] = "";
    while (!__atomic_load_n(&run->stop, __ATOMIC_RELAXED)) {
        it_json j;
        int st = do_poll(node.port, run->busy, cursor[0] ? cursor : NULL, 2, &j);
        if (st == 200 && j.cursor[0]) {
            run->answers[lc->index]++;
            run->client_msgs[lc->index] += (long)j.n;
            snprintf(cursor, sizeof(cursor), "%s", j.cursor);
        } else {
            __atomic_add_fetch(&run->bad_answers, 1, __ATOMIC_RELAXED);
            sleep_ms(20);
        }
        it_json_free(&j);
    }
    return NULL;
}

static void
test_promtool_accepts_the_metrics_while_hundreds_of_polls_are_held_and_messages_flow(void **state) {
    (void)state;
    static load_run run;
    memset(&run, 0, sizeof(run));
    channel_name(run.busy, sizeof(run.busy), "busy");
    char held[LOAD_CHANNELS][64];
    for (int i = 0; i < LOAD_CHANNELS; i++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "held%d", i);
        channel_name(held[i], sizeof(held[i]), tag);
    }
    expo before;
    scrape(node.port, &before);

    it_conn *c = calloc(LOAD_HELD, sizeof(*c));
    assert_non_null(c);
    hold_polls(c, LOAD_HELD, held, LOAD_CHANNELS, 25, NULL);

    pthread_t publisher, followers[LOAD_CLIENTS];
    load_client lc[LOAD_CLIENTS];
    assert_int_equal(pthread_create(&publisher, NULL, load_publisher, &run), 0);
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        lc[i] = (load_client){&run, i};
        assert_int_equal(pthread_create(&followers[i], NULL, load_follower, &lc[i]), 0);
    }
    sleep_ms(300);
    double held_min = 1e9, conns_min = 1e9, chans_min = 1e9;
    for (int round = 0; round < 4; round++) {
        expo e;
        scrape(node.port, &e);
        char when[64];
        snprintf(when, sizeof(when), "%d polls held, messages flowing, scrape %d", LOAD_HELD,
                 round + 1);
        assert_promtool_accepts(&e, when);
        assert_histogram(&e, "holdline_publish_duration_seconds");
        assert_histogram(&e, "holdline_delivery_lag_seconds");
        double w = val(&e, "holdline_waiters", "transport=\"poll\"");
        double cn = val(&e, "holdline_connections", NULL);
        double ch = val(&e, "holdline_channels", NULL);
        held_min = w < held_min ? w : held_min;
        conns_min = cn < conns_min ? cn : conns_min;
        chans_min = ch < chans_min ? ch : chans_min;
        expo_free(&e);
        sleep_ms(150);
    }
    __atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
    pthread_join(publisher, NULL);
    long answers = 0, msgs = 0;
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        pthread_join(followers[i], NULL);
        answers += run.answers[i];
        msgs += run.client_msgs[i];
    }
    /* The held polls are still held; one message on each channel answers
     * them all. */
    expo mid;
    scrape(node.port, &mid);
    assert_true(val(&mid, "holdline_waiters", "transport=\"poll\"") == LOAD_HELD);
    for (int i = 0; i < LOAD_CHANNELS; i++)
        publish_ok(node.port, held[i], "release");
    size_t answered = it_multi_wait(c, LOAD_HELD, 5000);
    size_t with_msg = 0;
    for (size_t i = 0; i < LOAD_HELD; i++) {
        it_json j;
        if (c[i].resp.status == 200 && it_json_parse(c[i].resp.body, &j) == 0 && j.n == 1)
            with_msg++;
        it_json_free(&j);
    }
    it_multi_free(c, LOAD_HELD);
    free(c);
    double left;
    long long drained =
        wait_value(node.port, "holdline_waiters", "transport=\"poll\"", 0, 3000, &left);
    expo after;
    scrape(node.port, &after);
    assert_promtool_accepts(&after, "after the load");
    double d_ok = val(&after, "holdline_publishes_total", "result=\"ok\"") -
                  val(&before, "holdline_publishes_total", "result=\"ok\"");
    double d_dur = val(&after, "holdline_publish_duration_seconds_count", NULL) -
                   val(&before, "holdline_publish_duration_seconds_count", NULL);
    double d_msg = val(&after, "holdline_polls_total", "result=\"message\"") -
                   val(&before, "holdline_polls_total", "result=\"message\"");
    double d_deliv = val(&after, "holdline_messages_delivered_total", "transport=\"poll\"") -
                     val(&before, "holdline_messages_delivered_total", "transport=\"poll\"");
    double d_recv = val(&after, "holdline_messages_received_total", "kind=\"durable\"") -
                    val(&before, "holdline_messages_received_total", "kind=\"durable\"");
    printf("load: %d polls held on %d channels (waiters seen >= %g, connections >= %g, channels "
           ">= %g); %ld publishes (%ld failed), %ld answers with %ld messages to %d followers "
           "(%ld bad); %zu held polls answered, %zu with the message; waiters back to 0 after "
           "%lld ms; publishes ok +%g, durations +%g, polls with messages +%g, delivered +%g, "
           "received durable +%g\n",
           LOAD_HELD, LOAD_CHANNELS, held_min, conns_min, chans_min, run.published,
           run.pub_failures, answers, msgs, LOAD_CLIENTS, run.bad_answers, answered, with_msg,
           drained, d_ok, d_dur, d_msg, d_deliv, d_recv);
    assert_true(held_min >= LOAD_HELD);
    assert_true(conns_min >= LOAD_HELD);
    assert_true(chans_min >= LOAD_CHANNELS + 1);
    assert_int_equal(run.pub_failures, 0);
    assert_true(run.published > 50);
    assert_int_equal(run.bad_answers, 0);
    assert_int_equal(answered, LOAD_HELD);
    assert_int_equal(with_msg, LOAD_HELD);
    assert_true(drained >= 0);
    /* Every publish through the node is counted once, with its time. */
    assert_true(d_ok == (double)run.published + LOAD_CHANNELS);
    assert_true(d_dur == d_ok);
    /* Each held poll was answered with one message; the followers' answers
     * with messages come on top. */
    assert_true(d_msg >= LOAD_HELD + 1);
    assert_true(d_deliv >= (double)(LOAD_HELD + msgs));
    assert_true(d_recv >= (double)run.published);
    expo_free(&before);
    expo_free(&mid);
    expo_free(&after);
}

/* ---- Polls ---------------------------------------------------------------- */

/* What a scrape says now of the counters a test looks at. */
typedef struct counts {
    double msg, timeout, error, deliv_poll, deliv_sse, lag, http_200, http_400, http_503;
    double pub_ok, pub_dup, pub_err, dur, recv_durable, recv_plain, wait_poll, wait_sse;
} counts;

static counts read_counts(int port) {
    expo e;
    scrape(port, &e);
    counts c = {
        val(&e, "holdline_polls_total", "result=\"message\""),
        val(&e, "holdline_polls_total", "result=\"timeout\""),
        val(&e, "holdline_polls_total", "result=\"error\""),
        val(&e, "holdline_messages_delivered_total", "transport=\"poll\""),
        val(&e, "holdline_messages_delivered_total", "transport=\"sse\""),
        val(&e, "holdline_delivery_lag_seconds_count", NULL),
        val(&e, "holdline_http_requests_total", "code=\"200\""),
        val(&e, "holdline_http_requests_total", "code=\"400\""),
        val(&e, "holdline_http_requests_total", "code=\"503\""),
        val(&e, "holdline_publishes_total", "result=\"ok\""),
        val(&e, "holdline_publishes_total", "result=\"duplicate\""),
        val(&e, "holdline_publishes_total", "result=\"error\""),
        val(&e, "holdline_publish_duration_seconds_count", NULL),
        val(&e, "holdline_messages_received_total", "kind=\"durable\""),
        val(&e, "holdline_messages_received_total", "kind=\"plain\""),
        val(&e, "holdline_waiters", "transport=\"poll\""),
        val(&e, "holdline_waiters", "transport=\"sse\""),
    };
    expo_free(&e);
    return c;
}

static void test_polls_are_counted_by_result_and_their_messages_as_delivered(void **state) {
    (void)state;
    char ch[64], quiet[64], path[128];
    channel_name(ch, sizeof(ch), "polled");
    channel_name(quiet, sizeof(quiet), "quiet");
    /* Every worker subscribes the channel first (16 short polls land on
     * both), so that the held polls below are answered live by the
     * publish, not by the read that follows a new subscription (a
     * subscription lingers poll.linger_ms, 5 s, after its last poll). */
    {
        enum { WARM = 16 };
        it_conn warm[WARM];
        char chans[1][64];
        snprintf(chans[0], sizeof(chans[0]), "%s", ch);
        hold_polls(warm, WARM, chans, 1, 1, NULL);
        char rch[128];
        snprintf(rch, sizeof(rch), "holdline:%s", ch);
        const char *numsub[] = {"PUBSUB", "NUMSUB", rch};
        long long subs = 0;
        for (int i = 0; i < 200 && subs < WORKERS; i++) {
            subs = it_redis_int(redis.port, 3, numsub);
            if (subs < WORKERS) usleep(10 * 1000);
        }
        assert_int_equal(subs, WORKERS);
        assert_int_equal(it_multi_wait(warm, WARM, 5000), WARM);
        it_multi_free(warm, WARM);
    }
    counts c0 = read_counts(node.port);

    /* A poll from the start of a channel with three messages: one answer
     * with messages, three delivered, none live (no lag observed). */
    for (int k = 0; k < 3; k++) {
        char data[16];
        snprintf(data, sizeof(data), "%d", k);
        publish_ok(node.port, ch, data);
    }
    /* Both workers hold the channel: the poll is answered from what its
     * worker has received, so wait until both have all three. */
    double got = 0;
    for (int i = 0; i < 250 && got < c0.recv_durable + 3 * WORKERS; i++) {
        expo e;
        scrape(node.port, &e);
        got = val(&e, "holdline_messages_received_total", "kind=\"durable\"");
        expo_free(&e);
        if (got < c0.recv_durable + 3 * WORKERS) sleep_ms(20);
    }
    assert_true(got >= c0.recv_durable + 3 * WORKERS);
    it_json j;
    assert_int_equal(do_poll(node.port, ch, "0", 5, &j), 200);
    assert_int_equal(j.n, 3);
    char cursor[4096];
    snprintf(cursor, sizeof(cursor), "%s", j.cursor);
    it_json_free(&j);
    counts c1 = read_counts(node.port);

    /* Two polls held at the head, answered live by one publish: two
     * answers, two deliveries, two lags. */
    it_conn held[2];
    char chans[1][64];
    snprintf(chans[0], sizeof(chans[0]), "%s", ch);
    hold_polls(held, 2, chans, 1, 10, cursor);
    counts c_held = read_counts(node.port);
    publish_ok(node.port, ch, "live");
    assert_int_equal(it_multi_wait(held, 2, 5000), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(held[i].resp.status, 200);
        assert_int_equal(it_json_parse(held[i].resp.body, &j), 0);
        assert_int_equal(j.n, 1);
        assert_string_equal(j.msgs[0].data, "live");
        it_json_free(&j);
    }
    it_multi_free(held, 2);
    counts c2 = read_counts(node.port);

    /* A bare PUBLISH on the channel's Redis channel is a plain message. */
    hold_polls(held, 1, chans, 1, 10, NULL);
    char rch[128];
    snprintf(rch, sizeof(rch), "holdline:%s", ch);
    const char *pub[] = {"PUBLISH", rch, "plain-hello"};
    assert_true(it_redis_int(redis.port, 3, pub) >= 1);
    assert_int_equal(it_multi_wait(held, 1, 5000), 1);
    assert_int_equal(held[0].resp.status, 200);
    it_multi_free(held, 1);
    counts c3 = read_counts(node.port);

    /* A poll on a quiet channel ends at its timeout, empty. */
    assert_int_equal(do_poll(node.port, quiet, NULL, 1, &j), 200);
    assert_int_equal(j.n, 0);
    it_json_free(&j);
    counts c4 = read_counts(node.port);

    /* Polls refused: a channel name with a character no name may hold, a
     * cursor that is not one. */
    it_resp r;
    snprintf(path, sizeof(path), "/poll/bad%%24name?timeout=1");
    assert_int_equal(it_http(node.port, "GET", path, NULL, 0, NULL, 5000, &r), 0);
    int bad_channel = r.status;
    it_resp_free(&r);
    assert_int_equal(do_poll(node.port, ch, "not-a-cursor", 1, &j), 400);
    it_json_free(&j);
    counts c5 = read_counts(node.port);
    /* A path that is no route: an HTTP answer, not a poll. */
    assert_int_equal(it_http(node.port, "GET", "/no-such-path", NULL, 0, NULL, 5000, &r), 0);
    int not_found = r.status;
    it_resp_free(&r);
    expo e;
    scrape(node.port, &e);
    double http_404 = val(&e, "holdline_http_requests_total", "code=\"404\"");
    double polls_after = val(&e, "holdline_polls_total", "result=\"error\"");
    expo_free(&e);

    printf("polls: catch-up of 3: message +%g delivered +%g lag +%g; 2 held answered live: "
           "waiters %g, message +%g delivered +%g lag +%g received durable +%g; plain: received "
           "plain +%g message +%g; timeout: +%g; bad channel (%d) and bad cursor: error +%g, 400 "
           "+%g\n",
           c1.msg - c0.msg, c1.deliv_poll - c0.deliv_poll, c1.lag - c0.lag, c_held.wait_poll,
           c2.msg - c1.msg, c2.deliv_poll - c1.deliv_poll, c2.lag - c1.lag,
           c2.recv_durable - c1.recv_durable, c3.recv_plain - c2.recv_plain, c3.msg - c2.msg,
           c4.timeout - c3.timeout, bad_channel, c5.error - c4.error, c5.http_400 - c4.http_400);
    assert_true(c1.msg - c0.msg == 1);
    assert_true(c1.deliv_poll - c0.deliv_poll == 3);
    assert_true(c1.lag == c0.lag);
    assert_true(c1.timeout == c0.timeout && c1.error == c0.error);

    assert_true(c_held.wait_poll == 2);
    assert_true(c2.msg - c1.msg == 2);
    assert_true(c2.deliv_poll - c1.deliv_poll == 2);
    assert_true(c2.lag - c1.lag == 2);
    assert_true(c2.recv_durable - c1.recv_durable >= 1);
    assert_true(c2.wait_poll == 0);

    assert_true(c3.recv_plain - c2.recv_plain >= 1);
    assert_true(c3.msg - c2.msg == 1);
    assert_true(c3.deliv_poll - c2.deliv_poll == 1);

    assert_true(c4.timeout - c3.timeout == 1);
    assert_true(c4.msg == c3.msg && c4.deliv_poll == c3.deliv_poll);

    assert_int_equal(bad_channel, 400);
    assert_true(c5.error - c4.error == 2);
    assert_true(c5.http_400 - c4.http_400 == 2);
    assert_true(c5.msg == c4.msg && c5.timeout == c4.timeout);
    assert_true(c5.deliv_sse == c0.deliv_sse);
    assert_int_equal(not_found, 404);
    assert_true(http_404 == 1);
    assert_true(polls_after == c5.error);

    /* Polls whose clients hang up are waiters no more. */
    it_conn gone[5];
    hold_polls(gone, 5, chans, 1, 20, NULL);
    it_multi_free(gone, 5);
    double left;
    long long t_gone =
        wait_value(node.port, "holdline_waiters", "transport=\"poll\"", 0, 5000, &left);
    counts c6 = read_counts(node.port);
    printf("5 held polls whose clients hung up: waiters 0 after %lld ms (last %g); polls counted "
           "message +%g timeout +%g error +%g\n",
           t_gone, left, c6.msg - c5.msg, c6.timeout - c5.timeout, c6.error - c5.error);
    assert_true(t_gone >= 0);
}

/* ---- Publishes ---------------------------------------------------------- */

static void test_publishes_are_counted_ok_duplicate_and_error_with_their_durations(void **state) {
    (void)state;
    char ch[64], key[64];
    channel_name(ch, sizeof(ch), "pubs");
    snprintf(key, sizeof(key), "metrics-key-%ld", (long)getpid());
    counts c0 = read_counts(node.port);
    for (int k = 0; k < 5; k++) {
        char data[16];
        snprintf(data, sizeof(data), "%d", k);
        publish_ok(node.port, ch, data);
    }
    it_json j;
    assert_int_equal(publish(node.port, ch, "keyed", key, &j), 201);
    assert_int_not_equal(j.duplicate, 1);
    it_json_free(&j);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(publish(node.port, ch, "keyed", key, &j), 201);
        assert_int_equal(j.duplicate, 1);
        it_json_free(&j);
    }
    counts c1 = read_counts(node.port);

    /* Redis gone: the publish is refused at once (503), an error. */
    it_redis_stop(&redis);
    double last;
    if (wait_value(node.port, "holdline_redis_up", "link=\"command\"", 0, 5000, &last) < 0)
        fail_msg("holdline_redis_up{link=\"command\"} stays %g with Redis killed", last);
    int st = publish(node.port, ch, "lost", NULL, &j);
    it_json_free(&j);
    counts c2 = read_counts(node.port);
    printf("publishes: 6 stored, 2 repeats of a key: ok +%g duplicate +%g error +%g durations +%g "
           "; with Redis down: status %d, error +%g, 503 +%g, durations +%g\n",
           c1.pub_ok - c0.pub_ok, c1.pub_dup - c0.pub_dup, c1.pub_err - c0.pub_err, c1.dur - c0.dur,
           st, c2.pub_err - c1.pub_err, c2.http_503 - c1.http_503, c2.dur - c1.dur);
    assert_true(c1.pub_ok - c0.pub_ok == 6);
    assert_true(c1.pub_dup - c0.pub_dup == 2);
    assert_true(c1.pub_err == c0.pub_err);
    assert_true(c1.dur - c0.dur == 8);
    assert_int_equal(st, 503);
    assert_true(c2.pub_err - c1.pub_err == 1);
    assert_true(c2.http_503 - c1.http_503 == 1);
    assert_true(c2.pub_ok == c1.pub_ok && c2.pub_dup == c1.pub_dup);
}

/* ---- Server-Sent Events -------------------------------------------------- */

static void test_a_stream_is_a_waiter_while_open_and_its_events_are_delivered_by_sse(void **state) {
    (void)state;
    char ch[64], req[256];
    channel_name(ch, sizeof(ch), "stream");
    counts c0 = read_counts(node.port);
    int fd = it_connect(node.port);
    assert_true(fd >= 0);
    snprintf(req, sizeof(req),
             "GET /events/%s HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n", ch);
    assert_int_equal(it_write_all(fd, req, strlen(req)), 0);
    double last;
    long long open_ms =
        wait_value(node.port, "holdline_waiters", "transport=\"sse\"", 1, 5000, &last);
    if (open_ms < 0) fail_msg("holdline_waiters{transport=\"sse\"} is %g with a stream open", last);
    /* Positioned before the publishes, so that both come live. */
    sleep_ms(300);
    publish_ok(node.port, ch, "first");
    publish_ok(node.port, ch, "second");
    char buf[16384];
    size_t len = 0;
    long long until = it_now_ms() + 5000;
    while (it_now_ms() < until && len < sizeof(buf) - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\"second\"")) break;
    }
    buf[len] = '\0';
    int got_both = strstr(buf, "\"first\"") != NULL && strstr(buf, "\"second\"") != NULL;
    counts c1 = read_counts(node.port);
    close(fd);
    long long closed_ms =
        wait_value(node.port, "holdline_waiters", "transport=\"sse\"", 0, 5000, &last);
    counts c2 = read_counts(node.port);
    printf("stream: waiters{sse} 1 after %lld ms; both events %s; delivered sse +%g, poll +%g, "
           "polls counted +%g, lag +%g; waiters{sse} 0 %lld ms after the close (last %g)\n",
           open_ms, got_both ? "in" : "NOT in", c1.deliv_sse - c0.deliv_sse,
           c1.deliv_poll - c0.deliv_poll, c1.msg - c0.msg + c1.timeout - c0.timeout,
           c1.lag - c0.lag, closed_ms, last);
    assert_true(got_both);
    assert_true(c1.wait_sse == 1);
    assert_true(c1.deliv_sse - c0.deliv_sse == 2);
    assert_true(c1.deliv_poll == c0.deliv_poll);
    assert_true(c1.msg == c0.msg && c1.timeout == c0.timeout && c1.error == c0.error);
    assert_true(c1.lag - c0.lag == 2);
    assert_true(closed_ms >= 0);
    assert_true(c2.wait_sse == 0);
}

/* ---- Redis restarted ------------------------------------------------------ */

static void test_a_redis_restart_shows_in_redis_up_reconnects_and_missed(void **state) {
    (void)state;
    char ch[64], cursor[4096];
    channel_name(ch, sizeof(ch), "restart");
    /* A client's cursor from before: Redis comes back empty, so its next
     * poll is told it missed messages. */
    publish_ok(node.port, ch, "before");
    it_json j;
    assert_int_equal(do_poll(node.port, ch, "0", 5, &j), 200);
    assert_int_equal(j.n, 1);
    snprintf(cursor, sizeof(cursor), "%s", j.cursor);
    it_json_free(&j);
    expo e;
    scrape(node.port, &e);
    double rc0 = val(&e, "holdline_redis_reconnects_total", NULL);
    double missed0 = val(&e, "holdline_missed_total", NULL);
    expo_free(&e);

    it_redis_stop(&redis); /* SIGKILL */
    long long t0 = it_now_ms();
    double last_sub, last_cmd;
    long long sub_down =
        wait_value(node.port, "holdline_redis_up", "link=\"subscriber\"", 0, 5000, &last_sub);
    long long cmd_down =
        wait_value(node.port, "holdline_redis_up", "link=\"command\"", 0, 5000, &last_cmd);
    assert_true(it_wait_status(node.port, "/readyz", 503, 3000, 20) >= 0);
    /* Nothing comes back while Redis is away, and that is no canary
     * failure: the links are down, which says so already. */
    scrape(node.port, &e);
    double down_reconnects = val(&e, "holdline_redis_reconnects_total", NULL);
    double down_canary_fail = val(&e, "holdline_canary_failures_total", NULL);
    double down_canary_ok = val(&e, "holdline_canary_ok", NULL);
    expo_free(&e);
    sleep_ms(500);

    assert_int_equal(it_redis_start(&redis), 0); /* the same port */
    long long t1 = it_now_ms();
    long long ready = it_wait_status(node.port, "/readyz", 200, 10000, 20);
    long long sub_up =
        wait_value(node.port, "holdline_redis_up", "link=\"subscriber\"", 1, 5000, &last_sub);
    long long cmd_up =
        wait_value(node.port, "holdline_redis_up", "link=\"command\"", 1, 5000, &last_cmd);
    scrape(node.port, &e);
    assert_promtool_accepts(&e, "after a Redis restart");
    double rc1 = val(&e, "holdline_redis_reconnects_total", NULL);
    double canary_ok = val(&e, "holdline_canary_ok", NULL);
    double canary_fail = val(&e, "holdline_canary_failures_total", NULL);
    expo_free(&e);
    assert_int_equal(do_poll(node.port, ch, cursor, 3, &j), 200);
    int missed = j.missed;
    it_json_free(&j);
    scrape(node.port, &e);
    double missed1 = val(&e, "holdline_missed_total", NULL);
    expo_free(&e);
    printf("redis killed: redis_up 0 after %lld ms (subscriber) and %lld ms (command), "
           "reconnects %g while down; restarted %lld ms later: /readyz 200 after %lld ms, "
           "redis_up 1 after %lld/%lld ms more; reconnects %g -> %g; canary ok %g, failures %g "
           "(%g while down, canary_ok %g then); the old cursor's poll missed=%d, missed_total %g "
           "-> %g\n",
           sub_down, cmd_down, down_reconnects, t1 - t0, ready, sub_up, cmd_up, rc0, rc1, canary_ok,
           canary_fail, down_canary_fail, down_canary_ok, missed, missed0, missed1);
    assert_true(sub_down >= 0 && cmd_down >= 0);
    assert_true(down_reconnects == rc0);
    assert_true(ready >= 0);
    assert_true(sub_up >= 0 && cmd_up >= 0);
    /* Each worker's two links came back once. */
    assert_true(rc1 - rc0 == 2 * WORKERS);
    assert_true(canary_ok == 1);
    assert_true(canary_fail == 0);
    assert_true(down_canary_fail == 0);
    assert_int_equal(missed, 1);
    assert_true(missed1 - missed0 == 1);
    /* And the node works again. */
    publish_ok(node.port, ch, "after");
}

/* ---- The alert rules -------------------------------------------------------- */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 1 << 20;
    char *buf = calloc(1, cap + 1);
    if (buf) buf[fread(buf, 1, cap, f)] = '\0';
    fclose(f);
    return buf;
}

/* Tests run from the repository's root (they start config/holdline.cfg's
 * node the same way). */
static void assert_alerts_file(void) {
    struct stat st;
    if (stat(ALERTS_FILE, &st) != 0 || !S_ISREG(st.st_mode))
        fail_msg("%s is missing (looked for it from %s, the repository's root): the alert rules "
                 "for holdline's metrics must be there",
                 ALERTS_FILE, getcwd((char[512]){0}, 512));
}

static void test_promtool_accepts_the_alert_rules(void **state) {
    (void)state;
    assert_alerts_file();
    static const char *const args[] = {"check", "rules", ALERTS_FILE, NULL};
    char *out = NULL;
    int st = run_promtool(args, NULL, &out);
    printf("promtool check rules %s: exit %d:\n%s", ALERTS_FILE, st, out ? out : "");
    if (st == 127)
        fail_msg("promtool is not on PATH: it comes with Debian's prometheus package, and this "
                 "test needs it");
    int success = out && strstr(out, "SUCCESS") != NULL;
    int lint = out && (strcasestr(out, "warning") != NULL || strstr(out, "FAILED") != NULL);
    free(out);
    assert_int_equal(st, 0);
    assert_true(success);
    assert_false(lint);
}

/* The rules' own unit tests: each alert fires where it should and stays
 * quiet where it should not, on made-up series. */
static void test_the_alert_rules_fire_as_their_promtool_tests_say(void **state) {
    (void)state;
    assert_alerts_file();
    static const char *const args[] = {"test", "rules", "docs/holdline-alerts.test.yml", NULL};
    char *out = NULL;
    int st = run_promtool(args, NULL, &out);
    printf("promtool test rules docs/holdline-alerts.test.yml: exit %d:\n%s", st, out ? out : "");
    int success = out && strstr(out, "SUCCESS") != NULL;
    free(out);
    assert_int_equal(st, 0);
    assert_true(success);
}

/* The family a sample name belongs to (histograms' series end in _bucket,
 * _sum, _count). */
static int exposed(expo *e, const char *name) {
    if (family_of(e, name, 0)) return 1;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(suffixes[i]);
        if (n > k && strcmp(name + n - k, suffixes[i]) == 0) {
            char base[128];
            snprintf(base, sizeof(base), "%.*s", (int)(n - k), name);
            family *f = family_of(e, base, 0);
            if (f && strcmp(f->type, "histogram") == 0) return 1;
        }
    }
    return 0;
}

static void test_the_alert_rules_name_only_metrics_a_node_exposes(void **state) {
    (void)state;
    assert_alerts_file();
    char *text = slurp(ALERTS_FILE);
    assert_non_null(text);
    expo e;
    scrape(node.port, &e);
    size_t named = 0, unknown = 0;
    char first_unknown[128] = "";
    for (const char *p = text; *p; p++) {
        /* YAML comments are prose: "process_*" there names no series. */
        if (*p == '#') {
            while (p[1] != '\0' && p[1] != '\n')
                p++;
            continue;
        }
        int starts = (strncmp(p, "holdline_", 9) == 0 || strncmp(p, "process_", 8) == 0) &&
                     (p == text || !name_char(p[-1], 0));
        if (!starts) continue;
        size_t n = 0;
        while (name_char(p[n], 0))
            n++;
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)n, p);
        p += n - 1;
        named++;
        if (!exposed(&e, name)) {
            if (unknown++ == 0) snprintf(first_unknown, sizeof(first_unknown), "%s", name);
        }
    }
    printf("%s names metrics %zu times, %zu of them not exposed%s%s\n", ALERTS_FILE, named, unknown,
           unknown ? ", the first: " : "", first_unknown);
    expo_free(&e);
    free(text);
    assert_true(named > 0);
    assert_int_equal(unknown, 0);
}

int main(void) {
    /* IT_FILTER=<glob> runs only the matching tests. */
    if (getenv("IT_FILTER")) cmocka_set_test_filter(getenv("IT_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_promtool_accepts_the_metrics_of_an_idle_node, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_promtool_accepts_the_metrics_while_hundreds_of_polls_are_held_and_messages_flow,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_polls_are_counted_by_result_and_their_messages_as_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_publishes_are_counted_ok_duplicate_and_error_with_their_durations, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_stream_is_a_waiter_while_open_and_its_events_are_delivered_by_sse, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_redis_restart_shows_in_redis_up_reconnects_and_missed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promtool_accepts_the_alert_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_alert_rules_name_only_metrics_a_node_exposes,
                                        setup, teardown),
        cmocka_unit_test(test_the_alert_rules_fire_as_their_promtool_tests_say),
    };
    return it_finish(cmocka_run_group_tests_name("metrics (redis + 1 node)", tests, NULL, NULL));
}
