#include "hl_token.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl_common.h"

/* ---- Extraction ----------------------------------------------------------- */

static int is_space(char c) {
    return c == ' ' || c == '\t';
}

int hl_token_from_bearer(const char *v, hl_span *out) {
    if (v == NULL || strncasecmp(v, "Bearer", 6) != 0 || !is_space(v[6])) return 0;
    const char *p = v + 7;
    while (is_space(*p))
        p++;
    size_t n = strlen(p);
    while (n > 0 && is_space(p[n - 1]))
        n--;
    if (n == 0) return 0;
    out->p = p;
    out->n = n;
    return 1;
}

int hl_token_from_cookie(const char *h, size_t n, const char *name, hl_span *out) {
    if (h == NULL || name == NULL) return 0;
    size_t nl = strlen(name);
    const char *end = h + n;
    const char *p = h;
    while (p < end) {
        while (p < end && (is_space(*p) || *p == ';'))
            p++;
        const char *pair = p;
        while (p < end && *p != ';')
            p++;
        const char *pend = p;
        const char *eq = memchr(pair, '=', (size_t)(pend - pair));
        if (eq == NULL) continue;
        const char *ne = eq;
        while (ne > pair && is_space(ne[-1]))
            ne--;
        if ((size_t)(ne - pair) != nl || memcmp(pair, name, nl) != 0) continue;
        const char *vs = eq + 1, *ve = pend;
        while (vs < ve && is_space(*vs))
            vs++;
        while (ve > vs && is_space(ve[-1]))
            ve--;
        if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
            vs++;
            ve--;
        }
        out->p = vs;
        out->n = (size_t)(ve - vs);
        return 1;
    }
    return 0;
}

/* ---- base64url ------------------------------------------------------------- */

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

long hl_base64url_decode(const char *s, size_t n, unsigned char *out) {
    if (n % 4 == 1) return -1; /* no length of bytes encodes to that */
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* The bits left over must be zero, or two encodings would mean the
     * same token. */
    if (acc & ((1u << bits) - 1)) return -1;
    return (long)o;
}

/* ---- Parsing --------------------------------------------------------------- */

/* The JSON object base64url segment s[0..n) encodes, or NULL. */
static json_t *decode_object(const char *s, size_t n) {
    unsigned char *buf = malloc(n * 3 / 4 + 1);
    if (buf == NULL) return NULL;
    json_t *j = NULL;
    long len = hl_base64url_decode(s, n, buf);
    if (len > 0) j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int time_claim(json_t *payload, const char *name, double *out, int *has) {
    json_t *v = json_object_get(payload, name);
    if (has) *has = v != NULL;
    if (v == NULL) return has ? 0 : -1;
    if (!json_is_number(v)) return -1;
    *out = json_number_value(v);
    return 0;
}

/* 1 if aud (a string or a list of strings) names want. */
static int audience_has(json_t *aud, const char *want) {
    if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return 1;
    }
    return 0;
}

static int audience_shape_ok(json_t *aud) {
    if (json_is_string(aud)) return 1;
    if (!json_is_array(aud)) return 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) {
        if (!json_is_string(v)) return 0;
    }
    return 1;
}

/* Counts the patterns of list (NULL: none) and their bytes; -1 if list is
 * not a list of patterns. */
static int count_patterns(json_t *list, size_t *n, size_t *bytes) {
    if (list == NULL) return 0;
    if (!json_is_array(list)) return -1;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (!json_is_string(v)) return -1;
        size_t len = json_string_length(v);
        if (!hl_grant_valid(json_string_value(v), len)) return -1;
        (*n)++;
        *bytes += len;
    }
    return 0;
}

/* Copies the patterns of list into g, from the arrays and bytes at *pat,
 * *len and *bytes, which move on past them. */
static void copy_patterns(json_t *list, hl_grants *g, const char **pat, size_t *len, char **bytes) {
    g->pat = pat;
    g->len = len;
    g->n = 0;
    if (list == NULL) return;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        size_t n = json_string_length(v);
        memcpy(*bytes, json_string_value(v), n);
        pat[g->n] = *bytes;
        len[g->n] = n;
        g->n++;
        *bytes += n;
    }
}

