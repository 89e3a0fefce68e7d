/* hl_store.c -- a worker's Redis side: two links, the library, the epoch,
 * Redis's clock, ticks, and every command with its reply.
 *
 * Each worker holds one permanent subscription to its private control
 * channel besides the channels its waiters want: hiredis 0.14 can assert
 * when the last subscription goes away with replies in flight, and the
 * control channel means that never happens. It also carries the ticks
 * (see hl_store_events.tick). */
#include "hl_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_rkeys.h"
#include "hl_rlib.h"
#include "hl_rlink.h"
#include "hl_rreply.h"
#include "hl_sentinel.h"
#include "hl_time.h"

/* How soon what Redis refused is tried again. */
#define RETRY_MS 500
/* The longest publishes are held for a failover announced by a sentinel
 * (one that never completes: the sentinels gave up, or their events were
 * lost). */
#define FENCE_MAX_MS 10000
/* How long, once on the new master, publishes stay held for
 * publish.wait_replicas of its replicas to confirm (a replica re-pointed
 * at it may be resyncing; WAIT would only refuse them meanwhile). */
#define FENCE_REPLICAS_MS 2000

struct hl_store {
    const hl_config *cfg;
    struct event_base *base;
    int worker;
    hl_store_events ev;
    void *ud;
    hl_rkeys keys;
    hl_rlink sub;           /* subscriber link */
    hl_rlink cmd;           /* command link */
    int ctl_live;           /* Redis confirmed the control channel */
    int cmd_ready;          /* the library is loaded and the epoch known */
    int loading;            /* the library load and epoch read are in flight */
    int trouble;            /* error replies since the last good one */
    struct event *retry;    /* what Redis refused, tried again */
    struct event *tick;     /* asks Redis's time now and then */
    uint64_t epoch;         /* as last seen (0: not yet) */
    char epoch_mine[17];    /* proposed if Redis has none (hex) */
    long long redis_ms;     /* Redis's clock at the last reply that told it (0: never) */
    long long redis_at;     /* our monotonic ms when that reply came */
    hl_metrics *m;          /* the worker's */
    int sub_ever, cmd_ever; /* the link was up before (a new up is a reconnect) */
    unsigned sub_gen;       /* the subscriber connection's link number (hl_store_events) */
    /* The canary: a probe published on the control channel through the
     * command link must come back on the subscriber link. */
    struct event *canary; /* every redis.canary_ms */
    unsigned long long probe_seq;
    long long probe_out;  /* monotonic ms the oldest unanswered probe went out; 0: none */
    int canary_ok;        /* the last probe came back, and none is overdue */
    int canary_failed;    /* probes stopped coming back (until one does) */
    char canary_why[160]; /* hl_store_not_ready's reason then */
    /* Sentinel mode: the sentinels are asked now and then where the
     * master is, so links on a master they no longer name move, and so
     * readiness can say when none answers. */
    hl_sentinel_ask watch;
    struct event *watch_timer;
    int sentinels_silent;   /* the last round got no answer */
    char degraded_why[800]; /* hl_store_degraded's reason then */
    char moved_why[300];    /* why the links were moved to another master */
    /* publish.wait_replicas > 0: the publishes sent since the last WAIT,
     * oldest first; one WAIT per loop turn answers them all. */
    hl_store_op *unwaited;
    hl_store_op **unwaited_tail;
    struct event *wait_ev;
    /* Sentinel mode: from a sentinel's +try-failover until the links are
     * on the new master, publishes are held, not sent to a master that
     * may be demoted under them with its acknowledged writes. */
    hl_sentinel_feed feed;
    unsigned fencing;       /* bit i: sentinel i announced a failover under way */
    char fence_master[256]; /* the master then */
    int fence_port;
    struct event *fence_timer; /* gives up holding after FENCE_MAX_MS */
    long long fence_moved;     /* monotonic ms the links were first on the new master */
    int fence_asking;          /* a WAIT for the new master's replicas is in flight */
    struct event *fence_poll;  /* asks it again */
    hl_store_op *held;         /* publishes held, oldest first */
    hl_store_op **held_tail;
    char master[256]; /* where the command link was last up */
    int master_port;  /* 0: never */
    int wait_out;     /* a WAIT is in flight: the next waits for its answer */
    unsigned cmd_gen; /* counts the command link's connections */
};

typedef enum op_kind { OP_READ, OP_PUBLISH, OP_INFO } op_kind;

/* Where a publish waiting for WAIT is. */
typedef enum pub_state {
    PUB_SENT = 0, /* FCALL sent, no reply yet */
    PUB_STORED,   /* stored (or a duplicate): the 201 waits for WAIT */
    PUB_ANSWERED, /* the callback had its answer (or never will: cancelled) */
} pub_state;

struct hl_store_op {
    hl_store *s;
    op_kind kind;
    int cancelled;
    void *cb;
    void *ud;
    hl_store_op *next; /* publishes under WAIT: the batch; held ones: the queue */
    pub_state state;   /* publishes under WAIT */
    int duplicate;     /* PUB_STORED: an Idempotency-Key seen before */
    char id[HL_SID_MAXLEN + 1];
    unsigned gen; /* publishes under WAIT: the command connection sent on */
    char *data;   /* a held publish: its data, and its Idempotency-Key or NULL */
    size_t dlen;
    char *idem;
    hl_read_from from; /* reads */
    size_t len;        /* of name */
    char name[];       /* the channel */
};

static void load_library(hl_store *s);
static void fence_check(hl_store *s);
static void on_sentinel_event(void *ud, int from, const char *event, const char *p, size_t n);
static void on_fence_timer(evutil_socket_t fd, short what, void *arg);
static void on_fence_poll(evutil_socket_t fd, short what, void *arg);
static void unfence(hl_store *s, const char *why);

