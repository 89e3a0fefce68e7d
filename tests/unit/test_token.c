/* Unit tests for core/hl_token.c: taking a token out of a header or a
 * cookie, base64url, the header and claim rules, and the time rules.
 * Tokens are built here from JSON text; the signature segment is never
 * checked by this module (hl_auth does that with libjwt), so it is any
 * base64url. Table-first, with hostile inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_token.h"

static char *exact_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    return p;
}

static void b64url(char *out, const char *in, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | (unsigned char)in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tab[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out[o++] = tab[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* header.payload.sig, from JSON texts. */
static char *make_token(const char *head, const char *payload, const char *sig) {
    size_t hn = strlen(head), pn = strlen(payload);
    char *t = malloc(hn * 2 + pn * 2 + strlen(sig) + 8);
    assert_non_null(t);
    b64url(t, head, hn);
    strcat(t, ".");
    b64url(t + strlen(t), payload, pn);
    strcat(t, ".");
    strcat(t, sig);
    return t;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const hl_token_rules plain_rules = {"HS256", "", ""};

static hl_token_status parse(const char *token, const hl_token_rules *rules, hl_claims *c,
                             char *why) {
    size_t n = strlen(token);
    char *t = exact_copy(token, n);
    hl_token_status st = hl_token_parse(t, n, rules, c, why, 200);
    free(t);
    return st;
}

/* ---- Extraction ------------------------------------------------------------ */

static const struct {
    const char *value;
    const char *token; /* NULL: none found */
} bearer_cases[] = {
    {"Bearer abc.def.ghi", "abc.def.ghi"},
    {"bearer abc", "abc"},
    {"BEARER   abc  ", "abc"},
    {"Bearer\tabc", "abc"},
    {"Bearer", NULL},
    {"Bearer ", NULL},
    {"Bearer    ", NULL},
    {"Bearerabc", NULL},
    {"Basic dXNlcjpwdw==", NULL},
    {"", NULL},
    {" Bearer abc", NULL},
};

static void test_token_from_bearer_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(bearer_cases); i++) {
        char *v = exact_copy(bearer_cases[i].value, strlen(bearer_cases[i].value) + 1);
        hl_span s = {NULL, 0};
        int found = hl_token_from_bearer(v, &s);
        if (bearer_cases[i].token == NULL) {
            if (found) fail_msg("case %zu: found a token in '%s'", i, bearer_cases[i].value);
        } else {
            if (!found) fail_msg("case %zu: no token in '%s'", i, bearer_cases[i].value);
            assert_int_equal(s.n, strlen(bearer_cases[i].token));
            assert_memory_equal(s.p, bearer_cases[i].token, s.n);
        }
        free(v);
    }
    hl_span s;
    assert_int_equal(hl_token_from_bearer(NULL, &s), 0);
}

static const struct {
    const char *header;
    const char *value; /* NULL: not found */
} cookie_cases[] = {
    {"holdline_token=abc", "abc"},
    {"a=b; holdline_token=abc; c=d", "abc"},
    {"a=b;holdline_token=abc", "abc"},
    {"holdline_token = abc ", "abc"},
    {"holdline_token=\"abc\"", "abc"},
    {"holdline_token=", ""},
    {"holdline_token=abc; holdline_token=xyz", "abc"},
    {"xholdline_token=abc", NULL},
    {"holdline_tokenx=abc", NULL},
    {"holdline_token", NULL},
    {"HOLDLINE_TOKEN=abc", NULL},
    {"a=holdline_token=abc", NULL},
    {";;;", NULL},
    {"", NULL},
    {"=abc; holdline_token=q=r", "q=r"},
    {"holdline_token=\"", "\""},
};

static void test_token_from_cookie_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(cookie_cases); i++) {
        size_t n = strlen(cookie_cases[i].header);
        char *h = exact_copy(cookie_cases[i].header, n);
        hl_span s = {NULL, 0};
        int found = hl_token_from_cookie(h, n, "holdline_token", &s);
        if (cookie_cases[i].value == NULL) {
            if (found) fail_msg("case %zu: found a cookie in '%s'", i, cookie_cases[i].header);
        } else {
            if (!found) fail_msg("case %zu: nothing in '%s'", i, cookie_cases[i].header);
            if (s.n != strlen(cookie_cases[i].value) ||
                memcmp(s.p, cookie_cases[i].value, s.n) != 0)
                fail_msg("case %zu: '%.*s' instead of '%s'", i, (int)s.n, s.p,
                         cookie_cases[i].value);
            assert_true(s.p >= h && s.p + s.n <= h + n);
        }
        free(h);
    }
}

