/* virtkeep - copy_run: replicate backups from one target to another.  See
 * src/copy.h for what it promises.  Targets are opened through the restore
 * module's target cache (by configured name, else as a URL), and arrived
 * archives are re-opened with its archive reader over the transport.
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
#include "src/conf/conf.h"
#include "src/lifecycle/lifecycle.h"
#include "src/format/format.h"
#include "src/reader/reader.h"
#include "transport/transport.h"

/* One run. */
struct cp {
    struct catalog *cat;
    const struct copy_options *o;
    struct reader_targets *ts;
    struct transport *dst;
    struct copy_result *res;
    uint8_t *buf; /* COPY_BLOCK bytes */
};

/* One object to copy and what the catalog says about it. */
struct obj {
    const char *backup_id;
    const char *disk; /* NULL for the manifest */
    const char *key;
    uint64_t size;
    const char *sha256; /* expected, lower-case hex */
};

/* How one transfer went. */
struct xfer {
    double read_seconds, write_seconds;
    bool source_fault; /* the failure was the source's: another copy may do */
};

static const char *obj_what(const struct obj *ob)
{
    return ob->disk ? ob->disk : "manifest";
}

static void obj_error_prefix(const struct obj *ob, const char *source, const char *dest)
{
    if (ob->disk)
        vk_error_prefix("cannot copy archive '%s' of backup '%s' (disk '%s') from target '%s' to "
                        "target '%s'",
                        ob->key, ob->backup_id, ob->disk, source, dest);
    else
        vk_error_prefix("cannot copy the manifest '%s' of backup '%s' from target '%s' to target "
                        "'%s'",
                        ob->key, ob->backup_id, source, dest);
}

void copy_result_clear(struct copy_result *r)
{
    for (size_t i = 0; i < r->nr; i++) {
        free(r->items[i].backup_id);
        free(r->items[i].disk);
        free(r->items[i].source);
        free(r->items[i].key);
        free(r->items[i].sha256);
    }
    free(r->items);
    free(r->target);
    memset(r, 0, sizeof *r);
}

static int item_add(struct cp *c, const struct obj *ob, const char *source, double seconds)
{
    struct copy_item *items = vk_realloc_array(c->res->items, c->res->nr + 1, sizeof *items);
    struct copy_item *it;

    if (!items)
        return -1;
    c->res->items = items;
    it = &items[c->res->nr++];
    memset(it, 0, sizeof *it);
    it->backup_id = vk_strdup(ob->backup_id);
    it->disk = ob->disk ? vk_strdup(ob->disk) : NULL;
    it->source = source ? vk_strdup(source) : NULL;
    it->key = vk_strdup(ob->key);
    it->sha256 = vk_strdup(ob->sha256);
    it->size = ob->size;
    it->copied = source != NULL;
    it->seconds = seconds;
    if (it->copied) {
        c->res->objects_copied++;
        c->res->bytes_copied += ob->size;
    }
    return it->backup_id && it->key && it->sha256 ? 0 : -1;
}

/* ---------------------------------------------------------------- hashing */

struct hasher {
    EVP_MD_CTX *md;
};

static int hasher_init(struct hasher *h)
{
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        vk_error(VK_ERR_INTERNAL, "cannot initialize sha256");
        return -1;
    }
    return 0;
}

static int hasher_final(struct hasher *h, char hex[ARCHIVE_SHA256_HEX_LEN + 1])
{
    uint8_t sha[ARCHIVE_SHA256_LEN];

    if (EVP_DigestFinal_ex(h->md, sha, NULL) != 1) {
        vk_error(VK_ERR_INTERNAL, "cannot compute sha256");
        return -1;
    }
    archive_sha256_hex(sha, hex);
    return 0;
}

/* Stop when the caller's cancel flag is set (SIGINT, SIGTERM). */
static int cancel_check(const struct cp *c)
{
    if (!c->o->cancel || !*c->o->cancel)
        return 0;
    vk_error(VK_ERR_INTERRUPTED, "the copy to target '%s' was interrupted", c->o->to);
    return -1;
}

/* Read SIZE bytes of KEY on T, block by block, into the hash and (when W is
 * not NULL) the writer.  Read and write times go into X. */
