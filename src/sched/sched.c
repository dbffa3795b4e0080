/* virtkeep - the scheduler core.  Pure functions over the catalog's rows;
 * see sched.h for the rules. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/sched/sched.h"

#define DAY 86400

const char *sched_kind_name(enum sched_kind kind)
{
    static const char *const names[] = {"none", "full", "inc", "copy"};

    return (unsigned int)kind < VK_ARRAY_SIZE(names) ? names[kind] : "?";
}

void sched_job_clear(struct sched_job *job)
{
    if (!job)
        return;
    free(job->domain);
    free(job->target);
    free(job->backup_id);
    free(job->parent);
    free(job->reason);
    memset(job, 0, sizeof *job);
}

void sched_status_clear(struct sched_status *st)
{
    if (!st)
        return;
    free(st->last_backup);
    memset(st, 0, sizeof *st);
}

/* ---- small pieces ----------------------------------------------------- */

static bool is_full_class(enum catalog_level level)
{
    return level == CATALOG_LEVEL_FULL || level == CATALOG_LEVEL_COPY;
}

double sched_expected_duration(const struct catalog_backups *history, const char *domain,
                               enum catalog_level level, double dflt)
{
    for (int any = 0; any < 2; any++) {
        double sum = 0;
        unsigned int n = 0;
        for (size_t i = history->count; i-- > 0 && n < SCHED_HISTORY;) {
            const struct catalog_backup *b = &history->items[i];
            if (b->status != CATALOG_STATUS_COMMITTED || strcmp(b->domain, domain) != 0 ||
                b->finished < b->started ||
                (!any && is_full_class(b->level) != is_full_class(level)))
                continue;
            sum += (double)(b->finished - b->started);
            n++;
        }
        if (n)
            return sum / n;
    }
    return dflt > 0 ? dflt : SCHED_DEFAULT_DURATION;
}

double sched_restore_estimate(const struct catalog_backups *chain, uint64_t extra_bytes,
                              const struct sched_restore_model *model)
{
    double bytes = (double)extra_bytes;

    if (!model || model->read_rate <= 0)
        return -1;
    for (size_t i = 0; chain && i < chain->count; i++)
        bytes += (double)chain->items[i].bytes_stored;
    return bytes / model->read_rate + model->overhead_seconds;
}

int64_t sched_margin(uint64_t rpo)
{
    uint64_t m = rpo / 10;

    return (int64_t)(m > SCHED_MARGIN_MAX ? SCHED_MARGIN_MAX : m);
}

uint32_t sched_jitter(const char *domain, uint32_t span)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    if (span == 0)
        return 0;
    for (const unsigned char *s = (const unsigned char *)domain; *s; s++)
        h = (h ^ *s) * 16777619u;
    return h % span;
}

int64_t sched_backoff(unsigned int failures, uint64_t rpo, const char *domain)
{
    /* The cap wins over the base: a short RPO retries sooner (an RPO of
     * 15 s retries after 3 s, not 60), and never at once. */
    int64_t cap = (int64_t)(rpo / 4 < SCHED_RETRY_MAX ? rpo / 4 : SCHED_RETRY_MAX);
    int64_t wait = SCHED_RETRY_BASE;

    if (cap < 1)
        cap = 1;
    for (unsigned int i = 1; i < failures && wait < cap; i++)
        wait *= 2;
    if (wait > cap)
        wait = cap;
    return wait + sched_jitter(domain, (uint32_t)(wait / 8 + 1));
}

int64_t sched_retry_at(unsigned int failures, int64_t last_end, int64_t latest, uint64_t rpo,
                       const char *domain)
{
    int64_t t = last_end + sched_backoff(failures, rpo, domain);

    /* A failure that left time for a retry must not lose the RPO by
     * waiting: retry by the last start that still commits in time. */
    if (latest && last_end <= latest && t > latest)
        t = latest;
    return t;
}

bool sched_window_contains(const struct config_window *w, int64_t t)
{
    int64_t m;

    if (!w || !w->set)
        return true;
    m = ((t % DAY + DAY) % DAY) / 60;
    if (w->start < w->end)
        return m >= w->start && m < w->end;
    return m >= w->start || m < w->end;
}

int64_t sched_window_next(const struct config_window *w, int64_t t)
{
    int64_t day, open;

    if (sched_window_contains(w, t))
        return t;
    day = t - ((t % DAY + DAY) % DAY);
    open = day + (int64_t)w->start * 60;
    return open > t ? open : open + DAY;
}

