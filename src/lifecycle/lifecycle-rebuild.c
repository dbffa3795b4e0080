/* virtkeep - catalog rebuild from the manifests on a target (rebuild.h). */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/lifecycle/lifecycle.h"
#include "src/reader/reader.h"
#include "src/virt/virt.h"
#include "transport/transport.h"

struct scan {
    char **manifests; /* keys DOMAIN/ID/manifest.json */
    char **dirs;      /* DOMAIN/ID of every other object */
};

static int strv_add_once(char ***strv, const char *s)
{
    return vk_strv_contains(*strv, s) ? 0 : vk_strv_add(strv, s);
}

/* "A: B" */
static int strv_add2(char ***strv, const char *a, const char *b)
{
    CLEANUP_FREE char *s = vk_asprintf("%s: %s", a, b);
    return s ? vk_strv_add(strv, s) : -1;
}

void rebuild_result_clear(struct rebuild_result *r)
{
    free(r->target);
    vk_strv_free(r->domains);
    vk_strv_free(r->backups);
    vk_strv_free(r->incomplete);
    vk_strv_free(r->unreadable);
    vk_strv_free(r->conflicts);
    memset(r, 0, sizeof *r);
}

/* Sort keys into manifests and backup directories (DOMAIN/ID/...). */
static int scan_cb(void *opaque, const char *key, const struct transport_stat *st)
{
    struct scan *s = opaque;
    const char *a = strchr(key, '/');
    const char *b = a ? strchr(a + 1, '/') : NULL;
    CLEANUP_FREE char *dir = NULL;

    (void)st;
    if (!a || !b || strchr(b + 1, '/'))
        return 0; /* not in the layout: not ours */
    if (strcmp(b + 1, "manifest.json") == 0)
        return vk_strv_add(&s->manifests, key);
    dir = vk_asprintf("%.*s", (int)(b - key), key);
    return dir ? strv_add_once(&s->dirs, dir) : -1;
}

static const char *disk_format(const struct virt_disk_list *l, const struct manifest_disk *d)
{
    const struct virt_disk *vd = virt_disks_find(l, d->target);

    if (vd && vd->format)
        return vd->format;
    return d->cluster_size ? "qcow2" : "raw";
}

/* Every archive is there with the size the manifest gives. */
static int archives_check(struct transport *t, const struct manifest *m)
{
    for (size_t i = 0; i < m->nr_disks; i++) {
        struct transport_stat st;
        if (transport_stat(t, m->disks[i].archive_key, &st) < 0)
            return -1;
        if (st.size != m->disks[i].archive_size) {
            vk_error(VK_ERR_CORRUPT,
                     "archive '%s' is %" PRIu64 " bytes, the manifest says %" PRIu64,
                     m->disks[i].archive_key, st.size, m->disks[i].archive_size);
            return -1;
        }
    }
    return 0;
}

static int locations_add(struct catalog *cat, const char *target, const struct manifest *m,
                         const char *mkey, size_t mlen, const char *mhex)
{
    struct catalog_location loc = {.backup_id = m->backup_id,
                                   .target = (char *)target,
                                   .key = (char *)mkey,
                                   .size = mlen,
                                   .sha256 = (char *)mhex};

    if (catalog_archive_add_location(cat, &loc) < 0)
        return -1;
    for (size_t i = 0; i < m->nr_disks; i++) {
        char hex[ARCHIVE_SHA256_HEX_LEN + 1];
        archive_sha256_hex(m->disks[i].archive_sha256, hex);
        loc = (struct catalog_location){.backup_id = m->backup_id,
                                        .disk = m->disks[i].target,
                                        .target = (char *)target,
                                        .key = m->disks[i].archive_key,
                                        .size = m->disks[i].archive_size,
                                        .sha256 = hex};
        if (catalog_archive_add_location(cat, &loc) < 0)
            return -1;
    }
    return 0;
}

static int disks_add(struct catalog *cat, const struct manifest *m)
{
    struct virt_disk_list l = {0};
    int r = 0;

    if (virt_disks_parse(m->domain_xml, &l) < 0)
        vk_debug("the domain XML of backup '%s' has no readable disks", m->backup_id);
    for (size_t i = 0; i < m->nr_disks && r == 0; i++) {
        const struct manifest_disk *d = &m->disks[i];
        struct catalog_backup_disk bd = {m->backup_id,    d->target,     (char *)disk_format(&l, d),
                                         d->virtual_size, d->bytes_read, d->bytes_stored};
        struct catalog_disk cd = {m->domain_name, d->target, bd.format, d->virtual_size};
        r = catalog_backup_disk_add(cat, &bd) < 0 || catalog_disk_set(cat, &cd) < 0 ? -1 : 0;
    }
    virt_disks_clear(&l);
    return r;
}