static int stream(struct cp *c, struct transport *t, const char *key, uint64_t size,
                  struct hasher *h, struct transport_writer *w, struct xfer *x)
{
    for (uint64_t off = 0; off < size;) {
        size_t want = size - off < COPY_BLOCK ? (size_t)(size - off) : COPY_BLOCK;
        uint64_t t0 = vk_now_ns();
        ssize_t n = transport_get_range(t, key, off, c->buf, want);
        uint64_t t1 = vk_now_ns();
        x->read_seconds += (double)(t1 - t0) / 1e9;
        if (n <= 0) {
            if (n == 0)
                vk_error(VK_ERR_CORRUPT,
                         "object '%s' on target '%s' ends at offset %" PRIu64 ", before %" PRIu64,
                         key, transport_name(t), off, size);
            x->source_fault = true;
            return -1;
        }
        if (EVP_DigestUpdate(h->md, c->buf, (size_t)n) != 1) {
            vk_error(VK_ERR_INTERNAL, "cannot compute sha256");
            return -1;
        }
        if (w && transport_writer_write(w, c->buf, (size_t)n) < 0)
            return -1;
        x->write_seconds += (double)(vk_now_ns() - t1) / 1e9;
        off += (uint64_t)n;
        if (off < size && cancel_check(c) < 0)
            return -1; /* the caller aborts the writer: nothing under the key */
    }
    return 0;
}

/* The sha256 of KEY on T, which is SIZE bytes long. */
static int object_hash(struct cp *c, struct transport *t, const char *key, uint64_t size,
                       char hex[ARCHIVE_SHA256_HEX_LEN + 1])
{
    struct hasher h;
    struct xfer x = {0};
    int r = -1;

    if (hasher_init(&h) == 0 && stream(c, t, key, size, &h, NULL, &x) == 0)
        r = hasher_final(&h, hex);
    EVP_MD_CTX_free(h.md);
    return r;
}

/* ---------------------------------------------------------------- one object */

static bool same_disk(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Is OB already on the destination?  1 yes, 0 no, -1 error. */
static int already_there(struct cp *c, const struct obj *ob, const struct catalog_locations *locs)
{
    const struct catalog_location *rec = NULL;
    struct transport_stat st;
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];

    for (size_t i = 0; i < locs->count && !rec; i++)
        if (same_disk(locs->items[i].disk, ob->disk) &&
            strcmp(locs->items[i].target, c->o->to) == 0)
            rec = &locs->items[i];
    if (transport_stat(c->dst, ob->key, &st) < 0) {
        if (vk_error_code() != VK_ERR_NOT_FOUND)
            return -1;
        vk_error_clear();
        return 0;
    }
    if (st.size != ob->size)
        return 0;
    if (rec && rec->sha256 && strcmp(rec->key, ob->key) == 0 &&
        strcmp(rec->sha256, ob->sha256) == 0)
        return 1;
    /* There, but not recorded: hash it; equal bytes need no copy. */
    if (object_hash(c, c->dst, ob->key, ob->size, hex) < 0)
        return -1;
    if (strcmp(hex, ob->sha256) != 0)
        return 0;
    struct catalog_location loc = {.backup_id = (char *)ob->backup_id,
                                   .disk = (char *)ob->disk,
                                   .target = (char *)c->o->to,
                                   .key = (char *)ob->key,
                                   .size = ob->size,
                                   .sha256 = (char *)ob->sha256};
    return catalog_archive_add_location(c->cat, &loc) < 0 ? -1 : 1;
}

/* Check the committed copy on the destination: an archive opens (trailer,
 * index, header), a manifest reads back with its digest. */
static int arrived_check(struct cp *c, const struct obj *ob)
{
    struct catalog_location loc = {.backup_id = (char *)ob->backup_id,
                                   .disk = (char *)ob->disk,
                                   .key = (char *)ob->key,
                                   .size = ob->size};
    CLEANUP_FREE void *buf = NULL;
    uint8_t sha[ARCHIVE_SHA256_LEN];
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    struct reader_archive *a;
    size_t len;

    if (ob->disk) {
        a = reader_archive_open_at(c->ts, &loc, c->o->to);
        reader_archive_free(a);
        return a ? 0 : -1;
    }
    if (transport_get_all(c->dst, ob->key, MANIFEST_MAX_SIZE, &buf, &len) < 0 ||
        archive_sha256(buf, len, sha) < 0)
        return -1;
    archive_sha256_hex(sha, hex);
    if (len != ob->size || strcmp(hex, ob->sha256) != 0) {
        vk_error(VK_ERR_CORRUPT, "the copy reads back as %zu bytes with sha256 %s, not %" PRIu64,
                 len, hex, ob->size);
        return -1;
    }
    return 0;
}

