/* Integration: publish.wait_replicas against a real redis-server master
 * and a real replica (redis-server --replicaof), single mode. A publish is
 * answered 201 only once WAIT saw the replica confirm it; without a
 * replica it is 503 redis_unconfirmed, stored on the master and safe to
 * retry with its Idempotency-Key; a burst of concurrent publishes shares
 * WAITs (fewer WAITs than publishes, counted by Redis's INFO
 * commandstats). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

static it_redis master, replica;
static it_node node;

static const char *const node_env[] = {"HOLDLINE_HTTP_WORKERS=2",
                                       "HOLDLINE_PUBLISH_WAIT_REPLICAS=1",
                                       "HOLDLINE_PUBLISH_WAIT_TIMEOUT_MS=300", NULL};

/* Starts the replica of master and waits until the master sees it online
 * and the replica has loaded what it was sent (master_link_status:up):
 * only then does it acknowledge writes. */
static int replica_start(void) {
    char port[16];
    snprintf(port, sizeof(port), "%d", master.port);
    const char *const args[] = {"--replicaof", "127.0.0.1", port, NULL};
    if (it_redis_start_args(&replica, args) != 0) return -1;
    const char *const info[] = {"INFO", "replication"};
    for (int i = 0; i < 200; i++) {
        char *m = it_redis_call(master.port, 2000, 2, info);
        char *r = it_redis_call(replica.port, 2000, 2, info);
        int up = m && r && strstr(m, "state=online") && strstr(r, "master_link_status:up");
        free(m);
        free(r);
        if (up) return 0;
        usleep(50 * 1000);
    }
    return -1;
}

static int setup(void **state) {
    (void)state;
    memset(&master, 0, sizeof(master));
    memset(&replica, 0, sizeof(replica));
    if (it_redis_start(&master) != 0) return -1;
    if (replica_start() != 0) return -1;
    return it_node_start_env(&node, master.port, NULL, node_env);
}

static int teardown(void **state) {
    (void)state;
    int st = it_node_stop(&node);
    if (it_log_has_crash(node.log)) fail_msg("the node crashed; see %s", node.log);
    it_redis_stop(&replica);
    it_redis_stop(&master);
    return st == 0 ? 0 : -1;
}

static int publish(const char *channel, const char *data, const char *key, it_json *j,
                   long long *took) {
    char path[300], hdr[128] = "";
    snprintf(path, sizeof(path), "/publish/%s", channel);
    if (key) snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s\r\n", key);
    it_resp r;
    memset(j, 0, sizeof(*j));
    long long t0 = it_now_ms();
    if (it_http(node.port, "POST", path, data, strlen(data), hdr, 7000, &r) != 0) return 0;
    if (took) *took = it_now_ms() - t0;
    it_json_parse(r.body, j);
    int st = r.status;
    it_resp_free(&r);
    return st;
}

