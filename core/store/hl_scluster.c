/* hl_scluster.c -- cluster mode: the slot map, asked for and applied,
 * and what a master's redirection of a command means.
 *
 * The map is asked for (CLUSTER SLOTS) on a connection of its own, from
 * the masters known and then the seeds (redis.cluster_nodes) in turn, at
 * start, every redis.cluster_refresh_ms, and soon after anything that
 * says it changed: a MOVED, an ASK's end, a subscription Redis ended, a
 * link lost. Applying it makes a shard (two links) for each master new to
 * it, and retires the shards of masters that serve no slot any more. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_rconn.h"
#include "hl_rreply.h"
#include "hl_store_int.h"
#include "hl_time.h"

/* Refreshes asked for by events come at most this often. */
#define REFRESH_MIN_MS 100
/* How often a command TRYAGAIN refused is sent again, and how many
 * times: 3 s, within a publish's 5 s. A publish with an Idempotency-Key
 * names two keys, and while its slot migrates Redis runs it only once
 * both are on one side: with the stream moved and the key new, not until
 * the migration ends. */
#define TRYAGAIN_MS 50
#define TRYAGAIN_TRIES 60
/* One CLUSTER SLOTS reply holds at most this many ranges. */
#define MAX_RANGES 4096
/* Texts readiness keeps (other threads read the one handed out last). */
#define WHY_RING 4

typedef struct hl_mapask {
    hl_store *s;
    redisAsyncContext *ac; /* the node being asked; NULL between */
    struct event *timer;   /* its time is up */
    int active;            /* a round is running */
    int again;             /* another round was asked for during this one */
    int at, count;         /* the candidate being asked, and how many there are */
    char cand[HL_MAX_SHARDS + HL_CONFIG_MAX_CLUSTER_SEEDS][262];
    char why[600];        /* what the candidates asked so far did wrong */
    long long last;       /* monotonic ms the last round started */
    int down_ms;          /* while a master is unreachable: the pace of rounds */
    long long down_since; /* monotonic ms a round first found one (0: none is) */
    struct event *soon;   /* the next round, REFRESH_MIN_MS after the last */
    hl_store_op *later;   /* ops refused with TRYAGAIN, sent again by `retry` */
    struct event *retry;
    char ring[WHY_RING][600]; /* readiness texts */
    int ring_at;
    char dring[WHY_RING][800]; /* degraded texts */
    int dring_at;
} hl_mapask;

static void ask_next(hl_mapask *q);

/* ---- Shards by address -------------------------------------------------- */

static hl_shard *find_shard(hl_store *s, const char *host, int port) {
    for (int i = 0; i < HL_MAX_SHARDS; i++) {
        hl_shard *sh = s->shard[i];
        if (sh && !sh->retired && sh->port == port && strcmp(sh->host, host) == 0) return sh;
    }
    return NULL;
}

/* The shard of master host:port, made (and started) if new. */
static hl_shard *shard_at(hl_store *s, const char *host, int port) {
    hl_shard *sh = find_shard(s, host, port);
    if (sh) return sh;
    sh = hl__shard_new(s, host, port);
    if (sh == NULL) {
        hl_error("worker %d: cannot take on Redis master %s:%d (at most %d masters, or out of "
                 "memory)",
                 s->worker, host, port, HL_MAX_SHARDS);
        return NULL;
    }
    hl_info("worker %d: connecting to Redis Cluster master %s:%d", s->worker, host, port);
    return sh;
}

/* Picks sh's control channel: in the first slot it serves. */
void hl__cluster_pick_ctl(hl_shard *sh) {
    hl_store *s = sh->s;
    unsigned slot = HL_SLOTS;
    for (unsigned i = 0; i < HL_SLOTS && slot == HL_SLOTS; i++)
        if (s->owner[i] == sh->idx) slot = i;
    if (slot == HL_SLOTS) return;
    char ctl[HL_RKEY_MAX];
    hl_rkeys_slot_ctl(&s->keys, s->tags->tag[slot], ctl);
    if (strcmp(ctl, sh->ctl) == 0) return;
    snprintf(sh->ctl, sizeof(sh->ctl), "%s", ctl);
    sh->ctl_slot = slot;
    sh->ctl_live = 0;
    sh->canary_ok = 0;
    /* A new channel: the old one's slot went elsewhere (Redis ended it). */
    if (hl_slink_is_up(&sh->ssub) && sh->sub_gen)
        hl_slink_subscribe(&sh->ssub, sh->ctl, strlen(sh->ctl));
}