/* Copy OB from SRC: stream, compare the digest, commit, check. */
static int transfer(struct cp *c, struct transport *src, const struct obj *ob, struct xfer *x)
{
    struct transport_writer *w = NULL;
    struct transport_stat st;
    struct hasher h = {0};
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    uint64_t t0;
    int r = -1;

    x->source_fault = true;
    if (transport_stat(src, ob->key, &st) < 0)
        goto out;
    if (st.size != ob->size) {
        vk_error(VK_ERR_CORRUPT,
                 "the source object is %" PRIu64 " bytes, the catalog records %" PRIu64, st.size,
                 ob->size);
        goto out;
    }
    x->source_fault = false;
    if (hasher_init(&h) < 0 || !(w = transport_put_begin(c->dst, ob->key, 0)) ||
        stream(c, src, ob->key, ob->size, &h, w, x) < 0 || hasher_final(&h, hex) < 0)
        goto out;
    if (strcmp(hex, ob->sha256) != 0) {
        vk_error(VK_ERR_CORRUPT, "the bytes read have sha256 %s, the catalog records %s", hex,
                 ob->sha256);
        x->source_fault = true;
        goto out;
    }
    t0 = vk_now_ns();
    r = transport_writer_commit(w);
    w = NULL;
    x->write_seconds += (double)(vk_now_ns() - t0) / 1e9;
    if (r == 0 && (r = arrived_check(c, ob)) < 0) {
        CLEANUP_FREE char *why = vk_strdup(vk_error_message());
        enum vk_error_code code = vk_error_code();
        if (transport_delete(c->dst, ob->key) < 0)
            vk_warn("cannot delete the bad copy '%s': %s", ob->key, vk_error_message());
        vk_error(code, "the copy failed its check on arrival and was deleted: %s",
                 why ? why : "unknown error");
    }
out:
    transport_writer_abort(w);
    EVP_MD_CTX_free(h.md);
    return r;
}

static void throughput_record(struct cp *c, const char *source, const struct obj *ob,
                              const struct xfer *x)
{
    /* Manifests are too small to say anything about a link's rate. */
    if (!ob->disk || ob->size == 0)
        return;
    if ((x->read_seconds > 0 && catalog_throughput_record(c->cat, source, CATALOG_DIR_READ,
                                                          ob->size, x->read_seconds, 0) < 0) ||
        (x->write_seconds > 0 && catalog_throughput_record(c->cat, c->o->to, CATALOG_DIR_WRITE,
                                                           ob->size, x->write_seconds, 0) < 0))
        vk_warn("cannot record the throughput of a copy: %s", vk_error_message());
}

/* Copy OB from the target named SOURCE and record it. */
static int copy_from(struct cp *c, const char *source, const struct obj *ob, bool *source_fault)
{
    struct transport *src = reader_targets_get(c->ts, source);
    struct xfer x = {0};
    struct catalog_location loc = {.backup_id = (char *)ob->backup_id,
                                   .disk = (char *)ob->disk,
                                   .target = (char *)c->o->to,
                                   .key = (char *)ob->key,
                                   .size = ob->size,
                                   .sha256 = (char *)ob->sha256};

    *source_fault = true;
    if (!src || transfer(c, src, ob, &x) < 0) {
        *source_fault = !src || x.source_fault;
        obj_error_prefix(ob, source, c->o->to);
        return -1;
    }
    *source_fault = false;
    if (catalog_archive_add_location(c->cat, &loc) < 0)
        return -1;
    throughput_record(c, source, ob, &x);
    vk_debug("copied %s of backup '%s' from '%s' to '%s' in %.2f s", obj_what(ob), ob->backup_id,
             source, c->o->to, x.read_seconds + x.write_seconds);
    return item_add(c, ob, source, x.read_seconds + x.write_seconds);
}

/* ---------------------------------------------------------------- sources */

struct cand {
    const struct catalog_location *loc;
    double rate;
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;

    if (x->rate != y->rate)
        return x->rate < y->rate ? 1 : -1;
    return strcmp(x->loc->target, y->loc->target);
}

