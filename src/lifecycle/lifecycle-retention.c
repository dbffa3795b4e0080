/* virtkeep - retention: the keep rules (restic/borg semantics) and the
 * dependency closure.  See retention.h. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/lifecycle/lifecycle.h"

enum period { P_LAST, P_HOURLY, P_DAILY, P_WEEKLY, P_MONTHLY, P_YEARLY, NR_PERIODS };

static const char *const period_names[NR_PERIODS] = {
    "last", "hourly", "daily", "weekly", "monthly", "yearly",
};

static size_t period_format(enum period p, const struct tm *tm, char *buf, size_t len)
{
    switch (p) {
    case P_HOURLY:
        return strftime(buf, len, "%Y-%m-%dT%H", tm);
    case P_DAILY:
        return strftime(buf, len, "%Y-%m-%d", tm);
    case P_WEEKLY:
        return strftime(buf, len, "%G-W%V", tm);
    case P_MONTHLY:
        return strftime(buf, len, "%Y-%m", tm);
    case P_YEARLY:
        return strftime(buf, len, "%Y", tm);
    case P_LAST:
    case NR_PERIODS:
        break;
    }
    return 0;
}

/* The period T falls in, as a label that compares like the period
 * ("2026-11-28T05", "2026-W48"); the label goes into the reason.  For
 * keep_last every backup is a period of its own (its RANK). */
static void period_label(enum period p, int64_t t, unsigned int rank, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (p == P_LAST || !gmtime_r(&tt, &tm) || !period_format(p, &tm, buf, len))
        snprintf(buf, len, "#%u", rank);
}

static unsigned int period_count(const struct config_policy *pol, enum period p)
{
    switch (p) {
    case P_LAST:
        return pol->keep_last;
    case P_HOURLY:
        return pol->keep_hourly;
    case P_DAILY:
        return pol->keep_daily;
    case P_WEEKLY:
        return pol->keep_weekly;
    case P_MONTHLY:
        return pol->keep_monthly;
    case P_YEARLY:
        return pol->keep_yearly;
    case NR_PERIODS:
        break;
    }
    return 0;
}

bool retention_has_rules(const struct config_policy *pol)
{
    for (enum period p = 0; p < NR_PERIODS; p++)
        if (period_count(pol, p))
            return true;
    return pol->keep_within != 0;
}

/* Append ", WHAT" (or WHAT) to the reason of ITEM and keep it. */
static int keep_because(struct retention_item *item, const char *what)
{
    char *r = item->reason ? vk_asprintf("%s, %s", item->reason, what) : vk_strdup(what);

    if (!r)
        return -1;
    free(item->reason);
    item->reason = r;
    item->keep = true;
    return 0;
}

/* Newest first: started, then id. */
static int newest_first(const void *a, const void *b)
{
    const struct retention_item *x = *(const struct retention_item *const *)a;
    const struct retention_item *y = *(const struct retention_item *const *)b;

    if (x->backup->started != y->backup->started)
        return x->backup->started < y->backup->started ? 1 : -1;
    return -strcmp(x->backup->id, y->backup->id);
}

/* One rule over the committed backups, newest first (ORDER, N of them). */
static int rule_apply(struct retention_item **order, size_t n, enum period p, unsigned int count)
{
    char last[32] = "", label[32], what[64];
    unsigned int kept = 0;

    for (size_t i = 0; i < n && kept < count; i++) {
        period_label(p, order[i]->backup->started, (unsigned int)i, label, sizeof label);
        if (strcmp(label, last) == 0)
            continue; /* an older backup of a period already kept */
        memcpy(last, label, sizeof last);
        kept++;
        if (p == P_LAST)
            snprintf(what, sizeof what, "last %u/%u", kept, count);
        else
            snprintf(what, sizeof what, "%s %s", period_names[p], label);
        if (keep_because(order[i], what) < 0)
            return -1;
    }
    return 0;
}

static int within_apply(struct retention_item **order, size_t n, uint64_t within)
{
    char what[64], dur[32];

    snprintf(what, sizeof what, "within %s of the newest",
             vk_duration_format(within, dur, sizeof dur) ? dur : "?");
    for (size_t i = 0; i < n; i++)
        if ((uint64_t)(order[0]->backup->started - order[i]->backup->started) < within &&
            keep_because(order[i], what) < 0)
            return -1;
    return 0;
}

