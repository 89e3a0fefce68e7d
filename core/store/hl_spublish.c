/* hl_spublish.c -- publishing: the FCALL, its reply, WAIT for replicas,
 * and in sentinel mode the hold of publishes while a failover is under
 * way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_rreply.h"
#include "hl_store_int.h"
#include "hl_time.h"

/* The longest publishes are held for a failover announced by a sentinel
 * (one that never completes: the sentinels gave up, or their events were
 * lost). */
#define FENCE_MAX_MS 10000
/* How long, once on the new master, publishes stay held for
 * publish.wait_replicas of its replicas to confirm (a replica re-pointed
 * at it may be resyncing; WAIT would only refuse them meanwhile). */
#define FENCE_REPLICAS_MS 2000

/* A publish under WAIT. */
enum { PUB_SENT = 0, PUB_STORED, PUB_ANSWERED };

static int waits(const hl_store *s) {
    return s->cfg->publish_wait_replicas > 0;
}

/* ---- WAIT ---------------------------------------------------------------- */

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
        hl__op_free(op);
    }
}

static void on_wait(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store_op *ops = privdata;
    hl_shard *sh = ops->sh;
    const redisReply *reply = reply_;
    sh->wait_out = 0;
    /* What was published meanwhile gets the next WAIT. */
    if (sh->unwaited) event_active(sh->wait_ev, EV_TIMEOUT, 0);
    answer_batch(sh->s, ops, reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1);
}

/* One WAIT after the publishes stored in a loop turn: it covers every
 * write this connection made before it, so it confirms them all at once. While one
 * is in flight (Redis holds the connection's later commands until it
 * answers) the publishes that follow gather for the next, so a busy link
 * sends one WAIT per replication round trip, not one per turn. Each
 * shard (master) has its own. */
void hl__wait_turn(hl_shard *sh) {
    hl_store *s = sh->s;
    if (sh->wait_out && hl_rlink_is_up(&sh->cmd)) return; /* on_wait calls again */
    hl_store_op *ops = sh->unwaited;
    sh->unwaited = NULL;
    sh->unwaited_tail = &sh->unwaited;
    if (ops == NULL) return;
    /* Publishes sent on a connection since lost cannot be confirmed on
     * its successor: WAIT counts only its own connection's writes. */
    int same = hl_rlink_is_up(&sh->cmd);
    for (hl_store_op *op = ops; same && op != NULL; op = op->next)
        if (op->gen != sh->cmd_gen) same = 0;
    if (same &&
        redisAsyncCommand(sh->cmd.ac, on_wait, ops, "WAIT %d %d", s->cfg->publish_wait_replicas,
                          s->cfg->publish_wait_timeout_ms) == REDIS_OK) {
        sh->wait_out = 1;
        return;
    }
    answer_batch(s, ops, -1);
}

void hl__on_wait_turn(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl__wait_turn(arg);
}

void hl__wait_flush(hl_shard *sh) {
    hl_store_op *ops = sh->unwaited;
    sh->unwaited = NULL;
    sh->unwaited_tail = &sh->unwaited;
    if (ops) answer_batch(sh->s, ops, -1);
}

/* ---- Publishing ------------------------------------------------------------ */

