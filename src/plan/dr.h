/* virtkeep - the disaster recovery plan: every domain restored at once.
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
 *   - list scheduling on PARALLEL slots: in that order, each restorable
 *     domain starts on the slot that frees first (the lowest slot number on
 *     a tie) and finishes estimate seconds later.  The total duration is
 *     the makespan, the latest finish;
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
#ifndef VIRTKEEP_DR_H
#define VIRTKEEP_DR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/plan/plan.h"

struct catalog;
struct config;

struct dr_item {
    /* inputs */
    char *domain;
    unsigned int priority; /* 0: unset */
    uint64_t rpo, rto;     /* seconds, 0: no objective */
    char *backup_id;       /* the backup restored, or NULL */
    int64_t backup_time;   /* its time */
    bool never_backed_up;
    char *problem; /* why it cannot be restored (a sentence), or NULL */
    double estimate_seconds;
    enum plan_source source;
    /* results (dr_schedule) */
    int slot;                   /* 0..parallel-1, or -1 when not restorable */
    double start, finish;       /* offsets from the disaster, seconds; -1 when not */
    int64_t data_loss;          /* seconds, -1 never backed up */
    unsigned int waited_behind; /* restores that ran on its slot before it */
    bool rto_met, rpo_met;
    char **reasons; /* NULL-terminated, may be empty */
};

struct dr_plan {
    struct dr_item *items; /* in restore order after dr_schedule */
    size_t nr;
    unsigned int parallel;
    int64_t at;
    double makespan;
    size_t missed; /* domains with an objective missed */
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

#endif