/* ---- one domain ------------------------------------------------------- */

static bool domain_running(const struct catalog_backups *h, const char *domain, const char **id)
{
    for (size_t i = 0; i < h->count; i++)
        if (h->items[i].status == CATALOG_STATUS_RUNNING &&
            strcmp(h->items[i].domain, domain) == 0) {
            *id = h->items[i].id;
            return true;
        }
    return false;
}

/* Failed backups of DOMAIN started after SINCE: how many, and when the
 * last one ended. */
static unsigned int failures_since(const struct catalog_backups *h, const char *domain,
                                   int64_t since, int64_t *last_end)
{
    unsigned int n = 0;

    *last_end = 0;
    for (size_t i = 0; i < h->count; i++) {
        const struct catalog_backup *b = &h->items[i];
        int64_t end = b->finished ? b->finished : b->started;
        if (b->status != CATALOG_STATUS_FAILED || strcmp(b->domain, domain) != 0 ||
            b->started <= since)
            continue;
        n++;
        if (end > *last_end)
            *last_end = end;
    }
    return n;
}

/* Mean stored size of the incrementals of CHAIN (0 when it has none). */
static uint64_t inc_bytes_mean(const struct catalog_backups *chain)
{
    uint64_t sum = 0;

    if (chain->count < 2)
        return 0;
    for (size_t i = 1; i < chain->count; i++)
        sum += chain->items[i].bytes_stored;
    return sum / (chain->count - 1);
}

static char *fmt_seconds(double s, char *buf, size_t len)
{
    return vk_duration_format(s < 1 ? 1 : (uint64_t)(s + 0.5), buf, len);
}

/* Why the next backup must be a full although the chain is usable, or
 * NULL (inc); *ERR on ENOMEM. */
static char *full_reason(const struct sched_input *in, const struct catalog_backups *chain,
                         int64_t due, bool *err)
{
    const struct config_policy *p = in->policy;
    const struct catalog_backup *full = &chain->items[0];
    char a[32], b[32];
    double est, est_full;
    char *r = NULL;

    if (p->max_chain && chain->count >= p->max_chain)
        r = vk_asprintf("the chain of %s has %zu backups, the limit (max_chain) is %u", full->id,
                        chain->count, p->max_chain);
    else if (p->full_every && due >= full->started + (int64_t)p->full_every)
        r = vk_asprintf("full %s is older than full_every (%s)", full->id,
                        vk_duration_format(p->full_every, a, sizeof a));
    else if (p->rto && in->restore.read_rate > 0) {
        struct catalog_backups one = {.count = 1, .items = (struct catalog_backup *)full};
        est = sched_restore_estimate(chain, inc_bytes_mean(chain), &in->restore);
        est_full = sched_restore_estimate(&one, 0, &in->restore);
        if (est > (double)p->rto && est_full <= (double)p->rto)
            r = vk_asprintf("restoring the chain with one more incremental would take %s, more "
                            "than the RTO (%s)",
                            fmt_seconds(est, a, sizeof a), vk_duration_format(p->rto, b, sizeof b));
        else
            return NULL;
    } else
        return NULL;
    *err = r == NULL;
    return r;
}

/* The kind of the next backup, its parent and why. */
static int backup_kind(const struct sched_input *in, int64_t due, struct sched_job *job)
{
    struct catalog_next next = {0};
    struct catalog_backups *chain = NULL;
    bool err = false;
    int rc = -1;

    if (catalog_chain_next(in->history, in->domain, CATALOG_LEVEL_AUTO, &next) < 0 ||
        catalog_chain_current(in->history, in->domain, &chain) < 0)
        goto out;
    if (next.level != CATALOG_LEVEL_INC || chain->count == 0) {
        job->kind = SCHED_FULL;
        job->reason = vk_strdup(next.reason ? next.reason : "there is no valid chain");
    } else if ((job->reason = full_reason(in, chain, due, &err)) != NULL) {
        job->kind = SCHED_FULL;
    } else if (!err) {
        job->kind = SCHED_INC;
        job->parent = vk_strdup(next.parent);
        job->reason = vk_asprintf("incremental on %s keeps the RPO", next.parent);
    }
    rc = job->reason && (job->kind != SCHED_INC || job->parent) ? 0 : -1;
out:
    catalog_next_clear(&next);
    catalog_backups_free(chain);
    return rc;
}

