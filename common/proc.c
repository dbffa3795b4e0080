/* virtkeep - processes as /proc shows them (common/proc.h). */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
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

/* ---- TCP sockets ------------------------------------------------------ */

/* An endpoint in one form: the IPv6 address (IPv4 mapped) and the port. */
struct endpoint {
    struct in6_addr addr;
    unsigned int port;
};

static int endpoint_from_sockaddr(const struct sockaddr *sa, struct endpoint *e)
{
    memset(e, 0, sizeof *e);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        e->addr.s6_addr[10] = e->addr.s6_addr[11] = 0xff;
        memcpy(&e->addr.s6_addr[12], &in->sin_addr, 4);
        e->port = ntohs(in->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        e->addr = in6->sin6_addr;
        e->port = ntohs(in6->sin6_port);
        return 0;
    }
    return -1;
}

/* "0100007F:1F90" (tcp) or 32 hex digits and a port (tcp6), as the kernel
 * prints them: each 32-bit word of the address in the host's byte order. */
static int endpoint_parse(const char *s, bool v6, struct endpoint *e)
{
    size_t words = v6 ? 4 : 1;
    const char *colon = strchr(s, ':');
    char *end;
    uint32_t w[4];

    if (!colon || (size_t)(colon - s) != words * 8)
        return -1;
    for (size_t i = 0; i < words; i++) {
        char hex[9];
        memcpy(hex, s + i * 8, 8);
        hex[8] = '\0';
        w[i] = (uint32_t)strtoul(hex, &end, 16);
        if (*end)
            return -1;
    }
    e->port = (unsigned int)strtoul(colon + 1, &end, 16);
    if (*end || end == colon + 1)
        return -1;
    memset(&e->addr, 0, sizeof e->addr);
    if (v6) {
        memcpy(&e->addr, w, sizeof w);
    } else {
        e->addr.s6_addr[10] = e->addr.s6_addr[11] = 0xff;
        memcpy(&e->addr.s6_addr[12], &w[0], 4);
    }
    return 0;
}

static bool endpoint_eq(const struct endpoint *a, const struct endpoint *b)
{
    return a->port == b->port && memcmp(&a->addr, &b->addr, sizeof a->addr) == 0;
}

/* 1 with *UID when FILE lists LOCAL -> REMOTE, 0 when not, -1 when it
 * cannot be read (errno). */
static int tcp_table_find(const char *file, bool v6, const struct endpoint *local,
                          const struct endpoint *remote, uid_t *uid)
{
    FILE *f = fopen(file, "re");
    char line[512];
    int found = 0;

    if (!f)
        return -1;
    if (!fgets(line, sizeof line, f)) { /* the header */
        fclose(f);
        return 0;
    }
    while (!found && fgets(line, sizeof line, f)) {
        char l[64], r[64];
        unsigned int st, u;
        struct endpoint el, er;

        if (sscanf(line, " %*[0-9]: %63s %63s %x %*s %*s %*s %u", l, r, &st, &u) != 4 ||
            endpoint_parse(l, v6, &el) < 0 || endpoint_parse(r, v6, &er) < 0)
            continue;
        if (endpoint_eq(&el, local) && endpoint_eq(&er, remote)) {
            *uid = (uid_t)u;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

int vk_tcp_socket_uid(const struct sockaddr *local, const struct sockaddr *remote, uid_t *uid)
{
    static const struct {
        const char *file;
        bool v6;
    } tables[] = {{"/proc/net/tcp", false}, {"/proc/net/tcp6", true}};
    struct endpoint l, r;
    int readable = 0;

    if (endpoint_from_sockaddr(local, &l) < 0 || endpoint_from_sockaddr(remote, &r) < 0) {
        vk_error(VK_ERR_INVALID, "not a TCP/IP address");
        return -1;
    }
    for (size_t i = 0; i < VK_ARRAY_SIZE(tables); i++) {
        int f = tcp_table_find(tables[i].file, tables[i].v6, &l, &r, uid);
        if (f == 1)
            return 0;
        readable += f == 0;
    }
    if (!readable) {
        vk_error_errno(errno, "cannot read /proc/net/tcp");
        return -1;
    }
    vk_error(VK_ERR_NOT_FOUND, "no TCP socket of this host connects port %u to port %u", l.port,
             r.port);
    return -1;
}
