/* virtkeep - the file:// backend: a local directory.
 *
 * A put writes ".NAME.vk-tmp-XXXXXX" in the object's directory, then on
 * commit: fsync(file), rename over the final name, fsync(directory).  So a
 * reader sees the old object or the whole new one, never a partial one, and
 * a crash leaves at most a hidden temp file that list() never shows (no valid
 * key contains ".vk-tmp-").
 *
 * Every operation works on paths under the root and never creates the root
 * itself: an unmounted backup disk must not silently fill the disk beneath
 * it.  No descriptor stays open between operations so the root's file system
 * can be unmounted while the target is open.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/transport-int.h"

#define TMP_MARK TRANSPORT_TMP_MARK

struct local {
    char *root;
};

/* Start write-back of what a put has written every WRITEBACK_STEP bytes, so
 * that the fsync at commit finds little left to write: without it a large
 * archive sits dirty in the page cache and the commit stalls for a long
 * fsync while every core is idle. */
#define WRITEBACK_STEP (32u << 20)

struct local_put {
    int fd;
    uint64_t written; /* bytes written so far */
    uint64_t flushed; /* write-back started up to here */
    bool new_dirs;    /* put_begin created directories: their entries need syncing */
    char *key;
    char *tmp;   /* the temp file */
    char *final; /* the object */
};

static int local_open(struct transport *t, const struct transport_url *url,
                      const struct transport_options *opts)
{
    struct local *l;

    (void)opts;
    if (url->path[0] != '/') {
        vk_error(VK_ERR_INVALID, "a file target needs an absolute path, not '%s'", url->path);
        return -1;
    }
    l = vk_calloc(1, sizeof *l);
    if (!l || !(l->root = vk_strdup(url->path))) {
        free(l);
        return -1;
    }
    t->priv = l;
    return 0;
}

static void local_close(struct transport *t)
{
    struct local *l = t->priv;

    if (l)
        free(l->root);
    free(l);
    t->priv = NULL;
}

static char *key_path(const struct local *l, const char *key)
{
    return vk_asprintf("%s/%s", strcmp(l->root, "/") == 0 ? "" : l->root, key);
}

/* Errors.  Each names the operation and the key; a missing root is told
 * apart from a missing object so an unmounted disk is not "no such object". */

static int fail_errno(int errnum, const char *op, const char *key)
{
    if (errnum == ENOSPC || errnum == EDQUOT)
        vk_error_errno(errnum, "cannot %s '%s': the target is full", op, key);
    else
        vk_error_errno(errnum, "cannot %s '%s'", op, key);
    return -1;
}

static int root_check(const struct local *l)
{
    struct stat st;

    if (stat(l->root, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            vk_error(VK_ERR_NOT_FOUND, "target directory '%s' does not exist", l->root);
        else
            vk_error_errno(errno, "cannot access target directory '%s'", l->root);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        vk_error(VK_ERR_INVALID, "target directory '%s' is not a directory", l->root);
        return -1;
    }
    return 0;
}

static int fail_missing(const struct local *l, const char *op, const char *key)
{
    if (root_check(l) < 0)
        return -1;
    vk_error(VK_ERR_NOT_FOUND, "cannot %s '%s': no such object", op, key);
    return -1;
}

static bool errno_missing(int errnum)
{
    return errnum == ENOENT || errnum == ENOTDIR || errnum == EISDIR;
}

static int fsync_dir(const char *dir)
{
    CLEANUP_CLOSE int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || fsync(fd) < 0)
        return -1;
    return 0;
}

/* The directory part of PATH (a fresh string). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash == path ? vk_strdup("/") : vk_strndup(path, (size_t)(slash - path));
}

/* Create the directories of KEY under the root, never the root itself;
 * *MADE tells whether any was created. */
static int make_parents(const struct local *l, const char *key, bool *made)
{
    CLEANUP_FREE char *path = key_path(l, key);
    size_t rootlen;

    if (!path)
        return -1;
    rootlen = strlen(path) - strlen(key);
    for (char *c = path + rootlen; (c = strchr(c, '/')) != NULL; c++) {
        *c = '\0';
        if (mkdir(path, 0750) == 0) {
            *made = true;
        } else if (errno != EEXIST) {
            int e = errno;
            *c = '/';
            return e == ENOENT ? root_check(l) : fail_errno(e, "put", key);
        }
        *c = '/';
    }
    return 0;
}

/* Sync the root and every directory of KEY above the object's own, so that
 * directories made for it survive a crash. */
static int fsync_parents(const struct local *l, const char *key)
{
    CLEANUP_FREE char *path = key_path(l, key);
    size_t rootlen;
    char *c;

    if (!path)
        return -1;
    rootlen = strlen(path) - strlen(key);
    *strrchr(path, '/') = '\0'; /* the object's own directory is synced apart */
    while ((c = strrchr(path + rootlen, '/')) != NULL) {
        *c = '\0';
        if (fsync_dir(path) < 0)
            return -1;
    }
    return fsync_dir(l->root);
}

