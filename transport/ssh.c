/* virtkeep - the ssh:// backend: a directory on an SFTP server (libssh2).
 *
 * ssh://[USER@]HOST[:PORT]/PATH.  The connection, the strict host key check
 * and authentication live in ssh-conn.c; this file maps the transport
 * operations onto SFTP.
 *
 * A put writes ".NAME.vk-tmp-XXXXXX" next to the object, then on commit:
 * fsync@openssh.com (when the server has it), close, rename over the final
 * name.  SFTP v3 servers (OpenSSH) refuse to rename over an existing file, so
 * an overwrite moves the old object to a temp name first, renames the new one
 * into place, then removes the old one (putting it back if that rename
 * fails).  A reader may then miss the key for an instant, but never sees a
 * partial object; a temp file is never listed (no valid key contains
 * ".vk-tmp-").
 *
 * SFTP v3 has no status for a full or read-only file system (OpenSSH answers
 * "Failure"), so a generic failure is explained with statvfs@openssh.com.
 *
 * Idempotent operations (stat, get_range, list, delete, check) that find the
 * connection dead reconnect with exponential backoff and try again.  A put
 * in flight on a dead connection resumes: it reconnects, reopens its temp
 * file and sends again what the server had not acknowledged (still in its
 * buffer), up to SSH_ATTEMPTS times in a row; when it gives up, its temp
 * file is removed on the next connect.  A stalled link shows as the I/O
 * timeout (ssh-int.h) and counts as a lost connection.
 *
 * Throughput: puts keep up to PUT_INFLIGHT bytes of SFTP writes in flight
 * (libssh2 pipelines what it is given); reads keep the object's handle open
 * from one range to the next and read ahead into a buffer of their own so
 * that libssh2 keeps its read requests deep (see "Reads").  libssh2 1.10
 * encrypts and decrypts one 16-byte block per OpenSSL call: that, not the
 * network, bounds the throughput on a fast link (see tests/bench/ssh-bench.sh).
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/ssh-int.h"

#define NOT_STATUS ULONG_MAX
#define FULL_BYTES (1024 * 1024) /* less free space than this after a failure: full */

/* A put: bytes go through BUF, PUT_BUF_SIZE long.  [START, END) have been
 * handed to libssh2 but not yet acknowledged by the server (libssh2 wants
 * them passed again until it reports them written); ACKED bytes before them
 * are in the temp file.  Keeping up to PUT_INFLIGHT bytes unacknowledged
 * keeps the pipe full; they are also what a resumed put sends again. */
#ifndef PUT_INFLIGHT
#define PUT_INFLIGHT (1u * 1024 * 1024)
#endif
#define PUT_BUF_SIZE (4 * PUT_INFLIGHT)

struct ssh_put {
    LIBSSH2_SFTP_HANDLE *h; /* NULL once closed or lost with its session */
    unsigned int generation;
    unsigned int failures; /* connection losses in a row */
    bool orphaned;         /* tmp is in the orphan list, or was removed */
    char *key;
    char *tmp;
    char *final;
    char *buf;
    size_t start, end;
    uint64_t acked;
};

/* ------------------------------------------------------------------ */
/* Paths                                                               */

static char *path_of(const struct ssh *s, const char *key)
{
    if (!*s->root)
        return vk_strdup(key);
    return vk_asprintf("%s/%s", strcmp(s->root, "/") == 0 ? "" : s->root, key);
}

static const char *root_path(const struct ssh *s)
{
    return *s->root ? s->root : ".";
}

/* A fresh hidden temp name next to FINAL: ".BASE.vk-tmp-XXXXXX". */
static char *tmp_name_for(const char *final)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const char *slash = strrchr(final, '/');
    const char *base = slash ? slash + 1 : final;
    int dirlen = slash ? (int)(slash - final + 1) : 0;
    unsigned char rnd[6];
    char suffix[7];

    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        vk_error_errno(errno, "cannot get random bytes for a temp name");
        return NULL;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        suffix[i] = chars[rnd[i] % (sizeof chars - 1)];
    suffix[6] = '\0';
    return vk_asprintf("%.*s.%.200s" SSH_TMP_MARK "%s", dirlen, final, base, suffix);
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

/* The SFTP status of the last failure, or NOT_STATUS when the failure was
 * not a status from the server (the connection, most likely). */
static unsigned long sftp_status(struct ssh *s)
{
    if (!s->session || libssh2_session_last_errno(s->session) != LIBSSH2_ERROR_SFTP_PROTOCOL)
        return NOT_STATUS;
    return libssh2_sftp_last_error(s->sftp);
}

static int fail_lost(struct ssh *s, const char *op, const char *key)
{
    char why[96];

    vk_error(VK_ERR_NETWORK, "cannot %s '%s': the connection to %s was lost (%s)", op, key,
             s->hostport, ssh_lost_reason(s, why, sizeof why));
    s->broken = true;
    return -1;
}

