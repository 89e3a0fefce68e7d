/* Integration: Server-Sent Events. GET /events/{ch} keeps one response
 * open and writes each message as an event whose id is the cursor after
 * it, so a client that reconnects with Last-Event-ID gets exactly what it
 * has not seen. A real redis-server and real nodes on loopback; curl for
 * the wire format, and a small reader of our own (raw sockets, chunked
 * encoding, SSE framing) for many streams at once. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

static it_redis redis;
static it_node node_a, node_b;

static const char *const node_env[] = {"HOLDLINE_SSE_HEARTBEAT_S=1", "HOLDLINE_HTTP_WORKERS=2",
                                       "HOLDLINE_POLL_LINGER_MS=400", NULL};

static int setup(void **state) {
    (void)state;
    if (it_redis_start(&redis) != 0) return -1;
    if (it_node_start_env(&node_a, redis.port, NULL, node_env) != 0) return -1;
    if (it_node_start_env(&node_b, redis.port, NULL, node_env) != 0) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int a = it_node_stop(&node_a), b = it_node_stop(&node_b);
    it_redis_stop(&redis);
    if (a != 0 || b != 0 || it_log_has_crash(node_a.log) || it_log_has_crash(node_b.log)) {
        fprintf(stderr, "node exit status a=%d b=%d, logs %s %s\n", a, b, node_a.log, node_b.log);
        return -1;
    }
    return 0;
}

/* POST /publish/{ch} on port; returns the new id in id (64 bytes). */
static void publish(int port, const char *ch, const char *data, char *id) {
    char path[256];
    snprintf(path, sizeof(path), "/publish/%s", ch);
    it_resp r;
    assert_int_equal(it_http(port, "POST", path, data, strlen(data), NULL, 5000, &r), 0);
    assert_int_equal(r.status, 201);
    it_json j;
    assert_int_equal(it_json_parse(r.body, &j), 0);
    if (id) snprintf(id, 64, "%s", j.id);
    it_json_free(&j);
    it_resp_free(&r);
}

/* A poll answer's cursor (at most 4096 bytes). */
static void poll_cursor(int port, const char *path, char *cursor) {
    it_resp r;
    assert_int_equal(it_http(port, "GET", path, NULL, 0, NULL, 10000, &r), 0);
    assert_int_equal(r.status, 200);
    it_json j;
    assert_int_equal(it_json_parse(r.body, &j), 0);
    snprintf(cursor, 4096, "%s", j.cursor);
    it_json_free(&j);
    it_resp_free(&r);
}

/* ---- A stream reader -------------------------------------------------- */

typedef struct sse {
    int fd;
    char *raw; /* everything received */
    size_t len, cap;
    int closed; /* the server closed the connection */
    int status; /* once the head is in */
    char *body; /* the de-chunked body so far (sse_parse) */
    size_t blen;
    int ended; /* the last chunk came */
} sse;

static int sse_open(sse *s, int port, const char *path, const char *extra) {
    memset(s, 0, sizeof(*s));
    s->fd = it_connect(port);
    if (s->fd < 0) return -1;
    char req[8192];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n",
                     path, extra ? extra : "");
    return it_write_all(s->fd, req, (size_t)n);
}

static void sse_close(sse *s) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    free(s->raw);
    free(s->body);
    s->raw = s->body = NULL;
}

/* Reads what is there; returns bytes read (0: nothing now). */
static size_t sse_read(sse *s) {
    size_t total = 0;
    for (;;) {
        if (s->cap - s->len < 4096) {
            s->cap = s->cap ? s->cap * 2 : 16384;
            s->raw = realloc(s->raw, s->cap + 1);
            assert_non_null(s->raw);
        }
        ssize_t n = recv(s->fd, s->raw + s->len, s->cap - s->len, MSG_DONTWAIT);
        if (n > 0) {
            s->len += (size_t)n;
            total += (size_t)n;
            continue;
        }
        if (n == 0) s->closed = 1;
        break;
    }
    if (s->raw) s->raw[s->len] = '\0';
    return total;
}

