/* virtkeep - one scheduler pass of virtkeepd: plan every policy domain,
 * catch up at start, dispatch under the limits, prune, drill. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/daemon/daemon.h"
#include "src/sched/sched.h"

struct pass {
    struct sched_job *jobs;
    size_t n;
    char **drills; /* domains due for a drill (NULL-terminated) */
    size_t n_drills;
};

static void pass_clear(struct pass *p)
{
    for (size_t i = 0; i < p->n; i++)
        sched_job_clear(&p->jobs[i]);
    free(p->jobs);
    vk_strv_free(p->drills);
}

static struct daemon_domain *domain_slot(struct daemon *d, const char *name)
{
    struct daemon_domain *v, *slot = NULL;
    char *copy;

    for (size_t i = 0; i < d->n_domains; i++)
        if (strcmp(d->domains[i].name, name) == 0)
            return &d->domains[i];
    if (!(copy = vk_strdup(name)))
        return NULL;
    /* The API threads read the array: grow it under the lock. */
    pthread_mutex_lock(&d->lock);
    if ((v = vk_realloc_array(d->domains, d->n_domains + 1, sizeof *v)) != NULL) {
        d->domains = v;
        slot = &v[d->n_domains++];
        memset(slot, 0, sizeof *slot);
        slot->name = copy;
        slot->next.kind = SCHED_NONE;
    }
    pthread_mutex_unlock(&d->lock);
    if (!slot)
        free(copy);
    return slot;
}

static int job_copy(const struct sched_job *src, struct sched_job *dst)
{
    *dst = *src;
    dst->domain = src->domain ? vk_strdup(src->domain) : NULL;
    dst->target = src->target ? vk_strdup(src->target) : NULL;
    dst->backup_id = src->backup_id ? vk_strdup(src->backup_id) : NULL;
    dst->parent = src->parent ? vk_strdup(src->parent) : NULL;
    dst->reason = src->reason ? vk_strdup(src->reason) : NULL;
    if ((src->domain && !dst->domain) || (src->target && !dst->target) ||
        (src->backup_id && !dst->backup_id) || (src->parent && !dst->parent) ||
        (src->reason && !dst->reason)) {
        sched_job_clear(dst);
        return -1;
    }
    return 0;
}

/* Remember the earliest job for the API (next_job). */
static void next_remember(struct daemon *d, struct daemon_domain *dd, const struct sched_job *j)
{
    struct sched_job copy = {.kind = SCHED_NONE};

    if (j && job_copy(j, &copy) < 0)
        return;
    pthread_mutex_lock(&d->lock);
    sched_job_clear(&dd->next);
    dd->next = copy;
    pthread_mutex_unlock(&d->lock);
}

static bool drill_due(const struct daemon *d, const struct sched_input_owned *o, int64_t now)
{
    const struct config_policy *p = o->in.policy;
    int64_t last = 0;

    if (!d->drill_supported || !p->drill_every || !catalog_chain_latest(o->history, o->domain))
        return false;
    for (size_t i = 0; i < o->jobs->count; i++)
        if (strcmp(o->jobs->items[i].kind, "drill") == 0 && o->jobs->items[i].started > last)
            last = o->jobs->items[i].started;
    return now >= last + (int64_t)p->drill_every;
}

/* A backup worker can fail before it records a backup row (the target
 * cannot be opened, the domain is gone): the scheduler, which counts
 * failed backup rows, would retry at once.  Back off from the failed
 * backup jobs of the domain too, with the scheduler's backoff and its
 * limit LATEST (the backup job's latest_start). */
static int64_t job_backoff_until(const struct sched_input_owned *o, int64_t latest)
{
    unsigned int failures = 0;
    int64_t last = 0;

    for (size_t i = 0; i < o->jobs->count; i++) {
        const struct catalog_job *j = &o->jobs->items[i];
        if (strcmp(j->kind, "backup") != 0 || j->state == CATALOG_JOB_RUNNING ||
            j->state == CATALOG_JOB_QUEUED || j->state == CATALOG_JOB_CANCELLED)
            continue;
        if (j->state != CATALOG_JOB_FAILED)
            break;
        if (!failures++)
            last = j->finished;
    }
    if (!failures)
        return 0;
    return sched_retry_at(failures, last, latest, o->in.policy->rpo, o->domain);
}

