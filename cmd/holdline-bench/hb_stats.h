/* hb_stats.h -- what one bench process counts, and how worker processes
 * hand their counts to the parent. Latencies go into a log-linear
 * histogram (exact below 128 us, then 64 sub-buckets per power of two,
 * about 1.6% resolution), so merging processes is adding counts and the
 * percentiles of a merged run are those of all its samples. */
#ifndef HB_STATS_H
#define HB_STATS_H

#include <stddef.h>

#define HB_HIST_SUB 64
#define HB_HIST_EXACT (2 * HB_HIST_SUB)
#define HB_HIST_OCTAVES 34 /* up to 2^41 us, about 25 days */
#define HB_HIST_BUCKETS (HB_HIST_EXACT + HB_HIST_OCTAVES * HB_HIST_SUB)

typedef struct hb_hist {
    unsigned long long count[HB_HIST_BUCKETS];
    unsigned long long n; /* samples */
    long long max_us;     /* largest sample, exact */
} hb_hist;

/* Adds one latency in microseconds (negative values count as 0). */
void hb_hist_add(hb_hist *h, long long us);

/* The smallest value v such that at least pct percent of the samples are
 * <= v (to the histogram's resolution, never above the exact maximum);
 * -1 when there are no samples. */
long long hb_hist_pct(const hb_hist *h, double pct);

/* Counters of one process; a parent adds its workers' into its own. */
typedef struct hb_stats {
    long long waiters;      /* waiters this process opened */
    long long held;         /* waiters still connected and polling at the end */
    long long received;     /* fanout: round messages received before the deadline */
    long long late;         /* fanout: round messages after the deadline */
    long long deliveries;   /* stream: new messages delivered in order or after a gap */
    long long gaps;         /* stream: messages skipped over or never delivered */
    long long dups;         /* messages delivered twice (or older than one seen) */
    long long missed;       /* answers saying "missed":true */
    long long errors;       /* failed connections, bad answers, unexpected messages */
    long long reconnects;   /* connections reopened after Connection: close */
    long long idle_held;    /* stream: idle waiters still connected and polling at the end */
    long long idle_answers; /* stream: answers to idle waiters (timeouts: each is a re-poll;
                             * with SSE, streams of idle waiters that ended) */
    long long stream_ends;  /* SSE: streams the server ended (each opened again) */
    long long first_us;     /* wall clock of the first delivery, 0 if none */
    long long last_us;      /* wall clock of the last delivery */
    hb_hist lat;            /* delivery latency */
} hb_stats;

void hb_stats_merge(hb_stats *into, const hb_stats *from);

/* Writes s to fd as "STAT k=v ..." and "HIST i:c ..." lines (each shorter
 * than HB_LINE_MAX). Returns 0 or -1. */
int hb_stats_write(int fd, const hb_stats *s);

/* Adds one "STAT" or "HIST" line (without its newline) into s. Returns 0,
 * or -1 if the line is neither or malformed. */
int hb_stats_read_line(hb_stats *s, const char *line);

#define HB_LINE_MAX 4096

#endif
