#include "hb_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* HTTP                                                               */

static const char *find_crlfcrlf(const char *buf, size_t len) {
    for (size_t i = 0; i + 3 < len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
            return buf + i;
    return NULL;
}

/* Compares a header name of length n with name, ignoring case. */
static int name_is(const char *p, size_t n, const char *name) {
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* Whether the comma-separated header value contains token (any case). */
static int value_has_token(const char *v, size_t n, const char *token) {
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0) return 1;
    }
    return 0;
}

/* How many comma-separated tokens the header value has. */
static int value_tokens(const char *v, size_t n) {
    int count = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i < n) count++;
        while (i < n && v[i] != ',')
            i++;
    }
    return count;
}

/* Copies a header value (trailing blanks dropped) into a
 * HB_HEAD_VALUE_MAX buffer; one that does not fit is left empty. */
static void copy_value(char *dst, const char *v, size_t n) {
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= HB_HEAD_VALUE_MAX) n = 0;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

long hb_parse_head(const char *buf, size_t len, hb_http_head *h) {
    const char *end = find_crlfcrlf(buf, len);
    if (end == NULL) {
        /* A head this long is not what holdline sends. */
        return len > 16384 ? -1 : -2;
    }
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    h->head_len = (size_t)(end - buf) + 4;

    /* Status line: "HTTP/1.x NNN reason". */
    if (end - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') return -1;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') return -1;
        status = status * 10 + (buf[i] - '0');
    }
    h->status = status;
    /* HTTP/1.0 closes unless told otherwise; holdline speaks 1.1. */
    h->close = buf[7] == '0';

    const char *p = memchr(buf, '\n', (size_t)(end - buf));
    while (p != NULL && p < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (eol == NULL) break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon != NULL) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vn = (size_t)(eol - v);
            size_t nn = (size_t)(colon - line);
            if (name_is(line, nn, "Content-Length")) {
                long long cl = 0;
                if (vn == 0 || vn > 12) return -1;
                for (size_t i = 0; i < vn; i++) {
                    if (v[i] < '0' || v[i] > '9') return -1;
                    cl = cl * 10 + (v[i] - '0');
                }
                h->content_length = cl;
            } else if (name_is(line, nn, "Transfer-Encoding")) {
                int codings = value_tokens(v, vn);
                int chunked = value_has_token(v, vn, "chunked");
                int identity = value_has_token(v, vn, "identity");
                /* Only chunked, which holdline's event streams use; identity
                 * (obsolete) means none. Compression is never asked for. */
                if (codings != chunked + identity) return -1;
                if (chunked) h->body = HB_BODY_CHUNKED;
            } else if (name_is(line, nn, "Content-Type")) {
                size_t tn = 0;
                while (tn < vn && v[tn] != ';' && v[tn] != ' ' && v[tn] != '\t')
                    tn++;
                h->event_stream = tn == 17 && strncasecmp(v, "text/event-stream", 17) == 0;
            } else if (name_is(line, nn, "Connection")) {
                if (value_has_token(v, vn, "close")) h->close = 1;
                if (value_has_token(v, vn, "keep-alive")) h->close = 0;
            } else if (name_is(line, nn, "Last-Modified")) {
                copy_value(h->last_modified, v, vn);
            } else if (name_is(line, nn, "Etag")) {
                copy_value(h->etag, v, vn);
            }
        }
        p = eol + 1;
    }
    /* 1xx, 204 and 304 have no body whatever the head says; a chunked one
     * must not also give a length (RFC 9112 6.3: a sender never sends
     * both, and a receiver that trusted either could be misled); without
     * either, the body runs until the server closes. */
    if (status / 100 == 1 || status == 204 || status == 304) {
        h->body = HB_BODY_LENGTH;
        h->content_length = 0;
    } else if (h->body == HB_BODY_CHUNKED) {
        if (h->content_length >= 0) return -1;
    } else if (h->content_length < 0) {
        h->body = HB_BODY_CLOSE;
    }
    return (long)h->head_len;
}

