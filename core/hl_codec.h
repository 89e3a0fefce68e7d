/* hl_codec.h -- every shape holdline writes on the wire, in one place:
 * the message object, the poll answer, the publish and channel answers,
 * errors, and Server-Sent Events.
 *
 * Pure: it appends to a caller's hl_buf (out of memory is sticky there,
 * see hl_json.h). A message object is encoded once, when it arrives, and
 * its bytes are reused by every answer and event that carries it, so the
 * envelopes take message objects already encoded. */
#ifndef HL_CODEC_H
#define HL_CODEC_H

#include <stddef.h>

#include "hl_cursor.h"
#include "hl_json.h"

/* A message object already encoded (see hl_codec_message). */
typedef struct hl_codec_item {
    const char *json;
    size_t len;
} hl_codec_item;

/* {"channel":<name>,"id":"<id>","data":<data>}; with id NULL (a plain
 * PUBLISH without an id) "id" is null. */
void hl_codec_message(hl_buf *b, const char *name, size_t nlen, const hl_sid *id, const char *data,
                      size_t dlen);

/* A poll's answer: {"cursor":"<cursor>","messages":[items...],"missed":<bool>}. */
void hl_codec_poll_answer(hl_buf *b, const char *cursor, size_t clen, const hl_codec_item *items,
                          size_t n, int missed);

/* 201 to a publish: {"channel":..,"id":..} and "duplicate":true for a
 * repeated Idempotency-Key. */
void hl_codec_publish_answer(hl_buf *b, const char *name, size_t nlen, const char *id, size_t idlen,
                             int duplicate);

/* GET /channels/{ch}: {"channel":..,"last_id":"<id>"|null,"length":n}. */
void hl_codec_channel_info(hl_buf *b, const char *name, size_t nlen, const hl_sid *last,
                           long long length);

/* {"error":"<code>","detail":"<detail>"}. */
void hl_codec_error(hl_buf *b, const char *code, const char *detail);

/* GET /readyz's 200: {"status":"ready"}, or {"status":"degraded",
 * "detail":"<degraded>"} when degraded is not empty. */
void hl_codec_ready(hl_buf *b, const char *degraded);

/* ---- Server-Sent Events ----------------------------------------------
 * Every event ends with a blank line. Message objects and cursors never
 * hold a line break (JSON escapes them; cursors are [0-9a-f:,-]), so
 * each is one field line. */

/* The stream's opening: "retry: <ms>" and, if clen > 0, "id: <cursor>". */
void hl_codec_sse_open(hl_buf *b, int retry_ms, const char *cursor, size_t clen);
/* A message: "id: <cursor after it>" (none if clen is 0: a plain message
 * does not move the cursor) and "data: <message object>". */
void hl_codec_sse_message(hl_buf *b, const char *cursor, size_t clen, const char *json,
                          size_t jlen);
/* "event: missed" with data {"cursor":..,"missed":true}; with id set the
 * event also moves the client's Last-Event-ID to the cursor. */
void hl_codec_sse_missed(hl_buf *b, const char *cursor, size_t clen, int with_id);
/* "event: token_expired" with data {"cursor":..}: the stream's token ran
 * out; the client reconnects with a fresh one from that cursor. */
void hl_codec_sse_token_expired(hl_buf *b, const char *cursor, size_t clen);
/* "id: <cursor>" alone: no event fires, but a reconnect resumes there. */
void hl_codec_sse_position(hl_buf *b, const char *cursor, size_t clen);
/* A comment line: keeps proxies from timing the stream out and finds
 * clients that went away. */
void hl_codec_sse_heartbeat(hl_buf *b);

#endif
