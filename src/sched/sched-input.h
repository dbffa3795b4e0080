/* virtkeep - what the scheduler needs to know about one domain, read from
 * the catalog and the configuration.  One place for it: virtkeepd and
 * `virtkeep status` (through the API) both call sched_input_load().
 *
 * What is loaded:
 *   - the policy of the domain's [domain] section (borrowed from CFG, which
 *     must outlive the input), or NULL when the domain has none;
 *   - the history: every backup row of the domain, any status;
 *   - the locations of the backups of the current chain (and the latest
 *     good backup), for the copies to secondary targets;
 *   - the domain's recent jobs (SCHED_INPUT_JOBS, newest first);
 *   - the restore model: the read rate of the slowest target the current
 *     chain needs.  Each backup is read from its fastest copy, so the rate
 *     is, over the chain's backups, the lowest of each backup's best rate,
 *     as estimated by the planner (plan_read_estimate: measured read
 *     throughput, else PLAN_DEFAULT_READ_RATE, then GUESS is set).  Without
 *     a chain, the policy's primary target is used.
 */
#ifndef VIRTKEEP_SCHED_INPUT_H
#define VIRTKEEP_SCHED_INPUT_H

#include <stdbool.h>

#include "catalog/catalog.h"
#include "src/conf/conf.h"
#include "src/sched/sched.h"

#define SCHED_INPUT_JOBS 50 /* recent jobs loaded per domain */

struct sched_input_owned {
    struct sched_input in; /* points into the fields below and into the config */
    char *domain;
    struct catalog_backups *history;
    struct catalog_locations *locations;
    struct catalog_jobs *jobs;
    char *restore_target; /* the slowest target of the model, or NULL */
    bool restore_guess;   /* its rate is a guess (no measurement) */
};

/* Fill OUT for DOMAIN.  Returns 0, or -1 with the error recorded (OUT is
 * then cleared).  CFG may be NULL (no policy: nothing is scheduled). */
int sched_input_load(struct catalog *cat, const struct config *cfg, const char *domain,
                     struct sched_input_owned *out);
/* Free what OUT owns; safe on a zeroed or cleared OUT. */
void sched_input_owned_clear(struct sched_input_owned *out);

#endif
