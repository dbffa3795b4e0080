/* virtkeep - loading a domain's scheduler input from the catalog. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/util.h"
#include "src/plan/plan.h"
#include "src/sched/sched.h"

static const struct config_policy *policy_of(const struct config *cfg, const char *domain)
{
    const struct config_domain *d = cfg ? config_domain_find(cfg, domain) : NULL;

    return d && d->policy ? config_policy_find(cfg, d->policy) : NULL;
}

/* Append the locations of backup ID to *ALL. */
static int locations_add(struct catalog *cat, const char *id, struct catalog_locations **all)
{
    struct catalog_locations *more = NULL;
    struct catalog_location *v;

    if (catalog_archive_list(cat, id, NULL, &more) < 0)
        return -1;
    if (!*all) {
        *all = more;
        return 0;
    }
    v = vk_realloc_array((*all)->items, (*all)->count + more->count, sizeof *v);
    if (!v) {
        catalog_locations_free(more);
        return -1;
    }
    if (more->count)
        memcpy(v + (*all)->count, more->items, more->count * sizeof *v);
    (*all)->items = v;
    (*all)->count += more->count;
    free(more->items);
    free(more);
    return 0;
}

static bool chain_has(const struct catalog_backups *chain, const char *id)
{
    for (size_t i = 0; i < chain->count; i++)
        if (strcmp(chain->items[i].id, id) == 0)
            return true;
    return false;
}

static int locations_load(struct catalog *cat, struct sched_input_owned *o,
                          const struct catalog_backups *chain)
{
    const struct catalog_backup *last = catalog_chain_latest(o->history, o->domain);

    for (size_t i = 0; i < chain->count; i++)
        if (locations_add(cat, chain->items[i].id, &o->locations) < 0)
            return -1;
    if (last && !chain_has(chain, last->id) && locations_add(cat, last->id, &o->locations) < 0)
        return -1;
    if (!o->locations && !(o->locations = vk_calloc(1, sizeof *o->locations)))
        return -1;
    return 0;
}

/* The planner's model of reading DOMAIN's backups from TARGET (drills of
 * the domain first, as reader_cost_estimate says); *GUESS when unmeasured. */
struct target_model {
    double rate, overhead;
    bool guess;
};

static int target_rate(struct catalog *cat, const char *domain, const char *target,
                       struct target_model *m)
{
    struct reader_cost pt = {0};

    if (reader_cost_estimate(cat, domain, target, 0, &pt) < 0)
        return -1;
    m->rate = pt.rate;
    m->overhead = pt.overhead;
    m->guess = pt.guess;
    return 0;
}

/* The fastest copy of backup ID (archives only, not the manifest). */
static int backup_best(struct catalog *cat, const struct catalog_locations *locs,
                       const char *domain, const char *id, const char **target,
                       struct target_model *best)
{
    *target = NULL;
    for (size_t i = 0; i < locs->count; i++) {
        const struct catalog_location *l = &locs->items[i];
        struct target_model m;
        if (!l->disk || strcmp(l->backup_id, id) != 0)
            continue;
        if (target_rate(cat, domain, l->target, &m) < 0)
            return -1;
        if (!*target || m.rate > best->rate) {
            *target = l->target;
            *best = m;
        }
    }
    return 0;
}

static int model_load(struct catalog *cat, struct sched_input_owned *o,
                      const struct catalog_backups *chain)
{
    const struct config_policy *p = o->in.policy;
    const char *slow = NULL;
    struct target_model slow_m = {0};

    for (size_t i = 0; i < chain->count; i++) {
        const char *t;
        struct target_model m = {0};
        if (backup_best(cat, o->locations, o->domain, chain->items[i].id, &t, &m) < 0)
            return -1;
        if (t && (!slow || m.rate < slow_m.rate)) {
            slow = t;
            slow_m = m;
        }
    }
    if (!slow && p && p->targets && p->targets[0]) {
        slow = p->targets[0];
        if (target_rate(cat, o->domain, slow, &slow_m) < 0)
            return -1;
    }
    if (!slow)
        return 0;
    o->in.restore.read_rate = slow_m.rate;
    o->in.restore.overhead_seconds = slow_m.overhead;
    o->restore_guess = slow_m.guess;
    o->restore_target = vk_strdup(slow);
    return o->restore_target ? 0 : -1;
}

int sched_input_load(struct catalog *cat, const struct config *cfg, const char *domain,
                     struct sched_input_owned *out)
{
    struct catalog_backups *chain = NULL;
    int r = -1;

    memset(out, 0, sizeof *out);
    if (!(out->domain = vk_strdup(domain)))
        goto out;
    out->in.domain = out->domain;
    out->in.policy = policy_of(cfg, domain);
    if (catalog_backup_list(cat, domain, 0, &out->history) < 0 ||
        catalog_chain_current(out->history, domain, &chain) < 0 ||
        locations_load(cat, out, chain) < 0 ||
        catalog_job_list(cat, domain, 0, SCHED_INPUT_JOBS, &out->jobs) < 0 ||
        model_load(cat, out, chain) < 0)
        goto out;
    out->in.history = out->history;
    out->in.locations = out->locations;
    out->in.jobs = out->jobs;
    r = 0;
out:
    catalog_backups_free(chain);
    if (r < 0)
        sched_input_owned_clear(out);
    return r;
}

void sched_input_owned_clear(struct sched_input_owned *out)
{
    free(out->domain);
    catalog_backups_free(out->history);
    catalog_locations_free(out->locations);
    catalog_jobs_free(out->jobs);
    free(out->restore_target);
    memset(out, 0, sizeof *out);
}
