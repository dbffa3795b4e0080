/* virtkeep - the read side: finding a backup's chain in the catalog, opening
 * its archives on any target (file, ssh, s3), merging their extent lists so
 * that each block is read once, and estimating what a read will cost.
 *
 * restore, verify, plan, copy, rebuild, drill and the scheduler read backups
 * through this module, and only through it.
 *
 *   reader-chain.c     the chain of a backup or a point in time, its disks
 *   reader-source.c    targets by name or URL, archives opened from their
 *                      recorded locations (fastest first), chunks and frames
 *   reader-merge.c     the pure part: merging a chain's extent lists into one
 *                      map, the order chunks are read in, the time parser
 *   reader-estimate.c  the one read estimator: a target's cost model learned
 *                      from drills, else from measured throughput, else a guess
 */
#ifndef VIRTKEEP_READER_H
#define VIRTKEEP_READER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/format/format.h"

struct catalog;
struct catalog_backup_disks;
struct catalog_backups;
struct catalog_location;
struct config;
struct transport;

/* ---------------------------------------------------------------- merge */

/* The extent list of one archive of the chain (archive_reader_extents). */
struct reader_layer {
    const struct archive_extent *extents;
    size_t nr;
};

enum reader_piece_kind {
    READER_PIECE_DATA = 0,
    READER_PIECE_ZERO,
};

/* One range of the restored disk and where its bytes come from. */
struct reader_piece {
    uint64_t offset; /* in the disk */
    uint64_t length;
    enum reader_piece_kind kind;
    size_t layer;           /* index in the chain (0 = the full) */
    size_t extent;          /* index in that layer's extent list */
    uint64_t extent_offset; /* where the piece starts inside that extent */
};

struct reader_map {
    struct reader_piece *pieces; /* sorted by offset, no overlap */
    size_t nr;
    uint64_t data_bytes; /* bytes of DATA pieces: what gets written */
    uint64_t zero_bytes; /* bytes of ZERO pieces */
    /* The distinct data chunks the pieces need, each read once. */
    size_t nr_chunks;
    uint64_t chunk_raw_bytes;   /* their raw length: what is decompressed */
    uint64_t chunk_frame_bytes; /* their frame size: what is fetched */
};

/* Merge LAYERS (the chain in restore order: the full first, the newest
 * last).  For every byte the newest layer with an extent over it wins,
 * whether DATA or ZERO; bytes no layer holds are left out (the image starts
 * blank).  Bytes at or after VIRTUAL_SIZE are dropped.  Adjacent ZERO pieces
 * are merged whatever their layer; a DATA piece never spans two extents.
 * Each layer's extents must be sorted and must not overlap (VK_ERR_INVALID
 * otherwise).  OUT is cleared on failure. */
int reader_merge(const struct reader_layer *layers, size_t nr_layers, uint64_t virtual_size,
                 struct reader_map *out);
void reader_map_clear(struct reader_map *m);

/* The DATA pieces of M in the order to read them: grouped by chunk (all
 * pieces of one chunk together, so that it is read once), chunks by disk
 * offset then layer.  *OUT (free() it) gets *NR piece indexes. */
int reader_map_read_order(const struct reader_map *m, const struct reader_layer *layers,
                          size_t **out, size_t *nr);

/* A point in time: RFC 3339 ("2026-11-28T01:02:03Z", "...T03:02:03+02:00",
 * fractions of a second ignored), "now", or a duration before NOW
 * ("2h ago", "1h30m ago", "15m ago", see vk_duration_parse).  VK_ERR_INVALID
 * quoting STR otherwise. */
int reader_time_parse(const char *str, int64_t now, int64_t *out);

/* ---------------------------------------------------------------- sources */

/* The targets opened so far, by name (a configured target) or URL. */
struct reader_targets;

/* FROM (a target name or URL, may be NULL) replaces every recorded location. */
struct reader_targets *reader_targets_new(const struct config *cfg, const char *from);
void reader_targets_free(struct reader_targets *ts);
/* Open (once) the target a location names: a [target NAME] of the
 * configuration, else NAME itself when it is a URL. */
struct transport *reader_targets_get(struct reader_targets *ts, const char *name);
/* Each target opened so far and the bytes read from it. */
size_t reader_targets_count(const struct reader_targets *ts);
const char *reader_targets_name(const struct reader_targets *ts, size_t i, uint64_t *bytes_read);