/* ---- Applying a map ------------------------------------------------------- */

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        if (s->shard[i] && s->shard[i]->retired) hl__shard_free(s->shard[i]);
}

static void retire(hl_shard *sh) {
    hl_store *s = sh->s;
    hl_info("worker %d: Redis at %s:%d serves no slot any more; closing its links", s->worker,
            sh->host, sh->port);
    sh->retired = 1;
    unsigned link = sh->sub_gen;
    sh->sub_gen = 0;
    if (link) s->ev.sub_down(s->ud, link);
    /* Its links are stopped outside the callback this runs in. */
    event_active(s->sweep, EV_TIMEOUT, 0);
}

static void apply_map(hl_store *s, const hl_slot_range *r, int n) {
    unsigned char owner[HL_SLOTS];
    memset(owner, HL_NO_SHARD, sizeof(owner));
    hl_shard *fresh[HL_MAX_SHARDS];
    int nfresh = 0;
    for (int i = 0; i < n; i++) {
        hl_shard *sh = find_shard(s, r[i].host, r[i].port);
        if (sh == NULL && (sh = shard_at(s, r[i].host, r[i].port)) != NULL) fresh[nfresh++] = sh;
        if (sh == NULL) continue;
        for (unsigned k = r[i].lo; k <= r[i].hi; k++)
            owner[k] = (unsigned char)sh->idx;
    }
    int moved = memcmp(owner, s->owner, sizeof(owner)) != 0;
    memcpy(s->owner, owner, sizeof(owner));
    int serving[HL_MAX_SHARDS] = {0};
    for (unsigned k = 0; k < HL_SLOTS; k++)
        if (owner[k] != HL_NO_SHARD) serving[owner[k]] = 1;
    for (int i = 0; i < HL_MAX_SHARDS; i++) {
        hl_shard *sh = s->shard[i];
        if (sh == NULL || sh->retired) continue;
        if (!serving[i]) {
            retire(sh);
            continue;
        }
        hl__cluster_pick_ctl(sh);
    }
    for (int i = 0; i < nfresh; i++)
        hl__shard_start(fresh[i]);
    int masters = 0;
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        masters += serving[i];
    if (!s->map_loaded || moved)
        hl_info("worker %d: Redis Cluster slot map: %d ranges on %d masters", s->worker, n,
                masters);
    s->map_loaded = 1;
    /* Channels not subscribed anywhere (their master changed) are
     * subscribed where the map says, and read again. */
    s->ev.sub_up(s->ud);
    s->ev.ready(s->ud);
    s->ev.state(s->ud);
}

/* ---- Asking for the map ---------------------------------------------------- */

static void note(hl_mapask *q, const char *what) {
    size_t n = strlen(q->why);
    if (n + 4 >= sizeof(q->why)) return;
    snprintf(q->why + n, sizeof(q->why) - n, "%s%s: %s", n ? "; " : "", q->cand[q->at], what);
}

static void let_go(hl_mapask *q, int in_callback) {
    redisAsyncContext *ac = q->ac;
    evtimer_del(q->timer);
    if (ac == NULL) return;
    q->ac = NULL;
    ac->data = NULL;
    if (in_callback)
        redisAsyncDisconnect(ac);
    else
        redisAsyncFree(ac);
}

/* A master that serves slots and cannot be reached may have been
 * failed over: until the map says so, it is asked for every
 * DOWN_REFRESH_MS for DOWN_FAST_MS (a replica takes over in about
 * cluster-node-timeout + 1 s), then half as often each time, up to
 * redis.cluster_refresh_ms. */
#define DOWN_REFRESH_MS 250
#define DOWN_FAST_MS 15000

