/* Unit tests for core/hl_auth.c: the keys a node accepts at start, the
 * verdicts on tokens signed here with libjwt (right key, wrong key,
 * another algorithm, none), the cache of verified tokens, public channels
 * and publish.key. Keys are made in memory with OpenSSL; nothing here
 * does I/O but the key-file cases, which write into a temporary dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl_auth.h"
#include "hl_common.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW 1700000000.0

/* PEM text of a fresh key's public (or private) half; free() it. */
static char *pem_of(EVP_PKEY *k, int private_half) {
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    if (private_half)
        assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1);
    assert_non_null(out);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

static EVP_PKEY *rsa_key(unsigned bits) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    assert_non_null(k);
    return k;
}

static EVP_PKEY *ec_key(const char *curve) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    assert_non_null(k);
    return k;
}

static void jwt_config(hl_config *cfg, const char *alg, const char *key) {
    hl_config_defaults(cfg);
    strcpy(cfg->auth_mode, "jwt");
    strcpy(cfg->auth_jwt_algorithm, alg);
    snprintf(cfg->auth_jwt_key, sizeof(cfg->auth_jwt_key), "%s", key);
}

/* A token for claims (JSON), signed with alg and key (key_len 0: strlen). */
static char *sign(jwt_alg_t alg, const char *key, size_t key_len, const char *claims) {
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    if (key_len == 0 && key) key_len = strlen(key);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, (int)key_len), 0);
    char *t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static void assert_contains(const char *s, const char *word) {
    if (strstr(s, word) == NULL) fail_msg("'%s' does not contain '%s'", s, word);
}

static hl_token_status verify(hl_auth *a, const char *t, double now, const hl_claims **c,
                              char *why) {
    return hl_auth_verify(a, t, strlen(t), now, c, why, 200);
}

/* ---- Keys at start ---------------------------------------------------------- */

static void test_auth_refuses_keys_that_do_not_fit_the_algorithm(void **state) {
    (void)state;
    EVP_PKEY *rsa = rsa_key(2048), *small = rsa_key(1024), *p256 = ec_key("P-256"),
             *p384 = ec_key("P-384");
    char *rsa_pub = pem_of(rsa, 0), *rsa_priv = pem_of(rsa, 1), *small_pub = pem_of(small, 0),
         *p256_pub = pem_of(p256, 0), *p384_pub = pem_of(p384, 0);
    const struct {
        const char *alg, *key, *words;
    } cases[] = {
        {"HS256", "short", "at least 32 bytes"},
        {"HS384", SECRET, "at least 48 bytes"},
        {"HS512", SECRET SECRET, ""}, /* 64 bytes: fine */
        {"HS256", rsa_pub, "PEM key"},
        {"RS256", SECRET, "not a PEM public key"},
        {"RS256", rsa_priv, "not a PEM public key"},
        {"RS256", small_pub, "2048 bits"},
        {"RS256", p256_pub, "RSA public key"},
        {"ES256", rsa_pub, "prime256v1"},
        {"ES256", p384_pub, "prime256v1"},
        {"ES384", p384_pub, ""},
        {"ES256", p256_pub, ""},
        {"RS512", rsa_pub, ""},
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        hl_config cfg;
        char err[256] = "";
        jwt_config(&cfg, cases[i].alg, cases[i].key);
        hl_auth *a = hl_auth_new(&cfg, err, sizeof(err));
        if (cases[i].words[0] == '\0') {
            if (a == NULL) fail_msg("case %zu (%s): refused: %s", i, cases[i].alg, err);
        } else {
            if (a != NULL) fail_msg("case %zu (%s): accepted", i, cases[i].alg);
            assert_contains(err, "auth.jwt_key: ");
            assert_contains(err, cases[i].words);
        }
        hl_auth_free(a);
    }
    free(rsa_pub);
    free(rsa_priv);
    free(small_pub);
    free(p256_pub);
    free(p384_pub);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
}

static void test_auth_reads_the_key_file_without_its_newline(void **state) {
    (void)state;
    char dir[] = "/tmp/hl-test-auth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/secret", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(SECRET "\n", f);
    fclose(f);

    hl_config cfg;
    char err[256] = "";
    jwt_config(&cfg, "HS256", "");
    snprintf(cfg.auth_jwt_key_file, sizeof(cfg.auth_jwt_key_file), "%s", path);
    hl_auth *a = hl_auth_new(&cfg, err, sizeof(err));
    if (a == NULL) fail_msg("%s", err);
    char *t = sign(JWT_ALG_HS256, SECRET, 0, "{\"exp\":1800000000}");
    const hl_claims *c;
    char why[200];
    assert_int_equal(verify(a, t, NOW, &c, why), HL_TOKEN_OK);
    hl_auth_free(a);
    free(t);

    /* A file that is not there stops the node with its name. */
    snprintf(cfg.auth_jwt_key_file, sizeof(cfg.auth_jwt_key_file), "%s/missing", dir);
    assert_null(hl_auth_new(&cfg, err, sizeof(err)));
    assert_contains(err, "auth.jwt_key_file: cannot read");
    assert_contains(err, "missing");
    unlink(path);
    rmdir(dir);
}

