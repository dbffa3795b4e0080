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
#include "src/restore/restore-int.h"

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
    plan_targets_free(p->targets, p->nr_targets);
    memset(p, 0, sizeof *p);
}

static const char *const source_names[] = {"guess", "throughput", "drill"};

const char *plan_source_name(enum plan_source source)
{
    return (unsigned int)source < VK_ARRAY_SIZE(source_names) ? source_names[source] : "unknown";
}

int plan_drill_fit(const struct plan_drill_sample *s, size_t n, double *rate, double *overhead)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, mx, my, slope;

    for (size_t i = 0; i < n; i++) {
        sx += (double)s[i].bytes;
        sy += s[i].seconds;
    }
    if (n == 0 || !(sx > 0) || !(sy > 0))
        return -1;
    mx = sx / (double)n;
    my = sy / (double)n;
    for (size_t i = 0; i < n; i++) {
        double dx = (double)s[i].bytes - mx;
        sxx += dx * dx;
        sxy += dx * (s[i].seconds - my);
    }
    slope = sxx > 0 ? sxy / sxx : 0; /* seconds per byte */
    /* One size (or a fit that makes no physical sense: time falling with
     * size, or a negative fixed cost): the overall rate, no overhead. */
    if (!(sxx > 0) || !(slope > 0) || my - slope * mx < 0) {
        *rate = sx / sy;
        *overhead = 0;
        return 0;
    }
    *rate = 1 / slope;
    *overhead = my - slope * mx;
    return 0;
}

/* The model from the recent ok drills of DOMAIN (any when NULL) that read
 * TARGET; 0 when there are none, 1 when OUT was filled. */
static int drill_model(struct catalog *cat, const char *domain, const char *target,
                       struct plan_target *out)
{
    struct catalog_drills *d = NULL;
    struct plan_drill_sample s[PLAN_DRILL_HISTORY];
    size_t n = 0;
    int r = 0;

    if (catalog_drill_list(cat, domain, target, CATALOG_DRILL_LIST_OK, PLAN_DRILL_HISTORY, &d) < 0)
        return -1;
    for (size_t i = 0; i < d->count && n < PLAN_DRILL_HISTORY; i++)
        if (d->items[i].actual_seconds > 0)
            s[n++] = (struct plan_drill_sample){d->items[i].bytes_read, d->items[i].actual_seconds};
    if (n > 0 && plan_drill_fit(s, n, &out->rate, &out->overhead) == 0) {
        const struct catalog_drill *x = &d->items[0];
        out->source = PLAN_SOURCE_DRILL;
        out->drill = (struct plan_drill_ref){.id = x->id,
                                             .time = x->started,
                                             .actual_seconds = x->actual_seconds,
                                             .estimate_seconds = x->estimate_seconds,
                                             .bytes_read = x->bytes_read,
                                             .samples = (unsigned int)n};
        r = 1;
    }
    catalog_drills_free(d);
    return r;
}

int plan_target_estimate(struct catalog *cat, const char *domain, const char *target,
                         uint64_t bytes, struct plan_target *out)
{
    struct catalog_rate rate = {0};
    int r = 0;

    memset(&out->drill, 0, sizeof out->drill);
    out->overhead = 0;
    if (catalog_throughput_estimate(cat, target, CATALOG_DIR_READ, &rate) < 0)
        return -1;
    out->samples = rate.samples;
    if (domain)
        r = drill_model(cat, domain, target, out);
    if (r == 0)
        r = drill_model(cat, NULL, target, out);
    if (r < 0)
        return -1;
    if (r == 0) {
        bool guess = rate.samples == 0 || rate.bytes_per_second <= 0;
        out->source = guess ? PLAN_SOURCE_GUESS : PLAN_SOURCE_THROUGHPUT;
        out->rate = guess ? PLAN_DEFAULT_READ_RATE : rate.bytes_per_second;
    }
    out->guess = out->source == PLAN_SOURCE_GUESS;
    out->seconds = out->overhead + (double)bytes / out->rate;
    return 0;
}

