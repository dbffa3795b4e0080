/* virtkeep - processes as /proc shows them: who owns a catalog row.
 *
 * A pid alone does not name a process: once the process is gone (and
 * reaped) the kernel may give its pid to another one.  A row records the
 * pid and the process's start time (field 22 of /proc/PID/stat, clock
 * ticks since boot), and the pair names one process for the life of the
 * host.
 */
#ifndef VIRTKEEP_PROC_H
#define VIRTKEEP_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* The start time of process PID (field 22 of /proc/PID/stat) into *START.
 * -1 with VK_ERR_NOT_FOUND when there is no such process, or another code
 * when /proc cannot be read.  A zombie still has its start time. */
int vk_proc_start_time(int64_t pid, uint64_t *start);

/* Is the process that recorded itself as (PID, START) still running?
 * False when PID is not a valid pid, when no process has it, when the
 * process is a zombie (dead, not reaped yet), and when the process with
 * that pid started at another time than START (the pid was reused).
 * START 0 means unknown: then any live process with that pid counts.
 * When /proc cannot tell (not mounted, hidden pids), kill(PID, 0) decides. */
bool vk_proc_alive(int64_t pid, uint64_t start);

/* The user (uid) that owns the TCP socket of this host whose own address is
 * LOCAL and whose peer is REMOTE (AF_INET or AF_INET6, address and port),
 * from /proc/net/tcp and /proc/net/tcp6; an IPv4 address also matches its
 * IPv4-mapped IPv6 form.  A connection accepted by a server (even one not
 * accept()ed yet) belongs to the owner of the listening socket.
 * -1 with VK_ERR_NOT_FOUND when no such socket is listed (the peer is not
 * on this host, or the connection is gone). */
int vk_tcp_socket_uid(const struct sockaddr *local, const struct sockaddr *remote, uid_t *uid);

#endif
