/* virtkeep - the run directory, qemu-img bitmaps and qemu-nbd (see virt.h).
 *
 * Child processes are started with posix_spawnp (safe in a threaded
 * program), never through a shell, and always reaped.  The programs can be
 * overridden with VIRTKEEP_QEMU_IMG and VIRTKEEP_QEMU_NBD.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libnbd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "src/virt/virt-int.h"
#include "src/virt/virt.h"

extern char **environ;

#define DEFAULT_RUN_PARENT "/var/lib/virtkeep/run"
#define DEFAULT_QEMU_CONF "/etc/libvirt/qemu.conf"
#define CHILD_OUTPUT_MAX (4u * 1024 * 1024)

static const char *prog(const char *env, const char *dflt)
{
    const char *p = getenv(env);
    return p && *p ? p : dflt;
}

/* ---------------------------------------------------------------- child processes */

struct outbuf {
    char *data;
    size_t len;
};

static int outbuf_read(int fd, struct outbuf *b)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    char *p;

    if (n <= 0)
        return n < 0 && errno == EINTR ? 1 : 0; /* 0: EOF or error, stop */
    if (b->len + (size_t)n > CHILD_OUTPUT_MAX)
        return 1; /* drop what exceeds the cap, keep draining */
    p = realloc(b->data, b->len + (size_t)n + 1);
    if (!p)
        return 1;
    b->data = p;
    memcpy(b->data + b->len, tmp, (size_t)n);
    b->len += (size_t)n;
    b->data[b->len] = '\0';
    return 1;
}

/* Read both pipes until both are closed. */
static void drain(int out_fd, int err_fd, struct outbuf *out, struct outbuf *err)
{
    struct pollfd p[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};

    while (p[0].fd >= 0 || p[1].fd >= 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd >= 0 && p[i].revents && outbuf_read(p[i].fd, i ? err : out) == 0)
                p[i].fd = -1;
        }
    }
}

static int spawn_piped(char *const argv[], int out[2], int err[2], pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    int r;

    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        return errno;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    r = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    return r;
}

static int wait_child(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Run ARGV; *OUT gets its stdout (when OUT is not NULL).  On failure the
 * error is "WHAT: stderr of the program" and the failure kind is set. */
static int run(char *const argv[], char **out, const char *what)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, r, status;
    struct outbuf bo = {0}, be = {0};
    pid_t pid;

    r = spawn_piped(argv, po, pe, &pid);
    if (r != 0) {
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close(po[i]);
            if (pe[i] >= 0)
                close(pe[i]);
        }
        vk_error_errno(r, "%s: cannot run '%s'", what, argv[0]);
        return -1;
    }
    drain(po[0], pe[0], &bo, &be);
    close(po[0]);
    close(pe[0]);
    status = wait_child(pid);
    if (status != 0) {
        const char *msg = be.data ? vk_trim(be.data) : "";
        virt_failure_set(virt_failure_classify(0, msg));
        vk_error(VK_ERR_IO, "%s: %s exited with status %d%s%s", what, argv[0], status,
                 *msg ? ": " : ".", msg);
    } else if (out) {
        *out = bo.data ? VK_STEAL(bo.data) : vk_strdup("");
    }
    free(bo.data);
    free(be.data);
    return status == 0 && (!out || *out) ? 0 : -1;
}

