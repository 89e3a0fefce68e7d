#include "hb_bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hb_channel_name(const hb_opts *o, const char *kind, long long k, char *buf, size_t len) {
    snprintf(buf, len, "%s-%s%lld", o->prefix, kind, k);
}

size_t hb_format_data(const hb_opts *o, char *buf, size_t cap, const char *fields) {
    size_t n = (size_t)snprintf(buf, cap, "%s", fields);
    if (n >= cap) n = cap - 1;
    /* Padding is one more space-separated field without '=', so the
     * receivers' field scan skips it. */
    if (o->size > 0 && (size_t)o->size > n + 1 && (size_t)o->size < cap) {
        buf[n++] = ' ';
        memset(buf + n, 'x', (size_t)o->size - n);
        n = (size_t)o->size;
        buf[n] = '\0';
    }
    return n;
}

void hb_log(const hb_opts *o, const char *fmt, ...) {
    if (!o->verbose) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "holdline-bench: %s\n", line);
}

void hb_warn(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "holdline-bench: %s\n", line);
}
