/* hl_grant.h -- channel patterns: what a token grants and which channels
 * auth.public_channels opens.
 *
 * A pattern is a channel name ("news") or a prefix ending in '*'
 * ("user.42.*" grants "user.42.inbox", not "user.420"; "*" alone grants
 * every channel). A '*' anywhere else, or a character no channel name
 * has, makes the string no pattern at all: hl_grant_valid() says so, and
 * callers refuse it rather than let it grant nothing in silence.
 *
 * Pure: no I/O, no allocation; matching compares bytes. */
#ifndef HL_GRANT_H
#define HL_GRANT_H

#include <stddef.h>

/* 1 if p[0..n) is a pattern: a valid channel name, or "*" after 0 to 199
 * bytes of channel characters. */
int hl_grant_valid(const char *p, size_t n);

/* 1 if pattern p[0..pn) (valid) grants channel ch[0..cn), else 0. */
int hl_grant_match(const char *p, size_t pn, const char *ch, size_t cn);

/* A list of patterns, each pointing into memory the list's owner keeps. */
typedef struct hl_grants {
    const char *const *pat; /* pat[i] is len[i] bytes, not NUL-terminated */
    const size_t *len;
    size_t n;
} hl_grants;

/* 1 if any pattern of g grants ch[0..cn). */
int hl_grants_allow(const hl_grants *g, const char *ch, size_t cn);

#endif
