/* hl_procinfo.h -- the process figures of the process_* metric families,
 * read from /proc (Linux). */
#ifndef HL_PROCINFO_H
#define HL_PROCINFO_H

#include "hl_metrics.h"

/* Fills p; a figure that cannot be read is -1. */
void hl_procinfo_read(hl_process *p);

#endif
