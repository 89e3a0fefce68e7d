/* hl_store_int.h -- what the store's files share (not for other layers).
 *
 * A store talks to one Redis master per shard. Single and sentinel mode
 * have one shard, shard 0, for the whole data set. Cluster mode has one
 * per master the slot map names, made and retired as the map changes
 * (hl_scluster.c); each channel's operations go to the shard serving its
 * slot. A shard has a command link (hiredis async: the library, reads,
 * publishes, WAIT, ticks) and a subscriber link: a classic one (hl_rlink,
 * SUBSCRIBE) outside cluster mode, a sharded one (hl_slink, SSUBSCRIBE) in
 * it.
 *
 * From the bottom up: hl_shard.c (the shards: links, the canary, ticks,
 * the library, epochs, reads), hl_spublish.c (publishes, WAIT, the
 * sentinel failover hold), hl_scluster.c (the slot map, its refreshes,
 * redirections), hl_store.c (life, readiness, the sentinels' watch). A
 * file calls only into those below it; what a lower one has to tell an
 * upper one goes through the store's hooks, set by hl_store.c. */
#ifndef HL_STORE_INT_H
#define HL_STORE_INT_H

#include "hl_rkeys.h"
#include "hl_rlink.h"
#include "hl_sentinel.h"
#include "hl_slink.h"
#include "hl_slot.h"
#include "hl_store.h"

/* The most masters a cluster may have (a slot map naming more is
 * refused). */
#define HL_MAX_SHARDS 64
/* owner[] of a slot no master serves. */
#define HL_NO_SHARD 0xff

/* How soon what Redis refused is tried again. */
#define HL_RETRY_MS 500

typedef struct hl_shard {
    hl_store *s;
    int idx;        /* in s->shard[] */
    char host[256]; /* the master (cluster mode; else the links know) */
    int port;
    char cmd_name[300], sub_name[300]; /* the links' names in logs */
    hl_rlink cmd;                      /* command link */
    hl_rlink sub;                      /* subscriber link, single and sentinel mode */
    hl_slink ssub;                     /* sharded subscriber link, cluster mode */
    unsigned sub_gen;                  /* the subscriber connection's link number (0: none yet) */
    char ctl[HL_RKEY_MAX];  /* the control channel (cluster: in a slot this master serves) */
    unsigned ctl_slot;      /* cluster: that slot ("" ctl: none picked yet) */
    int ctl_live;           /* Redis confirmed the control channel */
    int cmd_ready;          /* the library is loaded (and outside cluster mode the epoch known) */
    int loading;            /* the library load is in flight */
    int trouble;            /* error replies since the last good one */
    long long redis_ms;     /* the master's clock at the last reply that told it (0: never) */
    long long redis_at;     /* our monotonic ms when that reply came */
    int sub_ever, cmd_ever; /* the link was up before (a new up is a reconnect) */
    int ever_ready;         /* both links were up and the library loaded once */
    /* The canary: a probe published on the control channel through the
     * command link must come back on the subscriber link. */
    unsigned long long probe_seq;
    long long probe_out; /* monotonic ms the oldest unanswered probe went out; 0: none */
    int canary_ok;       /* the last probe came back, and none is overdue */
    int canary_failed;   /* probes stopped coming back (until one does) */
    /* publish.wait_replicas > 0: the publishes sent since the last WAIT,
     * oldest first; one WAIT answers them all. */
    struct hl_store_op *unwaited;
    struct hl_store_op **unwaited_tail;
    struct event *wait_ev;
    int wait_out;     /* a WAIT is in flight: the next waits for its answer */
    unsigned cmd_gen; /* counts the command link's connections */
    int retired;      /* cluster: serves no slot any more; freed by the sweep */
} hl_shard;

struct hl_store_op;