/* Does the root exist as a directory?  Records why not. */
static int root_check(struct ssh *s)
{
    LIBSSH2_SFTP_ATTRIBUTES a;
    const char *r = root_path(s);

    if (libssh2_sftp_stat_ex(s->sftp, r, (unsigned int)strlen(r), LIBSSH2_SFTP_STAT, &a) != 0) {
        unsigned long st = sftp_status(s);
        if (st == NOT_STATUS)
            return fail_lost(s, "check", r);
        if (st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH)
            vk_error(VK_ERR_NOT_FOUND, "target directory '%s' does not exist on %s", r,
                     s->hostport);
        else if (st == LIBSSH2_FX_PERMISSION_DENIED)
            vk_error(VK_ERR_PERMISSION, "cannot access target directory '%s' on %s", r,
                     s->hostport);
        else
            vk_error(VK_ERR_IO, "cannot access target directory '%s' on %s (SFTP status %lu)", r,
                     s->hostport, st);
        return -1;
    }
    if ((a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && !LIBSSH2_SFTP_S_ISDIR(a.permissions)) {
        vk_error(VK_ERR_INVALID, "target directory '%s' on %s is not a directory", r, s->hostport);
        return -1;
    }
    return 0;
}

/* KEY is not there: say so, unless the whole target directory is missing. */
static int fail_missing(struct ssh *s, const char *op, const char *key)
{
    if (root_check(s) < 0)
        return -1;
    vk_error(VK_ERR_NOT_FOUND, "cannot %s '%s': no such object", op, key);
    return -1;
}

/* A bare "Failure": tell a read-only or full file system from the rest. */
static int fail_failure(struct ssh *s, const char *op, const char *key)
{
    LIBSSH2_SFTP_STATVFS st;
    const char *r = root_path(s);

    if (libssh2_sftp_statvfs(s->sftp, r, strlen(r), &st) == 0) {
        if (st.f_flag & LIBSSH2_SFTP_ST_RDONLY) {
            vk_error(VK_ERR_PERMISSION,
                     "cannot %s '%s': the target's file system on %s is "
                     "read-only",
                     op, key, s->hostport);
            return -1;
        }
        if (st.f_bavail * st.f_frsize < FULL_BYTES) {
            vk_error(VK_ERR_NO_SPACE, "cannot %s '%s': the target is full (%s:%s)", op, key,
                     s->hostport, r);
            return -1;
        }
    } else if (sftp_status(s) == NOT_STATUS) {
        return fail_lost(s, op, key);
    }
    vk_error(VK_ERR_IO, "cannot %s '%s': the server %s reported a failure", op, key, s->hostport);
    return -1;
}

static int fail_status(struct ssh *s, unsigned long st, const char *op, const char *key)
{
    switch (st) {
    case NOT_STATUS:
        return fail_lost(s, op, key);
    case LIBSSH2_FX_NO_SUCH_FILE:
    case LIBSSH2_FX_NO_SUCH_PATH:
        return fail_missing(s, op, key);
    case LIBSSH2_FX_PERMISSION_DENIED:
        vk_error(VK_ERR_PERMISSION, "cannot %s '%s': permission denied by %s", op, key,
                 s->hostport);
        return -1;
    case LIBSSH2_FX_WRITE_PROTECT:
        vk_error(VK_ERR_PERMISSION, "cannot %s '%s': the target on %s is read-only", op, key,
                 s->hostport);
        return -1;
    case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
    case LIBSSH2_FX_QUOTA_EXCEEDED:
        vk_error(VK_ERR_NO_SPACE, "cannot %s '%s': the target is full (%s on %s)", op, key,
                 st == LIBSSH2_FX_QUOTA_EXCEEDED ? "quota exceeded" : "no space left", s->hostport);
        return -1;
    case LIBSSH2_FX_FAILURE:
        return fail_failure(s, op, key);
    default:
        vk_error(VK_ERR_IO, "cannot %s '%s': the server %s answered SFTP status %lu", op, key,
                 s->hostport, st);
        return -1;
    }
}

static int sftp_fail(struct ssh *s, const char *op, const char *key)
{
    return fail_status(s, sftp_status(s), op, key);
}

/* Is PATH there, and is it a regular file? */
static bool is_regular(struct ssh *s, const char *path, bool *exists)
{
    LIBSSH2_SFTP_ATTRIBUTES a;

    *exists = libssh2_sftp_stat_ex(s->sftp, path, (unsigned int)strlen(path), LIBSSH2_SFTP_LSTAT,
                                   &a) == 0;
    return *exists && (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
           LIBSSH2_SFTP_S_ISREG(a.permissions);
}

/* A failure on PATH that may be a directory standing where an object would
 * be: that is "no such object". */
static int fail_object(struct ssh *s, const char *op, const char *key, const char *path)
{
    unsigned long st = sftp_status(s);
    bool exists, regular;

    if (st != LIBSSH2_FX_FAILURE)
        return fail_status(s, st, op, key);
    regular = is_regular(s, path, &exists);
    if (!exists)
        return sftp_status(s) == NOT_STATUS ? fail_lost(s, op, key) : fail_missing(s, op, key);
    return regular ? fail_failure(s, op, key) : fail_missing(s, op, key);
}

/* Keep the current error across cleanup that may record others. */
struct saved_error {
    enum vk_error_code code;
    char *msg;
};

static void error_save(struct saved_error *e)
{
    e->code = vk_error_code();
    e->msg = vk_error_message() ? strdup(vk_error_message()) : NULL;
}

static void error_restore(struct saved_error *e)
{
    if (e->code != VK_ERR_NONE)
        vk_error(e->code, "%s", e->msg ? e->msg : "unknown error");
    else
        vk_error_clear();
    free(e->msg);
}

/* ------------------------------------------------------------------ */
/* The kept read handle                                                */

/* Forget the kept read handle; close it when its session is alive. */
static void reader_drop(struct ssh *s)
{
    if (s->rd.h && s->rd.generation == s->generation && !s->broken &&
        libssh2_sftp_close_handle(s->rd.h) != 0 && sftp_status(s) == NOT_STATUS)
        s->broken = true;
    s->rd.h = NULL;
    free(s->rd.key);
    s->rd.key = NULL;
    s->rd.pos = 0;
    s->rd.off = s->rd.len = 0;
    s->rd.deep = false;
}

/* ------------------------------------------------------------------ */
/* Retries                                                             */

/* Run OP on a live connection; when the connection turns out dead,
 * reconnect with backoff and run it again (it must be idempotent). */
static int retry(struct ssh *s, const char *op, const char *key,
                 int (*fn)(struct ssh *, unsigned int attempt, void *), void *arg)
{
    int r = -1;

    for (unsigned int attempt = 0; attempt < SSH_ATTEMPTS; attempt++) {
        if (attempt > 0) {
            vk_debug("%s: %s '%s' again after a lost connection (attempt %u)", s->hostport, op, key,
                     attempt + 1);
            ssh_backoff(attempt);
        }
        if (ssh_ensure(s) < 0) {
            if (vk_error_code() != VK_ERR_NETWORK)
                return -1; /* credentials or host key: trying again changes nothing */
            vk_error_prefix("cannot %s '%s'", op, key);
            continue;
        }
        r = fn(s, attempt, arg);
        if (r >= 0 || !s->broken)
            return r;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Open, close, check                                                  */

static int ssh_open(struct transport *t, const struct transport_url *url,
                    const struct transport_options *opts)
{
    struct ssh *s = vk_calloc(1, sizeof *s);

    if (!s)
        return -1;
    pthread_mutex_init(&s->lock, NULL);
    if (ssh_conf_init(s, url, opts) < 0 || ssh_connect(s) < 0) {
        ssh_conf_free(s);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return -1;
    }
    t->priv = s;
    return 0;
}

static void ssh_close(struct transport *t)
{
    struct ssh *s = t->priv;

    if (!s)
        return;
    reader_drop(s);
    ssh_disconnect(s);
    ssh_conf_free(s);
    pthread_mutex_destroy(&s->lock);
    free(s);
    t->priv = NULL;
}

static int op_check(struct ssh *s, unsigned int attempt, void *arg)
{
    CLEANUP_FREE char *base = path_of(s, ".check");
    CLEANUP_FREE char *probe = NULL;
    LIBSSH2_SFTP_HANDLE *h;

    (void)attempt;
    (void)arg;
    if (!base || root_check(s) < 0)
        return -1;
    /* Really create a file: modes say nothing on a read-only mount. */
    if (!(probe = tmp_name_for(base)))
        return -1;
    h = libssh2_sftp_open_ex(s->sftp, probe, (unsigned int)strlen(probe),
                             LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, 0600,
                             LIBSSH2_SFTP_OPENFILE);
    if (!h)
        return sftp_fail(s, "write a probe file in", root_path(s));
    libssh2_sftp_close_handle(h);
    libssh2_sftp_unlink_ex(s->sftp, probe, (unsigned int)strlen(probe));
    return 0;
}

static int ssh_check(struct transport *t)
{
    struct ssh *s = t->priv;
    int r;

    pthread_mutex_lock(&s->lock);
    r = retry(s, "check", root_path(s), op_check, NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ------------------------------------------------------------------ */
/* Directories                                                         */

/* Create the directories of KEY under the root, never the root itself. */
static int make_parents(struct ssh *s, const char *key)
{
    CLEANUP_FREE char *path = path_of(s, key);
    size_t rootlen;

    if (!path)
        return -1;
    rootlen = strlen(path) - strlen(key);
    for (char *c = path + rootlen; (c = strchr(c, '/')) != NULL; c++) {
        bool exists;
        unsigned long st;
        *c = '\0';
        if (libssh2_sftp_mkdir_ex(s->sftp, path, (unsigned int)strlen(path), 0750) != 0) {
            st = sftp_status(s);
            if (st == NOT_STATUS)
                return fail_lost(s, "put", key);
            if (st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH)
                return root_check(s); /* else a concurrent delete pruned it: the caller retries */
            is_regular(s, path, &exists);
            if (!exists)
                return fail_status(s, st, "put", key);
        }
        *c = '/';
    }
    return 0;
}

/* Remove the now-empty directories of KEY, deepest first, up to the root. */
static void prune_parents(struct ssh *s, const char *key)
{
    CLEANUP_FREE char *path = path_of(s, key);
    size_t rootlen;
    char *c;

    if (!path)
        return;
    rootlen = strlen(path) - strlen(key);
    while ((c = strrchr(path + rootlen, '/')) != NULL) {
        *c = '\0';
        if (libssh2_sftp_rmdir_ex(s->sftp, path, (unsigned int)strlen(path)) != 0)
            return;
    }
}

/* ------------------------------------------------------------------ */
/* Puts                                                                */

static void put_free(struct ssh_put *p)
{
    free(p->key);
    free(p->tmp);
    free(p->final);
    free(p->buf);
    free(p);
}

static bool put_stale(const struct ssh *s, const struct ssh_put *p)
{
    return !p->h || p->generation != s->generation || s->broken;
}

static void put_orphan(struct ssh *s, struct ssh_put *p)
{
    p->h = NULL; /* its session is gone with the connection */
    if (!p->orphaned)
        ssh_orphan_add(s, p->tmp);
    p->orphaned = true;
}

/* The put gives up.  Its temp file goes now when the connection still
 * works (the temp file itself was the trouble: gone, or shorter than
 * acknowledged), else on the next connect: the writer's abort, or a failed
 * commit, tries one at once; a process that ends first leaves it to
 * transport_purge_temps. */
static int put_give_up(struct ssh *s, struct ssh_put *p)
{
    vk_error_prefix("cannot put '%s': giving up after %u attempts, nothing was stored under "
                    "that key",
                    p->key, p->failures);
    if (s->sftp && !s->broken && !p->orphaned) {
        struct saved_error e;
        error_save(&e);
        if (p->h && p->generation == s->generation)
            libssh2_sftp_close_handle(p->h);
        p->h = NULL;
        if (libssh2_sftp_unlink_ex(s->sftp, p->tmp, (unsigned int)strlen(p->tmp)) == 0 ||
            sftp_status(s) != NOT_STATUS) {
            vk_debug("%s: removed the temp file '%s' of the put that gave up", s->hostport, p->tmp);
            p->orphaned = true; /* nothing left to remove */
            error_restore(&e);
            return -1;
        }
        error_restore(&e);
    }
    put_orphan(s, p);
    return -1;
}

static int op_put_open(struct ssh *s, unsigned int attempt, void *arg)
{
    struct ssh_put *p = arg;

    (void)attempt;
    for (int tries = 0; tries < 5; tries++) {
        unsigned long st;
        free(p->tmp);
        if (!(p->tmp = tmp_name_for(p->final)))
            return -1;
        p->h = libssh2_sftp_open_ex(s->sftp, p->tmp, (unsigned int)strlen(p->tmp),
                                    LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, 0640,
                                    LIBSSH2_SFTP_OPENFILE);
        if (p->h) {
            p->generation = s->generation;
            return 0;
        }
        st = sftp_status(s);
        if (st == NOT_STATUS) {
            ssh_orphan_add(s, p->tmp); /* the server may have made it */
            return fail_lost(s, "put", p->key);
        }
        if (st != LIBSSH2_FX_NO_SUCH_FILE && st != LIBSSH2_FX_NO_SUCH_PATH)
            return fail_status(s, st, "put", p->key);
        if (make_parents(s, p->key) < 0)
            return -1;
    }
    vk_error(VK_ERR_IO, "cannot put '%s': its directory on %s keeps disappearing", p->key,
             s->hostport);
    return -1;
}

static void *ssh_put_begin(struct transport *t, const char *key, unsigned int flags)
{
    struct ssh *s = t->priv;
    struct ssh_put *p = vk_calloc(1, sizeof *p);
    int r = -1;

    (void)flags;
    if (!p)
        return NULL;
    if ((p->key = vk_strdup(key)) && (p->final = path_of(s, key)) &&
        (p->buf = vk_malloc(PUT_BUF_SIZE))) {
        pthread_mutex_lock(&s->lock);
        r = retry(s, "put", key, op_put_open, p);
        pthread_mutex_unlock(&s->lock);
    }
    if (r < 0) {
        put_free(p);
        return NULL;
    }
    return p;
}

/* Open the temp file again on a new session, where the acknowledged bytes
 * end.  Fails without marking the session broken when the put cannot go
 * on (the temp file is gone or shorter than what the server acknowledged). */
static int put_reopen(struct ssh *s, struct ssh_put *p)
{
    LIBSSH2_SFTP_ATTRIBUTES a;

    p->h = libssh2_sftp_open_ex(s->sftp, p->tmp, (unsigned int)strlen(p->tmp), LIBSSH2_FXF_WRITE, 0,
                                LIBSSH2_SFTP_OPENFILE);
    if (!p->h) {
        if (sftp_status(s) == NOT_STATUS)
            return fail_lost(s, "put", p->key);
        vk_error(VK_ERR_IO, "cannot resume the put of '%s' on %s: its temp file '%s' is gone",
                 p->key, s->hostport, p->tmp);
        return -1;
    }
    p->generation = s->generation;
    if (libssh2_sftp_fstat(p->h, &a) != 0)
        return sftp_fail(s, "put", p->key);
    if (!(a.flags & LIBSSH2_SFTP_ATTR_SIZE) || a.filesize < p->acked) {
        vk_error(VK_ERR_IO,
                 "cannot resume the put of '%s' on %s: its temp file holds %llu bytes, not the "
                 "%llu the server acknowledged",
                 p->key, s->hostport, (unsigned long long)a.filesize, (unsigned long long)p->acked);
        return -1;
    }
    libssh2_sftp_seek64(p->h, p->acked);
    vk_debug("%s: the put of '%s' resumes at %llu", s->hostport, p->key,
             (unsigned long long)p->acked);
    return 0;
}

/* A session on which the put's handle is usable: after a lost connection,
 * reconnect with backoff and reopen the temp file, up to SSH_ATTEMPTS
 * times in a row. */
static int put_live(struct ssh *s, struct ssh_put *p)
{
    while (put_stale(s, p)) {
        p->h = NULL; /* a stale handle went with its session */
        if (p->failures >= SSH_ATTEMPTS)
            return put_give_up(s, p);
        if (p->failures > 0)
            ssh_backoff(p->failures);
        if (ssh_ensure(s) < 0) {
            p->failures++;
            if (vk_error_code() != VK_ERR_NETWORK)
                return put_give_up(s, p);
            continue;
        }
        if (put_reopen(s, p) == 0)
            return 0;
        p->failures++;
        if (!s->broken)
            return put_give_up(s, p);
    }
    return 0;
}

/* A libssh2 call on the put failed: a lost connection counts as one
 * failure and returns 1 (go on, put_live resumes); otherwise records why
 * and returns -1. */
static int put_failed(struct ssh *s, struct ssh_put *p)
{
    sftp_fail(s, "put", p->key);
    if (!s->broken)
        return -1;
    vk_debug("%s: %s", s->hostport, vk_error_message());
    p->h = NULL;
    p->failures++;
    return 1;
}

/* Hand the buffer to libssh2 until at most KEEP bytes are unacknowledged. */
static int put_send(struct ssh *s, struct ssh_put *p, size_t keep)
{
    while (p->end - p->start > keep) {
        ssize_t n;
        if (put_live(s, p) < 0)
            return -1;
        n = libssh2_sftp_write(p->h, p->buf + p->start, p->end - p->start);
        if (n <= 0) {
            if (put_failed(s, p) < 0)
                return -1;
            continue;
        }
        p->failures = 0;
        p->start += (size_t)n;
        p->acked += (uint64_t)n;
        if (p->start == p->end)
            p->start = p->end = 0;
    }
    return 0;
}

static int put_write_locked(struct ssh *s, struct ssh_put *p, const char *buf, size_t len)
{
    while (len > 0) {
        size_t n;
        if (p->end == PUT_BUF_SIZE) {
            memmove(p->buf, p->buf + p->start, p->end - p->start);
            p->end -= p->start;
            p->start = 0;
        }
        n = PUT_BUF_SIZE - p->end < len ? PUT_BUF_SIZE - p->end : len;
        memcpy(p->buf + p->end, buf, n);
        p->end += n;
        buf += n;
        len -= n;
        if (put_send(s, p, PUT_INFLIGHT - 1) < 0)
            return -1;
    }
    return 0;
}

static int ssh_put_write(struct transport *t, void *handle, const void *buf, size_t len)
{
    struct ssh *s = t->priv;
    int r;

    pthread_mutex_lock(&s->lock);
    r = put_write_locked(s, handle, buf, len);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int sftp_rename(struct ssh *s, const char *from, const char *to)
{
    return libssh2_sftp_rename_ex(
        s->sftp, from, (unsigned int)strlen(from), to, (unsigned int)strlen(to),
        LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE);
}

/* The server would not rename over the old object: move it aside, move the
 * new one in, drop the old one (or put it back). */
static int rename_swap(struct ssh *s, struct ssh_put *p, unsigned long first)
{
    CLEANUP_FREE char *old = tmp_name_for(p->final);
    unsigned long st;

    if (!old)
        return -1;
    if (sftp_rename(s, p->final, old) != 0) {
        st = sftp_status(s);
        if (st != LIBSSH2_FX_NO_SUCH_FILE && st != LIBSSH2_FX_NO_SUCH_PATH)
            return fail_status(s, st == NOT_STATUS ? st : first, "put", p->key);
        old[0] = '\0'; /* the old object went away meanwhile */
    }
    if (sftp_rename(s, p->tmp, p->final) != 0) {
        st = sftp_status(s);
        if (st != NOT_STATUS && *old)
            sftp_rename(s, old, p->final);
        return fail_status(s, st, "put", p->key);
    }
    if (*old && libssh2_sftp_unlink_ex(s->sftp, old, (unsigned int)strlen(old)) != 0)
        vk_debug("cannot remove '%s', the replaced version of '%s'", old, p->key);
    return 0;
}

static int rename_into_place(struct ssh *s, struct ssh_put *p)
{
    unsigned long st;

    if (sftp_rename(s, p->tmp, p->final) == 0)
        return 0;
    st = sftp_status(s);
    if (st != LIBSSH2_FX_FAILURE && st != LIBSSH2_FX_FILE_ALREADY_EXISTS)
        return fail_status(s, st, "put", p->key);
    return rename_swap(s, p, st);
}

/* Every byte acknowledged, synced (fsync@openssh.com when the server has
 * it) and the temp file closed; a lost connection resumes. */
static int put_finish_data(struct ssh *s, struct ssh_put *p)
{
    for (;;) {
        int rc;
        if (put_send(s, p, 0) < 0 || put_live(s, p) < 0)
            return -1;
        if (!s->no_fsync && libssh2_sftp_fsync(p->h) != 0) {
            if (sftp_status(s) == LIBSSH2_FX_OP_UNSUPPORTED) {
                vk_debug("%s has no fsync@openssh.com: puts are not synced", s->hostport);
                s->no_fsync = true;
            } else if (put_failed(s, p) < 0) {
                return -1;
            }
            continue;
        }
        rc = libssh2_sftp_close_handle(p->h);
        p->h = NULL; /* freed, unless the connection died (then it goes with it) */
        if (rc == 0)
            return 0;
        if (put_failed(s, p) < 0) {
            libssh2_sftp_unlink_ex(s->sftp, p->tmp, (unsigned int)strlen(p->tmp));
            return -1;
        }
    }
}

/* The commit failed before the rename: drop the temp file now, or on the
 * next connect when the connection is gone. */
static void put_discard(struct ssh *s, struct ssh_put *p)
{
    if (put_stale(s, p)) {
        put_orphan(s, p);
        return;
    }
    libssh2_sftp_close_handle(p->h);
    p->h = NULL;
    libssh2_sftp_unlink_ex(s->sftp, p->tmp, (unsigned int)strlen(p->tmp));
    prune_parents(s, p->key);
}

static int put_commit_locked(struct ssh *s, struct ssh_put *p)
{
    if (put_finish_data(s, p) < 0) {
        if (p->h || s->broken)
            put_discard(s, p);
        return -1;
    }
    if (s->rd.key && strcmp(s->rd.key, p->key) == 0)
        reader_drop(s); /* it reads the version being replaced */
    if (rename_into_place(s, p) < 0) {
        if (s->broken) {
            put_orphan(s, p);
        } else {
            libssh2_sftp_unlink_ex(s->sftp, p->tmp, (unsigned int)strlen(p->tmp));
            prune_parents(s, p->key);
        }
        return -1;
    }
    return 0;
}

static int ssh_put_commit(struct transport *t, void *handle)
{
    struct ssh *s = t->priv;
    int r;

    pthread_mutex_lock(&s->lock);
    r = put_commit_locked(s, handle);
    if (r < 0 && s->broken && s->n_orphans > 0) {
        /* As in abort: one quick reconnect removes the temp file now if
         * the server is back. */
        struct saved_error e;
        error_save(&e);
        ssh_ensure(s);
        error_restore(&e);
    }
    pthread_mutex_unlock(&s->lock);
    put_free(handle);
    return r;
}

static void ssh_put_abort(struct transport *t, void *handle)
{
    struct ssh *s = t->priv;
    struct ssh_put *p = handle;
    struct saved_error e;

    error_save(&e);
    pthread_mutex_lock(&s->lock);
    if (!put_stale(s, p)) {
        libssh2_sftp_close_handle(p->h);
        libssh2_sftp_unlink_ex(s->sftp, p->tmp, (unsigned int)strlen(p->tmp));
        prune_parents(s, p->key);
    } else {
        /* One quick reconnect removes the temp file now if the server is back. */
        put_orphan(s, p);
        ssh_ensure(s);
    }
    pthread_mutex_unlock(&s->lock);
    error_restore(&e);
    put_free(p);
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */

/* The handle of the object read last stays open (struct ssh_reader), so
 * that reading an archive range by range costs no open and close per
 * range.  libssh2 keeps about four times the size it is asked for in read
 * requests ahead of what it returns, and only while the caller asks for
 * that much: reading a range in pieces that shrink towards its end drains
 * the pipe at the end of every range.  So a read at a new place asks for
 * about its range only (a quarter of what is left per call), while reads
 * that go on from where the last one stopped (or skip less than
 * READ_SKIP_MAX ahead, as an archive reader does over member headers)
 * always ask for READ_AHEAD bytes: into the caller's buffer when that much
 * is wanted, else into the reader's own buffer, which later reads are
 * served from.  The handle is dropped when another object is read, the
 * object is replaced or deleted through this target, it reaches the end,
 * or it was left unused for READER_IDLE_NS. */
#ifndef READ_AHEAD
#define READ_AHEAD (1024u * 1024)
#endif
#define READ_CHUNK (1024u * 1024)
#define READ_MIN (32u * 1024)
#define READ_SKIP_MAX (4u * READ_AHEAD) /* what libssh2 has asked for already */
#define READER_IDLE_NS (2ULL * 1000000000)

struct get_arg {
    const char *key;
    uint64_t offset;
    char *buf;
    size_t len;
    size_t got;
};

static size_t read_chunk(size_t left)
{
    size_t c = (left + 3) / 4;

    if (c < READ_MIN)
        c = READ_MIN;
    if (c > READ_CHUNK)
        c = READ_CHUNK;
    return c < left ? c : left;
}

/* A read on the kept handle failed: record why, drop the handle. */
static int read_failed(struct ssh *s, const char *key)
{
    CLEANUP_FREE char *path = path_of(s, key);
    int r = path ? fail_object(s, "read", key, path) : -1;

    reader_drop(s);
    return r;
}

/* Read into the reader's buffer (it is empty): bytes [pos, pos + n). */
static ssize_t reader_fill(struct ssh *s)
{
    ssize_t n = libssh2_sftp_read(s->rd.h, s->rd.buf, READ_AHEAD);

    s->rd.off = 0;
    s->rd.len = n > 0 ? (size_t)n : 0;
    if (n > 0)
        s->rd.pos += (uint64_t)n;
    return n;
}

/* Read through (and drop) what lies between the handle's place and
 * OFFSET, a little ahead: libssh2 has asked for it already, and a seek
 * would throw those requests away.  0 at the end of the object. */
static ssize_t reader_skip_to(struct ssh *s, uint64_t offset)
{
    while (s->rd.pos <= offset) {
        ssize_t n = reader_fill(s);
        if (n <= 0)
            return n;
    }
    s->rd.off = s->rd.len - (size_t)(s->rd.pos - offset);
    return 1;
}

/* Open KEY's handle when it is not the kept one. */
static int reader_open(struct ssh *s, const char *key)
{
    CLEANUP_FREE char *path = NULL;

    if (s->rd.h && (s->rd.generation != s->generation || strcmp(s->rd.key, key) != 0 ||
                    vk_now_ns() - s->rd.used_ns > READER_IDLE_NS))
        reader_drop(s);
    if (s->broken)
        return fail_lost(s, "read", key);
    if (s->rd.h)
        return 0;
    reader_drop(s); /* the key of a handle that went with its session */
    if (!s->rd.buf && !(s->rd.buf = vk_malloc(READ_AHEAD)))
        return -1;
    if (!(path = path_of(s, key)) || !(s->rd.key = vk_strdup(key)))
        return -1;
    s->rd.h = libssh2_sftp_open_ex(s->sftp, path, (unsigned int)strlen(path), LIBSSH2_FXF_READ, 0,
                                   LIBSSH2_SFTP_OPENFILE);
    if (!s->rd.h) {
        reader_drop(s);
        return sftp_fail(s, "read", key);
    }
    s->rd.generation = s->generation;
    return 0;
}

/* May a read at OFFSET, past the handle's place, read through the gap? */
static bool reader_may_skip(const struct ssh *s, uint64_t offset)
{
    uint64_t gap = offset - s->rd.pos;

    return s->rd.pos > 0 && (gap <= READ_MIN || (s->rd.deep && gap <= READ_SKIP_MAX));
}

/* The kept handle on KEY, placed so that the next byte comes from the
 * buffer or the handle at OFFSET.  Returns 1 when the read goes on from the
 * last one (read deeply), 0 when it starts at a new place, -1 on failure. */
static int reader_at(struct ssh *s, const char *key, uint64_t offset)
{
    uint64_t buffered;

    if (reader_open(s, key) < 0)
        return -1;
    buffered = s->rd.pos - (s->rd.len - s->rd.off);
    if (offset >= buffered && offset < s->rd.pos) {
        s->rd.off += (size_t)(offset - buffered);
        return 1;
    }
    s->rd.off = s->rd.len = 0;
    if (offset == s->rd.pos)
        return s->rd.pos > 0;
    if (offset > s->rd.pos && reader_may_skip(s, offset))
        /* At the end of the object, the read finds the end again. */
        return reader_skip_to(s, offset) < 0 ? read_failed(s, key) : 1;
    libssh2_sftp_seek64(s->rd.h, offset); /* drops what libssh2 read ahead */
    s->rd.pos = offset;
    return 0;
}

/* Fill A's buffer from the kept handle; DEEP as reader_at returned.
 * Returns the last read's result: 0 at the end, < 0 on failure. */
static ssize_t get_fill(struct ssh *s, struct get_arg *a, bool deep)
{
    ssize_t n = 1;

    while (a->got < a->len && n > 0) {
        size_t left = a->len - a->got;
        if (s->rd.off < s->rd.len) {
            size_t c = s->rd.len - s->rd.off < left ? s->rd.len - s->rd.off : left;
            memcpy(a->buf + a->got, s->rd.buf + s->rd.off, c);
            s->rd.off += c;
            a->got += c;
        } else if (deep && left < READ_AHEAD) {
            n = reader_fill(s);
        } else {
            n = libssh2_sftp_read(s->rd.h, a->buf + a->got, deep ? READ_AHEAD : read_chunk(left));
            if (n > 0) {
                a->got += (size_t)n;
                s->rd.pos += (uint64_t)n;
            }
        }
    }
    return n;
}

static int op_get(struct ssh *s, unsigned int attempt, void *arg)
{
    struct get_arg *a = arg;
    int deep;

    (void)attempt;
    a->got = 0;
    if ((deep = reader_at(s, a->key, a->offset)) < 0)
        return -1;
    s->rd.deep = deep;
    if (get_fill(s, a, deep) < 0)
        return read_failed(s, a->key);
    s->rd.used_ns = vk_now_ns();
    if (a->got < a->len)
        reader_drop(s); /* the end: nothing to read ahead */
    return 0;
}

static ssize_t ssh_get_range(struct transport *t, const char *key, uint64_t offset, void *buf,
                             size_t len)
{
    struct ssh *s = t->priv;
    struct get_arg a = {.key = key, .offset = offset, .buf = buf, .len = len};
    int r;

    pthread_mutex_lock(&s->lock);
    r = retry(s, "read", key, op_get, &a);
    pthread_mutex_unlock(&s->lock);
    return r < 0 ? -1 : (ssize_t)a.got;
}

struct stat_arg {
    const char *key;
    struct transport_stat *st;
};

static int op_stat(struct ssh *s, unsigned int attempt, void *arg)
{
    struct stat_arg *a = arg;
    CLEANUP_FREE char *path = path_of(s, a->key);
    LIBSSH2_SFTP_ATTRIBUTES at;

    (void)attempt;
    if (!path)
        return -1;
    if (libssh2_sftp_stat_ex(s->sftp, path, (unsigned int)strlen(path), LIBSSH2_SFTP_STAT, &at) !=
        0)
        return sftp_fail(s, "stat", a->key);
    if (!(at.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) || !LIBSSH2_SFTP_S_ISREG(at.permissions))
        return fail_missing(s, "stat", a->key);
    a->st->size = at.flags & LIBSSH2_SFTP_ATTR_SIZE ? at.filesize : 0;
    a->st->mtime = at.flags & LIBSSH2_SFTP_ATTR_ACMODTIME ? (int64_t)at.mtime : 0;
    return 0;
}

static int ssh_stat(struct transport *t, const char *key, struct transport_stat *st)
{
    struct ssh *s = t->priv;
    struct stat_arg a = {.key = key, .st = st};
    int r;

    pthread_mutex_lock(&s->lock);
    r = retry(s, "stat", key, op_stat, &a);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ------------------------------------------------------------------ */
/* Delete                                                              */

static int op_remove(struct ssh *s, unsigned int attempt, void *arg)
{
    const char *key = arg;
    CLEANUP_FREE char *path = path_of(s, key);

    if (!path)
        return -1;
    if (s->rd.key && strcmp(s->rd.key, key) == 0)
        reader_drop(s);
    if (libssh2_sftp_unlink_ex(s->sftp, path, (unsigned int)strlen(path)) != 0) {
        unsigned long st = sftp_status(s);
        /* Gone after a retry: the attempt whose answer was lost removed it. */
        if (attempt > 0 && (st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH))
            return 0;
        return fail_object(s, "delete", key, path);
    }
    prune_parents(s, key);
    return 0;
}

static int ssh_remove(struct transport *t, const char *key)
{
    struct ssh *s = t->priv;
    int r;

    pthread_mutex_lock(&s->lock);
    r = retry(s, "delete", key, op_remove, (void *)key);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ------------------------------------------------------------------ */
/* Listing: walk the directories the prefix can reach, sort, call back. */

struct walk {
    const char *prefix;
    struct transport_entries e;
};

/* One directory entry: a matching object is kept, a directory that may hold
 * matching keys goes on SUBDIRS. */
static int walk_entry(struct walk *w, const char *rel, const char *name,
                      const LIBSSH2_SFTP_ATTRIBUTES *at, char ***subdirs, size_t *nsub)
{
    char *key;

    if (!transport_name_listable(name) || !(at->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS))
        return 0;
    if (!(key = *rel ? vk_asprintf("%s/%s", rel, name) : vk_strdup(name)))
        return -1;
    if (strlen(key) <= TRANSPORT_KEY_MAX && LIBSSH2_SFTP_S_ISDIR(at->permissions) &&
        transport_dir_may_match(key, w->prefix)) {
        char **v = vk_realloc_array(*subdirs, *nsub + 2, sizeof *v);
        if (!v) {
            free(key);
            return -1;
        }
        v[(*nsub)++] = key;
        v[*nsub] = NULL;
        *subdirs = v;
        return 0;
    }
    if (strlen(key) <= TRANSPORT_KEY_MAX && LIBSSH2_SFTP_S_ISREG(at->permissions) &&
        strncmp(key, w->prefix, strlen(w->prefix)) == 0)
        return transport_entries_add(
            &w->e, key, at->flags & LIBSSH2_SFTP_ATTR_SIZE ? at->filesize : 0,
            at->flags & LIBSSH2_SFTP_ATTR_ACMODTIME ? (int64_t)at->mtime : 0);
    free(key);
    return 0;
}

static int walk_dir(struct ssh *s, struct walk *w, const char *rel);

static int walk_read(struct ssh *s, struct walk *w, const char *rel, LIBSSH2_SFTP_HANDLE *h,
                     char ***subdirs, size_t *nsub)
{
    char name[512];
    LIBSSH2_SFTP_ATTRIBUTES at;
    int n;

    while ((n = libssh2_sftp_readdir_ex(h, name, sizeof name - 1, NULL, 0, &at)) > 0) {
        name[n] = '\0';
        if (walk_entry(w, rel, name, &at, subdirs, nsub) < 0)
            return -1;
    }
    if (n < 0)
        return n == LIBSSH2_ERROR_BUFFER_TOO_SMALL ? 0 : sftp_fail(s, "list", w->prefix);
    return 0;
}

static int walk_dir(struct ssh *s, struct walk *w, const char *rel)
{
    CLEANUP_FREE char *dir = *rel ? path_of(s, rel) : vk_strdup(root_path(s));
    CLEANUP_STRV char **subdirs = NULL;
    LIBSSH2_SFTP_HANDLE *h;
    size_t nsub = 0;
    int r;

    if (!dir)
        return -1;
    h = libssh2_sftp_open_ex(s->sftp, dir, (unsigned int)strlen(dir), 0, 0, LIBSSH2_SFTP_OPENDIR);
    if (!h) {
        unsigned long st = sftp_status(s);
        /* A directory that is not there (or went away) holds no keys. */
        if (*rel && (st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH))
            return 0;
        return fail_status(s, st, "list", w->prefix);
    }
    r = walk_read(s, w, rel, h, &subdirs, &nsub);
    if (!s->broken)
        libssh2_sftp_close_handle(h);
    for (size_t i = 0; r == 0 && i < nsub; i++)
        r = walk_dir(s, w, subdirs[i]);
    return r;
}

static int op_list(struct ssh *s, unsigned int attempt, void *arg)
{
    struct walk *w = arg;
    CLEANUP_FREE char *start = NULL;
    const char *slash = strrchr(w->prefix, '/');

    (void)attempt;
    transport_entries_clear(&w->e);
    if (root_check(s) < 0)
        return -1;
    /* Start at the deepest directory the prefix names. */
    if (!(start = vk_strndup(w->prefix, slash ? (size_t)(slash - w->prefix) : 0)))
        return -1;
    return walk_dir(s, w, start);
}

static int ssh_list(struct transport *t, const char *prefix, transport_list_cb cb, void *opaque)
{
    struct ssh *s = t->priv;
    struct walk w = {.prefix = prefix};
    int r;

    pthread_mutex_lock(&s->lock);
    r = retry(s, "list", prefix, op_list, &w);
    pthread_mutex_unlock(&s->lock);
    /* Callbacks run unlocked: they may use the target. */
    if (r == 0)
        r = transport_entries_deliver(&w.e, cb, opaque);
    transport_entries_clear(&w.e);
    return r;
}

/* ------------------------------------------------------------------ */
/* Leftovers of killed puts                                            */

struct purge_arg {
    const char *dir_key;
    unsigned int removed; /* over every attempt */
};

/* The names in the open directory H that carry the temp marker. */
static int purge_names(struct ssh *s, struct purge_arg *a, LIBSSH2_SFTP_HANDLE *h, char ***names)
{
    char name[1024];
    LIBSSH2_SFTP_ATTRIBUTES at;
    size_t n_names = 0;
    int n;

    while ((n = libssh2_sftp_readdir_ex(h, name, sizeof name - 1, NULL, 0, &at)) > 0) {
        char **v;
        name[n] = '\0';
        if (!strstr(name, SSH_TMP_MARK))
            continue;
        if (!(v = vk_realloc_array(*names, n_names + 2, sizeof *v)))
            return -1;
        *names = v;
        if (!(v[n_names] = vk_strdup(name)))
            return -1;
        v[++n_names] = NULL;
    }
    return n < 0 ? sftp_fail(s, "list the temp files in", a->dir_key) : 0;
}

/* Unlink the temp files in DIR (listed first: no unlink while the
 * server walks the directory), then DIR itself when it is empty. */
static int op_purge(struct ssh *s, unsigned int attempt, void *arg)
{
    struct purge_arg *a = arg;
    CLEANUP_FREE char *dir = path_of(s, a->dir_key);
    CLEANUP_STRV char **names = NULL;
    LIBSSH2_SFTP_HANDLE *h;
    int r;

    (void)attempt;
    if (!dir)
        return -1;
    h = libssh2_sftp_open_ex(s->sftp, dir, (unsigned int)strlen(dir), 0, 0, LIBSSH2_SFTP_OPENDIR);
    if (!h) {
        unsigned long st = sftp_status(s);
        if (st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH)
            return 0; /* nothing there, nothing left behind */
        return fail_status(s, st, "list the temp files in", a->dir_key);
    }
    r = purge_names(s, a, h, &names);
    if (!s->broken)
        libssh2_sftp_close_handle(h);
    for (size_t i = 0; r == 0 && names && names[i]; i++) {
        CLEANUP_FREE char *path = vk_asprintf("%s/%s", dir, names[i]);
        unsigned long st;
        if (!path)
            return -1;
        if (libssh2_sftp_unlink_ex(s->sftp, path, (unsigned int)strlen(path)) == 0) {
            vk_debug("%s: removed the leftover '%s'", s->hostport, path);
            a->removed++;
        } else if ((st = sftp_status(s)) != LIBSSH2_FX_NO_SUCH_FILE &&
                   st != LIBSSH2_FX_NO_SUCH_PATH) {
            r = fail_status(s, st, "remove the temp files in", a->dir_key);
        }
    }
    if (r == 0 && libssh2_sftp_rmdir_ex(s->sftp, dir, (unsigned int)strlen(dir)) != 0 &&
        sftp_status(s) == NOT_STATUS)
        return fail_lost(s, "remove the temp files in", a->dir_key);
    return r;
}

static int ssh_purge_temps(struct transport *t, const char *dir_key, unsigned int *removed)
{
    struct ssh *s = t->priv;
    struct purge_arg a = {.dir_key = dir_key};
    int r;

    pthread_mutex_lock(&s->lock);
    r = retry(s, "remove the temp files in", dir_key, op_purge, &a);
    pthread_mutex_unlock(&s->lock);
    *removed = a.removed;
    return r;
}

const struct transport_ops transport_ssh = {
    .scheme = "ssh",
    .open = ssh_open,
    .close = ssh_close,
    .check = ssh_check,
    .put_begin = ssh_put_begin,
    .put_write = ssh_put_write,
    .put_commit = ssh_put_commit,
    .put_abort = ssh_put_abort,
    .get_range = ssh_get_range,
    .stat = ssh_stat,
    .list = ssh_list,
    .remove = ssh_remove,
    .purge_temps = ssh_purge_temps,
};
