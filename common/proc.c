/* virtkeep - processes as /proc shows them (common/proc.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/proc.h"
#include "common/util.h"

/* Fields of /proc/PID/stat after "PID (COMM) ": STATE is field 3,
 * starttime field 22. */
#define STAT_FIELD_STATE 3
#define STAT_FIELD_START 22

/* Read /proc/PID/stat: the state letter and the start time.  -1 with
 * errno (ENOENT: no such process) and nothing recorded. */
static int stat_read(int64_t pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    CLEANUP_CLOSE int fd = -1;
    ssize_t n;
    char *p, *end;
    int field;

    snprintf(path, sizeof path, "/proc/%" PRId64 "/stat", pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    if ((n = vk_pread_all(fd, buf, sizeof buf - 1, 0)) < 0)
        return -1;
    buf[n] = '\0';
    /* COMM may hold spaces and parentheses: the fields start after the last ')'. */
    if (!(p = strrchr(buf, ')')) || p[1] != ' ') {
        errno = EINVAL;
        return -1;
    }
    p += 2;
    *state = *p;
    for (field = STAT_FIELD_STATE; field < STAT_FIELD_START; field++) {
        if (!(p = strchr(p, ' '))) {
            errno = EINVAL;
            return -1;
        }
        p++;
    }
    errno = 0;
    *start = strtoull(p, &end, 10);
    if (errno || end == p || (*end != ' ' && *end != '\n' && *end != '\0')) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static bool pid_valid(int64_t pid)
{
    return pid > 0 && pid <= INT32_MAX;
}

int vk_proc_start_time(int64_t pid, uint64_t *start)
{
    char state;

    if (!pid_valid(pid)) {
        vk_error(VK_ERR_NOT_FOUND, "there is no process %" PRId64, pid);
        return -1;
    }
    if (stat_read(pid, &state, start) < 0) {
        if (errno == ENOENT || errno == ESRCH)
            vk_error(VK_ERR_NOT_FOUND, "there is no process %" PRId64, pid);
        else
            vk_error_errno(errno, "cannot read the start time of process %" PRId64, pid);
        return -1;
    }
    return 0;
}

bool vk_proc_alive(int64_t pid, uint64_t start)
{
    uint64_t now_start;
    char state;

    if (!pid_valid(pid))
        return false;
    if (stat_read(pid, &state, &now_start) < 0) {
        if (errno == ENOENT || errno == ESRCH)
            return false;
        /* /proc cannot tell: EPERM from kill() means the process exists
         * under another user. */
        return !(kill((pid_t)pid, 0) < 0 && errno == ESRCH);
    }
    if (state == 'Z' || state == 'X')
        return false;
    return start == 0 || start == now_start;
}
