#include "hl_request.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"

typedef struct route_entry {
    const char *path;
    hl_route_kind kind;
    int prefix; /* 1: "/poll" also matches "/poll/..." with an argument */
} route_entry;

static const route_entry routes[] = {
    {"/", HL_ROUTE_INDEX, 0},
    {"/index.html", HL_ROUTE_INDEX, 0},
    {"/holdline.js", HL_ROUTE_CLIENT_JS, 0},
    {"/poll", HL_ROUTE_POLL, 1},
    {"/events", HL_ROUTE_EVENTS, 1},
    {"/publish", HL_ROUTE_PUBLISH, 1},
    {"/channels", HL_ROUTE_CHANNEL, 1},
    {"/healthz", HL_ROUTE_HEALTHZ, 0},
    {"/readyz", HL_ROUTE_READYZ, 0},
    {"/metrics", HL_ROUTE_METRICS, 0},
};

void hl_route_match(const char *path, hl_route *out) {
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < HL_ARRAY_LEN(routes); i++) {
        const route_entry *r = &routes[i];
        size_t n = strlen(r->path);
        if (strncmp(path, r->path, n) != 0) continue;
        if (path[n] == '\0') {
            out->kind = r->kind;
            return;
        }
        if (r->prefix && path[n] == '/') {
            out->kind = r->kind;
            out->arg.p = path + n + 1;
            out->arg.n = strlen(path + n + 1);
            return;
        }
    }
}

int hl_route_method_ok(hl_route_kind kind, const char *method) {
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    switch (kind) {
    case HL_ROUTE_PUBLISH: return strcmp(method, "POST") == 0;
    case HL_ROUTE_POLL:
    case HL_ROUTE_EVENTS:
    case HL_ROUTE_CHANNEL: return strcmp(method, "GET") == 0;
    case HL_ROUTE_NONE: return 1;
    default: return get;
    }
}

const char *hl_route_allow(hl_route_kind kind) {
    switch (kind) {
    case HL_ROUTE_PUBLISH: return "POST, OPTIONS";
    case HL_ROUTE_POLL:
    case HL_ROUTE_EVENTS:
    case HL_ROUTE_CHANNEL: return "GET, OPTIONS";
    default: return "GET, HEAD, OPTIONS";
    }
}

static int channel_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == ':' || c == '-';
}

int hl_channel_valid(const char *s, size_t n) {
    if (n == 0 || n > HL_CHANNEL_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++)
        if (!channel_char((unsigned char)s[i])) return 0;
    return 1;
}

int hl_idempotency_key_valid(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n == 64 || c == '~' || !channel_char(c)) return 0;
    }
    return n > 0;
}

int hl_channels_parse(const char *s, size_t n, hl_span *out, size_t max, size_t *count, char *err,
                      size_t errlen) {
    *count = 0;
    if (n == 0) return hl_set_error(err, errlen, "no channel given");
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',') continue;
        hl_span part = {s + start, i - start};
        if (!hl_channel_valid(part.p, part.n))
            return hl_set_error(err, errlen,
                                "channel names are 1 to %d bytes of A-Z a-z 0-9 . _ ~ : -",
                                HL_CHANNEL_MAX_LEN);
        if (*count == max)
            return hl_set_error(err, errlen, "at most %zu channels per request", max);
        for (size_t k = 0; k < *count; k++)
            if (out[k].n == part.n && memcmp(out[k].p, part.p, part.n) == 0)
                return hl_set_error(err, errlen, "channel '%.*s' given twice", (int)part.n, part.p);
        out[(*count)++] = part;
        start = i + 1;
    }
    return HL_OK;
}

int hl_timeout_parse(const char *s, int def, int max, int *out, char *err, size_t errlen) {
    if (s == NULL) {
        *out = def < max ? def : max;
        return HL_OK;
    }
    /* strtol would accept leading spaces and signs; a timeout is digits. */
    int digits = *s != '\0';
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') digits = 0;
    long v = 0;
    if (digits) {
        errno = 0;
        v = strtol(s, NULL, 10);
        if (errno == ERANGE || v > INT_MAX) v = 0; /* too big for any max: refused below */
    }
    if (v < 1 || v > max)
        return hl_set_error(err, errlen, "timeout must be whole seconds from 1 to %d", max);
    *out = (int)v;
    return HL_OK;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t hl_percent_decode(char *s) {
    char *w = s;
    for (char *r = s; *r;) {
        if (*r != '%') {
            *w++ = *r++;
            continue;
        }
        int hi = r[1] ? hex_value(r[1]) : -1;
        int lo = hi >= 0 && r[2] ? hex_value(r[2]) : -1;
        if (hi < 0 || lo < 0) {
            *w++ = 0x7F;
            r++;
            continue;
        }
        int c = hi * 16 + lo;
        *w++ = c == 0 ? 0x7F : (char)c;
        r += 3;
    }
    *w = '\0';
    return (size_t)(w - s);
}