/* ---- Verdicts ------------------------------------------------------------------ */

static void test_auth_accepts_a_good_token_and_refuses_the_rest(void **state) {
    (void)state;
    hl_config cfg;
    char err[256];
    jwt_config(&cfg, "HS256", SECRET);
    hl_auth *a = hl_auth_new(&cfg, err, sizeof(err));
    assert_non_null(a);
    const hl_claims *c;
    char why[200];

    char *good = sign(JWT_ALG_HS256, SECRET, 0,
                      "{\"exp\":1800000000,\"holdline\":{\"subscribe\":[\"news\"]}}");
    assert_int_equal(verify(a, good, NOW, &c, why), HL_TOKEN_OK);
    assert_non_null(c);
    assert_int_equal(hl_grants_allow(&c->subscribe, "news", 4), 1);

    char *other_key =
        sign(JWT_ALG_HS256, "another secret of thirty-two bytes", 0, "{\"exp\":1800000000}");
    assert_int_equal(verify(a, other_key, NOW, &c, why), HL_TOKEN_BAD_SIGNATURE);
    assert_null(c);

    char *hs512 = sign(JWT_ALG_HS512, SECRET, 0, "{\"exp\":1800000000}");
    assert_int_equal(verify(a, hs512, NOW, &c, why), HL_TOKEN_WRONG_ALG);

    char *none = sign(JWT_ALG_NONE, NULL, 0, "{\"exp\":1800000000}");
    assert_int_equal(verify(a, none, NOW, &c, why), HL_TOKEN_WRONG_ALG);
    assert_contains(why, "none");

    /* The good token with its signature cut or changed. */
    char *cut = strdup(good);
    cut[strlen(cut) - 2] = cut[strlen(cut) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(a, cut, NOW, &c, why), HL_TOKEN_BAD_SIGNATURE);
    *strrchr(cut, '.') = '\0';
    assert_int_equal(verify(a, cut, NOW, &c, why), HL_TOKEN_MALFORMED);

    char *expired = sign(JWT_ALG_HS256, SECRET, 0, "{\"exp\":1600000000}");
    assert_int_equal(verify(a, expired, NOW, &c, why), HL_TOKEN_EXPIRED);

    free(good);
    free(other_key);
    free(hs512);
    free(none);
    free(cut);
    free(expired);
    hl_auth_free(a);
}

/* The classic confusion: a node that verifies RS256 with a public key
 * must not take an HS256 token whose secret is that public key's PEM
 * text, which anyone can have. */
static void test_auth_refuses_hs_tokens_signed_with_the_public_key(void **state) {
    (void)state;
    EVP_PKEY *rsa = rsa_key(2048);
    char *pub = pem_of(rsa, 0);
    hl_config cfg;
    char err[256];
    jwt_config(&cfg, "RS256", pub);
    hl_auth *a = hl_auth_new(&cfg, err, sizeof(err));
    if (a == NULL) fail_msg("%s", err);
    const hl_claims *c;
    char why[200];

    char *forged = sign(JWT_ALG_HS256, pub, 0, "{\"exp\":1800000000}");
    assert_int_equal(verify(a, forged, NOW, &c, why), HL_TOKEN_WRONG_ALG);
    assert_contains(why, "RS256");

    char *priv = pem_of(rsa, 1);
    char *real = sign(JWT_ALG_RS256, priv, 0, "{\"exp\":1800000000}");
    assert_int_equal(verify(a, real, NOW, &c, why), HL_TOKEN_OK);

    EVP_PKEY *other = rsa_key(2048);
    char *other_priv = pem_of(other, 1);
    char *wrong = sign(JWT_ALG_RS256, other_priv, 0, "{\"exp\":1800000000}");
    assert_int_equal(verify(a, wrong, NOW, &c, why), HL_TOKEN_BAD_SIGNATURE);

    free(forged);
    free(real);
    free(wrong);
    free(priv);
    free(other_priv);
    free(pub);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(other);
    hl_auth_free(a);
}

