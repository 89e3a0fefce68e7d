/* Unit tests for core/hl_json.c: the growable buffer and JSON string
 * encoding. Inputs are copied into buffers of exactly their length, so an
 * over-read by the encoder shows up under ASan instead of passing quietly.
 * Every output is also run through a strict JSON-string validator that
 * knows nothing of the encoder's code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A byte string with its length, so inputs may hold NUL bytes. */
#define BYTES(s) (s), (sizeof(s) - 1)

/* ---- Helpers ----------------------------------------------------------- */

/* Every test resets the allocation hook, so one that fails half-way cannot
 * leave the next one starved of memory. */
static int reset_alloc(void **state) {
    (void)state;
    hl_json_fail_after(-1);
    return 0;
}

/* Returns a copy of s[0..n) in a block of exactly n bytes (one byte for
 * n == 0, never read). */
static char *exact_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    return p;
}

/* Writes s[0..n) printably into out, for failure messages. */
static const char *show(const char *s, size_t n, char *out, size_t outlen) {
    size_t w = 0;
    for (size_t i = 0; i < n && w + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            out[w++] = (char)c;
        else
            w += (size_t)snprintf(out + w, outlen - w, "\\x%02x", c);
    }
    out[w] = '\0';
    return out;
}

/* Appends code point cp as UTF-8 to out at *w. */
static void put_utf8(unsigned char *out, size_t *w, uint32_t cp) {
    if (cp < 0x80) {
        out[(*w)++] = (unsigned char)cp;
    } else if (cp < 0x800) {
        out[(*w)++] = (unsigned char)(0xC0 | (cp >> 6));
        out[(*w)++] = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*w)++] = (unsigned char)(0xE0 | (cp >> 12));
        out[(*w)++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*w)++] = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        out[(*w)++] = (unsigned char)(0xF0 | (cp >> 18));
        out[(*w)++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*w)++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*w)++] = (unsigned char)(0x80 | (cp & 0x3F));
    }
}

/* Decodes the well-formed UTF-8 sequence at s (n bytes available) the
 * long way, by computing the code point, so that it shares no logic with
 * the encoder's table of lead bytes. Returns its length, or 0. */