/* What the shards tell the layers above them. */
typedef struct hl_store_hooks {
    /* Cluster mode: ask for the slot map soon (NULL outside it). */
    void (*refresh)(hl_store *s, const char *why);
    /* Cluster mode: an error reply to op on sh; 1 if op was sent again. */
    int (*redirect)(hl_shard *sh, struct hl_store_op *op, const redisReply *reply);
    /* A shard's library is loaded (the sentinel failover hold may end). */
    void (*ready)(hl_store *s);
    /* A shard goes away: its publishes waiting for WAIT are answered. */
    void (*shard_gone)(hl_shard *sh);
    /* A shard's WAIT event. */
    void (*wait_turn)(evutil_socket_t fd, short what, void *arg);
} hl_store_hooks;

struct hl_store {
    const hl_config *cfg;
    struct event_base *base;
    int worker;
    hl_store_events ev;
    void *ud;
    hl_rkeys keys;
    int cluster;                    /* redis.mode is cluster */
    hl_store_hooks hooks;           /* set by hl_store.c */
    hl_shard *shard[HL_MAX_SHARDS]; /* NULL: free */
    unsigned links;                 /* link numbers handed out */
    struct event *retry;            /* what Redis refused, tried again */
    struct event *tick;             /* asks Redis's time now and then */
    struct event *canary;           /* every redis.canary_ms */
    char canary_why[200];           /* hl_store_not_ready's reason when probes fail */
    char why[600];                  /* hl_store_not_ready's reason built on demand (this thread) */
    uint64_t epoch;                 /* single and sentinel mode: as last seen (0: not yet) */
    uint64_t *slot_epoch;           /* cluster mode: per slot (0: not yet) */
    char epoch_mine[17];            /* proposed if Redis has none (hex) */
    hl_metrics *m;                  /* the worker's */
    /* Sentinel mode: the sentinels are asked now and then where the
     * master is, so links on a master they no longer name move, and so
     * readiness can say when none answers. */
    hl_sentinel_ask watch;
    struct event *watch_timer;
    int sentinels_silent;   /* the last round got no answer */
    char degraded_why[800]; /* hl_store_degraded's reason then (read by other threads) */
    char moved_why[300];    /* why the links were moved to another master */
    /* Sentinel mode: from a sentinel's +try-failover until the links are
     * on the new master, publishes are held (hl_spublish.c). */
    hl_sentinel_feed feed;
    unsigned fencing;       /* bit i: sentinel i announced a failover under way */
    char fence_master[256]; /* the master then */
    int fence_port;
    struct event *fence_timer; /* gives up holding after a while */
    long long fence_moved;     /* monotonic ms the links were first on the new master */
    int fence_asking;          /* a WAIT for the new master's replicas is in flight */
    struct event *fence_poll;  /* asks it again */
    struct hl_store_op *held;  /* publishes held, oldest first */
    struct hl_store_op **held_tail;
    char master[256]; /* where the command link was last up */
    int master_port;  /* 0: never */
    /* Cluster mode (hl_scluster.c). */
    unsigned char owner[HL_SLOTS]; /* the shard serving each slot, or HL_NO_SHARD */
    int map_loaded;                /* a slot map was applied */
    hl_slot_tags *tags;            /* the epoch tags */
    struct hl_mapask *ask;         /* the slot map being asked for */
    struct event *refresh;         /* asks for the slot map every redis.cluster_refresh_ms */
    struct event *sweep;           /* frees retired shards, outside any callback */
    char map_why[300];             /* why the slot map is not known (read by other threads) */
};

typedef enum hl_op_kind { HL_OP_READ, HL_OP_PUBLISH, HL_OP_INFO } hl_op_kind;

