/* virtkeep - prune: apply each domain's retention (src/retention.h) to the
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
#ifndef VIRTKEEP_PRUNE_H
#define VIRTKEEP_PRUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
