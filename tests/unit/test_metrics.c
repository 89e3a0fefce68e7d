/* Unit tests for core/hl_metrics.c: histogram buckets, HTTP codes, and the
 * exposition of several workers' counters added up (promtool checks the
 * format itself in test_metrics, the integration test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_metrics.h"

/* The value of the sample `series` (name with its labels) in text, or -1. */
static double value_of(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return -1;
}

static void test_histo_bucket_edges_are_inclusive(void **state) {
    (void)state;
    static const struct {
        long long us;
        int bucket;
    } cases[] = {
        {-5, 0},       {0, 0},        {500, 0},       {501, 1},       {1000, 1},
        {2500, 2},     {2501, 3},     {5000000, 12},  {5000001, 13},  {1LL << 40, 13},
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        hl_histo h;
        memset(&h, 0, sizeof(h));
        hl_histo_observe(&h, cases[i].us);
        for (int b = 0; b <= HL_HISTO_BUCKETS; b++)
            if (h.bucket[b] != (uint64_t)(b == cases[i].bucket))
                fail_msg("%lld us: bucket %d holds %llu", cases[i].us, b,
                         (unsigned long long)h.bucket[b]);
    }
}

static void test_metrics_http_counts_known_codes_and_classes(void **state) {
    (void)state;
    hl_metrics m;
    memset(&m, 0, sizeof(m));
    hl_metrics_http(&m, 200);
    hl_metrics_http(&m, 200);
    hl_metrics_http(&m, 503);
    hl_metrics_http(&m, 418);
    hl_metrics_http(&m, 299);
    hl_metrics_http(&m, 999);
    const hl_metrics *w[] = {&m};
    hl_process p = {-1, -1, -1, -1, -1, -1};
    hl_buf b;
    hl_buf_init(&b);
    hl_metrics_format(&b, w, 1, &p, "9.9.9");
    assert_false(b.oom);
    assert_true(value_of(b.data, "holdline_http_requests_total{code=\"200\"}") == 2);
    assert_true(value_of(b.data, "holdline_http_requests_total{code=\"503\"}") == 1);
    assert_true(value_of(b.data, "holdline_http_requests_total{code=\"4xx\"}") == 1);
    assert_true(value_of(b.data, "holdline_http_requests_total{code=\"2xx\"}") == 1);
    assert_true(value_of(b.data, "holdline_http_requests_total{code=\"5xx\"}") == 1);
    /* Classes nobody answered with are left out. */
    assert_null(strstr(b.data, "code=\"3xx\""));
    assert_true(value_of(b.data, "holdline_build_info{version=\"9.9.9\"}") == 1);
    /* Without process figures, no process_* family. */
    assert_null(strstr(b.data, "process_"));
    hl_buf_free(&b);
}

static void test_metrics_format_adds_workers_up(void **state) {
    (void)state;
    hl_metrics a, c;
    memset(&a, 0, sizeof(a));
    memset(&c, 0, sizeof(c));
    a.polls[HL_POLL_MESSAGE] = 3;
    c.polls[HL_POLL_MESSAGE] = 4;
    c.polls[HL_POLL_TIMEOUT] = 5;
    a.delivered[HL_TR_SSE] = 7;
    a.waiters[HL_TR_POLL] = 10;
    c.waiters[HL_TR_POLL] = 20;
    a.redis_up[HL_LINK_SUBSCRIBER] = c.redis_up[HL_LINK_SUBSCRIBER] = 1;
    a.redis_up[HL_LINK_COMMAND] = 1; /* c's is down */
    a.canary_ok = c.canary_ok = 1;
    hl_histo_observe(&a.publish_duration, 400);     /* le 0.0005 */
    hl_histo_observe(&c.publish_duration, 30000);   /* le 0.05 */
    hl_histo_observe(&c.publish_duration, 9000000); /* +Inf */
    const hl_metrics *w[] = {&a, &c};
    hl_process p = {1.5, 1700000000, 4096, 8192, 12, 20000};
    hl_buf b;
    hl_buf_init(&b);
    hl_metrics_format(&b, w, 2, &p, HL_VERSION);
    const char *t = b.data;
    assert_true(value_of(t, "holdline_polls_total{result=\"message\"}") == 7);
    assert_true(value_of(t, "holdline_polls_total{result=\"timeout\"}") == 5);
    assert_true(value_of(t, "holdline_polls_total{result=\"error\"}") == 0);
    assert_true(value_of(t, "holdline_messages_delivered_total{transport=\"sse\"}") == 7);
    assert_true(value_of(t, "holdline_waiters{transport=\"poll\"}") == 30);
    assert_true(value_of(t, "holdline_redis_up{link=\"subscriber\"}") == 1);
    assert_true(value_of(t, "holdline_redis_up{link=\"command\"}") == 0);
    assert_true(value_of(t, "holdline_canary_ok") == 1);
    /* Buckets are cumulative; +Inf and _count hold every observation. */
    assert_true(value_of(t, "holdline_publish_duration_seconds_bucket{le=\"0.0005\"}") == 1);
    assert_true(value_of(t, "holdline_publish_duration_seconds_bucket{le=\"0.025\"}") == 1);
    assert_true(value_of(t, "holdline_publish_duration_seconds_bucket{le=\"0.05\"}") == 2);
    assert_true(value_of(t, "holdline_publish_duration_seconds_bucket{le=\"5\"}") == 2);
    assert_true(value_of(t, "holdline_publish_duration_seconds_bucket{le=\"+Inf\"}") == 3);
    assert_true(value_of(t, "holdline_publish_duration_seconds_count") == 3);
    assert_true(value_of(t, "holdline_publish_duration_seconds_sum") > 9.03 &&
                value_of(t, "holdline_publish_duration_seconds_sum") < 9.031);
    assert_true(value_of(t, "process_open_fds") == 12);
    assert_true(value_of(t, "process_max_fds") == 20000);
    assert_true(value_of(t, "process_cpu_seconds_total") == 1.5);
    /* Every sample's family was introduced by its HELP and TYPE lines. */
    for (const char *l = t; *l; l = strchr(l, '\n') + 1) {
        if (*l == '#') continue;
        char name[128];
        size_t n = strcspn(l, "{ ");
        assert_true(n < sizeof(name));
        memcpy(name, l, n);
        name[n] = '\0';
        char type[160];
        snprintf(type, sizeof(type), "# TYPE %s ", name);
        if (strstr(t, type) == NULL) {
            /* A histogram's series carry a suffix. */
            char *u = strrchr(name, '_');
            if (u) *u = '\0';
            snprintf(type, sizeof(type), "# TYPE %s histogram", name);
            if (strstr(t, type) == NULL) fail_msg("no TYPE line for %.*s", (int)n, l);
        }
    }
    hl_buf_free(&b);
}

static void test_metrics_no_worker_is_not_up(void **state) {
    (void)state;
    hl_process p = {-1, -1, -1, -1, -1, -1};
    hl_buf b;
    hl_buf_init(&b);
    hl_metrics_format(&b, NULL, 0, &p, HL_VERSION);
    assert_true(value_of(b.data, "holdline_canary_ok") == 0);
    assert_true(value_of(b.data, "holdline_redis_up{link=\"command\"}") == 0);
    hl_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histo_bucket_edges_are_inclusive),
        cmocka_unit_test(test_metrics_http_counts_known_codes_and_classes),
        cmocka_unit_test(test_metrics_format_adds_workers_up),
        cmocka_unit_test(test_metrics_no_worker_is_not_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
