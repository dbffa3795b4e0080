/* virtkeep - verify_run: re-read the archives of backups and check them.
 *
 * Each recorded copy (or only the copies on --from) is checked: the object
 * size against the catalog, the trailer, the index and its sha256, the
 * header against the backup and disk; then, unless VERIFY_QUICK, every
 * chunk (zstd + sha256) and the sha256 of the whole object against the
 * catalog and the manifest stored beside it.  Every failure is one item
 * with a message naming backup, disk, chunk and offset.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/restore/restore-int.h"
#include "transport/transport.h"

#define HASH_BLOCK (4u * 1024 * 1024)

static void items_free(struct verify_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].backup_id);
        free(items[i].disk);
        free(items[i].parent);
        free(items[i].target);
        free(items[i].key);
        free(items[i].error);
    }
    free(items);
}

void verify_result_clear(struct verify_result *r)
{
    items_free(r->items, r->nr);
    items_free(r->links, r->nr_links);
    memset(r, 0, sizeof *r);
}

static int digest_mismatch(const char *key, const char *target, const char *what, const char *have,
                           const char *want)
{
    vk_error(VK_ERR_CORRUPT, "object '%s' on target '%s' has sha256 %s, %s records %s", key, target,
             have, what, want);
    return -1;
}

/* The sha256 of the whole object, read in blocks. */
static int object_sha256(struct transport *t, const char *key, uint64_t size,
                         char hex[ARCHIVE_SHA256_HEX_LEN + 1])
{
    CLEANUP_FREE uint8_t *buf = vk_malloc(HASH_BLOCK);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t sha[ARCHIVE_SHA256_LEN];
    int r = -1;

    if (!buf || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (uint64_t off = 0; off < size;) {
        ssize_t n = transport_get_range(t, key, off, buf, HASH_BLOCK);
        if (n < 0)
            goto out;
        if (n == 0) {
            vk_error(VK_ERR_CORRUPT, "object '%s' ends at offset %" PRIu64 " while reading it", key,
                     off);
            goto out;
        }
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
            goto out;
        off += (uint64_t)n;
    }
    if (EVP_DigestFinal_ex(md, sha, NULL) != 1)
        goto out;
    archive_sha256_hex(sha, hex);
    r = 0;
out:
    if (r < 0 && vk_error_code() == VK_ERR_NONE)
        vk_error(VK_ERR_INTERNAL, "cannot compute the sha256 of object '%s'", key);
    EVP_MD_CTX_free(md);
    return r;
}

/* The manifest of a backup on one target (NULL when there is none). */
struct manifest_copy {
    struct manifest m;
    bool loaded;
};

static int manifest_load(struct reader_targets *ts, struct transport *t, const char *key,
                         const char *sha_want, struct manifest *m)
{
    CLEANUP_FREE void *buf = NULL;
    uint8_t sha[ARCHIVE_SHA256_LEN];
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    size_t len;

    if (transport_get_all(t, key, MANIFEST_MAX_SIZE, &buf, &len) < 0)
        return -1;
    if (sha_want) {
        if (archive_sha256(buf, len, sha) < 0)
            return -1;
        archive_sha256_hex(sha, hex);
        if (strcmp(hex, sha_want) != 0)
            return digest_mismatch(key, transport_name(t), "the catalog", hex, sha_want);
    }
    return reader_manifest_parse(ts, buf, len, key, m);
}

static const struct manifest_disk *manifest_disk_find(const struct manifest *m, const char *disk)
{
    for (size_t i = 0; i < m->nr_disks; i++)
        if (strcmp(m->disks[i].target, disk) == 0)
            return &m->disks[i];
    return NULL;
}

/* Full check of an opened archive: chunks, then whole-object digests. */
static int archive_deep_check(struct reader_archive *a, const struct catalog_location *loc,
                              const struct manifest *m, struct verify_item *it)
{
    const struct archive_extent *ext;
    CLEANUP_FREE uint8_t *buf = NULL;
    char hex[ARCHIVE_SHA256_HEX_LEN + 1], want[ARCHIVE_SHA256_HEX_LEN + 1];
    const struct manifest_disk *md;
    size_t n;

    ext = archive_reader_extents(a->reader, &n);
    buf = vk_malloc(archive_reader_header(a->reader)->chunk_size);
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (ext[i].kind != ARCHIVE_EXTENT_DATA)
            continue;
        if (reader_archive_read_chunk(a, &ext[i], buf) < 0)
            return -1;
        it->chunks++;
    }
    if (object_sha256(a->t, a->key, a->size, hex) < 0)
        return -1;
    if (loc->sha256 && strcmp(hex, loc->sha256) != 0)
        return digest_mismatch(a->key, a->target, "the catalog", hex, loc->sha256);
    if (m && (md = manifest_disk_find(m, a->disk))) {
        archive_sha256_hex(md->archive_sha256, want);
        if (md->archive_size != a->size || strcmp(hex, want) != 0)
            return digest_mismatch(a->key, a->target, "its manifest", hex, want);
    }
    return 0;
}