static int master_down(const hl_store *s) {
    for (unsigned k = 0; k < HL_SLOTS; k++) {
        const hl_shard *sh = s->owner[k] == HL_NO_SHARD ? NULL : s->shard[s->owner[k]];
        if (sh && !hl_rlink_is_up(&sh->cmd) && (sh->cmd_ever || sh->cmd.failures > 0)) return 1;
        /* Skip the rest of this master's run of slots. */
        while (k + 1 < HL_SLOTS && s->owner[k + 1] == s->owner[k])
            k++;
    }
    return 0;
}

static void round_over(hl_mapask *q) {
    q->active = 0;
    if (q->again) {
        q->again = 0;
        hl__cluster_refresh(q->s, NULL);
    } else if (!master_down(q->s)) {
        q->down_since = 0;
        q->down_ms = 0;
    } else if (!evtimer_pending(q->soon, NULL)) {
        long long now = hl_mono_ms();
        if (q->down_since == 0) q->down_since = now;
        if (now - q->down_since < DOWN_FAST_MS)
            q->down_ms = DOWN_REFRESH_MS;
        else if ((q->down_ms *= 2) > q->s->cfg->redis_cluster_refresh_ms)
            q->down_ms = q->s->cfg->redis_cluster_refresh_ms;
        struct timeval tv = hl_ms_tv(q->down_ms);
        evtimer_add(q->soon, &tv);
    }
}

static void failed(hl_mapask *q, const char *what, int in_callback) {
    note(q, what);
    let_go(q, in_callback);
    if (++q->at < q->count) {
        ask_next(q);
        return;
    }
    hl_store *s = q->s;
    if (!s->map_loaded || s->map_why[0] == '\0')
        hl_warn("worker %d: no Redis Cluster node answered CLUSTER SLOTS (%s); asking again",
                s->worker, q->why);
    snprintf(s->map_why, sizeof(s->map_why), "no Redis Cluster node answers CLUSTER SLOTS (%.200s)",
             q->why);
    round_over(q);
    s->ev.state(s->ud);
    /* Asked again at the pace of reconnects. */
    struct timeval tv = hl_ms_tv(s->cfg->redis_reconnect_max_ms);
    evtimer_add(q->soon, &tv);
}

static void on_slots(redisAsyncContext *ac, void *reply_, void *privdata) {
    hl_mapask *q = privdata;
    const redisReply *reply = reply_;
    if (q->ac != ac) return;
    if (reply == NULL) {
        q->ac = NULL;
        failed(q, ac->errstr[0] ? ac->errstr : "connection lost", 0);
        return;
    }
    hl_slot_range *ranges = malloc(sizeof(*ranges) * MAX_RANGES);
    if (ranges == NULL) {
        failed(q, "out of memory", 1);
        return;
    }
    char host[sizeof(q->cand[0])];
    snprintf(host, sizeof(host), "%s", q->cand[q->at]);
    char *colon = strrchr(host, ':');
    if (colon) *colon = '\0';
    int n = hl_rreply_cluster_slots(reply, host, ranges, MAX_RANGES);
    if (n < 0) {
        char what[200];
        snprintf(what, sizeof(what), "%.150s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str
                                                  : "an answer that is not a slot map");
        free(ranges);
        failed(q, what, 1);
        return;
    }
    let_go(q, 1);
    hl_store *s = q->s;
    if (s->map_why[0])
        hl_info("worker %d: a Redis Cluster node answers CLUSTER SLOTS again", s->worker);
    s->map_why[0] = '\0';
    apply_map(s, ranges, n);
    free(ranges);
    round_over(q);
}

static void on_auth(redisAsyncContext *ac, void *reply_, void *privdata) {
    hl_mapask *q = privdata;
    const redisReply *reply = reply_;
    if (q->ac != ac || reply == NULL || reply->type != REDIS_REPLY_ERROR) return;
    char what[160];
    snprintf(what, sizeof(what), "refused AUTH: %.100s", reply->str);
    failed(q, what, 1);
}

static void on_connect(const redisAsyncContext *cac, int status) {
    hl_mapask *q = cac->data;
    if (q == NULL || q->ac != cac || status == REDIS_OK) return;
    char what[160];
    snprintf(what, sizeof(what), "%.150s", cac->errstr[0] ? cac->errstr : "connect failed");
    q->ac = NULL;
    failed(q, what, 0);
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
    (void)cac;
    (void)status;
    /* A lost connection's pending reply came first, with NULL. */
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_mapask *q = arg;
    if (q->ac) failed(q, "no answer in time", 0);
}

