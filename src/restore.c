/* virtkeep - restore_run: a point-in-time restore of a domain's disks.
 *
 * For each disk: open the archive of every backup of the chain, merge their
 * extent lists (restore-merge.c) so that each byte comes from the newest
 * backup that holds it, then read each needed chunk once (verified by its
 * sha256) and write its pieces to a fresh qcow2 image through qemu-nbd,
 * with a ring of chunk buffers so that reads overlap the writes in flight.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/restore-int.h"

#define RING_BYTES (64u * 1024 * 1024) /* chunk buffers in flight, at most */

struct ctx {
    struct catalog *cat;
    const struct restore_options *opts;
    const struct catalog_backups *chain;
    struct restore_targets *ts;
};

struct slot {
    uint8_t *buf;
    unsigned int refs; /* write requests still using buf */
};

void restore_result_clear(struct restore_result *r)
{
    vk_strv_free(r->chain);
    for (size_t i = 0; i < r->nr_disks; i++) {
        free(r->disks[i].target);
        free(r->disks[i].path);
        restore_map_clear(&r->disks[i].map);
    }
    free(r->disks);
    memset(r, 0, sizeof *r);
}

static void archives_free(struct restore_archive **a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        restore_archive_free(a[i]);
    free(a);
}

static struct restore_archive **archives_open(struct ctx *c, const char *disk,
                                              struct restore_layer *layers)
{
    struct restore_archive **a = vk_calloc(c->chain->count, sizeof *a);

    if (!a)
        return NULL;
    for (size_t i = 0; i < c->chain->count; i++) {
        a[i] = restore_archive_open(c->cat, c->ts, c->opts->domain, c->chain->items[i].id, disk);
        if (!a[i]) {
            archives_free(a, i);
            return NULL;
        }
        layers[i].extents = archive_reader_extents(a[i]->reader, &layers[i].nr);
    }
    return a;
}

/* The largest chunk the map needs. */
static uint64_t chunk_max(const struct restore_map *m, const struct restore_layer *layers)
{
    uint64_t max = 0;

    for (size_t i = 0; i < m->nr; i++) {
        const struct restore_piece *p = &m->pieces[i];
        if (p->kind == RESTORE_PIECE_DATA && layers[p->layer].extents[p->extent].length > max)
            max = layers[p->layer].extents[p->extent].length;
    }
    return max;
}

static void slots_free(struct slot *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i].buf);
    free(s);
}

static struct slot *slots_new(uint64_t size, size_t *n)
{
    struct slot *s;

    *n = size ? RING_BYTES / size : 1;
    *n = *n < 2 ? 2 : *n > 16 ? 16 : *n;
    s = vk_calloc(*n, sizeof *s);
    for (size_t i = 0; s && size && i < *n; i++) {
        if (!(s[i].buf = vk_malloc(size))) {
            slots_free(s, i);
            return NULL;
        }
    }
    return s;
}

static int zeros_write(struct restore_image *img, const struct restore_map *m,
                       struct restore_disk_result *res)
{
    for (size_t i = 0; i < m->nr; i++) {
        if (m->pieces[i].kind != RESTORE_PIECE_ZERO)
            continue;
        if (restore_image_zero(img, m->pieces[i].length, m->pieces[i].offset) < 0)
            return -1;
        res->zero_bytes += m->pieces[i].length;
    }
    return 0;
}

/* Read each chunk once into a ring slot and queue the writes of its pieces. */
static int data_write(struct restore_image *img, struct restore_archive **a,
                      const struct restore_layer *layers, const struct restore_map *m,
                      struct slot *slots, size_t nr_slots, struct restore_disk_result *res)
{
    CLEANUP_FREE size_t *order = NULL;
    size_t n, k = 0;

    if (restore_map_read_order(m, layers, &order, &n) < 0)
        return -1;
    for (size_t i = 0; i < n;) {
        const struct restore_piece *p = &m->pieces[order[i]];
        const struct archive_extent *e = &layers[p->layer].extents[p->extent];
        struct slot *s = &slots[k++ % nr_slots];

        if (restore_image_wait(img, &s->refs) < 0 ||
            restore_archive_read_chunk(a[p->layer], e, s->buf) < 0)
            return -1;
        res->nr_chunks++;
        res->frame_bytes += e->size;
        res->raw_bytes += e->length;
        for (; i < n && m->pieces[order[i]].layer == p->layer &&
               m->pieces[order[i]].extent == p->extent;
             i++) {
            const struct restore_piece *q = &m->pieces[order[i]];
            if (restore_image_write(img, s->buf + q->extent_offset, q->length, q->offset,
                                    &s->refs) < 0)
                return -1;
            res->bytes_written += q->length;
        }
    }
    return 0;
}

static int dir_sync(const char *dir)
{
    CLEANUP_CLOSE int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || fsync(fd) < 0) {
        vk_error_errno(errno, "cannot sync the directory '%s'", dir);
        return -1;
    }
    return 0;
}

