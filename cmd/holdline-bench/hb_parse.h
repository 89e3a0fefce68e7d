/* hb_parse.h -- the pure text work holdline-bench needs: the head of an
 * HTTP/1.1 response, the JSON of a poll answer, the key=value data the
 * bench itself publishes, command-line values, and the browser-like header
 * lines its polls may carry. Nothing here does I/O or allocates; every
 * output points into the caller's buffer. */
#ifndef HB_PARSE_H
#define HB_PARSE_H

#include <netinet/in.h>
#include <stddef.h>

/* A slice of a caller's buffer, not NUL-terminated. */
typedef struct hb_str {
    const char *p; /* NULL for a JSON null */
    size_t n;
} hb_str;

/* Room for a Last-Modified or Etag value, with its NUL. */
#define HB_HEAD_VALUE_MAX 64

typedef struct hb_http_head {
    int status;               /* e.g. 200 */
    long long content_length; /* body bytes that follow the head */
    int close;                /* the server said "Connection: close" */
    size_t head_len;          /* bytes up to and including the blank line */
    /* nchan's long-poll cursor, copied (the head's bytes do not outlive
     * the parse): "" when absent or longer than HB_HEAD_VALUE_MAX - 1. */
    char last_modified[HB_HEAD_VALUE_MAX];
    char etag[HB_HEAD_VALUE_MAX];
} hb_http_head;

/* Parses the head of one response at buf. Returns the head's length when
 * it is complete, -2 if more bytes are needed, -1 if it is not HTTP/1.x or
 * has no Content-Length (holdline and nchan always send one; chunked bodies
 * are not supported). */
long hb_parse_head(const char *buf, size_t len, hb_http_head *h);

/* A poll answer being read: {"cursor":..,"messages":[..],"missed":..}. */
typedef struct hb_answer {
    hb_str cursor;    /* the raw JSON string contents */
    int missed;       /* "missed":true */
    const char *next; /* next message object in the array, or its ']' */
    const char *end;  /* end of the body */
} hb_answer;

/* One message of a poll answer; each field is the raw contents of its JSON
 * string (escapes left as they are), p == NULL for null. */
typedef struct hb_msg {
    hb_str channel;
    hb_str id;
    hb_str data;
} hb_msg;

/* Reads the top level of a poll answer. Returns 0, or -1 if the body is not
 * such an object or lacks a cursor or a messages array. */
int hb_scan_answer(const char *body, size_t len, hb_answer *a);

/* Moves to the next message. Returns 1 with *m filled, 0 after the last
 * one, -1 if the array is malformed. */
int hb_next_msg(hb_answer *a, hb_msg *m);

/* Finds "key=<integer>" among the space-separated fields of data (the
 * format the bench publishes: "s=12 k=3 t=1732300000123456"). Returns 0
 * with *out set, or -1 if the key is absent or not an integer. */
int hb_data_field(hb_str data, char key, long long *out);

/* Parses a whole decimal integer in [min, max]. Returns 0 or -1. */
int hb_parse_ll(const char *s, long long min, long long max, long long *out);

/* Parses a finite decimal number in [min, max]. Returns 0 or -1. */
int hb_parse_double(const char *s, double min, double max, double *out);

/* Parses a comma-separated list of IPv4 addresses; with want_port, each
 * must be "a.b.c.d:port" ("localhost" means 127.0.0.1); without, a bare
 * address. Fills at most max entries and *n. Returns 0, or -1 with a
 * sentence in err naming the bad item. */
int hb_parse_addrs(const char *s, int want_port, struct sockaddr_in *out, int max, int *n,
                   char *err, size_t errlen);

/* The smallest Cookie value hb_browser_headers builds: one short cookie. */
#define HB_COOKIE_MIN 16
/* Room hb_browser_headers needs for a host of up to 64 bytes: the browser
 * lines (under 800 bytes), "Cookie: ", the value, CRLF and the NUL. */
#define HB_BROWSER_HEADERS_MAX(cookie_bytes) (1024 + (size_t)(cookie_bytes) + 11)

/* Writes the header lines of a browser's same-origin fetch() GET to a page
 * served from host (e.g. "127.0.0.1:8081") into buf, each ending in CRLF,
 * without Host, the request line or the blank line. With browser, about
 * 700 bytes of what Chrome sends: User-Agent, Accept, Accept-Language,
 * Accept-Encoding, a Referer on host, the sec-ch-ua and Sec-Fetch-*
 * lines, and no Origin (a same-origin GET has none). With cookie_bytes >
 * 0 (at least HB_COOKIE_MIN), a Cookie header whose value is exactly
 * cookie_bytes long: cookies of the names and sizes analytics, consent and
 * session cookies have, in a fixed order, the last one lengthened to fill
 * the value; the values are the same on every call. Returns the length
 * written (0 when neither is asked for), or -1 if cap is too small for it
 * and its NUL or cookie_bytes is below HB_COOKIE_MIN; buf then holds "". */
long hb_browser_headers(char *buf, size_t cap, const char *host, int browser,
                        long long cookie_bytes);

#endif
