#include "hl_json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail_after = -1;

void hl_json_fail_after(int n) {
    fail_after = n;
}

static void *buf_realloc(void *p, size_t n) {
    if (fail_after == 0) return NULL;
    if (fail_after > 0) fail_after--;
    return realloc(p, n);
}

void hl_buf_init(hl_buf *b) {
    memset(b, 0, sizeof(*b));
}

void hl_buf_free(hl_buf *b) {
    if (b == NULL) return;
    free(b->data);
    hl_buf_init(b);
}

char *hl_buf_take(hl_buf *b, size_t *len) {
    char *p = NULL;
    if (!b->oom && b->len > 0) {
        p = b->data;
        if (len) *len = b->len;
        b->data = NULL;
    }
    hl_buf_free(b);
    return p;
}

/* Makes room for n more bytes plus the NUL. */
static int buf_reserve(hl_buf *b, size_t n) {
    if (b->oom) return -1;
    if (n > SIZE_MAX / 2 - b->len) goto fail;
    size_t need = b->len + n + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = buf_realloc(b->data, cap);
    if (p == NULL) goto fail;
    b->data = p;
    b->cap = cap;
    return 0;
fail:
    b->oom = 1;
    return -1;
}

void hl_buf_append(hl_buf *b, const void *p, size_t n) {
    if (n == 0 || buf_reserve(b, n) != 0) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void hl_buf_puts(hl_buf *b, const char *s) {
    hl_buf_append(b, s, strlen(s));
}

void hl_buf_printf(hl_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0 || buf_reserve(b, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Returns the length of the well-formed UTF-8 sequence at s (at most n
 * bytes available), or 0 if the bytes there are not one. Overlong forms,
 * surrogates and code points above U+10FFFF are rejected (RFC 3629). */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] > 0x9F) return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] > 0x8F) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

void hl_json_string(hl_buf *b, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    hl_buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < n && !b->oom) {
        /* Copy the longest run that needs no escaping in one append. */
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            hl_buf_append(b, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            char esc[6];
            switch (c) {
            case '"': hl_buf_append(b, "\\\"", 2); break;
            case '\\': hl_buf_append(b, "\\\\", 2); break;
            case '\n': hl_buf_append(b, "\\n", 2); break;
            case '\r': hl_buf_append(b, "\\r", 2); break;
            case '\t': hl_buf_append(b, "\\t", 2); break;
            case '\b': hl_buf_append(b, "\\b", 2); break;
            case '\f': hl_buf_append(b, "\\f", 2); break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                hl_buf_append(b, esc, 6);
            }
            i++;
            continue;
        }
        size_t len = utf8_seq_len(s + i, n - i);
        if (len == 0) {
            hl_buf_append(b, "\\ufffd", 6);
            i++;
        } else {
            /* U+2028 and U+2029 are valid JSON but end a line in older
             * JavaScript parsers; escaping them costs nothing. */
            if (len == 3 && s[i] == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] & 0xFE) == 0xA8)
                hl_buf_append(b, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            else
                hl_buf_append(b, s + i, len);
            i += len;
        }
    }
    hl_buf_append(b, "\"", 1);
}

void hl_json_error(hl_buf *b, const char *code, const char *detail) {
    hl_buf_puts(b, "{\"error\":");
    hl_json_string(b, code, strlen(code));
    hl_buf_puts(b, ",\"detail\":");
    hl_json_string(b, detail, strlen(detail));
    hl_buf_puts(b, "}");
}
