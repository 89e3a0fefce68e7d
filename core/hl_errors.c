#include "hl_errors.h"

static const hl_error_row rows[HL_E_COUNT] = {
#define HL_ERROR_ROW(name, status, code, when) {status, code, when},
    HL_ERRORS(HL_ERROR_ROW)
#undef HL_ERROR_ROW
};

const hl_error_row *hl_error_get(hl_error e) {
    return &rows[e < HL_E_COUNT ? e : HL_E_NOT_FOUND];
}