/* The calls of one command so far, from INFO commandstats, or -1. */
static long long calls_of(int port, const char *cmd) {
    const char *const argv[] = {"INFO", "commandstats"};
    char want[64];
    char *out = it_redis_call(port, 2000, 2, argv);
    if (out == NULL) return -1;
    snprintf(want, sizeof(want), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(out, want);
    long long n = p ? strtoll(p + strlen(want), NULL, 10) : 0;
    free(out);
    return n;
}

static long long xlen(int port, const char *channel) {
    char key[300];
    snprintf(key, sizeof(key), "{holdline:%s}:log", channel);
    const char *const argv[] = {"XLEN", key};
    return it_redis_int(port, 2, argv);
}

static void test_a_publish_is_confirmed_by_the_replica(void **state) {
    (void)state;
    char ch[64];
    snprintf(ch, sizeof(ch), "wait-ok-%ld", (long)getpid());
    it_json j;
    int st = publish(ch, "one", NULL, &j, NULL);
    if (st != 201) fail_msg("publish: %d %s: %s", st, j.error, j.detail);
    assert_true(j.id[0] != '\0');
    it_json_free(&j);
    /* The replica holds it already: WAIT said so before the 201. */
    assert_int_equal(xlen(replica.port, ch), 1);
    assert_true(calls_of(master.port, "wait") >= 1);
}

static void test_without_a_replica_a_publish_is_unconfirmed_and_a_retry_is_safe(void **state) {
    (void)state;
    char ch[64];
    snprintf(ch, sizeof(ch), "wait-gone-%ld", (long)getpid());
    it_redis_stop(&replica);
    /* The master notices the lost replica at once (the socket closes). */
    usleep(300 * 1000);
    it_json j;
    long long took = 0;
    assert_int_equal(publish(ch, "kept", "k-1", &j, &took), 503);
    assert_string_equal(j.error, "redis_unconfirmed");
    assert_non_null(strstr(j.detail, "Idempotency-Key"));
    it_json_free(&j);
    /* Counted apart from other failures. */
    it_resp m;
    assert_int_equal(it_http(node.port, "GET", "/metrics", NULL, 0, NULL, 5000, &m), 0);
    assert_non_null(strstr(m.body, "holdline_publishes_total{result=\"unconfirmed\"} 1\n"));
    assert_non_null(strstr(m.body, "holdline_publishes_total{result=\"error\"} 0\n"));
    it_resp_free(&m);
    /* WAIT waited its 300 ms, and the message is stored on the master. */
    assert_true(took >= 280);
    assert_int_equal(xlen(master.port, ch), 1);

    /* Back with a replica, the retry is the first message, now confirmed. */
    assert_int_equal(replica_start(), 0);
    assert_int_equal(publish(ch, "kept", "k-1", &j, NULL), 201);
    assert_int_equal(j.duplicate, 1);
    it_json_free(&j);
    assert_int_equal(xlen(master.port, ch), 1);
    assert_int_equal(xlen(replica.port, ch), 1);

    /* A poll from the start sees it once. */
    it_resp r;
    char path[200];
    snprintf(path, sizeof(path), "/poll/%s?cursor=0&timeout=1", ch);
    assert_int_equal(it_http(node.port, "GET", path, NULL, 0, NULL, 5000, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(it_json_parse(r.body, &j), 0);
    assert_int_equal(j.n, 1);
    assert_string_equal(j.msgs[0].data, "kept");
    it_json_free(&j);
    it_resp_free(&r);
}

/* 200 publishes in flight at once, over 200 connections: every one is
 * confirmed, and they share WAITs. */
static void test_concurrent_publishes_share_waits(void **state) {
    (void)state;
    enum { N = 200 };
    char ch[64];
    snprintf(ch, sizeof(ch), "wait-burst-%ld", (long)getpid());
    static it_conn conns[N];
    static char reqs[N][256];
    const char *req[N];
    int ports[N];
    for (int i = 0; i < N; i++) {
        char body[16];
        int n = snprintf(body, sizeof(body), "%d", i);
        snprintf(reqs[i], sizeof(reqs[i]),
                 "POST /publish/%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 "Content-Length: %d\r\n\r\n%s",
                 ch, n, body);
        req[i] = reqs[i];
        ports[i] = node.port;
    }
    long long waits0 = calls_of(master.port, "wait");
    assert_int_equal(it_multi_open(conns, N, ports, req), 0);
    size_t done = it_multi_wait(conns, N, 10000);
    int created = 0;
    for (int i = 0; i < N; i++) {
        created += conns[i].resp.status == 201;
        if (conns[i].resp.status != 201)
            printf("# publish %d: %d %.200s\n", i, conns[i].resp.status,
                   conns[i].resp.body ? conns[i].resp.body : "");
    }
    it_multi_free(conns, N);
    long long waits = calls_of(master.port, "wait") - waits0;
    printf("# %d publishes at once: %d answered 201 with %lld WAITs\n", N, created, waits);
    assert_int_equal(done, N);
    assert_int_equal(created, N);
    assert_true(waits >= 1);
    assert_true(waits < N);
    assert_int_equal(xlen(replica.port, ch), N);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_publish_is_confirmed_by_the_replica, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_without_a_replica_a_publish_is_unconfirmed_and_a_retry_is_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_publishes_share_waits, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return it_finish(failed);
}