static hl_token_status parse_grants(json_t *payload, hl_claims *out, char *why, size_t whylen) {
    json_t *hl = json_object_get(payload, "holdline");
    json_t *sub = NULL, *pub = NULL;
    if (hl != NULL) {
        if (!json_is_object(hl)) {
            hl_set_error(why, whylen, "the token's holdline claim must be an object");
            return HL_TOKEN_MALFORMED;
        }
        sub = json_object_get(hl, "subscribe");
        pub = json_object_get(hl, "publish");
    }
    size_t ns = 0, np = 0, bytes = 0;
    if (count_patterns(sub, &ns, &bytes) != 0) {
        hl_set_error(why, whylen,
                     "the token's holdline.subscribe must be a list of channel names or "
                     "prefixes ending in *");
        return HL_TOKEN_MALFORMED;
    }
    if (count_patterns(pub, &np, &bytes) != 0) {
        hl_set_error(why, whylen,
                     "the token's holdline.publish must be a list of channel names or "
                     "prefixes ending in *");
        return HL_TOKEN_MALFORMED;
    }
    size_t n = ns + np;
    size_t size = n * (sizeof(char *) + sizeof(size_t)) + bytes + 1;
    out->store = malloc(size);
    if (out->store == NULL) {
        hl_set_error(why, whylen, "out of memory");
        return HL_TOKEN_OOM;
    }
    const char **pat = (const char **)(void *)out->store;
    size_t *len = (size_t *)(void *)(out->store + n * sizeof(char *));
    char *b = out->store + n * (sizeof(char *) + sizeof(size_t));
    copy_patterns(sub, &out->subscribe, pat, len, &b);
    copy_patterns(pub, &out->publish, pat + ns, len + ns, &b);
    return HL_TOKEN_OK;
}

static hl_token_status check_header(json_t *head, const hl_token_rules *rules, char *why,
                                    size_t whylen) {
    json_t *alg = json_object_get(head, "alg");
    if (!json_is_string(alg)) {
        hl_set_error(why, whylen, "the token's header has no alg");
        return HL_TOKEN_MALFORMED;
    }
    const char *a = json_string_value(alg);
    if (strcmp(a, rules->alg) != 0) {
        if (strcasecmp(a, "none") == 0)
            hl_set_error(why, whylen, "unsigned tokens (alg none) are refused");
        else
            hl_set_error(why, whylen,
                         "the token is not signed with %s, the one algorithm "
                         "this node accepts",
                         rules->alg);
        return HL_TOKEN_WRONG_ALG;
    }
    json_t *typ = json_object_get(head, "typ");
    if (typ != NULL && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) {
        hl_set_error(why, whylen, "the token's typ is not JWT");
        return HL_TOKEN_MALFORMED;
    }
    /* RFC 7515: extensions a recipient does not understand, named in crit,
     * make the token invalid; holdline understands none. */
    if (json_object_get(head, "crit") != NULL) {
        hl_set_error(why, whylen, "the token's header names critical extensions (crit)");
        return HL_TOKEN_MALFORMED;
    }
    return HL_TOKEN_OK;
}

