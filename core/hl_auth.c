#include "hl_auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"

/* Verified tokens kept, eight-way set-associative by a hash of their
 * bytes (a bucket's eight pointers are one cache line): a token goes to
 * one of the slots of its bucket, evicting the one used longest ago, so
 * the cache holds at most `slots` tokens whatever arrives. There are two
 * slots for every connection the node may hold (http.max_connections,
 * rounded up to a power of two, 1024 to 131072), because every client may
 * have a token of its own and a miss costs a whole verification: libjwt
 * 1.10 parses the PEM key at each one, some 0.4 ms for RS256 and ES256.
 * With fewer ways or slots, tokens that share a bucket evict each other
 * at every round of re-polls: two-way, 2,000 tokens in 32,768 slots left
 * 0.7% of re-polls verifying again; eight-way, 20,000 tokens in one
 * worker's 65,536 slots leave 0.2% (tests/perf/perf_verify.c). Tokens
 * longer than CACHE_MAX_TOKEN are verified at every use instead of making
 * the cache large. */
#define CACHE_WAYS 8
#define CACHE_MIN_SLOTS 1024
#define CACHE_MAX_SLOTS 131072
#define CACHE_MAX_TOKEN 4096
/* A key file larger than this is not a key. */
#define KEY_FILE_MAX 65536

typedef struct cached {
    hl_claims claims;
    unsigned long long used; /* the verifier's use count when last used */
    size_t n;
    char tok[]; /* the token's n bytes */
} cached;

struct hl_auth {
    int on;
    unsigned char *key; /* the secret or the PEM text */
    size_t key_len;
    jwt_alg_t alg;
    hl_token_rules rules;
    int leeway;
    char publish_key[256];
    /* auth.public_channels as a grant list into cfg, which outlives us */
    const char *pub_pat[HL_CONFIG_MAX_PUBLIC];
    size_t pub_len[HL_CONFIG_MAX_PUBLIC];
    hl_grants pub;
    hl_claims uncached; /* the last verdict on a token too long to cache */
    unsigned long long uses, hits, verified;
    cached **cache; /* slots entries, NULL where empty */
    size_t slots;   /* a power of two */
};

/* ---- The key ---------------------------------------------------------------- */

static int read_key_file(hl_auth *a, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return hl_set_error(err, errlen, "auth.jwt_key_file: cannot read %s: %s", path,
                            strerror(errno));
    a->key = malloc(KEY_FILE_MAX + 1);
    size_t n = a->key ? fread(a->key, 1, KEY_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (a->key == NULL) return hl_set_error(err, errlen, "auth.jwt_key_file: out of memory");
    if (bad) return hl_set_error(err, errlen, "auth.jwt_key_file: cannot read %s", path);
    if (n > KEY_FILE_MAX)
        return hl_set_error(err, errlen, "auth.jwt_key_file: %s is larger than %d bytes", path,
                            KEY_FILE_MAX);
    /* A secret written with echo or an editor ends in a newline that is
     * not part of it. */
    if (n > 0 && a->key[n - 1] == '\n') n--;
    if (n > 0 && a->key[n - 1] == '\r') n--;
    a->key_len = n;
    return HL_OK;
}

/* The curve an ES algorithm signs on (RFC 7518 3.4). */
static const char *es_curve(jwt_alg_t alg) {
    switch (alg) {
    case JWT_ALG_ES256: return "prime256v1";
    case JWT_ALG_ES384: return "secp384r1";
    case JWT_ALG_ES512: return "secp521r1";
    default: return NULL;
    }
}

static int check_key(hl_auth *a, const char *setting, char *err, size_t errlen) {
    const char *alg = a->rules.alg;
    int pem = a->key_len >= 10 && memmem(a->key, a->key_len, "-----BEGIN", 10) != NULL;
    if (alg[0] == 'H') {
        /* RFC 7518 3.2: a key at least as long as the hash. A PEM key here
         * means RS or ES was meant: verifying HS with a public key as the
         * secret would let anyone who has the public key sign. */
        size_t need = (size_t)atoi(alg + 2) / 8;
        if (pem)
            return hl_set_error(err, errlen,
                                "%s: this is a PEM key, but auth.jwt_algorithm is %s, which "
                                "takes a shared secret; a public key needs RS256, RS384, "
                                "RS512, ES256, ES384 or ES512",
                                setting, alg);
        if (a->key_len < need)
            return hl_set_error(err, errlen,
                                "%s: a %s secret must be at least %zu bytes (it is %zu)", setting,
                                alg, need, a->key_len);
        return HL_OK;
    }
    BIO *bio = BIO_new_mem_buf(a->key, (int)a->key_len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    int rc = HL_OK;
    if (pk == NULL) {
        rc = hl_set_error(err, errlen,
                          "%s: not a PEM public key (-----BEGIN PUBLIC KEY-----); from a private "
                          "key: openssl pkey -in private.pem -pubout",
                          setting);
    } else if (alg[0] == 'R') {
        if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA)
            rc = hl_set_error(err, errlen, "%s: %s needs an RSA public key", setting, alg);
        else if (EVP_PKEY_get_bits(pk) < 2048)
            rc =
                hl_set_error(err, errlen, "%s: an RSA key must have at least 2048 bits (it has %d)",
                             setting, EVP_PKEY_get_bits(pk));
    } else {
        char group[64] = "";
        const char *want = es_curve(a->alg);
        if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
            EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) != 1 ||
            strcmp(group, want) != 0)
            rc = hl_set_error(err, errlen, "%s: %s needs an EC public key on the curve %s", setting,
                              alg, want);
    }
    EVP_PKEY_free(pk);
    return rc;
}

