/* virtkeep - restore_run: a point-in-time restore of a domain's disks.
 *
 * For each disk: open the archive of every backup of the chain, merge their
 * extent lists (restore-merge.c) so that each byte comes from the newest
 * backup that holds it, then read each needed chunk once (verified by its
 * sha256) and write its pieces to a fresh qcow2 image through qemu-nbd
 * (restore-write.c: reads, parallel decoding and writes overlap).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/restore/restore-int.h"

struct ctx {
    struct catalog *cat;
    const struct restore_options *opts;
    const struct catalog_backups *chain;
    struct reader_targets *ts;
    char *dest; /* opts->dest_dir, absolute */
};

static bool cancelled(const struct restore_options *o)
{
    return o->cancel && *o->cancel;
}

void restore_result_clear(struct restore_result *r)
{
    vk_strv_free(r->chain);
    vk_strv_free(r->dropped);
    vk_strv_free(r->dropped_devices);
    free(r->defined);
    for (size_t i = 0; i < r->nr_disks; i++) {
        free(r->disks[i].target);
        free(r->disks[i].path);
        free(r->disks[i].compat);
        reader_map_clear(&r->disks[i].map);
    }
    free(r->disks);
    memset(r, 0, sizeof *r);
}

static void archives_free(struct reader_archive **a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        reader_archive_free(a[i]);
    free(a);
}

static struct reader_archive **archives_open(struct ctx *c, const char *disk,
                                             struct reader_layer *layers)
{
    struct reader_archive **a = vk_calloc(c->chain->count, sizeof *a);

    if (!a)
        return NULL;
    for (size_t i = 0; i < c->chain->count; i++) {
        a[i] = reader_archive_open(c->cat, c->ts, c->opts->domain, c->chain->items[i].id, disk);
        if (!a[i]) {
            archives_free(a, i);
            return NULL;
        }
        layers[i].extents = archive_reader_extents(a[i]->reader, &layers[i].nr);
    }
    return a;
}

