/* perf_verify.c -- what one token verification costs a worker, cold (the
 * signature checked by libjwt) and cached (a re-poll with a token seen
 * before), for HS256, RS256 and ES256. Not a test: scripts/bench-auth.sh
 * runs it and prints its lines beside the served-load figures.
 *
 * Usage: perf_verify RS_PRIVATE.pem RS_PUBLIC.pem ES_PRIVATE.pem ES_PUBLIC.pem */
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl_auth.h"

#define TOKENS 2000
#define CACHED_ROUNDS 200

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    char *b = calloc(1, 65536);
    if (b == NULL || fread(b, 1, 65535, f) == 0) exit(2);
    fclose(f);
    return b;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void run(const char *alg, jwt_alg_t ja, const char *pub, const char *priv) {
    hl_config cfg;
    hl_config_defaults(&cfg);
    strcpy(cfg.auth_mode, "jwt");
    snprintf(cfg.auth_jwt_algorithm, sizeof(cfg.auth_jwt_algorithm), "%s", alg);
    snprintf(cfg.auth_jwt_key, sizeof(cfg.auth_jwt_key), "%s", pub);
    char err[256], why[200];
    hl_auth *a = hl_auth_new(&cfg, err, sizeof(err));
    if (a == NULL) {
        fprintf(stderr, "perf_verify: %s\n", err);
        exit(1);
    }
    /* Tokens as an application mints them: one per user, a few grants. */
    char **t = malloc(TOKENS * sizeof(*t));
    for (int i = 0; i < TOKENS; i++) {
        jwt_t *j;
        char claims[160];
        snprintf(claims, sizeof(claims),
                 "{\"exp\":2000000000,\"sub\":\"%d\",\"holdline\":{\"subscribe\":[\"user.%d.*\","
                 "\"news\"]}}",
                 i, i);
        if (jwt_new(&j) || jwt_add_grants_json(j, claims) ||
            jwt_set_alg(j, ja, (const unsigned char *)priv, (int)strlen(priv)))
            exit(1);
        t[i] = jwt_encode_str(j);
        jwt_free(j);
    }
    const hl_claims *c;
    double t0 = now();
    for (int i = 0; i < TOKENS; i++)
        if (hl_auth_verify(a, t[i], strlen(t[i]), 1.7e9, &c, why, sizeof(why)) != HL_TOKEN_OK) {
            fprintf(stderr, "perf_verify: %s: %s\n", alg, why);
            exit(1);
        }
    double t1 = now();
    for (int r = 0; r < CACHED_ROUNDS; r++)
        for (int i = 0; i < TOKENS; i++)
            hl_auth_verify(a, t[i], strlen(t[i]), 1.7e9, &c, why, sizeof(why));
    double t2 = now();
    unsigned long long hits, verified;
    hl_auth_counts(a, &hits, &verified);
    printf("%-6s token %4zu bytes  first sight %8.1f us  cached %6.2f us  (%llu verified, %llu "
           "from the cache)\n",
           alg, strlen(t[0]), (t1 - t0) / TOKENS * 1e6, (t2 - t1) / (TOKENS * CACHED_ROUNDS) * 1e6,
           verified, hits);
    for (int i = 0; i < TOKENS; i++)
        free(t[i]);
    free(t);
    hl_auth_free(a);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: perf_verify RS_PRIVATE RS_PUBLIC ES_PRIVATE ES_PUBLIC\n");
        return 2;
    }
    const char *secret = "0123456789abcdef0123456789abcdef";
    run("HS256", JWT_ALG_HS256, secret, secret);
    run("RS256", JWT_ALG_RS256, slurp(argv[2]), slurp(argv[1]));
    run("ES256", JWT_ALG_ES256, slurp(argv[4]), slurp(argv[3]));
    return 0;
}
