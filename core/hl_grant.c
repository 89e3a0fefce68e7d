#include "hl_grant.h"

#include <string.h>

#include "hl_request.h"

int hl_grant_valid(const char *p, size_t n) {
    if (p == NULL || n == 0) return 0;
    if (p[n - 1] != '*') return hl_channel_valid(p, n);
    /* The prefix may be empty ("*": every channel); otherwise it is what
     * a channel name could begin with, one byte short of the longest. */
    return n == 1 || (n - 1 < HL_CHANNEL_MAX_LEN && hl_channel_valid(p, n - 1));
}

int hl_grant_match(const char *p, size_t pn, const char *ch, size_t cn) {
    if (pn == 0) return 0;
    if (p[pn - 1] == '*') return cn >= pn - 1 && memcmp(p, ch, pn - 1) == 0;
    return cn == pn && memcmp(p, ch, pn) == 0;
}

int hl_grants_allow(const hl_grants *g, const char *ch, size_t cn) {
    if (g == NULL) return 0;
    for (size_t i = 0; i < g->n; i++) {
        if (hl_grant_match(g->pat[i], g->len[i], ch, cn)) return 1;
    }
    return 0;
}
