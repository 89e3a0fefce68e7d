/* Integration: the sentinel answers a node must not trust, against real
 * redis-server processes (a master, its replica, and sentinels run as
 * `redis-server <conf> --sentinel`). A sentinel whose view is stale names
 * a replica: ROLE says so and the node stays off it. A sentinel that
 * knows no such master name. A sentinel address that accepts connections
 * and never answers: the node gives up on it after
 * redis.sentinel_timeout_ms and asks the next. (test_sentinel.c has the
 * failovers.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>

#include "itrun.h"

static it_redis master, replica;

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

/* Starts a sentinel on a free port that monitors name at port mport;
 * returns its port (pid in *pid), or -1. */
static int sentinel_start(const char *name, int mport, pid_t *pid) {
    int port = it_free_port();
    char conf[256], log[256];
    snprintf(conf, sizeof(conf), "%s/sentinel-%d.conf", it_run_dir(), port);
    snprintf(log, sizeof(log), "%s/sentinel-%d.log", it_run_dir(), port);
    FILE *f = fopen(conf, "w");
    if (f == NULL) return -1;
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n"
            "sentinel down-after-milliseconds %s 60000\n",
            port, it_run_dir(), name, mport, name);
    fclose(f);
    const char *const argv[] = {"redis-server", conf, "--sentinel", NULL};
    *pid = it_spawn(argv, log);
    if (*pid < 0) return -1;
    const char *const ping[] = {"PING"};
    char out[64];
    for (int i = 0; i < 200; i++) {
        if (it_redis_cmd(port, out, sizeof(out), 1, ping) == 0 && strcmp(out, "+PONG") == 0)
            return port;
        sleep_ms(25);
    }
    return -1;
}

static int setup(void **state) {
    (void)state;
    memset(&master, 0, sizeof(master));
    memset(&replica, 0, sizeof(replica));
    if (it_redis_start(&master) != 0) return -1;
    char port[16];
    snprintf(port, sizeof(port), "%d", master.port);
    const char *const args[] = {"--replicaof", "127.0.0.1", port, NULL};
    return it_redis_start_args(&replica, args);
}

static int teardown(void **state) {
    (void)state;
    it_redis_stop(&replica);
    it_redis_stop(&master);
    return 0;
}

/* A node in sentinel mode, not waited for; --redis points at the master,
 * which sentinel mode must not use. */
static pid_t node_start(it_node *n, const char *sentinels, const char *name) {
    char env_s[600], env_n[160];
    snprintf(env_s, sizeof(env_s), "HOLDLINE_REDIS_SENTINELS=%s", sentinels);
    snprintf(env_n, sizeof(env_n), "HOLDLINE_REDIS_MASTER_NAME=%s", name);
    const char *const env[] = {"HOLDLINE_REDIS_MODE=sentinel",
                               env_s,
                               env_n,
                               "HOLDLINE_HTTP_WORKERS=1",
                               "HOLDLINE_HTTP_BIND=127.0.0.1",
                               "HOLDLINE_REDIS_SENTINEL_TIMEOUT_MS=300",
                               NULL};
    n->port = it_free_port();
    snprintf(n->log, sizeof(n->log), "%s/node-%d.log", it_run_dir(), n->port);
    char port[16], redis[32];
    snprintf(port, sizeof(port), "%d", n->port);
    snprintf(redis, sizeof(redis), "127.0.0.1:%d", master.port);
    const char *const argv[] = {
        it_holdline_bin(), "-c", "config/holdline.cfg", "-p", port, "--redis", redis, NULL};
    n->pid = it_spawn_env(argv, env, n->log);
    return n->pid;
}

/* 1 if the file holds text. */
static int log_has(const char *path, const char *text) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

static int holdline_clients(int port) {
    const char *const argv[] = {"CLIENT", "LIST"};
    char out[65536];
    if (it_redis_cmd(port, out, sizeof(out), 2, argv) != 0) return -1;
    int n = 0;
    for (const char *p = out; (p = strstr(p, "name=holdline-")) != NULL; p++)
        n++;
    return n;
}