static void on_publish(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store_op *op = privdata;
    hl_shard *sh = op->sh;
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
        hl__no_trouble(sh);
        break;
    case HL_PUB_REFUSED:
        /* MOVED, ASK, TRYAGAIN: sent again where the slot is, and this
         * reply is not the answer. */
        if (s->cluster && !op->cancelled && s->hooks.redirect(sh, op, reply)) return;
        res.detail = reply->str;
        if (hl_rreply_readonly(reply)) {
            res.err = HL_E_REDIS_UNAVAILABLE;
            res.detail = "Redis's master was demoted to a replica; the node is finding the new "
                         "master. Nothing was stored: publish again";
        }
        if (s->cluster && reply->type == REDIS_REPLY_ERROR) {
            unsigned slot;
            char host[256];
            int port;
            if (hl_rreply_redirect(reply->str, reply->len, sh->host, &slot, host, sizeof(host),
                                   &port) != HL_REDIR_NONE) {
                res.err = HL_E_REDIS_UNAVAILABLE;
                res.detail = "the channel's Redis Cluster slot is moving or not served; nothing "
                             "was stored: publish again";
            }
        }
        hl__refused(sh, "a publish failed", reply);
        break;
    case HL_PUB_BAD:
        if (reply == NULL) {
            res.err = HL_E_REDIS_UNAVAILABLE;
            res.detail = "the Redis connection was lost; the message may not have been sent";
        }
        break;
    }
    /* A stored message waits for the WAIT of its connection, which
     * answers it and frees the op. Outside cluster mode it joined the
     * batch when it was sent, so the WAIT went right behind it; in
     * cluster mode, where a redirection sends it again elsewhere, it
     * joins the batch of the connection that stored it, and the WAIT
     * goes after this reply, so it covers the write. */
    if (waits(s) && res.ok && res.idlen < sizeof(op->id)) {
        memcpy(op->id, res.id, res.idlen);
        op->id[res.idlen] = '\0';
        op->duplicate = res.duplicate;
        op->state = PUB_STORED;
        if (op->pipelined) return;
        op->gen = sh->cmd_gen;
        *sh->unwaited_tail = op;
        sh->unwaited_tail = &op->next;
        event_active(sh->wait_ev, EV_TIMEOUT, 0);
        return;
    }
    if (op->pipelined) {
        /* Its batch frees it. */
        if (!op->cancelled) ((hl_publish_cb *)op->cb)(op->ud, &res);
        op->state = PUB_ANSWERED;
        return;
    }
    if (!op->cancelled) ((hl_publish_cb *)op->cb)(op->ud, &res);
    hl__op_free(op);
}

int hl__send_publish(hl_shard *sh, hl_store_op *op) {
    hl_store *s = sh->s;
    char key[HL_RKEY_MAX], ikey[HL_RKEY_MAX];
    hl_rkeys_stream(&s->keys, op->name, op->len, key);
    op->sh = sh;
    int rc;
    if (op->idem) {
        hl_rkeys_idem(&s->keys, op->name, op->len, op->idem, ikey);
        rc = redisAsyncCommand(sh->cmd.ac, on_publish, op, "FCALL holdline_publish 2 %s %s %b", key,
                               ikey, op->data, op->dlen);
    } else {
        rc = redisAsyncCommand(sh->cmd.ac, on_publish, op, "FCALL holdline_publish 1 %s %b", key,
                               op->data, op->dlen);
    }
    if (rc != REDIS_OK) return HL_ERR;
    if (waits(s) && !s->cluster) {
        op->pipelined = 1;
        op->gen = sh->cmd_gen;
        *sh->unwaited_tail = op;
        sh->unwaited_tail = &op->next;
        event_active(sh->wait_ev, EV_TIMEOUT, 0);
    }
    return HL_OK;
}

hl_store_op *hl_store_publish(hl_store *s, const char *name, size_t len, const char *data,
                              size_t dlen, const char *idem, hl_publish_cb *cb, void *ud) {
    hl_store_op *op = hl__op_new(s, HL_OP_PUBLISH, name, len, (void *)cb, ud);
    if (op == NULL) return NULL;
    hl_shard *sh = hl__shard_of(s, op->slot);
    /* The data is kept with the op: a redirection or a hold sends it
     * later. */
    op->data = malloc(dlen ? dlen : 1);
    op->idem = idem ? strdup(idem) : NULL;
    if (op->data == NULL || (idem && op->idem == NULL)) goto fail;
    memcpy(op->data, data, dlen);
    op->dlen = dlen;
    if (s->fencing) {
        *s->held_tail = op;
        s->held_tail = &op->next;
        return op;
    }
    if (!hl__shard_can_read(sh) || hl__send_publish(sh, op) != HL_OK) goto fail;
    return op;
fail:
    hl__op_free(op);
    return NULL;
}

/* ---- The failover hold (sentinel mode) ---------------------------------- */

static void on_fence_timer(evutil_socket_t fd, short what, void *arg);
static void on_fence_poll(evutil_socket_t fd, short what, void *arg);

