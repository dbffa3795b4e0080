/* virtkeep - host evacuation: every running domain (and, on request, every
 * stopped persistent one) off the source host.
 *
 * Placement happens first, for all domains, biggest memory first: each
 * domain's pre-checks run against every destination, and the domain goes to
 * the destination with the most free memory among those that pass, after
 * subtracting what was already placed there.  Then N workers migrate the
 * domains, each with its own connections and catalog handle; a failure is
 * recorded in that domain's item and does not stop the others.
 */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/migrate/migrate.h"
#include "src/virt/virt.h"

int evacuate_place(struct evacuate_dest *dests, size_t n, const bool *passes, uint64_t need)
{
    int best = -1;

    for (size_t i = 0; i < n; i++) {
        if (!passes[i] || dests[i].free_bytes < need)
            continue;
        if (best < 0 || dests[i].free_bytes > dests[best].free_bytes)
            best = (int)i;
    }
    if (best >= 0)
        dests[best].free_bytes -= need;
    return best;
}

void evacuate_result_clear(struct evacuate_result *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->nr; i++) {
        free(res->items[i].domain);
        free(res->items[i].dest);
        migrate_result_clear(&res->items[i].res);
    }
    free(res->items);
    memset(res, 0, sizeof(*res));
}

/* ---------------------------------------------------------------- plan */

struct plan {
    const struct evacuate_options *o;
    struct virt_conn *src;
    struct virt_conn **dconns; /* one per destination, NULL when unreachable */
    char **dconn_errors;
    struct evacuate_dest *dests;
    size_t ndests;
    uint64_t *need; /* per item: the domain's memory */
};

static int plan_open(struct plan *p)
{
    p->ndests = vk_strv_len(p->o->to);
    p->dconns = vk_calloc(p->ndests, sizeof(*p->dconns));
    p->dconn_errors = vk_calloc(p->ndests + 1, sizeof(char *));
    p->dests = vk_calloc(p->ndests, sizeof(*p->dests));
    if (!p->dconns || !p->dconn_errors || !p->dests)
        return -1;
    if (!(p->src = virt_conn_open(p->o->from, 0)))
        return -1;
    for (size_t i = 0; i < p->ndests; i++) {
        p->dests[i].uri = p->o->to[i];
        p->dconns[i] = virt_conn_open(p->o->to[i], 0);
        if (!p->dconns[i]) {
            p->dconn_errors[i] = vk_strdup(vk_error_message());
            continue;
        }
        p->dests[i].free_bytes = virNodeGetFreeMemory(p->dconns[i]->conn);
    }
    return 0;
}

static void plan_close(struct plan *p)
{
    for (size_t i = 0; p->dconns && i < p->ndests; i++)
        virt_conn_close(p->dconns[i]);
    free(p->dconns);
    vk_strv_free(p->dconn_errors);
    free(p->dests);
    free(p->need);
    virt_conn_close(p->src);
}

/* The domains to move: running ones, and stopped persistent ones with
 * include_stopped. */