/* Delay DUE for failures and the window; say so in the reason. */
static int backup_delay(const struct sched_input *in, int64_t now, int64_t since,
                        struct sched_job *job)
{
    const struct config_policy *p = in->policy;
    int64_t last_end, t;
    char *r;

    job->attempt = failures_since(in->history, in->domain, since, &last_end);
    if (job->attempt) {
        t = sched_retry_at(job->attempt, last_end, job->latest_start, p->rpo, in->domain);
        if (t > job->due)
            job->due = t;
        r = vk_asprintf("%s; retry %u after %u failures", job->reason, job->attempt + 1,
                        job->attempt);
        if (!r)
            return -1;
        free(job->reason);
        job->reason = r;
    }
    t = job->due < now ? now : job->due;
    if (!sched_window_contains(&p->window, t)) {
        job->due = sched_window_next(&p->window, t);
        r = vk_asprintf("%s; waits for the backup window", job->reason);
        if (!r)
            return -1;
        free(job->reason);
        job->reason = r;
    }
    return 0;
}

static int backup_job(const struct sched_input *in, int64_t now, struct sched_job *job)
{
    const struct config_policy *p = in->policy;
    const struct catalog_backup *last = catalog_chain_latest(in->history, in->domain);
    const char *running;
    enum catalog_level level;

    job->priority = p->priority;
    job->due = now;
    if (domain_running(in->history, in->domain, &running)) {
        job->kind = SCHED_NONE;
        job->reason = vk_asprintf("backup %s is running", running);
        return job->reason ? 0 : -1;
    }
    /* The kind depends on the due time (full_every) and the due time on
     * the kind (expected duration): take the inc's due time first. */
    job->expected_seconds =
        sched_expected_duration(in->history, in->domain, CATALOG_LEVEL_INC, in->default_duration);
    if (last)
        job->due =
            last->started + (int64_t)p->rpo - (int64_t)job->expected_seconds - sched_margin(p->rpo);
    if (backup_kind(in, job->due, job) < 0)
        return -1;
    level = job->kind == SCHED_FULL ? CATALOG_LEVEL_FULL : CATALOG_LEVEL_INC;
    job->expected_seconds =
        sched_expected_duration(in->history, in->domain, level, in->default_duration);
    if (last) {
        job->latest_start = last->started + (int64_t)p->rpo - (int64_t)job->expected_seconds;
        job->due = job->latest_start - sched_margin(p->rpo);
    }
    if (p->targets && p->targets[0] && !(job->target = vk_strdup(p->targets[0])))
        return -1;
    return backup_delay(in, now, last ? last->started : INT64_MIN, job);
}

static bool on_target(const struct catalog_locations *locs, const char *id, const char *target)
{
    for (size_t i = 0; i < locs->count; i++)
        if (!locs->items[i].disk && strcmp(locs->items[i].backup_id, id) == 0 &&
            strcmp(locs->items[i].target, target) == 0)
            return true;
    return false;
}

/* Failed copy jobs of DOMAIN to TARGET since the last one that succeeded. */
static unsigned int copy_failures(const struct catalog_jobs *jobs, const char *domain,
                                  const char *target, int64_t *last_end)
{
    unsigned int n = 0;

    *last_end = 0;
    for (size_t i = 0; jobs && i < jobs->count; i++) {
        const struct catalog_job *j = &jobs->items[i];
        if (strcmp(j->kind, "copy") != 0 || !j->domain || strcmp(j->domain, domain) != 0 ||
            !j->target || strcmp(j->target, target) != 0)
            continue;
        if (j->state == CATALOG_JOB_SUCCEEDED)
            break;
        if (j->state != CATALOG_JOB_FAILED)
            continue;
        n++;
        if (j->finished > *last_end)
            *last_end = j->finished;
    }
    return n;
}