/* A fresh temporary name beside FINAL: DIR/.DISK.qcow2.vk-tmp-XXXXXX. */
static char *tmp_reserve(const char *dir, const char *disk)
{
    char *tmp = vk_asprintf("%s/.%s.qcow2.vk-tmp-XXXXXX", dir, disk);
    int fd;

    if (!tmp)
        return NULL;
    fd = mkstemp(tmp);
    if (fd < 0) {
        vk_error_errno(errno, "cannot create a temporary file in '%s'", dir);
        free(tmp);
        return NULL;
    }
    close(fd);
    return tmp;
}

/* Write the merged map into a temporary image, then rename it. */
static int image_write(struct ctx *c, struct restore_archive **a,
                       const struct restore_layer *layers, const struct restore_map *m,
                       struct restore_disk_result *res)
{
    CLEANUP_FREE char *tmp = tmp_reserve(c->opts->dest_dir, res->target);
    struct restore_image *img = NULL;
    struct slot *slots = NULL;
    size_t nr_slots = 0;

    if (!tmp)
        return -1;
    img = restore_image_open(tmp, res->virtual_size, c->opts->cluster_size, c->opts->compat,
                             c->opts->in_flight);
    if (!img || !(slots = slots_new(chunk_max(m, layers), &nr_slots)) ||
        zeros_write(img, m, res) < 0 || data_write(img, a, layers, m, slots, nr_slots, res) < 0)
        goto fail;
    if (restore_image_close(VK_STEAL(img)) < 0)
        goto fail;
    slots_free(slots, nr_slots);
    slots = NULL;
    if (rename(tmp, res->path) < 0) {
        vk_error_errno(errno, "cannot rename '%s' to '%s'", tmp, res->path);
        goto fail;
    }
    return dir_sync(c->opts->dest_dir);
fail:
    restore_image_abort(img); /* before the buffers its requests point to */
    slots_free(slots, nr_slots);
    unlink(tmp);
    return -1;
}

static int disk_restore(struct ctx *c, const struct catalog_backup_disk *bd,
                        struct restore_disk_result *res)
{
    CLEANUP_FREE struct restore_layer *layers = vk_calloc(c->chain->count, sizeof *layers);
    struct restore_archive **a = NULL;
    uint64_t t0 = vk_now_ns();
    int r = -1;

    res->target = vk_strdup(bd->target);
    res->path = vk_asprintf("%s/%s.qcow2", c->opts->dest_dir, bd->target);
    res->virtual_size = bd->virtual_size;
    if (!layers || !res->target || !res->path || !(a = archives_open(c, bd->target, layers)))
        goto out;
    if (restore_merge(layers, c->chain->count, res->virtual_size, &res->map) < 0)
        goto out;
    vk_debug("disk '%s': %zu pieces, %" PRIu64 " data and %" PRIu64 " zero bytes from %zu chunks",
             bd->target, res->map.nr, res->map.data_bytes, res->map.zero_bytes, res->map.nr_chunks);
    r = image_write(c, a, layers, &res->map, res);
out:
    for (size_t i = 0; a && i < c->chain->count; i++)
        res->index_bytes += a[i]->bytes_fetched;
    res->index_bytes -= res->index_bytes >= res->frame_bytes ? res->frame_bytes : 0;
    archives_free(a, c->chain->count);
    /* Keep the statistics, not the pieces. */
    free(res->map.pieces);
    res->map.pieces = NULL;
    res->seconds = (double)(vk_now_ns() - t0) / 1e9;
    return r;
}

/* ---------------------------------------------------------------- setup */

static int chain_find(struct catalog *cat, const struct restore_options *o,
                      struct catalog_backups **chain)
{
    struct catalog_backups *all = NULL;
    int r;

    if (catalog_backup_list(cat, o->domain, 0, &all) < 0)
        return -1;
    if (o->backup_id)
        r = catalog_chain_resolve(all, o->backup_id, chain);
    else
        r = catalog_chain_at(all, o->domain, o->at, chain);
    catalog_backups_free(all);
    if (r == 0 && o->backup_id && (*chain)->count == 0) {
        vk_error(VK_ERR_INTERNAL, "the chain of backup '%s' is empty", o->backup_id);
        return -1;
    }
    return r;
}

/* The disks of the chain's last backup that OPTS selects. */
static int disks_select(struct catalog *cat, const struct restore_options *o, const char *tip,
                        struct catalog_backup_disks **out)
{
    struct catalog_backup_disks *all;
    size_t n = 0;