static int item_check(struct reader_targets *ts, const struct catalog_location *loc,
                      const char *target, const struct manifest *m, unsigned int flags,
                      struct verify_item *it)
{
    struct reader_archive *a = reader_archive_open_at(ts, loc, target);
    int r = -1;

    if (!a)
        return -1;
    it->bytes = a->size;
    if (flags & VERIFY_QUICK) {
        const struct manifest_disk *md = m ? manifest_disk_find(m, a->disk) : NULL;
        r = 0;
        if (md && md->archive_size != a->size) {
            vk_error(VK_ERR_CORRUPT,
                     "archive '%s' of backup '%s' (disk '%s') is %" PRIu64
                     " bytes, its manifest records %" PRIu64,
                     a->key, a->backup_id, a->disk, a->size, md->archive_size);
            r = -1;
        }
    } else {
        r = archive_deep_check(a, loc, m, it);
    }
    reader_archive_free(a);
    return r;
}

static struct verify_item *item_append(struct verify_item **arr, size_t *nr,
                                       const struct catalog_location *loc, const char *target)
{
    struct verify_item *items = vk_realloc_array(*arr, *nr + 1, sizeof *items), *it;

    if (!items)
        return NULL;
    *arr = items;
    it = &items[(*nr)++];
    memset(it, 0, sizeof *it);
    it->backup_id = vk_strdup(loc->backup_id);
    it->disk = loc->disk ? vk_strdup(loc->disk) : NULL;
    it->target = vk_strdup(target);
    it->key = loc->key ? vk_strdup(loc->key) : NULL;
    return it;
}

static struct verify_item *item_add(struct verify_result *res, const struct catalog_location *loc,
                                    const char *target)
{
    return item_append(&res->items, &res->nr, loc, target);
}

static void item_result(struct verify_result *res, struct verify_item *it, int r)
{
    it->ok = r == 0;
    if (r < 0) {
        const char *msg = vk_error_message();
        it->error = vk_strdup(msg ? msg : "unknown error");
        res->failed++;
    }
}

/* Location I is on TARGET (every location is, with --from) and is the first
 * with its key there. */
static bool location_on(const struct catalog_locations *locs, size_t i, const char *target,
                        const char *from)
{
    if (!from && strcmp(locs->items[i].target, target) != 0)
        return false;
    for (size_t j = 0; j < i; j++)
        if ((from || strcmp(locs->items[j].target, target) == 0) &&
            strcmp(locs->items[j].key, locs->items[i].key) == 0)
            return false;
    return true;
}

/* Verify the manifest copy of a backup on TARGET, loading it into MC. */
static void manifest_check(struct reader_targets *ts, const struct catalog_location *loc,
                           const char *target, struct manifest_copy *mc, struct verify_result *res)
{
    struct verify_item *it = item_add(res, loc, target);
    struct transport *t = reader_targets_get(ts, target);
    int r = -1;

    if (!it)
        return;
    if (!loc->key)
        vk_error(VK_ERR_NOT_FOUND,
                 "backup '%s' has no manifest recorded on target '%s': it is "
                 "incomplete there",
                 loc->backup_id, target);
    else if (t && manifest_load(ts, t, loc->key, loc->sha256, &mc->m) == 0)
        mc->loaded = true, it->bytes = loc->size, r = 0;
    if (r < 0 && loc->key)
        vk_error_prefix("backup '%s', manifest", loc->backup_id);
    item_result(res, it, r);
}

