/* virtkeep - finding and opening the archives of a backup for restore and
 * verify.
 *
 * The catalog records where each archive lives by target NAME.  A name is
 * looked up in the configuration's [target NAME] sections; a backup made to
 * a URL without a configured target is recorded under the URL itself, which
 * is opened as it is.  --from (a name or URL) overrides every location: the
 * key is the recorded one, or the fixed layout DOMAIN/BACKUP/DISK.tar.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/conf/conf.h"
#include "src/format/format.h"
#include "src/reader/reader.h"
#include "transport/transport.h"

struct target_slot {
    char *name;
    struct transport *t;
};

struct reader_targets {
    const struct config *cfg;
    char *from;
    struct target_slot *slots;
    size_t nr;
    struct format_keyring keys;
    bool keys_loaded;
};

struct reader_targets *reader_targets_new(const struct config *cfg, const char *from)
{
    struct reader_targets *ts = vk_calloc(1, sizeof *ts);

    if (!ts)
        return NULL;
    ts->cfg = cfg;
    if (from && !(ts->from = vk_strdup(from))) {
        free(ts);
        return NULL;
    }
    return ts;
}

void reader_targets_free(struct reader_targets *ts)
{
    if (!ts)
        return;
    for (size_t i = 0; i < ts->nr; i++) {
        transport_close(ts->slots[i].t);
        free(ts->slots[i].name);
    }
    free(ts->slots);
    free(ts->from);
    format_keyring_clear(&ts->keys);
    free(ts);
}

const struct format_keyring *reader_keyring(struct reader_targets *ts)
{
    CLEANUP_FREE const char **files = NULL;

    if (ts->keys_loaded)
        return &ts->keys;
    ts->keys_loaded = true;
    files = config_key_files(ts->cfg);
    for (size_t i = 0; files && files[i]; i++)
        if (format_keyring_load(&ts->keys, files[i]) < 0)
            vk_warn("%s", vk_error_message());
    if (format_keyring_load_env(&ts->keys, FORMAT_KEY_ENV) < 0)
        vk_warn("%s", vk_error_message());
    return &ts->keys;
}

int reader_manifest_parse(struct reader_targets *ts, const void *buf, size_t len, const char *key,
                          struct manifest *m)
{
    if (manifest_parse(buf, len, key, m) < 0)
        return -1;
    if (manifest_authenticate(buf, len, key, m, reader_keyring(ts)) < 0) {
        manifest_clear(m);
        return -1;
    }
    return 0;
}

static struct transport *target_open(const struct config *cfg, const char *name)
{
    const struct config_target *ct = cfg ? config_target_find(cfg, name) : NULL;
    struct transport_options opts;

    memset(&opts, 0, sizeof opts);
    if (ct) {
        config_target_options(ct, &opts);
        return transport_open(ct->name, ct->url, &opts);
    }
    if (transport_is_url(name))
        return transport_open(NULL, name, NULL);
    vk_error(VK_ERR_NOT_FOUND,
             "target '%s' is not defined in the configuration '%s': add a [target %s] section "
             "or give --from URL",
             name, cfg && cfg->file ? cfg->file : "(none)", name);
    return NULL;
}

struct transport *reader_targets_get(struct reader_targets *ts, const char *name)
{
    struct target_slot *slots;
    struct transport *t;

    for (size_t i = 0; i < ts->nr; i++)
        if (strcmp(ts->slots[i].name, name) == 0)
            return ts->slots[i].t;
    slots = vk_realloc_array(ts->slots, ts->nr + 1, sizeof *slots);
    if (!slots)
        return NULL;
    ts->slots = slots;
    t = target_open(ts->cfg, name);
    if (!t)
        return NULL;
    slots[ts->nr].name = vk_strdup(name);
    if (!slots[ts->nr].name) {
        transport_close(t);
        return NULL;
    }
    slots[ts->nr++].t = t;
    return t;
}

size_t reader_targets_count(const struct reader_targets *ts)
{
    return ts->nr;
}

const char *reader_targets_name(const struct reader_targets *ts, size_t i, uint64_t *bytes_read)
{
    struct transport_counters c;

    transport_counters_get(ts->slots[i].t, &c);
    *bytes_read = c.bytes_read;
    return ts->slots[i].name;
}

/* ---------------------------------------------------------------- archives */