/* ---- Clock, epoch, trouble ---------------------------------------------- */

static void note_time(hl_store *s, long long ms) {
    s->redis_ms = ms;
    s->redis_at = hl_mono_ms();
}

long long hl_store_redis_now(const hl_store *s, long slot) {
    (void)slot;
    return s->redis_ms > 0 ? s->redis_ms + (hl_mono_ms() - s->redis_at) : 0;
}

unsigned hl_store_slot(const hl_store *s, const char *name, size_t len) {
    (void)s;
    (void)name;
    (void)len;
    return 0;
}

uint64_t hl_store_epoch(const hl_store *s, unsigned slot) {
    (void)slot;
    return s->epoch;
}

static int cmd_can_read(const hl_store *s) {
    return s->cmd_ready && hl_rlink_is_up(&s->cmd);
}

int hl_store_can_read(const hl_store *s, unsigned slot) {
    (void)slot;
    return cmd_can_read(s);
}

/* A random nonzero epoch to propose when Redis has none. */
static void new_proposal(hl_store *s) {
    uint64_t e = 0;
    if (getrandom(&e, sizeof(e), 0) != (ssize_t)sizeof(e)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    snprintf(s->epoch_mine, sizeof(s->epoch_mine), "%llx", (unsigned long long)(e ? e : 1));
}

/* Redis reported epoch e. */
static void adopt_epoch(hl_store *s, uint64_t e) {
    if (s->epoch == e) return;
    if (s->epoch != 0)
        hl_warn("worker %d: Redis's data set changed (epoch %llx, was %llx): history before it is "
                "gone; clients from before are told they missed messages",
                s->worker, (unsigned long long)e, (unsigned long long)s->epoch);
    s->epoch = e;
    /* Were Redis to lose its data again, this worker's proposal would be
     * the first to be stored; it must not be the epoch clients hold now,
     * or their old cursors would pass for current ones. */
    if (hl_rreply_epoch(s->epoch_mine, strlen(s->epoch_mine)) == e) new_proposal(s);
    s->ev.epoch(s->ud, -1, e);
}

static void retry_later(hl_store *s) {
    if (evtimer_pending(s->retry, NULL)) return;
    struct timeval tv = hl_ms_tv(RETRY_MS);
    evtimer_add(s->retry, &tv);
}

/* Redis refused something: the first refusal after good replies is a
 * warning, the ones that follow (every channel, every retry while Redis
 * loads its data) only debug lines. */
static void trouble(hl_store *s, const char *what, const redisReply *reply) {
    const char *why = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    if (s->trouble++ == 0)
        hl_warn("worker %d: %s: %s; trying again every %d ms until Redis answers", s->worker, what,
                why, RETRY_MS);
    else
        hl_debug("worker %d: %s: %s", s->worker, what, why);
    retry_later(s);
}

static void no_trouble(hl_store *s) {
    if (s->trouble == 0) return;
    hl_info("worker %d: Redis answers again (after %d refusals)", s->worker, s->trouble);
    s->trouble = 0;
}

/* An error reply to a command that needs the library: Redis lost it
 * (FUNCTION FLUSH, a restart without it) or refuses for now. */
static void refused(hl_store *s, const char *what, const redisReply *reply) {
    if (reply == NULL) return; /* the link went down: it reconnects by itself */
    if (hl_rreply_readonly(reply) && s->cmd.sentinel) {
        /* A master demoted under the links: the sentinels know the new one. */
        if (hl_rlink_is_up(&s->cmd))
            hl_warn("worker %d: Redis at %s:%d is a read-only replica now (the master was "
                    "demoted); asking the sentinels for the new master",
                    s->worker, s->cmd.host, s->cmd.port);
        hl_rlink_reconnect(&s->cmd, "the server became a read-only replica");
        return;
    }
    if (hl_rreply_library_missing(reply)) {
        /* Many replies may fail alike; one reload is enough. */
        if (s->cmd_ready && hl_rlink_is_up(&s->cmd)) {
            hl_warn("worker %d: the Redis Function library is gone; loading it again", s->worker);
            load_library(s);
        }
        return;
    }
    trouble(s, what, reply);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    if (!hl_rlink_is_up(&s->cmd)) return; /* cmd_up starts over */
    if (!s->cmd_ready) {
        if (!s->loading) load_library(s);
        return;
    }
    s->ev.ready(s->ud);
}

const char *hl_store_not_ready(const hl_store *s) {
    if (s->canary_failed) return s->canary_why;
    if (!hl_rlink_is_up(&s->sub)) return "the Redis subscriber connection is down; reconnecting";
    if (!hl_rlink_is_up(&s->cmd)) return "the Redis command connection is down; reconnecting";
    if (!s->cmd_ready) return "loading holdline's Function library into Redis";
    if (!s->ctl_live) return "waiting for Redis to confirm the subscriptions";
    if (!s->canary_ok) return "waiting for the first canary probe to come back through Redis";
    return NULL;
}

const char *hl_store_degraded(const hl_store *s) {
    return s->sentinels_silent ? s->degraded_why : NULL;
}

/* ---- Sentinel mode: following the master --------------------------------- */

/* A link up on a server the sentinels no longer name as the master is
 * moved: a manual failover leaves the old master up and writable until
 * the sentinels reconfigure it, seconds later. */
static void move_if_elsewhere(hl_store *s, hl_rlink *l, const char *host, int port) {
    if (!hl_rlink_is_up(l) || (strcmp(l->host, host) == 0 && l->port == port)) return;
    hl_info("worker %d: the sentinels name %s:%d as the master; moving the %s link from %s:%d",
            s->worker, host, port, l->name, l->host, l->port);
    snprintf(s->moved_why, sizeof(s->moved_why), "the sentinels name another master");
    hl_rlink_move(l, host, port, s->moved_why);
}

static void on_watch(void *ud, const char *host, int port, const char *why) {
    hl_store *s = ud;
    if (host == NULL) {
        if (s->sentinels_silent) return;
        hl_warn("worker %d: no sentinel answers (%s); serving on the master last confirmed, %s:%d",
                s->worker, why, s->cmd.host, s->cmd.port);
        /* Written once per episode: other threads read it (/readyz). */
        snprintf(s->degraded_why, sizeof(s->degraded_why),
                 "no sentinel answers (%.400s); serving on the master last confirmed, %.200s:%d, "
                 "but a failover would not be followed",
                 why, s->cmd.host, s->cmd.port);
        s->sentinels_silent = 1;
        hl_metric_set(&s->m->sentinels_ok, 0);
        s->ev.state(s->ud);
        return;
    }
    if (s->sentinels_silent) {
        hl_info("worker %d: the sentinels answer again", s->worker);
        s->sentinels_silent = 0;
        hl_metric_set(&s->m->sentinels_ok, 1);
        s->ev.state(s->ud);
    }
    move_if_elsewhere(s, &s->sub, host, port);
    move_if_elsewhere(s, &s->cmd, host, port);
}

static void on_watch_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    hl_sentinel_start(&s->watch, on_watch, s); /* a round still running: nothing */
}