/* ------------------------------------------------------------------ */
/* Chunked bodies                                                     */

/* Where the decoder is: a chunk is "<hex size>[;ext]\r\n<data>\r\n", the
 * last one has size 0 and is followed by trailer lines and a blank line. */
enum {
    CH_SIZE,       /* reading the size's hex digits */
    CH_EXT,        /* after the size: blanks or an extension, up to CR */
    CH_SIZE_LF,    /* the size line's CR was read */
    CH_DATA,       /* left data bytes of the chunk to go */
    CH_DATA_CR,    /* the CR after the data */
    CH_DATA_LF,    /* the LF after the data */
    CH_TRAILER,    /* at the start of a trailer line (or the blank line) */
    CH_TRAILER_IN, /* inside a trailer line, up to CR */
    CH_TRAILER_LF, /* a trailer line's CR was read */
    CH_END_LF,     /* the blank line's CR was read */
    CH_DONE        /* the body has ended */
};

void hb_chunked_init(hb_chunked *d) {
    memset(d, 0, sizeof(*d));
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long hb_chunked_decode(hb_chunked *d, char *buf, size_t *len) {
    size_t in = 0, out = 0, n = *len;
    while (in < n && d->state != CH_DONE) {
        char c = buf[in];
        switch (d->state) {
        case CH_SIZE: {
            int v = hex_value(c);
            if (v >= 0) {
                /* 15 hex digits are 2^60 bytes: more is no real chunk. */
                if (++d->digits > 15) goto bad;
                d->left = d->left * 16 + (unsigned)v;
                in++;
                continue;
            }
            if (d->digits == 0) goto bad;
            if (c != ';' && c != ' ' && c != '\t' && c != '\r') goto bad;
            d->state = CH_EXT;
            continue; /* CH_EXT looks at c again */
        }
        case CH_EXT:
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == '\n')
                goto bad;
            in++;
            continue;
        case CH_SIZE_LF:
            if (c != '\n') goto bad;
            in++;
            d->digits = 0;
            d->state = d->left == 0 ? CH_TRAILER : CH_DATA;
            continue;
        case CH_DATA: {
            size_t take = n - in;
            if ((unsigned long long)take > d->left) take = (size_t)d->left;
            memmove(buf + out, buf + in, take);
            out += take;
            in += take;
            d->left -= take;
            if (d->left == 0) d->state = CH_DATA_CR;
            continue;
        }
        case CH_DATA_CR:
            if (c != '\r') goto bad;
            d->state = CH_DATA_LF;
            in++;
            continue;
        case CH_DATA_LF:
            if (c != '\n') goto bad;
            d->state = CH_SIZE;
            in++;
            continue;
        case CH_TRAILER:
            if (c == '\n') goto bad;
            d->state = c == '\r' ? CH_END_LF : CH_TRAILER_IN;
            in++;
            continue;
        case CH_TRAILER_IN:
            if (c == '\r')
                d->state = CH_TRAILER_LF;
            else if (c == '\n')
                goto bad;
            in++;
            continue;
        case CH_TRAILER_LF:
            if (c != '\n') goto bad;
            d->state = CH_TRAILER;
            in++;
            continue;
        case CH_END_LF:
            if (c != '\n') goto bad;
            d->state = CH_DONE;
            in++;
            continue;
        default: goto bad;
        }
    }
    *len = out;
    if (d->state != CH_DONE) return -2;
    /* What follows the body goes right after its data. */
    memmove(buf + out, buf + in, n - in);
    return (long)(n - in);
bad:
    *len = out;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Server-Sent Events                                                 */

/* The end of the line at p: the first CR or LF before end, or NULL. */
static const char *line_end(const char *p, const char *end) {
    for (; p < end; p++)
        if (*p == '\r' || *p == '\n') return p;
    return NULL;
}

static int field_is(const char *p, size_t n, const char *name) {
    return strlen(name) == n && memcmp(p, name, n) == 0;
}

/* Applies one field line [p, e) (not blank, not a comment) to ev. */
static void sse_field(const char *p, const char *e, hb_sse_event *ev) {
    const char *colon = memchr(p, ':', (size_t)(e - p));
    const char *name_end = colon != NULL ? colon : e;
    const char *v = colon != NULL ? colon + 1 : e;
    if (v < e && *v == ' ') v++;
    hb_str val = {v, (size_t)(e - v)};
    size_t nn = (size_t)(name_end - p);
    ev->fields++;
    if (field_is(p, nn, "data")) {
        if (ev->data_lines++ == 0) ev->data = val;
    } else if (field_is(p, nn, "id")) {
        /* The spec ignores an id with a NUL in it. */
        if (memchr(val.p, '\0', val.n) == NULL) ev->id = val;
    } else if (field_is(p, nn, "event")) {
        ev->event = val;
    } else if (field_is(p, nn, "retry")) {
        long long ms = 0;
        size_t i = 0;
        while (i < val.n && val.p[i] >= '0' && val.p[i] <= '9' && ms < (long long)1e15)
            ms = ms * 10 + (val.p[i++] - '0');
        if (i == val.n && i > 0) ev->retry = ms;
    }
}

long hb_sse_next(hb_sse *s, const char *buf, size_t len, hb_sse_event *ev) {
    const char *p = buf, *end = buf + len;
    memset(ev, 0, sizeof(*ev));
    ev->retry = -1;
    /* Nothing of s changes unless a block is returned, so the caller may
     * give the same bytes again, with more after them. */
    if (s->skip_lf && p < end && *p == '\n') p++;
    while (p < end) {
        const char *e = line_end(p, end);
        if (e == NULL) break;
        const char *next = e + 1;
        if (*e == '\r' && next < end && *next == '\n') next++;
        if (e == p) {
            /* A blank line ends the block. A CR as the last byte may be
             * the first half of a CRLF whose LF has not come yet. */
            s->skip_lf = *e == '\r' && next == end;
            return (long)(next - buf);
        }
        if (*p == ':')
            ev->comments++;
        else
            sse_field(p, e, ev);
        p = next;
    }
    memset(ev, 0, sizeof(*ev));
    ev->retry = -1;
    return len >= HB_SSE_BLOCK_MAX ? -1 : -2;
}

/* ------------------------------------------------------------------ */
/* JSON                                                               */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* At a '"': returns the position after the closing quote and sets *s to
 * the raw contents, or NULL if unterminated. */
static const char *scan_string(const char *p, const char *end, hb_str *s) {
    if (p >= end || *p != '"') return NULL;
    const char *start = ++p;
    while (p < end && *p != '"') {
        if (*p == '\\') {
            if (++p >= end) return NULL;
        }
        p++;
    }
    if (p >= end) return NULL;
    if (s != NULL) {
        s->p = start;
        s->n = (size_t)(p - start);
    }
    return p + 1;
}

static const char *scan_literal(const char *p, const char *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0) return NULL;
    return p + n;
}

