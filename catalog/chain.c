/* virtkeep - backup chains: pure functions over a list of backups.
 *
 * A chain starts at a full backup.  An inc builds on the previous backup of
 * its chain (full, inc or diff), a diff on the full.  A copy stands alone and
 * starts no chain.  Only committed backups take part.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

#define CHECKPOINTED(level)                                                                        \
    ((level) == CATALOG_LEVEL_FULL || (level) == CATALOG_LEVEL_INC || (level) == CATALOG_LEVEL_DIFF)

/* Is A later than B?  By start time, then id (ids sort by time). */
static bool is_later(const struct catalog_backup *a, const struct catalog_backup *b)
{
    if (a->started != b->started)
        return a->started > b->started;
    return strcmp(a->id, b->id) > 0;
}

static bool usable(const struct catalog_backup *b, const char *domain)
{
    return b->status == CATALOG_STATUS_COMMITTED && b->level < CATALOG_LEVEL_AUTO && b->id &&
           b->domain && strcmp(b->domain, domain) == 0;
}

static const struct catalog_backup *find(const struct catalog_backups *all, const char *id)
{
    for (size_t i = 0; id && i < all->count; i++) {
        if (all->items[i].id && strcmp(all->items[i].id, id) == 0)
            return &all->items[i];
    }
    return NULL;
}

/* The latest committed backup of DOMAIN started at or before WHEN whose level
 * is in LEVELS (a bit mask of 1 << level). */
static const struct catalog_backup *latest(const struct catalog_backups *all, const char *domain,
                                           unsigned int levels, int64_t when)
{
    const struct catalog_backup *best = NULL;

    for (size_t i = 0; i < all->count; i++) {
        const struct catalog_backup *b = &all->items[i];

        if (usable(b, domain) && (levels & (1u << b->level)) && b->started <= when &&
            (!best || is_later(b, best)))
            best = b;
    }
    return best;
}

#define ANY_LEVEL                                                                                  \
    (1u << CATALOG_LEVEL_FULL | 1u << CATALOG_LEVEL_INC | 1u << CATALOG_LEVEL_DIFF |               \
     1u << CATALOG_LEVEL_COPY)
#define CHAIN_LEVELS (1u << CATALOG_LEVEL_FULL | 1u << CATALOG_LEVEL_INC | 1u << CATALOG_LEVEL_DIFF)

const struct catalog_backup *catalog_chain_latest(const struct catalog_backups *all,
                                                  const char *domain)
{
    return latest(all, domain, ANY_LEVEL, INT64_MAX);
}

static int broken(const struct catalog_backup *tip, enum vk_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int broken(const struct catalog_backup *tip, enum vk_error_code code, const char *fmt, ...)
{
    char *why = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&why, fmt, ap) < 0)
        why = NULL;
    va_end(ap);
    vk_error(code, "the chain of backup '%s' is broken: %s", tip->id, why ? why : "out of memory");
    free(why);
    return -1;
}

/* Check the link from CUR to its parent P (NULL when missing). */
static int check_link(const struct catalog_backup *tip, const struct catalog_backup *cur,
                      const struct catalog_backup *p)
{
    if (!cur->parent)
        return broken(tip, VK_ERR_CORRUPT, "%s backup '%s' has no parent",
                      catalog_level_name(cur->level), cur->id);
    if (!p)
        return broken(tip, VK_ERR_NOT_FOUND, "backup '%s' (parent of '%s') is missing", cur->parent,
                      cur->id);
    if (p->status != CATALOG_STATUS_COMMITTED)
        return broken(tip, VK_ERR_CORRUPT, "backup '%s' (parent of '%s') is not committed", p->id,
                      cur->id);
    if (!p->domain || strcmp(p->domain, cur->domain) != 0)
        return broken(tip, VK_ERR_CORRUPT, "backup '%s' (parent of '%s') is of another domain",
                      p->id, cur->id);
    if (p->level == CATALOG_LEVEL_COPY)
        return broken(tip, VK_ERR_CORRUPT, "backup '%s' (parent of '%s') is a copy backup", p->id,
                      cur->id);
    if (cur->level == CATALOG_LEVEL_DIFF && p->level != CATALOG_LEVEL_FULL)
        return broken(tip, VK_ERR_CORRUPT, "diff backup '%s' builds on '%s', which is not a full",
                      cur->id, p->id);
    return 0;
}

