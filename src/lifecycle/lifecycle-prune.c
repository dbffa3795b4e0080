/* virtkeep - prune: mark, delete objects (manifest first), delete rows.
 * See prune.h for the order and why. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/conf/conf.h"
#include "src/lifecycle/lifecycle.h"
#include "transport/transport.h"

struct target_slot {
    char *name;
    struct transport *t;
};

struct pr {
    struct catalog *cat;
    const struct prune_options *o;
    struct prune_result *res;
    struct target_slot *targets;
    size_t nr_targets;
    unsigned long pause_after; /* test hook; 0: off */
    unsigned long objects_done;
};

static struct transport *target_get(struct pr *p, const char *name)
{
    const struct config_target *ct = p->o->config ? config_target_find(p->o->config, name) : NULL;
    struct transport_options opts;
    struct target_slot *slots;
    struct transport *t;

    for (size_t i = 0; i < p->nr_targets; i++)
        if (strcmp(p->targets[i].name, name) == 0)
            return p->targets[i].t;
    memset(&opts, 0, sizeof opts);
    if (ct)
        config_target_options(ct, &opts);
    else if (!transport_is_url(name)) {
        vk_error(VK_ERR_NOT_FOUND,
                 "target '%s' is not defined in the configuration: cannot delete the objects "
                 "stored there; add a [target %s] section",
                 name, name);
        return NULL;
    }
    slots = vk_realloc_array(p->targets, p->nr_targets + 1, sizeof *slots);
    if (!slots)
        return NULL;
    p->targets = slots;
    /* Checked once: a target whose root is gone would report every object
     * as missing, which prune takes as already deleted. */
    t = transport_open(ct ? ct->name : NULL, ct ? ct->url : name, &opts);
    if (!t || transport_check(t) < 0) {
        transport_close(t);
        return NULL;
    }
    slots[p->nr_targets].t = t;
    if (!(slots[p->nr_targets].name = vk_strdup(name))) {
        transport_close(t);
        return NULL;
    }
    p->nr_targets++;
    return t;
}

static struct prune_item *item_add(struct pr *p, const char *id, const char *domain, bool keep,
                                   const char *reason)
{
    struct prune_item *items = vk_realloc_array(p->res->items, p->res->nr + 1, sizeof *items);
    struct prune_item *it;

    if (!items)
        return NULL;
    p->res->items = items;
    it = &items[p->res->nr];
    memset(it, 0, sizeof *it);
    it->backup_id = vk_strdup(id);
    it->domain = vk_strdup(domain);
    it->keep = keep;
    it->reason = vk_strdup(reason);
    if (!it->backup_id || !it->domain || !it->reason) {
        free(it->backup_id);
        free(it->domain);
        free(it->reason);
        return NULL;
    }
    p->res->nr++;
    if (keep)
        p->res->kept++;
    return it;
}

/* The test hook: stop here so that the test can kill -9 the prune. */
static void pause_hook(struct pr *p)
{
    if (!p->pause_after || ++p->objects_done != p->pause_after)
        return;
    fprintf(stderr, "virtkeep: prune paused after %lu objects (test hook)\n", p->objects_done);
    for (;;)
        pause();
}

static int object_delete(struct pr *p, struct prune_item *it, const struct catalog_location *l)
{
    struct transport *t = target_get(p, l->target);

    if (!t) {
        vk_error_prefix("cannot delete '%s' of backup '%s'", l->key, l->backup_id);
        return -1;
    }
    if (transport_delete(t, l->key) < 0) {
        if (vk_error_code() != VK_ERR_NOT_FOUND) {
            vk_error_prefix("cannot delete object '%s' of backup '%s' from target '%s'", l->key,
                            l->backup_id, l->target);
            return -1;
        }
        vk_debug("object '%s' of backup '%s' was already gone from target '%s'", l->key,
                 l->backup_id, l->target);
        vk_error_clear();
    } else {
        it->objects++;
        it->bytes += l->size;
    }
    if (catalog_archive_remove_location(p->cat, l->backup_id, l->target, l->key) < 0)
        return -1;
    pause_hook(p);
    return 0;
}

/* Is an object of the backup of IT locked on an S3 target (Object Lock)?
 * Then IT is kept, saying until when (its prune mark stays: a later prune
 * deletes it once the lock has expired), and 1 is returned. */