/* The chain link of backup B on TARGET, after its manifest (MLOC). */
static void link_check(struct catalog *cat, struct reader_targets *ts,
                       const struct catalog_backup *b, const struct catalog_location *mloc,
                       const char *target, struct verify_result *res)
{
    struct verify_item *it = item_append(&res->links, &res->nr_links, mloc, target);
    int r;

    if (!it || !(it->parent = vk_strdup(b->parent)))
        return;
    r = reader_link_check(cat, ts, b, target, &it->unchecked);
    item_result(res, it, r);
    res->unchecked += it->unchecked;
}

/* Every copy on one target: the manifest, its chain link, then each disk's
 * archive. */
static void target_verify(struct catalog *cat, struct reader_targets *ts,
                          const struct catalog_backup *b, const struct catalog_locations *locs,
                          const char *id, const char *target, const char *from, unsigned int flags,
                          struct verify_result *res)
{
    struct catalog_location none = {.backup_id = (char *)id};
    const struct catalog_location *mloc = &none;
    struct manifest_copy mc = {0};

    for (size_t i = 0; i < locs->count && mloc == &none; i++)
        if (!locs->items[i].disk && location_on(locs, i, target, from))
            mloc = &locs->items[i];
    manifest_check(ts, mloc, target, &mc, res);
    if (b && b->parent && mloc != &none)
        link_check(cat, ts, b, mloc, target, res);
    for (size_t j = 0; j < locs->count; j++) {
        const struct catalog_location *loc = &locs->items[j];
        struct verify_item *it;
        if (!loc->disk || !location_on(locs, j, target, from) || !(it = item_add(res, loc, target)))
            continue;
        item_result(res, it, item_check(ts, loc, target, mc.loaded ? &mc.m : NULL, flags, it));
    }
    manifest_clear(&mc.m);
}

static int backup_verify(struct catalog *cat, struct reader_targets *ts, const char *from,
                         const char *id, unsigned int flags, struct verify_result *res)
{
    struct catalog_locations *locs = NULL;
    struct catalog_backup *b = catalog_backup_get(cat, id);

    if (!b || catalog_archive_list(cat, id, NULL, &locs) < 0) {
        catalog_backup_free(b);
        return -1;
    }
    if (locs->count == 0) {
        struct catalog_location none = {.backup_id = (char *)id, .key = (char *)""};
        struct verify_item *it = item_add(res, &none, from ? from : "");
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' has no archive recorded on any target", id);
        if (it)
            item_result(res, it, -1);
    }
    for (size_t i = 0; i < locs->count; i++) {
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = !from && strcmp(locs->items[j].target, locs->items[i].target) != 0;
        if (first)
            target_verify(cat, ts, b, locs, id, from ? from : locs->items[i].target, from, flags,
                          res);
    }
    catalog_locations_free(locs);
    catalog_backup_free(b);
    return 0;
}

static int backups_find(struct catalog *cat, const char *what, struct catalog_backups **out)
{
    struct catalog_backup *b = catalog_backup_get(cat, what);

    if (b) {
        *out = vk_calloc(1, sizeof **out);
        if (!*out) {
            catalog_backup_free(b);
            return -1;
        }
        (*out)->items = b;
        (*out)->count = 1;
        return 0;
    }
    if (vk_error_code() != VK_ERR_NOT_FOUND ||
        catalog_backup_list(cat, what, CATALOG_LIST_COMMITTED, out) < 0)
        return -1;
    if ((*out)->count == 0) {
        catalog_backups_free(*out);
        *out = NULL;
        vk_error(VK_ERR_NOT_FOUND, "'%s' is neither a backup nor a domain with committed backups",
                 what);
        return -1;
    }
    return 0;
}

int verify_run(struct catalog *cat, const struct verify_options *opts, unsigned int flags,
               struct verify_result *result)
{
    struct catalog_backups *backups = NULL;
    struct reader_targets *ts = NULL;
    int r = -1;

    memset(result, 0, sizeof *result);
    if (flags & ~VERIFY_QUICK) {
        vk_error(VK_ERR_INVALID, "verify_run: unknown flags 0x%x", flags);
        return -1;
    }
    if (backups_find(cat, opts->what, &backups) < 0 ||
        !(ts = reader_targets_new(opts->config, opts->from)))
        goto out;
    r = 0;
    for (size_t i = 0; i < backups->count && r == 0; i++)
        r = backup_verify(cat, ts, opts->from, backups->items[i].id, flags, result);
out:
    reader_targets_free(ts);
    catalog_backups_free(backups);
    return r;
}
