/* hl_cursor.h -- stream ids and the cursors clients hand back.
 *
 * A message id is a Redis stream id, "<ms>-<seq>", both unsigned 64-bit.
 * A cursor says where a client stands on each channel of its poll:
 *
 *     ""                       nothing yet: only messages newer than the poll
 *     "0"                      everything still in history, on every channel
 *     "<epoch>:<p>[,<p>...]"   one part per channel, in the poll's order;
 *                              a part is an id, "0" (all history) or ""
 *                              (only newer)
 *
 * The epoch (1 to 16 hex digits) names the life of the Redis data set the
 * ids belong to; it changes when Redis loses its data. Clients treat the
 * whole string as opaque and send back the last one they got.
 *
 * Pure functions: no I/O, no allocation except into a caller's hl_buf. */
#ifndef HL_CURSOR_H
#define HL_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "hl_json.h"

typedef struct hl_sid {
    uint64_t ms;  /* Redis's clock when the entry was added */
    uint64_t seq; /* entries within that millisecond */
} hl_sid;

/* The longest id: 20 digits, '-', 20 digits. */
#define HL_SID_MAXLEN 41

/* Returns <0, 0 or >0 as a sorts before, with or after b. */
int hl_sid_cmp(hl_sid a, hl_sid b);

/* Parses exactly "<digits>-<digits>" (each 1..20 digits, no sign, no
 * space, at most 2^64-1). Returns HL_OK or HL_ERR. */
int hl_sid_parse(const char *s, size_t n, hl_sid *out);

/* Writes id NUL-terminated into buf (at least HL_SID_MAXLEN + 1 bytes)
 * and returns its length. */
size_t hl_sid_format(hl_sid id, char *buf);

typedef enum hl_cur_kind {
    HL_CUR_NEW = 0, /* no position: only messages newer than the poll */
    HL_CUR_ALL,     /* from the start of the history */
    HL_CUR_AT,      /* after id */
} hl_cur_kind;

typedef struct hl_cur_part {
    hl_cur_kind kind;
    hl_sid id; /* HL_CUR_AT only */
} hl_cur_part;

/* Parses a cursor for a poll on n channels into parts[0..n) and *epoch
 * (0 when the cursor names none). Returns HL_OK, or HL_ERR with a message
 * for the client in err (wrong number of parts, bad epoch, bad id). */
int hl_cursor_parse(const char *s, size_t len, size_t n, uint64_t *epoch, hl_cur_part *parts,
                    char *err, size_t errlen);

/* Appends the cursor text for parts[0..n) (no quotes): "" when every part
 * is NEW, "0" when every part is ALL, else the full form. */
void hl_cursor_format(hl_buf *b, uint64_t epoch, const hl_cur_part *parts, size_t n);

/* The epoch a cursor over channels whose data have epochs e[0..n) names
 * (Redis Cluster: each slot has its own): e[0] when all are equal (so
 * one data set gives the epoch itself), else a nonzero FNV-1a-64 of the
 * list in order; 0 if any is 0 (not known). */
uint64_t hl_epoch_combine(const uint64_t *e, size_t n);

/* Parses 1..16 hex digits. Returns HL_OK or HL_ERR. */
int hl_epoch_parse(const char *s, size_t n, uint64_t *out);

#endif
