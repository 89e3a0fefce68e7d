/* Integration: a short run of each holdline-bench mode against a real
 * redis-server and two real nodes on loopback, checking the numbers of
 * its RESULT line. The benchmark itself is `make bench`; this only proves
 * the load generator measures what it claims, in a few seconds a mode. */
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

static it_redis redis;
static it_node node_a, node_b;
static char nodes[64]; /* "127.0.0.1:A,127.0.0.1:B" */

/* Each run's own limit; a mode must finish well inside it. */
#define RUN_LIMIT_MS 10000

static int setup(void **state) {
    (void)state;
    setenv("HOLDLINE_HTTP_BIND", "127.0.0.1", 1);
    setenv("HOLDLINE_HTTP_WORKERS", "2", 1);
    if (it_redis_start(&redis) != 0) return -1;
    if (it_node_start(&node_a, redis.port, NULL) != 0) return -1;
    if (it_node_start(&node_b, redis.port, NULL) != 0) return -1;
    snprintf(nodes, sizeof(nodes), "127.0.0.1:%d,127.0.0.1:%d", node_a.port, node_b.port);
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

/* holdline-bench next to the holdline under test (the ASan build keeps
 * both in build/address/bin). */
static const char *bench_bin(void) {
    static char path[512];
    const char *bin = it_holdline_bin();
    const char *slash = strrchr(bin, '/');
    if (slash == NULL)
        snprintf(path, sizeof(path), "./holdline-bench");
    else
        snprintf(path, sizeof(path), "%.*s/holdline-bench", (int)(slash - bin), bin);
    return path;
}

typedef struct bench_run {
    int status;        /* exit status, -1 if killed at the limit */
    long long took_ms; /* wall time */
    char log[160];     /* its stdout and stderr */
    char result[2048]; /* the last RESULT line, "" if none */
} bench_run;

/* Runs holdline-bench with args (NULL-terminated, after the binary) and
 * waits for it, at most RUN_LIMIT_MS. */
static void run_bench(bench_run *r, const char *const args[]) {
    static int seq;
    const char *argv[40];
    int n = 0;
    argv[n++] = bench_bin();
    for (int i = 0; args[i] != NULL && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    memset(r, 0, sizeof(*r));
    snprintf(r->log, sizeof(r->log), "%s/bench-%d.log", it_run_dir(), ++seq);
    unlink(r->log);

    long long t0 = it_now_ms();
    pid_t pid = it_spawn(argv, r->log);
    assert_true(pid > 0);
    /* Waits without reaping, so that it_stop reaps it and forgets the pid. */
    int exited = 0;
    while (!exited && it_now_ms() - t0 < RUN_LIMIT_MS) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
            exited = 1;
        else
            usleep(20000);
    }
    int st = it_stop(pid, exited ? SIGTERM : SIGKILL, 2000);
    r->took_ms = it_now_ms() - t0;
    r->status = exited && st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;

    FILE *f = fopen(r->log, "r");
    assert_non_null(f);
    char line[2048];
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "RESULT ", 7) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(r->result, sizeof(r->result), "%s", line);
        }
    fclose(f);
    fprintf(stderr, "%s (%lld ms, exit %d)\n", r->result[0] ? r->result : "no RESULT line",
            r->took_ms, r->status);
    if (r->status == -1)
        fail_msg("holdline-bench did not finish in %d ms; see %s", RUN_LIMIT_MS, r->log);
    if (it_log_has_crash(r->log)) fail_msg("sanitizer or crash report in %s", r->log);
}

/* The value of key in a RESULT line; fails the test if it is absent. */
static double result_num(const bench_run *r, const char *key) {
    char pat[64];
    snprintf(pat, sizeof(pat), " %s=", key);
    const char *p = strstr(r->result, pat);
    if (p == NULL) fail_msg("no %s= in '%s'", key, r->result);
    char *end;
    double v = strtod(p + strlen(pat), &end);
    if (end == p + strlen(pat) || (*end != ' ' && *end != '\0'))
        fail_msg("%s= is not a number in '%s'", key, r->result);
    return v;
}

