/* virtkeep - copy backups between targets.
 *
 * copy_run replicates the archives of a backup and then its manifest (last:
 * a backup without its manifest on a target is incomplete there) from a
 * source target to a destination target, object by object, streaming:
 * ranged reads of COPY_BLOCK bytes go straight into a transport writer, so
 * memory stays bounded whatever the archive size.
 *
 * The source of each object is --from, else the recorded copies in the
 * order of their measured read throughput (the fastest first; an
 * unreachable or corrupt source gives way to the next copy).  The sha256 of
 * the bytes is computed while they stream and must equal the one the
 * catalog records, or the put is aborted (nothing appears under the key).
 * Once committed, an archive is re-opened on the destination (trailer,
 * index, header) and a manifest is read back; a copy that fails that check
 * is deleted.  Each new copy is recorded in the catalog
 * (catalog_archive_add_location) with throughput samples (read for the
 * source, write for the destination), under one "copy" job.
 *
 * A backup whose objects are already on the destination with the recorded
 * size and sha256 is skipped: copying twice is a no-op.
 */
#ifndef VIRTKEEP_COPY_H
#define VIRTKEEP_COPY_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct catalog;
struct config;

/* Bytes per ranged read (and per write into the destination). */
#define COPY_BLOCK (8u * 1024 * 1024)

struct copy_options {
    const char *what;            /* a backup id, or a domain: all its committed backups */
    const char *to;              /* destination: target name or URL */
    const char *from;            /* source: target name or URL, or NULL for the fastest */
    const struct config *config; /* for target names; may be NULL */
    /* Set (by a signal handler): stop between objects or blocks, abort the
     * object being put (nothing under its key), job cancelled,
     * VK_ERR_INTERRUPTED.  May be NULL. */
    const volatile sig_atomic_t *cancel;
};

/* One object (an archive, or a manifest when disk is NULL). */
struct copy_item {
    char *backup_id;
    char *disk;   /* NULL for the manifest */
    char *source; /* the target it was read from; NULL when skipped */
    char *key;
    uint64_t size;
    char *sha256;
    bool copied;    /* false: it was already on the destination */
    double seconds; /* of the transfer */
};

struct copy_result {
    char *target; /* the destination */
    struct copy_item *items;
    size_t nr;
    size_t backups_copied;  /* backups with at least one object copied */
    size_t backups_skipped; /* backups already complete on the destination */
    size_t objects_copied;
    uint64_t bytes_copied;
    int64_t job_id;
    double seconds;
};

/* Copy as OPTS say (FLAGS must be 0).  Backups go oldest first, so that
 * parents are on the destination before their children.  Stops at the
 * first failure, with a message naming the backup, the disk, the source
 * and the destination; what was copied before it stays recorded.  *OUT
 * holds what was done either way (copy_result_clear it). */
int copy_run(struct catalog *cat, const struct copy_options *opts, unsigned int flags,
             struct copy_result *out);
void copy_result_clear(struct copy_result *r);

#endif
