/* virtkeep - retention: which backups of a domain a policy keeps.
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
#ifndef VIRTKEEP_RETENTION_H
#define VIRTKEEP_RETENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog/catalog.h"
#include "src/conf/conf.h"

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

#endif