/* Skips one JSON value of any kind; returns the position after it or NULL. */
static const char *skip_value(const char *p, const char *end) {
    p = skip_ws(p, end);
    if (p >= end) return NULL;
    if (*p == '"') return scan_string(p, end, NULL);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = scan_string(p, end, NULL);
                if (p == NULL) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    /* A number or literal runs until a delimiter. */
    const char *s = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
        p++;
    return p > s ? p : NULL;
}

/* Reads `"key":` at p; returns the position of the value or NULL. */
static const char *scan_key(const char *p, const char *end, hb_str *key) {
    p = skip_ws(p, end);
    p = scan_string(p, end, key);
    if (p == NULL) return NULL;
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return NULL;
    return skip_ws(p + 1, end);
}

/* After a member's value: returns the next key (after a comma) or the
 * closing '}', or NULL if neither follows. */
static const char *end_of_member(const char *p, const char *end) {
    p = skip_ws(p, end);
    if (p < end && *p == '}') return p;
    if (p >= end || *p != ',') return NULL;
    p = skip_ws(p + 1, end);
    return p < end && *p == '"' ? p : NULL;
}

static int key_is(hb_str k, const char *name) {
    return k.n == strlen(name) && memcmp(k.p, name, k.n) == 0;
}

int hb_scan_answer(const char *body, size_t len, hb_answer *a) {
    const char *end = body + len;
    const char *p = skip_ws(body, end);
    int have_cursor = 0, have_messages = 0;
    memset(a, 0, sizeof(*a));
    a->end = end;
    if (p >= end || *p != '{') return -1;
    p = skip_ws(p + 1, end);
    while (p < end && *p != '}') {
        hb_str key;
        p = scan_key(p, end, &key);
        if (p == NULL) return -1;
        if (key_is(key, "cursor")) {
            p = scan_string(p, end, &a->cursor);
            have_cursor = 1;
        } else if (key_is(key, "messages")) {
            if (*p != '[') return -1;
            a->next = p + 1;
            have_messages = 1;
            p = skip_value(p, end);
        } else if (key_is(key, "missed")) {
            const char *q = scan_literal(p, end, "true");
            a->missed = q != NULL;
            p = q != NULL ? q : scan_literal(p, end, "false");
        } else {
            p = skip_value(p, end);
        }
        if (p == NULL) return -1;
        if ((p = end_of_member(p, end)) == NULL) return -1;
    }
    if (p >= end) return -1;
    return have_cursor && have_messages ? 0 : -1;
}

