#include "hl_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hl_json.h"

static hl_log_level log_min = HL_LOG_INFO; /* atomic: SIGHUP may change it */
static hl_log_format log_fmt = HL_LOG_TEXT;
static int log_fd = STDERR_FILENO; /* a file's descriptor stays the same across reopens */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hl_log_setup(hl_log_level level, hl_log_format format) {
    log_min = level;
    log_fmt = format;
}

void hl_log_set_level(hl_log_level level) {
    __atomic_store_n(&log_min, level, __ATOMIC_RELAXED);
}

int hl_log_open(const char *path) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (log_fd == STDERR_FILENO) {
        log_fd = fd; /* the first open happens before any thread runs */
        return 0;
    }
    /* dup2 swaps the file under the descriptor in one step: a line being
     * written goes wholly to the old file or wholly to the new one. */
    int rc = dup2(fd, log_fd) < 0 ? -1 : 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int hl_log_level_parse(const char *name) {
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0) return (int)i;
    return -1;
}

int hl_log_enabled(hl_log_level level) {
    return level >= __atomic_load_n(&log_min, __ATOMIC_RELAXED);
}

static int b64url_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Bytes of a JWT-shaped run at p: two dots between base64url, the first
 * part beginning "eyJ" (the encoding of '{"'); 0 if there is none. */
static size_t jwt_run(const char *p) {
    if (strncmp(p, "eyJ", 3) != 0) return 0;
    size_t i = 0, dots = 0;
    while (b64url_char(p[i]) || (p[i] == '.' && dots < 2 && ++dots))
        i++;
    return dots == 2 ? i : 0;
}

/* Bytes of the value at p: up to a separator. */
static size_t value_run(const char *p) {
    size_t i = 0;
    while (p[i] && strchr(" \t&;,\"'<>", p[i]) == NULL)
        i++;
    return i;
}

size_t hl_log_redact(char *msg, size_t size) {
    static const char mark[] = "[redacted]";
    char out[1024];
    size_t cap = size < sizeof(out) ? size : sizeof(out);
    size_t o = 0;
    for (const char *p = msg; *p && o + 1 < cap;) {
        size_t lead = 0, run;
        if (strncmp(p, "token=", 6) == 0)
            lead = 6;
        else if (strncasecmp(p, "Bearer ", 7) == 0)
            lead = 7;
        run = lead ? value_run(p + lead) : jwt_run(p);
        if (run == 0) {
            out[o++] = *p++;
            continue;
        }
        int w = snprintf(out + o, cap - o, "%.*s%s", (int)lead, p, mark);
        o = w < 0 || (size_t)w >= cap - o ? cap - 1 : o + (size_t)w;
        p += lead + run;
    }
    out[o] = '\0';
    memcpy(msg, out, o + 1);
    return o;
}

void hl_log(hl_log_level level, const char *fmt, ...) {
    if (!hl_log_enabled(level)) return;

    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hl_log_redact(msg, sizeof(msg));

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    /* The whole line is built first and written with one write(2), so that
     * lines of concurrent workers never mix. */
    char line[1400];
    int len;
    if (log_fmt == HL_LOG_JSON) {
        hl_buf b;
        hl_buf_init(&b);
        hl_json_string(&b, msg, strlen(msg));
        len = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":%.*s}\n", ts,
                       level_names[level], b.oom ? 2 : (int)b.len, b.oom ? "\"\"" : b.data);
        hl_buf_free(&b);
    } else {
        len = snprintf(line, sizeof(line), "%s %-5s %s\n", ts, level_names[level], msg);
    }
    if (len < 0) return;
    if ((size_t)len >= sizeof(line)) {
        len = sizeof(line) - 1;
        line[len - 1] = '\n';
    }
    ssize_t w = write(log_fd, line, (size_t)len);
    (void)w;
}
