/* virtkeep - the restore plan: what a restore would read, from where, how
 * long it would take and what data it would lose.
 *
 * plan_restore() resolves the chain exactly as restore_run() does, opens
 * each archive's index only (trailer + index; no chunk is read), merges the
 * indexes with reader_merge() and counts the compressed frames each
 * archive must deliver.  The duration is the sum, over the targets read,
 * of bytes / rate, the rate coming from the read throughput measured on
 * earlier jobs against that target (catalog_throughput_estimate).  A
 * target without history is estimated at READER_DEFAULT_READ_RATE and the
 * estimate is marked as a guess.  restore_run() records this same
 * estimate in its job, next to the measured duration.
 */
#ifndef VIRTKEEP_PLAN_H
#define VIRTKEEP_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>

#include "src/reader/reader.h"

struct catalog;
struct config;

struct plan_options {
    const char *domain;
    const char *backup_id;       /* this backup, or NULL: ... */
    int64_t at;                  /* ... the newest one at or before AT */
    int64_t now;                 /* the time the RPO is measured from when AT is INT64_MAX */
    char *const *disks;          /* disk targets, NULL for all */
    const char *from;            /* target name or URL to read from, or NULL */
    const struct config *config; /* for target names; may be NULL */
};

/* One archive of the chain (one disk of one backup). */
struct plan_archive {
    char *backup_id;
    char *disk;
    char *target; /* the target it would be read from */
    char *key;
    uint64_t read_bytes;  /* compressed frames the merged map needs from it */
    uint64_t index_bytes; /* trailer and index, read to plan (and to restore) */
    size_t chunks;        /* chunks read from it */
};

struct plan_restore {
    char **chain; /* backup ids, the full first (NULL-terminated) */
    char *backup_id;
    int64_t backup_time; /* when the chosen backup was taken */
    int64_t at;          /* the point asked for (NOW when none) */
    int64_t rpo_seconds; /* data lost: AT - backup_time */
    struct plan_archive *archives;
    size_t nr_archives;
    struct reader_cost *targets;
    size_t nr_targets;
    uint64_t read_bytes;    /* every byte read, all targets */
    uint64_t disk_bytes;    /* data written to the images */
    uint64_t virtual_bytes; /* total virtual size of the disks */
    double estimate_seconds;
    bool guess;                    /* some target had no history */
    enum reader_source source;     /* the least trusted source of its targets */
    struct reader_drill_ref drill; /* when a target learned from drills: the newest drill */
};

/* Plan a restore as OPTS say.  Records no job.  OUT is cleared on failure. */
int plan_restore(struct catalog *cat, const struct plan_options *opts, struct plan_restore *out,
                 unsigned int flags);
void plan_restore_clear(struct plan_restore *p);

/* ======== the disaster recovery plan: every domain restored at once.
 *
 * dr_plan_build() takes every domain of the configuration and of the
 * catalog, plans the restore of its latest backup (at or before AT) with
 * plan_restore() (so the estimate is the one estimator's, src/plan.h,
 * optionally read from one target) and hands the items to dr_schedule(),
 * which is pure:
 *
 *   - order: policy priority (1 first, then 2, ...; unset last); ties: the
 *     least RTO slack (RTO - estimate) first, so that the tightest deadline
 *     goes first (domains without an RTO after those with one); then name;
 *   - list scheduling on PARALLEL slots per destination host (the host the
 *     domain last ran on, in a catalog that several hosts share; one pool
 *     for the domains without a host): in that order, each restorable
 *     domain starts on its host's slot that frees first (the lowest slot
 *     number on a tie) and finishes estimate seconds later.  Hosts restore
 *     side by side; the total duration is the data centre's makespan, the
 *     latest finish;
 *   - RTO met when the domain's FINISH offset is within its RTO: in a
 *     disaster every domain is down from the start, so the time spent
 *     waiting for a slot counts against its RTO.  A domain that cannot be
 *     restored (never backed up, chain broken, target unreachable) misses
 *     its RTO;
 *   - RPO met when the data lost, AT (or now) minus the latest backup's
 *     time, is within the RPO; a domain never backed up loses everything
 *     and misses it whatever its policy says.  Without an objective, the
 *     other one is met;
 *   - reasons, one sentence each: why an objective is missed, and a note
 *     when the estimate is a guess without history.
 */

struct catalog;
struct config;

struct dr_item {
    /* inputs */
    char *domain;
    char *host;            /* where it is restored: the host it last ran on, or NULL */
    unsigned int priority; /* 0: unset */
    uint64_t rpo, rto;     /* seconds, 0: no objective */
    char *backup_id;       /* the backup restored, or NULL */
    int64_t backup_time;   /* its time */
    bool never_backed_up;
    char *problem; /* why it cannot be restored (a sentence), or NULL */
    double estimate_seconds;
    enum reader_source source;
    /* results (dr_schedule) */
    int slot;                   /* 0..parallel-1 on its host, or -1 when not restorable */
    double start, finish;       /* offsets from the disaster, seconds; -1 when not */
    int64_t data_loss;          /* seconds, -1 never backed up */
    unsigned int waited_behind; /* restores that ran on its slot before it */
    bool rto_met, rpo_met;
    char **reasons; /* NULL-terminated, may be empty */
};

struct dr_plan {
    struct dr_item *items; /* in restore order after dr_schedule */
    size_t nr;
    unsigned int parallel; /* slots per destination host */
    int64_t at;
    double makespan; /* over every host */
    size_t hosts;    /* destination hosts (a pool for the domains without one counts) */
    size_t missed;   /* domains with an objective missed */
};

/* Order and schedule PLAN->items on PARALLEL slots (>= 1) at AT; fills the
 * results.  -1 on ENOMEM or PARALLEL 0 (VK_ERR_INVALID). */
int dr_schedule(struct dr_plan *plan, unsigned int parallel, int64_t at);

struct dr_options {
    const struct config *config; /* may be NULL: catalog domains only */
    const char *target;          /* read from this target (name or URL), or NULL */
    unsigned int parallel;       /* 0: 1 */
    int64_t at;                  /* INT64_MAX: the latest backups */
    int64_t now;
};

/* Build the plan of every domain (configuration + catalog) and schedule it. */
int dr_plan_build(struct catalog *cat, const struct dr_options *o, struct dr_plan *out,
                  unsigned int flags);
void dr_plan_clear(struct dr_plan *plan);

/* ======== DR drills: prove that a backup restores, and how fast.
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
    enum reader_source estimate_source;
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