void hl_store_set_metrics(hl_store *s, hl_metrics *m) {
    s->m = m;
    hl_metric_set(&m->sentinels_ok, !s->sentinels_silent);
}

/* ---- The canary ---------------------------------------------------------- */

/* A link can be up and deliver nothing (a proxy that stopped forwarding,
 * a connection to a Redis that no longer gets the publishes): the
 * heartbeat's PING is answered and pub/sub is silent. So each worker
 * publishes a probe round its control channel, as the ticks go, and
 * expects it back. */
static void send_probe(hl_store *s) {
    if (!s->ctl_live || !hl_rlink_is_up(&s->cmd)) return;
    redisAsyncCommand(s->cmd.ac, NULL, NULL, "PUBLISH %s probe:%llu", s->keys.ctl, ++s->probe_seq);
    if (s->probe_out == 0) s->probe_out = hl_mono_ms();
}

static void probe_back(hl_store *s) {
    s->probe_out = 0;
    if (s->canary_ok) return;
    if (s->canary_failed)
        hl_info("worker %d: canary probes come back through Redis again", s->worker);
    s->canary_ok = 1;
    s->canary_failed = 0;
    hl_metric_set(&s->m->canary_ok, 1);
    s->ev.state(s->ud);
}

static void on_canary(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    long long now = hl_mono_ms();
    if (s->probe_out > 0 && now - s->probe_out >= s->cfg->redis_canary_timeout_ms &&
        hl_rlink_is_up(&s->sub) && hl_rlink_is_up(&s->cmd)) {
        if (!s->canary_failed)
            hl_warn("worker %d: canary probes published through Redis have not come back on the "
                    "subscriber link for %lld ms while both links are up; reconnecting it",
                    s->worker, now - s->probe_out);
        s->canary_ok = 0;
        s->canary_failed = 1;
        s->probe_out = 0;
        hl_metric_set(&s->m->canary_ok, 0);
        hl_metric_add(&s->m->canary_failures, 1);
        s->ev.state(s->ud);
        /* The waiters' channels are subscribed again and re-read from
         * their cursors when it is back (sub_down, sub_up). */
        hl_rlink_reconnect(&s->sub, "canary probes did not come back");
        return;
    }
    send_probe(s);
}

/* ---- Subscriber link ------------------------------------------------- */

static void on_sub_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store *s = privdata;
    redisReply *reply = reply_;
    /* NULL: the link is going down; sub_down follows. */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *ch = reply->element[1];
    if (strcmp(ch->str, s->keys.ctl) == 0) {
        long long ms;
        if (strcasecmp(kind, "subscribe") == 0) {
            s->ctl_live = 1;
            send_probe(s); /* readiness waits for the first to come back */
            s->ev.state(s->ud);
        } else if (strcasecmp(kind, "message") == 0 &&
                   reply->element[2]->type == REDIS_REPLY_STRING &&
                   strncmp(reply->element[2]->str, "probe:", 6) == 0) {
            probe_back(s);
        } else if (strcasecmp(kind, "message") == 0 &&
                   reply->element[2]->type == REDIS_REPLY_STRING &&
                   strncmp(reply->element[2]->str, "tick:", 5) == 0 &&
                   (ms = strtoll(reply->element[2]->str + 5, NULL, 10)) > 0) {
            note_time(s, ms);
            s->ev.tick(s->ud, s->sub_gen, ms);
        }
        return;
    }
    size_t len;
    const char *name = hl_rkeys_strip(&s->keys, ch->str, ch->len, &len);
    if (name == NULL) return;
    if (strcasecmp(kind, "message") == 0) {
        const redisReply *data = reply->element[2];
        if (data->type == REDIS_REPLY_STRING)
            s->ev.message(s->ud, s->sub_gen, name, len, data->str, data->len);
    } else if (strcasecmp(kind, "subscribe") == 0) {
        s->ev.subscribed(s->ud, s->sub_gen, name, len);
    } else if (strcasecmp(kind, "unsubscribe") == 0) {
        s->ev.unsubscribed(s->ud, s->sub_gen, name, len, HL_UNSUB_ASKED);
    }
}