/* Remove the now-empty directories of KEY, deepest first, up to the root. */
static void prune_parents(const struct local *l, const char *key)
{
    CLEANUP_FREE char *path = key_path(l, key);
    size_t rootlen;
    char *c;

    if (!path)
        return;
    rootlen = strlen(path) - strlen(key);
    while ((c = strrchr(path + rootlen, '/')) != NULL) {
        *c = '\0';
        if (rmdir(path) < 0)
            return;
    }
}

static void put_free(struct local_put *p)
{
    if (p->fd >= 0)
        close(p->fd);
    free(p->key);
    free(p->tmp);
    free(p->final);
    free(p);
}

/* A temp file next to the object: hidden, marked, unique, 0640. */
static int tmp_create(struct local_put *p)
{
    CLEANUP_FREE char *dir = dir_of(p->final);
    const char *base = strrchr(p->final, '/') + 1;

    if (!dir)
        return -1;
    /* Truncate the name so that the temp name fits in NAME_MAX. */
    free(p->tmp);
    if (!(p->tmp = vk_asprintf("%s/.%.200s" TMP_MARK "XXXXXX", dir, base)))
        return -1;
    p->fd = mkostemp(p->tmp, O_CLOEXEC);
    if (p->fd < 0)
        return -1;
    if (fchmod(p->fd, 0640) < 0) {
        int e = errno;
        unlink(p->tmp);
        errno = e;
        return -1;
    }
    return 0;
}

static void *local_put_begin(struct transport *t, const char *key, unsigned int flags)
{
    struct local *l = t->priv;
    struct local_put *p;

    (void)flags;
    if (root_check(l) < 0)
        return NULL;
    p = vk_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->fd = -1;
    if (!(p->key = vk_strdup(key)) || !(p->final = key_path(l, key)))
        goto fail;
    /* A concurrent delete may prune a directory we just made: retry. */
    for (int attempt = 0; attempt < 5; attempt++) {
        if (make_parents(l, key, &p->new_dirs) < 0)
            goto fail;
        if (tmp_create(p) == 0)
            return p;
        if (errno != ENOENT)
            break;
    }
    fail_errno(errno, "put", key);
    prune_parents(l, key);
fail:
    put_free(p);
    return NULL;
}

static int local_put_write(struct transport *t, void *handle, const void *buf, size_t len)
{
    struct local_put *p = handle;

    (void)t;
    if (vk_write_all(p->fd, buf, len) < 0)
        return fail_errno(errno, "put", p->key);
    p->written += len;
    if (p->written - p->flushed >= WRITEBACK_STEP) {
        /* Only a hint: a failure here shows up at the commit's fsync. */
        (void)sync_file_range(p->fd, (off64_t)p->flushed, (off64_t)(p->written - p->flushed),
                              SYNC_FILE_RANGE_WRITE);
        p->flushed = p->written;
    }
    return 0;
}

static int local_put_commit(struct transport *t, void *handle)
{
    struct local_put *p = handle;
    CLEANUP_FREE char *dir = dir_of(p->final);
    int fd = VK_STEAL_FD(p->fd);

    if (!dir)
        goto fail;
    if (fsync(fd) < 0) {
        fail_errno(errno, "put", p->key);
        goto fail;
    }
    /* close(2) releases the descriptor even when it fails. */
    if (close(VK_STEAL_FD(fd)) < 0) {
        fail_errno(errno, "put", p->key);
        goto fail;
    }
    if (rename(p->tmp, p->final) < 0) {
        fail_errno(errno, "put", p->key);
        goto fail;
    }
    if (fsync_dir(dir) < 0 || (p->new_dirs && fsync_parents(t->priv, p->key) < 0)) {
        /* The object is in place, but a crash could still lose it. */
        fail_errno(errno, "sync the directory of", p->key);
        put_free(p);
        return -1;
    }
    put_free(p);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(p->tmp);
    prune_parents(t->priv, p->key);
    put_free(p);
    return -1;
}

static void local_put_abort(struct transport *t, void *handle)
{
    struct local_put *p = handle;

    unlink(p->tmp);
    prune_parents(t->priv, p->key);
    put_free(p);
}

static ssize_t local_get_range(struct transport *t, const char *key, uint64_t offset, void *buf,
                               size_t len)
{
    CLEANUP_FREE char *path = key_path(t->priv, key);
    CLEANUP_CLOSE int fd = -1;
    struct stat st;
    ssize_t r;

    if (!path)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno_missing(errno))
        return fail_missing(t->priv, "read", key);
    if (fd < 0 || fstat(fd, &st) < 0)
        return fail_errno(errno, "read", key);
    if (!S_ISREG(st.st_mode))
        return fail_missing(t->priv, "read", key);
    r = vk_pread_all(fd, buf, len, (off_t)offset);
    if (r < 0)
        return fail_errno(errno, "read", key);
    return r;
}