static int source_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
    struct reader_archive *a = opaque;
    size_t done = 0;

    while (done < len) {
        ssize_t n =
            transport_get_range(a->t, a->key, offset + done, (char *)buf + done, len - done);
        if (n < 0)
            return -1;
        if (n == 0) {
            vk_error(VK_ERR_CORRUPT,
                     "archive '%s' of backup '%s' (disk '%s') on target '%s' is truncated: "
                     "it ends before offset %" PRIu64,
                     a->key, a->backup_id, a->disk, a->target, offset + done);
            return -1;
        }
        done += (size_t)n;
        a->bytes_fetched += (uint64_t)n;
    }
    return 0;
}

void reader_archive_free(struct reader_archive *a)
{
    if (!a)
        return;
    archive_reader_free(a->reader);
    free(a->backup_id);
    free(a->disk);
    free(a->target);
    free(a->key);
    free(a);
}

static int header_check(const struct reader_archive *a)
{
    const struct archive_header *h = archive_reader_header(a->reader);

    if (strcmp(h->disk, a->disk) != 0 || strcmp(h->backup_id, a->backup_id) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "archive '%s' on target '%s' holds disk '%s' of backup '%s', not disk '%s' of "
                 "backup '%s'",
                 a->key, a->target, h->disk, h->backup_id, a->disk, a->backup_id);
        return -1;
    }
    return 0;
}

/* Open the object, check its size against EXPECT_SIZE (0: unknown) and open
 * the reader. */
/* Say when an archive needs a retired key: it must be kept. */
static void key_report(struct reader_targets *ts, const struct reader_archive *a)
{
    const char *id = archive_reader_key_id(a->reader);
    const struct format_key *k = format_keyring_find(reader_keyring(ts), id);

    if (k && k->retired)
        vk_info("backup '%s' (disk '%s') is sealed with retired key '%s' (%s): keep that key as "
                "long as the backup is kept",
                a->backup_id, a->disk, id, k->source ? k->source : "keyring");
}

static int archive_load(struct reader_targets *ts, struct reader_archive *a, uint64_t expect_size)
{
    struct transport_stat st;
    struct archive_source src = {.pread = source_pread, .opaque = a};

    if (transport_stat(a->t, a->key, &st) < 0) {
        vk_error_prefix("backup '%s', disk '%s'", a->backup_id, a->disk);
        return -1;
    }
    if (expect_size && st.size != expect_size) {
        vk_error(VK_ERR_CORRUPT,
                 "archive '%s' of backup '%s' (disk '%s') on target '%s' is %" PRIu64
                 " bytes, the catalog records %" PRIu64 ": it is truncated or replaced",
                 a->key, a->backup_id, a->disk, a->target, st.size, expect_size);
        return -1;
    }
    a->size = src.size = st.size;
    a->reader = archive_reader_open_keyed(&src, a->key, reader_keyring(ts), 0);
    if (!a->reader) {
        vk_error_prefix("backup '%s', disk '%s'", a->backup_id, a->disk);
        return -1;
    }
    key_report(ts, a);
    return header_check(a);
}

struct reader_archive *reader_archive_open_at(struct reader_targets *ts,
                                              const struct catalog_location *loc,
                                              const char *target_name)
{
    struct reader_archive *a = vk_calloc(1, sizeof *a);

    if (!a)
        return NULL;
    a->backup_id = vk_strdup(loc->backup_id);
    a->disk = vk_strdup(loc->disk ? loc->disk : "");
    a->target = vk_strdup(target_name);
    a->key = vk_strdup(loc->key);
    if (!a->backup_id || !a->disk || !a->target || !a->key)
        goto fail;
    a->t = reader_targets_get(ts, target_name);
    if (!a->t || archive_load(ts, a, ts->from ? 0 : loc->size) < 0)
        goto fail;
    return a;
fail:
    reader_archive_free(a);
    return NULL;
}

/* Order candidate locations by the measured read rate of their target. */
static void locations_sort(struct catalog *cat, struct catalog_location **c, size_t n)
{
    CLEANUP_FREE double *rate = vk_calloc(n + 1, sizeof *rate);

    if (!rate)
        return; /* keep the catalog's order */
    for (size_t i = 0; i < n; i++) {
        struct catalog_rate r = {0};
        rate[i] = catalog_throughput_estimate(cat, c[i]->target, CATALOG_DIR_READ, &r) == 0
                      ? r.bytes_per_second
                      : 0;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && rate[j] > rate[j - 1]; j--) {
            struct catalog_location *tl = c[j];
            double tr = rate[j];
            c[j] = c[j - 1], rate[j] = rate[j - 1];
            c[j - 1] = tl, rate[j - 1] = tr;
        }
}

