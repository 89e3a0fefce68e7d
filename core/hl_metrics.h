/* hl_metrics.h -- the counters and gauges of one worker, and the
 * Prometheus text (format 0.0.4) of a node's workers together.
 *
 * Each worker owns one hl_metrics and is the only thread that writes it;
 * a scrape, on any worker's thread, reads them all. A write is a plain
 * load and a relaxed atomic store (hl_metric_add), never a locked
 * read-modify-write: the delivery path pays what an ordinary increment
 * costs, and a reader sees each value whole. The names, labels and help
 * texts are docs/operations.md's.
 *
 * Pure: formatting writes into a caller's buffer and does no I/O; the
 * process figures come from the caller (hl_procinfo). */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "hl_json.h"

/* The upper bounds of the histograms' buckets, in seconds (+Inf after). */
#define HL_HISTO_BUCKETS 13

typedef struct hl_histo {
    uint64_t bucket[HL_HISTO_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t sum_us;                       /* the observations' sum, in microseconds */
} hl_histo;

typedef enum hl_poll_result { HL_POLL_MESSAGE = 0, HL_POLL_TIMEOUT, HL_POLL_ERROR } hl_poll_result;
typedef enum hl_transport { HL_TR_POLL = 0, HL_TR_SSE } hl_transport;
typedef enum hl_publish_outcome {
    HL_PUBLISHES_OK = 0,
    HL_PUBLISHES_ERROR,
    HL_PUBLISHES_DUPLICATE,
    HL_PUBLISHES_UNCONFIRMED /* stored, but publish.wait_replicas not confirmed */
} hl_publish_outcome;
typedef enum hl_link_kind { HL_LINK_SUBSCRIBER = 0, HL_LINK_COMMAND } hl_link_kind;

/* The HTTP status codes counted one by one; any other is counted as
 * "other" under its class. */
#define HL_HTTP_CODES 18

typedef struct hl_metrics {
    /* counters */
    uint64_t polls[3];                /* hl_poll_result */
    uint64_t received[2];             /* durable, plain */
    uint64_t delivered[2];            /* hl_transport: messages written to clients */
    uint64_t publishes[4];            /* hl_publish_outcome */
    uint64_t missed;                  /* answers and events that said missed */
    uint64_t http[HL_HTTP_CODES + 5]; /* hl_metrics_code_index, then 1xx..5xx others */
    uint64_t redis_reconnects;
    uint64_t canary_failures;
    uint64_t master_changes; /* the command link reconnected to another master */
    hl_histo publish_duration;
    hl_histo delivery_lag;
    /* gauges, set by the module that knows */
    uint64_t waiters[2]; /* hl_transport */
    uint64_t connections;
    uint64_t channels;
    uint64_t redis_up[2];  /* hl_link_kind: 1 or 0 */
    uint64_t canary_ok;    /* 1 or 0 */
    uint64_t sentinels_ok; /* 1, or 0 while no sentinel answers (sentinel mode) */
} hl_metrics;

/* Adds n to a counter of the calling worker's own hl_metrics. */
static inline void hl_metric_add(uint64_t *c, uint64_t n) {
    __atomic_store_n(c, *c + n, __ATOMIC_RELAXED);
}

static inline void hl_metric_sub(uint64_t *c, uint64_t n) {
    __atomic_store_n(c, *c - n, __ATOMIC_RELAXED);
}

static inline void hl_metric_set(uint64_t *c, uint64_t v) {
    __atomic_store_n(c, v, __ATOMIC_RELAXED);
}

static inline uint64_t hl_metric_get(const uint64_t *c) {
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Counts one observation of us microseconds. */
void hl_histo_observe(hl_histo *h, long long us);

/* Counts an answer with HTTP status code. */
void hl_metrics_http(hl_metrics *m, unsigned code);

/* A metrics block nobody reads, for modules made without one (tests). */
extern hl_metrics hl_metrics_void;

/* What the process is, for the process_* families; -1 where unknown. */
typedef struct hl_process {
    double cpu_seconds;
    double start_time_seconds;
    long long resident_bytes;
    long long virtual_bytes;
    long long open_fds;
    long long max_fds;
} hl_process;

/* Appends the exposition of the n workers' metrics w[0..n), and of p, to
 * b (out of memory: b->oom). */
void hl_metrics_format(hl_buf *b, const hl_metrics *const *w, size_t n, const hl_process *p,
                       const char *version);

#endif
