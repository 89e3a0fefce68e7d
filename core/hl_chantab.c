#include "hl_chantab.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: channel names are short, and the table is private to a worker,
 * so a keyed hash buys nothing against an attacker who could just open
 * more channels. Its high bits hardly move with a name's last bytes
 * (news1, news2...), so a finishing mix spreads them over every bit:
 * callers take shares of the table by the high ones (hl_poll.c). The mix
 * is a bijection, so names that collide still collide and no more. */
static uint64_t name_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

void hl_chantab_init(hl_chantab *t) {
    memset(t, 0, sizeof(*t));
}

void hl_chantab_free(hl_chantab *t) {
    if (t == NULL) return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        hl_chan *c = t->buckets[i];
        while (c) {
            hl_chan *next = c->next;
            free(c);
            c = next;
        }
    }
    free(t->buckets);
    hl_chantab_init(t);
}

hl_chan *hl_chantab_find(const hl_chantab *t, const char *name, size_t len) {
    if (t->nbuckets == 0) return NULL;
    uint64_t h = name_hash(name, len);
    for (hl_chan *c = t->buckets[h & (t->nbuckets - 1)]; c; c = c->next)
        if (c->hash == h && c->len == len && memcmp(c->name, name, len) == 0) return c;
    return NULL;
}

static int grow(hl_chantab *t) {
    size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
    hl_chan **b = calloc(n, sizeof(*b));
    if (b == NULL) return -1;
    for (size_t i = 0; i < t->nbuckets; i++) {
        hl_chan *c = t->buckets[i];
        while (c) {
            hl_chan *next = c->next;
            size_t k = c->hash & (n - 1);
            c->next = b[k];
            b[k] = c;
            c = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

hl_chan *hl_chantab_add(hl_chantab *t, const char *name, size_t len) {
    if (t->count + 1 > t->nbuckets && grow(t) != 0) return NULL;
    hl_chan *c = calloc(1, sizeof(*c) + len + 1);
    if (c == NULL) return NULL;
    memcpy(c->name, name, len);
    c->len = len;
    c->hash = name_hash(name, len);
    size_t k = c->hash & (t->nbuckets - 1);
    c->next = t->buckets[k];
    t->buckets[k] = c;
    t->count++;
    return c;
}

void hl_chantab_remove(hl_chantab *t, hl_chan *c) {
    hl_chan **pp = &t->buckets[c->hash & (t->nbuckets - 1)];
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp == NULL) return;
    *pp = c->next;
    t->count--;
    free(c);
}

void hl_chantab_foreach(hl_chantab *t, void (*fn)(hl_chan *c, void *ud), void *ud) {
    for (size_t i = 0; i < t->nbuckets; i++) {
        hl_chan *c = t->buckets[i];
        while (c) {
            /* Read the successor first: fn may free c. */
            hl_chan *next = c->next;
            fn(c, ud);
            c = next;
        }
    }
}

void hl_chantab_foreach_share(hl_chantab *t, size_t share, size_t shares,
                              void (*fn)(hl_chan *c, void *ud), void *ud) {
    if (shares == 0) shares = 1;
    for (size_t i = share; i < t->nbuckets; i += shares) {
        hl_chan *c = t->buckets[i];
        while (c) {
            hl_chan *next = c->next;
            fn(c, ud);
            c = next;
        }
    }
}
