/* fuzz.h -- what the libFuzzer targets in fuzz/ share: the entry point's
 * prototype, a check that stops the run when a promise of a core header is
 * broken, and a reader that cuts typed values off the front of an input.
 *
 * The sanitizers find memory errors, leaks and undefined behaviour by
 * themselves; FUZZ_CHECK is for the rest of a header's contract (a span
 * inside its input, a round trip that gives the same value). A failed
 * check names itself on stderr and traps, and libFuzzer saves the input
 * like any other crash. */
#ifndef HL_FUZZ_H
#define HL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer calls this once per input; data[0..size) is a heap copy of
 * exactly size bytes, so reading past it is an ASan error. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);             \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* The unread rest of an input. Reading past the end gives zeros, so a
 * short input is still a whole test case. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline uint8_t fuzz_byte(fuzz_in *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

static inline uint64_t fuzz_u64(fuzz_in *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | fuzz_byte(in);
    return v;
}

/* Takes up to n bytes; *len says how many there were. */
static inline const char *fuzz_bytes(fuzz_in *in, size_t n, size_t *len) {
    const char *p = (const char *)in->p;
    *len = n < in->n ? n : in->n;
    in->p += *len;
    in->n -= *len;
    return p;
}

/* A NUL-terminated heap copy of p[0..n) for the functions that take C
 * strings; it ends at the first NUL byte of p, as a C caller's would.
 * Aborts when out of memory, which libFuzzer reports. */
static inline char *fuzz_strndup(const void *p, size_t n) {
    char *s = malloc(n + 1);
    if (s == NULL) abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* An error buffer of exactly errlen bytes, filled with junk so that a
 * missing terminator shows, and on the heap so that ASan sees a write
 * past its end. */
static inline char *fuzz_errbuf(size_t errlen) {
    char *err = malloc(errlen);
    if (err == NULL) abort();
    memset(err, 0xA5, errlen);
    return err;
}

/* 1 if an error message was written: NUL-terminated within errlen bytes
 * and, when there is room for one, not empty. */
static inline int fuzz_err_written(const char *err, size_t errlen) {
    const char *nul = memchr(err, '\0', errlen);
    return nul != NULL && (errlen == 1 || nul > err);
}

#endif
