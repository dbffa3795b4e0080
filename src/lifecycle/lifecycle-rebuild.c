/* virtkeep - catalog rebuild from the manifests on a target (rebuild.h). */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
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
    vk_strv_free(r->refused);
    vk_strv_free(r->unchecked);
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

/* What can be checked of an archive without reading its data: the trailer
 * and the index (their sha256s, every extent), the header against the
 * manifest. */
static int archive_index_check(struct reader_targets *ts, const char *target,
                               const struct manifest *m, const struct manifest_disk *d)
{
    struct catalog_location loc = {.backup_id = m->backup_id,
                                   .disk = d->target,
                                   .target = (char *)target,
                                   .key = d->archive_key};
    struct reader_archive *a = reader_archive_open_at(ts, &loc, target);
    const struct archive_header *h;
    int r = 0;

    if (!a)
        return -1;
    h = archive_reader_header(a->reader);
    if (h->virtual_size != d->virtual_size || strcmp(h->level, m->level) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "archive '%s' holds a %s backup of a %" PRIu64 "-byte disk, the manifest says a "
                 "%s backup of %" PRIu64 " bytes",
                 d->archive_key, h->level, h->virtual_size, m->level, d->virtual_size);
        r = -1;
    }
    reader_archive_free(a);
    return r;
}

/* Every archive is there with the size the manifest gives, and its trailer
 * and index are sound and describe this backup's disk. */
static int archives_check(struct transport *t, struct reader_targets *ts, const char *target,
                          const struct manifest *m)
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
        if (archive_index_check(ts, target, m, &m->disks[i]) < 0)
            return -1;
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

/* One manifest of the target, read and parsed (or not). */
struct entry {
    char *key;
    struct manifest m;
    bool parsed;
    char hex[ARCHIVE_SHA256_HEX_LEN + 1]; /* of the object's bytes */
    size_t len;
    enum { ENTRY_NEW, ENTRY_VISITING, ENTRY_OK, ENTRY_REFUSED } state;
    bool has_child; /* a readable manifest names it as its parent */
};

struct run {
    struct catalog *cat;
    struct transport *t;
    struct reader_targets *ts;
    struct rebuild_result *res;
    struct entry *e;
    size_t n;
    char **unreadable_keys; /* the keys of the unreadable manifests */
};

static int manifest_load(struct run *x, struct entry *e)
{
    CLEANUP_FREE void *buf = NULL;
    uint8_t sha[ARCHIVE_SHA256_LEN];

    if (transport_get_all(x->t, e->key, MANIFEST_MAX_SIZE, &buf, &e->len) < 0 ||
        archive_sha256(buf, e->len, sha) < 0 ||
        reader_manifest_parse(x->ts, buf, e->len, e->key, &e->m) < 0)
        return -1;
    e->parsed = true;
    archive_sha256_hex(sha, e->hex);
    return manifest_place_check(&e->m, e->key) < 0 ||
                   archives_check(x->t, x->ts, x->res->target, &e->m) < 0
               ? -1
               : 0;
}

static struct entry *entry_find(struct run *x, const char *id)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->e[i].parsed && strcmp(x->e[i].m.backup_id, id) == 0)
            return &x->e[i];
    return NULL;
}

static int unchecked_add(struct run *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int unchecked_add(struct run *x, const char *fmt, ...)
{
    CLEANUP_FREE char *s = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s ? vk_strv_add(&x->res->unchecked, s) : -1;
}

/* The link of E (with a parent) to a parent that is not on this target but
 * is in the catalog: its recorded manifest digest.  1 ok, 0 not checked,
 * -1 broken (error set). */
static int link_catalog_check(struct run *x, const struct entry *e, const char *want)
{
    const struct manifest *m = &e->m;
    struct catalog_backup *b = catalog_backup_get(x->cat, m->parent_id);
    struct catalog_locations *locs = NULL;
    const char *have = NULL, *where = NULL;
    int r = -1;

    if (!b || b->status != CATALOG_STATUS_COMMITTED || strcmp(b->domain, m->domain_name) != 0) {
        vk_error(VK_ERR_NOT_FOUND,
                 "backup '%s' of domain '%s' names parent '%s', which does not exist: it is "
                 "neither on target '%s' nor a committed backup of that domain in the catalog",
                 m->backup_id, m->domain_name, m->parent_id, x->res->target);
        goto out;
    }
    if (catalog_archive_list(x->cat, m->parent_id, NULL, &locs) < 0)
        goto out;
    for (size_t i = 0; i < locs->count && !have; i++)
        if (!locs->items[i].disk && locs->items[i].sha256)
            have = locs->items[i].sha256, where = locs->items[i].key;
    if (!want || !have) {
        r = 0;
    } else if (strcmp(have, want) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "the chain link of backup '%s' of domain '%s' is broken: the catalog records "
                 "sha256 %s for the manifest of its parent '%s' (object '%s'), backup '%s' "
                 "records %s",
                 m->backup_id, m->domain_name, have, m->parent_id, where, m->backup_id, want);
    } else {
        r = 1;
    }
out:
    catalog_locations_free(locs);
    catalog_backup_free(b);
    return r;
}

static int entry_resolve(struct run *x, struct entry *e);

/* Check the link of E to its parent.  1 ok, 0 not checked, -1 refused
 * (error set). */
