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

#endif
