/* hl_peek.h -- what a worker reads off the first request of a connection
 * before it hands the socket to a libmicrohttpd daemon: whether the
 * request head is complete, how big it is, how much of a connection's
 * memory pool libmicrohttpd 0.9.75 will need to parse and answer it, and
 * the first channel it names (which decides the daemon).
 *
 * Pure: no I/O and no allocation; spans point into the caller's buffer
 * (picohttpparser style). The pool model follows libmicrohttpd's own
 * accounting (shared/research/libmicrohttpd-0.9.75.md, 2.2): the raw
 * request bytes, a 64-byte record per header line, query argument and
 * cookie, and a copy of the Cookie value, plus room for the answer's
 * headers and, for a request with cookies, half its jar again for cookies
 * the site sets while the connection lives. */
#ifndef HL_PEEK_H
#define HL_PEEK_H

#include <stddef.h>
#include <stdint.h>

#include "hl_request.h"

/* Pool bytes libmicrohttpd 0.9.75 takes per header line, query argument
 * and cookie (a 56-byte record rounded up to its 16-byte alignment). */
#define HL_PEEK_RECORD 64
/* Pool bytes kept for the answer's own header lines (status, Date,
 * Content-Type, Cache-Control, ...; about 250) and for a next request on
 * the same connection a little longer than the first (a cursor that grew,
 * one more cookie). The lines that echo the request (Holdline-Cursor, as
 * long as the cursor the client sends, and the CORS origin) are counted
 * on top, from the request. */
#define HL_PEEK_ROOM 448

typedef enum hl_peek_status {
    HL_PEEK_MORE = 0, /* no blank line yet: the head is incomplete */
    HL_PEEK_DONE,     /* the head ends within the bytes given */
} hl_peek_status;

typedef struct hl_peek {
    size_t head_len;     /* request line through the blank line, in bytes */
    size_t line_len;     /* the request line, without its line end */
    hl_span target;      /* the request target (path and query) as sent */
    unsigned lines;      /* header lines */
    unsigned args;       /* query arguments */
    unsigned cookies;    /* cookie records libmicrohttpd will make */
    size_t cookie_bytes; /* bytes of Cookie header values together */
    size_t header_bytes; /* name + value + 4 per header line, as hl_http counts them */
    hl_span origin;      /* the Origin header's value; empty if none */
    hl_span channel;     /* the first channel of /poll/ or /events/; empty otherwise */
    int not_http1;       /* the request line does not end in HTTP/1.x: MHD refuses it */
} hl_peek;

/* Reads the request head at buf[0..len). Returns HL_PEEK_DONE with *p
 * filled when a blank line ("\r\n\r\n" or "\n\n") ends the head within
 * len, or as soon as the request line is in and is not HTTP/1.x (there
 * may be no blank line to wait for: "GET /\r\n"), else HL_PEEK_MORE (p->line_len is then set if the
 * request line is complete, else it is the bytes seen so far). Malformed requests are not judged
 * here: libmicrohttpd answers those; only their size matters for the pool. */
hl_peek_status hl_peek_parse(const char *buf, size_t len, hl_peek *p);

/* Pool bytes the request needs, by the model above, HL_PEEK_ROOM and the
 * echoes included. */
size_t hl_peek_pool_need(const hl_peek *p);

/* The same for a request as libmicrohttpd parsed it (used to tell when a
 * kept-alive connection's next request comes close to its pool):
 * echo_bytes is what its answer repeats of it (target and origin). */
size_t hl_peek_pool_need_parsed(size_t request_bytes, unsigned records, size_t cookie_bytes,
                                size_t echo_bytes);

/* FNV-1a of s[0..n) with a finishing mix: spreads channels over a
 * class's daemons. */
uint32_t hl_peek_hash(const char *s, size_t n);

#endif
