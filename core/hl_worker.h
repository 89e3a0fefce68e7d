/* hl_worker.h -- one worker: a thread with its own event loop, on which
 * it builds and wires its parts, bottom up:
 *
 *   store/   its Redis links and every command (hl_store.h)
 *   engine/  its channels and waiters (hl_engine.h), fed by the store
 *   http/    its socket, daemons, routes and transports (hl_http.h)
 *
 * and runs the stop sequence. Not part of the core's public API
 * (hl_node.h is). Everything runs on the worker's thread except
 * hl_worker_request_stop and hl_worker_not_ready. */
#ifndef HL_WORKER_H
#define HL_WORKER_H

#include <stddef.h>

#include "hl_config.h"
#include "hl_json.h"
#include "hl_metrics.h"

typedef struct hl_worker hl_worker;

/* 1 if the whole node is ready, else 0 with why (GET /readyz asks any
 * worker about all of them). Ready but degraded: 1, with why set to what
 * is degraded (else why is left empty). */
typedef int hl_ready_fn(void *ud, char *why, size_t whylen);

/* Appends the whole node's Prometheus text to out (GET /metrics asks any
 * worker about all of them). */
typedef void hl_scrape_fn(void *ud, hl_buf *out);

/* ready and scrape are called with ud, on the worker's thread. */
hl_worker *hl_worker_new(int id, const hl_config *cfg, hl_ready_fn *ready, hl_scrape_fn *scrape,
                         void *ud, char *err, size_t errlen);
void hl_worker_free(hl_worker *w);
int hl_worker_start(hl_worker *w, char *err, size_t errlen);
/* Any thread: answer the waiters, drain for at most drain_ms, exit. */
void hl_worker_request_stop(hl_worker *w, int drain_ms);
void hl_worker_join(hl_worker *w);
/* NULL, or what is degraded while the worker serves (any thread). */
const char *hl_worker_degraded(const hl_worker *w);
/* NULL if the worker is ready, else why not, for people (any thread). */
const char *hl_worker_not_ready(const hl_worker *w);
/* The worker's counters and gauges, written by its thread only; any
 * thread reads them with hl_metric_get. */
const hl_metrics *hl_worker_metrics(const hl_worker *w);

#endif