static int lock_check(struct pr *p, struct prune_item *it, const struct catalog_locations *locs)
{
    int64_t now = (int64_t)time(NULL);

    for (size_t i = 0; i < locs->count; i++) {
        const struct catalog_location *l = &locs->items[i];
        struct transport *t = target_get(p, l->target);
        struct transport_stat st = {0};
        char when[32] = "?";
        time_t u;
        struct tm tm;

        if (!t || strcmp(transport_scheme(t), "s3") != 0 || transport_stat(t, l->key, &st) < 0) {
            vk_error_clear();
            continue;
        }
        if (st.locked_until <= now)
            continue;
        u = (time_t)st.locked_until;
        if (gmtime_r(&u, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        free(it->reason);
        it->reason = vk_asprintf("locked until %s", when);
        it->keep = true;
        p->res->kept++;
        vk_info("kept backup '%s': object '%s' on target '%s' is locked (S3 Object Lock) until %s; "
                "a prune after that date deletes it",
                it->backup_id, l->key, l->target, when);
        return it->reason ? 1 : -1;
    }
    return 0;
}

/* Manifests first (a pass with MANIFESTS true), then archives. */
static int backup_delete(struct pr *p, struct prune_item *it)
{
    struct catalog_locations *locs = NULL;
    int rc = 0;

    if (catalog_archive_list(p->cat, it->backup_id, NULL, &locs) < 0)
        return -1;
    if ((rc = lock_check(p, it, locs)) != 0) {
        catalog_locations_free(locs);
        return rc < 0 ? -1 : 0;
    }
    for (int manifests = 1; manifests >= 0 && rc == 0; manifests--)
        for (size_t i = 0; i < locs->count && rc == 0; i++)
            if ((locs->items[i].disk == NULL) == manifests)
                rc = object_delete(p, it, &locs->items[i]);
    catalog_locations_free(locs);
    if (rc == 0)
        rc = catalog_backup_delete(p->cat, it->backup_id, 0);
    if (rc < 0)
        return -1;
    it->deleted = true;
    p->res->deleted++;
    p->res->objects += it->objects;
    p->res->bytes += it->bytes;
    vk_info("deleted backup '%s' (%zu objects)", it->backup_id, it->objects);
    return 0;
}

/* Finish what an interrupted prune marked (every domain: a mark is a
 * decision already taken). */
static int resume(struct pr *p)
{
    CLEANUP_STRV char **ids = NULL;

    if (catalog_prune_list(p->cat, p->o->domain, &ids) < 0)
        return -1;
    for (size_t i = 0; ids[i]; i++) {
        struct catalog_backup *b = catalog_backup_get(p->cat, ids[i]);
        struct prune_item *it = b ? item_add(p, b->id, b->domain, false,
                                             "marked by an "
                                             "interrupted prune")
                                  : NULL;
        catalog_backup_free(b);
        if (!it)
            return -1;
        it->resumed = true;
        if (!p->o->dry_run && backup_delete(p, it) < 0)
            return -1;
        if (p->o->dry_run)
            p->res->deleted++;
    }
    return 0;
}

static int marks_write(struct pr *p, const struct retention_result *r)
{
    if (catalog_begin(p->cat) < 0)
        return -1;
    for (size_t i = 0; i < r->count; i++)
        if (!r->items[i].keep &&
            catalog_prune_mark(p->cat, r->items[i].backup->id, r->items[i].reason) < 0) {
            catalog_rollback(p->cat);
            return -1;
        }
    return catalog_commit(p->cat);
}

static bool resumed_already(const struct pr *p, const char *id)
{
    for (size_t i = 0; i < p->res->nr; i++)
        if (p->res->items[i].resumed && strcmp(p->res->items[i].backup_id, id) == 0)
            return true;
    return false;
}

static int domain_prune(struct pr *p, const char *domain, const struct config_policy *pol)
{
    struct catalog_backups *all = NULL;
    struct retention_result r = {0};
    size_t first = p->res->nr;
    int rc = -1;

    if (catalog_backup_list(p->cat, domain, 0, &all) < 0 ||
        retention_select(all, domain, pol, 0, &r) < 0)
        goto out;
    for (size_t i = 0; i < r.count; i++) {
        const struct retention_item *ri = &r.items[i];
        if (resumed_already(p, ri->backup->id))
            continue; /* a dry run lists a marked backup once */
        if (!item_add(p, ri->backup->id, domain, ri->keep, ri->reason))
            goto out;
        if (!ri->keep && p->o->dry_run)
            p->res->deleted++;
    }
    if (p->o->dry_run || r.deleted == 0) {
        rc = 0;
        goto out;
    }
    if (marks_write(p, &r) < 0)
        goto out;
    /* Newest first: a child goes before its parent. */
    for (size_t i = p->res->nr; i-- > first;)
        if (!p->res->items[i].keep && backup_delete(p, &p->res->items[i]) < 0)
            goto out;
    rc = 0;
out:
    retention_result_clear(&r);
    catalog_backups_free(all);
    return rc;
}

static const struct config_policy *policy_of(const struct config *cfg, const char *domain)
{
    const struct config_domain *d = cfg ? config_domain_find(cfg, domain) : NULL;

    return d && d->policy ? config_policy_find(cfg, d->policy) : NULL;
}

static int prune_all(struct pr *p)
{
    const struct config *cfg = p->o->config;

    if (p->o->domain) {
        const struct config_policy *pol = policy_of(cfg, p->o->domain);
        if (!pol || !retention_has_rules(pol)) {
            vk_error(VK_ERR_INVALID,
                     "domain '%s' has no retention policy in configuration '%s': give it "
                     "policy = NAME in [domain %s], with keep_last, keep_daily... in the policy",
                     p->o->domain, cfg && cfg->file ? cfg->file : "(none)", p->o->domain);
            return -1;
        }
        return domain_prune(p, p->o->domain, pol);
    }
    for (size_t i = 0; cfg && i < cfg->n_domains; i++) {
        const struct config_policy *pol = policy_of(cfg, cfg->domains[i].name);
        if (pol && retention_has_rules(pol) && domain_prune(p, cfg->domains[i].name, pol) < 0)
            return -1;
    }
    return 0;
}

int prune_run(struct catalog *cat, const struct prune_options *opts, unsigned int flags,
              struct prune_result *out)
{
    struct pr p = {.cat = cat, .o = opts, .res = out};
    const char *hook = getenv(PRUNE_TEST_PAUSE_ENV);
    unsigned long long n;
    int rc;

    (void)flags;
    memset(out, 0, sizeof *out);
    if (hook && vk_parse_uint(hook, 1000000, &n) == 0)
        p.pause_after = (unsigned long)n;
    rc = resume(&p);
    if (rc == 0)
        rc = prune_all(&p);
    for (size_t i = 0; i < p.nr_targets; i++) {
        transport_close(p.targets[i].t);
        free(p.targets[i].name);
    }
    free(p.targets);
    return rc;
}

void prune_result_clear(struct prune_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nr; i++) {
        free(r->items[i].backup_id);
        free(r->items[i].domain);
        free(r->items[i].reason);
    }
    free(r->items);
    memset(r, 0, sizeof *r);
}