static void ask_next(hl_mapask *q) {
    char err[200];
    redisAsyncContext *ac = hl_rconn_open_addr(q->s->base, q->cand[q->at], q, on_connect,
                                               on_disconnect, err, sizeof(err));
    if (ac == NULL) {
        failed(q, err, 0);
        return;
    }
    q->ac = ac;
    const hl_config *cfg = q->s->cfg;
    if (cfg->redis_password[0]) redisAsyncCommand(ac, on_auth, q, "AUTH %s", cfg->redis_password);
    redisAsyncCommand(ac, on_slots, q, "CLUSTER SLOTS");
    struct timeval tv = hl_ms_tv(cfg->redis_connect_timeout_ms);
    evtimer_add(q->timer, &tv);
}

/* A round: the masters known (up first), then the seeds. */
static void start_round(hl_mapask *q) {
    hl_store *s = q->s;
    q->active = 1;
    q->why[0] = '\0';
    q->at = q->count = 0;
    q->last = hl_mono_ms();
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < HL_MAX_SHARDS; i++) {
            hl_shard *sh = s->shard[i];
            if (sh == NULL || sh->retired || hl_rlink_is_up(&sh->cmd) != (pass == 0)) continue;
            snprintf(q->cand[q->count++], sizeof(q->cand[0]), "%s:%d", sh->host, sh->port);
        }
    for (int i = 0; i < s->cfg->redis_cluster_nodes_count; i++)
        snprintf(q->cand[q->count++], sizeof(q->cand[0]), "%s", s->cfg->redis_cluster_nodes[i]);
    ask_next(q);
}

static void on_soon(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_mapask *q = arg;
    if (q->active) {
        q->again = 1;
        return;
    }
    start_round(q);
}

void hl__cluster_refresh(hl_store *s, const char *why) {
    hl_mapask *q = s->ask;
    if (q == NULL) return;
    if (why) hl_debug("worker %d: asking for the slot map again: %s", s->worker, why);
    if (q->active) {
        q->again = 1;
        return;
    }
    if (evtimer_pending(q->soon, NULL)) return;
    long long wait = q->last + REFRESH_MIN_MS - hl_mono_ms();
    struct timeval tv = hl_ms_tv(wait > 0 ? wait : 0);
    evtimer_add(q->soon, &tv);
}

static void on_refresh(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl__cluster_refresh(arg, NULL);
}

/* ---- Redirections ------------------------------------------------------------ */

/* Answers op with a failure (or just frees it, if cancelled). */
static void op_fail(hl_store_op *op, const char *detail) {
    if (!op->cancelled) {
        if (op->kind == HL_OP_READ) {
            hl_read_result res;
            memset(&res, 0, sizeof(res));
            ((hl_read_cb *)op->cb)(op->ud, &res);
        } else if (op->kind == HL_OP_INFO) {
            hl_info_result res = {0, HL_E_REDIS_UNAVAILABLE, detail, {0}};
            ((hl_info_cb *)op->cb)(op->ud, &res);
        } else {
            hl_publish_result res = {0, HL_E_REDIS_UNAVAILABLE, detail, NULL, 0, 0};
            ((hl_publish_cb *)op->cb)(op->ud, &res);
        }
    }
    hl__op_free(op);
}

/* Sends op to sh (after ASKING when asking). HL_OK or HL_ERR. */
static int resend(hl_shard *sh, hl_store_op *op, int asking) {
    if (!hl__shard_can_read(sh)) return HL_ERR;
    if (asking) redisAsyncCommand(sh->cmd.ac, NULL, NULL, "ASKING");
    return op->kind == HL_OP_PUBLISH ? hl__send_publish(sh, op) : hl__send_read(sh, op);
}

static void on_retry_later(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    hl_store_op *op = s->ask->later;
    s->ask->later = NULL;
    while (op) {
        hl_store_op *next = op->next;
        op->next = NULL;
        if (op->cancelled || resend(hl__shard_of(s, op->slot), op, 0) != HL_OK)
            op_fail(op, "the channel's Redis Cluster slot is being moved; nothing was stored: "
                        "publish again");
        op = next;
    }
}

