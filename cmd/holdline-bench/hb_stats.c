#include "hb_stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Histogram                                                          */

static int bucket_of(long long us) {
    if (us < 0) us = 0;
    if (us < HB_HIST_EXACT) return (int)us;
    int e = 63 - __builtin_clzll((unsigned long long)us); /* 2^e <= us */
    int octave = e - 7;                                   /* 0 for [128, 256) */
    if (octave >= HB_HIST_OCTAVES) return HB_HIST_BUCKETS - 1;
    int sub = (int)(us >> (e - 6)) - HB_HIST_SUB; /* 0..63 */
    return HB_HIST_EXACT + octave * HB_HIST_SUB + sub;
}

/* The largest value that falls into bucket i. */
static long long bucket_top(int i) {
    if (i < HB_HIST_EXACT) return i;
    int octave = (i - HB_HIST_EXACT) / HB_HIST_SUB;
    int sub = (i - HB_HIST_EXACT) % HB_HIST_SUB;
    int shift = octave + 1;
    return ((long long)(HB_HIST_SUB + sub + 1) << shift) - 1;
}

void hb_hist_add(hb_hist *h, long long us) {
    if (us < 0) us = 0;
    h->count[bucket_of(us)]++;
    h->n++;
    if (us > h->max_us) h->max_us = us;
}

long long hb_hist_pct(const hb_hist *h, double pct) {
    if (h->n == 0) return -1;
    /* The rank of the sample wanted, 1-based, rounded up. */
    double want = pct / 100.0 * (double)h->n;
    unsigned long long rank = (unsigned long long)want;
    if ((double)rank < want) rank++;
    if (rank < 1) rank = 1;
    unsigned long long seen = 0;
    for (int i = 0; i < HB_HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            /* The last bucket also holds everything beyond the range. */
            long long top = i == HB_HIST_BUCKETS - 1 ? h->max_us : bucket_top(i);
            return top < h->max_us ? top : h->max_us;
        }
    }
    return h->max_us;
}

/* ------------------------------------------------------------------ */
/* Counters                                                           */

/* How each counter is merged: summed, or the min/max of the nonzero ones. */
enum { SUM, MIN_NZ, MAX };

static const struct {
    const char *name;
    size_t off;
    int merge;
} fields[] = {
    {"waiters", offsetof(hb_stats, waiters), SUM},
    {"held", offsetof(hb_stats, held), SUM},
    {"received", offsetof(hb_stats, received), SUM},
    {"late", offsetof(hb_stats, late), SUM},
    {"deliveries", offsetof(hb_stats, deliveries), SUM},
    {"gaps", offsetof(hb_stats, gaps), SUM},
    {"dups", offsetof(hb_stats, dups), SUM},
    {"missed", offsetof(hb_stats, missed), SUM},
    {"errors", offsetof(hb_stats, errors), SUM},
    {"reconnects", offsetof(hb_stats, reconnects), SUM},
    {"idle_held", offsetof(hb_stats, idle_held), SUM},
    {"idle_answers", offsetof(hb_stats, idle_answers), SUM},
    {"stream_ends", offsetof(hb_stats, stream_ends), SUM},
    {"first_us", offsetof(hb_stats, first_us), MIN_NZ},
    {"last_us", offsetof(hb_stats, last_us), MAX},
    {"max_us", offsetof(hb_stats, lat.max_us), MAX},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static void merge_field(long long *into, long long v, int how) {
    switch (how) {
    case SUM: *into += v; break;
    case MIN_NZ:
        if (v != 0 && (*into == 0 || v < *into)) *into = v;
        break;
    default:
        if (v > *into) *into = v;
        break;
    }
}

void hb_stats_merge(hb_stats *into, const hb_stats *from) {
    for (size_t i = 0; i < NFIELDS; i++)
        merge_field((long long *)((char *)into + fields[i].off),
                    *(const long long *)((const char *)from + fields[i].off), fields[i].merge);
    for (int i = 0; i < HB_HIST_BUCKETS; i++)
        into->lat.count[i] += from->lat.count[i];
    into->lat.n += from->lat.n;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int hb_stats_write(int fd, const hb_stats *s) {
    char line[HB_LINE_MAX];
    size_t len = (size_t)snprintf(line, sizeof(line), "STAT");
    for (size_t i = 0; i < NFIELDS; i++)
        len += (size_t)snprintf(line + len, sizeof(line) - len, " %s=%lld", fields[i].name,
                                *(const long long *)((const char *)s + fields[i].off));
    line[len++] = '\n';
    if (write_all(fd, line, len) != 0) return -1;

    /* Nonzero buckets, at most 100 to a line so a line stays short. */
    int in_line = 0;
    len = 0;
    for (int i = 0; i < HB_HIST_BUCKETS; i++) {
        if (s->lat.count[i] == 0) continue;
        if (in_line == 0) len = (size_t)snprintf(line, sizeof(line), "HIST");
        len += (size_t)snprintf(line + len, sizeof(line) - len, " %d:%llu", i, s->lat.count[i]);
        if (++in_line == 100) {
            line[len++] = '\n';
            if (write_all(fd, line, len) != 0) return -1;
            in_line = 0;
        }
    }
    if (in_line > 0) {
        line[len++] = '\n';
        if (write_all(fd, line, len) != 0) return -1;
    }
    return 0;
}

int hb_stats_read_line(hb_stats *s, const char *line) {
    if (strncmp(line, "STAT ", 5) == 0) {
        const char *p = line + 5;
        while (*p) {
            char name[32];
            long long v;
            int used;
            if (sscanf(p, " %31[a-z_]=%lld%n", name, &v, &used) != 2) return -1;
            for (size_t i = 0; i < NFIELDS; i++)
                if (strcmp(name, fields[i].name) == 0)
                    merge_field((long long *)((char *)s + fields[i].off), v, fields[i].merge);
            p += used;
        }
        return 0;
    }
    if (strncmp(line, "HIST ", 5) == 0) {
        const char *p = line + 5;
        while (*p) {
            int i, used;
            unsigned long long c;
            if (sscanf(p, " %d:%llu%n", &i, &c, &used) != 2) return -1;
            if (i < 0 || i >= HB_HIST_BUCKETS) return -1;
            s->lat.count[i] += c;
            s->lat.n += c;
            p += used;
        }
        return 0;
    }
    return -1;
}