/* The recorded copies of OB not on the destination, the fastest first. */
static struct cand *sources_list(struct cp *c, const struct obj *ob,
                                 const struct catalog_locations *locs, size_t *n)
{
    struct cand *cs = vk_calloc(locs->count + 1, sizeof *cs);

    *n = 0;
    if (!cs)
        return NULL;
    for (size_t i = 0; i < locs->count; i++) {
        const struct catalog_location *l = &locs->items[i];
        struct catalog_rate r = {0};
        if (!same_disk(l->disk, ob->disk) || strcmp(l->target, c->o->to) == 0)
            continue;
        if (catalog_throughput_estimate(c->cat, l->target, CATALOG_DIR_READ, &r) < 0)
            r.bytes_per_second = 0;
        cs[(*n)++] = (struct cand){.loc = l, .rate = r.bytes_per_second};
    }
    qsort(cs, *n, sizeof *cs, cand_cmp);
    return cs;
}

/* Copy OB from --from, or from the fastest copy that works. */
static int object_copy(struct cp *c, const struct obj *ob, const struct catalog_locations *locs)
{
    CLEANUP_FREE struct cand *cs = NULL;
    bool source_fault;
    size_t n;
    int r = cancel_check(c) < 0 ? -1 : already_there(c, ob, locs);

    if (r != 0)
        return r < 0 ? -1 : item_add(c, ob, NULL, 0);
    if (c->o->from)
        return copy_from(c, c->o->from, ob, &source_fault);
    if (!(cs = sources_list(c, ob, locs, &n)))
        return -1;
    if (n == 0) {
        vk_error(VK_ERR_NOT_FOUND,
                 "backup '%s' has no recorded copy of %s '%s' to copy to target '%s'",
                 ob->backup_id, ob->disk ? "archive" : "manifest", ob->key, c->o->to);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (copy_from(c, cs[i].loc->target, ob, &source_fault) == 0)
            return 0;
        if (!source_fault || i + 1 == n || vk_error_code() == VK_ERR_INTERRUPTED)
            return -1;
        vk_warn("%s; trying the copy on target '%s'", vk_error_message(), cs[i + 1].loc->target);
    }
    return -1;
}

/* ---------------------------------------------------------------- backups */

/* What the catalog says about object DISK (NULL: the manifest) of B. */
static int obj_find(const struct catalog_locations *locs, const char *id, const char *disk,
                    struct obj *ob)
{
    memset(ob, 0, sizeof *ob);
    ob->backup_id = id;
    ob->disk = disk;
    for (size_t i = 0; i < locs->count; i++) {
        const struct catalog_location *l = &locs->items[i];
        if (!same_disk(l->disk, disk) || !l->sha256)
            continue;
        ob->key = l->key, ob->size = l->size, ob->sha256 = l->sha256;
        return 0;
    }
    if (disk)
        vk_error(VK_ERR_NOT_FOUND,
                 "backup '%s' has no recorded archive of disk '%s' with a sha256: it cannot be "
                 "copied",
                 id, disk);
    else
        vk_error(VK_ERR_NOT_FOUND,
                 "backup '%s' has no recorded manifest with a sha256: it is incomplete and cannot "
                 "be copied",
                 id);
    return -1;
}

static int backup_copy(struct cp *c, const struct catalog_backup *b)
{
    struct catalog_locations *locs = NULL;
    struct catalog_backup_disks *disks = NULL;
    size_t before = c->res->objects_copied;
    struct obj ob;
    int r = -1;

    if (b->status != CATALOG_STATUS_COMMITTED) {
        vk_error(VK_ERR_INVALID, "backup '%s' is %s: only committed backups can be copied", b->id,
                 catalog_status_name(b->status));
        return -1;
    }
    if (catalog_archive_list(c->cat, b->id, NULL, &locs) < 0 ||
        catalog_backup_disk_list(c->cat, b->id, &disks) < 0)
        goto out;
    /* Every archive first, the manifest last. */
    for (size_t i = 0; i < disks->count; i++)
        if (obj_find(locs, b->id, disks->items[i].target, &ob) < 0 || object_copy(c, &ob, locs) < 0)
            goto out;
    if (obj_find(locs, b->id, NULL, &ob) < 0 || object_copy(c, &ob, locs) < 0)
        goto out;
    if (c->res->objects_copied > before)
        c->res->backups_copied++;
    else
        c->res->backups_skipped++;
    r = 0;
out:
    catalog_backup_disks_free(disks);
    catalog_locations_free(locs);
    return r;
}

/* The backups WHAT names: one backup, or every committed one of a domain
 * (oldest first), in *OUT; *DOMAIN gets the domain. */