static int local_stat(struct transport *t, const char *key, struct transport_stat *out)
{
    CLEANUP_FREE char *path = key_path(t->priv, key);
    struct stat st;

    if (!path)
        return -1;
    if (stat(path, &st) < 0)
        return errno_missing(errno) ? fail_missing(t->priv, "stat", key)
                                    : fail_errno(errno, "stat", key);
    if (!S_ISREG(st.st_mode))
        return fail_missing(t->priv, "stat", key);
    out->size = (uint64_t)st.st_size;
    out->mtime = (int64_t)st.st_mtime;
    return 0;
}

static int local_remove(struct transport *t, const char *key)
{
    CLEANUP_FREE char *path = key_path(t->priv, key);
    CLEANUP_FREE char *dir = NULL;

    if (!path)
        return -1;
    if (unlink(path) < 0)
        return errno_missing(errno) ? fail_missing(t->priv, "delete", key)
                                    : fail_errno(errno, "delete", key);
    dir = dir_of(path);
    if (dir && fsync_dir(dir) < 0)
        vk_debug("cannot sync the directory of '%s': %m", key);
    prune_parents(t->priv, key);
    return 0;
}

/* Listing: walk the tree, keep what matches, sort, then call back. */

static int walk(const char *dir, const char *rel, const char *prefix,
                struct transport_entries *out);

static int walk_entry(DIR *d, const char *dir, const char *rel, const char *name,
                      const char *prefix, struct transport_entries *out)
{
    CLEANUP_FREE char *key = NULL;
    CLEANUP_FREE char *sub = NULL;
    struct stat st;

    if (!transport_name_listable(name))
        return 0;
    if (!(key = *rel ? vk_asprintf("%s/%s", rel, name) : vk_strdup(name)))
        return -1;
    if (strlen(key) > TRANSPORT_KEY_MAX)
        return 0;
    if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : fail_errno(errno, "list", key);
    if (S_ISDIR(st.st_mode)) {
        if (!transport_dir_may_match(key, prefix))
            return 0;
        if (!(sub = vk_asprintf("%s/%s", dir, name)))
            return -1;
        return walk(sub, key, prefix, out);
    }
    if (S_ISREG(st.st_mode) && strncmp(key, prefix, strlen(prefix)) == 0)
        return transport_entries_add(out, VK_STEAL(key), (uint64_t)st.st_size,
                                     (int64_t)st.st_mtime);
    return 0;
}

static int walk(const char *dir, const char *rel, const char *prefix, struct transport_entries *out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int r = 0;

    if (!d) {
        /* A directory removed while we walk was simply emptied. */
        if (errno == ENOENT && *rel)
            return 0;
        vk_error_errno(errno, "cannot list directory '%s'", dir);
        return -1;
    }
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno) {
                vk_error_errno(errno, "cannot list directory '%s'", dir);
                r = -1;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if ((r = walk_entry(d, dir, rel, de->d_name, prefix, out)) < 0)
            break;
    }
    closedir(d);
    return r;
}

static int local_list(struct transport *t, const char *prefix, transport_list_cb cb, void *opaque)
{
    struct local *l = t->priv;
    struct transport_entries e = {0};
    int r;

    if (root_check(l) < 0)
        return -1;
    r = walk(l->root, "", prefix, &e);
    if (r == 0)
        r = transport_entries_deliver(&e, cb, opaque);
    transport_entries_clear(&e);
    return r;
}

static int local_check(struct transport *t)
{
    struct local *l = t->priv;
    CLEANUP_FREE char *probe = NULL;
    int fd;

    if (root_check(l) < 0)
        return -1;
    /* Really create a file: modes say nothing to root or on a read-only mount. */
    if (!(probe = vk_asprintf("%s/.check" TMP_MARK "XXXXXX", l->root)))
        return -1;
    fd = mkostemp(probe, O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOSPC || errno == EDQUOT)
            vk_error_errno(errno, "target directory '%s' is full", l->root);
        else
            vk_error_errno(errno, "target directory '%s' is not writable", l->root);
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

const struct transport_ops transport_file = {
    .scheme = "file",
    .open = local_open,
    .close = local_close,
    .check = local_check,
    .put_begin = local_put_begin,
    .put_write = local_put_write,
    .put_commit = local_put_commit,
    .put_abort = local_put_abort,
    .get_range = local_get_range,
    .stat = local_stat,
    .list = local_list,
    .remove = local_remove,
};
