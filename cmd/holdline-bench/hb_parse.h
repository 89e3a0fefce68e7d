/* hb_parse.h -- the pure text work holdline-bench needs: the head of an
 * HTTP/1.1 response, a chunked body, the blocks of a Server-Sent Events
 * stream, the JSON of a poll answer or of one message, the key=value data
 * the bench itself publishes, command-line values, and the browser-like
 * header lines its polls may carry. Nothing here does I/O or allocates;
 * every output points into the caller's buffer. */
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

/* How the body after a head is delimited. */
typedef enum {
    HB_BODY_LENGTH,  /* content_length bytes (0 for 1xx, 204 and 304) */
    HB_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    HB_BODY_CLOSE    /* neither: the body runs until the server closes (nchan's
                      * event streams) */
} hb_body;

typedef struct hb_http_head {
    int status;               /* e.g. 200 */
    hb_body body;             /* how the body is delimited */
    long long content_length; /* HB_BODY_LENGTH: body bytes after the head; else -1 */
    int close;                /* the server said "Connection: close" */
    int event_stream;         /* Content-Type is text/event-stream */
    size_t head_len;          /* bytes up to and including the blank line */
    /* nchan's long-poll cursor, copied (the head's bytes do not outlive
     * the parse): "" when absent or longer than HB_HEAD_VALUE_MAX - 1. */
    char last_modified[HB_HEAD_VALUE_MAX];
    char etag[HB_HEAD_VALUE_MAX];
} hb_http_head;

/* Parses the head of one response at buf. Returns the head's length when
 * it is complete, -2 if more bytes are needed, -1 if it is not HTTP/1.x,
 * has a malformed Content-Length, a transfer coding other than chunked, or
 * both chunked and a Content-Length. Whether a body framing is acceptable
 * (a poll answer must have a length) is the caller's decision. */
long hb_parse_head(const char *buf, size_t len, hb_http_head *h);

/* A chunked body being decoded; zero it (or hb_chunked_init) before the
 * first byte. The fields are the decoder's own. */
typedef struct hb_chunked {
    int state;
    int digits;              /* hex digits of the size line so far */
    unsigned long long left; /* the size being read, or data bytes left in the chunk */
} hb_chunked;

void hb_chunked_init(hb_chunked *d);

/* Decodes the next bytes of a chunked body, buf[0..*len), in place: the
 * data they carry moves to buf[0..n) and *len becomes n. The decoder keeps
 * its place between calls, so a size line, a CRLF or the trailer may be
 * split anywhere. Returns -2 when every byte was taken and the body goes
 * on; when the last chunk and the trailer ended, the count of the bytes
 * after them (moved to buf + *len, right after the data); -1 when the body
 * is malformed (a size that is not hex or has over 15 digits, a line end
 * that is not CRLF, data not followed by CRLF). After the end, every byte
 * is left over. */
long hb_chunked_decode(hb_chunked *d, char *buf, size_t *len);

/* A Server-Sent Events stream being read; zero it before its first byte. */
typedef struct hb_sse {
    int skip_lf; /* the last block ended in a CR at the end of the bytes, so an
                  * LF right after it is the rest of that CRLF */
} hb_sse;

/* A block that no blank line ends within this many bytes is refused. */
#define HB_SSE_BLOCK_MAX (1 << 20)

/* One block of an event stream: the lines up to a blank line. Values are
 * slices of the caller's buffer (p == NULL when the field is absent). */
typedef struct hb_sse_event {
    hb_str id;       /* the last "id" field's value */
    hb_str event;    /* the last "event" field's value (absent: a "message") */
    hb_str data;     /* the first "data" line's value */
    int data_lines;  /* "data" lines; a receiver would join their values with LF */
    long long retry; /* the last "retry" that is all digits, in ms; -1 when none */
    int fields;      /* lines that are fields, known or not */
    int comments;    /* lines starting with ':' (heartbeats) */
} hb_sse_event;

/* Reads the next block of an event stream at buf: its lines (each ending
 * in CRLF, LF or CR; a field is "name: value", "name:value" or a bare
 * name) up to and including the blank line that ends it. Returns the
 * bytes the block took, with *ev filled; -2 when no blank line has come
 * yet (call again with the same bytes and more after them: nothing of
 * them was kept); -1 when the first HB_SSE_BLOCK_MAX bytes end no block.
 * A block with a data line is an event; one without (comments, an id or
 * retry alone, an empty line) dispatches nothing, though its id still
 * moves the stream's last event id. */
long hb_sse_next(hb_sse *s, const char *buf, size_t len, hb_sse_event *ev);

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

/* Reads one message object alone (the data of a holdline SSE event:
 * {"channel":..,"id":..,"data":..}), with nothing but blanks around it.
 * Returns 0 with *m filled, or -1. */
int hb_parse_msg(const char *json, size_t len, hb_msg *m);

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
