/* Integration: a real redis-server and two real holdline nodes on
 * loopback, driven over HTTP from outside. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "itest.h"

static it_redis redis;
static it_node node_a, node_b;

/* Short linger so the unsubscribe is observable; two workers per node so
 * the subscription counts below have a known ceiling. */
#define LINGER_MS 400
#define WORKERS 2

static int setup(void **state) {
    (void)state;
    setenv("HOLDLINE_POLL_LINGER_MS", "400", 1);
    setenv("HOLDLINE_HTTP_WORKERS", "2", 1);
    if (it_redis_start(&redis) != 0) return -1;
    if (it_node_start(&node_a, redis.port, NULL) != 0) return -1;
    if (it_node_start(&node_b, redis.port, NULL) != 0) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int a = it_node_stop(&node_a), b = it_node_stop(&node_b);
    it_redis_stop(&redis);
    int bad = 0;
    if (a != 0 || b != 0) {
        fprintf(stderr, "node exit status: a=%d b=%d (want 0)\n", a, b);
        bad = 1;
    }
    if (it_log_has_crash(node_a.log) || it_log_has_crash(node_b.log)) {
        fprintf(stderr, "sanitizer or crash report in %s or %s\n", node_a.log, node_b.log);
        bad = 1;
    }
    return bad ? -1 : 0;
}

/* Redis subscribers of holdline:<channel>, from PUBSUB NUMSUB. */
static int numsub(const char *channel) {
    char ch[256], out[512];
    snprintf(ch, sizeof(ch), "holdline:%s", channel);
    const char *argv[] = {"PUBSUB", "NUMSUB", ch};
    if (it_redis_cmd(redis.port, out, sizeof(out), 3, argv) != 0) return -1;
    const char *colon = strrchr(out, ':');
    return colon ? atoi(colon + 1) : -1;
}

/* Waits until at least `want` workers subscribed to channel, then a
 * little longer so that every waiter sent so far is registered. */
static void wait_subscribed(const char *channel, int want) {
    long long end = it_now_ms() + 5000;
    while (numsub(channel) < want && it_now_ms() < end)
        usleep(10000);
    assert_true(numsub(channel) >= want);
    usleep(300000);
}

static char *poll_request(const char *channel, int timeout) {
    char *req = malloc(256);
    snprintf(req, 256, "GET /poll/%s?timeout=%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
             channel, timeout);
    return req;
}

/* Checks that r carries exactly one message, data on channel; durable
 * messages (published through holdline_publish) carry a stream id, plain
 * PUBLISHes "id":null. */
static void assert_message(const it_resp *r, const char *channel, const char *data, int durable) {
    char head[256], tail[512];
    snprintf(head, sizeof(head), "\"messages\":[{\"channel\":\"%s\",\"id\":%s", channel,
             durable ? "\"" : "null,");
    snprintf(tail, sizeof(tail), "\"data\":\"%s\"}],\"missed\":false}", data);
    assert_int_equal(r->status, 200);
    assert_non_null(r->body);
    if (strstr(r->body, head) == NULL || strstr(r->body, tail) == NULL)
        fail_msg("body %s lacks %s...%s", r->body, head, tail);
}

static void publish_http(int port, const char *channel, const char *data, int want_status) {
    char path[256];
    snprintf(path, sizeof(path), "/publish/%s", channel);
    it_resp r;
    assert_int_equal(it_http(port, "POST", path, data, strlen(data), NULL, 3000, &r), 0);
    assert_int_equal(r.status, want_status);
    it_resp_free(&r);
}

static void test_http_publish_on_node_a_reaches_a_waiter_on_node_b(void **state) {
    (void)state;
    it_conn c;
    char *req = poll_request("a2b", 10);
    const char *reqs[] = {req};
    assert_int_equal(it_multi_open(&c, 1, &node_b.port, reqs), 0);
    wait_subscribed("a2b", 1);
    publish_http(node_a.port, "a2b", "hello from A", 201);
    assert_int_equal(it_multi_wait(&c, 1, 3000), 1);
    assert_message(&c.resp, "a2b", "hello from A", 1);
    it_multi_free(&c, 1);
    free(req);
}

