#include "hb_proc.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

long long hb_proc_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    long long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

long long hb_proc_cpu_us(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields restart
     * after the last ')'. utime and stime are fields 14 and 15. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) hz = 100;
    return (long long)((ut + st) * 1000000ULL / (unsigned long long)hz);
}

long long hb_proc_backlog(const struct sockaddr_in *nodes, int nnodes) {
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL) return -1;
    char line[512];
    long long total = 0;
    if (fgets(line, sizeof(line), f) == NULL) { /* the header */
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned lport, rxq;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %*x %*x:%x", &lport, &rxq) != 2) continue;
        /* By port only: a node bound to 0.0.0.0 accepts on 127.0.0.1. */
        for (int i = 0; i < nnodes; i++)
            if (lport == ntohs(nodes[i].sin_port)) {
                total += rxq;
                break;
            }
    }
    fclose(f);
    return total;
}

long hb_proc_port_range(void) {
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    long lo, hi;
    int ok = f != NULL && fscanf(f, "%ld %ld", &lo, &hi) == 2 && hi >= lo;
    if (f != NULL) fclose(f);
    return ok ? hi - lo + 1 : 28232;
}
