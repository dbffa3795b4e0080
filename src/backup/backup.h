/* virtkeep - the backup engine: one backup of one domain to one target.
 *
 *   backup.c         the run: lock, catalog, level, checkpoint, disks,
 *                    manifest, and the cleanup of a failed or interrupted run
 *   backup-level.c   which level, which parent; checkpoints that libvirt lost
 *                    are redefined, broken ones are discarded (fall back to
 *                    a full backup)
 *   backup-disk.c    one disk: NBD extents -> pipeline -> archive -> target
 *   backup-lock.c    the per-domain lock (flock)
 *   backup-opts.c    options of `virtkeep backup` and the result (JSON and
 *                    one-line summary)
 *
 * Errors follow common/error.h.  A run that fails or is interrupted leaves
 * its catalog row failed, no archive visible on the target, no libvirt job,
 * no run directory and no new checkpoint (so the next incremental still
 * works).
 */
#ifndef VIRTKEEP_BACKUP_H
#define VIRTKEEP_BACKUP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "src/format/format.h"
#include "src/conf/conf.h"

struct json_object;

/* Level 1: a backup on 2 cores is bound by compression, and level 3 costs
 * 1.4 to 1.7 times the CPU for 2.4% less output on mixed data (the make
 * bench disk) and 18% less on text; it only finishes first on links slower
 * than about 20 (text) to 60 (mixed) MB/s.  `virtkeep backup --help` shows
 * this value (tests/bench reads it there). */
#define BACKUP_COMPRESS_LEVEL_DEFAULT 1
#define BACKUP_COMPRESS_LEVEL_MAX 19
#define BACKUP_THREADS_MAX 256

/* What the caller asks for. */
struct backup_options {
    char *domain;
    enum catalog_level level; /* requested; CATALOG_LEVEL_AUTO by default */
    char *target;             /* a configured target name or a URL; NULL: the policy's */
    char **disks;             /* --disks, or NULL */
    char **exclude;           /* --exclude, or NULL */
    bool quiesce;
    int compress_level;   /* zstd level, 1..19 */
    unsigned int threads; /* 0: online CPUs */
    bool json;
    /* --fence: the epoch of the domain's lease virtkeepd claimed for this
     * backup (0: none); it commits only while that lease holds. */
    int64_t fence_epoch;

    /* Set by the caller, not by the option parser (cli_backup_options_parse). */
    const char *connect_uri;
    const char *catalog_path;
    const struct config *config;
    const char *lock_dir; /* NULL: backup_lock_dir_default() */
    const volatile sig_atomic_t *cancel;
    /* One line for the user (fallback to full, raw disk taken full). */
    void (*notice)(void *opaque, const char *line);
    /* Progress of disk INDEX (of COUNT) named DISK. */
    void (*progress)(void *opaque, const char *disk, size_t index, size_t count, uint64_t done,
                     uint64_t total);
    void *opaque;
};

void backup_options_clear(struct backup_options *o);

/* The compression level: "1".."19". */
int backup_compress_level_parse(const char *str, int *level);

struct backup_result_disk {
    char *disk;
    char *format;
    uint64_t virtual_size;
    char *key;
    uint64_t archive_size;
    char sha256[ARCHIVE_SHA256_HEX_LEN + 1];
    uint64_t read_bytes, data_bytes, zero_bytes, stored_bytes, chunks;
};

struct backup_result {
    char *id;
    char *domain;
    enum catalog_level level;
    enum catalog_level requested_level;
    char *parent;     /* or NULL */
    char *reason;     /* why the level differs from the request, or NULL */
    char *checkpoint; /* or NULL (copy) */
    char *target;
    int64_t started, finished;
    uint64_t wall_ns;
    uint64_t bytes_read, bytes_stored;
    struct backup_result_disk *disks;
    size_t nr_disks;
    char *manifest_key;
};

void backup_result_clear(struct backup_result *r);
struct backup_result_disk *backup_result_disk_add(struct backup_result *r);
/* The --json object (status "committed"). */
struct json_object *backup_result_to_json(const struct backup_result *r);
/* "backup ID: full of web1, 2 disks, read 1.5 GiB, stored 700 MiB in 12s
 * -> target 'local'" (malloc'd). */
char *backup_result_summary(const struct backup_result *r);

/* Run one backup.  Returns 0 with OUT filled, or -1 with the error
 * recorded (VK_ERR_NOT_FOUND: domain or target, VK_ERR_BUSY: locked,
 * VK_ERR_INTERRUPTED: *cancel was set). */
int backup_run(const struct backup_options *o, struct backup_result *out);

/* ---- the per-domain lock ------------------------------------------ */

struct backup_lock;
/* /run/virtkeep/locks for root, else $XDG_RUNTIME_DIR/virtkeep (or
 * /tmp/virtkeep-UID without it).  Malloc'd. */
char *backup_lock_dir_default(void);
/* Take the lock of DOMAIN in DIR (created 0700 if needed) without
 * waiting.  Held already (by any process, this one included): NULL with
 * VK_ERR_BUSY "another backup of domain 'x' is running (pid N)". */
struct backup_lock *backup_lock_acquire(const char *dir, const char *domain, unsigned int flags);
/* Release and free (NULL is fine). */
void backup_lock_release(struct backup_lock *l);

/* ---- recovery of killed backups ------------------------------------ */

struct catalog;
struct config;
struct transport;
struct virt_domain;

/* Recover the backups of domain DOM that a killed process left behind
 * (kill -9, a crashed host), so that the next backup of the chain is
 * correct.  The caller holds the domain's backup lock (nothing of ours
 * runs on the domain).  Order:
 *   1. catalog_backup_fail_orphans(): every running row whose process is
 *      gone becomes failed, its error starting with CATALOG_ORPHAN_ERROR;
 *   2. for each failed backup of DOM not yet recovered (killed, or failed
 *      while its own cleanup could not reach the target):
 *      a. abort the libvirt backup job of the domain, if one is active;
 *      b. killed ones: delete the checkpoint it created unless a committed
 *         backup uses it (running domain: libvirt merges its bitmap into the
 *         parent's, so the next incremental still covers the period; shut
 *         off: the bitmaps are removed from the images);
 *      c. on every target it may have written to (T, the targets of its
 *         recorded locations, the targets of the domain's policy in CFG):
 *         delete the objects under DOMAIN/ID/ (the manifest first), then
 *         the temp files and unfinished uploads of puts in flight
 *         (transport_purge_temps);
 *      d. drop its locations from the catalog and append "; recovered" to
 *         its error, so that it is done once;
 *   3. on T and the policy's targets: abort the unfinished uploads under
 *      DOMAIN/ (transport_list_temps: s3://) except those of committed
 *      backups (a copy may be writing them);
 *   4. backup_recover_rundirs(): the run directories of dead processes.
 * T and CFG may be NULL.  A target that cannot be opened is skipped with a
 * warning (the next recovery tries again only if the step before it
 * failed).  *RECOVERED (may be NULL) gets how many backups were recovered.
 * Called by backup_run() after taking the lock, and by virtkeepd at start. */
int backup_recover(struct catalog *cat, struct virt_domain *dom, const struct config *cfg,
                   struct transport *t, unsigned int flags, unsigned int *recovered);

/* Remove the run directories (pull sockets, scratch files) that killed
 * processes left in the default place (virt_rundir_clean_stale), whatever
 * their domain; one that cannot be removed is a warning.  *REMOVED (may be
 * NULL) gets the count.  Part of backup_recover(); virtkeepd calls it at
 * start, after the per-domain recovery. */
int backup_recover_rundirs(unsigned int *removed);

#endif