/* Walk from TIP to its full (or copy).  LINKS gets TIP first. */
static int walk(const struct catalog_backups *all, const struct catalog_backup *tip,
                const struct catalog_backup **links, size_t *n)
{
    const struct catalog_backup *cur = tip, *p;

    if (tip->status != CATALOG_STATUS_COMMITTED) {
        vk_error(VK_ERR_INVALID, "backup '%s' is %s, not committed: it cannot be restored", tip->id,
                 catalog_status_name(tip->status));
        return -1;
    }
    for (*n = 0;; cur = p) {
        if (*n == all->count)
            return broken(tip, VK_ERR_CORRUPT, "parents loop at backup '%s'", cur->id);
        links[(*n)++] = cur;
        if (cur->level == CATALOG_LEVEL_FULL || cur->level == CATALOG_LEVEL_COPY)
            return 0;
        p = find(all, cur->parent);
        if (check_link(tip, cur, p) == -1)
            return -1;
    }
}

static int chain_from(const struct catalog_backups *all, const struct catalog_backup *tip,
                      struct catalog_backups **chain)
{
    CLEANUP_FREE const struct catalog_backup **links = NULL;
    struct catalog_backups *out;
    size_t n;

    *chain = NULL;
    links = vk_calloc(all->count, sizeof *links);
    if (!links || walk(all, tip, links, &n) == -1)
        return -1;
    out = vk_calloc(1, sizeof *out);
    if (!out || !(out->items = vk_calloc(n, sizeof *out->items))) {
        free(out);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (catalog_backup_copy(&out->items[i], links[n - 1 - i]) == -1) {
            catalog_backups_free(out);
            return -1;
        }
        out->count++;
    }
    *chain = out;
    return 0;
}

int catalog_chain_resolve(const struct catalog_backups *all, const char *id,
                          struct catalog_backups **chain)
{
    const struct catalog_backup *tip = find(all, id);

    *chain = NULL;
    if (!tip) {
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' is not in the catalog", id ? id : "");
        return -1;
    }
    return chain_from(all, tip, chain);
}

int catalog_chain_at(const struct catalog_backups *all, const char *domain, int64_t when,
                     struct catalog_backups **chain)
{
    const struct catalog_backup *tip = latest(all, domain, ANY_LEVEL, when);
    time_t t = (time_t)when;
    struct tm tm;
    char stamp[32] = "?";

    *chain = NULL;
    if (!tip) {
        if (gmtime_r(&t, &tm))
            strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
        vk_error(VK_ERR_NOT_FOUND, "domain '%s' has no committed backup at or before %s", domain,
                 stamp);
        return -1;
    }
    return chain_from(all, tip, chain);
}

static bool contains(const struct catalog_backups *list, const char *id)
{
    return find(list, id) != NULL;
}

/* Can B join the chain in OUT, whose first item is its full? */
static bool joins(const struct catalog_backups *out, const struct catalog_backup *b)
{
    if (b->level == CATALOG_LEVEL_DIFF)
        return b->parent && strcmp(b->parent, out->items[0].id) == 0;
    return b->level == CATALOG_LEVEL_INC && contains(out, b->parent);
}

static int cmp_time(const void *pa, const void *pb)
{
    const struct catalog_backup *a = *(const struct catalog_backup *const *)pa;
    const struct catalog_backup *b = *(const struct catalog_backup *const *)pb;

    return is_later(a, b) ? 1 : is_later(b, a) ? -1 : 0;
}

int catalog_chain_current(const struct catalog_backups *all, const char *domain,
                          struct catalog_backups **chain)
{
    const struct catalog_backup *full = latest(all, domain, 1u << CATALOG_LEVEL_FULL, INT64_MAX);
    CLEANUP_FREE const struct catalog_backup **sorted = NULL;
    struct catalog_backups *out;
    struct catalog_backup *slot;
    size_t n = 0;

