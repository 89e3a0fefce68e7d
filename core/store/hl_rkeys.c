#include "hl_rkeys.h"

#include <stdio.h>
#include <string.h>

void hl_rkeys_init(hl_rkeys *k, const char *prefix, const char *node, int worker) {
    snprintf(k->prefix, sizeof(k->prefix), "%s", prefix);
    k->plen = strlen(k->prefix);
    snprintf(k->epoch, sizeof(k->epoch), "%sepoch", k->prefix);
    snprintf(k->ctl, sizeof(k->ctl), "%s#ctl:%s:%d", k->prefix, node, worker);
    snprintf(k->hb, sizeof(k->hb), "%s#hb:%s:%d", k->prefix, node, worker);
    snprintf(k->client, sizeof(k->client), "holdline-%s-%d", node, worker);
    for (char *p = k->client; *p; p++)
        if (*p < '!' || *p > '~') *p = '_';
}

void hl_rkeys_client_name(const hl_rkeys *k, const char *link, char *out, size_t outlen) {
    snprintf(out, outlen, "%s-%s", k->client, link);
}

void hl_rkeys_channel(const hl_rkeys *k, const char *ch, size_t n, char *out) {
    snprintf(out, HL_RKEY_MAX, "%s%.*s", k->prefix, (int)n, ch);
}

void hl_rkeys_stream(const hl_rkeys *k, const char *ch, size_t n, char *out) {
    snprintf(out, HL_RKEY_MAX, "{%s%.*s}:log", k->prefix, (int)n, ch);
}

void hl_rkeys_idem(const hl_rkeys *k, const char *ch, size_t n, const char *key, char *out) {
    snprintf(out, HL_RKEY_MAX, "{%s%.*s}:idem:%s", k->prefix, (int)n, ch, key);
}

void hl_rkeys_slot_epoch(const hl_rkeys *k, const char *tag, char *out) {
    snprintf(out, HL_RKEY_MAX, "%s:{%s}", k->epoch, tag);
}

void hl_rkeys_slot_ctl(const hl_rkeys *k, const char *tag, char *out) {
    snprintf(out, HL_RKEY_MAX, "%s:{%s}", k->ctl, tag);
}

const char *hl_rkeys_strip(const hl_rkeys *k, const char *s, size_t n, size_t *len) {
    if (n <= k->plen || memcmp(s, k->prefix, k->plen) != 0) return NULL;
    *len = n - k->plen;
    return s + k->plen;
}