static int backups_select(struct catalog *cat, const char *what, struct catalog_backups **out,
                          char **domain)
{
    struct catalog_backup *b = catalog_backup_get(cat, what);
    struct catalog_domain *d;

    *out = NULL;
    if (b) {
        *out = vk_calloc(1, sizeof **out);
        if (!*out || !(*domain = vk_strdup(b->domain))) {
            catalog_backup_free(b);
            return -1;
        }
        (*out)->items = b, (*out)->count = 1;
        return 0;
    }
    if (vk_error_code() != VK_ERR_NOT_FOUND)
        return -1;
    if (!(d = catalog_domain_get(cat, what))) {
        if (vk_error_code() == VK_ERR_NOT_FOUND)
            vk_error(VK_ERR_NOT_FOUND, "there is no backup or domain '%s' in the catalog", what);
        return -1;
    }
    catalog_domain_free(d);
    *domain = vk_strdup(what);
    return *domain ? catalog_backup_list(cat, what, CATALOG_LIST_COMMITTED, out) : -1;
}

/* ---------------------------------------------------------------- run */

static int target_check(const struct copy_options *o)
{
    if (transport_is_url(o->to) || (o->config && config_target_find(o->config, o->to)))
        return 0;
    vk_error(VK_ERR_NOT_FOUND,
             "unknown target '%s': it is neither a URL nor a target of the configuration", o->to);
    return -1;
}

static int copy_all(struct cp *c, const struct catalog_backups *bs)
{
    uint64_t total = 0, done = 0;

    for (size_t i = 0; i < bs->count; i++)
        total += bs->items[i].bytes_stored;
    for (size_t i = 0; i < bs->count; i++) {
        if (backup_copy(c, &bs->items[i]) < 0)
            return -1;
        done += bs->items[i].bytes_stored;
        if (catalog_job_set_progress(c->cat, c->res->job_id, done, total) < 0)
            vk_warn("cannot record the progress of job %" PRId64 ": %s", c->res->job_id,
                    vk_error_message());
    }
    return 0;
}

static int64_t job_start(struct cp *c, const char *domain, const struct catalog_backups *bs)
{
    struct catalog_job job = {.kind = (char *)"copy",
                              .domain = (char *)domain,
                              .target = (char *)c->o->to,
                              .backup_id = bs->count == 1 ? bs->items[0].id : NULL,
                              .state = CATALOG_JOB_RUNNING};

    return catalog_job_insert(c->cat, &job);
}

static int job_end(struct cp *c, int r)
{
    CLEANUP_FREE char *why = r < 0 ? vk_strdup(vk_error_message()) : NULL;
    enum vk_error_code code = vk_error_code();
    enum catalog_job_state st = r == 0                       ? CATALOG_JOB_SUCCEEDED
                                : code == VK_ERR_INTERRUPTED ? CATALOG_JOB_CANCELLED
                                                             : CATALOG_JOB_FAILED;

    if (catalog_job_finish(c->cat, c->res->job_id, st, why, c->res->seconds) < 0 && r == 0)
        return -1;
    if (r < 0 && why)
        vk_error(code, "%s", why); /* the copy's error, not the catalog's */
    return r;
}

static int options_check(const struct copy_options *o, unsigned int flags)
{
    if (flags != 0 || !o->what || !o->to) {
        vk_error(VK_ERR_INVALID, "copy_run: a backup or domain and a destination are required");
        return -1;
    }
    if (o->from && strcmp(o->from, o->to) == 0) {
        vk_error(VK_ERR_INVALID, "cannot copy from target '%s' to itself", o->to);
        return -1;
    }
    return target_check(o);
}

int copy_run(struct catalog *cat, const struct copy_options *opts, unsigned int flags,
             struct copy_result *out)
{
    struct cp c = {.cat = cat, .o = opts, .res = out};
    struct catalog_backups *bs = NULL;
    CLEANUP_FREE char *domain = NULL;
    uint64_t t0 = vk_now_ns();
    int r = -1;

    memset(out, 0, sizeof *out);
    if (options_check(opts, flags) < 0 || !(out->target = vk_strdup(opts->to)) ||
        backups_select(cat, opts->what, &bs, &domain) < 0)
        goto out;
    if (!(c.ts = reader_targets_new(opts->config, NULL)) || !(c.buf = vk_malloc(COPY_BLOCK)) ||
        !(c.dst = reader_targets_get(c.ts, opts->to)) ||
        (out->job_id = job_start(&c, domain, bs)) < 0)
        goto out;
    r = copy_all(&c, bs);
    out->seconds = (double)(vk_now_ns() - t0) / 1e9;
    r = job_end(&c, r);
out:
    free(c.buf);
    reader_targets_free(c.ts);
    catalog_backups_free(bs);
    return r;
}