    if (catalog_backup_disk_list(cat, tip, &all) < 0)
        return -1;
    for (size_t i = 0; o->disks && o->disks[i]; i++) {
        bool found = false;
        for (size_t j = 0; j < all->count && !found; j++)
            found = strcmp(all->items[j].target, o->disks[i]) == 0;
        if (!found) {
            vk_error(VK_ERR_NOT_FOUND, "backup '%s' has no disk '%s'", tip, o->disks[i]);
            catalog_backup_disks_free(all);
            return -1;
        }
    }
    for (size_t j = 0; j < all->count; j++) {
        if (o->disks && !vk_strv_contains(o->disks, all->items[j].target)) {
            free(all->items[j].backup_id);
            free(all->items[j].target);
            free(all->items[j].format);
            continue;
        }
        all->items[n++] = all->items[j];
    }
    all->count = n;
    *out = all;
    return 0;
}

static int dest_check(const struct restore_options *o, const struct catalog_backup_disks *disks)
{
    struct stat st;

    if (mkdir(o->dest_dir, 0700) < 0 && errno != EEXIST) {
        vk_error_errno(errno, "cannot create the destination directory '%s'", o->dest_dir);
        return -1;
    }
    for (size_t i = 0; i < disks->count; i++) {
        CLEANUP_FREE char *path = vk_asprintf("%s/%s.qcow2", o->dest_dir, disks->items[i].target);
        if (!path)
            return -1;
        if (!o->force && lstat(path, &st) == 0) {
            vk_error(VK_ERR_INVALID,
                     "the destination '%s' exists: remove it or give --force to replace it", path);
            return -1;
        }
    }
    return 0;
}

static int64_t job_start(struct ctx *c, const char *tip)
{
    struct catalog_job job = {.kind = (char *)"restore",
                              .domain = (char *)c->opts->domain,
                              .target = (char *)c->opts->from,
                              .backup_id = (char *)tip,
                              .state = CATALOG_JOB_RUNNING};

    return catalog_job_insert(c->cat, &job);
}

static void throughput_record(struct ctx *c, double seconds)
{
    for (size_t i = 0; i < restore_targets_count(c->ts); i++) {
        uint64_t bytes;
        const char *name = restore_targets_name(c->ts, i, &bytes);
        if (bytes > 0 && seconds > 0 &&
            catalog_throughput_record(c->cat, name, CATALOG_DIR_READ, bytes, seconds, 0) < 0)
            vk_warn("cannot record the throughput of target '%s': %s", name, vk_error_message());
    }
}

static int chain_ids(const struct catalog_backups *chain, struct restore_result *out)
{
    out->chain = vk_calloc(chain->count + 1, sizeof *out->chain);
    if (!out->chain)
        return -1;
    for (size_t i = 0; i < chain->count; i++)
        if (!(out->chain[i] = vk_strdup(chain->items[i].id)))
            return -1;
    return 0;
}

static int disks_run(struct ctx *c, const struct catalog_backup_disks *disks,
                     struct restore_result *out)
{
    out->disks = vk_calloc(disks->count + 1, sizeof *out->disks);
    if (!out->disks)
        return -1;
    for (size_t i = 0; i < disks->count; i++) {
        out->nr_disks++;
        if (disk_restore(c, &disks->items[i], &out->disks[i]) < 0)
            return -1;
    }
    return 0;
}

static int options_check(const struct restore_options *o, unsigned int flags)
{
    if (flags != 0 || !o->domain || !o->dest_dir) {
        vk_error(VK_ERR_INVALID, "restore_run: a domain and a destination are required");
        return -1;
    }
    return 0;
}

int restore_run(struct catalog *cat, const struct restore_options *opts, struct restore_result *out,
                unsigned int flags)
{
    struct catalog_backups *chain = NULL;
    struct catalog_backup_disks *disks = NULL;
    struct ctx c = {.cat = cat, .opts = opts};
    uint64_t t0 = vk_now_ns();
    int r = -1;

    memset(out, 0, sizeof *out);
    if (options_check(opts, flags) < 0 || chain_find(cat, opts, &chain) < 0)
        return -1;
    c.chain = chain;
    if (chain_ids(chain, out) < 0 ||
        disks_select(cat, opts, chain->items[chain->count - 1].id, &disks) < 0 ||
        dest_check(opts, disks) < 0 || !(c.ts = restore_targets_new(opts->config, opts->from)) ||
        (out->job_id = job_start(&c, chain->items[chain->count - 1].id)) < 0)
        goto out;
    r = disks_run(&c, disks, out);
    out->seconds = (double)(vk_now_ns() - t0) / 1e9;
    throughput_record(&c, out->seconds);
    {
        CLEANUP_FREE char *why = r < 0 ? vk_strdup(vk_error_message()) : NULL;
        enum vk_error_code code = vk_error_code();
        if (catalog_job_finish(cat, out->job_id, r < 0 ? CATALOG_JOB_FAILED : CATALOG_JOB_SUCCEEDED,
                               why, out->seconds) < 0 &&
            r == 0)
            r = -1;
        else if (r < 0 && why)
            vk_error(code, "%s", why); /* the restore's error, not the catalog's */
    }
out:
    restore_targets_free(c.ts);
    catalog_backup_disks_free(disks);
    catalog_backups_free(chain);
    return r;
}
