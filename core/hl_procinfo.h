/* hl_procinfo.h -- the process figures of the process_* metric families,
 * read from /proc (Linux). */
#ifndef HL_PROCINFO_H
#define HL_PROCINFO_H

#include "hl_metrics.h"

/* Fills p but open_fds; a figure that cannot be read is -1. Cheap (two
 * small /proc files): fit for every scrape. */
void hl_procinfo_read(hl_process *p);

/* The process's open file descriptors, or -1. Walks /proc/self/fd, which
 * costs about 0.4 us per descriptor (5.6 ms at 15,000): too slow for a
 * worker's loop, so the node counts on a thread of its own. */
long long hl_procinfo_open_fds(void);

#endif
