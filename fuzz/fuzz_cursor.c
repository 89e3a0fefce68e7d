/* fuzz_cursor.c -- libFuzzer target for core/hl_cursor.h.
 *
 * The whole input is a cursor for hl_cursor_parse on a poll of 1, 2, 3
 * and 4 channels, and a stream id and an epoch for hl_sid_parse and
 * hl_epoch_parse. Every successful parse is formatted back
 * (hl_cursor_format, hl_sid_format, "%llx") and parsed again: that must
 * succeed with the same values, and formatting is a fixed point, so a
 * cursor a node hands out is always one it takes back. The id and epoch
 * parsers are also held against a plain reference of their grammar. */
#include "fuzz.h"
#include "hl_common.h"
#include "hl_cursor.h"
#include "hl_json.h"

#define ERRLEN 128
#define MAXN 4

/* "<digits>-<digits>", split at the first '-', each 1..20 digits and at
 * most 2^64-1. */
static int ref_u64(const char *s, size_t n, uint64_t *out) {
    uint64_t v = 0;
    if (n < 1 || n > 20) return HL_ERR;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return HL_ERR;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v))
            return HL_ERR;
    }
    *out = v;
    return HL_OK;
}

static int ref_sid(const char *s, size_t n, hl_sid *out) {
    const char *dash = memchr(s, '-', n);
    if (dash == NULL) return HL_ERR;
    size_t a = (size_t)(dash - s);
    if (ref_u64(s, a, &out->ms) != HL_OK) return HL_ERR;
    return ref_u64(dash + 1, n - a - 1, &out->seq);
}

static int ref_epoch(const char *s, size_t n, uint64_t *out) {
    const char *digits = "0123456789abcdef";
    uint64_t v = 0;
    if (n < 1 || n > 16) return HL_ERR;
    for (size_t i = 0; i < n; i++) {
        char c = s[i] >= 'A' && s[i] <= 'F' ? (char)(s[i] - 'A' + 'a') : s[i];
        const char *d = c != '\0' ? strchr(digits, c) : NULL;
        if (d == NULL) return HL_ERR;
        v = v << 4 | (uint64_t)(d - digits);
    }
    *out = v;
    return HL_OK;
}

static void check_sid(const char *s, size_t n) {
    hl_sid got = {1, 1}, want = {2, 2};
    int rc = hl_sid_parse(s, n, &got);
    FUZZ_CHECK(rc == ref_sid(s, n, &want));
    if (rc != HL_OK) return;
    FUZZ_CHECK(hl_sid_cmp(got, want) == 0);

    /* The buffer is exactly as large as the header asks for. */
    char *buf = fuzz_errbuf(HL_SID_MAXLEN + 1);
    size_t len = hl_sid_format(got, buf);
    hl_sid back;
    FUZZ_CHECK(len <= HL_SID_MAXLEN && buf[len] == '\0' && strlen(buf) == len);
    FUZZ_CHECK(hl_sid_parse(buf, len, &back) == HL_OK && hl_sid_cmp(back, got) == 0);
    free(buf);
}

static void check_epoch(const char *s, size_t n) {
    uint64_t got = 1, want = 2, back = 3;
    int rc = hl_epoch_parse(s, n, &got);
    FUZZ_CHECK(rc == ref_epoch(s, n, &want));
    if (rc != HL_OK) return;
    FUZZ_CHECK(got == want);

    char buf[17];
    int len = snprintf(buf, sizeof(buf), "%llx", (unsigned long long)got);
    FUZZ_CHECK(len >= 1 && len <= 16);
    FUZZ_CHECK(hl_epoch_parse(buf, (size_t)len, &back) == HL_OK && back == got);
}

static int same_parts(const hl_cur_part *a, const hl_cur_part *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (a[i].kind != b[i].kind) return 0;
        if (a[i].kind == HL_CUR_AT && hl_sid_cmp(a[i].id, b[i].id) != 0) return 0;
    }
    return 1;
}

static void check_cursor(const char *s, size_t len, size_t n) {
    hl_cur_part parts[MAXN], again[MAXN];
    uint64_t epoch = 1, epoch2 = 2;
    char *err = fuzz_errbuf(ERRLEN);
    hl_buf b, b2;

    int rc = hl_cursor_parse(s, len, n, &epoch, parts, err, ERRLEN);
    FUZZ_CHECK(rc == HL_OK || rc == HL_ERR);
    if (rc != HL_OK) {
        FUZZ_CHECK(fuzz_err_written(err, ERRLEN));
        free(err);
        return;
    }

    size_t news = 0, alls = 0;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(parts[i].kind == HL_CUR_NEW || parts[i].kind == HL_CUR_ALL ||
                   parts[i].kind == HL_CUR_AT);
        news += parts[i].kind == HL_CUR_NEW;
        alls += parts[i].kind == HL_CUR_ALL;
    }
    /* Anything but "" and "0" is "<epoch>:" and one part per channel. */
    if (!(len == 0 || (len == 1 && s[0] == '0'))) {
        const char *colon = memchr(s, ':', len);
        size_t commas = 0;
        FUZZ_CHECK(colon != NULL);
        for (const char *p = colon + 1; p < s + len; p++)
            commas += *p == ',';
        FUZZ_CHECK(commas == n - 1);
    } else {
        FUZZ_CHECK(epoch == 0);
    }

    hl_buf_init(&b);
    hl_cursor_format(&b, epoch, parts, n);
    FUZZ_CHECK(!b.oom);
    const char *text = b.len > 0 ? b.data : "";
    FUZZ_CHECK(strspn(text, "0123456789abcdef:,-") == b.len);
    if (news == n) FUZZ_CHECK(b.len == 0);
    if (alls == n) FUZZ_CHECK(strcmp(text, "0") == 0);

    rc = hl_cursor_parse(text, b.len, n, &epoch2, again, err, ERRLEN);
    FUZZ_CHECK(rc == HL_OK);
    FUZZ_CHECK(same_parts(parts, again, n));
    /* "" and "0" carry no epoch; every other cursor keeps its own. */
    FUZZ_CHECK(epoch2 == (news == n || alls == n ? 0 : epoch));

    hl_buf_init(&b2);
    hl_cursor_format(&b2, epoch2, again, n);
    FUZZ_CHECK(!b2.oom && b2.len == b.len && (b.len == 0 || memcmp(b.data, b2.data, b.len) == 0));

    hl_buf_free(&b2);
    hl_buf_free(&b);
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;

    for (size_t n = 1; n <= MAXN; n++)
        check_cursor(s, size, n);
    check_sid(s, size);
    check_epoch(s, size);
    return 0;
}
