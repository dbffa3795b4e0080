/* virtkeep - the disaster recovery plan (see dr.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/conf/conf.h"
#include "src/plan/plan.h"

static void item_clear(struct dr_item *it)
{
    free(it->domain);
    free(it->host);
    free(it->backup_id);
    free(it->problem);
    vk_strv_free(it->reasons);
    memset(it, 0, sizeof *it);
}

void dr_plan_clear(struct dr_plan *plan)
{
    for (size_t i = 0; i < plan->nr; i++)
        item_clear(&plan->items[i]);
    free(plan->items);
    memset(plan, 0, sizeof *plan);
}

/* ---------------------------------------------------------------- schedule */

static bool restorable(const struct dr_item *it)
{
    return !it->problem && !it->never_backed_up;
}

/* RTO slack; domains without an RTO (or not restorable) come after. */
static double slack(const struct dr_item *it)
{
    if (!it->rto || !restorable(it))
        return INFINITY;
    return (double)it->rto - it->estimate_seconds;
}

static int item_compare(const void *pa, const void *pb)
{
    const struct dr_item *a = pa, *b = pb;
    unsigned int qa = a->priority ? a->priority : UINT32_MAX;
    unsigned int qb = b->priority ? b->priority : UINT32_MAX;
    double sa = slack(a), sb = slack(b);

    if (qa != qb)
        return qa < qb ? -1 : 1;
    if (sa != sb)
        return sa < sb ? -1 : 1;
    return strcmp(a->domain, b->domain);
}

