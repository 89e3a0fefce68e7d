/* hl_store.h -- everything a worker asks Redis, and everything Redis
 * tells it.
 *
 * The store owns the worker's two links (subscriber and command), the
 * Function library, the epoch, Redis's clock and the key schema
 * (hl_rkeys.h). It knows nothing of waiters or HTTP: what Redis says on
 * its own (a message, a confirmed subscription, a new epoch, a link lost)
 * goes up through hl_store_events, and what a caller asked is answered
 * through the callback given with the request.
 *
 * A request returns an op handle. hl_store_cancel(op) guarantees that its
 * callback is never called (the store drops Redis's reply when it comes):
 * a caller whose request went away cancels instead of keeping count of
 * replies in flight. Without a cancel, the callback is called exactly
 * once: with Redis's answer, or with a failure when the link is lost or
 * the store stops. An op handle is valid until its callback returns or
 * it is cancelled.
 *
 * Everything runs on the worker's thread. */
#ifndef HL_STORE_H
#define HL_STORE_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "hl_config.h"
#include "hl_cursor.h"
#include "hl_errors.h"
#include "hl_history.h"
#include "hl_metrics.h"
#include "hl_msgcache.h"

typedef struct hl_store hl_store;
typedef struct hl_store_op hl_store_op;

/* What Redis tells the store unasked. ud is hl_store_new's.
 *
 * Subscriptions live on subscriber connections, each named by a link
 * number that is never reused (hl_store_subscribe says which one took a
 * channel). Single and sentinel mode have one subscriber connection at a
 * time; cluster mode one per master. Events about a subscription carry
 * its link number, and one that names a link the channel is no longer on
 * is stale. */
typedef enum hl_unsub_how {
    HL_UNSUB_ASKED = 0, /* the answer to hl_store_unsubscribe */
    HL_UNSUB_MOVED,     /* the channel is served elsewhere now: subscribe it again at once */
    HL_UNSUB_LOST,      /* dropped by Redis (slot moved, failover, refused): sub_up will say when
                           to subscribe again */
} hl_unsub_how;

typedef struct hl_store_events {
    /* A subscriber link is (again) up, or the slot map changed: subscribe
     * every channel wanted that is not subscribed. */
    void (*sub_up)(void *ud);
    /* Subscriber link `link` is down: its subscriptions are gone,
     * messages may be missed. */
    void (*sub_down)(void *ud, unsigned link);
    /* Redis confirmed a SUBSCRIBE of channel name on link, or ended one. */
    void (*subscribed)(void *ud, unsigned link, const char *name, size_t len);
    void (*unsubscribed)(void *ud, unsigned link, const char *name, size_t len, hl_unsub_how how);
    /* A payload published on channel name (framed or plain). */
    void (*message)(void *ud, unsigned link, const char *name, size_t len, const char *p, size_t n);
    /* Reads may be sent (again): a command link loaded the library and
     * learned the epoch, or Redis answers again after refusing. */
    void (*ready)(void *ud);
    /* The data of slot `slot` (-1: of every slot; single and sentinel
     * mode have one data set) has a new epoch (restart without
     * persistence, FLUSHALL): nothing read before is true any more. */
    void (*epoch)(void *ud, long slot, uint64_t e);
    /* Every message published before Redis time ms on the master behind
     * subscriber link `link` has been delivered to this worker (a tick
     * came back round its control channel). */
    void (*tick)(void *ud, unsigned link, long long redis_ms);
    /* Something hl_store_not_ready reports changed. */
    void (*state)(void *ud);
} hl_store_events;

/* Returns NULL with err on failure. cfg and base outlive the store. */
hl_store *hl_store_new(const hl_config *cfg, struct event_base *base, int worker,
                       const hl_store_events *ev, void *ud, char *err, size_t errlen);
/* Connects the links and starts the ticks. */
void hl_store_start(hl_store *s);
/* Closes the links for good; callbacks of ops in flight get failures.
 * Never from inside a store callback. */
void hl_store_stop(hl_store *s);
/* hl_store_free(NULL) is a no-op. Stops first. */
void hl_store_free(hl_store *s);

