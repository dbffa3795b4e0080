/* virtkeep - the restore plan (see plan.h): the chain, the bytes each
 * archive and target must deliver (indexes only, merged as restore does),
 * the RPO and an estimated duration from measured throughput.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/plan.h"
#include "src/restore-int.h"

void plan_restore_clear(struct plan_restore *p)
{
    vk_strv_free(p->chain);
    free(p->backup_id);
    for (size_t i = 0; i < p->nr_archives; i++) {
        free(p->archives[i].backup_id);
        free(p->archives[i].disk);
        free(p->archives[i].target);
        free(p->archives[i].key);
    }
    free(p->archives);
    for (size_t i = 0; i < p->nr_targets; i++)
        free(p->targets[i].name);
    free(p->targets);
    memset(p, 0, sizeof *p);
}

int plan_read_estimate(struct catalog *cat, const char *target, uint64_t bytes,
                       struct plan_target *out)
{
    struct catalog_rate rate = {0};

    if (catalog_throughput_estimate(cat, target, CATALOG_DIR_READ, &rate) < 0)
        return -1;
    out->samples = rate.samples;
    out->guess = rate.samples == 0 || rate.bytes_per_second <= 0;
    out->rate = out->guess ? PLAN_DEFAULT_READ_RATE : rate.bytes_per_second;
    out->seconds = (double)bytes / out->rate;
    return 0;
}

static struct plan_target *target_slot(struct plan_restore *p, const char *name)
{
    struct plan_target *t;

    for (size_t i = 0; i < p->nr_targets; i++)
        if (strcmp(p->targets[i].name, name) == 0)
            return &p->targets[i];
    t = vk_realloc_array(p->targets, p->nr_targets + 1, sizeof *t);
    if (!t)
        return NULL;
    p->targets = t;
    t = &p->targets[p->nr_targets];
    memset(t, 0, sizeof *t);
    if (!(t->name = vk_strdup(name)))
        return NULL;
    p->nr_targets++;
    return t;
}

/* Append A to P's archives; *INDEX gets its position (the array moves). */
static int archive_add(struct plan_restore *p, const struct restore_archive *a, size_t *index)
{
    struct plan_archive *x = vk_realloc_array(p->archives, p->nr_archives + 1, sizeof *x);

    if (!x)
        return -1;
    p->archives = x;
    *index = p->nr_archives;
    x = &p->archives[p->nr_archives++];
    memset(x, 0, sizeof *x);
    x->backup_id = vk_strdup(a->backup_id);
    x->disk = vk_strdup(a->disk);
    x->target = vk_strdup(a->target);
    x->key = vk_strdup(a->key);
    x->index_bytes = a->bytes_fetched;
    return x->backup_id && x->disk && x->target && x->key ? 0 : -1;
}

/* Count, per layer, the distinct chunks the merged map reads and their
 * frame bytes: exactly what restore_run fetches. */
static int layers_count(const struct restore_map *m, const struct restore_layer *layers,
                        struct plan_archive *archives, const size_t *px)
{
    CLEANUP_FREE size_t *order = NULL;
    size_t n;

    if (restore_map_read_order(m, layers, &order, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct restore_piece *p = &m->pieces[order[i]];
        const struct restore_piece *prev = i ? &m->pieces[order[i - 1]] : NULL;
        if (prev && prev->layer == p->layer && prev->extent == p->extent)
            continue;
        archives[px[p->layer]].read_bytes += layers[p->layer].extents[p->extent].size;
        archives[px[p->layer]].chunks++;
    }
    return 0;
}

struct disk_ctx {
    struct catalog *cat;
    struct restore_targets *ts;
    const struct plan_options *o;
    const struct catalog_backups *chain;
};

static int disk_plan(struct disk_ctx *x, const struct catalog_backup_disk *bd,
                     struct plan_restore *p)
{
    size_t n = x->chain->count;
    CLEANUP_FREE struct restore_layer *layers = vk_calloc(n, sizeof *layers);
    CLEANUP_FREE size_t *px = vk_calloc(n, sizeof *px);
    struct restore_archive **a = vk_calloc(n, sizeof *a);
    struct restore_map m = {0};
    int r = -1;