static int interrupted(const struct restore_options *o, const char *disk)
{
    vk_error(VK_ERR_INTERRUPTED, "the restore of disk '%s' of domain '%s' was interrupted", disk,
             o->domain);
    return -1;
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
static int image_write(struct ctx *c, struct reader_archive **a, const struct reader_layer *layers,
                       const struct reader_map *m, struct restore_disk_result *res)
{
    CLEANUP_FREE char *tmp = tmp_reserve(c->opts->dest_dir, res->target);
    struct restore_image *img = NULL;
    struct restore_writer *w = NULL;

    if (!tmp)
        return -1;
    img = restore_image_open(tmp, res->virtual_size, res->cluster_size, res->compat,
                             c->opts->in_flight, c->opts->cancel);
    if (!img || !(w = restore_writer_new(m, layers)) ||
        restore_writer_run(w, img, a, c->opts, res) < 0)
        goto fail;
    if (restore_image_close(VK_STEAL(img)) < 0)
        goto fail;
    restore_writer_free(VK_STEAL(w));
    if (cancelled(c->opts)) {
        interrupted(c->opts, res->target);
        goto fail;
    }
    if (rename(tmp, res->path) < 0) {
        vk_error_errno(errno, "cannot rename '%s' to '%s'", tmp, res->path);
        goto fail;
    }
    return dir_sync(c->opts->dest_dir);
fail:
    restore_image_abort(img); /* before the buffers its requests point to */
    restore_writer_free(w);
    unlink(tmp);
    return -1;
}

/* --cluster-size/compat, else the source image's (from the manifest of the
 * chain's last backup), else 64 KiB and 1.1. */
static void qcow2_options(struct ctx *c, const char *disk, struct restore_disk_result *res)
{
    uint64_t cluster = 0;
    char *compat = NULL;

    if (!c->opts->cluster_size || !c->opts->compat)
        reader_source_qcow2(c->cat, c->ts, c->chain->items[c->chain->count - 1].id, disk, &cluster,
                            &compat);
    res->cluster_size = c->opts->cluster_size ? c->opts->cluster_size : cluster ? cluster : 65536;
    if (c->opts->compat) {
        free(compat);
        compat = vk_strdup(c->opts->compat);
    }
    res->compat = compat ? compat : vk_strdup("1.1");
}

/* A disk between its merge and its write: the chain's archives stay open
 * so that the estimate can be made from the very maps that are written. */
struct disk_work {
    struct reader_layer *layers;
    struct reader_archive **a;
    uint64_t t0;
};

static void work_clear(struct ctx *c, struct disk_work *w, struct restore_disk_result *res)
{
    if (!w->t0)
        return; /* never prepared, or already cleared */
    for (size_t i = 0; w->a && i < c->chain->count; i++)
        res->index_bytes += w->a[i]->bytes_fetched;
    res->index_bytes -= res->index_bytes >= res->frame_bytes ? res->frame_bytes : 0;
    archives_free(w->a, c->chain->count);
    free(w->layers);
    /* Keep the statistics, not the pieces. */
    free(res->map.pieces);
    res->map.pieces = NULL;
    res->seconds = (double)(vk_now_ns() - w->t0) / 1e9;
    memset(w, 0, sizeof *w);
}

/* Open the chain's archives of one disk and merge their extent lists. */
static int disk_prepare(struct ctx *c, const struct catalog_backup_disk *bd,
                        struct restore_disk_result *res, struct disk_work *w)
{
    w->t0 = vk_now_ns();
    w->layers = vk_calloc(c->chain->count, sizeof *w->layers);
    res->target = vk_strdup(bd->target);
    res->path = vk_asprintf("%s/%s.qcow2", c->dest, bd->target);
    res->virtual_size = bd->virtual_size;
    qcow2_options(c, bd->target, res);
    if (!w->layers || !res->target || !res->path ||
        !(w->a = archives_open(c, bd->target, w->layers)))
        return -1;
    if (reader_merge(w->layers, c->chain->count, res->virtual_size, &res->map) < 0)
        return -1;
    vk_debug("disk '%s': %zu pieces, %" PRIu64 " data and %" PRIu64 " zero bytes from %zu chunks",
             bd->target, res->map.nr, res->map.data_bytes, res->map.zero_bytes, res->map.nr_chunks);
    return 0;
}

/* What each target must deliver for the prepared disks: the frames the
 * merged maps read plus the indexes already fetched. */
static int work_targets(struct ctx *c, const struct restore_result *out, const struct disk_work *w,
                        struct reader_cost **t, size_t *nt)
{
    size_t n = c->chain->count;
    CLEANUP_FREE uint64_t *bytes = vk_calloc(n, sizeof *bytes);

    for (size_t d = 0; bytes && d < out->nr_disks; d++) {
        memset(bytes, 0, n * sizeof *bytes);
        if (reader_map_bytes(&out->disks[d].map, w[d].layers, n, bytes, NULL) < 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (reader_costs_add(t, nt, w[d].a[i]->target, bytes[i] + w[d].a[i]->bytes_fetched) < 0)
                return -1;
    }
    return bytes ? 0 : -1;
}

/* The shared estimator over this restore's own merged maps. */
static double estimate_get(struct ctx *c, const struct restore_result *out,
                           const struct disk_work *w)
{
    struct reader_cost *t = NULL;
    size_t nt = 0;
    enum reader_source source;
    double e = 0;

    if (work_targets(c, out, w, &t, &nt) < 0 ||
        reader_costs_estimate(c->cat, c->opts->domain, t, nt, &e, &source, NULL) < 0) {
        vk_debug("no estimate for the restore of '%s': %s", c->opts->domain, vk_error_message());
        e = 0;
    }
    reader_costs_free(t, nt);
    return e;
}

/* ---------------------------------------------------------------- setup */

static int dest_check(const struct restore_options *o, const struct catalog_backup_disks *disks)
{
    struct stat st;

    /* QEMU (another user under qemu:///system) must reach a defined
     * domain's images: the directory is searchable then. */
    if (mkdir(o->dest_dir, o->define || o->start ? 0711 : 0700) < 0 && errno != EEXIST) {
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

static int64_t job_start(struct ctx *c, const char *tip, double estimate)
{
    struct catalog_job job = {.kind = (char *)"restore",
                              .domain = (char *)c->opts->domain,
                              .target = (char *)c->opts->from,
                              .backup_id = (char *)tip,
                              .state = CATALOG_JOB_RUNNING,
                              .estimate_seconds = estimate};

    return catalog_job_insert(c->cat, &job);
}

static void throughput_record(struct ctx *c, double seconds)
{
    for (size_t i = 0; i < reader_targets_count(c->ts); i++) {
        uint64_t bytes;
        const char *name = reader_targets_name(c->ts, i, &bytes);
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

static int disks_prepare(struct ctx *c, const struct catalog_backup_disks *disks,
                         struct restore_result *out, struct disk_work *w)
{
    out->disks = vk_calloc(disks->count + 1, sizeof *out->disks);
    if (!out->disks)
        return -1;
    for (size_t i = 0; i < disks->count; i++) {
        out->nr_disks++;
        if (disk_prepare(c, &disks->items[i], &out->disks[i], &w[i]) < 0)
            return -1;
    }
    return 0;
}

static int disks_write(struct ctx *c, struct restore_result *out, struct disk_work *w)
{
    for (size_t i = 0; i < out->nr_disks; i++) {
        int r = image_write(c, w[i].a, w[i].layers, &out->disks[i].map, &out->disks[i]);
        work_clear(c, &w[i], &out->disks[i]);
        if (r < 0)
            return -1;
    }
    return 0;
}

static void works_free(struct ctx *c, struct restore_result *out, struct disk_work *w)
{
    for (size_t i = 0; w && i < out->nr_disks; i++)
        work_clear(c, &w[i], &out->disks[i]);
    free(w);
}

static int options_check(const struct restore_options *o, unsigned int flags)
{
    if (flags != 0 || !o->domain || !o->dest_dir) {
        vk_error(VK_ERR_INVALID, "restore_run: a domain and a destination are required");
        return -1;
    }
    return 0;
}

static const char *define_name(const struct restore_options *o)
{
    return o->new_name ? o->new_name : o->domain;
}

/* Define (and start) the domain from the saved XML with the new images. */
static int domain_define(struct ctx *c, struct restore_definer *def, const char *tip,
                         struct restore_result *out)
{
    struct catalog_backup *b = catalog_backup_get(c->cat, tip);
    CLEANUP_FREE struct restore_define_disk *dd = vk_calloc(out->nr_disks + 1, sizeof *dd);
    CLEANUP_FREE char *xml = NULL;
    struct restore_define_options o = {.disks = dd,
                                       .nr_disks = out->nr_disks,
                                       .new_name = c->opts->new_name,
                                       .uuid = restore_definer_uuid(def),
                                       .keep_host_devices = c->opts->keep_host_devices};
    int r = -1;

    if (!b || !dd)
        goto out;
    if (!b->domain_xml || !*b->domain_xml) {
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' has no saved domain XML to define", tip);
        goto out;
    }
    for (size_t i = 0; i < out->nr_disks; i++)
        dd[i] = (struct restore_define_disk){out->disks[i].target, out->disks[i].path};
    xml = restore_domain_xml(b->domain_xml, &o, &out->dropped, &out->dropped_devices, 0);
    if (!xml || restore_definer_define(def, xml, c->opts->start) < 0)
        goto out;
    out->defined = vk_strdup(define_name(c->opts));
    out->started = c->opts->start;
    r = out->defined ? 0 : -1;
out:
    catalog_backup_free(b);
    return r;
}

/* The destination as an absolute path (libvirt needs one). */
static char *dest_abs(const struct restore_options *o)
{
    char *p = realpath(o->dest_dir, NULL);

    if (!p)
        vk_error_errno(errno, "cannot resolve the destination directory '%s'", o->dest_dir);
    return p;
}

static void job_end(struct ctx *c, struct restore_result *out, int r)
{
    CLEANUP_FREE char *why = r < 0 ? vk_strdup(vk_error_message()) : NULL;
    enum vk_error_code code = vk_error_code();
    enum catalog_job_state st = r == 0                       ? CATALOG_JOB_SUCCEEDED
                                : code == VK_ERR_INTERRUPTED ? CATALOG_JOB_CANCELLED
                                                             : CATALOG_JOB_FAILED;

    if (catalog_job_finish(c->cat, out->job_id, st, why, out->seconds) < 0 && r == 0)
        vk_warn("%s", vk_error_message());
    else if (r < 0 && why)
        vk_error(code, "%s", why); /* the restore's error, not the catalog's */
}

int restore_run(struct catalog *cat, const struct restore_options *opts, struct restore_result *out,
                unsigned int flags)
{
    struct catalog_backups *chain = NULL;
    struct catalog_backup_disks *disks = NULL;
    struct restore_definer *def = NULL;
    struct disk_work *w = NULL;
    struct ctx c = {.cat = cat, .opts = opts};
    uint64_t t0 = vk_now_ns();
    const char *tip;
    int r = -1;

    memset(out, 0, sizeof *out);
    if (options_check(opts, flags) < 0 ||
        reader_chain_find(cat, opts->domain, opts->backup_id, opts->at, &chain) < 0)
        return -1;
    c.chain = chain;
    tip = chain->items[chain->count - 1].id;
    if (chain_ids(chain, out) < 0 || reader_disks_select(cat, opts->disks, tip, &disks) < 0 ||
        dest_check(opts, disks) < 0 || !(c.dest = dest_abs(opts)))
        goto out;
    if ((opts->define || opts->start) &&
        !(def = restore_definer_open(opts->connect_uri, define_name(opts), opts->force)))
        goto out;
    if (!(c.ts = reader_targets_new(opts->config, opts->from)) ||
        !(w = vk_calloc(disks->count + 1, sizeof *w)))
        goto out;
    /* A broken chain link or a disk that cannot be prepared still fails
     * inside a recorded job. */
    r = reader_chain_check(cat, c.ts, chain, &out->links_unchecked);
    if (r == 0 && out->links_unchecked)
        vk_info("%zu link(s) of the chain of backup '%s' not checked: manifests older than "
                "version 3 record no digest of their parent's manifest",
                out->links_unchecked, tip);
    if (r == 0)
        r = disks_prepare(&c, disks, out, w);
    if (r == 0)
        out->estimate_seconds = estimate_get(&c, out, w);
    if ((out->job_id = job_start(&c, tip, out->estimate_seconds)) < 0) {
        r = -1;
        goto out;
    }
    if (r == 0)
        r = disks_write(&c, out, w);
    out->seconds = (double)(vk_now_ns() - t0) / 1e9;
    throughput_record(&c, out->seconds);
    if (r == 0 && def)
        r = domain_define(&c, def, tip, out);
    job_end(&c, out, r);
out:
    works_free(&c, out, w);
    restore_definer_free(def);
    reader_targets_free(c.ts);
    catalog_backup_disks_free(disks);
    catalog_backups_free(chain);
    free(c.dest);
    return r;
}