static int reason_add(struct dr_item *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int reason_add(struct dr_item *it, const char *fmt, ...)
{
    size_t n = vk_strv_len(it->reasons);
    char **v = vk_realloc_array(it->reasons, n + 2, sizeof *v);
    va_list ap;
    int len;

    if (!v)
        return -1;
    it->reasons = v;
    v[n] = v[n + 1] = NULL;
    va_start(ap, fmt);
    len = vasprintf(&v[n], fmt, ap);
    va_end(ap);
    if (len < 0) {
        v[n] = NULL;
        vk_error_errno(ENOMEM, "cannot format a reason of the DR plan");
        return -1;
    }
    return 0;
}

static const char *dur(double seconds, char *buf, size_t len)
{
    return vk_duration_format(seconds > 0 ? (uint64_t)(seconds + 0.5) : 0, buf, len);
}

static int judge_rto(struct dr_item *it)
{
    char a[VK_DURATION_BUFLEN], b[VK_DURATION_BUFLEN], c[VK_DURATION_BUFLEN];

    if (!restorable(it)) {
        it->rto_met = false;
        if (it->never_backed_up)
            return reason_add(it, "it cannot be restored: it was never backed up");
        return reason_add(it, "it cannot be restored: %s", it->problem);
    }
    it->rto_met = !it->rto || it->finish <= (double)it->rto;
    if (it->rto_met)
        return 0;
    if (it->estimate_seconds > (double)it->rto)
        return reason_add(it, "its restore alone takes %s, more than its RTO of %s",
                          dur(it->estimate_seconds, a, sizeof a),
                          dur((double)it->rto, b, sizeof b));
    return reason_add(it,
                      "it finishes at %s, after its RTO of %s, because it waits %s in the queue "
                      "behind %u restore(s) of higher or equal priority",
                      dur(it->finish, a, sizeof a), dur((double)it->rto, b, sizeof b),
                      dur(it->start, c, sizeof c), it->waited_behind);
}

static int judge_rpo(struct dr_item *it, int64_t at)
{
    char a[VK_DURATION_BUFLEN], b[VK_DURATION_BUFLEN];

    if (it->never_backed_up) {
        it->data_loss = -1;
        it->rpo_met = false;
        return reason_add(it, "it was never backed up: all its data would be lost");
    }
    it->data_loss = at > it->backup_time ? at - it->backup_time : 0;
    it->rpo_met = !it->rpo || (uint64_t)it->data_loss <= it->rpo;
    if (it->rpo_met)
        return 0;
    return reason_add(it, "its latest backup is %s old, more than its RPO of %s",
                      dur((double)it->data_loss, a, sizeof a), dur((double)it->rpo, b, sizeof b));
}

/* The slot that frees first (the lowest on a tie). */
static unsigned int slot_first(const double *free_at, unsigned int n)
{
    unsigned int best = 0;

    for (unsigned int s = 1; s < n; s++)
        if (free_at[s] < free_at[best])
            best = s;
    return best;
}

static bool same_host(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The pool of each item's destination host (0..hosts-1), in item order;
 * *HOSTS gets the number of pools. */
static size_t *pools_assign(const struct dr_plan *plan, size_t *hosts)
{
    size_t *pool = vk_calloc(plan->nr + 1, sizeof *pool), *first = NULL;

    *hosts = 0;
    if (!pool || !(first = vk_calloc(plan->nr + 1, sizeof *first))) {
        free(pool);
        return NULL;
    }
    for (size_t i = 0; i < plan->nr; i++) {
        size_t g = 0;
        while (g < *hosts && !same_host(plan->items[first[g]].host, plan->items[i].host))
            g++;
        if (g == *hosts)
            first[(*hosts)++] = i;
        pool[i] = g;
    }
    free(first);
    return pool;
}

int dr_schedule(struct dr_plan *plan, unsigned int parallel, int64_t at)
{
    size_t pools = plan->nr ? plan->nr : 1;
    CLEANUP_FREE double *free_at = parallel ? vk_calloc(parallel * pools, sizeof *free_at) : NULL;
    CLEANUP_FREE unsigned int *ran = parallel ? vk_calloc(parallel * pools, sizeof *ran) : NULL;
    CLEANUP_FREE size_t *pool_of = NULL;

    if (parallel == 0) {
        vk_error(VK_ERR_INVALID, "a DR plan needs at least one parallel restore slot");
        return -1;
    }
    if (!free_at || !ran)
        return -1;
    plan->parallel = parallel;
    plan->at = at;
    plan->makespan = 0;
    plan->missed = 0;
    if (plan->nr)
        qsort(plan->items, plan->nr, sizeof *plan->items, item_compare);
    if (!(pool_of = pools_assign(plan, &plan->hosts)))
        return -1;
    for (size_t i = 0; i < plan->nr; i++) {
        struct dr_item *it = &plan->items[i];
        double *fa = free_at + pool_of[i] * parallel;
        unsigned int *rn = ran + pool_of[i] * parallel;

        vk_strv_free(it->reasons);
        it->reasons = NULL;
        it->slot = -1;
        it->start = it->finish = -1;
        it->waited_behind = 0;
        if (restorable(it)) {
            unsigned int s = slot_first(fa, parallel);
            it->slot = (int)s;
            it->start = fa[s];
            it->finish = it->start + it->estimate_seconds;
            it->waited_behind = rn[s]++;
            fa[s] = it->finish;
            if (it->finish > plan->makespan)
                plan->makespan = it->finish;
        }
        if (judge_rto(it) < 0 || judge_rpo(it, at) < 0)
            return -1;
        if (restorable(it) && it->source == READER_SOURCE_GUESS &&
            reason_add(it, "note: its estimate is a guess, without measured history") < 0)
            return -1;
        if (!it->rto_met || !it->rpo_met)
            plan->missed++;
    }
    return 0;
}

/* ---------------------------------------------------------------- build */

static int names_add(char ***names, const char *name)
{
    size_t n = vk_strv_len(*names);
    char **v;

    if (*names && vk_strv_contains(*names, name))
        return 0;
    if (!(v = vk_realloc_array(*names, n + 2, sizeof *v)))
        return -1;
    *names = v;
    v[n + 1] = NULL;
    return (v[n] = vk_strdup(name)) ? 0 : -1;
}

static int names_collect(struct catalog *cat, const struct config *cfg, char ***names)
{
    struct catalog_domains *doms = NULL;
    int r = 0;

    if (!(*names = vk_calloc(1, sizeof **names)))
        return -1;
    for (size_t i = 0; cfg && i < cfg->n_domains && r == 0; i++)
        r = names_add(names, cfg->domains[i].name);
    if (r == 0 && catalog_domain_list(cat, &doms) < 0)
        r = -1;
    for (size_t i = 0; r == 0 && i < doms->count; i++)
        r = names_add(names, doms->items[i].name);
    catalog_domains_free(doms);
    return r;
}

static void policy_apply(const struct config *cfg, struct dr_item *it)
{
    const struct config_domain *d = cfg ? config_domain_find(cfg, it->domain) : NULL;
    const struct config_policy *p = d && d->policy ? config_policy_find(cfg, d->policy) : NULL;

    if (p) {
        it->priority = p->priority;
        it->rpo = p->rpo;
        it->rto = p->rto;
    }
}

/* Does DOMAIN have any committed backup at or before AT? */
static int has_backup(struct catalog *cat, const char *domain, int64_t at, bool *out)
{
    struct catalog_backups *all = NULL;

    *out = false;
    if (catalog_backup_list(cat, domain, CATALOG_LIST_COMMITTED, &all) < 0)
        return -1;
    for (size_t i = 0; i < all->count; i++)
        *out |= all->items[i].started <= at;
    catalog_backups_free(all);
    return 0;
}

/* The host the domain last ran on (several hosts on one catalog). */
static int host_find(struct catalog *cat, struct dr_item *it)
{
    struct catalog_domain *d = catalog_domain_get(cat, it->domain);

    if (!d)
        return vk_error_code() == VK_ERR_NOT_FOUND ? 0 : -1;
    it->host = VK_STEAL(d->host);
    catalog_domain_free(d);
    return 0;
}

static int item_plan(struct catalog *cat, const struct dr_options *o, struct dr_item *it)
{
    struct plan_options po = {
        .domain = it->domain, .at = o->at, .now = o->now, .from = o->target, .config = o->config};
    struct plan_restore p;
    bool any;

    policy_apply(o->config, it);
    if (host_find(cat, it) < 0 || has_backup(cat, it->domain, o->at, &any) < 0)
        return -1;
    if (!any) {
        it->never_backed_up = true;
        return 0;
    }
    if (plan_restore(cat, &po, &p, 0) < 0) {
        /* Not fatal: this domain cannot be restored, and the plan says why. */
        it->problem = vk_strdup(vk_error_message());
        return it->problem ? 0 : -1;
    }
    it->backup_id = VK_STEAL(p.backup_id);
    it->backup_time = p.backup_time;
    it->estimate_seconds = p.estimate_seconds;
    it->source = p.source;
    plan_restore_clear(&p);
    return it->backup_id ? 0 : -1;
}

int dr_plan_build(struct catalog *cat, const struct dr_options *o, struct dr_plan *out,
                  unsigned int flags)
{
    char **names = NULL;
    int r = -1;

    memset(out, 0, sizeof *out);
    if (flags != 0) {
        vk_error(VK_ERR_INVALID, "dr_plan_build: unknown flags");
        return -1;
    }
    if (names_collect(cat, o->config, &names) < 0)
        goto out;
    out->items = vk_calloc(vk_strv_len(names) + 1, sizeof *out->items);
    if (!out->items)
        goto out;
    for (size_t i = 0; names[i]; i++) {
        struct dr_item *it = &out->items[out->nr++];
        if (!(it->domain = vk_strdup(names[i])) || item_plan(cat, o, it) < 0)
            goto out;
    }
    r = dr_schedule(out, o->parallel ? o->parallel : 1, o->at == INT64_MAX ? o->now : o->at);
out:
    vk_strv_free(names);
    if (r < 0)
        dr_plan_clear(out);
    return r;
}
