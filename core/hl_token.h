/* hl_token.h -- where a request's token comes from and what a JWT says,
 * short of its signature (hl_auth checks that with libjwt):
 *
 *   - extraction from an "Authorization: Bearer" value or a Cookie
 *     header, pointer + length into the caller's string;
 *   - the token's shape (three base64url segments), its header (the one
 *     configured alg, exactly; never "none"; no "crit") and its claims:
 *     exp required, nbf / iat / aud / iss checked, and the grants
 *     "holdline": {"subscribe": [...], "publish": [...]};
 *   - the time rules, apart, because a verified token is checked again at
 *     every use.
 *
 * No I/O. Parsing allocates (the JSON, the grants); nothing else does. */
#ifndef HL_TOKEN_H
#define HL_TOKEN_H

#include <stddef.h>

#include "hl_grant.h"
#include "hl_request.h"

/* The longest token holdline looks at; longer ones are refused unread. */
#define HL_TOKEN_MAX_BYTES 16384

typedef enum hl_token_status {
    HL_TOKEN_OK = 0,
    HL_TOKEN_MALFORMED, /* not a JWT, or claims of the wrong type */
    HL_TOKEN_WRONG_ALG, /* alg is not auth.jwt_algorithm (or is "none") */
    HL_TOKEN_BAD_SIGNATURE,
    HL_TOKEN_EXPIRED,
    HL_TOKEN_NOT_YET,  /* nbf is in the future */
    HL_TOKEN_IAT,      /* iat is in the future */
    HL_TOKEN_AUDIENCE, /* aud does not name auth.audience */
    HL_TOKEN_ISSUER,   /* iss is not auth.issuer */
    HL_TOKEN_OOM,
} hl_token_status;

/* Returns 1 and the token in *out if v is "Bearer <token>" (the scheme
 * case-insensitive, spaces around the token dropped), else 0. */
int hl_token_from_bearer(const char *v, hl_span *out);

/* Returns 1 and the value of cookie `name` in *out if the Cookie header
 * value h[0..n) has it (the first one; a value in double quotes loses
 * them), else 0. */
int hl_token_from_cookie(const char *h, size_t n, const char *name, hl_span *out);

/* What a token must say besides its signature. */
typedef struct hl_token_rules {
    const char *alg;      /* "HS256" ... "ES512", compared exactly */
    const char *audience; /* "" or NULL: none configured, and a token naming one is refused */
    const char *issuer;   /* "" or NULL: any iss */
} hl_token_rules;

/* What a token says. Owned by whoever parsed it; hl_claims_free() frees
 * what parsing allocated. */
typedef struct hl_claims {
    double exp; /* seconds since the epoch */
    double nbf; /* when has_nbf */
    double iat; /* when has_iat */
    int has_nbf, has_iat;
    hl_grants subscribe; /* patterns, pointing into store */
    hl_grants publish;
    char *store; /* one block holding the pattern arrays and bytes */
} hl_claims;

/* Parses token t[0..n) and checks its header and claims against rules,
 * but neither its signature nor the time. Returns HL_TOKEN_OK with *out
 * filled, or a status with a sentence for the client in why (never a
 * part of the token). */
hl_token_status hl_token_parse(const char *t, size_t n, const hl_token_rules *rules, hl_claims *out,
                               char *why, size_t whylen);

/* Checks the claims' times against now (seconds since the epoch), each
 * with leeway seconds of tolerance for clocks that disagree. */
hl_token_status hl_claims_check_time(const hl_claims *c, double now, int leeway, char *why,
                                     size_t whylen);

/* Frees what hl_token_parse allocated; c may be NULL or zeroed. */
void hl_claims_free(hl_claims *c);

/* Decodes base64url (no padding) s[0..n) into out (room for n * 3 / 4
 * bytes). Returns the decoded length, or -1 if s is not base64url. */
long hl_base64url_decode(const char *s, size_t n, unsigned char *out);

#endif
