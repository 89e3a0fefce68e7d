/* Integration: a node's life around its edges -- bad configuration,
 * Redis going away and coming back, SIGTERM with waiters held. Each test
 * starts what it needs and stops it. */
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

#include "itest.h"

/* Runs the node binary with args and returns its exit code; its stderr
 * goes to out. */
static int run_node(const char *const args[], char *out, size_t outlen) {
    char log[128];
    snprintf(log, sizeof(log), "%s/run-XXXXXX", it_run_dir());
    int fd = mkstemp(log);
    close(fd);
    const char *argv[16];
    int k = 0;
    argv[k++] = it_holdline_bin();
    for (int i = 0; args[i] && k < 15; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    pid_t pid = it_spawn(argv, log);
    int st = it_stop(pid, 0, 5000); /* signal 0: just wait for it */
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, outlen - 1, f) : 0;
    out[n] = '\0';
    if (f) fclose(f);
    unlink(log);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct config_case {
    const char *file;
    const char *want; /* expected in the message */
} config_case;

static void test_a_broken_config_exits_2_with_file_line_message(void **state) {
    (void)state;
    const config_case cases[] = {
        {"config/test-broken/syntax-error.cfg", "config/test-broken/syntax-error.cfg:"},
        {"config/test-broken/unknown-setting.cfg", "unknown setting"},
        {"config/test-broken/unknown-group.cfg", "unknown group"},
        {"config/test-broken/wrong-type.cfg", "must be"},
        {"config/test-broken/out-of-range.cfg", "must be"},
        {"/nonexistent/holdline.cfg", "/nonexistent/holdline.cfg"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[2048];
        const char *args[] = {"-c", cases[i].file, "-t", NULL};
        int code = run_node(args, out, sizeof(out));
        if (code != 2 || strstr(out, cases[i].want) == NULL)
            fail_msg("%s: exit %d, said '%s'", cases[i].file, code, out);
        /* Messages about the file carry file:line. */
        if (strncmp(cases[i].file, "config/", 7) == 0) {
            char prefix[128];
            snprintf(prefix, sizeof(prefix), "%s:", cases[i].file);
            const char *p = strstr(out, prefix);
            assert_non_null(p);
            assert_true(p[strlen(prefix)] >= '1' && p[strlen(prefix)] <= '9');
        }
    }
    char out[2048];
    const char *good[] = {"-c", "config/holdline.cfg", "-t", NULL};
    assert_int_equal(run_node(good, out, sizeof(out)), 0);
    const char *bad_port[] = {"-c", "config/holdline.cfg", "-p", "99999", "-t", NULL};
    assert_int_equal(run_node(bad_port, out, sizeof(out)), 2);
    const char *bad_redis[] = {"--redis", "host:port", "-t", NULL};
    assert_int_equal(run_node(bad_redis, out, sizeof(out)), 2);
}

static void test_publish_while_redis_is_down_is_503_and_recovers(void **state) {
    (void)state;
    it_redis redis = {0};
    it_node node = {0};
    assert_int_equal(it_redis_start(&redis), 0);
    assert_int_equal(it_node_start(&node, redis.port, NULL), 0);

    it_redis_stop(&redis); /* SIGKILL: no goodbye to the node */
    usleep(200000);
    it_resp r;
    assert_int_equal(it_http(node.port, "POST", "/publish/down", "lost?", 5, NULL, 7000, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"error\":\"redis_unavailable\""));
    it_resp_free(&r);
    assert_int_equal(it_http(node.port, "GET", "/readyz", NULL, 0, NULL, 2000, &r), 0);
    assert_int_equal(r.status, 503);
    it_resp_free(&r);
    assert_int_equal(it_http(node.port, "GET", "/healthz", NULL, 0, NULL, 2000, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);

    /* Redis comes back on the same port: the node reconnects by itself,
     * and a waiter that was held through the outage gets the next message. */
    const char *req[] = {"GET /poll/down?timeout=20 HTTP/1.1\r\nHost: t\r\n\r\n"};
    it_conn c;
    assert_int_equal(it_multi_open(&c, 1, &node.port, req), 0);
    long long t0 = it_now_ms();
    assert_int_equal(it_redis_start(&redis), 0);
    int ready = 0;
    while (!ready && it_now_ms() - t0 < 10000) {
        if (it_http(node.port, "GET", "/readyz", NULL, 0, NULL, 1000, &r) == 0) {
            ready = r.status == 200;
            it_resp_free(&r);
        }
        if (!ready) usleep(20000);
    }
    fprintf(stderr, "ready again %lld ms after redis restarted\n", it_now_ms() - t0);
    assert_true(ready);
    usleep(100000);
    assert_int_equal(it_http(node.port, "POST", "/publish/down", "back", 4, NULL, 3000, &r), 0);
    assert_int_equal(r.status, 201);
    it_resp_free(&r);
    assert_int_equal(it_multi_wait(&c, 1, 3000), 1);
    assert_int_equal(c.resp.status, 200);
    assert_non_null(strstr(c.resp.body, "\"data\":\"back\""));
    it_multi_free(&c, 1);

    assert_int_equal(it_node_stop(&node), 0);
    assert_false(it_log_has_crash(node.log));
    it_redis_stop(&redis);
}

static void test_sigterm_answers_a_thousand_waiters_and_exits_0(void **state) {
    (void)state;
    enum { N = 1000 };
    it_redis redis = {0};
    it_node node = {0};
    assert_int_equal(it_redis_start(&redis), 0);
    assert_int_equal(it_node_start(&node, redis.port, NULL), 0);
    it_conn *c = calloc(N, sizeof(*c));
    int *ports = calloc(N, sizeof(*ports));
    const char **reqs = calloc(N, sizeof(*reqs));
    for (int i = 0; i < N; i++) {
        ports[i] = node.port;
        reqs[i] = i % 2 ? "GET /poll/stop-a?timeout=60 HTTP/1.1\r\nHost: t\r\n\r\n"
                        : "GET /poll/stop-b?timeout=60 HTTP/1.1\r\nHost: t\r\n\r\n";
    }
    assert_int_equal(it_multi_open(c, N, ports, reqs), 0);
    usleep(800000);
    long long t0 = it_now_ms();
    int st = it_node_stop(&node);
    size_t got = it_multi_wait(c, N, 5000);
    size_t empty = 0;
    for (int i = 0; i < N; i++)
        empty += c[i].resp.status == 200 && c[i].resp.body &&
                 strncmp(c[i].resp.body, "{\"cursor\":\"", 11) == 0 &&
                 strstr(c[i].resp.body, "\",\"messages\":[],\"missed\":false}") != NULL;
    fprintf(stderr, "SIGTERM: %zu of %d waiters answered 'no event', node exited in %lld ms\n",
            empty, N, it_now_ms() - t0);
    assert_int_equal(got, N);
    assert_int_equal(empty, N);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_false(it_log_has_crash(node.log));
    it_multi_free(c, N);
    free(c);
    free(ports);
    free(reqs);
    it_redis_stop(&redis);
}

static void test_docker_compose_accepts_the_cluster_file(void **state) {
    (void)state;
    if (system("command -v docker-compose >/dev/null 2>&1") != 0)
        fail_msg("docker-compose missing");
    int rc = system("docker-compose -f docker-compose.yml config -q");
    assert_int_equal(rc, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_broken_config_exits_2_with_file_line_message),
        cmocka_unit_test(test_publish_while_redis_is_down_is_503_and_recovers),
        cmocka_unit_test(test_sigterm_answers_a_thousand_waiters_and_exits_0),
        cmocka_unit_test(test_docker_compose_accepts_the_cluster_file),
    };
    return it_finish(cmocka_run_group_tests_name("node lifecycle", tests, NULL, NULL));
}
