/* hl_log.h -- the one logger of the process.
 *
 * The core logs only through these calls; cmd/ decides the format once at
 * start, before any thread runs. Lines go to stderr or to a file, one
 * write per line, so lines from different workers never interleave. The
 * file can be reopened and the level changed while threads log (SIGHUP). */
#ifndef HL_LOG_H
#define HL_LOG_H

#include <stddef.h>

typedef enum hl_log_level {
    HL_LOG_DEBUG = 0,
    HL_LOG_INFO,
    HL_LOG_WARN,
    HL_LOG_ERROR,
} hl_log_level;

typedef enum hl_log_format {
    HL_LOG_TEXT = 0, /* "2026-11-23T19:20:40.123Z info  message" */
    HL_LOG_JSON,     /* {"ts":"...","level":"info","msg":"..."} */
} hl_log_format;

/* Sets the minimum level and the format; call before threads start. */
void hl_log_setup(hl_log_level level, hl_log_format format);

/* Changes the minimum level; safe while other threads log. */
void hl_log_set_level(hl_log_level level);

/* Sends lines to path (appended, created 0644) instead of stderr; called
 * again, reopens it on the same descriptor, so a rotated file is let go
 * without losing a line. Returns 0, or -1 with errno set (nothing
 * changes). */
int hl_log_open(const char *path);

/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int hl_log_level_parse(const char *name);

/* True when a message at this level would be written. */
int hl_log_enabled(hl_log_level level);

/* Every line goes through this before it is written: a token must never
 * reach a log, whatever a message quotes (a URL with ?token=, a header).
 * Replaces, in place, the value after "token=" and after "Bearer " and
 * anything shaped like a JWT ("eyJ...", dot, more base64url, dot) with
 * "[redacted]", cutting the message to size bytes (NUL included; at most
 * 1024) if it grows. Returns the new length. */
size_t hl_log_redact(char *msg, size_t size);

void hl_log(hl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hl_debug(...) hl_log(HL_LOG_DEBUG, __VA_ARGS__)
#define hl_info(...) hl_log(HL_LOG_INFO, __VA_ARGS__)
#define hl_warn(...) hl_log(HL_LOG_WARN, __VA_ARGS__)
#define hl_error(...) hl_log(HL_LOG_ERROR, __VA_ARGS__)

#endif