/* ---- base64url ---------------------------------------------------------------- */

static void test_base64url_round_trips_every_length(void **state) {
    (void)state;
    unsigned char in[64], out[64];
    char enc[100];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        b64url(enc, (const char *)in, n);
        long got = hl_base64url_decode(enc, strlen(enc), out);
        assert_int_equal(got, (long)n);
        assert_memory_equal(out, in, n);
    }
}

static void test_base64url_refuses_what_is_not(void **state) {
    (void)state;
    unsigned char out[16];
    const char *const bad[] = {"a", "ab=", "a+b/", "ab c", "abcde", "ab\x80", "AB", "AAB"};
    /* "AB" and "AAB" leave bits set past the last byte: another encoding
     * of what "AA" and "AAA" mean. */
    for (size_t i = 0; i < HL_ARRAY_LEN(bad); i++) {
        if (hl_base64url_decode(bad[i], strlen(bad[i]), out) >= 0) fail_msg("'%s' decoded", bad[i]);
    }
    assert_int_equal(hl_base64url_decode("", 0, out), 0);
    assert_int_equal(hl_base64url_decode("AA", 2, out), 1);
}

/* ---- Header and claims ------------------------------------------------------------ */

static const struct {
    const char *head;
    const char *payload;
    hl_token_status want;
    const char *why; /* a word the reason must hold */
} claim_cases[] = {
    {HS256, "{\"exp\":2000000000}", HL_TOKEN_OK, NULL},
    {"{\"alg\":\"HS256\"}", "{\"exp\":2000000000.5}", HL_TOKEN_OK, NULL},
    /* the algorithm */
    {"{\"alg\":\"none\"}", "{\"exp\":2000000000}", HL_TOKEN_WRONG_ALG, "none"},
    {"{\"alg\":\"None\"}", "{\"exp\":2000000000}", HL_TOKEN_WRONG_ALG, "none"},
    {"{\"alg\":\"RS256\"}", "{\"exp\":2000000000}", HL_TOKEN_WRONG_ALG, "HS256"},
    {"{\"alg\":\"hs256\"}", "{\"exp\":2000000000}", HL_TOKEN_WRONG_ALG, "HS256"},
    {"{\"alg\":\"HS256 \"}", "{\"exp\":2000000000}", HL_TOKEN_WRONG_ALG, "HS256"},
    {"{\"typ\":\"JWT\"}", "{\"exp\":2000000000}", HL_TOKEN_MALFORMED, "alg"},
    {"{\"alg\":256}", "{\"exp\":2000000000}", HL_TOKEN_MALFORMED, "alg"},
    {"{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"exp\":2000000000}", HL_TOKEN_MALFORMED, "header"},
    {"{\"alg\":\"HS256\",\"typ\":\"JWE\"}", "{\"exp\":2000000000}", HL_TOKEN_MALFORMED, "typ"},
    {"{\"alg\":\"HS256\",\"crit\":[\"x\"]}", "{\"exp\":2000000000}", HL_TOKEN_MALFORMED, "crit"},
    {"[\"HS256\"]", "{\"exp\":2000000000}", HL_TOKEN_MALFORMED, "header"},
    {"{\"alg\":\"HS256\"", "{\"exp\":2000000000}", HL_TOKEN_MALFORMED, "header"},
    /* exp, nbf, iat */
    {HS256, "{}", HL_TOKEN_MALFORMED, "exp"},
    {HS256, "{\"exp\":\"2000000000\"}", HL_TOKEN_MALFORMED, "exp"},
    {HS256, "{\"exp\":null}", HL_TOKEN_MALFORMED, "exp"},
    {HS256, "{\"exp\":2000000000,\"nbf\":\"soon\"}", HL_TOKEN_MALFORMED, "nbf"},
    {HS256, "{\"exp\":2000000000,\"iat\":[]}", HL_TOKEN_MALFORMED, "iat"},
    {HS256, "{\"exp\":99999999999999999999999}", HL_TOKEN_MALFORMED, "payload"},
    {HS256, "{\"exp\":1,\"exp\":2000000000}", HL_TOKEN_MALFORMED, "payload"},
    {HS256, "[1]", HL_TOKEN_MALFORMED, "payload"},
    {HS256, "{\"exp\":2000000000} x", HL_TOKEN_MALFORMED, "payload"},
    /* aud and iss, with none configured */
    {HS256, "{\"exp\":2000000000,\"aud\":\"chat\"}", HL_TOKEN_AUDIENCE, "aud"},
    {HS256, "{\"exp\":2000000000,\"aud\":[]}", HL_TOKEN_AUDIENCE, "aud"},
    {HS256, "{\"exp\":2000000000,\"aud\":7}", HL_TOKEN_MALFORMED, "aud"},
    {HS256, "{\"exp\":2000000000,\"iss\":\"anyone\"}", HL_TOKEN_OK, NULL},
    {HS256, "{\"exp\":2000000000,\"iss\":1}", HL_TOKEN_MALFORMED, "iss"},
    /* grants */
    {HS256, "{\"exp\":2000000000,\"holdline\":{}}", HL_TOKEN_OK, NULL},
    {HS256, "{\"exp\":2000000000,\"holdline\":[]}", HL_TOKEN_MALFORMED, "holdline"},
    {HS256, "{\"exp\":2000000000,\"holdline\":{\"subscribe\":\"news\"}}", HL_TOKEN_MALFORMED,
     "subscribe"},
    {HS256, "{\"exp\":2000000000,\"holdline\":{\"subscribe\":[1]}}", HL_TOKEN_MALFORMED,
     "subscribe"},
    {HS256, "{\"exp\":2000000000,\"holdline\":{\"subscribe\":[\"user.*.inbox\"]}}",
     HL_TOKEN_MALFORMED, "subscribe"},
    {HS256, "{\"exp\":2000000000,\"holdline\":{\"subscribe\":[\"\"]}}", HL_TOKEN_MALFORMED,
     "subscribe"},
    {HS256, "{\"exp\":2000000000,\"holdline\":{\"publish\":[\"a b\"]}}", HL_TOKEN_MALFORMED,
     "publish"},
    {HS256, "{\"exp\":2000000000,\"holdline\":{\"publish\":[\"a\\u0000b\"]}}", HL_TOKEN_MALFORMED,
     "payload"},
    {HS256, "{\"exp\":2000000000,\"holdline\":{\"subscribe\":[\"*\"],\"other\":1}}", HL_TOKEN_OK,
     NULL},
};

