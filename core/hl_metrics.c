#include "hl_metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hl_common.h"

hl_metrics hl_metrics_void;

static const double bounds[HL_HISTO_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1,    0.25,  0.5,    1,     2.5,  5};
static const long long bounds_us[HL_HISTO_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000};

void hl_histo_observe(hl_histo *h, long long us) {
    if (us < 0) us = 0;
    size_t i = 0;
    while (i < HL_HISTO_BUCKETS && us > bounds_us[i])
        i++;
    hl_metric_add(&h->bucket[i], 1);
    hl_metric_add(&h->sum_us, (uint64_t)us);
}

/* The codes holdline answers with, counted one by one. */
static const unsigned codes[HL_HTTP_CODES] = {200, 201, 204, 304, 400, 401, 403, 404, 405,
                                              408, 411, 413, 414, 415, 431, 500, 503, 505};

void hl_metrics_http(hl_metrics *m, unsigned code) {
    if (code == 200) { /* nearly every answer */
        hl_metric_add(&m->http[0], 1);
        return;
    }
    for (size_t i = 1; i < HL_HTTP_CODES; i++) {
        if (codes[i] == code) {
            hl_metric_add(&m->http[i], 1);
            return;
        }
    }
    unsigned cls = code / 100;
    if (cls < 1 || cls > 5) cls = 5;
    hl_metric_add(&m->http[HL_HTTP_CODES + cls - 1], 1);
}

/* ---- Formatting ------------------------------------------------------------ */

/* The sum over the workers of the counter at byte offset off. */
static uint64_t total(const hl_metrics *const *w, size_t n, size_t off) {
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += hl_metric_get((const uint64_t *)(const void *)((const char *)w[i] + off));
    return t;
}

/* 1 if the gauge at off is non-zero on every worker. */
static uint64_t all(const hl_metrics *const *w, size_t n, size_t off) {
    for (size_t i = 0; i < n; i++)
        if (hl_metric_get((const uint64_t *)(const void *)((const char *)w[i] + off)) == 0)
            return 0;
    return n > 0;
}

#define OFF(f) offsetof(hl_metrics, f)

static void head(hl_buf *b, const char *name, const char *type, const char *help) {
    hl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(hl_buf *b, const char *name, const char *labels, uint64_t v) {
    if (labels)
        hl_buf_printf(b, "%s{%s} %" PRIu64 "\n", name, labels, v);
    else
        hl_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* A family with one label over an array of counters. */
static void labelled(hl_buf *b, const hl_metrics *const *w, size_t n, const char *name,
                     const char *type, const char *help, const char *label,
                     const char *const *values, size_t count, size_t off) {
    head(b, name, type, help);
    for (size_t i = 0; i < count; i++) {
        char l[64];
        snprintf(l, sizeof(l), "%s=\"%s\"", label, values[i]);
        sample(b, name, l, total(w, n, off + i * sizeof(uint64_t)));
    }
}

static void histogram(hl_buf *b, const hl_metrics *const *w, size_t n, const char *name,
                      const char *help, size_t off) {
    head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i <= HL_HISTO_BUCKETS; i++) {
        cum += total(w, n, off + offsetof(hl_histo, bucket) + i * sizeof(uint64_t));
        if (i < HL_HISTO_BUCKETS)
            hl_buf_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, bounds[i], cum);
        else
            hl_buf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    }
    uint64_t sum = total(w, n, off + offsetof(hl_histo, sum_us));
    hl_buf_printf(b, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, (double)sum / 1e6, name, cum);
}

