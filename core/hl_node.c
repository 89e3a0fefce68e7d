#include "hl_node.h"

#include <event2/thread.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_procinfo.h"
#include "hl_worker.h"

struct hl_node {
    hl_config cfg; /* the node's own copy, read by every worker */
    int nworkers;
    int started; /* worker threads running */
    hl_worker **workers;
    /* The open-descriptor count for /metrics, refreshed every
     * FDS_EVERY_S by a thread of its own (hl_procinfo_open_fds). */
    long long open_fds; /* atomic; -1 before the first count */
    pthread_t fds_thread;
    int fds_running;
    int fds_stop; /* under fds_lock */
    pthread_mutex_t fds_lock;
    pthread_cond_t fds_wake;
};

#define FDS_EVERY_S 5

static void *count_fds(void *arg) {
    hl_node *n = arg;
    pthread_mutex_lock(&n->fds_lock);
    while (!n->fds_stop) {
        pthread_mutex_unlock(&n->fds_lock);
        __atomic_store_n(&n->open_fds, hl_procinfo_open_fds(), __ATOMIC_RELAXED);
        pthread_mutex_lock(&n->fds_lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += FDS_EVERY_S;
        while (!n->fds_stop && pthread_cond_timedwait(&n->fds_wake, &n->fds_lock, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&n->fds_lock);
    return NULL;
}

static int node_ready(void *ud, char *why, size_t whylen) {
    return hl_node_ready(ud, why, whylen);
}

/* GET /metrics, on the thread of the worker that took the request: the
 * other workers' counters are read as they stand (hl_metrics.h). */
static void node_scrape(void *ud, hl_buf *out) {
    const hl_node *n = ud;
    const hl_metrics *w[256];
    size_t k = 0;
    for (int i = 0; i < n->nworkers && k < HL_ARRAY_LEN(w); i++)
        w[k++] = hl_worker_metrics(n->workers[i]);
    hl_process p;
    hl_procinfo_read(&p);
    p.open_fds = __atomic_load_n(&n->open_fds, __ATOMIC_RELAXED);
    hl_metrics_format(out, w, k, &p, HL_VERSION);
}

hl_node *hl_node_new(const hl_config *cfg, char *err, size_t errlen) {
    /* Cross-thread event_active (the stop signal) needs libevent's locks,
     * and they must be on before the first event base exists. */
    if (evthread_use_pthreads() != 0) {
        hl_set_error(err, errlen, "libevent has no pthread support");
        return NULL;
    }
    hl_node *n = calloc(1, sizeof(*n));
    if (n == NULL) goto oom;
    n->cfg = *cfg;
    n->open_fds = -1;
    pthread_mutex_init(&n->fds_lock, NULL);
    pthread_cond_init(&n->fds_wake, NULL);
    if (n->cfg.http_workers <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n->cfg.http_workers = cores > 0 ? (int)cores : 1;
    }
    n->workers = calloc((size_t)n->cfg.http_workers, sizeof(*n->workers));
    if (n->workers == NULL) goto oom;
    for (int i = 0; i < n->cfg.http_workers; i++) {
        n->workers[i] = hl_worker_new(i, &n->cfg, node_ready, node_scrape, n, err, errlen);
        if (n->workers[i] == NULL) goto fail;
        n->nworkers++;
    }
    return n;
oom:
    hl_set_error(err, errlen, "out of memory");
fail:
    hl_node_free(n);
    return NULL;
}

int hl_node_start(hl_node *n, char *err, size_t errlen) {
    for (int i = 0; i < n->nworkers; i++) {
        if (hl_worker_start(n->workers[i], err, errlen) != HL_OK) {
            hl_node_stop(n, 0);
            return HL_ERR;
        }
        n->started++;
    }
    n->fds_running = pthread_create(&n->fds_thread, NULL, count_fds, n) == 0;
    if (strcmp(n->cfg.redis_mode, "sentinel") == 0)
        hl_info("listening on %s:%d with %d workers; redis: the master the %d sentinels name "
                "'%s' (redis.host and --redis are not used), prefix '%s'",
                n->cfg.http_bind, n->cfg.http_port, n->nworkers, n->cfg.redis_sentinels_count,
                n->cfg.redis_master_name, n->cfg.redis_prefix);
    else if (strcmp(n->cfg.redis_mode, "cluster") == 0)
        hl_info("listening on %s:%d with %d workers; redis: the cluster of %s%s (redis.host and "
                "--redis are not used), prefix '%s'",
                n->cfg.http_bind, n->cfg.http_port, n->nworkers, n->cfg.redis_cluster_nodes[0],
                n->cfg.redis_cluster_nodes_count > 1 ? " and the other seeds" : "",
                n->cfg.redis_prefix);
    else
        hl_info("listening on %s:%d with %d workers; redis %s:%d, prefix '%s'", n->cfg.http_bind,
                n->cfg.http_port, n->nworkers, n->cfg.redis_host, n->cfg.redis_port,
                n->cfg.redis_prefix);
    if (n->cfg.publish_wait_replicas > 0)
        hl_info("publishes are answered 201 once %d replica%s confirmed them (WAIT, %d ms)",
                n->cfg.publish_wait_replicas, n->cfg.publish_wait_replicas == 1 ? "" : "s",
                n->cfg.publish_wait_timeout_ms);
    if (strcmp(n->cfg.auth_mode, "jwt") == 0)
        hl_info("auth: channels need %s tokens%s%s; %d public pattern%s", n->cfg.auth_jwt_algorithm,
                n->cfg.auth_query_token ? ", also as ?token=" : "",
                n->cfg.auth_audience[0] ? " for the audience in auth.audience" : "",
                n->cfg.auth_public_channels_count,
                n->cfg.auth_public_channels_count == 1 ? "" : "s");
    return HL_OK;
}

void hl_node_stop(hl_node *n, int drain_ms) {
    for (int i = 0; i < n->started; i++)
        hl_worker_request_stop(n->workers[i], drain_ms);
    for (int i = 0; i < n->started; i++)
        hl_worker_join(n->workers[i]);
    n->started = 0;
    if (n->fds_running) {
        pthread_mutex_lock(&n->fds_lock);
        n->fds_stop = 1;
        pthread_cond_signal(&n->fds_wake);
        pthread_mutex_unlock(&n->fds_lock);
        pthread_join(n->fds_thread, NULL);
        n->fds_running = 0;
    }
}

void hl_node_free(hl_node *n) {
    if (n == NULL) return;
    for (int i = 0; i < n->nworkers; i++)
        hl_worker_free(n->workers[i]);
    free(n->workers);
    pthread_mutex_destroy(&n->fds_lock);
    pthread_cond_destroy(&n->fds_wake);
    free(n);
}

int hl_node_ready(const hl_node *n, char *why, size_t whylen) {
    for (int i = 0; i < n->nworkers; i++) {
        const char *r = hl_worker_not_ready(n->workers[i]);
        if (r != NULL) {
            snprintf(why, whylen, "worker %d: %s", i, r);
            return 0;
        }
    }
    if (whylen > 0) why[0] = '\0';
    for (int i = 0; i < n->nworkers; i++) {
        const char *d = hl_worker_degraded(n->workers[i]);
        if (d != NULL) {
            snprintf(why, whylen, "worker %d: %s", i, d);
            break;
        }
    }
    return n->nworkers > 0;
}
