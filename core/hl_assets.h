/* hl_assets.h -- the files under web/, compiled into the binary so that a
 * node needs nothing on disk besides its config. The table itself is
 * generated at build time (scripts/embed-assets.sh). */
#ifndef HL_ASSETS_H
#define HL_ASSETS_H

#include <stddef.h>

typedef struct hl_asset {
    const char *path; /* URL path, e.g. "/holdline.js" */
    const char *content_type;
    const unsigned char *data; /* static, lives as long as the process */
    size_t len;
} hl_asset;

/* Returns the asset served at path, or NULL. */
const hl_asset *hl_asset_find(const char *path);

#endif