/* The keys for sealed backups: every encryption_key_file of the
 * configuration and VIRTKEEP_KEY, loaded once (a keyring that cannot be
 * read is a warning: its keys are then missing, and a backup that needs
 * one fails naming the key id). */
const struct format_keyring *reader_keyring(struct reader_targets *ts);
/* Parse the manifest KEY (LEN bytes read from a target) and, when it is
 * sealed, check its HMAC with the keyring (manifest_authenticate). */
int reader_manifest_parse(struct reader_targets *ts, const void *buf, size_t len, const char *key,
                          struct manifest *m);

/* One archive (one disk of one backup) opened for reading. */
struct reader_archive {
    char *backup_id;
    char *disk;
    char *target; /* the target name it is read from */
    char *key;
    uint64_t size;
    struct transport *t; /* borrowed from the reader_targets */
    struct archive_reader *reader;
    uint64_t bytes_fetched; /* every byte read through the source */
};

/* Open the archive of DISK of BACKUP_ID from one of its recorded locations
 * (the fastest target first), or from the --from target.  Checks the
 * object's size against the catalog and the header against the backup and
 * disk.  Errors name the backup, the disk and the key. */
struct reader_archive *reader_archive_open(struct catalog *cat, struct reader_targets *ts,
                                           const char *domain, const char *backup_id,
                                           const char *disk);
/* Open the archive at LOC (verify: one copy). */
struct reader_archive *reader_archive_open_at(struct reader_targets *ts,
                                              const struct catalog_location *loc,
                                              const char *target_name);
void reader_archive_free(struct reader_archive *a);
/* Read one chunk into OUT (its raw length); a failure names the backup,
 * disk and chunk. */
int reader_archive_read_chunk(struct reader_archive *a, const struct archive_extent *e, void *out);
/* Read the zstd frame of data chunk E (E->size bytes) into FRAME, without
 * decoding it (archive_decoder_decode does that, on any thread); a failure
 * names the backup, disk and chunk. */
int reader_archive_read_frame(struct reader_archive *a, const struct archive_extent *e,
                              void *frame);

/* ---------------------------------------------------------------- chain */

/* The chain of BACKUP_ID, or of the newest committed backup of DOMAIN at
 * or before AT; never empty. */
int reader_chain_find(struct catalog *cat, const char *domain, const char *backup_id, int64_t at,
                      struct catalog_backups **chain);
/* The disks of backup TIP named in DISKS (every one when NULL); an unknown
 * name is VK_ERR_NOT_FOUND. */
int reader_disks_select(struct catalog *cat, char *const *disks, const char *tip,
                        struct catalog_backup_disks **out);

/* ---------------------------------------------------------------- links */

struct catalog_backup;

/* The hash chain (docs/FORMAT.md): each manifest records the sha256 of its
 * parent's manifest.  Check the link from CHILD (a catalog backup) to its
 * parent: CHILD's manifest, read from TARGET (NULL: the first recorded copy
 * that can be read; --from applies), must have the digest the catalog
 * records, name the catalog's parent, and record the sha256 of the parent's
 * manifest as stored (read from the same target when it holds it).  A
 * manifest of version 1 or 2 records no digest: *UNCHECKED is set and the
 * link is not a failure.  A broken link is VK_ERR_CORRUPT, naming the
 * domain, both backups and the object.  0 when CHILD has no parent. */
int reader_link_check(struct catalog *cat, struct reader_targets *ts,
                      const struct catalog_backup *child, const char *target, bool *unchecked);
/* Every link of CHAIN (full first), and the full's own manifest (its
 * recorded digest and, sealed, its HMAC); *UNCHECKED counts the links not
 * checked. */
int reader_chain_check(struct catalog *cat, struct reader_targets *ts,
                       const struct catalog_backups *chain, size_t *unchecked);

/* ---------------------------------------------------------------- qcow2 */

/* The cluster size and compat level of DISK in the manifest of BACKUP_ID
 * (read from the target of its recorded location): 0 and NULL when the
 * manifest has none (version 1, raw source) or cannot be read. */
void reader_source_qcow2(struct catalog *cat, struct reader_targets *ts, const char *backup_id,
                         const char *disk, uint64_t *cluster_size, char **compat);

/* ---------------------------------------------------------------- estimate */