static void test_token_parse_claims_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(claim_cases); i++) {
        char *t = make_token(claim_cases[i].head, claim_cases[i].payload, "c2ln");
        hl_claims c;
        char why[200] = "";
        hl_token_status st = parse(t, &plain_rules, &c, why);
        if (st != claim_cases[i].want)
            fail_msg("case %zu (%s %s): status %d, not %d (%s)", i, claim_cases[i].head,
                     claim_cases[i].payload, st, claim_cases[i].want, why);
        if (claim_cases[i].why && strstr(why, claim_cases[i].why) == NULL)
            fail_msg("case %zu: '%s' does not mention %s", i, why, claim_cases[i].why);
        /* A reason never repeats the token. */
        assert_null(strstr(why, "c2ln"));
        hl_claims_free(&c);
        free(t);
    }
}

static void test_token_parse_shape_table(void **state) {
    (void)state;
    char *good = make_token(HS256, "{\"exp\":2000000000}", "c2ln");
    const char *dot = strchr(good, '.');
    char buf[512];
    const char *shapes[] = {
        "", ".", "..", "a.b", "abc", "..c2ln",
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(shapes); i++) {
        hl_claims c;
        char why[200];
        assert_int_equal(parse(shapes[i], &plain_rules, &c, why), HL_TOKEN_MALFORMED);
    }
    hl_claims c;
    char why[200];
    /* Four segments: a JWE, or junk. */
    snprintf(buf, sizeof(buf), "%s.x", good);
    assert_int_equal(parse(buf, &plain_rules, &c, why), HL_TOKEN_MALFORMED);
    /* No signature: unsigned tokens are refused whatever alg says. */
    snprintf(buf, sizeof(buf), "%.*s.", (int)(strrchr(good, '.') - good), good);
    assert_int_equal(parse(buf, &plain_rules, &c, why), HL_TOKEN_BAD_SIGNATURE);
    /* Padding or a standard-base64 character in the header. */
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)(dot - good), good, dot);
    assert_int_equal(parse(buf, &plain_rules, &c, why), HL_TOKEN_MALFORMED);
    free(good);
}