static void assert_clean(const bench_run *r) {
    if (r->status != 0) fail_msg("exit status %d; see %s", r->status, r->log);
    assert_true(result_num(r, "errors") == 0);
    assert_true(result_num(r, "dups") == 0);
    assert_true(result_num(r, "missed") == 0);
}

static void assert_percentiles(const bench_run *r) {
    double p50 = result_num(r, "p50_ms"), p90 = result_num(r, "p90_ms");
    double p99 = result_num(r, "p99_ms"), max = result_num(r, "max_ms");
    assert_true(p50 >= 0);
    assert_true(p50 <= p90);
    assert_true(p90 <= p99);
    assert_true(p99 <= max);
    /* Loopback on an idle-ish machine: seconds would mean a stuck loop. */
    assert_true(max < 5000);
}

static void test_hold_keeps_200_waiters_held_and_measures_the_servers(void **state) {
    (void)state;
    char pids[64];
    snprintf(pids, sizeof(pids), "%d,%d,%d", (int)node_a.pid, (int)node_b.pid, (int)redis.pid);
    const char *args[] = {"hold", "-n", nodes, "-c",    "200", "-d",
                          "2",    "-t", "1",   "--pid", pids,  NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "waiters") == 200);
    assert_true(result_num(&r, "held") == 200);
    /* With -t 1 every waiter re-polled after timeout answers while held. */
    assert_true(result_num(&r, "hold_s") >= 2);
    assert_true(result_num(&r, "rss_after_kb") > 0);
    (void)result_num(&r, "per_waiter_bytes");
    assert_true(result_num(&r, "server_cpu_pct") >= 0);
}

static void test_fanout_reaches_200_waiters_on_two_nodes_in_every_round(void **state) {
    (void)state;
    const char *args[] = {"fanout", "-n", nodes, "-c", "200", "-r", "3", NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "received") == 600);
    assert_true(result_num(&r, "missing") == 0);
    assert_true(result_num(&r, "late") == 0);
    assert_percentiles(&r);
}

static void
test_fanout_over_two_processes_and_two_source_addresses_merges_one_result(void **state) {
    (void)state;
    const char *args[] = {"fanout",
                          "-n",
                          nodes,
                          "-c",
                          "200",
                          "-k",
                          "10",
                          "-r",
                          "2",
                          "-P",
                          "2",
                          "-S",
                          "127.0.0.2,127.0.0.3",
                          NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "procs") == 2);
    assert_true(result_num(&r, "received") == 400);
    assert_true(result_num(&r, "missing") == 0);
    assert_percentiles(&r);
}

static void test_stream_follows_cursors_without_gaps_or_duplicates(void **state) {
    (void)state;
    const char *args[] = {"stream", "-n", nodes, "-c", "200", "-k",
                          "10",     "-m", "10",  "-d", "3",   NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "gaps") == 0);
    /* 10 channels x 10 msg/s x 3 s, each message to its 20 waiters. */
    assert_true(result_num(&r, "published") == 300);
    assert_true(result_num(&r, "expected") == 6000);
    assert_true(result_num(&r, "deliveries") == 6000);
    assert_true(result_num(&r, "deliveries_per_s") > 0);
    assert_percentiles(&r);
}

static void test_sse_fanout_reaches_200_streams_on_two_nodes_in_every_round(void **state) {
    (void)state;
    const char *args[] = {"fanout", "-n", nodes,         "-c",  "200",
                          "-r",     "3",  "--transport", "sse", NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "received") == 600);
    assert_true(result_num(&r, "missing") == 0);
    assert_true(result_num(&r, "late") == 0);
    assert_percentiles(&r);
}

static void test_sse_stream_follows_ids_without_gaps_or_duplicates(void **state) {
    (void)state;
    const char *args[] = {"stream", "-n", nodes, "-c", "200",         "-k",  "10",
                          "-m",     "10", "-d",  "3",  "--transport", "sse", NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "gaps") == 0);
    assert_true(result_num(&r, "published") == 300);
    assert_true(result_num(&r, "expected") == 6000);
    assert_true(result_num(&r, "deliveries") == 6000);
    assert_percentiles(&r);
}

/* The servers' pids for --pid: both nodes and Redis. */
static const char *server_pids(void) {
    static char pids[64];
    snprintf(pids, sizeof(pids), "%d,%d,%d", (int)node_a.pid, (int)node_b.pid, (int)redis.pid);
    return pids;
}

