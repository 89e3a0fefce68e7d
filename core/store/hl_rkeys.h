/* hl_rkeys.h -- the one place that knows holdline's Redis names.
 *
 * For channel `news` and prefix `holdline:` (redis.prefix):
 *
 *   holdline:news              the pub/sub channel
 *   {holdline:news}:log        its history stream
 *   {holdline:news}:idem:<k>   an idempotency key of a publish
 *   holdline:epoch             the data set's epoch
 *   holdline:epoch:{<tag>}     cluster mode: the epoch of the data of the
 *                              slot whose tag it is (hl_slot.h)
 *   holdline:#ctl:<node>:<w>   worker w's private control channel (ticks)
 *   holdline:#ctl:<node>:<w>:{<tag>}   cluster mode: the same on one
 *                              master, in a slot it serves
 *   holdline:#hb:<node>:<w>    its subscriber link's heartbeat pattern
 *
 * and its connections are named holdline-<node>-<w>-<link> (CLIENT
 * SETNAME), so CLIENT LIST shows whose they are.
 *
 * The braces put a channel's stream and keys in one Redis Cluster slot.
 * '#' is never part of a channel name, so no client can poll or publish on
 * the private names. Pure. */
#ifndef HL_RKEYS_H
#define HL_RKEYS_H

#include <stddef.h>

/* Longest name made here: prefix (< 64) + channel (<= 200) + an
 * idempotency key (<= 64) and the punctuation. */
#define HL_RKEY_MAX 400

typedef struct hl_rkeys {
    char prefix[64];
    size_t plen;
    char epoch[96];
    char ctl[160];
    char hb[160];
    char client[100]; /* holdline-<node>-<w>, bytes CLIENT SETNAME refuses as '_' */
} hl_rkeys;

void hl_rkeys_init(hl_rkeys *k, const char *prefix, const char *node, int worker);

/* Each writes a NUL-terminated name into out[HL_RKEY_MAX]. */
void hl_rkeys_channel(const hl_rkeys *k, const char *ch, size_t n, char *out);
void hl_rkeys_stream(const hl_rkeys *k, const char *ch, size_t n, char *out);
void hl_rkeys_idem(const hl_rkeys *k, const char *ch, size_t n, const char *key, char *out);

/* Cluster mode: the epoch key of the slot whose tag (hl_slot.h) is tag,
 * and the control channel of a master serving that slot. */
void hl_rkeys_slot_epoch(const hl_rkeys *k, const char *tag, char *out);
void hl_rkeys_slot_ctl(const hl_rkeys *k, const char *tag, char *out);

/* The connection name of worker's link (such as "cmd") into out. */
void hl_rkeys_client_name(const hl_rkeys *k, const char *link, char *out, size_t outlen);

/* The channel name inside a Redis channel name s[0..n), or NULL if it
 * does not carry the prefix. */
const char *hl_rkeys_strip(const hl_rkeys *k, const char *s, size_t n, size_t *len);

#endif