int virt_qemu_img(char *const args[], char **out, const char *what)
{
    char *argv[16];
    size_t n = 0;

    argv[n++] = (char *)prog("VIRTKEEP_QEMU_IMG", "qemu-img");
    for (; args[n - 1] && n < VK_ARRAY_SIZE(argv) - 1; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    vk_debug("running %s %s %s", argv[0], argv[1], argv[n - 1]);
    return run(argv, out, what);
}

/* ---------------------------------------------------------------- qemu-img create */

int virt_image_create(const char *image, const char *format, uint64_t size)
{
    const char *img = prog("VIRTKEEP_QEMU_IMG", "qemu-img");
    CLEANUP_FREE char *sz = vk_asprintf("%" PRIu64, size);
    CLEANUP_FREE char *what = vk_asprintf("cannot create image '%s'", image);
    char *argv[] = {(char *)img,   "create", "-q", "-f", (char *)(format ? format : "qcow2"),
                    (char *)image, sz,       NULL};

    return sz && what ? run(argv, NULL, what) : -1;
}

/* ---------------------------------------------------------------- qemu-img bitmaps */

int virt_image_bitmap_add(const char *image, const char *name)
{
    const char *img = prog("VIRTKEEP_QEMU_IMG", "qemu-img");
    char *argv[] = {(char *)img, "bitmap",      "--add",      "-f",
                    "qcow2",     (char *)image, (char *)name, NULL};
    CLEANUP_FREE char *what = vk_asprintf("cannot add bitmap '%s' to image '%s'", name, image);

    return what ? run(argv, NULL, what) : -1;
}

int virt_image_bitmap_remove(const char *image, const char *name)
{
    const char *img = prog("VIRTKEEP_QEMU_IMG", "qemu-img");
    char *argv[] = {(char *)img, "bitmap",      "--remove",   "-f",
                    "qcow2",     (char *)image, (char *)name, NULL};
    CLEANUP_FREE char *what = NULL;
    enum virt_bitmap_state st;

    if (virt_image_bitmap_state(image, name, &st) < 0)
        return -1;
    if (st == VIRT_BITMAP_ABSENT)
        return 0;
    what = vk_asprintf("cannot remove bitmap '%s' from image '%s'", name, image);
    return what ? run(argv, NULL, what) : -1;
}

static bool flags_contain(json_object *flags, const char *flag)
{
    for (size_t i = 0; flags && i < json_object_array_length(flags); i++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(flags, i)), flag) == 0)
            return true;
    return false;
}

/* Find bitmap NAME in `qemu-img info --output=json` text. */
static int bitmap_state_parse(const char *json, const char *image, const char *name,
                              enum virt_bitmap_state *state)
{
    json_object *root = json_tokener_parse(json), *fs, *data, *bitmaps, *bname, *flags;

    *state = VIRT_BITMAP_ABSENT;
    if (!root) {
        vk_error(VK_ERR_IO, "cannot parse the output of qemu-img info for image '%s'.", image);
        return -1;
    }
    if (json_object_object_get_ex(root, "format-specific", &fs) &&
        json_object_object_get_ex(fs, "data", &data) &&
        json_object_object_get_ex(data, "bitmaps", &bitmaps)) {
        for (size_t i = 0; i < json_object_array_length(bitmaps); i++) {
            json_object *b = json_object_array_get_idx(bitmaps, i);
            if (!json_object_object_get_ex(b, "name", &bname) ||
                strcmp(json_object_get_string(bname), name) != 0)
                continue;
            if (!json_object_object_get_ex(b, "flags", &flags))
                flags = NULL;
            *state = flags_contain(flags, "in-use") ? VIRT_BITMAP_IN_USE : VIRT_BITMAP_OK;
        }
    }
    json_object_put(root);
    return 0;
}

int virt_image_bitmap_state(const char *image, const char *name, enum virt_bitmap_state *state)
{
    const char *img = prog("VIRTKEEP_QEMU_IMG", "qemu-img");
    char *argv[] = {(char *)img, "info", "--output=json", "-U", "-f", "qcow2", (char *)image, NULL};
    CLEANUP_FREE char *what = vk_asprintf("cannot read the bitmaps of image '%s'", image);
    CLEANUP_FREE char *out = NULL;

    if (!what || run(argv, &out, what) < 0)
        return -1;
    return bitmap_state_parse(out, image, name, state);
}

/* ---------------------------------------------------------------- run directory */

/* The value of KEY = "VALUE" in a qemu.conf, or NULL (no error). */
static char *conf_value(const char *path, const char *key)
{
    CLEANUP_FCLOSE FILE *fp = fopen(path, "re");
    char line[1024];
    size_t klen = strlen(key);

    while (fp && fgets(line, sizeof(line), fp)) {
        char *p = vk_trim(line), *q, *end;
        if (strncmp(p, key, klen) != 0)
            continue;
        q = p + klen;
        q += strspn(q, " \t");
        if (*q++ != '=')
            continue;
        q += strspn(q, " \t");
        if (*q++ != '"' || !(end = strchr(q, '"')))
            continue;
        return vk_strndup(q, (size_t)(end - q));
    }
    return NULL;
}

char *virt_qemu_user(const char *qemu_conf)
{
    char *user = conf_value(qemu_conf ? qemu_conf : DEFAULT_QEMU_CONF, "user");

    if (user)
        return user;
    /* Debian builds libvirt with libvirt-qemu, Fedora and others with qemu. */
    if (getpwnam("libvirt-qemu"))
        return vk_strdup("libvirt-qemu");
    if (getpwnam("qemu"))
        return vk_strdup("qemu");
    vk_error(VK_ERR_NOT_FOUND, "cannot tell which user QEMU runs as: neither 'libvirt-qemu' "
                               "nor 'qemu' exists and qemu.conf names none.");
    return NULL;
}