static void test_token_parse_refuses_tokens_over_the_limit_unread(void **state) {
    (void)state;
    size_t n = HL_TOKEN_MAX_BYTES + 1;
    char *t = malloc(n);
    assert_non_null(t);
    memset(t, 'A', n);
    hl_claims c;
    char why[200];
    assert_int_equal(hl_token_parse(t, n, &plain_rules, &c, why, sizeof(why)), HL_TOKEN_MALFORMED);
    assert_non_null(strstr(why, "longer"));
    free(t);
}

static void test_token_parse_checks_audience_and_issuer(void **state) {
    (void)state;
    const hl_token_rules rules = {"HS256", "chat", "https://app.example"};
    static const struct {
        const char *payload;
        hl_token_status want;
    } cases[] = {
        {"{\"exp\":2000000000,\"aud\":\"chat\",\"iss\":\"https://app.example\"}", HL_TOKEN_OK},
        {"{\"exp\":2000000000,\"aud\":[\"x\",\"chat\"],\"iss\":\"https://app.example\"}",
         HL_TOKEN_OK},
        {"{\"exp\":2000000000,\"aud\":\"chats\",\"iss\":\"https://app.example\"}",
         HL_TOKEN_AUDIENCE},
        {"{\"exp\":2000000000,\"aud\":[\"x\"],\"iss\":\"https://app.example\"}", HL_TOKEN_AUDIENCE},
        {"{\"exp\":2000000000,\"iss\":\"https://app.example\"}", HL_TOKEN_AUDIENCE},
        {"{\"exp\":2000000000,\"aud\":\"chat\"}", HL_TOKEN_ISSUER},
        {"{\"exp\":2000000000,\"aud\":\"chat\",\"iss\":\"https://evil.example\"}", HL_TOKEN_ISSUER},
        {"{\"exp\":2000000000,\"aud\":\"chat\",\"iss\":\"https://app.example/\"}", HL_TOKEN_ISSUER},
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        char *t = make_token(HS256, cases[i].payload, "c2ln");
        hl_claims c;
        char why[200] = "";
        hl_token_status st = parse(t, &rules, &c, why);
        if (st != cases[i].want) fail_msg("case %zu: %d (%s)", i, st, why);
        hl_claims_free(&c);
        free(t);
    }
}

static void test_token_parse_fills_the_grants(void **state) {
    (void)state;
    char *t = make_token(HS256,
                         "{\"exp\":2000000000,\"nbf\":1000,\"iat\":1001,\"holdline\":{"
                         "\"subscribe\":[\"news\",\"user.42.*\"],\"publish\":[\"news\"]}}",
                         "c2ln");
    hl_claims c;
    char why[200];
    assert_int_equal(parse(t, &plain_rules, &c, why), HL_TOKEN_OK);
    assert_true(c.exp == 2000000000.0);
    assert_true(c.has_nbf && c.nbf == 1000.0);
    assert_true(c.has_iat && c.iat == 1001.0);
    assert_int_equal(c.subscribe.n, 2);
    assert_int_equal(c.publish.n, 1);
    assert_int_equal(hl_grants_allow(&c.subscribe, "user.42.inbox", 13), 1);
    assert_int_equal(hl_grants_allow(&c.subscribe, "user.420", 8), 0);
    assert_int_equal(hl_grants_allow(&c.subscribe, "sports", 6), 0);
    assert_int_equal(hl_grants_allow(&c.publish, "news", 4), 1);
    assert_int_equal(hl_grants_allow(&c.publish, "user.42.inbox", 13), 0);
    hl_claims_free(&c);
    hl_claims_free(&c); /* twice is fine */
    free(t);
}