unsigned hl_store_subscribe(hl_store *s, const char *name, size_t len) {
    if (!hl_rlink_is_up(&s->sub)) return 0;
    char ch[HL_RKEY_MAX];
    hl_rkeys_channel(&s->keys, name, len, ch);
    /* hiredis keeps one callback per channel and routes that channel's
     * messages to it, so every SUBSCRIBE must name on_sub_reply. */
    redisAsyncCommand(s->sub.ac, on_sub_reply, s, "SUBSCRIBE %s", ch);
    return s->sub_gen;
}

int hl_store_unsubscribe(hl_store *s, unsigned link, const char *name, size_t len) {
    if (!hl_rlink_is_up(&s->sub) || link != s->sub_gen) return HL_ERR;
    char ch[HL_RKEY_MAX];
    hl_rkeys_channel(&s->keys, name, len, ch);
    redisAsyncCommand(s->sub.ac, NULL, NULL, "UNSUBSCRIBE %s", ch);
    return HL_OK;
}

static void sub_up(hl_rlink *l, void *ud) {
    hl_store *s = ud;
    if (s->sub_ever) hl_metric_add(&s->m->redis_reconnects, 1);
    s->sub_ever = 1;
    s->sub_gen++;
    hl_metric_set(&s->m->redis_up[HL_LINK_SUBSCRIBER], 1);
    redisAsyncCommand(l->ac, on_sub_reply, s, "SUBSCRIBE %s", s->keys.ctl);
    s->ev.sub_up(s->ud);
    s->ev.state(s->ud);
}

static void sub_down(hl_rlink *l, void *ud) {
    (void)l;
    hl_store *s = ud;
    s->ctl_live = 0;
    s->probe_out = 0; /* nothing can come back now */
    hl_metric_set(&s->m->redis_up[HL_LINK_SUBSCRIBER], 0);
    s->ev.sub_down(s->ud, s->sub_gen);
    s->ev.state(s->ud);
}

/* ---- Ticks ------------------------------------------------------------- */

/* Redis's clock T goes round the control channel: when it comes back,
 * every message published before T has been seen, since pub/sub keeps
 * Redis's order across channels on one connection. */
static void on_tick_time(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store *s = privdata;
    long long ms;
    if (hl_rreply_time(reply_, &ms) != HL_OK || !hl_rlink_is_up(&s->cmd)) return;
    redisAsyncCommand(s->cmd.ac, NULL, NULL, "PUBLISH %s tick:%lld", s->keys.ctl, ms);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    if (!s->cmd_ready || !s->ctl_live || !hl_rlink_is_up(&s->cmd)) return;
    redisAsyncCommand(s->cmd.ac, on_tick_time, s, "TIME");
}

/* ---- Command link: the library and the epoch ---------------------------- */

static void on_library_loaded(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store *s = privdata;
    redisReply *reply = reply_;
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) return;
    /* A Redis loading its data set refuses everything for a while; the
     * epoch read that follows reports that and retries. */
    if (strncmp(reply->str, "LOADING", 7) == 0 || strncmp(reply->str, "BUSY", 4) == 0) return;
    hl_error("worker %d: Redis refused holdline's Function library (Redis 7 or later is "
             "needed): %s",
             s->worker, reply->str);
}

static void on_epoch(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store *s = privdata;
    redisReply *reply = reply_;
    s->loading = 0;
    if (reply == NULL) return;
    if (reply->type == REDIS_REPLY_NIL) {
        adopt_epoch(s, hl_rreply_epoch(s->epoch_mine, strlen(s->epoch_mine)));
    } else if (reply->type == REDIS_REPLY_STRING) {
        adopt_epoch(s, hl_rreply_epoch(reply->str, reply->len));
    } else {
        trouble(s, "cannot load the Function library and read the epoch key", reply);
        return;
    }
    no_trouble(s);
    s->cmd_ready = 1;
    fence_check(s);
    s->ev.ready(s->ud);
    s->ev.state(s->ud);
}

/* Loads the library, then learns the epoch; commands on one connection
 * run in order, so nothing sent after this finds the library missing. */
static void load_library(hl_store *s) {
    hl_buf b;
    hl_buf_init(&b);
    hl_rlib_source(&b, s->cfg->history_length, (long long)s->cfg->history_ttl * 1000, 0);
    if (b.oom) {
        hl_error("worker %d: out of memory building the Function library", s->worker);
        hl_buf_free(&b);
        return;
    }
    s->cmd_ready = 0;
    s->loading = 1;
    s->ev.state(s->ud);
    redisAsyncCommand(s->cmd.ac, on_library_loaded, s, "FUNCTION LOAD REPLACE %b", b.data, b.len);
    redisAsyncCommand(s->cmd.ac, on_epoch, s, "SET %s %s NX GET", s->keys.epoch, s->epoch_mine);
    hl_buf_free(&b);
}

static void cmd_up(hl_rlink *l, void *ud) {
    hl_store *s = ud;
    if (s->cmd_ever) hl_metric_add(&s->m->redis_reconnects, 1);
    s->cmd_ever = 1;
    s->cmd_gen++;
    if (s->master_port != 0 && (s->master_port != l->port || strcmp(s->master, l->host) != 0)) {
        hl_metric_add(&s->m->master_changes, 1);
        hl_info("worker %d: Redis's master is now %s:%d (was %s:%d)", s->worker, l->host, l->port,
                s->master, s->master_port);
    }
    snprintf(s->master, sizeof(s->master), "%s", l->host);
    s->master_port = l->port;
    hl_metric_set(&s->m->redis_up[HL_LINK_COMMAND], 1);
    load_library(s);
    send_probe(s);
}