/* NULL when both links are up, the library is loaded, the control
 * channel is subscribed and canary probes come back round it (published
 * on the command link, received on the subscriber link); else why not,
 * for people (a string that stays valid while the store lives). */
const char *hl_store_not_ready(const hl_store *s);
/* NULL, or why the store serves but is degraded (sentinel mode: no
 * sentinel answers, so a failover would not be followed). A string that
 * stays valid while the store lives. */
const char *hl_store_degraded(const hl_store *s);
/* The worker's metrics (links up, reconnects, the canary); before this
 * call they go to hl_metrics_void. */
void hl_store_set_metrics(hl_store *s, hl_metrics *m);
/* The slot of channel name: where its data lives (always 0 outside
 * cluster mode). */
unsigned hl_store_slot(const hl_store *s, const char *name, size_t len);
/* The epoch of slot's data as last seen (0: not yet). */
uint64_t hl_store_epoch(const hl_store *s, unsigned slot);
/* The clock now of the Redis master serving slot (-1: any master's),
 * estimated from the last reply that told it (0: none has yet). */
long long hl_store_redis_now(const hl_store *s, long slot);
/* Reads of slot's channels are possible (its command link is ready). */
int hl_store_can_read(const hl_store *s, unsigned slot);

/* SUBSCRIBE channel name. Returns the number of the subscriber link it
 * was sent on (nonzero), or 0 if the link is down (sub_up will come). */
unsigned hl_store_subscribe(hl_store *s, const char *name, size_t len);
/* UNSUBSCRIBE channel name from link. HL_OK if sent, HL_ERR if that link
 * is gone (and with it the subscription). */
int hl_store_unsubscribe(hl_store *s, unsigned link, const char *name, size_t len);

void hl_store_cancel(hl_store_op *op);

/* ---- Reading a stream ---- */

typedef enum hl_read_from {
    HL_READ_START = 0, /* the oldest entries held (cursor "0") */
    HL_READ_AFTER,     /* entries after an id */
    HL_READ_LATEST,    /* the newest `count` entries */
} hl_read_from;

typedef struct hl_read_result {
    int ok;             /* 0: the read failed (link lost, Redis refused); nothing else is set */
    hl_stream_state st; /* the stream as Redis reported it */
    uint64_t epoch;     /* the epoch Redis reported */
    hl_msg *msgs;       /* the entries read, oldest first; the callback's to free */
    size_t entries;     /* entries in the reply */
    size_t bad;         /* of which malformed (not in msgs) */
} hl_read_result;

typedef void hl_read_cb(void *ud, hl_read_result *res);

/* Reads up to count entries of channel name's stream. Returns the op, or
 * NULL if it cannot be sent now (not ready, out of memory). */
hl_store_op *hl_store_read(hl_store *s, const char *name, size_t len, hl_read_from from,
                           hl_sid after, int count, hl_read_cb *cb, void *ud);

/* ---- Publishing, and what Redis holds of a channel ---- */

typedef struct hl_publish_result {
    int ok;             /* 1: stored (or a duplicate) */
    hl_error err;       /* when not ok */
    const char *detail; /* when not ok: for the client */
    const char *id;     /* when ok: the entry's id (valid during the callback) */
    size_t idlen;
    int duplicate; /* the Idempotency-Key was seen before: id is the first one's */
} hl_publish_result;

typedef void hl_publish_cb(void *ud, const hl_publish_result *res);

/* Appends data to channel name's history and publishes it (idem: an
 * Idempotency-Key, or NULL). Returns the op, or NULL if not sent. */
hl_store_op *hl_store_publish(hl_store *s, const char *name, size_t len, const char *data,
                              size_t dlen, const char *idem, hl_publish_cb *cb, void *ud);

typedef struct hl_info_result {
    int ok;
    hl_error err;
    const char *detail;
    hl_stream_state st; /* when ok */
} hl_info_result;

typedef void hl_info_cb(void *ud, const hl_info_result *res);

hl_store_op *hl_store_info(hl_store *s, const char *name, size_t len, hl_info_cb *cb, void *ud);

#endif