static void test_a_sentinel_naming_a_replica_is_not_trusted(void **state) {
    (void)state;
    pid_t sp;
    /* Its view is stale: it was told the replica is the master. */
    int s = sentinel_start("stale", replica.port, &sp);
    assert_true(s > 0);
    char list[64];
    snprintf(list, sizeof(list), "127.0.0.1:%d", s);
    it_node n;
    assert_true(node_start(&n, list, "stale") > 0);
    sleep_ms(2500);
    it_json j;
    assert_int_equal(it_readyz(n.port, &j), 503);
    it_json_free(&j);
    /* It asked, connected, heard ROLE say replica, and left; nothing was
     * ever connected to the master behind --redis. */
    if (!log_has(n.log, "is a replica, not the master (ROLE)"))
        fail_msg("the node's log (%s) does not say it refused the replica", n.log);
    /* Its retries connect for a moment (SETNAME, ROLE, gone): no link
     * may be there in two samples 50 ms apart. */
    int stays = holdline_clients(replica.port) > 0;
    sleep_ms(50);
    stays = stays && holdline_clients(replica.port) > 0;
    assert_false(stays);
    assert_int_equal(holdline_clients(master.port), 0);
    assert_int_equal(it_node_stop(&n), 0);
    assert_false(it_log_has_crash(n.log));
    it_stop(sp, SIGTERM, 5000);
}

static void test_a_sentinel_that_knows_no_such_master_is_reported(void **state) {
    (void)state;
    pid_t sp;
    int s = sentinel_start("real", master.port, &sp);
    assert_true(s > 0);
    char list[64];
    snprintf(list, sizeof(list), "127.0.0.1:%d", s);
    it_node n;
    assert_true(node_start(&n, list, "other") > 0);
    sleep_ms(1500);
    it_json j;
    assert_int_equal(it_readyz(n.port, &j), 503);
    it_json_free(&j);
    if (!log_has(n.log, "monitors no master named 'other'"))
        fail_msg("the node's log (%s) does not name the unknown master", n.log);
    assert_int_equal(holdline_clients(master.port), 0);
    assert_int_equal(it_node_stop(&n), 0);
    it_stop(sp, SIGTERM, 5000);
}

/* A listening socket nobody accepts from: connects succeed (the kernel's
 * backlog), no byte ever comes back. */
static int silent_listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_a_silent_sentinel_is_given_up_on_and_the_next_asked(void **state) {
    (void)state;
    int silent_port = 0;
    int silent = silent_listener(&silent_port);
    assert_true(silent >= 0);
    pid_t sp;
    int s = sentinel_start("real", master.port, &sp);
    assert_true(s > 0);
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", silent_port, s);
    it_node n;
    long long t0 = it_now_ms();
    assert_true(node_start(&n, list, "real") > 0);
    long long took = it_wait_status(n.port, "/readyz", 200, 5000, 20);
    printf("# ready %lld ms after start, past a sentinel that never answers (timeout 300 ms)\n",
           took < 0 ? -1 : it_now_ms() - t0);
    assert_true(took >= 0);
    /* Both links of the one worker are on the master. */
    assert_int_equal(holdline_clients(master.port), 2);
    it_json j;
    assert_int_equal(it_readyz(n.port, &j), 200);
    assert_string_equal(j.status, "ready");
    it_json_free(&j);

    /* The silent one is not reported as long as another answers; with
     * the good one gone too, the node says it is degraded. */
    it_stop(sp, SIGKILL, 5000);
    assert_true(it_wait_status(n.port, "/readyz", 200, 100, 20) >= 0);
    int degraded = 0;
    for (int i = 0; i < 60 && !degraded; i++) {
        sleep_ms(100);
        assert_int_equal(it_readyz(n.port, &j), 200);
        degraded = strcmp(j.status, "degraded") == 0;
        if (degraded) {
            char want[64];
            snprintf(want, sizeof(want), "127.0.0.1:%d: no answer in time", silent_port);
            if (strstr(j.detail, want) == NULL || strstr(j.detail, "no sentinel answers") == NULL)
                fail_msg("degraded, but the detail is '%s'", j.detail);
        }
        it_json_free(&j);
    }
    assert_true(degraded);
    /* And it still serves. */
    it_resp r;
    assert_int_equal(it_http(n.port, "POST", "/publish/edge", "x", 1, NULL, 3000, &r), 0);
    assert_int_equal(r.status, 201);
    it_resp_free(&r);
    assert_int_equal(it_node_stop(&n), 0);
    assert_false(it_log_has_crash(n.log));
    close(silent);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_sentinel_naming_a_replica_is_not_trusted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_sentinel_that_knows_no_such_master_is_reported,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_silent_sentinel_is_given_up_on_and_the_next_asked,
                                        setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return it_finish(failed);
}