static struct reader_archive *open_from(struct reader_targets *ts, const char *domain,
                                        const char *backup_id, const char *disk,
                                        const struct catalog_locations *locs)
{
    struct catalog_location loc = {.backup_id = (char *)backup_id, .disk = (char *)disk};
    CLEANUP_FREE char *key = NULL, *tarname = NULL;

    for (size_t i = 0; i < locs->count && !loc.key; i++)
        if (locs->items[i].disk && strcmp(locs->items[i].disk, disk) == 0)
            loc.key = locs->items[i].key;
    if (!loc.key && (tarname = vk_asprintf("%s.tar", disk)))
        loc.key = key = format_object_key(domain, backup_id, tarname);
    if (!loc.key)
        return NULL;
    return reader_archive_open_at(ts, &loc, ts->from);
}

struct reader_archive *reader_archive_open(struct catalog *cat, struct reader_targets *ts,
                                           const char *domain, const char *backup_id,
                                           const char *disk)
{
    struct catalog_locations *locs = NULL;
    struct reader_archive *a = NULL;
    CLEANUP_FREE struct catalog_location **cand = NULL;
    size_t n = 0;

    if (catalog_archive_list(cat, backup_id, NULL, &locs) < 0)
        return NULL;
    if (ts->from) {
        a = open_from(ts, domain, backup_id, disk, locs);
        goto out;
    }
    cand = vk_calloc(locs->count + 1, sizeof *cand);
    if (!cand)
        goto out;
    for (size_t i = 0; i < locs->count; i++)
        if (locs->items[i].disk && strcmp(locs->items[i].disk, disk) == 0)
            cand[n++] = &locs->items[i];
    if (n == 0) {
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' has no recorded archive of disk '%s'", backup_id,
                 disk);
        goto out;
    }
    locations_sort(cat, cand, n);
    for (size_t i = 0; i < n && !a; i++) {
        a = reader_archive_open_at(ts, cand[i], cand[i]->target);
        /* A corrupt copy is an error worth stopping for; an unreachable
         * target is not when another copy exists. */
        if (!a && (vk_error_code() == VK_ERR_CORRUPT || i + 1 == n))
            break;
        if (!a)
            vk_warn("%s; trying the next copy", vk_error_message());
    }
out:
    catalog_locations_free(locs);
    return a;
}

int reader_archive_read_chunk(struct reader_archive *a, const struct archive_extent *e, void *out)
{
    if (archive_reader_read_chunk(a->reader, e, out) < 0) {
        vk_error_prefix("backup '%s', disk '%s', chunk at offset %" PRIu64, a->backup_id, a->disk,
                        e->offset);
        return -1;
    }
    return 0;
}

int reader_archive_read_frame(struct reader_archive *a, const struct archive_extent *e, void *frame)
{
    if (e->kind == ARCHIVE_EXTENT_DATA && source_pread(a, frame, e->size, e->position) == 0)
        return 0;
    if (e->kind != ARCHIVE_EXTENT_DATA)
        vk_error(VK_ERR_INVALID, "the chunk holds zeros, not a frame");
    vk_error_prefix("backup '%s', disk '%s', chunk at offset %" PRIu64, a->backup_id, a->disk,
                    e->offset);
    return -1;
}

/* ---------------------------------------------------------------- manifests */

static int manifest_fetch(struct reader_targets *ts, const struct catalog_location *loc,
                          struct manifest *m)
{
    struct transport *t = reader_targets_get(ts, ts->from ? ts->from : loc->target);
    CLEANUP_FREE void *buf = NULL;
    size_t len;

    if (!t || transport_get_all(t, loc->key, MANIFEST_MAX_SIZE, &buf, &len) < 0)
        return -1;
    return reader_manifest_parse(ts, buf, len, loc->key, m);
}