static void cmd_down(hl_rlink *l, void *ud) {
    (void)l;
    hl_store *s = ud;
    s->probe_out = 0; /* no probe can go out now */
    hl_metric_set(&s->m->redis_up[HL_LINK_COMMAND], 0);
    s->cmd_ready = 0;
    s->loading = 0;
    s->ev.state(s->ud);
}

/* ---- Ops --------------------------------------------------------------- */

static hl_store_op *op_new(hl_store *s, op_kind kind, const char *name, size_t len, void *cb,
                           void *ud) {
    hl_store_op *op = malloc(sizeof(*op) + len + 1);
    if (op == NULL) return NULL;
    op->s = s;
    op->kind = kind;
    op->cancelled = 0;
    op->cb = cb;
    op->ud = ud;
    op->from = HL_READ_START;
    op->next = NULL;
    op->state = PUB_SENT;
    op->gen = 0;
    op->data = NULL;
    op->dlen = 0;
    op->idem = NULL;
    op->len = len;
    memcpy(op->name, name, len);
    op->name[len] = '\0';
    return op;
}

static void free_op(hl_store_op *op) {
    free(op->data);
    free(op->idem);
    free(op);
}

void hl_store_cancel(hl_store_op *op) {
    /* The reply (or the link's loss) frees it. */
    if (op) op->cancelled = 1;
}

static void on_read(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store_op *op = privdata;
    hl_store *s = op->s;
    const redisReply *reply = reply_;
    hl_read_result res;
    memset(&res, 0, sizeof(res));
    const redisReply *entries;
    if (hl_rreply_read(reply, &res.st, &res.epoch, &entries) != HL_OK) {
        refused(s, "cannot read a channel's history", reply);
    } else {
        res.ok = 1;
        no_trouble(s);
        note_time(s, res.st.now_ms);
        /* Callers see the epoch change (and may cancel this very op)
         * before they see what was read under it. */
        adopt_epoch(s, res.epoch);
    }
    if (op->cancelled || !res.ok) {
        if (!op->cancelled) ((hl_read_cb *)op->cb)(op->ud, &res);
        free(op);
        return;
    }
    /* Oldest first; HL_READ_LATEST gets them newest first (XREVRANGE). */
    res.entries = entries ? entries->elements : 0;
    hl_msg **tail = &res.msgs;
    for (size_t k = 0; k < res.entries; k++) {
        size_t i = op->from == HL_READ_LATEST ? res.entries - 1 - k : k;
        hl_msg *m = hl_rreply_entry(entries->element[i], op->name, op->len);
        if (m == NULL) {
            res.bad++;
            continue;
        }
        *tail = m;
        tail = &m->next;
    }
    ((hl_read_cb *)op->cb)(op->ud, &res);
    free(op);
}

hl_store_op *hl_store_read(hl_store *s, const char *name, size_t len, hl_read_from from,
                           hl_sid after, int count, hl_read_cb *cb, void *ud) {
    if (!cmd_can_read(s)) return NULL;
    hl_store_op *op = op_new(s, OP_READ, name, len, (void *)cb, ud);
    if (op == NULL) return NULL;
    op->from = from;
    char key[HL_RKEY_MAX], at[HL_SID_MAXLEN + 1] = "0";
    hl_rkeys_stream(&s->keys, name, len, key);
    if (from == HL_READ_AFTER) hl_sid_format(after, at);
    if (from == HL_READ_LATEST) strcpy(at, "+");
    if (redisAsyncCommand(s->cmd.ac, on_read, op, "FCALL holdline_read 2 %s %s %s %d %s", key,
                          s->keys.epoch, at, count, s->epoch_mine) != REDIS_OK) {
        free(op);
        return NULL;
    }
    return op;
}

/* ---- Publishing, and WAIT ------------------------------------------------ */

static int waits(const hl_store *s) {
    return s->cfg->publish_wait_replicas > 0;
}

/* Answers and frees a batch of publishes whose WAIT said acks (-1: it
 * could not be asked, or got no answer). */
static void answer_batch(hl_store *s, hl_store_op *ops, long long acks) {
    int want = s->cfg->publish_wait_replicas;
    char detail[300];
    if (acks >= 0)
        snprintf(detail, sizeof(detail),
                 "stored on the Redis master, but %lld of the %d replicas publish.wait_replicas "
                 "asks for confirmed it within %d ms, so a failover could lose it; retrying with "
                 "the same Idempotency-Key is safe",
                 acks, want, s->cfg->publish_wait_timeout_ms);
    else
        snprintf(detail, sizeof(detail),
                 "stored on the Redis master, but the connection was lost before its replicas "
                 "confirmed it, so a failover could lose it; retrying with the same "
                 "Idempotency-Key is safe");
    for (hl_store_op *op = ops, *next; op != NULL; op = next) {
        next = op->next;
        if (op->state != PUB_ANSWERED && !op->cancelled) {
            hl_publish_result res = {0, HL_E_REDIS_UNCONFIRMED, detail, NULL, 0, 0};
            if (op->state == PUB_SENT) {
                res.err = HL_E_REDIS_UNAVAILABLE;
                res.detail = "the Redis connection was lost; the message may not have been sent";
            } else if (acks >= want) {
                res = (hl_publish_result){1, 0, NULL, op->id, strlen(op->id), op->duplicate};
            }
            ((hl_publish_cb *)op->cb)(op->ud, &res);
        }
        free(op);
    }
}

static void on_wait(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store_op *ops = privdata;
    hl_store *s = ops->s;
    const redisReply *reply = reply_;
    s->wait_out = 0;
    /* What was published meanwhile gets the next WAIT. */
    if (s->unwaited) event_active(s->wait_ev, EV_TIMEOUT, 0);
    answer_batch(s, ops, reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1);
}