static void test_auth_verifies_es256(void **state) {
    (void)state;
    EVP_PKEY *k = ec_key("P-256");
    char *pub = pem_of(k, 0), *priv = pem_of(k, 1);
    hl_config cfg;
    char err[256];
    jwt_config(&cfg, "ES256", pub);
    hl_auth *a = hl_auth_new(&cfg, err, sizeof(err));
    if (a == NULL) fail_msg("%s", err);
    const hl_claims *c;
    char why[200];
    char *t = sign(JWT_ALG_ES256, priv, 0, "{\"exp\":1800000000}");
    assert_int_equal(verify(a, t, NOW, &c, why), HL_TOKEN_OK);
    free(t);
    free(pub);
    free(priv);
    EVP_PKEY_free(k);
    hl_auth_free(a);
}

/* ---- The cache ------------------------------------------------------------------ */

static void test_auth_checks_a_signature_once_and_the_time_every_use(void **state) {
    (void)state;
    hl_config cfg;
    char err[256];
    jwt_config(&cfg, "HS256", SECRET);
    cfg.auth_leeway_s = 0;
    hl_auth *a = hl_auth_new(&cfg, err, sizeof(err));
    assert_non_null(a);
    const hl_claims *c;
    char why[200];
    unsigned long long hits, verified;

    char *t = sign(JWT_ALG_HS256, SECRET, 0, "{\"exp\":1700000100}");
    for (int i = 0; i < 5; i++)
        assert_int_equal(verify(a, t, NOW, &c, why), HL_TOKEN_OK);
    hl_auth_counts(a, &hits, &verified);
    assert_int_equal(verified, 1);
    assert_int_equal(hits, 4);
    /* Cached, it still expires. */
    assert_int_equal(verify(a, t, NOW + 100, &c, why), HL_TOKEN_EXPIRED);

    /* A refused signature is checked again every time. */
    char *bad = strdup(t);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';
    for (int i = 0; i < 3; i++)
        assert_int_equal(verify(a, bad, NOW, &c, why), HL_TOKEN_BAD_SIGNATURE);
    hl_auth_counts(a, &hits, &verified);
    assert_int_equal(verified, 4);

    /* Many tokens: each verdict stays right whatever the cache evicted. */
    for (int i = 0; i < 3000; i++) {
        char claims[64];
        snprintf(claims, sizeof(claims), "{\"exp\":1700000100,\"n\":%d}", i);
        char *ti = sign(JWT_ALG_HS256, SECRET, 0, claims);
        assert_int_equal(verify(a, ti, NOW, &c, why), HL_TOKEN_OK);
        free(ti);
    }
    assert_int_equal(verify(a, t, NOW, &c, why), HL_TOKEN_OK);
    free(t);
    free(bad);
    hl_auth_free(a);
}

/* ---- Public channels and publish.key ------------------------------------------ */

static void test_auth_opens_public_channels_and_compares_publish_key(void **state) {
    (void)state;
    hl_config cfg;
    char err[256];
    hl_config_defaults(&cfg);
    strcpy(cfg.auth_public_channels[0], "public.*");
    strcpy(cfg.auth_public_channels[1], "lobby");
    cfg.auth_public_channels_count = 2;
    strcpy(cfg.publish_key, "k3y");
    hl_auth *a = hl_auth_new(&cfg, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(hl_auth_on(a), 0);
    assert_int_equal(hl_auth_public(a, "public.news", 11), 1);
    assert_int_equal(hl_auth_public(a, "lobby", 5), 1);
    assert_int_equal(hl_auth_public(a, "lobby2", 6), 0);
    assert_int_equal(hl_auth_public(a, "publi", 5), 0);
    assert_int_equal(hl_auth_publish_key(a, "k3y"), 1);
    assert_int_equal(hl_auth_publish_key(a, "k3"), 0);
    assert_int_equal(hl_auth_publish_key(a, "k3yy"), 0);
    assert_int_equal(hl_auth_publish_key(a, ""), 0);
    assert_int_equal(hl_auth_publish_key(a, NULL), 0);
    hl_auth_free(a);

    /* No key: nothing matches it, not even the empty string. */
    cfg.publish_key[0] = '\0';
    a = hl_auth_new(&cfg, err, sizeof(err));
    assert_int_equal(hl_auth_publish_key(a, ""), 0);
    hl_auth_free(a);
    hl_auth_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_refuses_keys_that_do_not_fit_the_algorithm),
        cmocka_unit_test(test_auth_reads_the_key_file_without_its_newline),
        cmocka_unit_test(test_auth_accepts_a_good_token_and_refuses_the_rest),
        cmocka_unit_test(test_auth_refuses_hs_tokens_signed_with_the_public_key),
        cmocka_unit_test(test_auth_verifies_es256),
        cmocka_unit_test(test_auth_checks_a_signature_once_and_the_time_every_use),
        cmocka_unit_test(test_auth_opens_public_channels_and_compares_publish_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
