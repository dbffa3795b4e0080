/* virtkeep - DR drills: prove that a backup restores, and how fast.
 *
 * drill_run():
 *   1. resolves the backup (OPTS->backup_id, else the domain's latest
 *      committed one) and its chain, and estimates its restore with the
 *      planner (plan_restore: the estimate made before starting, and its
 *      source: drill, throughput or guess);
 *   2. records a "drill" job and a drills row (state running);
 *   3. restores the chain with restore_run() into a scratch directory: a
 *      fresh mkdtemp directory under DRILL_SCRATCH_BASE (/var/tmp), or
 *      OPTS->scratch, which must be missing (it is created) or empty;
 *   4. verifies.  What is verified, exactly:
 *        - while restoring, every chunk read is checked against the sha256
 *          of the archive index (restore_run);
 *        - every archive of every backup of the chain, on the target read
 *          (OPTS->from) or on every recorded copy, is re-read in full by
 *          verify_run(): object size, trailer, index and its sha256, every
 *          chunk (zstd and sha256), and the sha256 of the whole object
 *          against the catalog and the manifest;
 *        - every restored image passes `qemu-img check` (qcow2 metadata:
 *          no leaks, no corruption) and has the disk's virtual size.
 *      A failure names the backup, the disk and the chunk with its offset
 *      (VK_ERR_CORRUPT);
 *   5. records the measured restore time (restore_run's own duration, the
 *      verification excluded: that is what a real restore costs), the bytes
 *      read from the targets and written, and ok/failed/cancelled with the
 *      error in the drills row; the restore estimator learns from it
 *      (src/plan.h);
 *   6. removes the scratch directory (its content only when the caller gave
 *      an existing empty one), unless OPTS->keep.
 *
 * OPTS->cancel (SIGINT/SIGTERM in the CLI) stops the restore; the drill is
 * then recorded as cancelled and the scratch directory removed.
 */
#ifndef VIRTKEEP_DRILL_H
#define VIRTKEEP_DRILL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/plan/plan.h"

struct catalog;
struct config;

#define DRILL_SCRATCH_BASE "/var/tmp"

struct drill_options {
    const char *domain;
    const char *backup_id;       /* NULL: the latest committed backup */
    const char *from;            /* target name or URL to read from, or NULL */
    const char *scratch;         /* NULL: mkdtemp under DRILL_SCRATCH_BASE */
    bool keep;                   /* leave the restored images in place */
    const struct config *config; /* for target names; may be NULL */
    const volatile sig_atomic_t *cancel;
    /* Called at each stage ("restoring", "verifying", "cleaning up"); may be NULL. */
    void (*stage)(void *opaque, const char *stage);
    void *opaque;
};

struct drill_disk {
    char *target; /* "vda" */
    char *path;   /* the restored image (gone unless kept) */
    uint64_t virtual_size;
};

struct drill_result {
    int64_t drill_id, job_id;
    char *domain;
    char *backup_id;
    char **chain;
    char *scratch;
    bool kept;
    char *targets; /* names read, comma-separated */
    double estimate_seconds;
    enum plan_source estimate_source;
    double actual_seconds; /* the restore */
    double verify_seconds;
    uint64_t bytes_read, disk_bytes;
    size_t chunks_verified;
    struct drill_disk *disks;
    size_t nr_disks;
    bool ok;
    char *error; /* why not ok */
};

/* Run a drill as OPTS say.  Returns 0 when the drill ran and verified ok;
 * -1 otherwise, with the error recorded (and in OUT->error when the drill
 * got as far as recording itself: OUT->drill_id > 0). */
int drill_run(struct catalog *cat, const struct drill_options *opts, struct drill_result *out,
              unsigned int flags);
void drill_result_clear(struct drill_result *r);

/* Remove DIR and everything under it (KEEP_DIR: only its content). */
int drill_scratch_remove(const char *dir, bool keep_dir);

#endif