static int copy_job(const struct sched_input *in, const struct catalog_backup *last,
                    const char *target, struct sched_job *job)
{
    int64_t last_end, t;

    job->kind = SCHED_COPY;
    job->priority = in->policy->priority;
    job->due = last->finished ? last->finished : last->started;
    job->attempt = copy_failures(in->jobs, in->domain, target, &last_end);
    if (job->attempt) {
        t = last_end + sched_backoff(job->attempt, in->policy->rpo, in->domain);
        if (t > job->due)
            job->due = t;
    }
    job->target = vk_strdup(target);
    job->backup_id = vk_strdup(last->id);
    job->reason = vk_asprintf("backup %s is not on copy target '%s' yet%s", last->id, target,
                              job->attempt ? " (retry after failed copies)" : "");
    return job->target && job->backup_id && job->reason ? 0 : -1;
}

static int job_cmp(const void *a, const void *b)
{
    const struct sched_job *x = a, *y = b;

    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return (x->kind == SCHED_COPY) - (y->kind == SCHED_COPY);
}

static int plan_fill(const struct sched_input *in, int64_t now, struct sched_job *jobs, size_t *n)
{
    const struct catalog_backup *last = catalog_chain_latest(in->history, in->domain);

    if (in->policy->rpo) {
        if (backup_job(in, now, &jobs[*n]) < 0 || !(jobs[*n].domain = vk_strdup(in->domain)))
            return -1;
        if (jobs[*n].kind == SCHED_NONE)
            sched_job_clear(&jobs[*n]);
        else
            (*n)++;
    }
    for (size_t i = 1; last && in->locations && in->policy->targets && in->policy->targets[i];
         i++) {
        if (on_target(in->locations, last->id, in->policy->targets[i]))
            continue;
        if (copy_job(in, last, in->policy->targets[i], &jobs[*n]) < 0 ||
            !(jobs[*n].domain = vk_strdup(in->domain)))
            return -1;
        (*n)++;
    }
    return 0;
}

int sched_plan(const struct sched_input *in, int64_t now, struct sched_job **jobs, size_t *n)
{
    size_t cap = 1 + (in->policy ? vk_strv_len(in->policy->targets) : 0);
    struct sched_job *v = vk_calloc(cap, sizeof *v);

    *jobs = NULL;
    *n = 0;
    if (!v)
        return -1;
    if (in->policy && plan_fill(in, now, v, n) < 0) {
        for (size_t i = 0; i < cap; i++)
            sched_job_clear(&v[i]);
        free(v);
        *n = 0;
        return -1;
    }
    qsort(v, *n, sizeof *v, job_cmp);
    *jobs = v;
    return 0;
}

int sched_next(const struct sched_input *in, int64_t now, struct sched_job *out)
{
    struct sched_job *jobs;
    size_t n;

    memset(out, 0, sizeof *out);
    if (sched_plan(in, now, &jobs, &n) < 0)
        return -1;
    if (n) {
        *out = jobs[0];
        for (size_t i = 1; i < n; i++)
            sched_job_clear(&jobs[i]);
    } else {
        out->kind = SCHED_NONE;
        out->due = INT64_MAX;
        out->domain = vk_strdup(in->domain);
        out->reason = vk_strdup(!in->policy        ? "the domain has no policy"
                                : !in->policy->rpo ? "the policy has no rpo"
                                                   : "a backup is running");
    }
    free(jobs);
    return out->kind != SCHED_NONE || (out->domain && out->reason) ? 0 : -1;
}

/* ---- status ----------------------------------------------------------- */

int sched_status_compute(const struct sched_input *in, int64_t now, struct sched_status *out)
{
    const struct catalog_backup *last = catalog_chain_latest(in->history, in->domain);
    struct catalog_backups *chain = NULL;
    int64_t last_end;

    memset(out, 0, sizeof *out);
    out->exposure = -1;
    out->rto_estimate = -1;
    if (catalog_chain_current(in->history, in->domain, &chain) < 0)
        return -1;
    out->chain_length = (unsigned int)chain->count;
    if (chain->count)
        out->rto_estimate = sched_restore_estimate(chain, 0, &in->restore);
    catalog_backups_free(chain);
    out->failures =
        failures_since(in->history, in->domain, last ? last->started : INT64_MIN, &last_end);
    if (last) {
        out->last_success = last->started;
        out->exposure = now - last->started;
        if (!(out->last_backup = vk_strdup(last->id)))
            return -1;
    }
    if (in->policy && in->policy->rpo)
        out->rpo_violated = !last || out->exposure > (int64_t)in->policy->rpo;
    if (in->policy && in->policy->rto)
        out->rto_violated = out->rto_estimate > (double)in->policy->rto;
    return 0;
}
