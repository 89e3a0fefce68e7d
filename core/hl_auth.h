/* hl_auth.h -- the token verifier of one worker: the configured key and
 * algorithm, signatures checked with libjwt, and a cache of the tokens
 * that passed.
 *
 * A client re-polls with the same token many times, so a token whose
 * signature and claims were checked once is kept (its bytes compared in
 * full, never by hash alone) and only its times are checked again. The
 * key never changes while a node runs (keys rotate by restarting), so a
 * cached verdict cannot go stale but by time. Refusals are not cached.
 *
 * One per worker thread, used by that thread only: no locks. */
#ifndef HL_AUTH_H
#define HL_AUTH_H

#include <stddef.h>

#include "hl_config.h"
#include "hl_token.h"

typedef struct hl_auth hl_auth;

/* Reads the key (auth.jwt_key or auth.jwt_key_file) and checks that it
 * fits auth.jwt_algorithm: an HS secret of at least the hash's size, an
 * RSA public key of 2048 bits or more for RS*, an EC public key on the
 * algorithm's curve for ES*. With auth.mode "off" there is nothing to
 * read and the verifier only matches auth.public_channels and compares
 * publish.key. Returns NULL with "auth.<setting>: message" in err. */
hl_auth *hl_auth_new(const hl_config *cfg, char *err, size_t errlen);
void hl_auth_free(hl_auth *a);

/* 1 if auth.mode is jwt. */
int hl_auth_on(const hl_auth *a);

/* Checks token t[0..n) at now (seconds since the epoch). Returns
 * HL_TOKEN_OK with *out pointing at its claims, valid until the next call
 * on a (do not keep it), or a status with a sentence for the client in
 * why. */
hl_token_status hl_auth_verify(hl_auth *a, const char *t, size_t n, double now,
                               const hl_claims **out, char *why, size_t whylen);

/* 1 if auth.public_channels opens ch[0..n) without a token. */
int hl_auth_public(const hl_auth *a, const char *ch, size_t n);

/* 1 if given is publish.key (not empty), compared in constant time. */
int hl_auth_publish_key(const hl_auth *a, const char *given);

/* Verdicts taken from the cache and ones that needed the signature
 * checked, since the verifier was made. */
void hl_auth_counts(const hl_auth *a, unsigned long long *cached, unsigned long long *verified);

#endif
