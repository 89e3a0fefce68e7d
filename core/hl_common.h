/* hl_common.h -- small definitions every holdline module shares.
 *
 * One error contract for the whole core: functions return HL_OK or HL_ERR
 * and, where a reason matters, write it into a buffer the caller passes
 * (char *err, size_t errlen). The core never prints and never exits. */
#ifndef HL_COMMON_H
#define HL_COMMON_H

#include <stddef.h>

/* The version holdline reports (--version, holdline_build_info). */
#define HL_VERSION "0.1.0"

#define HL_OK 0
#define HL_ERR -1

/* Writes a formatted message into err (if err is not NULL and errlen > 0),
 * always NUL-terminated. Returns HL_ERR so callers can write
 * `return hl_set_error(err, errlen, "...")`. */
int hl_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define HL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
