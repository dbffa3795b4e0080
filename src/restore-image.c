/* virtkeep - the destination of a restore: a qcow2 image written through a
 * writable qemu-nbd with libnbd, several requests in flight.
 *
 * qemu-img create makes the image (cluster size and compat level as asked);
 * qemu-nbd serves it on a unix socket in a private directory (mkdtemp,
 * 0700); data goes out with nbd_aio_pwrite (at most 32 MiB per request) and
 * zero ranges with nbd_aio_zero, which qemu turns into zero clusters instead
 * of written zeros.  Close flushes, disconnects, stops qemu-nbd and fsyncs.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "src/restore-int.h"

#define MAX_REQUEST (32u * 1024 * 1024)
#define MAX_ZERO_REQUEST (1024u * 1024 * 1024)

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

static int spawn_logged(char *const argv[], const char *log, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    int r;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    r = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
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

/* Start qemu-nbd and connect, waiting up to 10 s for the socket. */
static int server_start(struct restore_image *img)
{
    CLEANUP_FREE char *sock = vk_asprintf("--socket=%s", img->socket);

    if (!sock)
        return -1;
    char *argv[] = {(char *)prog("VIRTKEEP_QEMU_NBD", "qemu-nbd"),
                    "--format=qcow2",
                    "--cache=writeback",
                    "--persistent",
                    "--shared=1",
                    sock,
                    img->path,
                    NULL};
    if (spawn_logged(argv, img->log, &img->pid) < 0)
        return -1;
    for (int i = 0; i < 1000; i++) {
        int status;
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
                                         const char *compat, unsigned int in_flight)
{
    struct restore_image *img = vk_calloc(1, sizeof *img);
    const char *tmp = getenv("TMPDIR");

    if (!img)
        return NULL;
    img->pid = -1;
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

/* Wait until fewer than the allowed number of requests are in flight. */
static int throttle(struct restore_image *img, unsigned int max)
{
    while ((unsigned int)nbd_aio_in_flight(img->nbd) > max)
        if (nbd_poll(img->nbd, -1) < 0)
            return nbd_fail(img, "write to");
    if (img->error) {
        vk_error_errno(img->error, "cannot write to the image '%s' through qemu-nbd", img->path);
        return -1;
    }
    return 0;
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

int restore_image_zero(struct restore_image *img, uint64_t len, uint64_t offset)
{
    for (uint64_t done = 0; done < len;) {
        uint64_t n = len - done > MAX_ZERO_REQUEST ? MAX_ZERO_REQUEST : len - done;
        struct request *rq;

        if (throttle(img, img->in_flight - 1) < 0 || !(rq = request_new(img, NULL)))
            return -1;
        nbd_completion_callback cb = {
            .callback = request_done, .user_data = rq, .free = request_free};
        if (nbd_aio_zero(img->nbd, n, offset + done, cb, 0) < 0)
            return nbd_fail(img, "zero");
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
