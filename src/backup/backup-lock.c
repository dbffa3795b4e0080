/* virtkeep - the per-domain backup lock: flock(2) on DIR/DOMAIN.lock.
 *
 * The lock is taken on an open file description, so a second open in the
 * same process conflicts as well as one in another process, and the kernel
 * drops it when the process dies: a stale file never blocks a backup.  The
 * file holds the pid of the holder, for the message of the one refused.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/backup/backup.h"
#include "src/format/format.h"

struct backup_lock {
    int fd;
    char *path;
};

char *backup_lock_dir_default(void)
{
    const char *run = getenv("XDG_RUNTIME_DIR");

    if (geteuid() == 0)
        return vk_strdup("/run/virtkeep/locks");
    if (run && run[0] == '/')
        return vk_asprintf("%s/virtkeep", run);
    return vk_asprintf("/tmp/virtkeep-%u", (unsigned int)geteuid());
}

/* mkdir -p with MODE for the components that are missing. */
static int dir_make(const char *dir)
{
    CLEANUP_FREE char *p = vk_strdup(dir);

    if (!p)
        return -1;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            vk_error_errno(errno, "cannot create the lock directory '%s'", p);
            return -1;
        }
        *s = c;
        if (c == '\0')
            return 0;
    }
}

static void holder_describe(int fd, const char *domain)
{
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    unsigned long long pid = 0;

    if (n > 0) {
        buf[n] = '\0';
        vk_trim(buf);
    }
    if (n > 0 && vk_parse_uint(buf, INT32_MAX, &pid) == 0 && pid > 0)
        vk_error(VK_ERR_BUSY, "another backup of domain '%s' is running (pid %llu)", domain, pid);
    else
        vk_error(VK_ERR_BUSY, "another backup of domain '%s' is running", domain);
}

static int pid_write(int fd, const char *path)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());

    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        vk_error_errno(errno, "cannot write the lock file '%s'", path);
        return -1;
    }
    return 0;
}

struct backup_lock *backup_lock_acquire(const char *dir, const char *domain, unsigned int flags)
{
    CLEANUP_FREE char *path = NULL, *file = NULL;
    CLEANUP_CLOSE int fd = -1;
    struct backup_lock *l;

    (void)flags;
    /* Any name libvirt allows (".hidden-vm", even "../x") is a file name
     * inside DIR once encoded as in object keys. */
    if (!(file = format_name_encode(domain))) {
        vk_error_prefix("cannot lock domain '%s'", domain);
        return NULL;
    }
    if (dir_make(dir) < 0 || !(path = vk_asprintf("%s/%s.lock", dir, file)))
        return NULL;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        vk_error_errno(errno, "cannot open the lock file '%s'", path);
        return NULL;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            holder_describe(fd, domain);
        else
            vk_error_errno(errno, "cannot lock '%s'", path);
        return NULL;
    }
    if (pid_write(fd, path) < 0 || !(l = vk_malloc(sizeof *l)))
        return NULL;
    l->fd = VK_STEAL_FD(fd);
    l->path = VK_STEAL(path);
    return l;
}

void backup_lock_release(struct backup_lock *l)
{
    if (!l)
        return;
    /* Empty the file before unlocking: a pid left there would be wrong.
     * The file stays: unlinking it would race with a waiting opener. */
    if (ftruncate(l->fd, 0) < 0)
        vk_debug("cannot empty the lock file '%s': %s", l->path, strerror(errno));
    close(l->fd);
    free(l->path);
    free(l);
}