/* De-chunks the body received so far. */
static void sse_parse(sse *s) {
    free(s->body);
    s->body = NULL;
    s->blen = 0;
    s->status = 0;
    if (s->raw == NULL) return;
    char *end = strstr(s->raw, "\r\n\r\n");
    if (end == NULL) return;
    sscanf(s->raw, "HTTP/1.%*d %d", &s->status);
    s->body = malloc(s->len + 1);
    assert_non_null(s->body);
    const char *p = end + 4, *lim = s->raw + s->len;
    while (p < lim) {
        char *nl = memmem(p, (size_t)(lim - p), "\r\n", 2);
        if (nl == NULL) break;
        size_t size = strtoul(p, NULL, 16);
        if (size == 0) {
            s->ended = 1;
            break;
        }
        if ((size_t)(lim - (nl + 2)) < size + 2) break;
        memcpy(s->body + s->blen, nl + 2, size);
        s->blen += size;
        p = nl + 2 + size + 2;
    }
    s->body[s->blen] = '\0';
}

/* Occurrences of needle at the start of a line of the body. */
static size_t lines_starting(const sse *s, const char *needle) {
    size_t n = 0, k = strlen(needle);
    for (const char *p = s->body; p && *p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (strncmp(p, needle, k) == 0) n++;
        if (*p == '\0') break;
    }
    return n;
}

/* Pumps every stream until pred holds for all of them or timeout. */
static int pump(sse *s, size_t n, int timeout_ms, int (*pred)(const sse *s, void *ud), void *ud) {
    struct pollfd *pf = calloc(n, sizeof(*pf));
    assert_non_null(pf);
    long long until = it_now_ms() + timeout_ms;
    int ok = 0;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++) {
            sse_parse(&s[i]);
            done += pred(&s[i], ud) != 0;
        }
        if (done == n) {
            ok = 1;
            break;
        }
        long long left = until - it_now_ms();
        if (left <= 0) break;
        for (size_t i = 0; i < n; i++) {
            pf[i].fd = s[i].closed ? -1 : s[i].fd;
            pf[i].events = POLLIN;
        }
        int rc = poll(pf, n, (int)(left < 200 ? left : 200));
        if (rc < 0 && errno != EINTR) break;
        for (size_t i = 0; i < n; i++)
            if (pf[i].revents) sse_read(&s[i]);
    }
    free(pf);
    return ok;
}

static int has_events(const sse *s, void *ud) {
    return lines_starting(s, "data: ") >= (size_t)(uintptr_t)ud;
}

/* Positioned: the opening and the id line of the position are in. */
static int positioned(const sse *s, void *ud) {
    (void)ud;
    return s->status == 200 && lines_starting(s, "id: ") >= 1;
}

static int ended(const sse *s, void *ud) {
    (void)ud;
    return s->ended || s->closed;
}

