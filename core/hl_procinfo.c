#include "hl_procinfo.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The system's boot time (btime of /proc/stat), in seconds; read once,
 * since /proc/stat is long on machines with many cores. */
static long long boot_time(void) {
    static long long known = -1;
    long long bt = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (bt >= 0) return bt;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) return -1;
    char line[256];
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lld", &bt) == 1) break;
    fclose(f);
    __atomic_store_n(&known, bt, __ATOMIC_RELAXED);
    return bt;
}

static void read_stat(hl_process *p) {
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL) return;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name, in parentheses, may hold spaces: fields are
     * counted from the last ')'. */
    char *s = strrchr(buf, ')');
    if (s == NULL) return;
    unsigned long long utime, stime, start, vsize;
    long long rss;
    /* Fields 3.. after ')': state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime cutime cstime priority nice
     * threads itrealvalue starttime vsize rss */
    if (sscanf(s + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &utime, &stime, &start, &vsize, &rss) != 5)
        return;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (tick <= 0 || page <= 0) return;
    p->cpu_seconds = (double)(utime + stime) / (double)tick;
    long long bt = boot_time();
    if (bt >= 0) p->start_time_seconds = (double)bt + (double)start / (double)tick;
    p->virtual_bytes = (long long)vsize;
    p->resident_bytes = rss * page;
}

long long hl_procinfo_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return -1;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

void hl_procinfo_read(hl_process *p) {
    p->cpu_seconds = p->start_time_seconds = -1;
    p->resident_bytes = p->virtual_bytes = p->open_fds = p->max_fds = -1;
    read_stat(p);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        p->max_fds = (long long)rl.rlim_cur;
}
