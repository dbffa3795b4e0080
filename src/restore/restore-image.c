/* virtkeep - the destination of a restore: a qcow2 image written through a
 * writable qemu-nbd with libnbd, several requests in flight.
 *
 * qemu-img create makes the image (cluster size and compat level as asked);
 * qemu-nbd serves it on a unix socket in a private directory (mkdtemp,
 * 0700), with O_DIRECT where the file system allows it; data goes out with
 * nbd_aio_pwrite (at most 32 MiB per request).  Zero ranges need no
 * request: the fresh image reads as zeros.  The caller drives the
 * connection (restore_image_poll) between its other work.  Close flushes
 * once, disconnects, stops qemu-nbd and fsyncs.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libnbd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/restore/restore-int.h"

#define MAX_REQUEST (32u * 1024 * 1024)

extern char **environ;

struct restore_image {
    char *path;
    char *dir; /* private directory: socket and log */
    char *socket;
    char *log;
    pid_t pid;
    struct nbd_handle *nbd;
    unsigned int in_flight;
    int error; /* first failed request's errno, 0 if none */
    const volatile sig_atomic_t *cancel;
};

static const char *prog(const char *env, const char *dflt)
{
    const char *p = getenv(env);
    return p && *p ? p : dflt;
}

static char *log_read(const char *log)
{
    CLEANUP_CLOSE int fd = open(log, O_RDONLY | O_CLOEXEC);
    char *text = vk_calloc(1, 2048);
    ssize_t n;

    if (!text)
        return NULL;
    n = fd >= 0 ? read(fd, text, 2047) : -1;
    text[n > 0 ? n : 0] = '\0';
    return text;
}

/* Children run in a process group of their own: a ^C on the terminal
 * reaches virtkeep only, which then stops them in order (qemu-nbd after
 * the last write, the temporary image removed). */
