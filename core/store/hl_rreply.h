/* hl_rreply.h -- reading Redis's replies to holdline's commands.
 *
 * Pure: it reads hiredis's redisReply trees (built by hiredis's own
 * reader, redisReader) and touches no connection, so the tests feed it RESP
 * text. Nothing here keeps a pointer into a reply past the call unless it
 * says so. */
#ifndef HL_RREPLY_H
#define HL_RREPLY_H

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "hl_cursor.h"
#include "hl_history.h"
#include "hl_msgcache.h"

/* An epoch from the text Redis holds: ours is hex (hl_epoch_parse); any
 * other text (someone set the key by hand) gives a stable nonzero value
 * derived from it. */
uint64_t hl_rreply_epoch(const char *s, size_t n);

/* holdline_read's reply (see hl_history.h): the stream's state, the epoch
 * and *entries, pointing into rep (NULL for a stream that does not exist).
 * Returns HL_OK or HL_ERR (not such a reply). */
int hl_rreply_read(const redisReply *rep, hl_stream_state *st, uint64_t *epoch,
                   const redisReply **entries);

/* One stream entry, [id, [field, value, ...]], as a message of channel
 * name (its data is the field "d"; none: empty). NULL if malformed or out
 * of memory. */
hl_msg *hl_rreply_entry(const redisReply *e, const char *name, size_t len);

/* TIME's reply as ms. Returns HL_OK or HL_ERR. */
int hl_rreply_time(const redisReply *rep, long long *ms);

typedef enum hl_publish_reply {
    HL_PUB_STORED = 0, /* *id is the new entry's id */
    HL_PUB_DUPLICATE,  /* an Idempotency-Key seen before: *id is the first id */
    HL_PUB_REFUSED,    /* an error reply: *id is Redis's message */
    HL_PUB_BAD,        /* anything else */
} hl_publish_reply;

/* holdline_publish's reply; *id points into rep. */
hl_publish_reply hl_rreply_publish(const redisReply *rep, const char **id, size_t *len);

/* 1 if rep is the error Redis gives for a function it does not know
 * (the library was flushed or never loaded). */
int hl_rreply_library_missing(const redisReply *rep);

/* 1 if rep is the error a replica gives for a write ("-READONLY You
 * can't write against a read only replica."). */
int hl_rreply_readonly(const redisReply *rep);

/* SENTINEL GET-MASTER-ADDR-BY-NAME's reply, [host, port]: the host copied
 * into host (hostlen bytes with its NUL) and the port. Returns HL_OK, or
 * HL_ERR for a nil (the sentinel knows no such master), an error, or
 * anything malformed (a port outside 1..65535, a host that does not fit
 * or holds a NUL). */
int hl_rreply_master_addr(const redisReply *rep, char *host, size_t hostlen, int *port);

typedef enum hl_redis_role {
    HL_ROLE_UNKNOWN = 0, /* not a ROLE reply */
    HL_ROLE_MASTER,
    HL_ROLE_REPLICA,
    HL_ROLE_SENTINEL,
} hl_redis_role;

/* ROLE's reply: what the server says it is (its first element, "master",
 * "slave" or "sentinel"). */
hl_redis_role hl_rreply_role(const redisReply *rep);

/* A range of Redis Cluster slots and the master serving them. */
typedef struct hl_slot_range {
    unsigned lo, hi; /* inclusive, 0..16383 */
    char host[256];
    int port;
} hl_slot_range;

/* CLUSTER SLOTS's reply, [[lo, hi, [host, port, id, ...], replicas...],
 * ...], into out[0..max): the master of each range. A master listed
 * with an empty host is at asked_host (the node the command went to; so
 * Redis says). Returns the number of ranges, or -1 if anything is
 * malformed (a range outside 0..16383 or upside down, a port outside
 * 1..65535, a host that does not fit or holds a NUL) or there are more
 * than max. */
int hl_rreply_cluster_slots(const redisReply *rep, const char *asked_host, hl_slot_range *out,
                            int max);

typedef enum hl_redirect {
    HL_REDIR_NONE = 0,    /* not a cluster redirection */
    HL_REDIR_MOVED,       /* -MOVED <slot> <host>:<port>: the slot is served there now */
    HL_REDIR_ASK,         /* -ASK <slot> <host>:<port>: this once, there, after ASKING */
    HL_REDIR_TRYAGAIN,    /* -TRYAGAIN: the keys are split by a migration; soon */
    HL_REDIR_CLUSTERDOWN, /* -CLUSTERDOWN: the slot is not served */
} hl_redirect;

/* What an error reply (its text, such as "MOVED 15811 127.0.0.1:7003")
 * redirects to. For MOVED and ASK, the slot, host (hostlen bytes with its
 * NUL; an empty host is asked_host) and port; a MOVED or ASK that does not
 * parse is HL_REDIR_NONE. */
hl_redirect hl_rreply_redirect(const char *err, size_t n, const char *asked_host, unsigned *slot,
                               char *host, size_t hostlen, int *port);

#endif