static hl_token_status check_claims(json_t *payload, const hl_token_rules *rules, hl_claims *out,
                                    char *why, size_t whylen) {
    if (time_claim(payload, "exp", &out->exp, NULL) != 0) {
        hl_set_error(why, whylen, "the token needs an exp claim (a number of seconds)");
        return HL_TOKEN_MALFORMED;
    }
    if (time_claim(payload, "nbf", &out->nbf, &out->has_nbf) != 0) {
        hl_set_error(why, whylen, "the token's nbf claim must be a number of seconds");
        return HL_TOKEN_MALFORMED;
    }
    if (time_claim(payload, "iat", &out->iat, &out->has_iat) != 0) {
        hl_set_error(why, whylen, "the token's iat claim must be a number of seconds");
        return HL_TOKEN_MALFORMED;
    }
    json_t *aud = json_object_get(payload, "aud");
    if (aud != NULL && !audience_shape_ok(aud)) {
        hl_set_error(why, whylen, "the token's aud claim must be a string or a list of strings");
        return HL_TOKEN_MALFORMED;
    }
    int want_aud = rules->audience != NULL && rules->audience[0] != '\0';
    if (want_aud && (aud == NULL || !audience_has(aud, rules->audience))) {
        hl_set_error(why, whylen, "the token is not meant for this audience (aud)");
        return HL_TOKEN_AUDIENCE;
    }
    /* RFC 7519 4.1.3: a token naming audiences must be refused by a
     * recipient that is none of them; with no auth.audience this node is
     * none. */
    if (!want_aud && aud != NULL) {
        hl_set_error(why, whylen,
                     "the token names an audience (aud) but this node has no auth.audience");
        return HL_TOKEN_AUDIENCE;
    }
    json_t *iss = json_object_get(payload, "iss");
    if (iss != NULL && !json_is_string(iss)) {
        hl_set_error(why, whylen, "the token's iss claim must be a string");
        return HL_TOKEN_MALFORMED;
    }
    if (rules->issuer != NULL && rules->issuer[0] != '\0' &&
        (iss == NULL || strcmp(json_string_value(iss), rules->issuer) != 0)) {
        hl_set_error(why, whylen, "the token is not from the expected issuer (iss)");
        return HL_TOKEN_ISSUER;
    }
    return parse_grants(payload, out, why, whylen);
}

hl_token_status hl_token_parse(const char *t, size_t n, const hl_token_rules *rules, hl_claims *out,
                               char *why, size_t whylen) {
    memset(out, 0, sizeof(*out));
    if (n > HL_TOKEN_MAX_BYTES) {
        hl_set_error(why, whylen, "the token is longer than %d bytes", HL_TOKEN_MAX_BYTES);
        return HL_TOKEN_MALFORMED;
    }
    const char *d1 = memchr(t, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - t)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - t)) != NULL || d1 == t ||
        d2 == d1 + 1) {
        hl_set_error(why, whylen, "the token is not a JWT (header.payload.signature)");
        return HL_TOKEN_MALFORMED;
    }
    json_t *head = decode_object(t, (size_t)(d1 - t));
    if (head == NULL) {
        hl_set_error(why, whylen, "the token's header is not base64url-encoded JSON");
        return HL_TOKEN_MALFORMED;
    }
    hl_token_status st = check_header(head, rules, why, whylen);
    json_decref(head);
    if (st != HL_TOKEN_OK) return st;
    if (d2 + 1 == t + n) {
        hl_set_error(why, whylen, "the token has no signature");
        return HL_TOKEN_BAD_SIGNATURE;
    }
    json_t *payload = decode_object(d1 + 1, (size_t)(d2 - d1 - 1));
    if (payload == NULL) {
        hl_set_error(why, whylen, "the token's payload is not base64url-encoded JSON");
        return HL_TOKEN_MALFORMED;
    }
    st = check_claims(payload, rules, out, why, whylen);
    json_decref(payload);
    if (st != HL_TOKEN_OK) hl_claims_free(out);
    return st;
}

hl_token_status hl_claims_check_time(const hl_claims *c, double now, int leeway, char *why,
                                     size_t whylen) {
    if (now >= c->exp + leeway) {
        hl_set_error(why, whylen, "the token expired");
        return HL_TOKEN_EXPIRED;
    }
    if (c->has_nbf && now + leeway < c->nbf) {
        hl_set_error(why, whylen, "the token is not valid yet (nbf)");
        return HL_TOKEN_NOT_YET;
    }
    if (c->has_iat && c->iat > now + leeway) {
        hl_set_error(why, whylen, "the token was issued in the future (iat)");
        return HL_TOKEN_IAT;
    }
    return HL_TOKEN_OK;
}

void hl_claims_free(hl_claims *c) {
    if (c == NULL) return;
    free(c->store);
    c->store = NULL;
    c->subscribe.n = c->publish.n = 0;
}