static void test_redis_cli_publish_reaches_waiters_on_both_nodes(void **state) {
    (void)state;
    it_conn c[2];
    char *req = poll_request("plain", 10);
    const char *reqs[] = {req, req};
    int ports[] = {node_a.port, node_b.port};
    assert_int_equal(it_multi_open(c, 2, ports, reqs), 0);
    wait_subscribed("plain", 2);
    char out[64];
    const char *argv[] = {"PUBLISH", "holdline:plain", "hello \"from\" redis"};
    assert_int_equal(it_redis_cmd(redis.port, out, sizeof(out), 3, argv), 0);
    assert_int_equal(it_multi_wait(c, 2, 3000), 2);
    for (int i = 0; i < 2; i++)
        assert_message(&c[i].resp, "plain", "hello \\\"from\\\" redis", 0);
    it_multi_free(c, 2);
    free(req);
}

static void test_poll_with_timeout_2_answers_no_event_after_2_seconds(void **state) {
    (void)state;
    it_resp r;
    long long t0 = it_now_us();
    assert_int_equal(it_http(node_a.port, "GET", "/poll/quiet?timeout=2", NULL, 0, NULL, 5000, &r),
                     0);
    long long took = it_now_us() - t0;
    fprintf(stderr, "timeout=2 answered after %.1f ms\n", took / 1000.0);
    assert_int_equal(r.status, 200);
    /* No event, and a cursor to come back with (also in the header). */
    char v[128], body_cursor[128];
    assert_int_equal(
        sscanf(r.body, "{\"cursor\":\"%127[^\"]\",\"messages\":[],\"missed\":false}", body_cursor),
        1);
    assert_int_equal(it_resp_header(&r, "Holdline-Cursor", v, sizeof(v)), 0);
    assert_string_equal(v, body_cursor);
    assert_int_equal(it_resp_header(&r, "Cache-Control", v, sizeof(v)), 0);
    assert_string_equal(v, "no-store");
    assert_int_equal(it_resp_header(&r, "Content-Type", v, sizeof(v)), 0);
    assert_string_equal(v, "application/json");
    it_resp_free(&r);
    assert_in_range(took, 2000000, 2300000);
}

/* Timeouts of different lengths armed out of order: each poll is answered
 * at its own timeout (the node keeps one deadline list per duration). */
static void test_mixed_timeouts_each_answer_at_their_own_time(void **state) {
    (void)state;
    enum { N = 5 };
    const int secs[N] = {3, 1, 2, 1, 3};
    char *req[N];
    int ports[N];
    it_conn c[N];
    for (int i = 0; i < N; i++) {
        req[i] = poll_request("mixed", secs[i]);
        ports[i] = node_a.port;
    }
    long long t0 = it_now_ms();
    assert_int_equal(it_multi_open(c, N, ports, (const char *const *)req), 0);
    long long took[N] = {0};
    while (it_now_ms() - t0 < 5000) {
        it_multi_wait(c, N, 10);
        int left = 0;
        for (int i = 0; i < N; i++) {
            if (c[i].done && took[i] == 0) took[i] = it_now_ms() - t0;
            left += took[i] == 0;
        }
        if (left == 0) break;
    }
    for (int i = 0; i < N; i++) {
        fprintf(stderr, "timeout=%d answered after %lld ms\n", secs[i], took[i]);
        assert_int_equal(c[i].resp.status, 200);
        assert_in_range(took[i], secs[i] * 1000LL, secs[i] * 1000LL + 300);
    }
    it_multi_free(c, N);
    for (int i = 0; i < N; i++)
        free(req[i]);
}