/* One WAIT after the publishes of a loop turn: it covers every write this
 * connection made before it, so it confirms them all at once. While one
 * is in flight (Redis holds the connection's later commands until it
 * answers) the publishes that follow gather for the next, so a busy link
 * sends one WAIT per replication round trip, not one per turn. */
static void on_wait_turn(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    if (s->wait_out && hl_rlink_is_up(&s->cmd)) return; /* on_wait calls again */
    hl_store_op *ops = s->unwaited;
    s->unwaited = NULL;
    s->unwaited_tail = &s->unwaited;
    if (ops == NULL) return;
    /* Publishes sent on a connection since lost cannot be confirmed on
     * its successor: WAIT counts only its own connection's writes. */
    int same = hl_rlink_is_up(&s->cmd);
    for (hl_store_op *op = ops; same && op != NULL; op = op->next)
        if (op->gen != s->cmd_gen) same = 0;
    if (same &&
        redisAsyncCommand(s->cmd.ac, on_wait, ops, "WAIT %d %d", s->cfg->publish_wait_replicas,
                          s->cfg->publish_wait_timeout_ms) == REDIS_OK) {
        s->wait_out = 1;
        return;
    }
    answer_batch(s, ops, -1);
}

static void on_publish(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store_op *op = privdata;
    hl_store *s = op->s;
    redisReply *reply = reply_;
    hl_publish_result res = {0, HL_E_REDIS_ERROR, "unexpected reply", NULL, 0, 0};
    const char *id;
    size_t idlen;
    switch (hl_rreply_publish(reply, &id, &idlen)) {
    case HL_PUB_DUPLICATE: res.duplicate = 1; /* fall through */
    case HL_PUB_STORED:
        res.ok = 1;
        res.id = id;
        res.idlen = idlen;
        no_trouble(s);
        break;
    case HL_PUB_REFUSED:
        res.detail = reply->str;
        if (hl_rreply_readonly(reply)) {
            res.err = HL_E_REDIS_UNAVAILABLE;
            res.detail = "Redis's master was demoted to a replica; the node is finding the new "
                         "master. Nothing was stored: publish again";
        }
        refused(s, "a publish failed", reply);
        break;
    case HL_PUB_BAD:
        if (reply == NULL) {
            res.err = HL_E_REDIS_UNAVAILABLE;
            res.detail = "the Redis connection was lost; the message may not have been sent";
        }
        break;
    }
    if (!waits(s)) {
        if (!op->cancelled) ((hl_publish_cb *)op->cb)(op->ud, &res);
        free(op);
        return;
    }
    /* The batch's WAIT answers a stored message and frees the op. */
    if (res.ok && res.idlen < sizeof(op->id)) {
        memcpy(op->id, res.id, res.idlen);
        op->id[res.idlen] = '\0';
        op->duplicate = res.duplicate;
        op->state = PUB_STORED;
        return;
    }
    if (!op->cancelled) ((hl_publish_cb *)op->cb)(op->ud, &res);
    op->state = PUB_ANSWERED;
}

/* Sends a publish op. Returns HL_OK, or HL_ERR (op not sent, still the
 * caller's). */
static int send_publish(hl_store *s, hl_store_op *op, const char *data, size_t dlen,
                        const char *idem) {
    char key[HL_RKEY_MAX], ikey[HL_RKEY_MAX];
    hl_rkeys_stream(&s->keys, op->name, op->len, key);
    int rc;
    if (idem) {
        hl_rkeys_idem(&s->keys, op->name, op->len, idem, ikey);
        rc = redisAsyncCommand(s->cmd.ac, on_publish, op, "FCALL holdline_publish 2 %s %s %b", key,
                               ikey, data, dlen);
    } else {
        rc = redisAsyncCommand(s->cmd.ac, on_publish, op, "FCALL holdline_publish 1 %s %b", key,
                               data, dlen);
    }
    if (rc != REDIS_OK) return HL_ERR;
    if (waits(s)) {
        op->gen = s->cmd_gen;
        *s->unwaited_tail = op;
        s->unwaited_tail = &op->next;
        event_active(s->wait_ev, EV_TIMEOUT, 0);
    }
    return HL_OK;
}

/* Keeps a publish until the fence is lifted. */
static int hold_publish(hl_store *s, hl_store_op *op, const char *data, size_t dlen,
                        const char *idem) {
    op->data = malloc(dlen ? dlen : 1);
    op->idem = idem ? strdup(idem) : NULL;
    if (op->data == NULL || (idem && op->idem == NULL)) return HL_ERR;
    memcpy(op->data, data, dlen);
    op->dlen = dlen;
    *s->held_tail = op;
    s->held_tail = &op->next;
    return HL_OK;
}

hl_store_op *hl_store_publish(hl_store *s, const char *name, size_t len, const char *data,
                              size_t dlen, const char *idem, hl_publish_cb *cb, void *ud) {
    if (!s->fencing && !cmd_can_read(s)) return NULL;
    hl_store_op *op = op_new(s, OP_PUBLISH, name, len, (void *)cb, ud);
    if (op == NULL) return NULL;
    int rc =
        s->fencing ? hold_publish(s, op, data, dlen, idem) : send_publish(s, op, data, dlen, idem);
    if (rc != HL_OK) {
        free_op(op);
        return NULL;
    }
    return op;
}

/* Sends (or, with no command link to send on, refuses) what was held. */
static void release_held(hl_store *s) {
    hl_store_op *op = s->held;
    s->held = NULL;
    s->held_tail = &s->held;
    while (op != NULL) {
        hl_store_op *next = op->next;
        op->next = NULL;
        if (op->cancelled) {
            free_op(op);
        } else if (!cmd_can_read(s) || send_publish(s, op, op->data, op->dlen, op->idem) != HL_OK) {
            hl_publish_result res = {0,
                                     HL_E_REDIS_UNAVAILABLE,
                                     "a Redis failover is under way and the node is not yet on "
                                     "the new master; nothing was stored: publish again",
                                     NULL,
                                     0,
                                     0};
            ((hl_publish_cb *)op->cb)(op->ud, &res);
            free_op(op);
        } else {
            free(op->data);
            free(op->idem);
            op->data = op->idem = NULL;
        }
        op = next;
    }
}

