/* fuzz_token.c -- libFuzzer target for the token path: core/hl_token.h,
 * core/hl_grant.h and core/hl_auth.h.
 *
 * The input is cut at its first three line feeds into an Authorization
 * value, a Cookie header, a channel pattern and a channel; what remains,
 * if anything, is a token. Every span extraction returns must lie inside
 * what it was given; pattern matching must agree with a plain rewrite of
 * its rule; a parsed token's grants must all be patterns; and the whole
 * token (from the header, the cookie and the rest) goes through
 * hl_auth_verify on an HS256 verifier, so libjwt sees it too. A refusal
 * always says why, and the reason never repeats the token. */
#include "fuzz.h"
#include "hl_auth.h"
#include "hl_config.h"
#include "hl_grant.h"
#include "hl_token.h"

#define WHYLEN 200

static int inside(hl_span s, const char *buf, size_t n) {
    if (s.n == 0) return 1;
    return s.p >= buf && s.p + s.n <= buf + n;
}

/* The rule: "x*" grants what begins with "x"; anything else only itself. */
static int ref_match(const char *p, size_t pn, const char *ch, size_t cn) {
    if (pn > 0 && p[pn - 1] == '*') return cn >= pn - 1 && memcmp(p, ch, pn - 1) == 0;
    return pn == cn && memcmp(p, ch, pn) == 0;
}

static hl_auth *verifier(void) {
    static hl_auth *a;
    if (a == NULL) {
        static hl_config cfg;
        char err[256];
        hl_config_defaults(&cfg);
        strcpy(cfg.auth_mode, "jwt");
        strcpy(cfg.auth_jwt_key, "0123456789abcdef0123456789abcdef");
        strcpy(cfg.auth_audience, "chat");
        cfg.auth_leeway_s = 5;
        a = hl_auth_new(&cfg, err, sizeof(err));
        if (a == NULL) {
            fprintf(stderr, "fuzz_token: %s\n", err);
            abort();
        }
    }
    return a;
}

static void check_grants(const hl_grants *g) {
    for (size_t i = 0; i < g->n; i++)
        FUZZ_CHECK(hl_grant_valid(g->pat[i], g->len[i]));
}

static void check_token(const char *t, size_t n) {
    char *why = fuzz_errbuf(WHYLEN);
    hl_claims c;
    const hl_token_rules rules = {"HS256", "chat", ""};
    hl_token_status st = hl_token_parse(t, n, &rules, &c, why, WHYLEN);
    if (st == HL_TOKEN_OK) {
        check_grants(&c.subscribe);
        check_grants(&c.publish);
        hl_claims_free(&c);
    } else {
        FUZZ_CHECK(memchr(why, '\0', WHYLEN) != NULL && why[0] != '\0');
        /* The reasons are fixed sentences: no part of a token longer
         * than any of their words can show up in one. */
        if (n >= 32) FUZZ_CHECK(memmem(why, strlen(why), t, 32) == NULL);
    }
    const hl_claims *vc = NULL;
    memset(why, 0xA5, WHYLEN);
    st = hl_auth_verify(verifier(), t, n, 1.7e9, &vc, why, WHYLEN);
    if (st == HL_TOKEN_OK) {
        FUZZ_CHECK(vc != NULL);
        check_grants(&vc->subscribe);
    } else {
        FUZZ_CHECK(memchr(why, '\0', WHYLEN) != NULL && why[0] != '\0');
    }
    free(why);
}

/* The next line of in (without its '\n'), or all that is left. */
static const char *line(fuzz_in *in, size_t *len) {
    const char *p = (const char *)in->p;
    const char *nl = memchr(p, '\n', in->n);
    size_t n = nl ? (size_t)(nl - p) : in->n;
    *len = n;
    in->p += n + (nl != NULL);
    in->n -= n + (nl != NULL);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    size_t an, cn, pn, chn, tn;
    const char *auth = line(&in, &an);
    const char *cookie = line(&in, &cn);
    const char *pat = line(&in, &pn);
    const char *ch = line(&in, &chn);
    const char *rest = fuzz_bytes(&in, in.n, &tn);

    char *av = fuzz_strndup(auth, an);
    size_t avn = strlen(av);
    hl_span s;
    if (hl_token_from_bearer(av, &s)) {
        FUZZ_CHECK(s.n > 0 && inside(s, av, avn));
        FUZZ_CHECK(s.p[0] != ' ' && s.p[0] != '\t' && s.p[s.n - 1] != ' ' && s.p[s.n - 1] != '\t');
        check_token(s.p, s.n);
    }
    free(av);

    char *cv = malloc(cn ? cn : 1);
    if (cv == NULL) abort();
    memcpy(cv, cookie, cn);
    if (hl_token_from_cookie(cv, cn, "holdline_token", &s)) {
        FUZZ_CHECK(inside(s, cv, cn));
        check_token(s.p, s.n);
    }
    free(cv);

    char *pv = malloc(pn ? pn : 1), *chv = malloc(chn ? chn : 1);
    if (pv == NULL || chv == NULL) abort();
    memcpy(pv, pat, pn);
    memcpy(chv, ch, chn);
    if (hl_grant_valid(pv, pn)) {
        int m = hl_grant_match(pv, pn, chv, chn);
        FUZZ_CHECK(m == ref_match(pv, pn, chv, chn));
        const char *const pats[] = {pv};
        const size_t lens[] = {pn};
        hl_grants g = {pats, lens, 1};
        FUZZ_CHECK(hl_grants_allow(&g, chv, chn) == m);
    }
    free(pv);
    free(chv);

    if (tn > 0) {
        char *tv = malloc(tn);
        if (tv == NULL) abort();
        memcpy(tv, rest, tn);
        check_token(tv, tn);
        free(tv);
    }
    return 0;
}