void hl__fence_init(hl_store *s) {
    s->held_tail = &s->held;
    s->fence_timer = evtimer_new(s->base, on_fence_timer, s);
    s->fence_poll = evtimer_new(s->base, on_fence_poll, s);
}

/* Sends (or, with no command link to send on, refuses) what was held. */
static void release_held(hl_store *s) {
    hl_store_op *op = s->held;
    s->held = NULL;
    s->held_tail = &s->held;
    hl_shard *sh = s->shard[0];
    while (op != NULL) {
        hl_store_op *next = op->next;
        op->next = NULL;
        if (op->cancelled) {
            hl__op_free(op);
        } else if (!hl__shard_can_read(sh) || hl__send_publish(sh, op) != HL_OK) {
            hl_publish_result res = {0,
                                     HL_E_REDIS_UNAVAILABLE,
                                     "a Redis failover is under way and the node is not yet on "
                                     "the new master; nothing was stored: publish again",
                                     NULL,
                                     0,
                                     0};
            ((hl_publish_cb *)op->cb)(op->ud, &res);
            hl__op_free(op);
        }
        op = next;
    }
}

void hl__unfence(hl_store *s, const char *why) {
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
    hl__unfence(s, "the failover did not complete in time");
}

static void on_fence_wait(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store *s = privdata;
    const redisReply *reply = reply_;
    s->fence_asking = 0;
    if (reply == NULL || !s->fencing) return; /* lost: the next ready asks again */
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= s->cfg->publish_wait_replicas) {
        hl__unfence(s, "the links are on the new master, and its replicas confirm");
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
void hl__fence_check(hl_store *s) {
    hl_shard *sh = s->shard[0];
    if (!s->fencing || s->cluster || !hl__shard_can_read(sh) ||
        (s->fence_port == sh->cmd.port && strcmp(s->fence_master, sh->cmd.host) == 0))
        return;
    long long now = hl_mono_ms();
    if (s->fence_moved == 0) s->fence_moved = now;
    if (!waits(s)) {
        hl__unfence(s, "the links are on the new master");
    } else if (now - s->fence_moved >= FENCE_REPLICAS_MS) {
        hl__unfence(s, "the links are on the new master; fewer of its replicas than "
                       "publish.wait_replicas confirm yet");
    } else if (!s->fence_asking && redisAsyncCommand(sh->cmd.ac, on_fence_wait, s, "WAIT %d 100",
                                                     s->cfg->publish_wait_replicas) == REDIS_OK) {
        s->fence_asking = 1;
    }
}

static void on_fence_poll(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl__fence_check(arg);
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

void hl__on_sentinel_event(void *ud, int from, const char *event, const char *p, size_t n) {
    hl_store *s = ud;
    hl_shard *sh = s->shard[0];
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
        hl_rlink *links[] = {&sh->sub, &sh->cmd};
        for (int i = 0; i < 2; i++) {
            hl_rlink *l = links[i];
            if (hl_rlink_is_up(l) && strcmp(l->host, w[3]) == 0 && l->port == port) continue;
            hl_rlink_move(l, w[3], port, "a sentinel announced a new master");
        }
        hl__fence_check(s);
        return;
    }
    /* "master <name> <ip> <port> ..." */
    if (strcmp(w[0], "master") != 0 || strcmp(w[1], s->cfg->redis_master_name) != 0) return;
    if (strcmp(event, "+try-failover") == 0) {
        if (s->fencing == 0) {
            hl_info("worker %d: sentinel %s starts a failover of %s; publishes are held until "
                    "the links are on the new master",
                    s->worker, s->cfg->redis_sentinels[from], w[1]);
            snprintf(s->fence_master, sizeof(s->fence_master), "%s", sh->cmd.host);
            s->fence_port = sh->cmd.port;
            struct timeval tv = hl_ms_tv(FENCE_MAX_MS);
            evtimer_add(s->fence_timer, &tv);
        }
        s->fencing |= 1u << from;
    } else if (s->fencing & (1u << from)) {
        /* One of that sentinel's -failover-abort-* events; another may
         * still be failing over. */
        if (s->fencing == (1u << from))
            hl__unfence(s, event);
        else
            s->fencing &= ~(1u << from);
    }
}