static int backup_insert(struct catalog *cat, const struct manifest *m, size_t mlen)
{
    struct catalog_backup b = {.id = m->backup_id,
                               .domain = m->domain_name,
                               .status = CATALOG_STATUS_COMMITTED,
                               .checkpoint = m->checkpoint_name,
                               .parent = m->parent_id,
                               .started = m->started,
                               .finished = m->finished,
                               .bytes_written = mlen,
                               .checkpoint_xml = m->checkpoint_xml,
                               .domain_xml = m->domain_xml};

    if (catalog_level_parse(m->level, &b.level) < 0)
        return -1;
    for (size_t i = 0; i < m->nr_disks; i++) {
        b.bytes_read += m->disks[i].bytes_read;
        b.bytes_stored += m->disks[i].bytes_stored;
        b.bytes_written += m->disks[i].archive_size;
    }
    return catalog_domain_set(cat, m->domain_name, m->domain_uuid) < 0 ||
                   catalog_backup_insert(cat, &b) < 0 || disks_add(cat, m) < 0
               ? -1
               : 0;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* 1 recorded already (and consistent), 0 not recorded, -1 conflict/error. */
static int backup_known(struct catalog *cat, const struct manifest *m)
{
    struct catalog_backup *b = catalog_backup_get(cat, m->backup_id);
    int r;

    if (!b)
        return vk_error_code() == VK_ERR_NOT_FOUND ? 0 : -1;
    r = strcmp(b->domain, m->domain_name) == 0 &&
                strcmp(catalog_level_name(b->level), m->level) == 0 &&
                str_eq(b->parent, m->parent_id) && b->status == CATALOG_STATUS_COMMITTED
            ? 1
            : -1;
    if (r < 0)
        vk_error(VK_ERR_INVALID,
                 "the catalog records it as a %s %s backup of domain '%s' (parent %s), the "
                 "manifest as %s of '%s' (parent %s)",
                 catalog_status_name(b->status), catalog_level_name(b->level), b->domain,
                 b->parent ? b->parent : "none", m->level, m->domain_name,
                 m->parent_id ? m->parent_id : "none");
    catalog_backup_free(b);
    return r;
}

/* Record one parsed manifest in one transaction. */
static int manifest_record(struct catalog *cat, struct rebuild_result *res,
                           const struct manifest *m, const char *key, size_t len, const char *hex)
{
    int known = backup_known(cat, m);

    if (known < 0)
        return strv_add2(&res->conflicts, m->backup_id, vk_error_message());
    if (catalog_begin(cat) < 0)
        return -1;
    if ((!known && backup_insert(cat, m, len) < 0) ||
        locations_add(cat, res->target, m, key, len, hex) < 0 || catalog_commit(cat) < 0) {
        catalog_rollback(cat);
        return -1;
    }
    *(known ? &res->known : &res->added) += 1;
    return strv_add_once(&res->domains, m->domain_name) < 0 ||
                   vk_strv_add(&res->backups, m->backup_id) < 0
               ? -1
               : 0;
}

/* A manifest whose path disagrees with its content is not trusted.  The
 * path is the encoded one (docs/FORMAT.md, "Object keys"); before names
 * were encoded, a name with '%' was written at its raw path. */
static int manifest_place_check(const struct manifest *m, const char *key)
{
    CLEANUP_FREE char *want = format_object_key(m->domain_name, m->backup_id, "manifest.json");
    CLEANUP_FREE char *raw = NULL;

    if (!want)
        return -1;
    if (strcmp(want, key) == 0)
        return 0;
    if (strchr(m->domain_name, '%') &&
        (raw = vk_asprintf("%s/%s/manifest.json", m->domain_name, m->backup_id)) &&
        strcmp(raw, key) == 0)
        return 0;
    vk_error(VK_ERR_CORRUPT, "it describes backup '%s' of domain '%s', which belongs at '%s'",
             m->backup_id, m->domain_name, want);
    return -1;
}

static int manifest_one(struct catalog *cat, struct transport *t, const char *key,
                        struct rebuild_result *res)
{
    CLEANUP_FREE void *buf = NULL;
    struct manifest m = {0};
    uint8_t sha[ARCHIVE_SHA256_LEN];
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    size_t len = 0;
    int r;

    if (transport_get_all(t, key, MANIFEST_MAX_SIZE, &buf, &len) < 0 ||
        manifest_parse(buf, len, key, &m) < 0 || manifest_place_check(&m, key) < 0 ||
        archives_check(t, &m) < 0 || archive_sha256(buf, len, sha) < 0) {
        manifest_clear(&m);
        return strv_add2(&res->unreadable, key, vk_error_message());
    }
    archive_sha256_hex(sha, hex);
    r = manifest_record(cat, res, &m, key, len, hex);
    manifest_clear(&m);
    return r;
}

static int incomplete_find(const struct scan *s, struct rebuild_result *res)
{
    for (size_t i = 0; s->dirs && s->dirs[i]; i++) {
        CLEANUP_FREE char *key = vk_asprintf("%s/manifest.json", s->dirs[i]);
        if (!key)
            return -1;
        if (!vk_strv_contains(s->manifests, key) && vk_strv_add(&res->incomplete, s->dirs[i]) < 0)
            return -1;
    }
    return 0;
}

int rebuild_run(struct catalog *cat, const struct rebuild_options *o, struct rebuild_result *res,
                unsigned int flags)
{
    struct reader_targets *ts = NULL;
    struct transport *t;
    struct scan s = {0};
    int r = -1;

    memset(res, 0, sizeof *res);
    if (flags != 0 || !o->target) {
        vk_error(VK_ERR_INVALID, "rebuild_run: a target is required");
        return -1;
    }
    if (!(res->target = vk_strdup(o->target)) || !(ts = reader_targets_new(o->config, NULL)) ||
        !(t = reader_targets_get(ts, o->target)) || transport_list(t, "", scan_cb, &s) < 0)
        goto out;
    for (size_t i = 0; s.manifests && s.manifests[i]; i++, res->manifests++)
        if (manifest_one(cat, t, s.manifests[i], res) < 0)
            goto out;
    r = incomplete_find(&s, res);
out:
    vk_strv_free(s.manifests);
    vk_strv_free(s.dirs);
    reader_targets_free(ts);
    return r;
}
