/* hl_request.h -- the pure part of reading an HTTP request: which route a
 * path names, channel lists, the timeout parameter, percent-decoding.
 *
 * No I/O and no allocation: results point into the caller's strings
 * (picohttpparser style), so these functions are cheap on the hot path and
 * easy to test with hostile input. */
#ifndef HL_REQUEST_H
#define HL_REQUEST_H

#include <stddef.h>

#define HL_CHANNEL_MAX_LEN 200
/* No holdline request has more query parameters than this. */
#define HL_MAX_QUERY_PARAMS 16

typedef enum hl_route_kind {
    HL_ROUTE_NONE = 0,  /* unknown path: 404 */
    HL_ROUTE_INDEX,     /* GET /            demo page */
    HL_ROUTE_CLIENT_JS, /* GET /holdline.js browser client */
    HL_ROUTE_POLL,      /* GET /poll/{channels} */
    HL_ROUTE_EVENTS,    /* GET /events/{channels}: Server-Sent Events */
    HL_ROUTE_PUBLISH,   /* POST /publish/{channel} */
    HL_ROUTE_CHANNEL,   /* GET /channels/{channel} */
    HL_ROUTE_HEALTHZ,   /* GET /healthz */
    HL_ROUTE_READYZ,    /* GET /readyz */
    HL_ROUTE_METRICS,   /* GET /metrics: Prometheus text */
} hl_route_kind;

typedef struct hl_span {
    const char *p; /* into the caller's string, not NUL-terminated */
    size_t n;
} hl_span;

typedef struct hl_route {
    hl_route_kind kind;
    hl_span
        arg; /* the part after "/poll/", "/events/", "/publish/" or "/channels/"; empty otherwise */
} hl_route;

/* Fills out with the route that path names (path is already
 * percent-decoded and has no query string). "/poll" and "/poll/" name the
 * poll route with an empty argument, so the caller answers 400 "channel
 * missing" rather than 404. */
void hl_route_match(const char *path, hl_route *out);

/* Returns 1 if the route accepts the method, else 0. */
int hl_route_method_ok(hl_route_kind kind, const char *method);

/* The Allow header value for a route ("GET, HEAD"). */
const char *hl_route_allow(hl_route_kind kind);

/* Returns 1 if s[0..n) is a valid channel name: 1..200 bytes of
 * [A-Za-z0-9._~:-], else 0. */
int hl_channel_valid(const char *s, size_t n);

/* Splits a comma-separated channel list into out[0..*count). Every part
 * must be a valid channel name and appear once; more than max parts is an
 * error. Returns HL_OK or HL_ERR with a message for the client in err. */
int hl_channels_parse(const char *s, size_t n, hl_span *out, size_t max, size_t *count, char *err,
                      size_t errlen);

/* 1 if s (NUL-terminated) is a valid Idempotency-Key: 1 to 64 bytes of
 * A-Z a-z 0-9 . _ : - */
int hl_idempotency_key_valid(const char *s);

/* Parses the timeout query value in whole seconds. NULL means def (at
 * most max). Returns HL_OK, or HL_ERR for anything but a decimal integer
 * from 1 to max. */
int hl_timeout_parse(const char *s, int def, int max, int *out, char *err, size_t errlen);

/* Decodes %XX escapes in place and returns the new length (the string
 * stays NUL-terminated). A malformed escape or one that decodes to NUL is
 * replaced by the byte 0x7F, which no validator accepts, so "a%00b" can
 * never pass as "a". '+' is left alone: holdline's values never hold
 * spaces. */
size_t hl_percent_decode(char *s);

#endif
