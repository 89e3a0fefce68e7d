/* hl_time.h -- the monotonic clock in milliseconds, and milliseconds as a
 * struct timeval for libevent timers. One definition for every layer. */
#ifndef HL_TIME_H
#define HL_TIME_H

#include <sys/time.h>
#include <time.h>

/* Monotonic ms, precise. */
static inline long long hl_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic microseconds, precise. */
static inline long long hl_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Monotonic ms from the coarse clock (a few ms of resolution, no syscall
 * cost): for "how long ago" questions on hot paths. */
static inline long long hl_mono_coarse_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock ms since the epoch: for times other machines set (a
 * token's exp), never for durations. */
static inline long long hl_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline struct timeval hl_ms_tv(long long ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

#endif