int hb_next_msg(hb_answer *a, hb_msg *m) {
    const char *end = a->end;
    const char *p = skip_ws(a->next, end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
    if (p >= end) return -1;
    if (*p == ']') {
        a->next = p;
        return 0;
    }
    if (*p != '{') return -1;
    memset(m, 0, sizeof(*m));
    p = skip_ws(p + 1, end);
    while (p < end && *p != '}') {
        hb_str key;
        p = scan_key(p, end, &key);
        if (p == NULL) return -1;
        hb_str *field = key_is(key, "channel") ? &m->channel
                        : key_is(key, "id")    ? &m->id
                        : key_is(key, "data")  ? &m->data
                                               : NULL;
        if (field != NULL && *p == '"') {
            p = scan_string(p, end, field);
        } else if (field != NULL) {
            p = scan_literal(p, end, "null");
        } else {
            p = skip_value(p, end);
        }
        if (p == NULL) return -1;
        if ((p = end_of_member(p, end)) == NULL) return -1;
    }
    if (p >= end) return -1;
    a->next = p + 1;
    return 1;
}

int hb_parse_msg(const char *json, size_t len, hb_msg *m) {
    const char *end = json + len;
    const char *p = skip_ws(json, end);
    if (p >= end || *p != '{') return -1;
    hb_answer a;
    memset(&a, 0, sizeof(a));
    a.next = p;
    a.end = end;
    if (hb_next_msg(&a, m) != 1) return -1;
    return skip_ws(a.next, end) == end ? 0 : -1;
}

int hb_data_field(hb_str data, char key, long long *out) {
    size_t i = 0;
    while (i + 1 < data.n) {
        if ((i == 0 || data.p[i - 1] == ' ') && data.p[i] == key && data.p[i + 1] == '=') {
            size_t j = i + 2;
            long long v = 0;
            if (j >= data.n || data.p[j] < '0' || data.p[j] > '9') return -1;
            for (; j < data.n && data.p[j] >= '0' && data.p[j] <= '9'; j++) {
                if (v > (long long)9e17) return -1;
                v = v * 10 + (data.p[j] - '0');
            }
            if (j < data.n && data.p[j] != ' ') return -1;
            *out = v;
            return 0;
        }
        i++;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Command-line values                                                */

int hb_parse_ll(const char *s, long long min, long long max, long long *out) {
    if (s == NULL || *s == '\0') return -1;
    for (const char *p = s; *p; p++)
        if ((*p < '0' || *p > '9') && !(p == s && *p == '-')) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int hb_parse_double(const char *s, double min, double max, double *out) {
    if (s == NULL || *s == '\0') return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int hb_parse_addrs(const char *s, int want_port, struct sockaddr_in *out, int max, int *n,
                   char *err, size_t errlen) {
    *n = 0;
    if (s == NULL || *s == '\0') {
        snprintf(err, errlen, "empty list");
        return -1;
    }
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char item[64];
        if (len == 0 || len >= sizeof(item)) {
            snprintf(err, errlen, "'%.*s' is not an address", (int)(len > 60 ? 60 : len), s);
            return -1;
        }
        memcpy(item, s, len);
        item[len] = '\0';
        if (*n >= max) {
            snprintf(err, errlen, "more than %d addresses", max);
            return -1;
        }
        struct sockaddr_in *sa = &out[*n];
        memset(sa, 0, sizeof(*sa));
        sa->sin_family = AF_INET;
        char *colon = strrchr(item, ':');
        if (want_port) {
            long long port;
            if (colon == NULL || hb_parse_ll(colon + 1, 1, 65535, &port) != 0) {
                snprintf(err, errlen, "'%s' is not HOST:PORT with a port from 1 to 65535", item);
                return -1;
            }
            *colon = '\0';
            sa->sin_port = htons((unsigned short)port);
        } else if (colon != NULL) {
            snprintf(err, errlen, "'%s': give a bare IPv4 address, without a port", item);
            return -1;
        }
        const char *host = strcmp(item, "localhost") == 0 ? "127.0.0.1" : item;
        if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
            snprintf(err, errlen, "'%s' is not an IPv4 address", item);
            return -1;
        }
        (*n)++;
        s += len;
        if (*s == ',') {
            s++;
            if (*s == '\0') {
                snprintf(err, errlen, "trailing comma");
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Browser request headers                                            */

/* What Chrome 131 on Windows sends with a same-origin fetch(): no Origin
 * (a same-origin GET has none), the low-entropy client hints, and the
 * Referer of the page that polls, which goes where the NULL is. */
static const char *const browser_lines[] = {
    "Connection: keep-alive\r\n",
    "sec-ch-ua-platform: \"Windows\"\r\n",
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.0.0 Safari/537.36\r\n",
    "sec-ch-ua: \"Google Chrome\";v=\"131\", \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n",
    "sec-ch-ua-mobile: ?0\r\n",
    "Accept: application/json, text/plain, */*\r\n",
    "Cache-Control: no-cache\r\n",
    "Pragma: no-cache\r\n",
    "X-Requested-With: XMLHttpRequest\r\n",
    "Sec-Fetch-Site: same-origin\r\n",
    "Sec-Fetch-Mode: cors\r\n",
    "Sec-Fetch-Dest: empty\r\n",
    NULL,
    "Accept-Encoding: gzip, deflate, br, zstd\r\n",
    "Accept-Language: en-US,en;q=0.9,de-DE;q=0.8,de;q=0.7,fr;q=0.6\r\n",
    "Priority: u=1, i\r\n",
};

/* Cookies a page with analytics, a consent banner, a chat widget and a
 * session typically holds, with the lengths their values usually have. */
static const struct {
    const char *name;
    int len;
} cookies[] = {
    {"_ga", 26},
    {"_ga_7XK2QW9PLM", 38},
    {"_gid", 27},
    {"_gcl_au", 25},
    {"_fbp", 30},
    {"OptanonAlertBoxClosed", 24},
    {"OptanonConsent", 380},
    {"ajs_anonymous_id", 38},
    {"ajs_user_id", 14},
    {"_hjSessionUser_2741933", 120},
    {"_hjSession_2741933", 100},
    {"intercom-id-q8w3e5r1", 36},
    {"intercom-session-q8w3e5r1", 64},
    {"intercom-device-id-q8w3e5r1", 36},
    {"__stripe_mid", 42},
    {"__stripe_sid", 42},
    {"_cfuvid", 58},
    {"__cf_bm", 130},
    {"csrftoken", 32},
    {"sessionid", 32},
    {"locale", 5},
    {"tz", 13},
    {"theme", 4},
    {"cookie_consent", 4},
    {"_clck", 30},
    {"_clsk", 40},
    {"li_gc", 56},
    {"mp_3f5c1a9e_mixpanel", 210},
    {"remember_token", 60},
    {"XSRF-TOKEN", 220},
};

/* Appends n value bytes (base64url letters, from a fixed sequence, so
 * every call builds the same cookies) at p; returns the end. */
static char *cookie_value(char *p, long long n, unsigned *seed) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (long long i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        *p++ = abc[(*seed >> 16) & 63];
    }
    return p;
}

/* Writes "Cookie: <exactly n bytes>\r\n" at p (room checked by the
 * caller); returns the end. */
static char *cookie_header(char *p, long long n) {
    unsigned seed = 20261123u;
    long long left = n;
    int count = 0;
    memcpy(p, "Cookie: ", 8);
    p += 8;
    for (size_t i = 0; i < sizeof(cookies) / sizeof(cookies[0]); i++) {
        long long sep = count > 0 ? 2 : 0;
        long long name = (long long)strlen(cookies[i].name);
        long long piece = sep + name + 1 + cookies[i].len;
        if (piece > left) {
            /* The first cookie is shortened to fit; a later one that does
             * not fit is left out, and the last one kept is lengthened by
             * what no cookie filled. */
            if (count > 0) continue;
            piece = left;
        }
        if (sep) {
            memcpy(p, "; ", 2);
            p += 2;
        }
        memcpy(p, cookies[i].name, (size_t)name);
        p += name;
        *p++ = '=';
        p = cookie_value(p, piece - sep - name - 1, &seed);
        left -= piece;
        count++;
    }
    p = cookie_value(p, left, &seed);
    memcpy(p, "\r\n", 2);
    return p + 2;
}

long hb_browser_headers(char *buf, size_t cap, const char *host, int browser,
                        long long cookie_bytes) {
    size_t n = 0;
    if (cap > 0) buf[0] = '\0';
    if (cookie_bytes < 0 || (cookie_bytes > 0 && cookie_bytes < HB_COOKIE_MIN)) return -1;
    if (browser) {
        for (size_t i = 0; i < sizeof(browser_lines) / sizeof(browser_lines[0]); i++) {
            if (n >= cap) goto too_small;
            int w = browser_lines[i] == NULL
                        ? snprintf(buf + n, cap - n,
                                   "Referer: http://%s/app/inbox/conversations/8f3a2c91?folder=all"
                                   "&sort=recent&view=list\r\n",
                                   host)
                        : snprintf(buf + n, cap - n, "%s", browser_lines[i]);
            if (w < 0 || (size_t)w >= cap - n) goto too_small;
            n += (size_t)w;
        }
    }
    if (cookie_bytes > 0) {
        /* "Cookie: ", the value, CRLF and the NUL. */
        if ((unsigned long long)cookie_bytes + 11 > cap - n) goto too_small;
        n = (size_t)(cookie_header(buf + n, cookie_bytes) - buf);
        buf[n] = '\0';
    }
    return (long)n;
too_small:
    if (cap > 0) buf[0] = '\0';
    return -1;
}