void reader_source_qcow2(struct catalog *cat, struct reader_targets *ts, const char *backup_id,
                         const char *disk, uint64_t *cluster_size, char **compat)
{
    struct catalog_locations *locs = NULL;
    struct manifest m = {0};
    bool found = false;

    *cluster_size = 0;
    *compat = NULL;
    if (catalog_archive_list(cat, backup_id, NULL, &locs) < 0)
        return;
    for (size_t i = 0; i < locs->count && !found; i++)
        found = !locs->items[i].disk && manifest_fetch(ts, &locs->items[i], &m) == 0;
    for (size_t i = 0; found && i < m.nr_disks; i++) {
        if (strcmp(m.disks[i].target, disk) == 0 && m.disks[i].cluster_size) {
            *cluster_size = m.disks[i].cluster_size;
            *compat = m.disks[i].compat ? vk_strdup(m.disks[i].compat) : NULL;
        }
    }
    if (!found)
        vk_debug("no manifest of backup '%s' could be read: default qcow2 options", backup_id);
    manifest_clear(&m);
    catalog_locations_free(locs);
}

/* ---------------------------------------------------------------- links */

/* One stored manifest: its bytes' digest, where it was read, parsed. */
struct manifest_obj {
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    char *target; /* the target it was read from */
    char *key;
    const char *recorded; /* the catalog's sha256 of it, or NULL (points into locs) */
    struct manifest m;
    bool parsed;
};

static void manifest_obj_clear(struct manifest_obj *o)
{
    free(o->target);
    free(o->key);
    manifest_clear(&o->m);
    memset(o, 0, sizeof *o);
}

/* Read the manifest of BACKUP_ID from its recorded location on TARGET (any
 * target when NULL: PREFER first, then --from, then where it was recorded,
 * the fastest target first), hash it and, when PARSE, parse it. */
static int manifest_obj_get(struct catalog *cat, struct reader_targets *ts,
                            const struct catalog_locations *locs, const char *target,
                            const char *prefer, bool parse, struct manifest_obj *o)
{
    CLEANUP_FREE struct catalog_location **cand = vk_calloc(locs->count + 1, sizeof *cand);
    size_t n = 0;

    if (!cand)
        return -1;
    for (size_t i = 0; i < locs->count; i++)
        if (!locs->items[i].disk)
            cand[n++] = &locs->items[i];
    locations_sort(cat, cand, n);
    for (int pass = prefer ? 0 : 1; pass < (target || !ts->from ? 2 : 3); pass++) {
        for (size_t i = 0; i < n; i++) {
            const struct catalog_location *l = cand[i];
            const char *name = ts->from && pass < 2 ? ts->from : l->target;
            CLEANUP_FREE void *buf = NULL;
            struct transport *t;
            uint8_t sha[ARCHIVE_SHA256_LEN];
            size_t len;

            if ((target && strcmp(name, target) != 0) || (pass == 0 && strcmp(name, prefer) != 0))
                continue;
            if (!(t = reader_targets_get(ts, name)) ||
                transport_get_all(t, l->key, MANIFEST_MAX_SIZE, &buf, &len) < 0 ||
                archive_sha256(buf, len, sha) < 0) {
                vk_debug("manifest '%s' on target '%s': %s", l->key, name, vk_error_message());
                continue;
            }
            archive_sha256_hex(sha, o->hex);
            o->recorded = l->sha256;
            if (!(o->target = vk_strdup(name)) || !(o->key = vk_strdup(l->key)))
                return -1;
            if (parse && reader_manifest_parse(ts, buf, len, l->key, &o->m) < 0)
                return -1;
            o->parsed = parse;
            return 0;
        }
    }
    vk_error(VK_ERR_NOT_FOUND, "no recorded manifest of backup '%s'%s%s can be read",
             locs->count ? locs->items[0].backup_id : "?", target ? " on target " : "",
             target ? target : "");
    return -1;
}

static int locations_of(struct catalog *cat, const char *id, struct catalog_locations **out)
{
    if (catalog_archive_list(cat, id, NULL, out) < 0)
        return -1;
    if ((*out)->count == 0) {
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' has no object recorded on any target", id);
        return -1;
    }
    return 0;
}

/* The child's side of a link, with the child's manifest in C. */
static int link_child_check(const struct catalog_backup *child, const struct manifest_obj *c)
{
    const char *mp = c->m.parent_id;

    if (c->recorded && strcmp(c->hex, c->recorded) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "the manifest of backup '%s' of domain '%s' (object '%s' on target '%s') has "
                 "sha256 %s, the catalog records %s",
                 child->id, child->domain, c->key, c->target, c->hex, c->recorded);
        return -1;
    }
    if (!mp || strcmp(mp, child->parent) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "the chain link of backup '%s' of domain '%s' is broken: its manifest (object "
                 "'%s' on target '%s') names parent '%s', the catalog '%s'",
                 child->id, child->domain, c->key, c->target, mp ? mp : "none", child->parent);
        return -1;
    }
    return 0;
}

