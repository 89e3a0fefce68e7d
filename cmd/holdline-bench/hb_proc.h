/* hb_proc.h -- what holdline-bench reads about the servers from /proc on
 * the same host: a process's resident memory and CPU time, and how many
 * bytes still wait in the kernel for a node to read them. */
#ifndef HB_PROC_H
#define HB_PROC_H

#include <netinet/in.h>
#include <sys/types.h>

/* VmRSS of pid in KiB, or -1 if it cannot be read. */
long long hb_proc_rss_kb(pid_t pid);

/* User plus system CPU time of pid in microseconds, or -1. */
long long hb_proc_cpu_us(pid_t pid);

/* Bytes queued towards the nodes' ports on this host: the accept queues of
 * their listening sockets (connections not yet accepted) plus the unread
 * bytes of their accepted connections, from /proc/net/tcp. 0 means every
 * request sent so far has been read by a node. -1 if unreadable. */
long long hb_proc_backlog(const struct sockaddr_in *nodes, int nnodes);

/* The size of the kernel's ephemeral port range, or 28232 if unknown. */
long hb_proc_port_range(void);

#endif