int plan_read_estimate(struct catalog *cat, const char *target, uint64_t bytes,
                       struct plan_target *out)
{
    return plan_target_estimate(cat, NULL, target, bytes, out);
}

int plan_targets_estimate(struct catalog *cat, const char *domain, struct plan_target *t, size_t n,
                          double *seconds, enum plan_source *source, struct plan_drill_ref *drill)
{
    struct plan_drill_ref newest = {0};

    *seconds = 0;
    *source = n ? PLAN_SOURCE_DRILL : PLAN_SOURCE_GUESS;
    for (size_t i = 0; i < n; i++) {
        if (plan_target_estimate(cat, domain, t[i].name, t[i].bytes, &t[i]) < 0)
            return -1;
        *seconds += t[i].seconds;
        if (t[i].source < *source)
            *source = t[i].source;
        if (t[i].source == PLAN_SOURCE_DRILL && t[i].drill.time >= newest.time)
            newest = t[i].drill;
    }
    if (drill)
        *drill = newest;
    return 0;
}

int plan_targets_add(struct plan_target **t, size_t *n, const char *name, uint64_t bytes)
{
    struct plan_target *x;

    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*t)[i].name, name) == 0) {
            (*t)[i].bytes += bytes;
            return 0;
        }
    }
    x = vk_realloc_array(*t, *n + 1, sizeof *x);
    if (!x)
        return -1;
    *t = x;
    x = &x[*n];
    memset(x, 0, sizeof *x);
    if (!(x->name = vk_strdup(name)))
        return -1;
    x->bytes = bytes;
    (*n)++;
    return 0;
}

void plan_targets_free(struct plan_target *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].name);
    free(t);
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

int plan_map_bytes(const struct restore_map *m, const struct restore_layer *layers,
                   size_t nr_layers, uint64_t *bytes, size_t *chunks)
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
        if (p->layer >= nr_layers) {
            vk_error(VK_ERR_INTERNAL, "a restore piece names layer %zu of %zu", p->layer,
                     nr_layers);
            return -1;
        }
        bytes[p->layer] += layers[p->layer].extents[p->extent].size;
        if (chunks)
            chunks[p->layer]++;
    }
    return 0;
}

/* The plan's archives get what the map reads from their layer. */
static int layers_count(const struct restore_map *m, const struct restore_layer *layers, size_t nr,
                        struct plan_archive *archives, const size_t *px)
{
    CLEANUP_FREE uint64_t *bytes = vk_calloc(nr, sizeof *bytes);
    CLEANUP_FREE size_t *chunks = vk_calloc(nr, sizeof *chunks);

    if (!bytes || !chunks || plan_map_bytes(m, layers, nr, bytes, chunks) < 0)
        return -1;
    for (size_t i = 0; i < nr; i++) {
        archives[px[i]].read_bytes += bytes[i];
        archives[px[i]].chunks += chunks[i];
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
    if (layers_count(&m, layers, n, p->archives, px) < 0)
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

static int targets_estimate(struct catalog *cat, const char *domain, struct plan_restore *p)
{
    for (size_t i = 0; i < p->nr_archives; i++) {
        uint64_t bytes = p->archives[i].read_bytes + p->archives[i].index_bytes;
        if (plan_targets_add(&p->targets, &p->nr_targets, p->archives[i].target, bytes) < 0)
            return -1;
        p->read_bytes += bytes;
    }
    if (plan_targets_estimate(cat, domain, p->targets, p->nr_targets, &p->estimate_seconds,
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
    r = targets_estimate(cat, o->domain, out);
out:
    restore_targets_free(x.ts);
    catalog_backup_disks_free(disks);
    catalog_backups_free(chain);
    if (r < 0)
        plan_restore_clear(out);
    return r;
}