typedef struct hl_store_op {
    hl_store *s;
    hl_shard *sh; /* where it was sent */
    hl_op_kind kind;
    int cancelled;
    void *cb;
    void *ud;
    struct hl_store_op *next; /* stored publishes waiting for WAIT; held ones: the queue */
    int duplicate;            /* a stored publish: its Idempotency-Key was seen before */
    int pipelined; /* single and sentinel mode, with WAIT: in the batch since it was sent */
    int state;     /* pipelined: 0 sent, 1 stored, 2 answered (or cancelled: never will be) */
    char id[HL_SID_MAXLEN + 1];
    unsigned gen; /* stored publishes: the command connection that stored it */
    int tries;    /* cluster mode: TRYAGAIN refusals followed */
    int hops;     /* cluster mode: MOVED and ASK redirections, and library loads, followed */
    int asked;    /* cluster mode: sent after ASKING (to a slot's importing master) */
    char *data;   /* a publish kept for a retry or a hold: its data and Idempotency-Key */
    size_t dlen;
    char *idem;
    hl_read_from from; /* reads */
    hl_sid after;
    int count;
    unsigned slot; /* of name */
    size_t len;    /* of name */
    char name[];   /* the channel */
} hl_store_op;

/* hl_shard.c */
int hl__shards_init(hl_store *s);
void hl__shards_start(hl_store *s);
void hl__shards_stop(hl_store *s);
void hl__shards_free(hl_store *s);
hl_shard *hl__shard_new(hl_store *s, const char *host, int port);
void hl__shard_start(hl_shard *sh);
/* Stops sh's links (not from inside one of its callbacks) and frees it. */
void hl__shard_free(hl_shard *sh);
int hl__shard_can_read(const hl_shard *sh);
/* The shard serving slot, or NULL. */
hl_shard *hl__shard_of(const hl_store *s, unsigned slot);
void hl__trouble(hl_shard *sh, const char *what, const redisReply *reply);
void hl__no_trouble(hl_shard *sh);
/* An error reply to a command that needs the library. */
void hl__refused(hl_shard *sh, const char *what, const redisReply *reply);
hl_store_op *hl__op_new(hl_store *s, hl_op_kind kind, const char *name, size_t len, void *cb,
                        void *ud);
void hl__op_free(hl_store_op *op);
/* Loads the library on sh's command link (and outside cluster mode
 * reads the epoch). */
void hl__load_library(hl_shard *sh);
/* Why sh cannot serve now, or NULL. */
const char *hl__shard_not_ready(const hl_shard *sh);
/* Sends read op (again) on sh. HL_OK or HL_ERR (not sent; op still the caller's). */
int hl__send_read(hl_shard *sh, hl_store_op *op);

/* hl_spublish.c */
int hl__send_publish(hl_shard *sh, hl_store_op *op);
void hl__wait_turn(hl_shard *sh);
/* A shard's command link is gone: its publishes waiting for WAIT are
 * answered. */
void hl__wait_flush(hl_shard *sh);
void hl__fence_init(hl_store *s);
void hl__fence_check(hl_store *s);
void hl__unfence(hl_store *s, const char *why);
void hl__on_sentinel_event(void *ud, int from, const char *event, const char *p, size_t n);
void hl__on_wait_turn(evutil_socket_t fd, short what, void *arg);

/* hl_scluster.c */
int hl__cluster_init(hl_store *s);
void hl__cluster_start(hl_store *s);
void hl__cluster_stop(hl_store *s);
void hl__cluster_free(hl_store *s);
/* Asks for the slot map soon (coalesced: one question at a time, at
 * most every 100 ms). */
void hl__cluster_refresh(hl_store *s, const char *why);
/* An error reply to op on sh: follows MOVED / ASK / TRYAGAIN when it
 * can. Returns 1 if op was sent again (its reply will come), 0 if the
 * caller answers it. */
int hl__cluster_redirect(hl_shard *sh, hl_store_op *op, const redisReply *reply);
/* What readiness says of the slot map (NULL: fine). */
const char *hl__cluster_not_ready(const hl_store *s);
/* The control channel of sh (a slot it serves) is chosen again. */
void hl__cluster_pick_ctl(hl_shard *sh);

#endif