static void test_a_thousand_waiters_over_two_nodes_all_receive_one_publish(void **state) {
    (void)state;
    enum { N = 1000 };
    it_conn *c = calloc(N, sizeof(*c));
    int *ports = calloc(N, sizeof(*ports));
    const char **reqs = calloc(N, sizeof(*reqs));
    char *req = poll_request("crowd", 20);
    for (int i = 0; i < N; i++) {
        ports[i] = i % 2 ? node_b.port : node_a.port;
        reqs[i] = req;
    }
    assert_int_equal(it_multi_open(c, N, ports, reqs), 0);
    wait_subscribed("crowd", 2);
    usleep(700000);
    long long t0 = it_now_ms();
    publish_http(node_a.port, "crowd", "to everyone", 201);
    size_t got = it_multi_wait(c, N, 10000);
    long long took = it_now_ms() - t0;
    size_t right = 0;
    for (int i = 0; i < N; i++)
        right += c[i].resp.status == 200 && c[i].resp.body &&
                 strstr(c[i].resp.body, "\"data\":\"to everyone\"") != NULL;
    fprintf(stderr, "%d waiters: %zu answered, %zu with the message, last after %lld ms\n", N, got,
            right, took);
    assert_int_equal(right, N);
    it_multi_free(c, N);
    free(c);
    free(ports);
    free(reqs);
    free(req);
}

static void
test_one_subscription_per_channel_per_worker_and_unsubscribe_after_linger(void **state) {
    (void)state;
    enum { N = 200 };
    it_conn c[N];
    int ports[N];
    const char *reqs[N];
    char *req = poll_request("one-sub", 10);
    for (int i = 0; i < N; i++) {
        ports[i] = node_a.port;
        reqs[i] = req;
    }
    assert_int_equal(it_multi_open(c, N, ports, reqs), 0);
    wait_subscribed("one-sub", 1);
    int subs = numsub("one-sub");
    fprintf(stderr, "%d waiters on one node: %d Redis subscriptions\n", N, subs);
    assert_in_range(subs, 1, WORKERS);
    publish_http(node_b.port, "one-sub", "x", 201);
    assert_int_equal(it_multi_wait(c, N, 3000), N);
    it_multi_free(c, N);

    /* The subscription outlives its last waiter by the linger, so a
     * re-poll finds it live... */
    usleep(LINGER_MS * 1000 / 4);
    assert_int_equal(numsub("one-sub"), subs);
    /* ...and once nobody waits, it goes after the linger. */
    long long t0 = it_now_ms();
    while (numsub("one-sub") > 0 && it_now_ms() - t0 < 3000)
        usleep(20000);
    fprintf(stderr, "unsubscribed %lld ms after the last waiter left\n", it_now_ms() - t0);
    assert_int_equal(numsub("one-sub"), 0);
    free(req);
}

typedef struct bad_case {
    const char *name;
    const char *raw; /* the whole request */
    int status;
    const char *error; /* the "error" code in the JSON body */
} bad_case;

