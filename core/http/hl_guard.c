/* hl_guard.c -- the auth phase: what a route asks of the client before
 * its handler runs (README "Private channels").
 *
 *   poll, events, channels   every channel named is public
 *                            (auth.public_channels) or granted by the
 *                            token's holdline.subscribe
 *   publish                  publish.key as the bearer token, or a token
 *                            granting holdline.publish on the channel
 *
 * The token comes from "Authorization: Bearer", else the auth.token_cookie
 * cookie, else ?token= when auth.query_token allows it; the first one
 * found is the one judged. Publishing takes the header only: a cookie,
 * which the browser adds by itself, would let any page its user visits
 * publish in the user's name.
 *
 * A missing or invalid token gets 401 with WWW-Authenticate, a valid one
 * that lacks a grant 403; both JSON with the CORS headers of every answer.
 * No detail ever repeats a part of the token, and nothing here logs. */
#include <stdio.h>
#include <string.h>

#include "hl_common.h"
#include "hl_http_int.h"
#include "hl_time.h"
#include "hl_token.h"

typedef enum token_source {
    FROM_NONE = 0,
    FROM_HEADER,
    FROM_COOKIE,
    FROM_QUERY,
    FROM_QUERY_REFUSED, /* ?token= on a node with auth.query_token off */
} token_source;

static token_source find_token(hl_req *r, int header_only, hl_span *tok) {
    const hl_config *cfg = r->h->cfg;
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (hl_token_from_bearer(v, tok)) return FROM_HEADER;
    if (header_only) return FROM_NONE;
    v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    if (v && hl_token_from_cookie(v, strlen(v), cfg->auth_token_cookie, tok) && tok->n > 0)
        return FROM_COOKIE;
    v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "token");
    if (v == NULL || *v == '\0') return FROM_NONE;
    if (!cfg->auth_query_token) return FROM_QUERY_REFUSED;
    tok->p = v;
    tok->n = strlen(v);
    return FROM_QUERY;
}

/* 401: a WWW-Authenticate challenge (RFC 6750) with the reason. */
static int refuse_401(hl_req *r, const char *why, int invalid, enum MHD_Result *ret) {
    struct MHD_Response *resp = hl__error_response(r->h, r->origin, HL_E_UNAUTHORIZED, why);
    if (resp != NULL) {
        char chal[320];
        if (invalid) {
            /* A quoted-string may not hold '"' or '\': the reasons have
             * neither, and this keeps it so. */
            char desc[200];
            snprintf(desc, sizeof(desc), "%s", why);
            for (char *p = desc; *p; p++)
                if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = '\'';
            snprintf(chal, sizeof(chal),
                     "Bearer realm=\"holdline\", error=\"invalid_token\", error_description=\"%s\"",
                     desc);
        } else {
            snprintf(chal, sizeof(chal), "Bearer realm=\"holdline\"");
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, chal);
    }
    *ret = hl__reply(r, hl_error_get(HL_E_UNAUTHORIZED)->status, resp);
    return 1;
}

static int refuse_403(hl_req *r, const char *what, hl_span ch, enum MHD_Result *ret) {
    char detail[320];
    snprintf(detail, sizeof(detail), "the token does not grant %s on '%.*s'", what, (int)ch.n,
             ch.p);
    struct MHD_Response *resp = hl__error_response(r->h, r->origin, HL_E_FORBIDDEN, detail);
    if (resp != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"holdline\", error=\"insufficient_scope\"");
    *ret = hl__reply(r, hl_error_get(HL_E_FORBIDDEN)->status, resp);
    return 1;
}

/* Finds and verifies r's token. Returns 0 with *claims set, or 1 with
 * *ret set to the 401. */
static int verify(hl_req *r, int header_only, const hl_claims **claims, enum MHD_Result *ret) {
    const hl_config *cfg = r->h->cfg;
    hl_span tok;
    char why[200];
    switch (find_token(r, header_only, &tok)) {
    case FROM_NONE:
        if (header_only)
            snprintf(why, sizeof(why),
                     "publishing needs a token in the header 'Authorization: Bearer <token>'");
        else
            snprintf(why, sizeof(why),
                     "this needs a token: 'Authorization: Bearer <token>', or the cookie %s",
                     cfg->auth_token_cookie);
        return refuse_401(r, why, 0, ret);
    case FROM_QUERY_REFUSED:
        return refuse_401(r, "this node does not take ?token= (auth.query_token is off)", 1, ret);
    default: break;
    }
    double now = (double)hl_wall_ms() / 1000.0;
    hl_token_status st = hl_auth_verify(r->h->auth, tok.p, tok.n, now, claims, why, sizeof(why));
    if (st == HL_TOKEN_OOM) {
        *ret = hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot check a token now");
        return 1;
    }
    if (st != HL_TOKEN_OK) return refuse_401(r, why, 1, ret);
    r->token_until = (long long)(((*claims)->exp + cfg->auth_leeway_s) * 1000.0);
    return 0;
}

int hl__guard_subscribe(hl_req *r, hl_span arg, enum MHD_Result *ret) {
    hl_http *h = r->h;
    if (!hl_auth_on(h->auth)) return 0;
    hl_span chans[HL_MAX_CHANNELS];
    size_t n;
    size_t max = r->kind == HL_ROUTE_CHANNEL ? 1 : (size_t)h->cfg->poll_max_channels;
    /* A list that does not parse is the handler's 400 to give. */
    if (hl_channels_parse(arg.p, arg.n, chans, max, &n, NULL, 0) != HL_OK) return 0;
    size_t closed = 0;
    for (size_t i = 0; i < n; i++) {
        if (hl_auth_public(h->auth, chans[i].p, chans[i].n))
            chans[i].n = 0; /* open: no grant needed */
        else
            closed++;
    }
    if (closed == 0) return 0;
    const hl_claims *c;
    if (verify(r, 0, &c, ret)) return 1;
    for (size_t i = 0; i < n; i++) {
        if (chans[i].n > 0 && !hl_grants_allow(&c->subscribe, chans[i].p, chans[i].n))
            return refuse_403(r, "subscribe", chans[i], ret);
    }
    return 0;
}

int hl__guard_publish(hl_req *r, hl_span arg, enum MHD_Result *ret) {
    hl_http *h = r->h;
    const hl_config *cfg = h->cfg;
    if (!cfg->publish_enabled) {
        *ret = hl__reply_error(r, HL_E_PUBLISH_DISABLED,
                               "publishing over HTTP is disabled on this node");
        return 1;
    }
    hl_span tok;
    char key[sizeof(cfg->publish_key)];
    if (find_token(r, 1, &tok) == FROM_HEADER && tok.n < sizeof(key)) {
        memcpy(key, tok.p, tok.n);
        key[tok.n] = '\0';
        if (hl_auth_publish_key(h->auth, key)) return 0;
    }
    if (!hl_auth_on(h->auth)) {
        if (cfg->publish_key[0] == '\0') return 0;
        *ret = hl__reply_error(r, HL_E_UNAUTHORIZED,
                               "publishing needs the header 'Authorization: Bearer <publish.key>'");
        return 1;
    }
    if (!hl_channel_valid(arg.p, arg.n)) return 0; /* the handler's 400 */
    const hl_claims *c;
    if (verify(r, 1, &c, ret)) return 1;
    if (!hl_grants_allow(&c->publish, arg.p, arg.n)) return refuse_403(r, "publish", arg, ret);
    return 0;
}
