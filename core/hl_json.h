/* hl_json.h -- a growable byte buffer and JSON text encoding.
 *
 * Encoding only: holdline writes JSON, it never parses it. Strings from
 * the outside (message data, channel names, error details) may hold any
 * bytes; hl_json_string() always emits valid JSON, replacing bytes that
 * are not well-formed UTF-8 by U+FFFD, so one bad publisher cannot break
 * the answers of every waiter on a channel.
 *
 * Out of memory is sticky: after a failed growth b->oom is set, every
 * later append is a no-op, and the caller checks oom once at the end. */
#ifndef HL_JSON_H
#define HL_JSON_H

#include <stddef.h>

typedef struct hl_buf {
    char *data; /* NUL-terminated when len > 0; owned by the buffer */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    int oom;    /* 1 once an allocation failed */
} hl_buf;

void hl_buf_init(hl_buf *b);
void hl_buf_free(hl_buf *b);

/* Hands the bytes to the caller (who frees them with free()) and resets
 * the buffer. Returns NULL if the buffer is empty or out of memory. */
char *hl_buf_take(hl_buf *b, size_t *len);

void hl_buf_append(hl_buf *b, const void *p, size_t n);
void hl_buf_puts(hl_buf *b, const char *s);
void hl_buf_printf(hl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s[0..n) as a quoted JSON string. */
void hl_json_string(hl_buf *b, const char *s, size_t n);

/* Appends {"error":"<code>","detail":"<detail>"}. */
void hl_json_error(hl_buf *b, const char *code, const char *detail);

/* Allocation hook for tests: the next `n` allocations succeed, then every
 * one fails until reset with -1 (the default: never fail). */
void hl_json_fail_after(int n);

#endif