static void test_token_parse_takes_many_grants(void **state) {
    (void)state;
    /* An 8 KB token and more: 640 patterns. */
    char payload[16000] = "{\"exp\":2000000000,\"holdline\":{\"subscribe\":[";
    for (int i = 0; i < 640; i++)
        snprintf(payload + strlen(payload), sizeof(payload) - strlen(payload), "%s\"room.%04d\"",
                 i ? "," : "", i);
    strcat(payload, "]}}");
    char *t = make_token(HS256, payload, "c2ln");
    assert_true(strlen(t) > 8000);
    hl_claims c;
    char why[200];
    assert_int_equal(parse(t, &plain_rules, &c, why), HL_TOKEN_OK);
    assert_int_equal(c.subscribe.n, 640);
    assert_int_equal(hl_grants_allow(&c.subscribe, "room.0639", 9), 1);
    assert_int_equal(hl_grants_allow(&c.subscribe, "room.0640", 9), 0);
    hl_claims_free(&c);
    free(t);
}

/* ---- Time ------------------------------------------------------------------------ */

static const struct {
    double exp, nbf, iat;
    int has_nbf, has_iat;
    double now;
    int leeway;
    hl_token_status want;
} time_cases[] = {
    {1000, 0, 0, 0, 0, 999, 0, HL_TOKEN_OK},
    {1000, 0, 0, 0, 0, 1000, 0, HL_TOKEN_EXPIRED},
    {1000, 0, 0, 0, 0, 1029, 30, HL_TOKEN_OK},
    {1000, 0, 0, 0, 0, 1030, 30, HL_TOKEN_EXPIRED},
    {1000, 500, 0, 1, 0, 499, 0, HL_TOKEN_NOT_YET},
    {1000, 500, 0, 1, 0, 500, 0, HL_TOKEN_OK},
    {1000, 500, 0, 1, 0, 470, 30, HL_TOKEN_OK},
    {1000, 500, 0, 1, 0, 469, 30, HL_TOKEN_NOT_YET},
    {1000, 0, 600, 0, 1, 599, 0, HL_TOKEN_IAT},
    {1000, 0, 600, 0, 1, 600, 0, HL_TOKEN_OK},
    {1000, 0, 600, 0, 1, 570, 30, HL_TOKEN_OK},
    {1000, 0, 600, 0, 1, 569, 30, HL_TOKEN_IAT},
    /* Expired wins over everything else. */
    {1000, 2000, 2000, 1, 1, 1500, 0, HL_TOKEN_EXPIRED},
};

static void test_claims_check_time_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(time_cases); i++) {
        hl_claims c;
        memset(&c, 0, sizeof(c));
        c.exp = time_cases[i].exp;
        c.nbf = time_cases[i].nbf;
        c.iat = time_cases[i].iat;
        c.has_nbf = time_cases[i].has_nbf;
        c.has_iat = time_cases[i].has_iat;
        char why[200] = "";
        hl_token_status st =
            hl_claims_check_time(&c, time_cases[i].now, time_cases[i].leeway, why, sizeof(why));
        if (st != time_cases[i].want)
            fail_msg("case %zu: %d, not %d (%s)", i, st, time_cases[i].want, why);
        if (st != HL_TOKEN_OK) assert_true(why[0] != '\0');
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_from_bearer_table),
        cmocka_unit_test(test_token_from_cookie_table),
        cmocka_unit_test(test_base64url_round_trips_every_length),
        cmocka_unit_test(test_base64url_refuses_what_is_not),
        cmocka_unit_test(test_token_parse_claims_table),
        cmocka_unit_test(test_token_parse_shape_table),
        cmocka_unit_test(test_token_parse_refuses_tokens_over_the_limit_unread),
        cmocka_unit_test(test_token_parse_checks_audience_and_issuer),
        cmocka_unit_test(test_token_parse_fills_the_grants),
        cmocka_unit_test(test_token_parse_takes_many_grants),
        cmocka_unit_test(test_claims_check_time_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