/* The id of the k-th event carrying data (0-based), into out. */
static int event_id(const sse *s, size_t k, char *out, size_t outlen) {
    const char *p = s->body;
    const char *last_id = NULL;
    size_t seen = 0;
    while (p && *p) {
        if (strncmp(p, "id: ", 4) == 0) last_id = p + 4;
        if (strncmp(p, "data: ", 6) == 0) {
            if (seen++ == k && last_id) {
                size_t n = strcspn(last_id, "\n");
                if (n >= outlen) return -1;
                memcpy(out, last_id, n);
                out[n] = '\0';
                return 0;
            }
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}

/* ---- Wire format, with curl ---------------------------------------------- */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_curl_sees_retry_position_then_one_event_per_message_and_heartbeats(void **state) {
    (void)state;
    char out[256], url[128];
    snprintf(out, sizeof(out), "%s/curl-wire.out", it_run_dir());
    unlink(out);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events/wire", node_a.port);
    const char *argv[] = {"curl", "-sN", "-D", "-", "-m", "3", url, NULL};
    pid_t pid = it_spawn(argv, out);
    assert_true(pid > 0);
    usleep(800 * 1000); /* subscribed and positioned */
    char id1[64], id2[64];
    publish(node_b.port, "wire", "hello", id1);
    publish(node_b.port, "wire", "line\nbreak \"quoted\"", id2);
    it_stop(pid, 0, 6000); /* curl ends by itself at -m 3 */
    char *text = slurp(out);
    assert_non_null(text);
    assert_non_null(strstr(text, "HTTP/1.1 200"));
    assert_non_null(strcasestr(text, "Content-Type: text/event-stream"));
    assert_non_null(strcasestr(text, "Cache-Control: no-store"));
    assert_non_null(strcasestr(text, "X-Accel-Buffering: no"));
    char *body = strstr(text, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    /* The opening, then the position (an id line alone), then the events. */
    assert_int_equal(strncmp(body, "retry: 3000\n\nid: ", 17), 0);
    char *pos_end = strstr(body + 17, "\n\n");
    assert_non_null(pos_end);
    char ev1[512], ev2[512];
    snprintf(ev1, sizeof(ev1), "data: {\"channel\":\"wire\",\"id\":\"%s\",\"data\":\"hello\"}\n\n",
             id1);
    snprintf(ev2, sizeof(ev2),
             "data: {\"channel\":\"wire\",\"id\":\"%s\",\"data\":\"line\\nbreak \\\"quoted\\\"\"}"
             "\n\n",
             id2);
    char *e1 = strstr(body, ev1), *e2 = strstr(body, ev2);
    assert_non_null(e1);
    assert_non_null(e2);
    assert_true(e1 < e2 && e1 > pos_end);
    /* Each event's id is the cursor after it: a poll from the first id
     * answers with the second message and the second id. */
    char *id_line = e1;
    while (id_line > body && strncmp(id_line, "id: ", 4) != 0)
        id_line--;
    char cur1[512];
    assert_int_equal(sscanf(id_line, "id: %511[^\n]", cur1), 1);
    char path[1024], after[4096];
    snprintf(path, sizeof(path), "/poll/wire?timeout=1&cursor=%s", cur1);
    poll_cursor(node_b.port, path, after);
    char want_line[4700];
    snprintf(want_line, sizeof(want_line), "id: %s\n%s", after, ev2);
    assert_non_null(strstr(body, want_line));
    /* A heartbeat comment within the 3 s (sse.heartbeat_s = 1 here). */
    assert_non_null(strstr(body, "\n: hb\n\n"));
    free(text);
}

static void test_a_stream_has_cors_headers_for_an_allowed_origin(void **state) {
    (void)state;
    it_node n;
    const char *env[] = {"HOLDLINE_HTTP_CORS_ORIGINS=https://app.example", NULL};
    assert_int_equal(it_node_start_env(&n, redis.port, NULL, env), 0);
    sse s;
    assert_int_equal(sse_open(&s, n.port, "/events/cors", "Origin: https://app.example\r\n"), 0);
    assert_true(pump(&s, 1, 5000, positioned, NULL));
    assert_non_null(strcasestr(s.raw, "Access-Control-Allow-Origin: https://app.example"));
    assert_non_null(strcasestr(s.raw, "Vary: Origin"));
    sse_close(&s);
    assert_int_equal(it_node_stop(&n), 0);
}

/* ---- Resuming ----------------------------------------------------------- */

static void test_last_event_id_resumes_after_exactly_that_message(void **state) {
    (void)state;
    char cur[4096];
    poll_cursor(node_a.port, "/poll/resume?timeout=1", cur);
    for (int i = 1; i <= 4; i++) {
        char d[16];
        snprintf(d, sizeof(d), "m%d", i);
        publish(node_b.port, "resume", d, NULL);
    }
    /* The cursor after m2, as a stream would have handed it out. */
    sse s;
    char path[4300];
    snprintf(path, sizeof(path), "/events/resume?cursor=%s", cur);
    assert_int_equal(sse_open(&s, node_a.port, path, NULL), 0);
    assert_true(pump(&s, 1, 5000, has_events, (void *)(uintptr_t)4));
    char after_m2[4096];
    assert_int_equal(event_id(&s, 1, after_m2, sizeof(after_m2)), 0);
    sse_close(&s);

    char hdr[4200];
    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s\r\n", after_m2);
    assert_int_equal(sse_open(&s, node_b.port, "/events/resume", hdr), 0);
    assert_true(pump(&s, 1, 5000, has_events, (void *)(uintptr_t)2));
    usleep(300 * 1000);
    sse_read(&s);
    sse_parse(&s);
    assert_int_equal(lines_starting(&s, "data: "), 2);
    assert_non_null(strstr(s.body, "\"data\":\"m3\""));
    assert_non_null(strstr(s.body, "\"data\":\"m4\""));
    assert_null(strstr(s.body, "\"data\":\"m2\""));
    sse_close(&s);

    /* An EventSource reconnects to the URL it was opened with and sends
     * where it got to as Last-Event-ID: the header wins over ?cursor=. */
    snprintf(path, sizeof(path), "/events/resume?cursor=%s", cur);
    assert_int_equal(sse_open(&s, node_b.port, path, hdr), 0);
    assert_true(pump(&s, 1, 5000, has_events, (void *)(uintptr_t)2));
    usleep(300 * 1000);
    sse_read(&s);
    sse_parse(&s);
    assert_int_equal(lines_starting(&s, "data: "), 2);
    assert_null(strstr(s.body, "\"data\":\"m2\""));
    sse_close(&s);
}

static void test_a_cursor_whose_history_is_gone_gets_a_missed_event(void **state) {
    (void)state;
    publish(node_b.port, "gone", "x", NULL);
    /* An epoch no Redis ever had: continuity cannot be proved. */
    sse s;
    assert_int_equal(sse_open(&s, node_a.port, "/events/gone?cursor=0123456789abcdef:1000-0", NULL),
                     0);
    assert_true(pump(&s, 1, 5000, has_events, (void *)(uintptr_t)2));
    assert_int_equal(lines_starting(&s, "event: missed"), 1);
    char *missed = strstr(s.body, "event: missed\n");
    char *msg = strstr(s.body, "\"data\":\"x\"");
    assert_non_null(missed);
    assert_non_null(msg);
    assert_true(missed < msg);
    sse_close(&s);
}

static void test_a_bad_cursor_or_channel_gets_a_json_400(void **state) {
    (void)state;
    static const struct {
        const char *path;
        const char *code;
    } cases[] = {
        {"/events/ok?cursor=zz:1-0", "bad_cursor"},
        {"/events/bad%20name", "bad_channel"},
        {"/events/", "bad_channel"},
        {"/events/a,a", "bad_channel"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        it_resp r;
        assert_int_equal(it_http(node_a.port, "GET", cases[i].path, NULL, 0, NULL, 3000, &r), 0);
        assert_int_equal(r.status, 400);
        it_json j;
        assert_int_equal(it_json_parse(r.body, &j), 0);
        assert_string_equal(j.error, cases[i].code);
        it_json_free(&j);
        it_resp_free(&r);
    }
}

/* ---- Ends ---------------------------------------------------------------- */

static void test_a_stream_ends_after_max_duration(void **state) {
    (void)state;
    it_node n;
    const char *env[] = {"HOLDLINE_SSE_MAX_DURATION_S=2", NULL};
    assert_int_equal(it_node_start_env(&n, redis.port, NULL, env), 0);
    sse s;
    long long t0 = it_now_ms();
    assert_int_equal(sse_open(&s, n.port, "/events/short", NULL), 0);
    assert_true(pump(&s, 1, 6000, ended, NULL));
    long long took = it_now_ms() - t0;
    assert_true(took >= 1900 && took < 4000);
    assert_true(s.ended);
    sse_close(&s);
    assert_int_equal(it_node_stop(&n), 0);
}

static void test_sigterm_ends_every_stream_at_once(void **state) {
    (void)state;
    it_node n;
    assert_int_equal(it_node_start(&n, redis.port, NULL), 0);
    sse s[20];
    for (int i = 0; i < 20; i++)
        assert_int_equal(sse_open(&s[i], n.port, i % 2 ? "/events/t1" : "/events/t2", NULL), 0);
    assert_true(pump(s, 20, 5000, positioned, NULL));
    long long t0 = it_now_ms();
    kill(n.pid, SIGTERM);
    assert_true(pump(s, 20, 3000, ended, NULL));
    assert_true(it_now_ms() - t0 < 1500);
    for (int i = 0; i < 20; i++)
        sse_close(&s[i]);
    assert_int_equal(it_node_stop(&n), 0);
}

static void test_a_stream_whose_client_closes_is_released_within_the_hang_up_check(void **state) {
    (void)state;
    /* The default heartbeat (15 s) and a short linger: only the hang-up
     * check (a peek at each held socket every 4 s) can end the stream
     * within the wait below. */
    it_node n;
    const char *env[] = {"HOLDLINE_POLL_LINGER_MS=200", "HOLDLINE_HTTP_WORKERS=1", NULL};
    assert_int_equal(it_node_start_env(&n, redis.port, NULL, env), 0);
    const char *numsub[] = {"PUBSUB", "NUMSUB", "holdline:leaving"};
    sse s;
    assert_int_equal(sse_open(&s, n.port, "/events/leaving", NULL), 0);
    assert_true(pump(&s, 1, 5000, positioned, NULL));
    assert_int_equal(it_redis_int(redis.port, 3, numsub), 1);
    long long t0 = it_now_ms();
    sse_close(&s);
    /* Stream ended, channel's last waiter gone, linger over, UNSUBSCRIBE. */
    long long subs = 1;
    while (subs != 0 && it_now_ms() - t0 < 8000) {
        usleep(50 * 1000);
        subs = it_redis_int(redis.port, 3, numsub);
    }
    printf("stream released and channel unsubscribed %lld ms after the client closed\n",
           it_now_ms() - t0);
    assert_int_equal(subs, 0);
    assert_true(it_now_ms() - t0 < 5500);
    assert_int_equal(it_node_stop(&n), 0);
}

/* ---- Many streams ---------------------------------------------------------- */

#define MANY 1000

static void test_1000_streams_on_two_nodes_get_one_publish_each(void **state) {
    (void)state;
    sse *s = calloc(MANY, sizeof(*s));
    assert_non_null(s);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(sse_open(&s[i], i % 2 ? node_a.port : node_b.port, "/events/many", NULL),
                         0);
    assert_true(pump(s, MANY, 20000, positioned, NULL));
    char id[64];
    publish(node_a.port, "many", "to everyone", id);
    assert_true(pump(s, MANY, 10000, has_events, (void *)(uintptr_t)1));
    usleep(300 * 1000);
    size_t twice = 0;
    for (int i = 0; i < MANY; i++) {
        sse_read(&s[i]);
        sse_parse(&s[i]);
        twice += lines_starting(&s[i], "data: ") != 1;
        sse_close(&s[i]);
    }
    assert_int_equal(twice, 0);
    free(s);
}

/* utime + stime of pid, in clock ticks. */
static long long cpu_ticks(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL) return -1;
    unsigned long long ut = 0, st = 0;
    /* Fields after the command: state ppid pgrp session tty tpgid flags
     * minflt cminflt majflt cmajflt utime stime. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

#define IDLE 200

static void test_an_idle_stream_costs_less_than_a_thousandth_of_a_core(void **state) {
    (void)state;
    sse *s = calloc(IDLE, sizeof(*s));
    assert_non_null(s);
    for (int i = 0; i < IDLE; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/events/idle%d", i % 20);
        assert_int_equal(sse_open(&s[i], node_a.port, path, NULL), 0);
    }
    assert_true(pump(s, IDLE, 10000, positioned, NULL));
    long long hz = sysconf(_SC_CLK_TCK);
    long long t0 = it_now_ms(), c0 = cpu_ticks(node_a.pid);
    /* Keep reading the heartbeats (one a second each here) so the
     * streams stay what a browser's are. */
    pump(s, IDLE, 4000, ended, NULL);
    long long t1 = it_now_ms(), c1 = cpu_ticks(node_a.pid);
    assert_true(c0 >= 0 && c1 >= c0);
    double core = (double)(c1 - c0) / (double)hz / ((double)(t1 - t0) / 1000.0);
    double per_stream = core / IDLE;
    printf("%d idle streams (heartbeat every 1 s): %.3f%% of a core in all, %.5f%% each\n", IDLE,
           core * 100, per_stream * 100);
    assert_true(per_stream < 0.001);
    for (int i = 0; i < IDLE; i++) {
        assert_true(lines_starting(&s[i], ": hb") >= 2);
        sse_close(&s[i]);
    }
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_sees_retry_position_then_one_event_per_message_and_heartbeats),
        cmocka_unit_test(test_a_stream_has_cors_headers_for_an_allowed_origin),
        cmocka_unit_test(test_last_event_id_resumes_after_exactly_that_message),
        cmocka_unit_test(test_a_cursor_whose_history_is_gone_gets_a_missed_event),
        cmocka_unit_test(test_a_bad_cursor_or_channel_gets_a_json_400),
        cmocka_unit_test(test_a_stream_ends_after_max_duration),
        cmocka_unit_test(test_sigterm_ends_every_stream_at_once),
        cmocka_unit_test(test_a_stream_whose_client_closes_is_released_within_the_hang_up_check),
        cmocka_unit_test(test_1000_streams_on_two_nodes_get_one_publish_each),
        cmocka_unit_test(test_an_idle_stream_costs_less_than_a_thousandth_of_a_core),
    };
    return it_finish(cmocka_run_group_tests_name("sse (redis + 2 nodes)", tests, setup, teardown));
}