/* Learning from drills (src/drill.h).  A drill measures a real restore:
 * bytes read from the targets and seconds taken.  When drills that read a
 * target succeeded, that target's cost model comes from them instead of
 * the throughput samples: the READER_DRILL_HISTORY most recent ok drills of
 * the domain that read the target (else of any domain that read it) are
 * fitted to  seconds = overhead + bytes / rate  (reader_drill_fit: least
 * squares when the drills differ in size; one drill, or drills of one
 * size, give overhead 0 and rate = total bytes / total seconds, so that
 * the same restore is estimated at exactly the measured time).  The
 * sources, most trusted first: drill, throughput, guess.
 *
 * There is one estimator: reader_cost_estimate() gives a target's model
 * and the seconds for some bytes; reader_costs_estimate() sums targets.
 * plan_restore, restore_run (from its own merged maps, reader_map_bytes),
 * plan dr (src/dr.h) and the scheduler's restore model (through
 * reader_cost_read) all use it.
 */

/* The read rate assumed for a target without measurements: 100 MiB/s. */
#define READER_DEFAULT_READ_RATE (100.0 * 1024 * 1024)

/* How many recent ok drills the learning fits. */
#define READER_DRILL_HISTORY 5

/* Where an estimate comes from, most trusted last. */
enum reader_source {
    READER_SOURCE_GUESS,      /* no history: READER_DEFAULT_READ_RATE */
    READER_SOURCE_THROUGHPUT, /* read throughput measured on earlier jobs */
    READER_SOURCE_DRILL,      /* restore times measured by drills */
};
const char *reader_source_name(enum reader_source source);

/* The newest drill a model learned from. */
struct reader_drill_ref {
    int64_t id;
    int64_t time;            /* when it started */
    double actual_seconds;   /* measured */
    double estimate_seconds; /* predicted before it ran */
    uint64_t bytes_read;
    unsigned int samples; /* drills fitted */
};

/* One target and what reading from it costs. */
struct reader_cost {
    char *name;
    uint64_t bytes; /* frames + indexes */
    double rate;    /* bytes per second used */
    unsigned int samples;
    bool guess; /* no history: READER_DEFAULT_READ_RATE */
    double seconds;
    double overhead; /* fixed seconds of a restore (drills only, else 0) */
    enum reader_source source;
    struct reader_drill_ref drill; /* source drill: the newest drill used */
};

/* One measured restore, for the learning. */
struct reader_drill_sample {
    uint64_t bytes;
    double seconds;
};

/* The one estimator: the cost model of TARGET for a restore of DOMAIN (may
 * be NULL: drills of any domain) and the seconds to read BYTES from it,
 * overhead + BYTES / rate, into *OUT (rate, overhead, samples, guess,
 * source, drill, seconds; name and bytes untouched).  -1 on a catalog
 * error. */
int reader_cost_estimate(struct catalog *cat, const char *domain, const char *target,
                         uint64_t bytes, struct reader_cost *out);
/* The same without a domain (the scheduler's restore model). */
int reader_cost_read(struct catalog *cat, const char *target, uint64_t bytes,
                     struct reader_cost *out);

/* Estimate each of T[N] (their bytes set) and the restore that reads them
 * all: *SECONDS = the sum of their seconds, *SOURCE the least trusted
 * source, *DRILL (may be NULL) the newest drill used, or zeroed. */
int reader_costs_estimate(struct catalog *cat, const char *domain, struct reader_cost *t, size_t n,
                          double *seconds, enum reader_source *source,
                          struct reader_drill_ref *drill);
/* Add BYTES to the target NAME of *T (appended when new). */
int reader_costs_add(struct reader_cost **t, size_t *n, const char *name, uint64_t bytes);
void reader_costs_free(struct reader_cost *t, size_t n);

/* Fit  seconds = overhead + bytes / rate  to S[N] (see above).  -1 when
 * nothing can be learned (N is 0, no bytes or no time). */
int reader_drill_fit(const struct reader_drill_sample *s, size_t n, double *rate, double *overhead);

struct reader_map;
struct reader_layer;
/* What the merged map M (of NR_LAYERS LAYERS) reads from each layer:
 * BYTES[i] += compressed frame bytes, CHUNKS[i] += distinct chunks (CHUNKS
 * may be NULL).  Exactly what restore_run fetches besides the indexes. */
int reader_map_bytes(const struct reader_map *m, const struct reader_layer *layers,
                     size_t nr_layers, uint64_t *bytes, size_t *chunks);

#endif