int hl__cluster_redirect(hl_shard *sh, hl_store_op *op, const redisReply *reply) {
    hl_store *s = sh->s;
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || op->tries >= TRYAGAIN_TRIES) return 0;
    if (hl_rreply_library_missing(reply)) {
        /* A master without the library: one that took over a slot by
         * a migration, or was flushed. Loaded, then the op again (the
         * link runs them in order). */
        if (op->hops++ >= 3 || !hl_rlink_is_up(&sh->cmd)) return 0;
        hl_warn("worker %d: Redis at %s:%d has no holdline Function library; loading it", s->worker,
                sh->host, sh->port);
        if (!sh->loading) hl__load_library(sh);
        sh->cmd_ready = 1; /* the op goes behind the load */
        int rc = resend(sh, op, op->asked);
        sh->cmd_ready = 0;
        return rc == HL_OK;
    }
    unsigned slot;
    char host[256];
    int port;
    hl_redirect k =
        hl_rreply_redirect(reply->str, reply->len, sh->host, &slot, host, sizeof(host), &port);
    switch (k) {
    case HL_REDIR_NONE: return 0;
    case HL_REDIR_MOVED: {
        hl__cluster_refresh(s, "a master answered MOVED");
        hl_shard *to = shard_at(s, host, port);
        if (to == NULL || op->hops++ >= 2) return 0;
        int fresh = !to->cmd_ever && to->cmd.ac == NULL;
        s->owner[slot] = (unsigned char)to->idx;
        if (fresh) {
            hl__cluster_pick_ctl(to);
            hl__shard_start(to);
        }
        op->asked = 0;
        return resend(to, op, 0) == HL_OK;
    }
    case HL_REDIR_ASK: {
        hl_shard *to = shard_at(s, host, port);
        if (to == NULL || op->hops++ >= 3) return 0;
        if (!to->cmd_ever && to->cmd.ac == NULL) hl__shard_start(to);
        op->asked = 1;
        return resend(to, op, 1) == HL_OK;
    }
    case HL_REDIR_TRYAGAIN:
        /* Sent again from the start: to the slot's master, which may
         * redirect it again. */
        op->tries++;
        op->hops = 0;
        op->asked = 0;
        op->next = s->ask->later;
        s->ask->later = op;
        if (!evtimer_pending(s->ask->retry, NULL)) {
            struct timeval tv = hl_ms_tv(TRYAGAIN_MS);
            evtimer_add(s->ask->retry, &tv);
        }
        return 1;
    case HL_REDIR_CLUSTERDOWN: hl__cluster_refresh(s, "a master answered CLUSTERDOWN"); return 0;
    }
    return 0;
}

/* ---- Readiness ------------------------------------------------------------ */

/* Puts text in the next slot of a ring unless it is already the newest
 * one, and returns the newest. */
static const char *ring_put(char (*ring)[600], int *at, const char *text) {
    if (strcmp(ring[*at], text) != 0) {
        *at = (*at + 1) % WHY_RING;
        snprintf(ring[*at], sizeof(ring[0]), "%s", text);
    }
    return ring[*at];
}