static size_t ref_utf8_len(const unsigned char *s, size_t n, uint32_t *cp_out) {
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80) {
        len = 1;
        cp = s[0];
    } else if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1Fu;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0Fu;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    if (cp < min_cp[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
    if (cp_out) *cp_out = cp;
    return len;
}

static int hex_digit(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Checks that j[0..n) is exactly one JSON string (RFC 8259): quotes at
 * both ends, no raw control characters or bare quotes, only the defined
 * escapes, \u escapes never naming a lone surrogate, and valid UTF-8
 * throughout. On success writes the decoded bytes to out (which must hold
 * n bytes) and returns their count; on failure returns -1 and the reason
 * in *why. */
static long json_string_decode(const char *js, size_t n, unsigned char *out, const char **why) {
    const unsigned char *j = (const unsigned char *)js;
    size_t w = 0;
    *why = "";
    if (n < 2 || j[0] != '"' || j[n - 1] != '"') {
        *why = "not quoted";
        return -1;
    }
    for (size_t i = 1; i < n - 1;) {
        unsigned char c = j[i];
        if (c < 0x20) {
            *why = "raw control character";
            return -1;
        }
        if (c == '"') {
            *why = "bare quote inside";
            return -1;
        }
        if (c == '\\') {
            if (i + 1 >= n - 1) {
                *why = "escape runs into the closing quote";
                return -1;
            }
            unsigned char e = j[i + 1];
            static const char names[] = "\"\\/bfnrt";
            static const char bytes[] = "\"\\/\b\f\n\r\t";
            const char *simple = e != '\0' ? strchr(names, e) : NULL;
            if (simple != NULL) {
                out[w++] = (unsigned char)bytes[simple - names];
                i += 2;
                continue;
            }
            if (e != 'u' || i + 6 > n - 1) {
                *why = "unknown or short escape";
                return -1;
            }
            uint32_t cp = 0;
            for (size_t k = 2; k < 6; k++) {
                int d = hex_digit(j[i + k]);
                if (d < 0) {
                    *why = "bad hex digit in \\u escape";
                    return -1;
                }
                cp = cp * 16 + (uint32_t)d;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                *why = "\\u escape names a surrogate";
                return -1;
            }
            put_utf8(out, &w, cp);
            i += 6;
            continue;
        }
        size_t len = ref_utf8_len(j + i, n - 1 - i, NULL);
        if (len == 0) {
            *why = "invalid UTF-8";
            return -1;
        }
        memcpy(out + w, j + i, len);
        w += len;
        i += len;
    }
    return (long)w;
}

/* What decoding the encoder's output must give back: the input with every
 * byte that does not start a well-formed sequence replaced by U+FFFD. */
static size_t expected_decoding(const unsigned char *s, size_t n, unsigned char *out) {
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t len = ref_utf8_len(s + i, n - i, NULL);
        if (len == 0) {
            memcpy(out + w, "\xEF\xBF\xBD", 3);
            w += 3;
            i++;
        } else {
            memcpy(out + w, s + i, len);
            w += len;
            i += len;
        }
    }
    return w;
}

/* Encodes in[0..n), checks the result is valid JSON that decodes to the
 * input with bad bytes replaced, and returns the encoding (caller frees). */
static char *encode_checked(const char *in, size_t n, size_t *outlen, const char *label) {
    hl_buf b;
    char *copy = exact_copy(in, n);
    hl_buf_init(&b);
    hl_json_string(&b, copy, n);
    free(copy);
    assert_int_equal(b.oom, 0);
    assert_non_null(b.data);
    assert_int_equal(b.data[b.len], '\0');
    assert_true(b.len + 1 <= b.cap);

    unsigned char *got = malloc(b.len + 1);
    unsigned char *want = malloc(3 * n + 1);
    assert_non_null(got);
    assert_non_null(want);
    const char *why;
    long gn = json_string_decode(b.data, b.len, got, &why);
    if (gn < 0) fail_msg("%s: output is not a valid JSON string: %s", label, why);
    size_t wn = expected_decoding((const unsigned char *)in, n, want);
    if ((size_t)gn != wn || memcmp(got, want, wn) != 0)
        fail_msg("%s: output does not decode to the input with bad bytes replaced", label);
    free(got);
    free(want);

    char *out = hl_buf_take(&b, outlen);
    assert_non_null(out);
    return out;
}

typedef struct json_case {
    const char *in;
    size_t n;
    const char *want; /* the whole encoding, quotes included */
} json_case;

static void run_json_cases(const json_case *cases, size_t ncases) {
    for (size_t i = 0; i < ncases; i++) {
        char label[64], shown[512], shown2[512];
        size_t len = 0;
        snprintf(label, sizeof(label), "case %zu", i);
        char *out = encode_checked(cases[i].in, cases[i].n, &len, label);
        if (len != strlen(cases[i].want) || memcmp(out, cases[i].want, len) != 0)
            fail_msg("case %zu: input \"%s\": got %s, want %s", i,
                     show(cases[i].in, cases[i].n, shown, sizeof(shown)),
                     show(out, len, shown2, sizeof(shown2)), cases[i].want);
        free(out);
    }
}

/* xorshift64*: reproducible bytes, so a failure can be replayed. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* ---- ASCII, quotes, control characters ---------------------------------- */

static const json_case ascii_cases[] = {
    {BYTES(""), "\"\""},
    {BYTES("hello"), "\"hello\""},
    {BYTES("a b c ~!@#$%^&*()_+-={}[]|:;'<>,.?"), "\"a b c ~!@#$%^&*()_+-={}[]|:;'<>,.?\""},
    /* Slash needs no escape, and DEL is not a control character to JSON. */
    {BYTES("</script>"), "\"</script>\""},
    {BYTES("\x7f"), "\"\x7f\""},
    {BYTES("\""), "\"\\\"\""},
    {BYTES("\\"), "\"\\\\\""},
    {BYTES("\"\""), "\"\\\"\\\"\""},
    {BYTES("\\\\"), "\"\\\\\\\\\""},
    {BYTES("a\"b\\c"), "\"a\\\"b\\\\c\""},
    {BYTES("\\\""), "\"\\\\\\\"\""},
    {BYTES("\\u0041"), "\"\\\\u0041\""},
    {BYTES("\n"), "\"\\n\""},
    {BYTES("\r"), "\"\\r\""},
    {BYTES("\t"), "\"\\t\""},
    {BYTES("\b"), "\"\\b\""},
    {BYTES("\f"), "\"\\f\""},
    {BYTES("\x0b"), "\"\\u000b\""},
    {BYTES("\x1b[31m"), "\"\\u001b[31m\""},
    {BYTES("\x1f"), "\"\\u001f\""},
    {BYTES("\x01\x02"), "\"\\u0001\\u0002\""},
    {BYTES("line1\r\nline2\n"), "\"line1\\r\\nline2\\n\""},
    /* A NUL ends nothing: n counts it like any other byte. */
    {BYTES("\0"), "\"\\u0000\""},
    {BYTES("a\0b"), "\"a\\u0000b\""},
    {BYTES("a\0b\0\0c"), "\"a\\u0000b\\u0000\\u0000c\""},
    {BYTES("\0\0\0"), "\"\\u0000\\u0000\\u0000\""},
    {BYTES("end\0"), "\"end\\u0000\""},
};

static void test_json_string_escapes_ascii(void **state) {
    (void)state;
    run_json_cases(ascii_cases, HL_ARRAY_LEN(ascii_cases));
}

static void test_json_string_escapes_every_control_character(void **state) {
    (void)state;
    for (unsigned c = 0; c < 0x20; c++) {
        char in[3] = {'<', (char)c, '>'};
        char want[16];
        const char *named = NULL;
        switch (c) {
        case '\n': named = "\\n"; break;
        case '\r': named = "\\r"; break;
        case '\t': named = "\\t"; break;
        case '\b': named = "\\b"; break;
        case '\f': named = "\\f"; break;
        }
        if (named)
            snprintf(want, sizeof(want), "\"<%s>\"", named);
        else
            snprintf(want, sizeof(want), "\"<\\u00%c%c>\"", "0123456789abcdef"[c >> 4],
                     "0123456789abcdef"[c & 15]);
        json_case one = {in, sizeof(in), want};
        run_json_cases(&one, 1);
    }
}

static void test_json_string_stops_at_n(void **state) {
    hl_buf b;
    (void)state;
    hl_buf_init(&b);
    /* Only the first n bytes count, even where the string goes on. */
    hl_json_string(&b, "abcdef", 3);
    assert_string_equal(b.data, "\"abc\"");
    hl_buf_free(&b);
    /* n == 0 never reads the pointer. */
    hl_json_string(&b, NULL, 0);
    assert_string_equal(b.data, "\"\"");
    hl_buf_free(&b);
}

/* ---- UTF-8 ---------------------------------------------------------------- */

static const json_case utf8_valid_cases[] = {
    {BYTES("\xC3\xA9"), "\"\xC3\xA9\""}, /* U+00E9 */
    {BYTES("caf\xC3\xA9"), "\"caf\xC3\xA9\""},
    {BYTES("\xC2\x80"), "\"\xC2\x80\""},                 /* U+0080, smallest 2-byte */
    {BYTES("\xDF\xBF"), "\"\xDF\xBF\""},                 /* U+07FF, largest 2-byte */
    {BYTES("\xE0\xA0\x80"), "\"\xE0\xA0\x80\""},         /* U+0800, smallest 3-byte */
    {BYTES("\xE2\x82\xAC"), "\"\xE2\x82\xAC\""},         /* U+20AC euro */
    {BYTES("\xED\x9F\xBF"), "\"\xED\x9F\xBF\""},         /* U+D7FF, just below surrogates */
    {BYTES("\xEE\x80\x80"), "\"\xEE\x80\x80\""},         /* U+E000, just above them */
    {BYTES("\xEF\xBF\xBD"), "\"\xEF\xBF\xBD\""},         /* U+FFFD itself */
    {BYTES("\xEF\xBF\xBF"), "\"\xEF\xBF\xBF\""},         /* U+FFFF, largest 3-byte */
    {BYTES("\xF0\x90\x80\x80"), "\"\xF0\x90\x80\x80\""}, /* U+10000, smallest 4-byte */
    {BYTES("\xF0\x9F\x98\x80"), "\"\xF0\x9F\x98\x80\""}, /* U+1F600 emoji */
    {BYTES("\xF4\x8F\xBF\xBF"), "\"\xF4\x8F\xBF\xBF\""}, /* U+10FFFF, the last */
    {BYTES("\xE2\x80\xA7"), "\"\xE2\x80\xA7\""},         /* U+2027, beside U+2028 */
    {BYTES("\xE2\x80\xAA"), "\"\xE2\x80\xAA\""},         /* U+202A, beside U+2029 */
    {BYTES("a\xC3\xA9\"\xE2\x82\xAC\n\xF0\x9F\x98\x80z"),
     "\"a\xC3\xA9\\\"\xE2\x82\xAC\\n\xF0\x9F\x98\x80z\""},
    /* Line and paragraph separators end a line in old JavaScript. */
    {BYTES("\xE2\x80\xA8"), "\"\\u2028\""},
    {BYTES("\xE2\x80\xA9"), "\"\\u2029\""},
    {BYTES("a\xE2\x80\xA8"
           "b\xE2\x80\xA9"
           "c"),
     "\"a\\u2028b\\u2029c\""},
};

static void test_json_string_passes_valid_utf8_through(void **state) {
    (void)state;
    run_json_cases(utf8_valid_cases, HL_ARRAY_LEN(utf8_valid_cases));
}

#define FFFD "\\ufffd"

/* The rule in hl_json.c: a byte that does not start a well-formed sequence
 * (RFC 3629) becomes one U+FFFD and the scan resumes at the next byte, so
 * a broken sequence of k bytes gives k replacements unless one of its
 * later bytes starts a good sequence of its own. */
static const json_case utf8_invalid_cases[] = {
    /* Lone continuation bytes. */
    {BYTES("\x80"), "\"" FFFD "\""},
    {BYTES("\xBF"), "\"" FFFD "\""},
    {BYTES("a\x80z"), "\"a" FFFD "z\""},
    {BYTES("\x80\x80\x80"), "\"" FFFD FFFD FFFD "\""},
    /* Sequences cut short by the end of the input. */
    {BYTES("\xC3"), "\"" FFFD "\""},
    {BYTES("a\xC3"), "\"a" FFFD "\""},
    {BYTES("\xE2"), "\"" FFFD "\""},
    {BYTES("\xE2\x82"), "\"" FFFD FFFD "\""},
    {BYTES("\xF0"), "\"" FFFD "\""},
    {BYTES("\xF0\x9F"), "\"" FFFD FFFD "\""},
    {BYTES("\xF0\x9F\x98"), "\"" FFFD FFFD FFFD "\""},
    /* Cut short by a byte that is not a continuation. */
    {BYTES("\xC3"
           "A"),
     "\"" FFFD "A\""},
    {BYTES("\xE2\x82"
           "A"),
     "\"" FFFD FFFD "A\""},
    {BYTES("\xF0\x9F\x98"
           "A"),
     "\"" FFFD FFFD FFFD "A\""},
    {BYTES("\xC3\""), "\"" FFFD "\\\"\""},
    {BYTES("\xE2\n"), "\"" FFFD "\\n\""},
    {BYTES("\xC3\0"), "\"" FFFD "\\u0000\""},
    /* A good sequence right after a broken one survives. */
    {BYTES("\xC3\xC3\xA9"), "\"" FFFD "\xC3\xA9\""},
    {BYTES("\xE2\x82\xE2\x82\xAC"), "\"" FFFD FFFD "\xE2\x82\xAC\""},
    {BYTES("\x80\xF0\x9F\x98\x80"), "\"" FFFD "\xF0\x9F\x98\x80\""},
    /* Overlong encodings. */
    {BYTES("\xC0\x80"), "\"" FFFD FFFD "\""},
    {BYTES("\xC0\xAF"), "\"" FFFD FFFD "\""},
    {BYTES("\xC1\xBF"), "\"" FFFD FFFD "\""},
    {BYTES("\xE0\x80\x80"), "\"" FFFD FFFD FFFD "\""},
    {BYTES("\xE0\x9F\xBF"), "\"" FFFD FFFD FFFD "\""},
    {BYTES("\xF0\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\""},
    {BYTES("\xF0\x8F\xBF\xBF"), "\"" FFFD FFFD FFFD FFFD "\""},
    /* UTF-16 surrogates, alone and as a pair. */
    {BYTES("\xED\xA0\x80"), "\"" FFFD FFFD FFFD "\""},
    {BYTES("\xED\xBF\xBF"), "\"" FFFD FFFD FFFD "\""},
    {BYTES("\xED\xA0\xBD\xED\xB8\x80"), "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\""},
    /* Above U+10FFFF. */
    {BYTES("\xF4\x90\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\""},
    {BYTES("\xF4\xBF\xBF\xBF"), "\"" FFFD FFFD FFFD FFFD "\""},
    /* Bytes that never appear in UTF-8. */
    {BYTES("\xF5"), "\"" FFFD "\""},
    {BYTES("\xF5\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\""},
    {BYTES("\xF7\xBF\xBF\xBF"), "\"" FFFD FFFD FFFD FFFD "\""},
    {BYTES("\xF8\x88\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD FFFD "\""},
    {BYTES("\xFC\x84\x80\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\""},
    {BYTES("\xFE"), "\"" FFFD "\""},
    {BYTES("\xFF"), "\"" FFFD "\""},
    {BYTES("\xFE\xFF"), "\"" FFFD FFFD "\""},
    /* A near miss of U+2028 is a broken sequence, not an escape. */
    {BYTES("\xE2\x80"), "\"" FFFD FFFD "\""},
};

static void test_json_string_replaces_each_bad_byte(void **state) {
    (void)state;
    run_json_cases(utf8_invalid_cases, HL_ARRAY_LEN(utf8_invalid_cases));
}

static void test_json_string_replaces_every_non_ascii_lone_byte(void **state) {
    (void)state;
    /* No byte from 0x80 up is a whole character on its own. */
    for (unsigned c = 0x80; c <= 0xFF; c++) {
        char in[3] = {'<', (char)c, '>'};
        json_case one = {in, sizeof(in), "\"<" FFFD ">\""};
        run_json_cases(&one, 1);
    }
}

static void test_json_string_of_random_bytes_is_valid_json(void **state) {
    const size_t n = 1024 * 1024;
    (void)state;
    char *in = malloc(n);
    assert_non_null(in);
    rng_state = 0x0123456789ABCDEFULL;
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(rng_next() >> 56);
    size_t len;
    char *out = encode_checked(in, n, &len, "1 MiB of random bytes");
    /* Every input byte gives at most six output bytes, plus the quotes. */
    assert_true(len <= 6 * n + 2);
    free(out);
    free(in);
}

static void test_json_string_of_random_near_utf8_is_valid_json(void **state) {
    /* Uniform random bytes seldom form long sequences; drawing from the
     * bytes where UTF-8's edge cases live reaches far more of them. */
    static const unsigned char alphabet[] = {
        0x00, 0x1F, 'a',  '"',  '\\', 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xA8, 0xA9,
        0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
    };
    (void)state;
    rng_state = 0xFEEDFACECAFEBEEFULL;
    for (int round = 0; round < 50000; round++) {
        char in[16];
        size_t n = (size_t)(rng_next() % (sizeof(in) + 1));
        for (size_t i = 0; i < n; i++)
            in[i] = (char)alphabet[rng_next() % sizeof(alphabet)];
        char label[64];
        size_t len;
        snprintf(label, sizeof(label), "round %d", round);
        free(encode_checked(in, n, &len, label));
    }
}

/* ---- hl_json_error ------------------------------------------------------- */

static void test_json_error_builds_an_object(void **state) {
    static const struct {
        const char *code, *detail, *want;
    } cases[] = {
        {"bad_channel", "no channel given",
         "{\"error\":\"bad_channel\",\"detail\":\"no channel given\"}"},
        {"", "", "{\"error\":\"\",\"detail\":\"\"}"},
        {"x\"y", "a\\b\nc", "{\"error\":\"x\\\"y\",\"detail\":\"a\\\\b\\nc\"}"},
        {"bad", "channel '\xFF' given twice",
         "{\"error\":\"bad\",\"detail\":\"channel '\\ufffd' given twice\"}"},
        {"e", "\xE2\x80\xA8", "{\"error\":\"e\",\"detail\":\"\\u2028\"}"},
    };
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        hl_buf b;
        hl_buf_init(&b);
        hl_json_error(&b, cases[i].code, cases[i].detail);
        assert_int_equal(b.oom, 0);
        assert_string_equal(b.data, cases[i].want);
        assert_int_equal(b.len, strlen(cases[i].want));
        hl_buf_free(&b);
    }
}

static void test_json_error_appends_after_existing_text(void **state) {
    hl_buf b;
    (void)state;
    hl_buf_init(&b);
    hl_buf_puts(&b, "[");
    hl_json_error(&b, "a", "b");
    hl_buf_puts(&b, ",");
    hl_json_error(&b, "c", "d");
    hl_buf_puts(&b, "]");
    assert_string_equal(b.data,
                        "[{\"error\":\"a\",\"detail\":\"b\"},{\"error\":\"c\",\"detail\":\"d\"}]");
    hl_buf_free(&b);
}

/* ---- The buffer ----------------------------------------------------------- */

static void test_json_buf_starts_empty_and_frees_safely(void **state) {
    hl_buf b;
    (void)state;
    memset(&b, 0xA5, sizeof(b));
    hl_buf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.oom, 0);
    hl_buf_free(&b);
    hl_buf_free(&b);
    hl_buf_free(NULL);

    /* Appending nothing allocates nothing. */
    hl_buf_append(&b, "", 0);
    hl_buf_append(&b, NULL, 0);
    hl_buf_puts(&b, "");
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    hl_buf_puts(&b, "x");
    hl_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    hl_buf_free(&b);
}

static void test_json_buf_append_keeps_binary_bytes(void **state) {
    hl_buf b;
    (void)state;
    hl_buf_init(&b);
    hl_buf_append(&b, "a\0b", 3);
    hl_buf_append(&b, "\0", 1);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "a\0b\0", 5);
    hl_buf_free(&b);
}

static void test_json_buf_printf_grows_across_many_appends(void **state) {
    enum { N = 20000 };
    hl_buf b;
    (void)state;
    char *want = malloc((size_t)N * 32);
    assert_non_null(want);
    size_t wlen = 0;
    size_t last_cap = 0;
    int grew = 0;

    hl_buf_init(&b);
    for (int i = 0; i < N; i++) {
        hl_buf_printf(&b, "%d:%s,", i, (i % 3) ? "x" : "yy");
        wlen += (size_t)sprintf(want + wlen, "%d:%s,", i, (i % 3) ? "x" : "yy");
        assert_int_equal(b.len, wlen);
        assert_true(b.cap >= b.len + 1);
        assert_int_equal(b.data[b.len], '\0');
        if (b.cap != last_cap) grew++;
        last_cap = b.cap;
    }
    assert_int_equal(b.oom, 0);
    assert_true(grew >= 8);
    assert_memory_equal(b.data, want, wlen + 1);

    /* An empty format adds nothing and leaves the buffer as it was. */
    hl_buf_printf(&b, "%s", "");
    assert_int_equal(b.len, wlen);
    assert_int_equal(b.oom, 0);

    /* One printf far larger than the buffer so far. */
    char *big = malloc(300000);
    assert_non_null(big);
    memset(big, 'q', 299999);
    big[299999] = '\0';
    hl_buf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, wlen + 300001);
    assert_int_equal(b.data[wlen], '<');
    assert_int_equal(b.data[wlen + 300000], '>');
    assert_int_equal(b.data[b.len], '\0');
    free(big);
    free(want);
    hl_buf_free(&b);
}

static void test_json_buf_mixes_append_puts_printf_and_json(void **state) {
    hl_buf b;
    (void)state;
    hl_buf_init(&b);
    hl_buf_puts(&b, "{\"id\":");
    hl_buf_printf(&b, "%llu", 18446744073709551615ULL);
    hl_buf_append(&b, ",\"data\":", 8);
    hl_json_string(&b, BYTES("h\xC3\xA9\0"));
    hl_buf_puts(&b, "}");
    assert_string_equal(b.data, "{\"id\":18446744073709551615,\"data\":\"h\xC3\xA9\\u0000\"}");
    hl_buf_free(&b);
}

static void test_json_buf_take_hands_over_and_resets(void **state) {
    hl_buf b;
    size_t len = 12345;
    (void)state;

    /* Empty: nothing to hand over, and len is not promised to change. */
    hl_buf_init(&b);
    assert_null(hl_buf_take(&b, &len));
    assert_null(hl_buf_take(&b, NULL));

    hl_buf_puts(&b, "hello");
    char *p = hl_buf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 5);
    assert_string_equal(p, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.oom, 0);

    /* The buffer is reusable, and len may be NULL. */
    hl_buf_printf(&b, "%d", 42);
    char *q = hl_buf_take(&b, NULL);
    assert_non_null(q);
    assert_string_equal(q, "42");
    assert_true(p != q);
    free(p);
    free(q);

    /* A freed buffer has nothing either. */
    hl_buf_puts(&b, "x");
    hl_buf_free(&b);
    assert_null(hl_buf_take(&b, &len));
}

static void test_json_buf_append_of_absurd_size_sets_oom(void **state) {
    hl_buf b;
    (void)state;
    hl_buf_init(&b);
    hl_buf_puts(&b, "keep");
    /* The size check must come before any read of the source. */
    hl_buf_append(&b, "x", SIZE_MAX);
    assert_int_equal(b.oom, 1);
    assert_int_equal(b.len, 4);
    hl_buf_append(&b, "x", SIZE_MAX / 2);
    assert_int_equal(b.len, 4);
    assert_null(hl_buf_take(&b, NULL));
    assert_null(b.data);
}

/* ---- Out of memory --------------------------------------------------------- */

static void test_json_buf_oom_from_the_first_allocation_is_sticky(void **state) {
    hl_buf b;
    size_t len = 777;
    (void)state;
    hl_buf_init(&b);
    hl_json_fail_after(0);
    hl_buf_puts(&b, "x");
    assert_int_equal(b.oom, 1);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    /* Later appends of every kind stay no-ops, even once memory is back. */
    hl_json_fail_after(-1);
    hl_buf_puts(&b, "y");
    hl_buf_append(&b, "z", 1);
    hl_buf_printf(&b, "%d", 7);
    hl_json_string(&b, BYTES("s\n\xFF"));
    hl_json_error(&b, "c", "d");
    assert_int_equal(b.oom, 1);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    assert_null(hl_buf_take(&b, &len));
    assert_int_equal(b.oom, 0);
    /* After take the buffer starts over. */
    hl_buf_puts(&b, "ok");
    assert_string_equal(b.data, "ok");
    hl_buf_free(&b);
}

static void test_json_buf_oom_on_growth_keeps_what_was_written(void **state) {
    hl_buf b;
    char big[200];
    (void)state;
    memset(big, 'b', sizeof(big));
    hl_buf_init(&b);
    hl_json_fail_after(1);
    hl_buf_puts(&b, "abc"); /* the first block succeeds */
    assert_int_equal(b.oom, 0);
    hl_buf_append(&b, big, sizeof(big)); /* growth fails */
    assert_int_equal(b.oom, 1);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    hl_buf_printf(&b, "%s", "def");
    hl_buf_puts(&b, "g");
    assert_int_equal(b.len, 3);
    /* take frees the partial text and hands over nothing. */
    assert_null(hl_buf_take(&b, NULL));
    assert_null(b.data);
    hl_json_fail_after(-1);
}

static void test_json_string_oom_midway_stops_cleanly(void **state) {
    char in[1000];
    (void)state;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (i % 7 == 0) ? '\n' : (i % 5 == 0) ? '\x80' : 'a';
    hl_buf b;
    hl_buf_init(&b);
    hl_json_fail_after(2);
    hl_json_string(&b, in, sizeof(in));
    assert_int_equal(b.oom, 1);
    assert_non_null(b.data);
    assert_true(b.len < b.cap);
    /* What was written is still a terminated prefix of the answer. */
    assert_int_equal(strlen(b.data), b.len);
    hl_buf_free(&b);
    hl_json_fail_after(-1);
}

static void test_json_every_failing_allocation_is_clean(void **state) {
    /* Fail the first, second, ... allocation in turn; each run either
     * gives the full answer or a sticky oom, and never leaks. */
    char detail[5000];
    (void)state;
    for (size_t i = 0; i < sizeof(detail) - 1; i++)
        detail[i] = "ab\"\n\xC3\xA9\x01"[i % 7];
    detail[sizeof(detail) - 1] = '\0';

    hl_buf ref;
    hl_buf_init(&ref);
    hl_json_error(&ref, "code", detail);
    assert_int_equal(ref.oom, 0);

    int succeeded = 0;
    for (int n = 0; n < 64 && !succeeded; n++) {
        hl_buf b;
        hl_buf_init(&b);
        hl_json_fail_after(n);
        hl_json_error(&b, "code", detail);
        hl_buf_printf(&b, "%s", "!");
        hl_json_fail_after(-1);
        size_t len = 0;
        char *p = hl_buf_take(&b, &len);
        if (p != NULL) {
            assert_int_equal(len, ref.len + 1);
            assert_memory_equal(p, ref.data, ref.len);
            assert_int_equal(p[ref.len], '!');
            succeeded = 1;
        }
        free(p);
    }
    assert_true(succeeded);
    hl_buf_free(&ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_json_string_escapes_ascii, reset_alloc),
        cmocka_unit_test_teardown(test_json_string_escapes_every_control_character, reset_alloc),
        cmocka_unit_test_teardown(test_json_string_stops_at_n, reset_alloc),
        cmocka_unit_test_teardown(test_json_string_passes_valid_utf8_through, reset_alloc),
        cmocka_unit_test_teardown(test_json_string_replaces_each_bad_byte, reset_alloc),
        cmocka_unit_test_teardown(test_json_string_replaces_every_non_ascii_lone_byte, reset_alloc),
        cmocka_unit_test_teardown(test_json_string_of_random_bytes_is_valid_json, reset_alloc),
        cmocka_unit_test_teardown(test_json_string_of_random_near_utf8_is_valid_json, reset_alloc),
        cmocka_unit_test_teardown(test_json_error_builds_an_object, reset_alloc),
        cmocka_unit_test_teardown(test_json_error_appends_after_existing_text, reset_alloc),
        cmocka_unit_test_teardown(test_json_buf_starts_empty_and_frees_safely, reset_alloc),
        cmocka_unit_test_teardown(test_json_buf_append_keeps_binary_bytes, reset_alloc),
        cmocka_unit_test_teardown(test_json_buf_printf_grows_across_many_appends, reset_alloc),
        cmocka_unit_test_teardown(test_json_buf_mixes_append_puts_printf_and_json, reset_alloc),
        cmocka_unit_test_teardown(test_json_buf_take_hands_over_and_resets, reset_alloc),
        cmocka_unit_test_teardown(test_json_buf_append_of_absurd_size_sets_oom, reset_alloc),
        cmocka_unit_test_teardown(test_json_buf_oom_from_the_first_allocation_is_sticky,
                                  reset_alloc),
        cmocka_unit_test_teardown(test_json_buf_oom_on_growth_keeps_what_was_written, reset_alloc),
        cmocka_unit_test_teardown(test_json_string_oom_midway_stops_cleanly, reset_alloc),
        cmocka_unit_test_teardown(test_json_every_failing_allocation_is_clean, reset_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
