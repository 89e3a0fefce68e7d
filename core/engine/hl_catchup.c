#include "hl_catchup.h"

/* A channel with no history since its sync (its head is a point in
 * Redis time): is a client at `at` (compared with the head: k) up to
 * date? Behind the head, yes if `at` is less than a TTL older: no stream
 * existed at the head's time, and one holding messages after `at` could
 * not have expired by then. Ahead, yes if `at` is not in Redis's future:
 * another worker's head, moved by a later tick. */
static int quiet_up_to_date(const hl_catchup_env *env, const hl_chan *c, hl_sid at, int k) {
    if (k < 0) return (long long)at.ms + env->ttl_ms > (long long)c->last.ms + 1000;
    return env->redis_now > 0 && at.ms <= (uint64_t)env->redis_now + 1000;
}

hl_need hl_catchup_classify(const hl_catchup_env *env, uint64_t wepoch, const hl_chan *c,
                            hl_position *pos) {
    switch (pos->cur.kind) {
    case HL_CUR_NEW:
        /* Only newer messages: the client starts at the channel's last id,
         * labelled with the worker's epoch, so it must be the waiter's. */
        if (wepoch != env->epoch) return HL_NEED_NOTHING;
        pos->cur = (hl_cur_part){HL_CUR_AT, c->last};
        return HL_NEED_NOTHING;
    case HL_CUR_ALL:
        /* "0" of another epoch: only a read can tell what the data set
         * now holds (and the waiter then takes Redis's epoch). */
        if (!c->whole || wepoch != env->epoch) return HL_NEED_READ;
        if (c->cache.count > 0) return HL_NEED_CACHE;
        pos->cur = (hl_cur_part){HL_CUR_AT, c->last};
        return HL_NEED_NOTHING;
    case HL_CUR_AT: break;
    }
    if (wepoch != env->epoch) return pos->level ? HL_NEED_NOTHING : HL_NEED_READ;
    int k = hl_sid_cmp(pos->cur.id, c->last);
    if (k == 0) return HL_NEED_NOTHING;
    if (c->empty && quiet_up_to_date(env, c, pos->cur.id, k)) {
        if (k < 0) pos->cur.id = c->last;
        return HL_NEED_NOTHING;
    }
    if (k < 0 && hl_sid_cmp(pos->cur.id, c->cache_from) >= 0 &&
        hl_msgcache_after(&c->cache, pos->cur.id) < c->cache.count)
        return HL_NEED_CACHE;
    /* Behind what the cache holds, or ahead of this worker (fine if Redis
     * confirmed the id: the message is still on its way here). A read
     * that found nothing is not repeated until the channel has news. */
    if (k > 0 && pos->verified) return HL_NEED_NOTHING;
    return pos->level ? HL_NEED_NOTHING : HL_NEED_READ;
}

long hl_catchup_cache_from(const hl_catchup_env *env, uint64_t wepoch, const hl_chan *c,
                           hl_cur_part cur) {
    if (c->sync != HL_SYNC_DONE || wepoch != env->epoch) return -1;
    if (cur.kind == HL_CUR_ALL && c->whole) return 0;
    if (cur.kind == HL_CUR_AT && hl_sid_cmp(cur.id, c->cache_from) >= 0)
        return (long)hl_msgcache_after(&c->cache, cur.id);
    return -1;
}

int hl_catchup_read_done(long long ttl_ms, uint64_t wepoch, uint64_t read_epoch,
                         const hl_stream_state *st, int got, hl_position *pos) {
    int missed = 0;
    if (pos->cur.kind == HL_CUR_AT)
        missed = wepoch != read_epoch || hl_history_missed(st, pos->cur.id, ttl_ms);
    if (!got) {
        hl_sid head = hl_history_head(st);
        if (missed || pos->cur.kind != HL_CUR_AT || hl_sid_cmp(head, pos->cur.id) > 0)
            pos->cur = (hl_cur_part){HL_CUR_AT, head};
        pos->level = !missed;
    }
    pos->verified = 1;
    return missed;
}
