#include "hl_msgcache.h"

#include <stdlib.h>
#include <string.h>

#include "hl_codec.h"

hl_msg *hl_msg_new(hl_sid id, const char *name, size_t nlen, const char *data, size_t dlen) {
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_message(&b, name, nlen, &id, data, dlen);
    hl_msg *m = b.oom ? NULL : malloc(sizeof(*m) + b.len + 1);
    if (m != NULL) {
        m->next = NULL;
        m->id = id;
        m->len = b.len;
        memcpy(m->json, b.data, b.len + 1);
    }
    hl_buf_free(&b);
    return m;
}

void hl_msgcache_init(hl_msgcache *c, size_t cap, size_t max_bytes) {
    memset(c, 0, sizeof(*c));
    c->cap = cap;
    c->max_bytes = max_bytes;
}

void hl_msgcache_free(hl_msgcache *c) {
    if (c == NULL) return;
    for (size_t i = 0; i < c->count; i++)
        free(hl_msgcache_at(c, i));
    free(c->ring);
    c->ring = NULL;
    c->head = c->count = c->bytes = 0;
}

hl_msg *hl_msgcache_at(const hl_msgcache *c, size_t i) {
    return c->ring[(c->head + i) % c->cap];
}

static void drop_oldest(hl_msgcache *c, hl_sid *dropped) {
    hl_msg *m = c->ring[c->head];
    *dropped = m->id;
    c->bytes -= m->len;
    free(m);
    c->head = (c->head + 1) % c->cap;
    c->count--;
}

int hl_msgcache_push(hl_msgcache *c, hl_msg *m, hl_sid *dropped) {
    if (c->cap == 0) {
        *dropped = m->id;
        free(m);
        return 1;
    }
    if (c->ring == NULL) {
        c->ring = calloc(c->cap, sizeof(*c->ring));
        if (c->ring == NULL) {
            free(m);
            return -1;
        }
    }
    int any = 0;
    while (c->count > 0 && (c->count == c->cap || c->bytes + m->len > c->max_bytes)) {
        drop_oldest(c, dropped);
        any = 1;
    }
    c->ring[(c->head + c->count) % c->cap] = m;
    c->count++;
    c->bytes += m->len;
    return any;
}

size_t hl_msgcache_after(const hl_msgcache *c, hl_sid id) {
    size_t lo = 0, hi = c->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hl_sid_cmp(hl_msgcache_at(c, mid)->id, id) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