    *chain = NULL;
    out = vk_calloc(1, sizeof *out);
    sorted = vk_calloc(all->count + 1, sizeof *sorted);
    if (!out || !sorted) {
        free(out);
        return -1;
    }
    for (size_t i = 0; full && i < all->count; i++) {
        if (usable(&all->items[i], domain) && is_later(&all->items[i], full))
            sorted[n++] = &all->items[i];
    }
    qsort(sorted, n, sizeof *sorted, cmp_time);
    /* In time order, a backup joins when its parent already has. */
    for (size_t i = 0; full && i <= n; i++) {
        const struct catalog_backup *b = i == 0 ? full : sorted[i - 1];

        if (i > 0 && !joins(out, b))
            continue;
        slot = catalog_array_push((void **)&out->items, &out->count, sizeof *slot);
        if (!slot || catalog_backup_copy(slot, b) == -1) {
            if (slot)
                out->count--;
            catalog_backups_free(out);
            return -1;
        }
    }
    *chain = out;
    return 0;
}

void catalog_next_clear(struct catalog_next *next)
{
    if (!next)
        return;
    free(next->parent);
    free(next->parent_checkpoint);
    free(next->reason);
    memset(next, 0, sizeof *next);
}

/* Why DOMAIN has no chain to build on, or NULL when TIP is a good base. */
static char *why_no_chain(const struct catalog_backups *all, const char *domain,
                          const struct catalog_backup *tip)
{
    struct catalog_backups *chain = NULL;
    char *why;

    if (!tip)
        return vk_asprintf("domain '%s' has no committed full backup", domain);
    if (!tip->checkpoint)
        return vk_asprintf("backup '%s' has no checkpoint to build on", tip->id);
    if (chain_from(all, tip, &chain) == 0) {
        catalog_backups_free(chain);
        return NULL;
    }
    why = vk_strdup(vk_error_message() ? vk_error_message() : "the chain is broken");
    return why;
}

static int set_parent(struct catalog_next *next, enum catalog_level level,
                      const struct catalog_backup *parent)
{
    next->level = level;
    next->parent = vk_strdup(parent->id);
    next->parent_checkpoint = vk_strdup(parent->checkpoint);
    if (!next->parent || !next->parent_checkpoint) {
        catalog_next_clear(next);
        return -1;
    }
    return 0;
}

static int next_inc(const struct catalog_backups *all, const char *domain, bool is_auto,
                    struct catalog_next *next)
{
    const struct catalog_backup *tip = latest(all, domain, CHAIN_LEVELS, INT64_MAX);
    CLEANUP_FREE char *why = why_no_chain(all, domain, tip);

    if (!why)
        return set_parent(next, CATALOG_LEVEL_INC, tip);
    if (!is_auto) {
        vk_error(VK_ERR_NOT_FOUND, "cannot take an incremental backup of domain '%s': %s", domain,
                 why);
        return -1;
    }
    vk_error_clear();
    next->level = CATALOG_LEVEL_FULL;
    next->reason = VK_STEAL(why);
    return 0;
}

int catalog_chain_next(const struct catalog_backups *all, const char *domain,
                       enum catalog_level requested, struct catalog_next *next)
{
    const struct catalog_backup *full;

    memset(next, 0, sizeof *next);
    switch (requested) {
    case CATALOG_LEVEL_FULL:
    case CATALOG_LEVEL_COPY:
        next->level = requested;
        return 0;
    case CATALOG_LEVEL_AUTO:
    case CATALOG_LEVEL_INC:
        return next_inc(all, domain, requested == CATALOG_LEVEL_AUTO, next);
    case CATALOG_LEVEL_DIFF:
        full = latest(all, domain, 1u << CATALOG_LEVEL_FULL, INT64_MAX);
        if (!full || !full->checkpoint) {
            vk_error(VK_ERR_NOT_FOUND,
                     "cannot take a differential backup of domain '%s': it has no committed "
                     "full backup with a checkpoint",
                     domain);
            return -1;
        }
        return set_parent(next, CATALOG_LEVEL_DIFF, full);
    }
    vk_error(VK_ERR_INVALID, "invalid backup level %d for domain '%s'", (int)requested, domain);
    return -1;
}