static int domains_collect(struct plan *p, struct evacuate_result *res)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(p->src->conn, &doms, 0);

    if (n < 0) {
        virt_error_libvirt("cannot list the domains on '%s'", p->src->uri);
        return -1;
    }
    res->items = vk_calloc((size_t)n + 1, sizeof(*res->items));
    p->need = vk_calloc((size_t)n + 1, sizeof(*p->need));
    for (int i = 0; i < n; i++) {
        bool active = virDomainIsActive(doms[i]) == 1;
        if (res->items && p->need && (active || p->o->include_stopped) &&
            (active || virDomainIsPersistent(doms[i]) == 1)) {
            struct evacuate_item *it = &res->items[res->nr];
            virDomainInfo info;
            it->domain = vk_strdup(virDomainGetName(doms[i]));
            it->was_running = active;
            p->need[res->nr] = virDomainGetInfo(doms[i], &info) == 0 ? info.maxMem * 1024ull : 0;
            res->nr++;
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    return res->items && p->need ? 0 : -1;
}

/* Biggest memory first, so that the large domains find room. */
static void items_sort(struct plan *p, struct evacuate_result *res)
{
    for (size_t i = 1; i < res->nr; i++)
        for (size_t j = i; j > 0 && p->need[j] > p->need[j - 1]; j--) {
            struct evacuate_item t = res->items[j];
            uint64_t tn = p->need[j];
            res->items[j] = res->items[j - 1];
            res->items[j - 1] = t;
            p->need[j] = p->need[j - 1];
            p->need[j - 1] = tn;
        }
}

/* Run the domain's pre-checks against destination I; keep the report of
 * the chosen destination (or of the last one tried) in IT->res.report. */
static bool dest_passes(struct plan *p, struct evacuate_item *it, virDomainPtr dom, size_t i,
                        char **why)
{
    struct migrate_options mo = p->o->base;
    struct migrate_report rep = {0};
    CLEANUP_FREE char *failed = NULL;
    char *next;
    bool ok;

    mo.domain = it->domain;
    mo.from = p->o->from;
    mo.to = p->o->to[i];
    if (migrate_check_run(dom, p->dconns[i] ? p->dconns[i]->conn : NULL, p->dconn_errors[i], &mo,
                          MIGRATE_DRY_RUN, &rep, NULL) < 0)
        failed = vk_strdup(vk_error_message());
    else
        failed = migrate_report_describe(&rep);
    ok = !failed;
    if (!ok) {
        next = vk_asprintf("%s%s'%s': %s", *why ? *why : "", *why ? "; " : "", mo.to, failed);
        free(*why);
        *why = next;
    }
    migrate_report_clear(&it->res.report);
    it->res.report = rep;
    return ok;
}

static int place_one(struct plan *p, struct evacuate_item *it, uint64_t need)
{
    CLEANUP_FREE bool *passes = vk_calloc(p->ndests + 1, sizeof(bool));
    CLEANUP_FREE char *why = NULL;
    virDomainPtr dom;
    int best;

    if (!passes)
        return -1;
    it->res.domain = vk_strdup(it->domain);
    it->res.downtime_ms = -1;
    dom = virDomainLookupByName(p->src->conn, it->domain);
    for (size_t i = 0; dom && i < p->ndests; i++)
        passes[i] = dest_passes(p, it, dom, i, &why);
    if (dom)
        virDomainFree(dom);
    best = evacuate_place(p->dests, p->ndests, passes, need);
    if (best >= 0) {
        it->dest = vk_strdup(p->dests[best].uri);
        it->res.to = vk_strdup(it->dest);
        return 0;
    }
    it->res.error = dom ? vk_asprintf("no destination can take domain '%s': %s", it->domain,
                                      why ? why : "not enough free memory left")
                        : vk_asprintf("domain '%s' disappeared from the source", it->domain);
    return 0;
}

/* ---------------------------------------------------------------- workers */

struct pool {
    const struct evacuate_options *o;
    struct evacuate_result *res;
    unsigned int flags;
    pthread_mutex_t lock;
    size_t next;
};

static void migrate_item(struct pool *pl, struct evacuate_item *it)
{
    struct migrate_options mo = pl->o->base;
    struct catalog *cat = NULL;
    struct migrate_report keep = it->res.report;

    mo.domain = it->domain;
    mo.from = pl->o->from;
    mo.to = it->dest;
    mo.move_kind = "evacuate";
    if (pl->o->catalog_path && !(cat = catalog_open(pl->o->catalog_path, 0)))
        vk_warn("migration of '%s' is not recorded: %s", it->domain, vk_error_message());
    it->res.report = (struct migrate_report){0};
    migrate_result_clear(&it->res);
    migrate_run(cat, &mo, pl->flags & ~MIGRATE_DRY_RUN, &it->res);
    if (!it->res.report.nr) {
        it->res.report = keep;
    } else
        migrate_report_clear(&keep);
    catalog_close(cat);
}

static void *worker_main(void *arg)
{
    struct pool *pl = arg;
    size_t i;

    for (;;) {
        pthread_mutex_lock(&pl->lock);
        i = pl->next++;
        pthread_mutex_unlock(&pl->lock);
        if (i >= pl->res->nr)
            return NULL;
        if (!pl->res->items[i].dest)
            continue;
        if (migrate_cancelled(&pl->o->base))
            pl->res->items[i].res.error = vk_strdup("not started: the evacuation was interrupted");
        else
            migrate_item(pl, &pl->res->items[i]);
    }
}

static int workers_run(const struct evacuate_options *o, unsigned int flags,
                       struct evacuate_result *res)
{
    struct pool pl = {.o = o, .res = res, .flags = flags};
    size_t n = o->parallel ? o->parallel : 1;
    pthread_t *tids = vk_calloc(n, sizeof(*tids));
    size_t started = 0;

    if (!tids)
        return -1;
    pthread_mutex_init(&pl.lock, NULL);
    for (; started < n; started++)
        if (pthread_create(&tids[started], NULL, worker_main, &pl) != 0)
            break;
    if (started == 0)
        worker_main(&pl);
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&pl.lock);
    free(tids);
    return 0;
}

int evacuate_run(const struct evacuate_options *o, unsigned int flags, struct evacuate_result *res)
{
    struct plan p = {.o = o};
    int ret = -1;

    memset(res, 0, sizeof(*res));
    if (!o->to || !o->to[0]) {
        vk_error(VK_ERR_INVALID, "an evacuation needs at least one destination (--to).");
        return -1;
    }
    if (plan_open(&p) < 0 || domains_collect(&p, res) < 0)
        goto out;
    items_sort(&p, res);
    for (size_t i = 0; i < res->nr; i++)
        if (place_one(&p, &res->items[i], p.need[i]) < 0)
            goto out;
    if (!(flags & MIGRATE_DRY_RUN) && workers_run(o, flags, res) < 0)
        goto out;
    for (size_t i = 0; i < res->nr; i++) {
        struct evacuate_item *it = &res->items[i];
        it->res.ok = it->dest && !it->res.error;
        it->res.dry_run = flags & MIGRATE_DRY_RUN;
        if (!it->res.ok)
            res->failed++;
    }
    ret = 0;
out:
    plan_close(&p);
    return ret;
}