static struct retention_item *item_find(struct retention_result *r, const char *id)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->items[i].backup->id, id) == 0)
            return &r->items[i];
    return NULL;
}

/* Keep what every kept backup needs: its parent, and so on up to the
 * full.  Repeated until nothing changes, so the order of the list does not
 * matter. */
static int dependencies_keep(struct retention_result *r)
{
    bool changed = true;

    while (changed) {
        changed = false;
        for (size_t i = 0; i < r->count; i++) {
            const struct retention_item *child = &r->items[i];
            struct retention_item *parent;
            CLEANUP_FREE char *what = NULL;

            if (!child->keep || !child->backup->parent)
                continue;
            parent = item_find(r, child->backup->parent);
            if (!parent || parent->keep)
                continue;
            what = vk_asprintf("needed by %s", child->backup->id);
            if (!what || keep_because(parent, what) < 0)
                return -1;
            changed = true;
        }
    }
    return 0;
}

static const struct retention_item *newest_committed(const struct retention_result *r)
{
    const struct retention_item *newest = NULL;

    for (size_t i = 0; i < r->count; i++)
        if (r->items[i].backup->status == CATALOG_STATUS_COMMITTED &&
            (!newest || r->items[i].backup->started >= newest->backup->started))
            newest = &r->items[i];
    return newest;
}

static int rules_apply(struct retention_result *r, const struct config_policy *pol)
{
    CLEANUP_FREE struct retention_item **order = vk_calloc(r->count + 1, sizeof *order);
    size_t n = 0;

    if (!order)
        return -1;
    for (size_t i = 0; i < r->count; i++)
        if (r->items[i].backup->status == CATALOG_STATUS_COMMITTED)
            order[n++] = &r->items[i];
    if (n == 0)
        return 0;
    qsort(order, n, sizeof *order, newest_first);
    for (enum period p = 0; p < NR_PERIODS; p++)
        if (period_count(pol, p) && rule_apply(order, n, p, period_count(pol, p)) < 0)
            return -1;
    if (pol->keep_within && within_apply(order, n, pol->keep_within) < 0)
        return -1;
    return 0;
}

/* Running backups stay; failed ones stay while no later backup is good. */
static int others_apply(struct retention_result *r, const struct retention_item *newest)
{
    for (size_t i = 0; i < r->count; i++) {
        struct retention_item *it = &r->items[i];
        if (it->backup->status == CATALOG_STATUS_RUNNING) {
            if (keep_because(it, "running") < 0)
                return -1;
        } else if (it->backup->status == CATALOG_STATUS_FAILED &&
                   (!newest || it->backup->started > newest->backup->started)) {
            if (keep_because(it, "failed, no good backup since") < 0)
                return -1;
        }
    }
    return 0;
}

static int reasons_finish(struct retention_result *r, const struct retention_item *newest)
{
    for (size_t i = 0; i < r->count; i++) {
        struct retention_item *it = &r->items[i];
        if (it->keep) {
            r->kept++;
            continue;
        }
        r->deleted++;
        if (it->backup->status == CATALOG_STATUS_FAILED)
            it->reason = vk_asprintf("failed, superseded by %s", newest ? newest->backup->id : "?");
        else
            it->reason = vk_strdup("no rule keeps it");
        if (!it->reason)
            return -1;
    }
    return 0;
}

int retention_select(const struct catalog_backups *all, const char *domain,
                     const struct config_policy *pol, unsigned int flags,
                     struct retention_result *out)
{
    int rc = 0;

    (void)flags;
    memset(out, 0, sizeof *out);
    out->items = vk_calloc(all->count + 1, sizeof *out->items);
    if (!out->items)
        return -1;
    for (size_t i = 0; i < all->count; i++)
        if (strcmp(all->items[i].domain, domain) == 0)
            out->items[out->count++].backup = &all->items[i];
    if (!retention_has_rules(pol)) {
        for (size_t i = 0; i < out->count && rc == 0; i++)
            rc = keep_because(&out->items[i], "no retention rule");
    } else {
        rc = rules_apply(out, pol);
        if (rc == 0)
            rc = others_apply(out, newest_committed(out));
        if (rc == 0)
            rc = dependencies_keep(out);
    }
    if (rc == 0)
        rc = reasons_finish(out, newest_committed(out));
    if (rc < 0)
        retention_result_clear(out);
    return rc;
}

void retention_result_clear(struct retention_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->items[i].reason);
    free(r->items);
    memset(r, 0, sizeof *r);
}