    for (size_t i = 0; layers && px && a && i < n; i++) {
        a[i] = restore_archive_open(x->cat, x->ts, x->o->domain, x->chain->items[i].id, bd->target);
        if (!a[i])
            goto out;
        layers[i].extents = archive_reader_extents(a[i]->reader, &layers[i].nr);
    }
    if (!layers || !px || !a || restore_merge(layers, n, bd->virtual_size, &m) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (archive_add(p, a[i], &px[i]) < 0)
            goto out;
    if (layers_count(&m, layers, p->archives, px) < 0)
        goto out;
    p->disk_bytes += m.data_bytes;
    p->virtual_bytes += bd->virtual_size;
    r = 0;
out:
    restore_map_clear(&m);
    for (size_t i = 0; a && i < n; i++)
        restore_archive_free(a[i]);
    free(a);
    return r;
}

static int targets_estimate(struct catalog *cat, struct plan_restore *p)
{
    for (size_t i = 0; i < p->nr_archives; i++) {
        struct plan_target *t = target_slot(p, p->archives[i].target);
        if (!t)
            return -1;
        t->bytes += p->archives[i].read_bytes + p->archives[i].index_bytes;
        p->read_bytes += p->archives[i].read_bytes + p->archives[i].index_bytes;
    }
    for (size_t i = 0; i < p->nr_targets; i++) {
        if (plan_read_estimate(cat, p->targets[i].name, p->targets[i].bytes, &p->targets[i]) < 0)
            return -1;
        p->estimate_seconds += p->targets[i].seconds;
        p->guess |= p->targets[i].guess;
    }
    return 0;
}

static int chain_copy(const struct catalog_backups *chain, struct plan_restore *p)
{
    const struct catalog_backup *tip = &chain->items[chain->count - 1];

    p->chain = vk_calloc(chain->count + 1, sizeof *p->chain);
    if (!p->chain || !(p->backup_id = vk_strdup(tip->id)))
        return -1;
    for (size_t i = 0; i < chain->count; i++)
        if (!(p->chain[i] = vk_strdup(chain->items[i].id)))
            return -1;
    p->backup_time = tip->started;
    return 0;
}

int plan_restore(struct catalog *cat, const struct plan_options *o, struct plan_restore *out,
                 unsigned int flags)
{
    struct catalog_backups *chain = NULL;
    struct catalog_backup_disks *disks = NULL;
    struct disk_ctx x = {.cat = cat, .o = o};
    int r = -1;

    memset(out, 0, sizeof *out);
    if (flags != 0 || !o->domain) {
        vk_error(VK_ERR_INVALID, "plan_restore: a domain is required");
        return -1;
    }
    if (restore_chain_find(cat, o->domain, o->backup_id, o->at, &chain) < 0)
        return -1;
    x.chain = chain;
    if (chain_copy(chain, out) < 0 ||
        restore_disks_select(cat, o->disks, out->backup_id, &disks) < 0 ||
        !(x.ts = restore_targets_new(o->config, o->from)))
        goto out;
    for (size_t i = 0; i < disks->count; i++)
        if (disk_plan(&x, &disks->items[i], out) < 0)
            goto out;
    out->at = o->backup_id || o->at == INT64_MAX ? o->now : o->at;
    out->rpo_seconds = out->at > out->backup_time ? out->at - out->backup_time : 0;
    r = targets_estimate(cat, out);
out:
    restore_targets_free(x.ts);
    catalog_backup_disks_free(disks);
    catalog_backups_free(chain);
    if (r < 0)
        plan_restore_clear(out);
    return r;
}