hl_auth *hl_auth_new(const hl_config *cfg, char *err, size_t errlen) {
    hl_auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        hl_set_error(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(a->publish_key, sizeof(a->publish_key), "%s", cfg->publish_key);
    for (int i = 0; i < cfg->auth_public_channels_count; i++) {
        a->pub_pat[i] = cfg->auth_public_channels[i];
        a->pub_len[i] = strlen(cfg->auth_public_channels[i]);
    }
    a->pub.pat = a->pub_pat;
    a->pub.len = a->pub_len;
    a->pub.n = (size_t)cfg->auth_public_channels_count;
    a->on = strcmp(cfg->auth_mode, "jwt") == 0;
    if (!a->on) return a;

    a->slots = CACHE_MIN_SLOTS;
    while (a->slots < CACHE_MAX_SLOTS && a->slots < 2 * (size_t)cfg->http_max_connections)
        a->slots *= 2;
    a->cache = aligned_alloc(CACHE_WAYS * sizeof(*a->cache), a->slots * sizeof(*a->cache));
    if (a->cache == NULL) {
        hl_set_error(err, errlen, "out of memory");
        goto fail;
    }
    memset(a->cache, 0, a->slots * sizeof(*a->cache));

    a->rules.alg = cfg->auth_jwt_algorithm;
    a->rules.audience = cfg->auth_audience;
    a->rules.issuer = cfg->auth_issuer;
    a->leeway = cfg->auth_leeway_s;
    a->alg = jwt_str_alg(cfg->auth_jwt_algorithm);
    if (a->alg == JWT_ALG_NONE || a->alg == JWT_ALG_INVAL) {
        hl_set_error(err, errlen, "auth.jwt_algorithm: '%s' is not an algorithm libjwt knows",
                     cfg->auth_jwt_algorithm);
        goto fail;
    }
    const char *setting = "auth.jwt_key";
    if (cfg->auth_jwt_key_file[0] != '\0') {
        setting = "auth.jwt_key_file";
        if (read_key_file(a, cfg->auth_jwt_key_file, err, errlen) != HL_OK) goto fail;
    } else {
        a->key_len = strlen(cfg->auth_jwt_key);
        a->key = malloc(a->key_len + 1);
        if (a->key == NULL) {
            hl_set_error(err, errlen, "out of memory");
            goto fail;
        }
        memcpy(a->key, cfg->auth_jwt_key, a->key_len + 1);
    }
    if (check_key(a, setting, err, errlen) != HL_OK) goto fail;
    return a;
fail:
    hl_auth_free(a);
    return NULL;
}

void hl_auth_free(hl_auth *a) {
    if (a == NULL) return;
    for (size_t i = 0; a->cache && i < a->slots; i++) {
        if (a->cache[i]) hl_claims_free(&a->cache[i]->claims);
        free(a->cache[i]);
    }
    free(a->cache);
    hl_claims_free(&a->uncached);
    if (a->key) memset(a->key, 0, a->key_len);
    free(a->key);
    free(a);
}

int hl_auth_on(const hl_auth *a) {
    return a->on;
}

/* ---- Verdicts ------------------------------------------------------------- */

static uint64_t fnv1a(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The signature, by libjwt. The token's header and claims passed
 * hl_token_parse already, so alg is the configured one: libjwt never
 * gets to verify an HS token with a public key as the secret. */
static hl_token_status check_signature(hl_auth *a, const char *tok, char *why, size_t whylen) {
    jwt_t *j = NULL;
    int rc = jwt_decode(&j, tok, a->key, (int)a->key_len);
    if (rc == 0 && j != NULL && jwt_get_alg(j) == a->alg) {
        jwt_free(j);
        return HL_TOKEN_OK;
    }
    jwt_free(j);
    if (rc == ENOMEM) {
        hl_set_error(why, whylen, "out of memory");
        return HL_TOKEN_OOM;
    }
    hl_set_error(why, whylen, "the token's signature does not verify with this node's key");
    return HL_TOKEN_BAD_SIGNATURE;
}

hl_token_status hl_auth_verify(hl_auth *a, const char *t, size_t n, double now,
                               const hl_claims **out, char *why, size_t whylen) {
    *out = NULL;
    a->uses++;
    cached **set = &a->cache[(size_t)fnv1a(t, n) & (a->slots - 1) & ~(size_t)(CACHE_WAYS - 1)];
    for (int k = 0; k < CACHE_WAYS; k++) {
        cached *c = set[k];
        if (c != NULL && c->n == n && memcmp(c->tok, t, n) == 0) {
            a->hits++;
            c->used = a->uses;
            *out = &c->claims;
            return hl_claims_check_time(&c->claims, now, a->leeway, why, whylen);
        }
    }
    hl_claims cl;
    hl_token_status st = hl_token_parse(t, n, &a->rules, &cl, why, whylen);
    if (st != HL_TOKEN_OK) return st;
    cached *c = malloc(sizeof(*c) + n + 1);
    if (c == NULL) {
        hl_claims_free(&cl);
        hl_set_error(why, whylen, "out of memory");
        return HL_TOKEN_OOM;
    }
    memcpy(c->tok, t, n);
    c->tok[n] = '\0';
    c->n = n;
    c->used = a->uses;
    c->claims = cl;
    a->verified++;
    st = check_signature(a, c->tok, why, whylen);
    if (st != HL_TOKEN_OK) {
        hl_claims_free(&c->claims);
        free(c);
        return st;
    }
    if (n <= CACHE_MAX_TOKEN) {
        /* An empty slot, or the one used longest ago. */
        cached **slot = &set[0];
        for (int k = 0; k < CACHE_WAYS && *slot != NULL; k++)
            if (set[k] == NULL || set[k]->used < (*slot)->used) slot = &set[k];
        if (*slot) hl_claims_free(&(*slot)->claims);
        free(*slot);
        *slot = c;
        *out = &c->claims;
    } else {
        hl_claims_free(&a->uncached);
        a->uncached = c->claims;
        free(c);
        *out = &a->uncached;
    }
    return hl_claims_check_time(*out, now, a->leeway, why, whylen);
}

int hl_auth_public(const hl_auth *a, const char *ch, size_t n) {
    return hl_grants_allow(&a->pub, ch, n);
}

/* Constant-time comparison of a secret: the time taken does not tell how
 * much of a guess was right. */
static int secret_eq(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < lb; i++)
        d |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
    return d == 0;
}

int hl_auth_publish_key(const hl_auth *a, const char *given) {
    return a->publish_key[0] != '\0' && given != NULL && secret_eq(given, a->publish_key);
}

void hl_auth_counts(const hl_auth *a, unsigned long long *cached_n, unsigned long long *verified) {
    *cached_n = a->hits;
    *verified = a->verified;
}