int reader_link_check(struct catalog *cat, struct reader_targets *ts,
                      const struct catalog_backup *child, const char *target, bool *unchecked)
{
    struct catalog_locations *clocs = NULL, *plocs = NULL;
    struct manifest_obj c = {0}, p = {0};
    char want[ARCHIVE_SHA256_HEX_LEN + 1];
    int r = -1;

    *unchecked = false;
    if (!child->parent)
        return 0;
    if (locations_of(cat, child->id, &clocs) < 0 ||
        manifest_obj_get(cat, ts, clocs, target, NULL, true, &c) < 0) {
        vk_error_prefix("cannot check the chain link of backup '%s' of domain '%s'", child->id,
                        child->domain);
        goto out;
    }
    if (link_child_check(child, &c) < 0)
        goto out;
    if (!c.m.has_parent_manifest_sha256) {
        *unchecked = true; /* a manifest of version 1 or 2 */
        vk_debug("the chain link of backup '%s' to '%s' is not checked: its manifest (version %d) "
                 "records no digest of its parent's manifest",
                 child->id, child->parent, c.m.version);
        r = 0;
        goto out;
    }
    if (locations_of(cat, child->parent, &plocs) < 0 ||
        manifest_obj_get(cat, ts, plocs, NULL, c.target, false, &p) < 0) {
        vk_error_prefix("the chain link of backup '%s' of domain '%s' cannot be checked: the "
                        "manifest of its parent '%s'",
                        child->id, child->domain, child->parent);
        goto out;
    }
    archive_sha256_hex(c.m.parent_manifest_sha256, want);
    if (strcmp(p.hex, want) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "the chain link of backup '%s' of domain '%s' is broken: the manifest of its "
                 "parent '%s' (object '%s' on target '%s') has sha256 %s, backup '%s' records %s",
                 child->id, child->domain, child->parent, p.key, p.target, p.hex, child->id, want);
        goto out;
    }
    r = 0;
out:
    manifest_obj_clear(&c);
    manifest_obj_clear(&p);
    catalog_locations_free(clocs);
    catalog_locations_free(plocs);
    return r;
}

/* The manifest of B (the full of a chain: no link covers it) as stored:
 * the digest the catalog records and, sealed, its HMAC.  A manifest that
 * cannot be read is not a failure here (the archives are what a restore
 * needs); one that was read and is wrong is. */
static int manifest_head_check(struct catalog *cat, struct reader_targets *ts,
                               const struct catalog_backup *b)
{
    struct catalog_locations *locs = NULL;
    struct manifest_obj o = {0};
    int r = 0;

    if (catalog_archive_list(cat, b->id, NULL, &locs) < 0)
        return -1;
    if (manifest_obj_get(cat, ts, locs, NULL, NULL, true, &o) < 0) {
        if (vk_error_code() == VK_ERR_CORRUPT || vk_error_code() == VK_ERR_AUTH) {
            vk_error_prefix("backup '%s' of domain '%s'", b->id, b->domain);
            r = -1;
        } else {
            vk_debug("the manifest of backup '%s' is not checked: %s", b->id, vk_error_message());
        }
    } else if (o.recorded && strcmp(o.hex, o.recorded) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "the manifest of backup '%s' of domain '%s' (object '%s' on target '%s') has "
                 "sha256 %s, the catalog records %s",
                 b->id, b->domain, o.key, o.target, o.hex, o.recorded);
        r = -1;
    }
    manifest_obj_clear(&o);
    catalog_locations_free(locs);
    return r;
}

int reader_chain_check(struct catalog *cat, struct reader_targets *ts,
                       const struct catalog_backups *chain, size_t *unchecked)
{
    *unchecked = 0;
    if (chain->count && manifest_head_check(cat, ts, &chain->items[0]) < 0)
        return -1;
    for (size_t i = 1; i < chain->count; i++) {
        const struct catalog_backup *b = &chain->items[i];
        bool u;
        if (!b->parent || strcmp(b->parent, chain->items[i - 1].id) != 0) {
            vk_error(VK_ERR_CORRUPT, "backup '%s' of domain '%s' does not follow '%s' in its chain",
                     b->id, b->domain, chain->items[i - 1].id);
            return -1;
        }
        if (reader_link_check(cat, ts, b, NULL, &u) < 0)
            return -1;
        *unchecked += u;
    }
    return 0;
}