void hl_metrics_format(hl_buf *b, const hl_metrics *const *w, size_t n, const hl_process *p,
                       const char *version) {
    static const char *const poll_results[] = {"message", "timeout", "error"};
    static const char *const kinds[] = {"durable", "plain"};
    static const char *const transports[] = {"poll", "sse"};
    static const char *const pub_results[] = {"ok", "error", "duplicate", "unconfirmed"};
    static const char *const links[] = {"subscriber", "command"};

    head(b, "holdline_build_info", "gauge", "The running holdline's version.");
    hl_buf_puts(b, "holdline_build_info{version=\"");
    hl_buf_puts(b, version);
    hl_buf_puts(b, "\"} 1\n");
    labelled(b, w, n, "holdline_waiters", "gauge",
             "Held long-polls and open Server-Sent Events streams.", "transport", transports, 2,
             OFF(waiters));
    head(b, "holdline_connections", "gauge", "HTTP connections open, held or not.");
    sample(b, "holdline_connections", NULL, total(w, n, OFF(connections)));
    head(b, "holdline_channels", "gauge",
         "Channel subscriptions the workers hold (a channel on two workers counts twice).");
    sample(b, "holdline_channels", NULL, total(w, n, OFF(channels)));
    labelled(b, w, n, "holdline_polls_total", "counter",
             "Long-polls answered, by outcome: with messages, empty at their timeout, or with an "
             "error status.",
             "result", poll_results, 3, OFF(polls));
    labelled(b, w, n, "holdline_messages_received_total", "counter",
             "Messages from Redis pub/sub, once per worker subscribed: durable (with a stream "
             "id) or plain (a bare PUBLISH).",
             "kind", kinds, 2, OFF(received));
    labelled(b, w, n, "holdline_messages_delivered_total", "counter",
             "Messages written to clients (one message to 1000 waiters counts 1000).", "transport",
             transports, 2, OFF(delivered));
    labelled(b, w, n, "holdline_publishes_total", "counter",
             "HTTP publishes, by outcome (duplicate: an Idempotency-Key seen before).", "result",
             pub_results, 4, OFF(publishes));
    histogram(b, w, n, "holdline_publish_duration_seconds",
              "HTTP publishes, from the whole body received to Redis's confirmation.",
              OFF(publish_duration));
    histogram(b, w, n, "holdline_delivery_lag_seconds",
              "From a message's Redis stream id time to its delivery to a client.",
              OFF(delivery_lag));
    head(b, "holdline_missed_total", "counter",
         "Answers and events that told a client continuity could not be proved (missed).");
    sample(b, "holdline_missed_total", NULL, total(w, n, OFF(missed)));

    head(b, "holdline_http_requests_total", "counter", "HTTP answers by status code.");
    for (size_t i = 0; i < HL_HTTP_CODES; i++) {
        char l[32];
        snprintf(l, sizeof(l), "code=\"%u\"", codes[i]);
        sample(b, "holdline_http_requests_total", l, total(w, n, OFF(http) + i * sizeof(uint64_t)));
    }
    for (unsigned cls = 1; cls <= 5; cls++) {
        uint64_t v = total(w, n, OFF(http) + (HL_HTTP_CODES + cls - 1) * sizeof(uint64_t));
        if (v == 0) continue;
        char l[32];
        snprintf(l, sizeof(l), "code=\"%uxx\"", cls);
        sample(b, "holdline_http_requests_total", l, v);
    }

    head(b, "holdline_redis_up", "gauge", "1 when the link is up on every worker, else 0.");
    for (size_t i = 0; i < 2; i++) {
        char l[32];
        snprintf(l, sizeof(l), "link=\"%s\"", links[i]);
        sample(b, "holdline_redis_up", l, all(w, n, OFF(redis_up) + i * sizeof(uint64_t)));
    }
    head(b, "holdline_redis_reconnects_total", "counter",
         "Redis links re-established after a loss.");
    sample(b, "holdline_redis_reconnects_total", NULL, total(w, n, OFF(redis_reconnects)));
    head(b, "holdline_canary_ok", "gauge",
         "1 when every worker's canary probes come back through Redis pub/sub, else 0.");
    sample(b, "holdline_canary_ok", NULL, all(w, n, OFF(canary_ok)));
    head(b, "holdline_canary_failures_total", "counter",
         "Times a worker's probes stopped coming back (each followed by a reconnect of its "
         "subscriber link).");
    sample(b, "holdline_canary_failures_total", NULL, total(w, n, OFF(canary_failures)));
    head(b, "holdline_redis_master_changes_total", "counter",
         "Times a worker's command link came up on another Redis master than before "
         "(sentinel mode: a failover followed).");
    sample(b, "holdline_redis_master_changes_total", NULL, total(w, n, OFF(master_changes)));
    head(b, "holdline_redis_sentinels_ok", "gauge",
         "Sentinel mode: 0 while some worker finds no sentinel answering (it serves on the "
         "master it knows, but would not follow a failover); always 1 in single mode.");
    sample(b, "holdline_redis_sentinels_ok", NULL, all(w, n, OFF(sentinels_ok)));

    if (p->cpu_seconds >= 0) {
        head(b, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.");
        hl_buf_printf(b, "process_cpu_seconds_total %.2f\n", p->cpu_seconds);
    }
    if (p->start_time_seconds >= 0) {
        head(b, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.");
        hl_buf_printf(b, "process_start_time_seconds %.2f\n", p->start_time_seconds);
    }
    if (p->resident_bytes >= 0) {
        head(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        hl_buf_printf(b, "process_resident_memory_bytes %lld\n", p->resident_bytes);
    }
    if (p->virtual_bytes >= 0) {
        head(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        hl_buf_printf(b, "process_virtual_memory_bytes %lld\n", p->virtual_bytes);
    }
    if (p->open_fds >= 0) {
        head(b, "process_open_fds", "gauge", "Number of open file descriptors.");
        hl_buf_printf(b, "process_open_fds %lld\n", p->open_fds);
    }
    if (p->max_fds >= 0) {
        head(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        hl_buf_printf(b, "process_max_fds %lld\n", p->max_fds);
    }
}