/* uid and gid of USER: a name, or "+N" as qemu.conf allows. */
static int user_ids(const char *user, uid_t *uid, gid_t *gid)
{
    unsigned long long n;
    struct passwd *pw;

    if (user[0] == '+') {
        if (vk_parse_uint(user + 1, UINT32_MAX - 1, &n) < 0)
            return -1;
        pw = getpwuid((uid_t)n);
        *uid = (uid_t)n;
        *gid = pw ? pw->pw_gid : (gid_t)n;
        return 0;
    }
    pw = getpwnam(user);
    if (!pw) {
        vk_error(VK_ERR_NOT_FOUND, "QEMU's user '%s' does not exist.", user);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

static int mkdir_exist_ok(const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        vk_error_errno(errno, "cannot create directory '%s'", path);
        return -1;
    }
    return 0;
}

static int rundir_give_to_qemu(const char *dir)
{
    CLEANUP_FREE char *user = virt_qemu_user(NULL);
    uid_t uid;
    gid_t gid;

    if (!user || user_ids(user, &uid, &gid) < 0)
        return -1;
    if (chown(dir, uid, gid) < 0) {
        vk_error_errno(errno, "cannot give run directory '%s' to QEMU's user '%s'", dir, user);
        return -1;
    }
    return 0;
}

char *virt_rundir_default(uid_t euid)
{
    const char *run = getenv("XDG_RUNTIME_DIR");
    const char *cache = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");

    if (euid == 0)
        return vk_strdup(DEFAULT_RUN_PARENT);
    if (run && run[0] == '/')
        return vk_asprintf("%s/virtkeep", run);
    if (cache && cache[0] == '/')
        return vk_asprintf("%s/virtkeep/run", cache);
    if (home && home[0] == '/')
        return vk_asprintf("%s/.cache/virtkeep/run", home);
    vk_error(VK_ERR_NOT_FOUND,
             "cannot find a place for the run directories of user %u: neither XDG_RUNTIME_DIR "
             "nor HOME is set to an absolute path",
             (unsigned int)euid);
    return NULL;
}

/* mkdir -p DIR: MODE for the components that are missing (root: 0711, so
 * that QEMU's user reaches its run directory; others: 0700). */
static int mkdir_parents(const char *dir, mode_t mode)
{
    CLEANUP_FREE char *p = vk_strdup(dir);

    if (!p)
        return -1;
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        if (mkdir_exist_ok(p, mode) < 0)
            return -1;
        *s = c;
        if (c == '\0')
            return 0;
    }
}

char *virt_rundir_create(const char *parent, unsigned int flags)
{
    CLEANUP_FREE char *dir = NULL, *dflt = NULL;

    if (!parent) {
        if (!(dflt = virt_rundir_default(geteuid())) ||
            mkdir_parents(dflt, geteuid() == 0 ? 0711 : 0700) < 0)
            return NULL;
        parent = dflt;
    }
    /* Named after this process: recovery removes the directories of dead
     * processes (virt_rundir_clean_stale). */
    dir = vk_asprintf("%s/vk-%ld-XXXXXX", parent, (long)getpid());
    if (!dir)
        return NULL;
    if (!mkdtemp(dir)) {
        vk_error_errno(errno, "cannot create a run directory in '%s'", parent);
        return NULL;
    }
    /* QEMU creates the socket and the scratch files here; we only read. */
    if (chmod(dir, 0750) < 0) {
        vk_error_errno(errno, "cannot set the mode of run directory '%s'", dir);
        rmdir(dir);
        return NULL;
    }
    if (!(flags & VIRT_RUNDIR_NO_CHOWN) && rundir_give_to_qemu(dir) < 0) {
        rmdir(dir);
        return NULL;
    }
    return VK_STEAL(dir);
}

