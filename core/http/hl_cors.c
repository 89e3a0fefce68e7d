/* hl_cors.c -- which CORS origin a request has (http.cors_origins), and
 * what the answers to it say about that. Used by the answers libmicrohttpd
 * sends and by the ones holdline writes on a raw socket (hl_accept.c). */
#include <string.h>

#include "hl_http_int.h"

const char *hl__cors_allow(const hl_config *cfg, int origin) {
    if (origin == HL_ORIGIN_ANY) return "*";
    return origin >= 0 ? cfg->http_cors_origins[origin] : NULL;
}

int hl__origin_index(const hl_config *cfg, const char *o, size_t n) {
    if (cfg->http_cors_origins_count == 0 || o == NULL) return HL_ORIGIN_NONE;
    for (int i = 0; i < cfg->http_cors_origins_count; i++) {
        if (strcmp(cfg->http_cors_origins[i], "*") == 0) return HL_ORIGIN_ANY;
        if (strlen(cfg->http_cors_origins[i]) == n && memcmp(cfg->http_cors_origins[i], o, n) == 0)
            return i;
    }
    return HL_ORIGIN_NONE;
}
