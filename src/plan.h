/* virtkeep - the restore plan: what a restore would read, from where, how
 * long it would take and what data it would lose.
 *
 * plan_restore() resolves the chain exactly as restore_run() does, opens
 * each archive's index only (trailer + index; no chunk is read), merges the
 * indexes with restore_merge() and counts the compressed frames each
 * archive must deliver.  The duration is the sum, over the targets read,
 * of bytes / rate, the rate coming from the read throughput measured on
 * earlier jobs against that target (catalog_throughput_estimate).  A
 * target without history is estimated at PLAN_DEFAULT_READ_RATE and the
 * estimate is marked as a guess.  restore_run() records this same
 * estimate in its job, next to the measured duration.
 */
#ifndef VIRTKEEP_PLAN_H
#define VIRTKEEP_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct catalog;
struct config;

/* The read rate assumed for a target without measurements: 100 MiB/s. */
#define PLAN_DEFAULT_READ_RATE (100.0 * 1024 * 1024)

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

/* One target and what reading from it costs. */
struct plan_target {
    char *name;
    uint64_t bytes; /* frames + indexes */
    double rate;    /* bytes per second used */
    unsigned int samples;
    bool guess; /* no history: PLAN_DEFAULT_READ_RATE */
    double seconds;
};

struct plan_restore {
    char **chain; /* backup ids, the full first (NULL-terminated) */
    char *backup_id;
    int64_t backup_time; /* when the chosen backup was taken */
    int64_t at;          /* the point asked for (NOW when none) */
    int64_t rpo_seconds; /* data lost: AT - backup_time */
    struct plan_archive *archives;
    size_t nr_archives;
    struct plan_target *targets;
    size_t nr_targets;
    uint64_t read_bytes;    /* every byte read, all targets */
    uint64_t disk_bytes;    /* data written to the images */
    uint64_t virtual_bytes; /* total virtual size of the disks */
    double estimate_seconds;
    bool guess; /* some target had no history */
};

/* Plan a restore as OPTS say.  Records no job.  OUT is cleared on failure. */
int plan_restore(struct catalog *cat, const struct plan_options *opts, struct plan_restore *out,
                 unsigned int flags);
void plan_restore_clear(struct plan_restore *p);

/* The one estimator: seconds to read BYTES from TARGET, with the rate and
 * whether it is a guess in *OUT (may be NULL).  -1 on a catalog error. */
int plan_read_estimate(struct catalog *cat, const char *target, uint64_t bytes,
                       struct plan_target *out);

#endif