int virt_rundir_remove(const char *dir)
{
    DIR *dp;
    struct dirent *e;
    int r = 0;

    if (!dir)
        return 0;
    dp = opendir(dir);
    if (!dp) {
        if (errno == ENOENT)
            return 0;
        vk_error_errno(errno, "cannot open run directory '%s'", dir);
        return -1;
    }
    while ((e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        /* Files only: a directory here is not ours to remove. */
        if (unlinkat(dirfd(dp), e->d_name, 0) < 0 && errno != ENOENT && r == 0) {
            vk_error_errno(errno, "cannot remove '%s' from run directory '%s'", e->d_name, dir);
            r = -1;
        }
    }
    closedir(dp);
    if (r == 0 && rmdir(dir) < 0 && errno != ENOENT) {
        vk_error_errno(errno, "cannot remove run directory '%s'", dir);
        r = -1;
    }
    return r;
}

/* The process that made run directory NAME (vk-PID-XXXXXX); 0 for one of
 * the versions before the pid was in the name (vk-XXXXXX); -1 when NAME is
 * not a run directory. */
static long rundir_owner(const char *name)
{
    const char *p, *dash;
    CLEANUP_FREE char *num = NULL;
    unsigned long long pid;

    if (strncmp(name, "vk-", 3) != 0)
        return -1;
    p = name + 3;
    dash = strrchr(name, '-');
    if (strlen(dash + 1) != 6)
        return -1;
    if (dash == name + 2)
        return 0;
    if (!(num = vk_strndup(p, (size_t)(dash - p))) || vk_parse_uint(num, INT32_MAX, &pid) < 0 ||
        pid == 0)
        return -1;
    return (long)pid;
}

/* The name records the pid only, so the pid decides; a zombie is gone too
 * (vk_proc_alive, the same test the catalog's row owners get). */
static bool process_gone(long pid)
{
    return pid != (long)getpid() && !vk_proc_alive(pid, 0);
}

int virt_rundir_clean_stale(const char *parent, unsigned int *removed)
{
    CLEANUP_FREE char *dflt = NULL;
    unsigned int n = 0;
    struct dirent *e;
    DIR *dp;

    if (removed)
        *removed = 0;
    if (!parent && !(parent = dflt = virt_rundir_default(geteuid())))
        return -1;
    if (!(dp = opendir(parent))) {
        if (errno == ENOENT)
            return 0;
        vk_error_errno(errno, "cannot open the run directories in '%s'", parent);
        return -1;
    }
    while ((e = readdir(dp)) != NULL) {
        long pid = rundir_owner(e->d_name);
        CLEANUP_FREE char *path = NULL;
        struct stat st;

        if (pid < 0 || (pid > 0 && !process_gone(pid)))
            continue;
        if (fstatat(dirfd(dp), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (!(path = vk_asprintf("%s/%s", parent, e->d_name))) {
            closedir(dp);
            return -1;
        }
        if (pid == 0) {
            /* Whose it is, nobody knows: an empty one (rmdir refuses any
             * other) that nothing touched for an hour is not in use. */
            if (st.st_mtime > time(NULL) - 3600 || rmdir(path) < 0)
                continue;
        } else if (virt_rundir_remove(path) < 0) {
            vk_warn("cannot remove the run directory of process %ld, which is gone: %s", pid,
                    vk_error_message());
            continue;
        }
        vk_info("removed run directory '%s' of a process that is gone", path);
        n++;
    }
    closedir(dp);
    if (removed)
        *removed = n;
    return 0;
}

/* ---------------------------------------------------------------- qemu-nbd */

static void nbd_free(struct virt_nbd *n)
{
    if (!n)
        return;
    free(n->socket);
    free(n->export_name);
    free(n->bitmap_context);
    free(n);
}

/* Whether the export answers a whole NBD handshake: qemu-nbd listens on its
 * socket before it has opened the image and the bitmap, so a socket that
 * accepts connections proves nothing yet. */
static bool export_answers(const char *path, const char *export_name)
{
    struct nbd_handle *h = nbd_create();
    bool ok;

    if (!h)
        return false;
    ok = nbd_set_export_name(h, export_name) == 0 && nbd_connect_unix(h, path) == 0;
    nbd_close(h);
    return ok;
}

/* Spawn qemu-nbd with stderr to LOG. */
static int nbd_spawn(char *const argv[], const char *log, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    int r;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    r = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0)
        vk_error_errno(r, "cannot run '%s'", argv[0]);
    return r ? -1 : 0;
}

static void nbd_fail_from_log(const struct virt_disk *disk, const char *log, int status)
{
    CLEANUP_FREE char *text = vk_calloc(1, 2048);
    CLEANUP_CLOSE int fd = open(log, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 && text ? read(fd, text, 2047) : -1;

    if (n < 0 && text)
        text[0] = '\0';
    virt_failure_set(virt_failure_classify(0, text));
    vk_error(VK_ERR_IO, "qemu-nbd for disk '%s' (%s) exited with status %d: %s", disk->target,
             disk->source, status, text ? vk_trim(text) : "");
}

/* Wait until the socket answers or the child dies (10 s at most). */
static int nbd_wait(struct virt_nbd *n, const struct virt_disk *disk, const char *log)
{
    for (int i = 0; i < 1000; i++) {
        int status;
        pid_t r = waitpid(n->pid, &status, WNOHANG);
        if (r == n->pid) {
            n->pid = -1;
            nbd_fail_from_log(disk, log,
                              WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            return -1;
        }
        if (export_answers(n->socket, n->export_name))
            return 0;
        usleep(10000);
    }
    vk_error(VK_ERR_IO, "qemu-nbd for disk '%s' (%s) did not listen on '%s' within 10 s.",
             disk->target, disk->source, n->socket);
    return -1;
}

static struct virt_nbd *nbd_new(const struct virt_disk *disk, const char *rundir,
                                const char *bitmap)
{
    struct virt_nbd *n = vk_calloc(1, sizeof(*n));

    if (!n)
        return NULL;
    n->pid = -1;
    n->socket = vk_asprintf("%s/%s.sock", rundir, disk->target);
    n->export_name = vk_strdup(disk->target);
    if (bitmap)
        n->bitmap_context = vk_asprintf("qemu:dirty-bitmap:%s", bitmap);
    if (!n->socket || !n->export_name || (bitmap && !n->bitmap_context)) {
        nbd_free(n);
        return NULL;
    }
    if (strlen(n->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        vk_error(VK_ERR_INVALID, "the socket path '%s' is too long.", n->socket);
        nbd_free(n);
        return NULL;
    }
    return n;
}

struct virt_nbd *virt_nbd_start(const struct virt_disk *disk, const char *rundir,
                                const char *bitmap, unsigned int flags)
{
    CLEANUP_FREE char *log = vk_asprintf("%s/%s.qemu-nbd.log", rundir, disk->target);
    CLEANUP_FREE char *sock_opt = NULL, *fmt_opt = NULL, *exp_opt = NULL, *bm_opt = NULL;
    struct virt_nbd *n;

    (void)flags;
    if (!disk->source) {
        vk_error(VK_ERR_UNSUPPORTED,
                 "cannot serve disk '%s' with qemu-nbd: it has no local "
                 "image.",
                 disk->target);
        return NULL;
    }
    n = nbd_new(disk, rundir, bitmap);
    if (!n || !log)
        goto fail;
    sock_opt = vk_asprintf("--socket=%s", n->socket);
    fmt_opt = vk_asprintf("--format=%s", disk->fmt == VIRT_FORMAT_QCOW2 ? "qcow2" : "raw");
    exp_opt = vk_asprintf("--export-name=%s", disk->target);
    bm_opt = bitmap ? vk_asprintf("--bitmap=%s", bitmap) : NULL;
    if (!sock_opt || !fmt_opt || !exp_opt || (bitmap && !bm_opt))
        goto fail;
    char *argv[] = {(char *)prog("VIRTKEEP_QEMU_NBD", "qemu-nbd"),
                    "--read-only",
                    "--persistent",
                    "--shared=8",
                    sock_opt,
                    fmt_opt,
                    exp_opt,
                    (char *)disk->source,
                    bm_opt,
                    NULL};
    if (nbd_spawn(argv, log, &n->pid) < 0 || nbd_wait(n, disk, log) < 0)
        goto fail;
    vk_debug("qemu-nbd (pid %d) serves disk '%s' on '%s'", (int)n->pid, disk->target, n->socket);
    return n;
fail:
    virt_nbd_stop(n);
    return NULL;
}

int virt_nbd_stop(struct virt_nbd *n)
{
    bool reaped = false;
    int status;

    if (!n)
        return 0;
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        for (int i = 0; i < 500 && !reaped; i++) {
            pid_t r = waitpid(n->pid, &status, WNOHANG);
            reaped = r == n->pid || (r < 0 && errno != EINTR);
            if (!reaped)
                usleep(10000);
        }
        if (!reaped) {
            kill(n->pid, SIGKILL);
            while (waitpid(n->pid, &status, 0) < 0 && errno == EINTR)
                ;
        }
    }
    if (n->socket)
        unlink(n->socket);
    nbd_free(n);
    return 0;
}