static int link_check(struct run *x, struct entry *e)
{
    const struct manifest *m = &e->m;
    char want[ARCHIVE_SHA256_HEX_LEN + 1];
    CLEANUP_FREE char *pkey = NULL;
    struct entry *p = entry_find(x, m->parent_id);

    if (m->has_parent_manifest_sha256)
        archive_sha256_hex(m->parent_manifest_sha256, want);
    if (!p) {
        pkey = format_object_key(m->domain_name, m->parent_id, "manifest.json");
        if (pkey && vk_strv_contains(x->unreadable_keys, pkey)) {
            vk_error(VK_ERR_CORRUPT,
                     "backup '%s' of domain '%s' names parent '%s', whose manifest (object '%s' "
                     "on target '%s') is unreadable",
                     m->backup_id, m->domain_name, m->parent_id, pkey, x->res->target);
            return -1;
        }
        return link_catalog_check(x, e, m->has_parent_manifest_sha256 ? want : NULL);
    }
    p->has_child = true;
    if (strcmp(p->m.domain_name, m->domain_name) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "backup '%s' of domain '%s' names parent '%s', a backup of domain '%s' (object "
                 "'%s' on target '%s')",
                 m->backup_id, m->domain_name, m->parent_id, p->m.domain_name, p->key,
                 x->res->target);
        return -1;
    }
    if (entry_resolve(x, p) < 0)
        return -1;
    if (p->state != ENTRY_OK) {
        vk_error(VK_ERR_CORRUPT,
                 "backup '%s' of domain '%s' names parent '%s', which was refused (object '%s' "
                 "on target '%s')",
                 m->backup_id, m->domain_name, m->parent_id, p->key, x->res->target);
        return -1;
    }
    if (!m->has_parent_manifest_sha256)
        return 0;
    if (strcmp(p->hex, want) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "the chain link of backup '%s' of domain '%s' is broken: the manifest of its "
                 "parent '%s' (object '%s' on target '%s') has sha256 %s, backup '%s' records %s",
                 m->backup_id, m->domain_name, m->parent_id, p->key, x->res->target, p->hex,
                 m->backup_id, want);
        return -1;
    }
    return 1;
}

/* Decide about E (its parent first) and record it when its chain holds.
 * -1 only on a catalog error. */
static int entry_resolve(struct run *x, struct entry *e)
{
    int link = 1;

    if (e->state == ENTRY_OK || e->state == ENTRY_REFUSED)
        return 0;
    if (e->state == ENTRY_VISITING) {
        vk_error(VK_ERR_CORRUPT,
                 "backup '%s' of domain '%s' is its own ancestor (a cycle of "
                 "parents)",
                 e->m.backup_id, e->m.domain_name);
        e->state = ENTRY_REFUSED;
        return strv_add2(&x->res->refused, e->m.backup_id, vk_error_message());
    }
    e->state = ENTRY_VISITING;
    if (e->m.parent_id && (link = link_check(x, e)) < 0) {
        if (e->state == ENTRY_REFUSED)
            return 0; /* refused as part of a cycle */
        e->state = ENTRY_REFUSED;
        return strv_add2(&x->res->refused, e->m.backup_id, vk_error_message());
    }
    if (link == 0 &&
        unchecked_add(x,
                      "backup '%s' of domain '%s': the link to its parent '%s' (manifest version "
                      "%d records no digest of its parent's manifest)",
                      e->m.backup_id, e->m.domain_name, e->m.parent_id, e->m.version) < 0)
        return -1;
    e->state = ENTRY_OK;
    return manifest_record(x->cat, x->res, &e->m, e->key, e->len, e->hex);
}

static int entries_run(struct run *x)
{
    size_t archives = 0;

    for (size_t i = 0; i < x->n; i++) {
        struct entry *e = &x->e[i];
        if (manifest_load(x, e) < 0) {
            e->parsed = false;
            manifest_clear(&e->m);
            if (strv_add2(&x->res->unreadable, e->key, vk_error_message()) < 0 ||
                vk_strv_add(&x->unreadable_keys, e->key) < 0)
                return -1;
        }
    }
    for (size_t i = 0; i < x->n; i++)
        if (x->e[i].parsed && entry_resolve(x, &x->e[i]) < 0)
            return -1;
    for (size_t i = 0; i < x->n; i++) {
        const struct entry *e = &x->e[i];
        if (e->state != ENTRY_OK)
            continue;
        archives += e->m.nr_disks;
        if (!e->has_child &&
            unchecked_add(x,
                          "backup '%s' of domain '%s': its manifest (object '%s'), the newest of "
                          "its chain: no backup records its digest",
                          e->m.backup_id, e->m.domain_name, e->key) < 0)
            return -1;
    }
    if (archives &&
        unchecked_add(x,
                      "the sha256 of %zu archive(s) as a whole: it needs reading all their data "
                      "(virtkeep verify does)",
                      archives) < 0)
        return -1;
    return 0;
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
    struct run x = {0};
    int r = -1;

    memset(res, 0, sizeof *res);
    if (flags != 0 || !o->target) {
        vk_error(VK_ERR_INVALID, "rebuild_run: a target is required");
        return -1;
    }
    if (!(res->target = vk_strdup(o->target)) || !(ts = reader_targets_new(o->config, NULL)) ||
        !(t = reader_targets_get(ts, o->target)) || transport_list(t, "", scan_cb, &s) < 0)
        goto out;
    x.n = vk_strv_len(s.manifests);
    res->manifests = x.n;
    if (!(x.e = vk_calloc(x.n + 1, sizeof *x.e)))
        goto out;
    for (size_t i = 0; i < x.n; i++)
        x.e[i].key = s.manifests[i]; /* borrowed */
    x.cat = cat, x.t = t, x.ts = ts, x.res = res;
    if (entries_run(&x) < 0)
        goto out;
    r = incomplete_find(&s, res);
out:
    for (size_t i = 0; i < x.n && x.e; i++)
        manifest_clear(&x.e[i].m);
    free(x.e);
    vk_strv_free(x.unreadable_keys);
    vk_strv_free(s.manifests);
    vk_strv_free(s.dirs);
    reader_targets_free(ts);
    return r;
}
