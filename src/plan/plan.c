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
#include "src/plan/plan.h"
#include "src/reader/reader.h"

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
    reader_costs_free(p->targets, p->nr_targets);
    memset(p, 0, sizeof *p);
}

/* Append A to P's archives; *INDEX gets its position (the array moves). */
static int archive_add(struct plan_restore *p, const struct reader_archive *a, size_t *index)
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

/* The plan's archives get what the map reads from their layer. */
static int layers_count(const struct reader_map *m, const struct reader_layer *layers, size_t nr,
                        struct plan_archive *archives, const size_t *px)
{
    CLEANUP_FREE uint64_t *bytes = vk_calloc(nr, sizeof *bytes);
    CLEANUP_FREE size_t *chunks = vk_calloc(nr, sizeof *chunks);

    if (!bytes || !chunks || reader_map_bytes(m, layers, nr, bytes, chunks) < 0)
        return -1;
    for (size_t i = 0; i < nr; i++) {
        archives[px[i]].read_bytes += bytes[i];
        archives[px[i]].chunks += chunks[i];
    }
    return 0;
}

struct disk_ctx {
    struct catalog *cat;
    struct reader_targets *ts;
    const struct plan_options *o;
    const struct catalog_backups *chain;
};

static int disk_plan(struct disk_ctx *x, const struct catalog_backup_disk *bd,
                     struct plan_restore *p)
{
    size_t n = x->chain->count;
    CLEANUP_FREE struct reader_layer *layers = vk_calloc(n, sizeof *layers);
    CLEANUP_FREE size_t *px = vk_calloc(n, sizeof *px);
    struct reader_archive **a = vk_calloc(n, sizeof *a);
    struct reader_map m = {0};
    int r = -1;

    for (size_t i = 0; layers && px && a && i < n; i++) {
        a[i] = reader_archive_open(x->cat, x->ts, x->o->domain, x->chain->items[i].id, bd->target);
        if (!a[i])
            goto out;
        layers[i].extents = archive_reader_extents(a[i]->reader, &layers[i].nr);
    }
    if (!layers || !px || !a || reader_merge(layers, n, bd->virtual_size, &m) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (archive_add(p, a[i], &px[i]) < 0)
            goto out;
    if (layers_count(&m, layers, n, p->archives, px) < 0)
        goto out;
    p->disk_bytes += m.data_bytes;
    p->virtual_bytes += bd->virtual_size;
    r = 0;
out:
    reader_map_clear(&m);
    for (size_t i = 0; a && i < n; i++)
        reader_archive_free(a[i]);
    free(a);
    return r;
}

static int targets_estimate(struct catalog *cat, const char *domain, struct plan_restore *p)
{
    for (size_t i = 0; i < p->nr_archives; i++) {
        uint64_t bytes = p->archives[i].read_bytes + p->archives[i].index_bytes;
        if (reader_costs_add(&p->targets, &p->nr_targets, p->archives[i].target, bytes) < 0)
            return -1;
        p->read_bytes += bytes;
    }
    if (reader_costs_estimate(cat, domain, p->targets, p->nr_targets, &p->estimate_seconds,
                              &p->source, &p->drill) < 0)
        return -1;
    for (size_t i = 0; i < p->nr_targets; i++)
        p->guess |= p->targets[i].guess;
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
    if (reader_chain_find(cat, o->domain, o->backup_id, o->at, &chain) < 0)
        return -1;
    x.chain = chain;
    if (chain_copy(chain, out) < 0 ||
        reader_disks_select(cat, o->disks, out->backup_id, &disks) < 0 ||
        !(x.ts = reader_targets_new(o->config, o->from)))
        goto out;
    for (size_t i = 0; i < disks->count; i++)
        if (disk_plan(&x, &disks->items[i], out) < 0)
            goto out;
    out->at = o->backup_id || o->at == INT64_MAX ? o->now : o->at;
    out->rpo_seconds = out->at > out->backup_time ? out->at - out->backup_time : 0;
    r = targets_estimate(cat, o->domain, out);
out:
    reader_targets_free(x.ts);
    catalog_backup_disks_free(disks);
    catalog_backups_free(chain);
    if (r < 0)
        plan_restore_clear(out);
    return r;
}