static void test_stream_with_pid_measures_the_servers_once_every_waiter_re_polled(void **state) {
    (void)state;
    const char *args[] = {"stream", "-n",    nodes,         "-c", "200", "-k",
                          "10",     "-m",    "5",           "-d", "3",   "--steady-polls",
                          "3",      "--pid", server_pids(), NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "gaps") == 0);
    assert_true(result_num(&r, "deliveries") == 3000);
    assert_true(result_num(&r, "held") == 200);
    /* The window starts at 3 re-polls (0.6 s in) and ends at the last
     * publish; every waiter got 15 messages by then, less PROGRESS lag. */
    assert_true(result_num(&r, "steady_polls") == 3);
    assert_true(result_num(&r, "min_repolls") >= 3);
    assert_true(result_num(&r, "steady_s") > 1);
    assert_true(result_num(&r, "steady_s") < 3);
    assert_true(result_num(&r, "rss_after_kb") > 0);
    (void)result_num(&r, "per_waiter_bytes");
    assert_true(result_num(&r, "server_cpu_pct") >= 0);
    double in_window = result_num(&r, "window_deliveries");
    assert_true(in_window > 0 && in_window < 3000);
    assert_true(result_num(&r, "cpu_us_per_delivery") >= 0);
    assert_percentiles(&r);
}

static void test_stream_polls_carry_browser_headers_and_cookies_poll_after_poll(void **state) {
    (void)state;
    /* 1 KB of cookies with the browser's lines, on every poll. */
    const char *args[] = {
        "stream",         "-n",   nodes, "-c", "100", "-k", "10", "-m", "5", "-d", "2", "--browser",
        "--cookie-bytes", "1024", NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "deliveries") == 1000);
    assert_true(result_num(&r, "gaps") == 0);
    /* Every waiter polled again and again with them (a node may close a
     * connection to place it anew, so reconnects are the server's choice). */
    assert_true(result_num(&r, "min_repolls") >= 5);
}

static void test_a_cookie_beyond_the_nodes_header_limit_reaches_them_and_fails(void **state) {
    (void)state;
    /* The nodes refuse headers over http.max_header_bytes (at most 16 KiB
     * by default), which shows the bench really sends what it builds. */
    const char *args[] = {"stream", "-n", nodes, "-c", "20", "-k",
                          "2",      "-m", "5",   "-d", "1",  "--cookie-bytes",
                          "60000",  NULL};
    bench_run r;
    run_bench(&r, args);
    assert_int_equal(r.status, 1);
    assert_true(result_num(&r, "errors") > 0);
    assert_true(result_num(&r, "deliveries") == 0);
}

static void test_stream_beside_idle_waiters_holds_them_and_delivers_to_the_stream(void **state) {
    (void)state;
    const char *args[] = {"stream",
                          "-n",
                          nodes,
                          "-c",
                          "100",
                          "-k",
                          "10",
                          "-m",
                          "10",
                          "-d",
                          "2",
                          "-I",
                          "300",
                          "--idle-channels",
                          "30",
                          "-P",
                          "2",
                          "-S",
                          "127.0.0.2,127.0.0.3",
                          "--pid",
                          server_pids(),
                          NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "procs") == 2);
    assert_true(result_num(&r, "waiters") == 100);
    assert_true(result_num(&r, "held") == 100);
    assert_true(result_num(&r, "idle_waiters") == 300);
    assert_true(result_num(&r, "idle_channels") == 30);
    assert_true(result_num(&r, "idle_held") == 300);
    /* -t 60: no idle poll timed out, and none got a message. */
    assert_true(result_num(&r, "idle_repolls") == 0);
    /* 10 channels x 10 msg/s x 2 s, each to its 10 stream waiters. */
    assert_true(result_num(&r, "expected") == 2000);
    assert_true(result_num(&r, "deliveries") == 2000);
    assert_true(result_num(&r, "gaps") == 0);
    assert_true(result_num(&r, "server_cpu_pct") >= 0);
    assert_true(result_num(&r, "cpu_us_per_delivery") >= 0);
    assert_percentiles(&r);
}

