/* virtkeep - what happens to backups after they are taken: copies to other targets,
 * retention, crash-safe prune, and rebuilding the catalog from a target.
 */
#ifndef VIRTKEEP_LIFECYCLE_H
#define VIRTKEEP_LIFECYCLE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "src/conf/conf.h"

/* ======== copy backups between targets.
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

/* ======== prune: apply each domain's retention (src/retention.h) to the
 * catalog and the targets, crash-safely.
 *
 * For each domain, in one catalog transaction, every backup retention
 * deletes is marked (catalog_prune_mark) before anything is deleted.  Then,
 * backup by backup, newest first (a child before its parent):
 *
 *   1. its manifest is deleted from every target that has it, FIRST: a
 *      backup without a manifest is incomplete there, so a catalog rebuilt
 *      from the target (catalog rebuild) never sees a half-deleted backup;
 *   2. then its archives, from every target;
 *   3. each object's location row is removed once the object is gone (an
 *      object already missing counts as gone), and last the backup row (its
 *      mark goes with it).
 *
 * A prune that is killed or fails midway leaves the marks: the next prune
 * finishes the marked backups first, before it decides anything new.  A
 * target that cannot be reached stops the prune with the backup, target and
 * key named; what was deleted stays deleted and the rest stays marked.
 *
 * Libvirt checkpoints are left alone: prune needs no connection to the host
 * and the domain may live elsewhere.  The checkpoints of pruned backups stay
 * in libvirt (and their bitmaps in the images) until something removes them;
 * they do not affect the chain, whose parent is always a kept backup.
 */

struct catalog;
struct config;

struct prune_options {
    const char *domain;          /* NULL: every [domain] of the configuration with a policy */
    bool dry_run;                /* decide and report; mark and delete nothing */
    const struct config *config; /* policies and targets */
};

struct prune_item {
    char *backup_id;
    char *domain;
    bool keep;
    bool resumed;   /* marked by an earlier prune that did not finish */
    char *reason;   /* why kept or deleted */
    bool deleted;   /* objects and row are gone */
    size_t objects; /* objects deleted from targets */
    uint64_t bytes; /* their recorded sizes */
};

struct prune_result {
    struct prune_item *items;
    size_t nr;
    size_t kept, deleted, objects;
    uint64_t bytes;
};

/* Environment variable of the test hook: after deleting that many objects,
 * prune stops (sleeps) so that a test can kill it. */
#define PRUNE_TEST_PAUSE_ENV "VIRTKEEP_TEST_PRUNE_PAUSE"

/* Prune as OPTS say (FLAGS must be 0).  *OUT holds what was decided and
 * done either way (prune_result_clear it).  A domain named in OPTS without
 * a policy with keep rules fails with VK_ERR_INVALID. */
int prune_run(struct catalog *cat, const struct prune_options *opts, unsigned int flags,
              struct prune_result *out);
void prune_result_clear(struct prune_result *r);

/* ======== retention: which backups of a domain a policy keeps.
 *
 * retention_select() is pure: it looks only at the list of backups it is
 * given and the policy's keep_* keys, never at the clock or the catalog.
 *
 * The rules follow restic and borg.  Committed backups are taken newest
 * first; times are UTC, from each backup's start (the point in time it holds):
 *
 *   keep_last N     the N newest backups.
 *   keep_hourly N   for the N most recent hours that HAVE a backup, the newest
 *                   backup of each hour.  Hours without a backup do not count:
 *                   keep_daily 7 of a domain backed up on Mondays only keeps
 *                   seven Mondays, not one.
 *   keep_daily, keep_weekly (ISO 8601 weeks, Monday first), keep_monthly,
 *   keep_yearly     the same for days, weeks, months and years.
 *   keep_within D   every backup less than D older than the newest backup.
 *
 * The rules add up: a backup is kept when any rule keeps it, and each rule
 * counts its periods over all backups, whatever the other rules kept.
 * A policy without any keep rule keeps everything.
 *
 * Then dependencies: every backup that a kept backup needs to be restored is
 * kept too, whatever the rules say ("needed by ID"): a kept inc keeps its
 * parent, recursively, up to its full (so every inc between); a kept diff
 * keeps its full.  So a restore of any kept backup never misses a link.
 *
 * Running backups are always kept.  A failed backup holds nothing that can be
 * restored: it is deleted once a committed backup started after it exists
 * (failures newer than the newest good backup are kept: they are the history
 * the scheduler backs off from).
 */

