/* hl_errors.h -- every error a client can get: its code, HTTP status and
 * what it means in general. The README's error table lists exactly these
 * rows (tests/unit/test_errors.c checks it); the detail sent with an error
 * says what was wrong with the request at hand.
 *
 * X(NAME, status, "code", "when") */
#ifndef HL_ERRORS_H
#define HL_ERRORS_H

#define HL_ERRORS(X)                                                                               \
    X(BAD_CHANNEL, 400, "bad_channel", "a channel is missing, invalid or too long")                \
    X(BAD_TIMEOUT, 400, "bad_timeout", "timeout is not whole seconds within the limits")           \
    X(TOO_MANY_CHANNELS, 400, "too_many_channels", "more channels than poll.max_channels")         \
    X(BAD_REQUEST, 400, "bad_request", "the request target holds a NUL or too many parameters")    \
    X(BAD_IDEMPOTENCY_KEY, 400, "bad_idempotency_key", "an invalid Idempotency-Key")               \
    X(BAD_CURSOR, 400, "bad_cursor", "a cursor this node did not hand out for these channels")     \
    X(UNAUTHORIZED, 401, "unauthorized", "the request needs credentials it lacks")                 \
    X(FORBIDDEN, 403, "forbidden", "the token does not grant a channel the request names")         \
    X(PUBLISH_DISABLED, 403, "publish_disabled", "publishing over HTTP is off")                    \
    X(NOT_FOUND, 404, "not_found", "no such path")                                                 \
    X(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "the path does not take that method")         \
    X(TOO_LARGE, 413, "too_large", "the message is over publish.max_message_bytes")                \
    X(URL_TOO_LONG, 414, "url_too_long", "the request target is over http.max_url_bytes")          \
    X(HEADERS_TOO_LARGE, 431, "headers_too_large", "the headers are over the limits")              \
    X(OVERLOADED, 503, "overloaded", "the node holds http.max_connections")                        \
    X(NOT_READY, 503, "not_ready", "the node is not ready (GET /readyz)")                          \
    X(SHUTTING_DOWN, 503, "shutting_down", "the node is stopping")                                 \
    X(OUT_OF_MEMORY, 503, "out_of_memory", "the node cannot take the request now")                 \
    X(REDIS_UNAVAILABLE, 503, "redis_unavailable", "Redis is not reachable")                       \
    X(REDIS_TIMEOUT, 503, "redis_timeout", "Redis did not answer in time")                         \
    X(REDIS_UNCONFIRMED, 503, "redis_unconfirmed",                                                 \
      "stored, but fewer replicas than publish.wait_replicas confirmed it in time")                \
    X(REDIS_ERROR, 503, "redis_error", "Redis refused the command")

typedef enum hl_error {
#define HL_ERROR_ENUM(name, status, code, when) HL_E_##name,
    HL_ERRORS(HL_ERROR_ENUM)
#undef HL_ERROR_ENUM
        HL_E_COUNT
} hl_error;

typedef struct hl_error_row {
    unsigned status;
    const char *code;
    const char *when;
} hl_error_row;

/* The row of e (e < HL_E_COUNT). */
const hl_error_row *hl_error_get(hl_error e);

#endif