static void test_publish_runs_a_closed_loop_beside_background_waiters(void **state) {
    (void)state;
    const char *args[] = {"publish", "-n", nodes, "-C", "4", "-w", "100", "-d", "2", NULL};
    bench_run r;
    run_bench(&r, args);
    assert_clean(&r);
    assert_true(result_num(&r, "publishes_per_s") > 0);
    assert_true(result_num(&r, "published") > 0);
    assert_true(result_num(&r, "held") == 100);
    assert_percentiles(&r);
}

static void test_a_node_nobody_listens_on_makes_the_run_fail_with_status_1(void **state) {
    (void)state;
    char dead[32];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", it_free_port());
    const char *args[] = {"fanout", "-n", dead, "-c", "20", "-r", "1", NULL};
    bench_run r;
    run_bench(&r, args);
    assert_int_equal(r.status, 1);
    assert_true(result_num(&r, "errors") > 0);
    assert_true(result_num(&r, "missing") == 20);
}

static void test_a_bad_flag_exits_2_naming_the_flag(void **state) {
    (void)state;
    const char *args[] = {"fanout", "-c", "many", NULL};
    bench_run r;
    run_bench(&r, args);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.result, "");
    FILE *f = fopen(r.log, "r");
    assert_non_null(f);
    char text[1024] = "";
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "-c: 'many' is not a whole number"));
}

/* The log of a run, for a test to look for its message. */
static void read_log(const bench_run *r, char *text, size_t cap) {
    FILE *f = fopen(r->log, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, cap - 1, f);
    text[n] = '\0';
    fclose(f);
}

static void test_idle_and_cookie_flags_out_of_range_exit_2(void **state) {
    (void)state;
    static const struct {
        const char *args[8];
        const char *says;
    } cases[] = {
        {{"stream", "--idle-channels", "5", NULL}, "--idle-channels: 5 channels for 0 idle"},
        {{"stream", "-I", "10", "--idle-channels", "11", NULL}, "every channel needs a waiter"},
        {{"fanout", "-I", "10", NULL}, "-I does not apply to mode fanout"},
        {{"hold", "--steady-polls", "3", NULL}, "--steady-polls does not apply to mode hold"},
        {{"stream", "--cookie-bytes", "8", NULL}, "--cookie-bytes: '8' is not 0 or from 16"},
        {{"hold", "--cookie-bytes", "70000", NULL}, "--cookie-bytes: '70000' is not a whole"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bench_run r;
        run_bench(&r, cases[i].args);
        assert_int_equal(r.status, 2);
        char text[1024];
        read_log(&r, text, sizeof(text));
        if (strstr(text, cases[i].says) == NULL)
            fail_msg("case %zu: no '%s' in '%s'", i, cases[i].says, text);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_keeps_200_waiters_held_and_measures_the_servers),
        cmocka_unit_test(test_fanout_reaches_200_waiters_on_two_nodes_in_every_round),
        cmocka_unit_test(test_fanout_over_two_processes_and_two_source_addresses_merges_one_result),
        cmocka_unit_test(test_stream_follows_cursors_without_gaps_or_duplicates),
        cmocka_unit_test(test_sse_fanout_reaches_200_streams_on_two_nodes_in_every_round),
        cmocka_unit_test(test_sse_stream_follows_ids_without_gaps_or_duplicates),
        cmocka_unit_test(test_stream_with_pid_measures_the_servers_once_every_waiter_re_polled),
        cmocka_unit_test(test_stream_polls_carry_browser_headers_and_cookies_poll_after_poll),
        cmocka_unit_test(test_a_cookie_beyond_the_nodes_header_limit_reaches_them_and_fails),
        cmocka_unit_test(test_stream_beside_idle_waiters_holds_them_and_delivers_to_the_stream),
        cmocka_unit_test(test_publish_runs_a_closed_loop_beside_background_waiters),
        cmocka_unit_test(test_a_node_nobody_listens_on_makes_the_run_fail_with_status_1),
        cmocka_unit_test(test_a_bad_flag_exits_2_naming_the_flag),
        cmocka_unit_test(test_idle_and_cookie_flags_out_of_range_exit_2),
    };
    return it_finish(cmocka_run_group_tests_name("holdline-bench smoke (redis + 2 nodes)", tests,
                                                 setup, teardown));
}