struct retention_item {
    const struct catalog_backup *backup; /* points into the list given */
    bool keep;
    char *reason; /* "last 1/3, daily 2026-11-28", "needed by ID", "no rule keeps it" */
};

struct retention_result {
    size_t count;
    struct retention_item *items; /* DOMAIN's backups, oldest first (list order) */
    size_t kept, deleted;
};

/* Decide for every backup of DOMAIN in ALL (a catalog_backup_list, any
 * domains and statuses) whether POLICY keeps it.  FLAGS must be 0.  ALL
 * must outlive OUT.  -1 only when out of memory. */
int retention_select(const struct catalog_backups *all, const char *domain,
                     const struct config_policy *policy, unsigned int flags,
                     struct retention_result *out);
void retention_result_clear(struct retention_result *r);

/* Does POLICY have any keep rule? */
bool retention_has_rules(const struct config_policy *policy);

/* ======== catalog rebuild: recreate the catalog's records of a target's
 * backups from the manifests stored on it (the disaster case, where the
 * backup host and its catalog are gone).
 *
 * Every object DOMAIN/BACKUP_ID/manifest.json of the target is read and
 * parsed (manifest_parse), and each archive it names is stat'ed.  For each
 * backup the catalog gets: the domain (with its UUID), the backup row
 * (committed, level, parent, checkpoint and its XML, domain XML, start and
 * finish times, bytes read, written and stored), its disks (format from the
 * saved domain XML), the archive locations (size from stat, sha256 from the
 * manifest) and the manifest's own location, all under the target as
 * named (a configured name or the URL).
 *
 * Merging is idempotent, so an existing catalog is never overwritten: a
 * backup already recorded with the same domain, level and parent only gets
 * this target's locations added (a second copy); a recorded backup that
 * disagrees with its manifest is a conflict, reported and left untouched.
 * A DOMAIN/BACKUP_ID/ with archives but no manifest is an incomplete
 * backup; a manifest that cannot be read or parsed, or whose archives are
 * missing or of another size, is unreadable.  Both are reported by name and
 * recorded nowhere.
 */

struct catalog;
struct config;

struct rebuild_options {
    const char *target;          /* a configured target name or a URL */
    const struct config *config; /* may be NULL */
};

struct rebuild_result {
    char *target;
    size_t manifests;  /* manifests found */
    size_t added;      /* backups recorded */
    size_t known;      /* backups already recorded (locations refreshed) */
    char **domains;    /* the domains seen (NULL-terminated) */
    char **backups;    /* ids added or known, oldest first per domain */
    char **incomplete; /* "DOMAIN/BACKUP_ID": archives without a manifest */
    char **unreadable; /* "KEY: why" */
    char **conflicts;  /* "BACKUP_ID: why" */
    char **refused;    /* "BACKUP_ID: why": a broken chain link (recorded nowhere) */
    char **unchecked;  /* what could not be checked without reading data, one line each */
};

/* Without reading any data, each manifest is checked: its JSON (version,
 * keys, UTF-8 in the XML), its place, each archive's size, trailer and index
 * (their sha256s) and header against it; and the chain links: a backup
 * with a parent is recorded only when the parent is on the target (and
 * recorded first) or a committed backup of the same domain in the catalog,
 * and the sha256 of the parent's manifest equals the one the child's
 * manifest records (version 3, the hash chain).  A broken link, a missing
 * parent or a refused parent refuses the backup (REFUSED names the domain,
 * both backups and the object).  What cannot be checked this way is listed
 * in UNCHECKED: links of manifests before version 3, the newest manifest of
 * each chain (no child records its digest) and the sha256 of whole
 * archives (verify reads them).
 *
 * Returns 0 when the target could be listed (RESULT says what was found;
 * unreadable manifests, conflicts and refused backups are not failures of
 * the run), -1 otherwise. */
int rebuild_run(struct catalog *cat, const struct rebuild_options *opts,
                struct rebuild_result *result, unsigned int flags);
void rebuild_result_clear(struct rebuild_result *r);

#endif
