#include "hl_rreply.h"

#include <stdlib.h>
#include <string.h>

#include "hl_common.h"

uint64_t hl_rreply_epoch(const char *s, size_t n) {
    uint64_t e;
    if (hl_epoch_parse(s, n, &e) == HL_OK && e != 0) return e;
    /* FNV-1a: stable across nodes and restarts. */
    e = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        e ^= (unsigned char)s[i];
        e *= 1099511628211ULL;
    }
    return e ? e : 1;
}

static int sid_of(const redisReply *r, hl_sid *out) {
    return r->type == REDIS_REPLY_STRING ? hl_sid_parse(r->str, r->len, out) : HL_ERR;
}

int hl_rreply_read(const redisReply *rep, hl_stream_state *st, uint64_t *epoch,
                   const redisReply **entries) {
    memset(st, 0, sizeof(*st));
    *entries = NULL;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || (rep->elements != 2 && rep->elements != 8))
        return HL_ERR;
    const redisReply *const *e = (const redisReply *const *)rep->element;
    if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_INTEGER) return HL_ERR;
    *epoch = hl_rreply_epoch(e[0]->str, e[0]->len);
    st->now_ms = e[1]->integer;
    if (rep->elements == 2) return HL_OK;
    st->exists = 1;
    if (e[2]->type != REDIS_REPLY_INTEGER || sid_of(e[3], &st->first) != HL_OK ||
        sid_of(e[4], &st->last) != HL_OK || sid_of(e[5], &st->maxdel) != HL_OK ||
        e[6]->type != REDIS_REPLY_INTEGER || e[7]->type != REDIS_REPLY_ARRAY) {
        memset(st, 0, sizeof(*st));
        return HL_ERR;
    }
    st->length = e[2]->integer;
    st->added = e[6]->integer;
    *entries = e[7];
    return HL_OK;
}

hl_msg *hl_rreply_entry(const redisReply *e, const char *name, size_t len) {
    hl_sid id;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || sid_of(e->element[0], &id) != HL_OK ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *f = e->element[1];
    if (f->elements % 2 != 0) return NULL; /* fields and values come in pairs */
    const char *data = "";
    size_t dlen = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        if (f->element[i]->type == REDIS_REPLY_STRING && f->element[i]->len == 1 &&
            f->element[i]->str[0] == 'd' && f->element[i + 1]->type == REDIS_REPLY_STRING) {
            data = f->element[i + 1]->str;
            dlen = f->element[i + 1]->len;
            break;
        }
    }
    return hl_msg_new(id, name, len, data, dlen);
}

/* Whole non-negative decimal of at most 18 digits. */
static int decimal(const redisReply *r, long long *out) {
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 18) return HL_ERR;
    long long v = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9') return HL_ERR;
        v = v * 10 + (r->str[i] - '0');
    }
    *out = v;
    return HL_OK;
}

int hl_rreply_time(const redisReply *rep, long long *ms) {
    long long s, us;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        decimal(rep->element[0], &s) != HL_OK || decimal(rep->element[1], &us) != HL_OK ||
        us >= 1000000 || s > 1000000000000LL)
        return HL_ERR;
    *ms = s * 1000 + us / 1000;
    return HL_OK;
}

hl_publish_reply hl_rreply_publish(const redisReply *rep, const char **id, size_t *len) {
    *id = "";
    *len = 0;
    if (rep == NULL) return HL_PUB_BAD;
    switch (rep->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        *id = rep->str;
        *len = rep->len;
        return rep->type == REDIS_REPLY_STRING   ? HL_PUB_STORED
               : rep->type == REDIS_REPLY_STATUS ? HL_PUB_DUPLICATE
                                                 : HL_PUB_REFUSED;
    default: return HL_PUB_BAD;
    }
}

int hl_rreply_library_missing(const redisReply *rep) {
    return rep != NULL && rep->type == REDIS_REPLY_ERROR &&
           strstr(rep->str, "Function not found") != NULL;
}

int hl_rreply_readonly(const redisReply *rep) {
    return rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "READONLY", 8) == 0;
}

int hl_rreply_master_addr(const redisReply *rep, char *host, size_t hostlen, int *port) {
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) return HL_ERR;
    const redisReply *h = rep->element[0], *p = rep->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING) return HL_ERR;
    if (h->len == 0 || h->len >= hostlen || memchr(h->str, '\0', h->len) != NULL) return HL_ERR;
    if (p->len == 0 || p->len > 5) return HL_ERR;
    int v = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (p->str[i] < '0' || p->str[i] > '9') return HL_ERR;
        v = v * 10 + (p->str[i] - '0');
    }
    if (v < 1 || v > 65535) return HL_ERR;
    memcpy(host, h->str, h->len);
    host[h->len] = '\0';
    *port = v;
    return HL_OK;
}

hl_redis_role hl_rreply_role(const redisReply *rep) {
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) return HL_ROLE_UNKNOWN;
    const redisReply *r = rep->element[0];
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) return HL_ROLE_UNKNOWN;
    if (r->len == 6 && memcmp(r->str, "master", 6) == 0) return HL_ROLE_MASTER;
    if (r->len == 5 && memcmp(r->str, "slave", 5) == 0) return HL_ROLE_REPLICA;
    if (r->len == 8 && memcmp(r->str, "sentinel", 8) == 0) return HL_ROLE_SENTINEL;
    return HL_ROLE_UNKNOWN;
}