const char *hl__cluster_not_ready(const hl_store *cs) {
    hl_store *s = (hl_store *)cs; /* the texts are the store's own scratch */
    hl_mapask *q = s->ask;
    if (!s->map_loaded)
        return ring_put(q->ring, &q->ring_at,
                        s->map_why[0] ? s->map_why : "asking the Redis Cluster for its slot map");
    char down[400] = "", text[600];
    size_t dn = 0;
    int serving = 0, owns[HL_MAX_SHARDS] = {0};
    unsigned unserved = 0;
    for (unsigned k = 0; k < HL_SLOTS; k++) {
        if (s->owner[k] == HL_NO_SHARD)
            unserved++;
        else
            owns[s->owner[k]] = 1;
    }
    for (int i = 0; i < HL_MAX_SHARDS; i++) {
        hl_shard *sh = s->shard[i];
        /* A master serving no slot (an ASK's target) does not count. */
        if (sh == NULL || sh->retired || !owns[i]) continue;
        const char *why = hl__shard_not_ready(sh);
        if (why == NULL) {
            sh->ever_ready = 1;
            serving++;
            continue;
        }
        /* A master that has failed to answer is left to the others
         * (degraded); one still coming up (first connect, library,
         * subscriptions) makes the node wait. */
        int lost = !hl_rlink_is_up(&sh->cmd) || !hl_slink_is_up(&sh->ssub);
        if (lost && (sh->ever_ready || sh->cmd.failures > 0)) {
            if (dn + 300 < sizeof(down))
                dn += (size_t)snprintf(down + dn, sizeof(down) - dn, "%s%s:%d", dn ? ", " : "",
                                       sh->host, sh->port);
            continue;
        }
        snprintf(text, sizeof(text), "Redis master %s:%d: %s", sh->host, sh->port, why);
        s->degraded_why[0] = '\0';
        return ring_put(q->ring, &q->ring_at, text);
    }
    char d[800] = "";
    if (dn)
        snprintf(d, sizeof(d),
                 "Redis master%s %s unreachable: the channels in %s slots wait, the others are "
                 "served",
                 strchr(down, ',') ? "s" : "", down, strchr(down, ',') ? "their" : "its");
    else if (unserved)
        snprintf(d, sizeof(d),
                 "%u of the 16384 Redis Cluster slots are served by no master: their channels "
                 "wait, the others are served",
                 unserved);
    if (strcmp(d, q->dring[q->dring_at]) != 0) {
        q->dring_at = (q->dring_at + 1) % WHY_RING;
        snprintf(q->dring[q->dring_at], sizeof(q->dring[0]), "%s", d);
    }
    snprintf(s->degraded_why, sizeof(s->degraded_why), "%s", q->dring[q->dring_at]);
    if (serving == 0)
        return ring_put(q->ring, &q->ring_at,
                        dn ? "no Redis Cluster master answers" : "no Redis Cluster master yet");
    return NULL;
}

/* ---- Life ------------------------------------------------------------------ */

int hl__cluster_init(hl_store *s) {
    memset(s->owner, HL_NO_SHARD, sizeof(s->owner));
    s->slot_epoch = calloc(HL_SLOTS, sizeof(*s->slot_epoch));
    s->tags = malloc(sizeof(*s->tags));
    s->ask = calloc(1, sizeof(*s->ask));
    if (s->slot_epoch == NULL || s->tags == NULL || s->ask == NULL) return HL_ERR;
    hl_slot_tags_build(s->tags);
    hl_mapask *q = s->ask;
    q->s = s;
    q->timer = evtimer_new(s->base, on_timer, q);
    q->soon = evtimer_new(s->base, on_soon, q);
    q->retry = evtimer_new(s->base, on_retry_later, s);
    s->refresh = event_new(s->base, -1, EV_PERSIST, on_refresh, s);
    s->sweep = event_new(s->base, -1, 0, on_sweep, s);
    return q->timer && q->soon && q->retry && s->refresh && s->sweep ? HL_OK : HL_ERR;
}

void hl__cluster_start(hl_store *s) {
    start_round(s->ask);
    struct timeval tv = hl_ms_tv(s->cfg->redis_cluster_refresh_ms);
    event_add(s->refresh, &tv);
}

void hl__cluster_stop(hl_store *s) {
    hl_mapask *q = s->ask;
    if (q == NULL) return;
    let_go(q, 0);
    q->active = 0;
    if (q->soon) evtimer_del(q->soon);
    if (s->refresh) event_del(s->refresh);
    if (q->retry) evtimer_del(q->retry);
    hl_store_op *op = q->later;
    q->later = NULL;
    while (op) {
        hl_store_op *next = op->next;
        op_fail(op, "the node is stopping");
        op = next;
    }
}

void hl__cluster_free(hl_store *s) {
    hl_mapask *q = s->ask;
    if (q) {
        hl__cluster_stop(s);
        if (q->timer) event_free(q->timer);
        if (q->soon) event_free(q->soon);
        if (q->retry) event_free(q->retry);
        free(q);
    }
    if (s->refresh) event_free(s->refresh);
    if (s->sweep) event_free(s->sweep);
    free(s->tags);
    free(s->slot_epoch);
}
