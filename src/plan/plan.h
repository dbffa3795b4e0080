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
 *
 * Learning from drills (src/drill.h).  A drill measures a real restore:
 * bytes read from the targets and seconds taken.  When drills that read a
 * target succeeded, that target's cost model comes from them instead of
 * the throughput samples: the PLAN_DRILL_HISTORY most recent ok drills of
 * the domain that read the target (else of any domain that read it) are
 * fitted to  seconds = overhead + bytes / rate  (plan_drill_fit: least
 * squares when the drills differ in size; one drill, or drills of one
 * size, give overhead 0 and rate = total bytes / total seconds, so that
 * the same restore is estimated at exactly the measured time).  The
 * sources, most trusted first: drill, throughput, guess.
 *
 * There is one estimator: plan_target_estimate() gives a target's model
 * and the seconds for some bytes; plan_targets_estimate() sums targets.
 * plan_restore, restore_run (from its own merged maps, plan_map_bytes),
 * plan dr (src/dr.h) and the scheduler's restore model (through
 * plan_read_estimate) all use it.
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

/* How many recent ok drills the learning fits. */
#define PLAN_DRILL_HISTORY 5

/* Where an estimate comes from, most trusted last. */
enum plan_source {
    PLAN_SOURCE_GUESS,      /* no history: PLAN_DEFAULT_READ_RATE */
    PLAN_SOURCE_THROUGHPUT, /* read throughput measured on earlier jobs */
    PLAN_SOURCE_DRILL,      /* restore times measured by drills */
};
const char *plan_source_name(enum plan_source source);

/* The newest drill a model learned from. */
struct plan_drill_ref {
    int64_t id;
    int64_t time;            /* when it started */
    double actual_seconds;   /* measured */
    double estimate_seconds; /* predicted before it ran */
    uint64_t bytes_read;
    unsigned int samples; /* drills fitted */
};

/* One target and what reading from it costs. */
struct plan_target {
    char *name;
    uint64_t bytes; /* frames + indexes */
    double rate;    /* bytes per second used */
    unsigned int samples;
    bool guess; /* no history: PLAN_DEFAULT_READ_RATE */
    double seconds;
    double overhead; /* fixed seconds of a restore (drills only, else 0) */
    enum plan_source source;
    struct plan_drill_ref drill; /* source drill: the newest drill used */
};

/* One measured restore, for the learning. */
struct plan_drill_sample {
    uint64_t bytes;
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
    bool guess;                  /* some target had no history */
    enum plan_source source;     /* the least trusted source of its targets */
    struct plan_drill_ref drill; /* when a target learned from drills: the newest drill */
};

/* Plan a restore as OPTS say.  Records no job.  OUT is cleared on failure. */
int plan_restore(struct catalog *cat, const struct plan_options *opts, struct plan_restore *out,
                 unsigned int flags);
void plan_restore_clear(struct plan_restore *p);

/* The one estimator: the cost model of TARGET for a restore of DOMAIN (may
 * be NULL: drills of any domain) and the seconds to read BYTES from it,
 * overhead + BYTES / rate, into *OUT (rate, overhead, samples, guess,
 * source, drill, seconds; name and bytes untouched).  -1 on a catalog
 * error. */
int plan_target_estimate(struct catalog *cat, const char *domain, const char *target,
                         uint64_t bytes, struct plan_target *out);
/* The same without a domain (the scheduler's restore model). */
int plan_read_estimate(struct catalog *cat, const char *target, uint64_t bytes,
                       struct plan_target *out);

/* Estimate each of T[N] (their bytes set) and the restore that reads them
 * all: *SECONDS = the sum of their seconds, *SOURCE the least trusted
 * source, *DRILL (may be NULL) the newest drill used, or zeroed. */
int plan_targets_estimate(struct catalog *cat, const char *domain, struct plan_target *t, size_t n,
                          double *seconds, enum plan_source *source, struct plan_drill_ref *drill);
/* Add BYTES to the target NAME of *T (appended when new). */
int plan_targets_add(struct plan_target **t, size_t *n, const char *name, uint64_t bytes);
void plan_targets_free(struct plan_target *t, size_t n);

/* Fit  seconds = overhead + bytes / rate  to S[N] (see above).  -1 when
 * nothing can be learned (N is 0, no bytes or no time). */
int plan_drill_fit(const struct plan_drill_sample *s, size_t n, double *rate, double *overhead);

struct restore_map;
struct restore_layer;
/* What the merged map M (of NR_LAYERS LAYERS) reads from each layer:
 * BYTES[i] += compressed frame bytes, CHUNKS[i] += distinct chunks (CHUNKS
 * may be NULL).  Exactly what restore_run fetches besides the indexes. */
int plan_map_bytes(const struct restore_map *m, const struct restore_layer *layers,
                   size_t nr_layers, uint64_t *bytes, size_t *chunks);

#endif
