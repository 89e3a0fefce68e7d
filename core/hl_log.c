#include "hl_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

void hl_log(hl_log_level level, const char *fmt, ...) {
    if (!hl_log_enabled(level)) return;

    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

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