static int plan_domain(struct daemon *d, struct daemon_fleet_view *fv, const char *name,
                       int64_t now, struct pass *p)
{
    struct sched_input_owned o;
    struct sched_job *jobs = NULL, *v;
    struct daemon_domain *dd = domain_slot(d, name);
    int64_t hold, latest = 0;
    size_t n = 0;
    int r = -1;

    if (!dd)
        return -1;
    if (daemon_domain_elsewhere(d, fv, name)) {
        next_remember(d, dd, NULL);
        return 0;
    }
    if (sched_input_load(d->cat, d->cfg, name, &o) < 0)
        return -1;
    if (!o.in.policy) {
        r = 0;
        goto out;
    }
    if (sched_plan(&o.in, now, &jobs, &n) < 0 ||
        !(v = vk_realloc_array(p->jobs, p->n + n + 1, sizeof *v)))
        goto out;
    p->jobs = v;
    for (size_t i = 0; i < n; i++)
        if (jobs[i].kind != SCHED_COPY)
            latest = jobs[i].latest_start;
    hold = job_backoff_until(&o, latest);
    if (dd->not_before > hold)
        hold = dd->not_before;
    for (size_t i = 0; i < n; i++)
        if (hold > jobs[i].due && jobs[i].kind != SCHED_COPY)
            jobs[i].due = hold;
    next_remember(d, dd, n ? &jobs[0] : NULL);
    for (size_t i = 0; i < n; i++) {
        p->jobs[p->n++] = jobs[i];
    }
    n = 0;
    if (drill_due(d, &o, now) && !daemon_domain_busy(d, name)) {
        char **dv = vk_realloc_array(p->drills, p->n_drills + 2, sizeof *dv);
        if (!dv || !(dv[p->n_drills] = vk_strdup(name)))
            goto out;
        p->drills = dv;
        dv[++p->n_drills] = NULL;
    }
    r = 0;
out:
    for (size_t i = 0; i < n; i++)
        sched_job_clear(&jobs[i]);
    free(jobs);
    sched_input_owned_clear(&o);
    return r;
}

/* First pass: spread the overdue backups; remember each domain's slot. */
static void catchup(struct daemon *d, struct pass *p, int64_t now)
{
    size_t overdue = 0;
    unsigned int spread;

    for (size_t i = 0; i < p->n; i++)
        overdue += p->jobs[i].due < now;
    spread = (unsigned int)(overdue * d->tick < DAEMON_CATCHUP_MAX ? overdue * d->tick
                                                                   : DAEMON_CATCHUP_MAX);
    sched_catchup(p->jobs, p->n, now, spread);
    for (size_t i = 0; i < p->n; i++) {
        struct daemon_domain *dd = domain_slot(d, p->jobs[i].domain);
        if (dd && p->jobs[i].kind != SCHED_COPY && p->jobs[i].due > now)
            dd->not_before = p->jobs[i].due;
    }
    if (overdue)
        vk_info("catching up %zu missed job(s) over %us", overdue, spread);
    d->caught_up = true;
}

static void dispatch(struct daemon *d, struct pass *p, int64_t now)
{
    CLEANUP_FREE struct sched_busy *busy = vk_calloc(d->n_workers + 1, sizeof *busy);
    CLEANUP_FREE size_t *start = vk_calloc(p->n + 1, sizeof *start);
    size_t k;

    if (!busy || !start)
        return;
    for (size_t i = 0; i < d->n_workers; i++)
        busy[i] = (struct sched_busy){d->workers[i]->domain, d->workers[i]->target};
    k = sched_dispatch(p->jobs, p->n, now, &d->limits, busy, d->n_workers, start);
    for (size_t i = 0; i < k; i++) {
        const struct sched_job *j = &p->jobs[start[i]];

        if (daemon_job_start(d, j) == 0)
            continue;
        if (vk_error_code() == VK_ERR_BUSY) /* leased by another host */
            vk_debug("%s", vk_error_message());
        else
            vk_log_error("cannot start the %s job of domain '%s': %s", sched_kind_name(j->kind),
                         j->domain, vk_error_message());
    }
}

static bool room(const struct daemon *d)
{
    return !d->limits.per_host || d->n_workers < d->limits.per_host;
}

void daemon_prunes_start(struct daemon *d)
{
    for (size_t i = 0; i < d->n_domains && room(d); i++) {
        struct daemon_domain *dd = &d->domains[i];
        if (!dd->prune_pending || daemon_domain_busy(d, dd->name))
            continue;
        dd->prune_pending = false;
        if (daemon_job_start_simple(d, "prune", dd->name) < 0)
            vk_log_error("cannot start the prune of domain '%s': %s", dd->name, vk_error_message());
    }
}

int daemon_tick(struct daemon *d, int64_t now)
{
    struct daemon_fleet_view view;
    struct pass p = {0};
    int r = 0;

    daemon_fleet_tick(d, now);
    daemon_fleet_view_init(d, &view, now);
    for (size_t i = 0; i < d->cfg->n_domains; i++)
        if (plan_domain(d, &view, d->cfg->domains[i].name, now, &p) < 0) {
            vk_log_error("cannot plan the jobs of domain '%s': %s", d->cfg->domains[i].name,
                         vk_error_message());
            r = -1;
        }
    if (!d->caught_up && !d->opt.once)
        catchup(d, &p, now);
    daemon_prunes_start(d);
    dispatch(d, &p, now);
    for (size_t i = 0; i < p.n_drills && room(d); i++)
        if (!daemon_domain_busy(d, p.drills[i]) &&
            daemon_job_start_simple(d, "drill", p.drills[i]) < 0)
            vk_log_error("cannot start the drill of domain '%s': %s", p.drills[i],
                         vk_error_message());
    daemon_fleet_view_clear(&view);
    pass_clear(&p);
    return r;
}
