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

/* A host name from a reply into host[hostlen]: not NUL-free or too long
 * is HL_ERR; empty is asked_host. */
static int copy_host(const char *p, size_t n, const char *asked_host, char *host, size_t hostlen) {
    if (n == 0) {
        p = asked_host;
        n = strlen(asked_host);
    }
    if (n == 0 || n >= hostlen || memchr(p, '\0', n) != NULL) return HL_ERR;
    memcpy(host, p, n);
    host[n] = '\0';
    return HL_OK;
}

static int small_int(const redisReply *r, long long lo, long long hi, long long *out) {
    if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer < lo || r->integer > hi)
        return HL_ERR;
    *out = r->integer;
    return HL_OK;
}

int hl_rreply_cluster_slots(const redisReply *rep, const char *asked_host, hl_slot_range *out,
                            int max) {
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements > (size_t)max) return -1;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *r = rep->element[i];
        long long lo, hi, port;
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
            small_int(r->element[0], 0, 16383, &lo) != HL_OK ||
            small_int(r->element[1], lo, 16383, &hi) != HL_OK)
            return -1;
        const redisReply *m = r->element[2];
        if (m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            m->element[0]->type != REDIS_REPLY_STRING ||
            small_int(m->element[1], 1, 65535, &port) != HL_OK ||
            copy_host(m->element[0]->str, m->element[0]->len, asked_host, out[i].host,
                      sizeof(out[i].host)) != HL_OK)
            return -1;
        out[i].lo = (unsigned)lo;
        out[i].hi = (unsigned)hi;
        out[i].port = (int)port;
    }
    return (int)rep->elements;
}

hl_redirect hl_rreply_redirect(const char *err, size_t n, const char *asked_host, unsigned *slot,
                               char *host, size_t hostlen, int *port) {
    static const struct {
        const char *word;
        hl_redirect kind;
    } words[] = {{"MOVED ", HL_REDIR_MOVED},
                 {"ASK ", HL_REDIR_ASK},
                 {"TRYAGAIN", HL_REDIR_TRYAGAIN},
                 {"CLUSTERDOWN", HL_REDIR_CLUSTERDOWN}};
    hl_redirect kind = HL_REDIR_NONE;
    size_t at = 0;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]) && kind == HL_REDIR_NONE; i++) {
        size_t w = strlen(words[i].word);
        if (n >= w && memcmp(err, words[i].word, w) == 0) {
            kind = words[i].kind;
            at = w;
        }
    }
    if (kind != HL_REDIR_MOVED && kind != HL_REDIR_ASK) return kind;
    /* "<slot> <host>:<port>", the host possibly empty or an IPv6 address
     * (the port is after the last ':'). */
    unsigned long s = 0;
    size_t d = at;
    while (d < n && d - at < 6 && err[d] >= '0' && err[d] <= '9')
        s = s * 10 + (unsigned long)(err[d++] - '0');
    if (d == at || d >= n || err[d] != ' ' || s > 16383) return HL_REDIR_NONE;
    const char *addr = err + d + 1;
    size_t alen = n - d - 1;
    const char *colon = NULL;
    for (size_t i = 0; i < alen; i++)
        if (addr[i] == ':') colon = addr + i;
    if (colon == NULL) return HL_REDIR_NONE;
    long p = 0;
    size_t plen = alen - (size_t)(colon + 1 - addr);
    if (plen == 0 || plen > 5) return HL_REDIR_NONE;
    for (size_t i = 0; i < plen; i++) {
        char c = colon[1 + i];
        if (c < '0' || c > '9') return HL_REDIR_NONE;
        p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535 ||
        copy_host(addr, (size_t)(colon - addr), asked_host, host, hostlen) != HL_OK)
        return HL_REDIR_NONE;
    *slot = (unsigned)s;
    *port = (int)p;
    return kind;
}