static int spawn_logged(char *const argv[], const char *log, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int r;

    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    r = posix_spawnp(pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (r != 0)
        vk_error_errno(r, "cannot run '%s'", argv[0]);
    return r ? -1 : 0;
}

static int status_of(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int image_create(struct restore_image *img, uint64_t size, uint64_t cluster_size,
                        const char *compat)
{
    CLEANUP_FREE char *o = vk_asprintf("cluster_size=%" PRIu64 ",compat=%s", cluster_size, compat);
    CLEANUP_FREE char *sz = vk_asprintf("%" PRIu64, size);
    CLEANUP_FREE char *text = NULL;
    pid_t pid;
    int status;

    if (!o || !sz)
        return -1;
    char *argv[] = {(char *)prog("VIRTKEEP_QEMU_IMG", "qemu-img"),
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-o",
                    o,
                    img->path,
                    sz,
                    NULL};
    if (spawn_logged(argv, img->log, &pid) < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            vk_error_errno(errno, "cannot wait for qemu-img");
            return -1;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    text = log_read(img->log);
    vk_error(VK_ERR_IO, "cannot create the image '%s' (qemu-img exited with status %d): %s",
             img->path, status_of(status), text ? vk_trim(text) : "");
    return -1;
}

static int nbd_fail(const struct restore_image *img, const char *doing)
{
    vk_error(VK_ERR_IO, "cannot %s the image '%s' through qemu-nbd: %s", doing, img->path,
             nbd_get_error() ? nbd_get_error() : "unknown error");
    return -1;
}

/* O_DIRECT (cache=none) where the file system has it: measured on the
 * benchmark disk, it halves qemu-nbd's system time against writeback (no
 * page-cache copy, no dirty pages to flush at the end) and beats
 * aio=native.  tmpfs has no O_DIRECT: writeback there. */
static const char *cache_mode(const char *path)
{
    int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);

    if (fd < 0) {
        vk_debug("no O_DIRECT on '%s' (%s): qemu-nbd uses cache=writeback", path, strerror(errno));
        return "--cache=writeback";
    }
    close(fd);
    return "--cache=none";
}

/* Start qemu-nbd and connect, waiting up to 10 s for the socket. */
static int server_start(struct restore_image *img)
{
    CLEANUP_FREE char *sock = vk_asprintf("--socket=%s", img->socket);

    if (!sock)
        return -1;
    char *argv[] = {(char *)prog("VIRTKEEP_QEMU_NBD", "qemu-nbd"),
                    "--format=qcow2",
                    (char *)cache_mode(img->path),
                    "--persistent",
                    "--shared=1",
                    sock,
                    img->path,
                    NULL};
    if (spawn_logged(argv, img->log, &img->pid) < 0)
        return -1;
    for (int i = 0; i < 1000; i++) {
        int status;
        if (img->cancel && *img->cancel) {
            vk_error(VK_ERR_INTERRUPTED, "the restore of the image '%s' was interrupted",
                     img->path);
            return -1;
        }
        if (waitpid(img->pid, &status, WNOHANG) == img->pid) {
            CLEANUP_FREE char *text = log_read(img->log);
            img->pid = -1;
            vk_error(VK_ERR_IO, "qemu-nbd for the image '%s' exited with status %d: %s", img->path,
                     status_of(status), text ? vk_trim(text) : "");
            return -1;
        }
        img->nbd = nbd_create();
        if (!img->nbd)
            return nbd_fail(img, "connect to");
        if (nbd_connect_unix(img->nbd, img->socket) == 0)
            return 0;
        nbd_close(img->nbd);
        img->nbd = NULL;
        usleep(10000);
    }
    vk_error(VK_ERR_IO, "qemu-nbd for the image '%s' did not listen on '%s' within 10 s", img->path,
             img->socket);
    return -1;
}

static int server_stop(struct restore_image *img, bool check)
{
    int status = 0;
    bool reaped = false;

    if (img->pid <= 0)
        return 0;
    kill(img->pid, SIGTERM);
    for (int i = 0; i < 1000 && !reaped; i++) {
        pid_t r = waitpid(img->pid, &status, WNOHANG);
        reaped = r == img->pid || (r < 0 && errno != EINTR);
        if (!reaped)
            usleep(10000);
    }
    if (!reaped) {
        kill(img->pid, SIGKILL);
        while (waitpid(img->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    img->pid = -1;
    if (check && (!reaped || !(WIFEXITED(status) || WTERMSIG(status) == SIGTERM))) {
        vk_error(VK_ERR_IO, "qemu-nbd for the image '%s' did not exit cleanly (status %d)",
                 img->path, status_of(status));
        return -1;
    }
    return 0;
}

static void image_free(struct restore_image *img)
{
    if (img->nbd)
        nbd_close(img->nbd);
    server_stop(img, false);
    if (img->socket)
        unlink(img->socket);
    if (img->log)
        unlink(img->log);
    if (img->dir)
        rmdir(img->dir);
    free(img->path);
    free(img->dir);
    free(img->socket);
    free(img->log);
    free(img);
}

struct restore_image *restore_image_open(const char *path, uint64_t size, uint64_t cluster_size,
                                         const char *compat, unsigned int in_flight,
                                         const volatile sig_atomic_t *cancel)
{
    struct restore_image *img = vk_calloc(1, sizeof *img);
    const char *tmp = getenv("TMPDIR");

    if (!img)
        return NULL;
    img->pid = -1;
    img->cancel = cancel;
    img->in_flight = in_flight ? in_flight : 8;
    img->path = vk_strdup(path);
    img->dir = vk_asprintf("%s/virtkeep-restore-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!img->path || !img->dir)
        goto fail;
    if (!mkdtemp(img->dir)) {
        vk_error_errno(errno, "cannot create a private directory '%s'", img->dir);
        free(img->dir);
        img->dir = NULL;
        goto fail;
    }
    img->socket = vk_asprintf("%s/nbd.sock", img->dir);
    img->log = vk_asprintf("%s/log", img->dir);
    if (!img->socket || !img->log ||
        image_create(img, size, cluster_size ? cluster_size : 65536, compat ? compat : "1.1") < 0 ||
        server_start(img) < 0)
        goto fail;
    if (nbd_get_size(img->nbd) != (int64_t)size) {
        vk_error(VK_ERR_IO, "qemu-nbd serves the image '%s' with the wrong size", img->path);
        goto fail;
    }
    vk_debug("qemu-nbd (pid %d) serves '%s' on '%s'", (int)img->pid, img->path, img->socket);
    return img;
fail:
    image_free(img);
    return NULL;
}

struct request {
    struct restore_image *img;
    unsigned int *refs;
};

static int request_done(void *user_data, int *error)
{
    struct request *rq = user_data;

    if (*error && !rq->img->error)
        rq->img->error = *error;
    if (rq->refs)
        (*rq->refs)--;
    return 1; /* retire the command */
}

static void request_free(void *user_data)
{
    free(user_data);
}

static int request_error(struct restore_image *img)
{
    vk_error_errno(img->error, "cannot write to the image '%s' through qemu-nbd", img->path);
    return -1;
}

/* Wait until fewer than the allowed number of requests are in flight. */
static int throttle(struct restore_image *img, unsigned int max)
{
    while ((unsigned int)nbd_aio_in_flight(img->nbd) > max)
        if (nbd_poll(img->nbd, -1) < 0)
            return nbd_fail(img, "write to");
    return img->error ? request_error(img) : 0;
}

static struct request *request_new(struct restore_image *img, unsigned int *refs)
{
    struct request *rq = vk_malloc(sizeof *rq);

    if (rq) {
        rq->img = img;
        rq->refs = refs;
        if (refs)
            (*refs)++;
    }
    return rq;
}

int restore_image_write(struct restore_image *img, const void *buf, uint64_t len, uint64_t offset,
                        unsigned int *refs)
{
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done > MAX_REQUEST ? MAX_REQUEST : (size_t)(len - done);
        struct request *rq;

        if (throttle(img, img->in_flight - 1) < 0 || !(rq = request_new(img, refs)))
            return -1;
        nbd_completion_callback cb = {
            .callback = request_done, .user_data = rq, .free = request_free};
        if (nbd_aio_pwrite(img->nbd, (const char *)buf + done, n, offset + done, cb, 0) < 0)
            return nbd_fail(img, "write to");
        done += n;
    }
    return 0;
}

int restore_image_wait(struct restore_image *img, const unsigned int *refs)
{
    if (!refs)
        return throttle(img, 0);
    while (*refs > 0)
        if (nbd_poll(img->nbd, -1) < 0)
            return nbd_fail(img, "write to");
    return throttle(img, img->in_flight);
}

/* What nbd_poll does, with one more descriptor to watch. */
int restore_image_poll(struct restore_image *img, int fd, int timeout)
{
    struct pollfd p[2] = {{.fd = nbd_aio_get_fd(img->nbd)}, {.fd = fd, .events = POLLIN}};
    unsigned int dir = nbd_aio_get_direction(img->nbd);
    int r;

    if (p[0].fd < 0)
        return nbd_fail(img, "write to");
    p[0].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
                  (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
    r = poll(p, fd >= 0 ? 2 : 1, timeout);
    if (r < 0 && errno != EINTR) {
        vk_error_errno(errno, "cannot poll the connection to qemu-nbd for the image '%s'",
                       img->path);
        return -1;
    }
    r = 0;
    if (p[0].revents & (POLLIN | POLLHUP))
        r = nbd_aio_notify_read(img->nbd);
    else if (p[0].revents & POLLOUT)
        r = nbd_aio_notify_write(img->nbd);
    else if (p[0].revents & (POLLERR | POLLNVAL)) {
        vk_error(VK_ERR_IO, "qemu-nbd closed the connection for the image '%s'", img->path);
        return -1;
    }
    if (r < 0)
        return nbd_fail(img, "write to");
    if (img->error)
        return request_error(img);
    return fd >= 0 && (p[1].revents & POLLIN) ? 1 : 0;
}

static int file_sync(const char *path)
{
    CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fsync(fd) < 0) {
        vk_error_errno(errno, "cannot sync the image '%s'", path);
        return -1;
    }
    return 0;
}

int restore_image_close(struct restore_image *img)
{
    int r = restore_image_wait(img, NULL);

    if (r == 0 && (nbd_flush(img->nbd, 0) < 0 || nbd_shutdown(img->nbd, 0) < 0))
        r = nbd_fail(img, "flush");
    nbd_close(img->nbd);
    img->nbd = NULL;
    if (server_stop(img, r == 0) < 0)
        r = -1;
    if (r == 0 && file_sync(img->path) < 0)
        r = -1;
    image_free(img);
    return r;
}

void restore_image_abort(struct restore_image *img)
{
    if (img)
        image_free(img);
}