static void unfence(hl_store *s, const char *why) {
    if (!s->fencing) return;
    s->fencing = 0;
    s->fence_moved = 0;
    evtimer_del(s->fence_timer);
    evtimer_del(s->fence_poll);
    hl_info("worker %d: publishing again (%s)", s->worker, why);
    release_held(s);
}

static void on_fence_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    hl_warn("worker %d: the failover the sentinels announced did not complete within %d ms",
            s->worker, FENCE_MAX_MS);
    unfence(s, "the failover did not complete in time");
}

static void on_fence_wait(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store *s = privdata;
    const redisReply *reply = reply_;
    s->fence_asking = 0;
    if (reply == NULL || !s->fencing) return; /* lost: the next ready asks again */
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= s->cfg->publish_wait_replicas) {
        unfence(s, "the links are on the new master, and its replicas confirm");
        return;
    }
    struct timeval tv = hl_ms_tv(20);
    evtimer_add(s->fence_poll, &tv);
}

/* A fence ends once the command link is ready on another master than
 * the one the failover was announced for, and (with wait_replicas) that
 * master's replicas confirm what the link wrote (the library load: a
 * replica listed online may still be loading a full resync), or
 * FENCE_REPLICAS_MS passed. */
static void fence_check(hl_store *s) {
    if (!s->fencing || !cmd_can_read(s) ||
        (s->fence_port == s->cmd.port && strcmp(s->fence_master, s->cmd.host) == 0))
        return;
    long long now = hl_mono_ms();
    if (s->fence_moved == 0) s->fence_moved = now;
    if (!waits(s)) {
        unfence(s, "the links are on the new master");
    } else if (now - s->fence_moved >= FENCE_REPLICAS_MS) {
        unfence(s, "the links are on the new master; fewer of its replicas than "
                   "publish.wait_replicas confirm yet");
    } else if (!s->fence_asking && redisAsyncCommand(s->cmd.ac, on_fence_wait, s, "WAIT %d 100",
                                                     s->cfg->publish_wait_replicas) == REDIS_OK) {
        s->fence_asking = 1;
    }
}

static void on_fence_poll(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    fence_check(arg);
}

/* The next space-separated word of p[*at..n) into out. */
static void next_word(const char *p, size_t n, size_t *at, char *out, size_t outlen) {
    while (*at < n && p[*at] == ' ')
        ++*at;
    size_t k = 0;
    while (*at < n && p[*at] != ' ') {
        if (k + 1 < outlen) out[k++] = p[*at];
        ++*at;
    }
    out[k] = '\0';
}

static void on_sentinel_event(void *ud, int from, const char *event, const char *p, size_t n) {
    hl_store *s = ud;
    char w[5][256];
    size_t at = 0;
    for (int i = 0; i < 5; i++)
        next_word(p, n, &at, w[i], sizeof(w[i]));
    if (strcmp(event, "+switch-master") == 0) {
        /* "<name> <old ip> <old port> <new ip> <new port>" */
        if (strcmp(w[0], s->cfg->redis_master_name) != 0) return;
        hl_info("worker %d: sentinel %s: the master is now %s:%s", s->worker,
                s->cfg->redis_sentinels[from], w[3], w[4]);
        int port = atoi(w[4]);
        hl_rlink *links[] = {&s->sub, &s->cmd};
        for (int i = 0; i < 2; i++) {
            hl_rlink *l = links[i];
            if (hl_rlink_is_up(l) && strcmp(l->host, w[3]) == 0 && l->port == port) continue;
            hl_rlink_move(l, w[3], port, "a sentinel announced a new master");
        }
        fence_check(s);
        return;
    }
    /* "master <name> <ip> <port> ..." */
    if (strcmp(w[0], "master") != 0 || strcmp(w[1], s->cfg->redis_master_name) != 0) return;
    if (strcmp(event, "+try-failover") == 0) {
        if (s->fencing == 0) {
            hl_info("worker %d: sentinel %s starts a failover of %s; publishes are held until "
                    "the links are on the new master",
                    s->worker, s->cfg->redis_sentinels[from], w[1]);
            snprintf(s->fence_master, sizeof(s->fence_master), "%s", s->cmd.host);
            s->fence_port = s->cmd.port;
            struct timeval tv = hl_ms_tv(FENCE_MAX_MS);
            evtimer_add(s->fence_timer, &tv);
        }
        s->fencing |= 1u << from;
    } else if (s->fencing & (1u << from)) {
        /* One of that sentinel's -failover-abort-* events; another may
         * still be failing over. */
        if (s->fencing == (1u << from))
            unfence(s, event);
        else
            s->fencing &= ~(1u << from);
    }
}

static void on_info(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store_op *op = privdata;
    hl_store *s = op->s;
    const redisReply *reply = reply_;
    hl_info_result res = {0, HL_E_REDIS_ERROR, "unexpected reply", {0}};
    uint64_t epoch;
    const redisReply *entries;
    if (hl_rreply_read(reply, &res.st, &epoch, &entries) == HL_OK) {
        res.ok = 1;
        no_trouble(s);
        adopt_epoch(s, epoch);
    } else if (reply == NULL) {
        res.err = HL_E_REDIS_UNAVAILABLE;
        res.detail = "the Redis connection was lost";
    } else {
        if (reply->type == REDIS_REPLY_ERROR) res.detail = reply->str;
        if (hl_rreply_library_missing(reply)) refused(s, "a channel read failed", reply);
    }
    if (!op->cancelled) ((hl_info_cb *)op->cb)(op->ud, &res);
    free(op);
}