static void test_bad_requests_get_their_status_and_a_json_error(void **state) {
    (void)state;
    static char big[70000 + 256];
    int n = snprintf(big, sizeof(big),
                     "POST /publish/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Content-Length: 70000\r\n\r\n");
    memset(big + n, 'x', 70000);
    big[n + 70000] = '\0';
    static char chunked[90000];
    n = snprintf(chunked, sizeof(chunked),
                 "POST /publish/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 4; i++) { /* 4 x 20 KiB > 64 KiB */
        n += snprintf(chunked + n, sizeof(chunked) - (size_t)n, "5000\r\n");
        memset(chunked + n, 'y', 0x5000);
        n += 0x5000;
        n += snprintf(chunked + n, sizeof(chunked) - (size_t)n, "\r\n");
    }
    snprintf(chunked + n, sizeof(chunked) - (size_t)n, "0\r\n\r\n");

    static char long_channel[512];
    char name[202];
    memset(name, 'x', 201);
    name[201] = '\0';
    snprintf(long_channel, sizeof(long_channel),
             "GET /poll/%s?timeout=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", name);

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    const bad_case cases[] = {
        {"unknown path", GET("/nope"), 404, "not_found"},
        {"poll without channel", GET("/poll/"), 400, "bad_channel"},
        {"poll bare", GET("/poll"), 400, "bad_channel"},
        {"channel with !", GET("/poll/bad!name"), 400, "bad_channel"},
        {"channel with encoded NUL", GET("/poll/a%00b"), 400, "bad_channel"},
        {"channel with bad escape", GET("/poll/a%zzb"), 400, "bad_channel"},
        {"channel with slash", GET("/poll/a/b"), 400, "bad_channel"},
        {"channel of 201 bytes", long_channel, 400, "bad_channel"},
        {"timeout not a number", GET("/poll/x?timeout=abc"), 400, "bad_timeout"},
        {"timeout zero", GET("/poll/x?timeout=0"), 400, "bad_timeout"},
        {"timeout negative", GET("/poll/x?timeout=-5"), 400, "bad_timeout"},
        {"publish bad channel",
         "POST /publish/no%20way HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: "
         "1\r\n\r\nx",
         400, "bad_channel"},
        {"DELETE on poll", "DELETE /poll/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405,
         "method_not_allowed"},
        {"GET on publish", GET("/publish/x"), 405, "method_not_allowed"},
        {"POST on healthz",
         "POST /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 405,
         "method_not_allowed"},
        {"body over max_message_bytes", big, 413, "too_large"},
        {"chunked body over max_message_bytes", chunked, 413, "too_large"},
    };
#undef GET
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_case *k = &cases[i];
        int port = i % 2 ? node_b.port : node_a.port;
        it_resp r;
        if (it_raw(port, k->raw, strlen(k->raw), 3000, &r) != 0) fail_msg("%s: no answer", k->name);
        char want[128], ctype[64] = "";
        snprintf(want, sizeof(want), "{\"error\":\"%s\",\"detail\":\"", k->error);
        it_resp_header(&r, "Content-Type", ctype, sizeof(ctype));
        if (r.status != k->status || r.body == NULL || strncmp(r.body, want, strlen(want)) != 0 ||
            strcmp(ctype, "application/json") != 0)
            fail_msg("%s: got %d %s (%s), want %d %s", k->name, r.status,
                     r.body ? r.body : "(none)", ctype, k->status, want);
        it_resp_free(&r);
    }
    /* Both nodes still serve a whole publish/poll round. */
    for (int i = 0; i < 2; i++) {
        it_node *n = i ? &node_b : &node_a;
        it_resp r;
        assert_int_equal(it_http(n->port, "GET", "/healthz", NULL, 0, NULL, 2000, &r), 0);
        assert_int_equal(r.status, 200);
        it_resp_free(&r);
    }
    test_http_publish_on_node_a_reaches_a_waiter_on_node_b(state);
}

/* Keep-alive: an answer (at once or after a held poll) leaves the
 * connection open for the next request, so clients and load balancers
 * need not reconnect for every poll. */
static void test_answers_keep_the_connection_open(void **state) {
    (void)state;
    static const char *const reqs[] = {
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /poll/keepalive?timeout=1 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        it_resp r;
        char v[64] = "";
        assert_int_equal(it_raw(node_a.port, reqs[i], strlen(reqs[i]), 1500, &r), 0);
        assert_true(r.status == 200 || r.status == 404);
        if (it_resp_header(&r, "Connection", v, sizeof(v)) == 0 && strcasecmp(v, "close") == 0)
            fail_msg("%s answered with Connection: close", reqs[i]);
        it_resp_free(&r);
    }
}

static void test_the_demo_page_and_client_are_served(void **state) {
    (void)state;
    it_resp r;
    assert_int_equal(it_http(node_a.port, "GET", "/", NULL, 0, NULL, 2000, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Sent request"));
    it_resp_free(&r);
    assert_int_equal(it_http(node_b.port, "GET", "/holdline.js", NULL, 0, NULL, 2000, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.body_len > 100);
    it_resp_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_publish_on_node_a_reaches_a_waiter_on_node_b),
        cmocka_unit_test(test_redis_cli_publish_reaches_waiters_on_both_nodes),
        cmocka_unit_test(test_poll_with_timeout_2_answers_no_event_after_2_seconds),
        cmocka_unit_test(test_mixed_timeouts_each_answer_at_their_own_time),
        cmocka_unit_test(test_a_thousand_waiters_over_two_nodes_all_receive_one_publish),
        cmocka_unit_test(test_one_subscription_per_channel_per_worker_and_unsubscribe_after_linger),
        cmocka_unit_test(test_bad_requests_get_their_status_and_a_json_error),
        cmocka_unit_test(test_answers_keep_the_connection_open),
        cmocka_unit_test(test_the_demo_page_and_client_are_served),
    };
    return it_finish(
        cmocka_run_group_tests_name("cluster (redis + 2 nodes)", tests, setup, teardown));
}