hl_store_op *hl_store_info(hl_store *s, const char *name, size_t len, hl_info_cb *cb, void *ud) {
    if (!cmd_can_read(s)) return NULL;
    hl_store_op *op = op_new(s, OP_INFO, name, len, (void *)cb, ud);
    if (op == NULL) return NULL;
    char key[HL_RKEY_MAX];
    hl_rkeys_stream(&s->keys, name, len, key);
    if (redisAsyncCommand(s->cmd.ac, on_info, op, "FCALL holdline_read 2 %s %s + 0 %s", key,
                          s->keys.epoch, s->epoch_mine) != REDIS_OK) {
        free(op);
        return NULL;
    }
    return op;
}

/* ---- Life ------------------------------------------------------------- */

hl_store *hl_store_new(const hl_config *cfg, struct event_base *base, int worker,
                       const hl_store_events *ev, void *ud, char *err, size_t errlen) {
    hl_store *s = calloc(1, sizeof(*s));
    if (s == NULL) goto oom;
    s->cfg = cfg;
    s->base = base;
    s->worker = worker;
    s->ev = *ev;
    s->ud = ud;
    hl_rkeys_init(&s->keys, cfg->redis_prefix, cfg->node_name, worker);
    new_proposal(s);
    s->retry = evtimer_new(base, on_retry, s);
    s->tick = event_new(base, -1, EV_PERSIST, on_tick, s);
    s->canary = event_new(base, -1, EV_PERSIST, on_canary, s);
    s->wait_ev = event_new(base, -1, 0, on_wait_turn, s);
    s->watch_timer = event_new(base, -1, EV_PERSIST, on_watch_timer, s);
    s->unwaited_tail = &s->unwaited;
    s->held_tail = &s->held;
    s->fence_timer = evtimer_new(base, on_fence_timer, s);
    s->fence_poll = evtimer_new(base, on_fence_poll, s);
    if (s->fence_timer == NULL || s->fence_poll == NULL ||
        hl_sentinel_feed_init(&s->feed, cfg, base, on_sentinel_event, s) != HL_OK)
        goto oom;
    if (s->retry == NULL || s->tick == NULL || s->canary == NULL || s->wait_ev == NULL ||
        s->watch_timer == NULL || hl_sentinel_init(&s->watch, cfg, base) != HL_OK)
        goto oom;
    s->m = &hl_metrics_void;
    snprintf(s->canary_why, sizeof(s->canary_why),
             "probes published through Redis have not come back on the subscriber link for %d "
             "ms; reconnecting it",
             cfg->redis_canary_timeout_ms);
    if (hl_rlink_init(&s->sub, "subscriber", cfg, base, sub_up, sub_down, s) != HL_OK ||
        hl_rlink_init(&s->cmd, "command", cfg, base, cmd_up, cmd_down, s) != HL_OK)
        goto oom;
    hl_rlink_set_pattern(&s->sub, s->keys.hb);
    char name[128];
    hl_rkeys_client_name(&s->keys, "sub", name, sizeof(name));
    hl_rlink_set_client_name(&s->sub, name);
    hl_rkeys_client_name(&s->keys, "cmd", name, sizeof(name));
    hl_rlink_set_client_name(&s->cmd, name);
    return s;
oom:
    hl_set_error(err, errlen, "out of memory");
    hl_store_free(s);
    return NULL;
}

void hl_store_start(hl_store *s) {
    hl_rlink_start(&s->sub);
    hl_rlink_start(&s->cmd);
    /* Often enough that a quiet channel's head is never near a TTL old. */
    long long ms = (long long)s->cfg->history_ttl * 1000 / 4;
    if (ms < 250) ms = 250;
    if (ms > 300000) ms = 300000;
    struct timeval tv = hl_ms_tv(ms);
    event_add(s->tick, &tv);
    struct timeval ctv = hl_ms_tv(s->cfg->redis_canary_ms);
    event_add(s->canary, &ctv);
    if (s->cmd.sentinel) {
        struct timeval wtv = hl_ms_tv(s->cfg->redis_sentinel_check_ms);
        event_add(s->watch_timer, &wtv);
        hl_sentinel_feed_start(&s->feed);
    }
}

void hl_store_stop(hl_store *s) {
    hl_sentinel_cancel(&s->watch);
    if (s->watch_timer) event_del(s->watch_timer);
    hl_sentinel_feed_stop(&s->feed);
    hl_rlink_stop(&s->cmd);
    hl_rlink_stop(&s->sub);
    /* Held publishes are refused now that nothing can send them. */
    unfence(s, "the node is stopping");
    /* Publishes whose WAIT was not sent yet. */
    if (s->wait_ev) on_wait_turn(-1, 0, s);
    if (s->tick) event_del(s->tick);
    if (s->canary) event_del(s->canary);
    if (s->retry) evtimer_del(s->retry);
}

void hl_store_free(hl_store *s) {
    if (s == NULL) return;
    hl_store_stop(s);
    if (s->tick) event_free(s->tick);
    if (s->canary) event_free(s->canary);
    if (s->retry) event_free(s->retry);
    if (s->wait_ev) event_free(s->wait_ev);
    if (s->fence_timer) event_free(s->fence_timer);
    if (s->fence_poll) event_free(s->fence_poll);
    if (s->watch_timer) event_free(s->watch_timer);
    hl_sentinel_free(&s->watch);
    free(s);
}
