/* virtkeep - one backup of one domain: the run and its cleanup.
 *
 * Order: target, libvirt domain, lock, catalog (orphans failed and killed
 * backups of the domain recovered: backup_recover), disks,
 * level, catalog row 'running', checkpoint (+ pull job, or offline bitmaps),
 * one archive per disk, end of the job, manifest (last), row 'committed'.
 * Any failure or interruption goes through bk_fail(), which undoes what was
 * done in reverse: freeze, job, new checkpoint, run directory, row.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/backup/backup-int.h"
#include "src/format/format.h"

struct bk {
    const struct backup_options *o;
    struct backup_result *res;
    struct transport *t;
    struct virt_conn *conn;
    struct virt_domain *dom;
    struct backup_lock *lock;
    struct catalog *cat;
    struct catalog_backups *all;
    struct virt_disk_list disks;
    char **selected;
    char *domain_xml;
    bool offline;
    struct catalog_next next;
    char *cp_xml;
    bool cp_made; /* the new checkpoint exists: remove it on failure */
    char *rundir;
    bool job;       /* a pull-mode job runs */
    bool frozen;    /* guest file systems frozen */
    bool row;       /* the catalog row exists */
    bool conn_lost; /* the libvirt connection broke: cleanup used a new one */
    uint64_t t0;
    uint64_t bytes_written;
    size_t disk_index;
    bool sealed; /* the backup is sealed with key */
    struct format_key key;
};

static bool cancelled(const struct bk *b)
{
    if (b->o->cancel && *b->o->cancel) {
        vk_error(VK_ERR_INTERRUPTED, "the backup of domain '%s' was interrupted", b->o->domain);
        return true;
    }
    return false;
}

/* --target, else the first target of the domain's policy. */
static const char *target_pick(const struct backup_options *o)
{
    const struct config_domain *cd = o->config ? config_domain_find(o->config, o->domain) : NULL;
    const struct config_policy *p =
        cd && cd->policy ? config_policy_find(o->config, cd->policy) : NULL;

    if (o->target)
        return o->target;
    if (p && p->targets && p->targets[0])
        return p->targets[0];
    vk_error(VK_ERR_INVALID,
             "no target for the backup of domain '%s': pass --target NAME|URL, or give the "
             "domain a policy with targets in the configuration",
             o->domain);
    return NULL;
}

static int target_open(struct bk *b)
{
    const struct backup_options *o = b->o;
    const char *name = target_pick(o);
    const struct config_target *ct;
    struct transport_options topts;

    if (!name)
        return -1;
    memset(&topts, 0, sizeof topts);
    topts.lock_seconds = config_lock_seconds(o->config, o->domain);
    if (transport_is_url(name)) {
        b->t = transport_open(NULL, name, &topts);
    } else {
        ct = o->config ? config_target_find(o->config, name) : NULL;
        if (!ct) {
            vk_error(VK_ERR_NOT_FOUND,
                     "unknown target '%s': it is neither a URL nor a target of the "
                     "configuration",
                     name);
            return -1;
        }
        config_target_options(ct, &topts);
        topts.lock_seconds = config_lock_seconds(o->config, o->domain);
        b->t = transport_open(name, ct->url, &topts);
    }
    if (b->t && topts.lock_seconds)
        vk_debug("objects of the backup of domain '%s' locked for %" PRIu64 " s on target '%s'",
                 o->domain, topts.lock_seconds, name);
    b->res->target = vk_strdup(name);
    return b->t && b->res->target ? 0 : -1;
}

static int domain_open(struct bk *b)
{
    enum virt_domain_state st;

    b->conn = virt_conn_open(b->o->connect_uri, 0);
    if (!b->conn || !(b->dom = virt_domain_lookup(b->conn, b->o->domain)))
        return -1;
    if (virt_domain_get_state(b->dom, &st) < 0)
        return -1;
    if (st == VIRT_DOMAIN_OTHER) {
        vk_error(VK_ERR_INVALID, "cannot back up domain '%s': it is neither running nor shut off",
                 b->dom->name);
        return -1;
    }
    b->offline = st == VIRT_DOMAIN_SHUTOFF;
    return 0;
}

static int lock_take(struct bk *b)
{
    CLEANUP_FREE char *dflt = b->o->lock_dir ? NULL : backup_lock_dir_default();
    const char *dir = b->o->lock_dir ? b->o->lock_dir : dflt;

    if (!dir)
        return -1;
    b->lock = backup_lock_acquire(dir, b->dom->name, 0);
    return b->lock ? 0 : -1;
}

static void notice_emit(const struct bk *b, const char *line)
{
    if (b->o->notice)
        b->o->notice(b->o->opaque, line);
}

static int disks_select(struct bk *b)
{
    const struct config_domain *cd =
        b->o->config ? config_domain_find(b->o->config, b->dom->name) : NULL;
    char *const *inc = b->o->disks ? b->o->disks : (cd && !b->o->exclude ? cd->disks : NULL);
    char *const *exc = b->o->exclude ? b->o->exclude : (cd && !b->o->disks ? cd->exclude : NULL);

    b->domain_xml = virt_domain_get_xml(b->dom, 0);
    if (!b->domain_xml || virt_disks_parse(b->domain_xml, &b->disks) < 0)
        return -1;
    b->selected = virt_disks_select(&b->disks, b->dom->name, inc, exc);
    if (!b->selected)
        return -1;
    for (size_t i = 0; i < b->disks.nr; i++) {
        const struct virt_disk *d = &b->disks.disks[i];
        char line[512];
        if (!d->skip)
            continue;
        snprintf(line, sizeof line, "%s: skipping disk '%s': it %s", b->dom->name, d->target,
                 d->skip_reason ? d->skip_reason : "cannot be backed up");
        notice_emit(b, line);
    }
    if (!b->selected[0]) {
        vk_error(VK_ERR_INVALID, "domain '%s' has no disk to back up", b->dom->name);
        return -1;
    }
    return 0;
}

static int level_choose(struct bk *b)
{
    struct backup_level_ctx x = {
        .domain = b->dom->name,
        .dom = b->dom,
        .disks = &b->disks,
        .selected = b->selected,
        .all = b->all,
        .requested = b->o->level,
        .notice = b->o->notice,
        .opaque = b->o->opaque,
    };

    if (catalog_backup_list(b->cat, b->dom->name, CATALOG_LIST_WITH_XML, &b->all) < 0)
        return -1;
    x.all = b->all;
    if (backup_level_choose(&x, &b->next) < 0)
        return -1;
    if (b->next.level != CATALOG_LEVEL_INC && b->next.level != CATALOG_LEVEL_DIFF)
        return 0;
    for (size_t i = 0; b->selected[i]; i++) {
        const struct virt_disk *d = virt_disks_find(&b->disks, b->selected[i]);
        if (d && d->full_only) {
            CLEANUP_FREE char *line =
                vk_asprintf("%s: disk '%s' is %s, not qcow2: it has no dirty bitmap and is "
                            "backed up in full inside the %s",
                            b->dom->name, d->target, d->format ? d->format : "not qcow2",
                            catalog_level_name(b->next.level));
            if (line)
                notice_emit(b, line);
        }
    }
    return 0;
}

/* A fresh id; two backups within one second wait for the next one. */
static int id_make(struct bk *b)
{
    for (int i = 0; i < 3; i++) {
        struct catalog_backup *old;
        b->res->started = (int64_t)time(NULL);
        free(b->res->id);
        b->res->id = catalog_backup_id_make(b->dom->name, b->res->started);
        if (!b->res->id)
            return -1;
        old = catalog_backup_get(b->cat, b->res->id);
        if (!old) {
            if (vk_error_code() != VK_ERR_NOT_FOUND)
                return -1;
            vk_error_clear();
            return 0;
        }
        catalog_backup_free(old);
        usleep(1000000 - (unsigned int)(vk_now_ns() / 1000 % 1000000) + 1000);
    }
    vk_error(VK_ERR_BUSY, "cannot make a new backup id for domain '%s'", b->dom->name);
    return -1;
}

static int row_insert(struct bk *b)
{
    struct backup_result *r = b->res;
    struct catalog_backup row = {
        .id = r->id,
        .domain = r->domain,
        .level = b->next.level,
        .status = CATALOG_STATUS_RUNNING,
        .checkpoint = r->checkpoint,
        .parent = r->parent,
        .started = r->started,
        .domain_xml = b->domain_xml,
    };

    if (catalog_domain_set(b->cat, b->dom->name, b->dom->uuid) < 0 ||
        catalog_backup_insert(b->cat, &row) < 0)
        return -1;
    b->row = true;
    return 0;
}

static int result_init(struct bk *b)
{
    struct backup_result *r = b->res;

    r->domain = vk_strdup(b->dom->name);
    r->level = b->next.level;
    r->requested_level = b->o->level;
    if (b->next.parent)
        r->parent = vk_strdup(b->next.parent);
    if (b->next.reason)
        r->reason = vk_strdup(b->next.reason);
    if (b->next.level != CATALOG_LEVEL_COPY && !(r->checkpoint = virt_checkpoint_name_new()))
        return -1;
    return r->domain && id_make(b) == 0 ? 0 : -1;
}

/* ---- checkpoint and job ---------------------------------------------- */

static const char *incremental_of(const struct bk *b)
{
    bool inc = b->next.level == CATALOG_LEVEL_INC || b->next.level == CATALOG_LEVEL_DIFF;
    return inc ? b->next.parent_checkpoint : NULL;
}

/* --quiesce, or [domain] quiesce = required|try: freeze the guest file
 * systems through the guest agent.  "try" goes on without an agent. */
static int quiesce(struct bk *b)
{
    const struct config_domain *cd =
        b->o->config ? config_domain_find(b->o->config, b->dom->name) : NULL;
    const char *mode = b->o->quiesce ? "required" : cd && cd->quiesce ? cd->quiesce : "no";
    char line[1024];

    if (strcmp(mode, "no") == 0)
        return 0;
    if (virt_fs_freeze(b->dom) == 0) {
        b->frozen = true;
        return 0;
    }
    if (strcmp(mode, "try") != 0) {
        vk_error_prefix("cannot quiesce domain '%s' (%s)", b->dom->name,
                        b->o->quiesce ? "--quiesce" : "quiesce = required");
        return -1;
    }
    snprintf(line, sizeof line, "%s: going on without quiesce (quiesce = try): %s", b->dom->name,
             vk_error_message());
    notice_emit(b, line);
    vk_error_clear();
    return 0;
}

static int job_begin(struct bk *b)
{
    CLEANUP_FREE char *sock = vk_asprintf("%s/backup.sock", b->rundir);
    CLEANUP_FREE char *bxml = NULL, *cxml = NULL;
    int r;

    if (!sock)
        return -1;
    bxml = virt_backup_xml_build(sock, b->rundir, incremental_of(b), &b->disks, b->selected, 0);
    if (b->res->checkpoint)
        cxml = virt_checkpoint_xml_build(b->res->checkpoint, NULL, 0, &b->disks, b->selected, 0);
    if (!bxml || (b->res->checkpoint && !cxml))
        return -1;
    if (quiesce(b) < 0)
        return -1;
    r = virt_backup_begin(b->dom, bxml, cxml, 0);
    if (b->frozen && virt_fs_thaw(b->dom) == 0)
        b->frozen = false;
    if (r < 0)
        return -1;
    b->job = true;
    b->cp_made = b->res->checkpoint != NULL;
    return 0;
}

/* Running domain: the checkpoint comes with the job, atomically. */
static int live_prepare(struct bk *b)
{
    if (job_begin(b) < 0) {
        struct backup_level_ctx x = {.domain = b->dom->name,
                                     .dom = b->dom,
                                     .disks = &b->disks,
                                     .selected = b->selected,
                                     .all = b->all,
                                     .requested = b->o->level,
                                     .notice = b->o->notice,
                                     .opaque = b->o->opaque};
        if (!incremental_of(b) || !virt_error_needs_full() || b->frozen)
            return -1;
        /* The bitmaps failed only when QEMU looked at them. */
        if (backup_level_fallback(&x, &b->next, NULL) < 0)
            return -1;
        free(b->res->parent), b->res->parent = NULL;
        free(b->res->reason), b->res->reason = vk_strdup(b->next.reason);
        b->res->level = CATALOG_LEVEL_FULL;
        if (job_begin(b) < 0)
            return -1;
    }
    if (b->res->checkpoint && !(b->cp_xml = virt_checkpoint_get_xml(b->dom, b->res->checkpoint)))
        return -1;
    return 0;
}

/* Shut-off domain: nothing writes to the disks, so the new checkpoint (a
 * bitmap in each image, plus a redefined checkpoint) marks this point in
 * time before any read. */
static int offline_prepare(struct bk *b)
{
    CLEANUP_FREE char *parent = NULL;

    if (!b->res->checkpoint)
        return 0;
    /* Nothing runs in a shut-off domain: its disks need no freeze. */
    parent = virt_checkpoint_current(b->dom);
    if (!parent && vk_error_code() != VK_ERR_NOT_FOUND)
        return -1;
    b->cp_xml = virt_checkpoint_create_offline(b->dom, b->res->checkpoint, parent, &b->disks,
                                               b->selected, 0);
    if (!b->cp_xml)
        return -1;
    b->cp_made = true;
    return 0;
}

static int prepare(struct bk *b)
{
    unsigned int flags = virt_conn_is_system(b->conn) ? 0 : VIRT_RUNDIR_NO_CHOWN;
    struct catalog_backup upd;

    b->rundir = virt_rundir_create(NULL, flags);
    if (!b->rundir)
        return -1;
    if ((b->offline ? offline_prepare(b) : live_prepare(b)) < 0)
        return -1;
    if (!b->cp_xml)
        return 0;
    upd = (struct catalog_backup){.id = b->res->id,
                                  .domain = b->res->domain,
                                  .level = b->res->level,
                                  .checkpoint = b->res->checkpoint,
                                  .checkpoint_xml = b->cp_xml,
                                  .domain_xml = b->domain_xml};
    return catalog_backup_update(b->cat, &upd);
}

/* ---- disks ------------------------------------------------------------ */

struct disk_progress {
    const struct bk *b;
    const char *disk;
};

static void disk_progress_cb(void *opaque, uint64_t done, uint64_t total)
{
    struct disk_progress *p = opaque;
    const struct backup_options *o = p->b->o;
    if (o->progress)
        o->progress(o->opaque, p->disk, p->b->disk_index, vk_strv_len(p->b->selected), done, total);
}

static int disk_record(struct bk *b, const struct backup_result_disk *rd, double secs)
{
    struct catalog_backup_disk bd = {b->res->id,       rd->disk,       rd->format,
                                     rd->virtual_size, rd->read_bytes, rd->stored_bytes};
    struct catalog_location loc = {.backup_id = b->res->id,
                                   .disk = rd->disk,
                                   .target = b->res->target,
                                   .key = rd->key,
                                   .size = rd->archive_size,
                                   .sha256 = (char *)rd->sha256};
    struct catalog_disk cd = {b->res->domain, rd->disk, rd->format, rd->virtual_size};

    b->bytes_written += rd->archive_size;
    b->res->bytes_read += rd->read_bytes;
    b->res->bytes_stored += rd->stored_bytes;
    if (catalog_backup_disk_add(b->cat, &bd) < 0 ||
        catalog_archive_add_location(b->cat, &loc) < 0 || catalog_disk_set(b->cat, &cd) < 0)
        return -1;
    if (secs > 0 && rd->archive_size > 0 &&
        catalog_throughput_record(b->cat, b->res->target, CATALOG_DIR_WRITE, rd->archive_size, secs,
                                  0) < 0)
        return -1;
    return 0;
}

/* Where disk D is served: the pull export, or a qemu-nbd of its own. */
static int disk_source(struct bk *b, const struct virt_disk *d, struct virt_nbd **nbd, char **sock,
                       char **ctx)
{
    const char *inc = incremental_of(b);

    if (b->offline) {
        *nbd = virt_nbd_start(d, b->rundir, d->full_only ? NULL : inc, 0);
        if (!*nbd)
            return -1;
        *sock = vk_strdup((*nbd)->socket);
        *ctx = (*nbd)->bitmap_context ? vk_strdup((*nbd)->bitmap_context) : NULL;
        return *sock ? 0 : -1;
    }
    *sock = vk_asprintf("%s/backup.sock", b->rundir);
    *ctx = inc && !d->full_only ? virt_pull_bitmap_context(d->target) : NULL;
    return *sock && (!inc || d->full_only || *ctx) ? 0 : -1;
}

static int disk_one(struct bk *b, const struct virt_disk *d, const struct pipeline_options *po)
{
    struct archive_header hdr = {.disk = d->target,
                                 .chunk_size = ARCHIVE_CHUNK_SIZE_DEFAULT,
                                 .backup_id = b->res->id,
                                 .level = (char *)catalog_level_name(b->res->level),
                                 .created = b->res->started};
    struct disk_progress dp = {b, d->target};
    struct backup_disk_job job = {.export_name = d->target,
                                  .transport = b->t,
                                  .header = &hdr,
                                  .pipeline = po,
                                  .seal_key = b->sealed ? &b->key : NULL,
                                  .progress = disk_progress_cb,
                                  .opaque = &dp};
    CLEANUP_FREE char *sock = NULL, *ctx = NULL, *tarname = NULL;
    struct backup_result_disk *rd = backup_result_disk_add(b->res);
    struct virt_nbd *nbd = NULL;
    uint64_t t0 = vk_now_ns();
    int r = -1;

    if (!rd || !(rd->disk = vk_strdup(d->target)))
        return -1;
    rd->format = vk_strdup(d->format ? d->format : "raw");
    tarname = vk_asprintf("%s.tar", d->target);
    rd->key = tarname ? format_object_key(b->res->domain, b->res->id, tarname) : NULL;
    if (!rd->format || !rd->key || disk_source(b, d, &nbd, &sock, &ctx) < 0)
        goto out;
    job.socket = sock;
    job.bitmap_context = ctx;
    job.key = rd->key;
    if (backup_disk_run(&job, rd) == 0)
        r = disk_record(b, rd, (double)(vk_now_ns() - t0) / 1e9);
out:
    if (nbd && virt_nbd_stop(nbd) < 0 && r == 0)
        r = -1;
    return r;
}

static int disks_run(struct bk *b)
{
    struct pipeline_options po = {
        .threads = b->o->threads, .level = b->o->compress_level, .cancel = b->o->cancel};

    for (b->disk_index = 0; b->selected[b->disk_index]; b->disk_index++) {
        const struct virt_disk *d = virt_disks_find(&b->disks, b->selected[b->disk_index]);
        if (cancelled(b))
            return -1;
        if (!d) {
            vk_error(VK_ERR_INTERNAL, "disk '%s' of domain '%s' vanished",
                     b->selected[b->disk_index], b->dom->name);
            return -1;
        }
        if (disk_one(b, d, &po) < 0) {
            vk_error_prefix("cannot back up disk '%s' of domain '%s'", d->target, b->dom->name);
            return -1;
        }
    }
    return 0;
}

/* ---- manifest and commit ---------------------------------------------- */

/* Record the source image's qcow2 cluster size and compat level so that a
 * restore can keep them; an image that cannot be read is only a warning. */
static void source_probe(const struct bk *b, struct manifest_disk *md)
{
    const struct virt_disk *d = virt_disks_find(&b->disks, md->target);

    if (d && d->source && d->fmt == VIRT_FORMAT_QCOW2 && manifest_disk_probe(md, d->source) < 0)
        vk_warn("%s", vk_error_message());
}

/* The sha256 of the parent's manifest as stored, for the hash chain
 * (docs/FORMAT.md): the digest the catalog recorded when the parent
 * committed (the copy on this backup's target first), else the parent's
 * manifest read back from this target. */
static int parent_manifest_digest(const struct bk *b, const char *parent,
                                  uint8_t out[ARCHIVE_SHA256_LEN])
{
    struct catalog_locations *locs = NULL;
    const char *hex = NULL;
    CLEANUP_FREE char *key = NULL;
    CLEANUP_FREE void *buf = NULL;
    size_t len;
    int r = -1;

    if (catalog_archive_list(b->cat, parent, NULL, &locs) < 0)
        return -1;
    for (size_t i = 0; i < locs->count; i++) {
        const struct catalog_location *l = &locs->items[i];
        if (l->disk || !l->sha256 || (hex && strcmp(l->target, b->res->target) != 0))
            continue;
        hex = l->sha256;
    }
    if (hex) {
        r = archive_sha256_unhex(hex, out);
        if (r < 0)
            vk_error(VK_ERR_CORRUPT,
                     "the catalog records a malformed sha256 of the manifest of backup '%s'",
                     parent);
    } else if ((key = format_object_key(b->res->domain, parent, "manifest.json")) &&
               transport_get_all(b->t, key, MANIFEST_MAX_SIZE, &buf, &len) == 0) {
        r = archive_sha256(buf, len, out);
    }
    if (r < 0)
        vk_error_prefix("cannot link backup '%s' of domain '%s' to the manifest of its parent '%s'",
                        b->res->id, b->res->domain, parent);
    catalog_locations_free(locs);
    return r;
}

static int manifest_fill(const struct bk *b, struct manifest *m)
{
    const struct backup_result *r = b->res;

    if (r->parent) {
        if (parent_manifest_digest(b, r->parent, m->parent_manifest_sha256) < 0)
            return -1;
        m->has_parent_manifest_sha256 = true;
    }

    m->backup_id = vk_strdup(r->id);
    m->domain_name = vk_strdup(r->domain);
    m->domain_uuid = vk_strdup(b->dom->uuid);
    m->level = vk_strdup(catalog_level_name(r->level));
    m->parent_id = r->parent ? vk_strdup(r->parent) : NULL;
    m->checkpoint_name = r->checkpoint ? vk_strdup(r->checkpoint) : NULL;
    m->checkpoint_xml = b->cp_xml ? vk_strdup(b->cp_xml) : NULL;
    m->domain_xml = vk_strdup(b->domain_xml);
    m->started = r->started;
    m->finished = r->finished;
    for (size_t i = 0; i < r->nr_disks; i++) {
        struct manifest_disk *md = manifest_disk_add(m);
        if (!md || !(md->target = vk_strdup(r->disks[i].disk)) ||
            !(md->archive_key = vk_strdup(r->disks[i].key)) ||
            archive_sha256_unhex(r->disks[i].sha256, md->archive_sha256) < 0)
            return -1;
        md->virtual_size = r->disks[i].virtual_size;
        md->archive_size = r->disks[i].archive_size;
        md->bytes_read = r->disks[i].read_bytes;
        md->bytes_stored = r->disks[i].stored_bytes;
        source_probe(b, md);
    }
    return m->backup_id && m->domain_name && m->level && m->domain_xml ? 0 : -1;
}

static int manifest_write(struct bk *b)
{
    struct manifest m = {0};
    CLEANUP_FREE char *json = NULL;
    uint8_t sha[ARCHIVE_SHA256_LEN];
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    struct catalog_location loc;
    size_t len;

    b->res->finished = (int64_t)time(NULL);
    if (manifest_fill(b, &m) == 0 && (!b->sealed || (m.key_id = vk_strdup(b->key.id))))
        json = b->sealed ? manifest_to_json_sealed(&m, &b->key) : manifest_to_json(&m, 0);
    manifest_clear(&m);
    b->res->manifest_key = format_object_key(b->res->domain, b->res->id, "manifest.json");
    if (!json || !b->res->manifest_key)
        return -1;
    len = strlen(json);
    if (archive_sha256(json, len, sha) < 0 ||
        transport_put(b->t, b->res->manifest_key, json, len) < 0)
        return -1;
    archive_sha256_hex(sha, hex);
    loc = (struct catalog_location){.backup_id = b->res->id,
                                    .target = b->res->target,
                                    .key = b->res->manifest_key,
                                    .size = len,
                                    .sha256 = hex};
    b->bytes_written += len;
    return catalog_archive_add_location(b->cat, &loc);
}

static int job_end(struct bk *b)
{
    if (b->job && virt_backup_abort(b->dom, 60000) < 0)
        return -1;
    b->job = false;
    if (b->rundir && virt_rundir_remove(b->rundir) < 0)
        vk_warn("%s", vk_error_message());
    free(b->rundir);
    b->rundir = NULL;
    return 0;
}

static int commit(struct bk *b)
{
    struct catalog_backup upd = {.id = b->res->id,
                                 .domain = b->res->domain,
                                 .level = b->res->level,
                                 .checkpoint = b->res->checkpoint,
                                 .bytes_read = b->res->bytes_read,
                                 .bytes_written = b->bytes_written,
                                 .bytes_stored = b->res->bytes_stored,
                                 .checkpoint_xml = b->cp_xml,
                                 .domain_xml = b->domain_xml};

    if (catalog_backup_update(b->cat, &upd) < 0 ||
        catalog_backup_set_status(b->cat, b->res->id, CATALOG_STATUS_COMMITTED, NULL) < 0)
        return -1;
    b->row = false;
    b->cp_made = false;
    b->res->wall_ns = vk_now_ns() - b->t0;
    return 0;
}

/* ---- failure ---------------------------------------------------------- */

static void checkpoint_undo(struct bk *b)
{
    const char *cp = b->res->checkpoint;

    /* Running: deleting the newest checkpoint merges its bitmap into the
     * parent's, so the next incremental still covers this period.  A
     * domain that went away meanwhile, or a shut-off one, gets its new
     * bitmaps removed from the images. */
    if (!b->offline && virt_checkpoint_delete(b->dom, cp, 0) == 0)
        return;
    if (virt_checkpoint_discard(b->dom, cp, &b->disks, b->selected, 0) < 0)
        vk_warn("cannot remove the new checkpoint '%s' of domain '%s': %s", cp, b->dom->name,
                vk_error_message());
}

/* The libvirt connection broke (libvirtd restarted or killed, the client
 * disconnected through virt-admin): every call on it fails, so the
 * cleanup opens a new one.  False when the domain cannot be reached. */
static bool conn_renew(struct bk *b)
{
    struct virt_conn *c;
    struct virt_domain *d = NULL;

    if (!b->conn || !b->dom)
        return false;
    if (virt_conn_is_alive(b->conn))
        return true;
    b->conn_lost = true;
    if (!(c = virt_conn_open(b->o->connect_uri, 0)) || !(d = virt_domain_lookup(c, b->o->domain))) {
        vk_warn("cannot clean up after the backup of domain '%s' on a new connection to libvirt: "
                "%s",
                b->o->domain, vk_error_message());
        virt_conn_close(c);
        return false;
    }
    vk_debug("reconnected to libvirt to clean up after the backup of domain '%s'", d->name);
    virt_domain_free(b->dom);
    virt_conn_close(b->conn);
    b->dom = d;
    b->conn = c;
    return true;
}

/* The archives committed so far, a manifest, temp files, unfinished
 * uploads: a failed backup leaves the target as it found it.  Done, the
 * row says so ("; recovered"), so that recovery does not look again; not
 * done (the target cannot be reached), recovery does it later. */
static void target_undo(struct bk *b, const char *msg)
{
    struct catalog_backup row = {.id = b->res->id, .domain = b->res->domain};
    CLEANUP_FREE char *note = NULL;

    if (!b->t || !row.domain)
        return;
    if (backup_clean_failed(b->cat, NULL, b->t, &row) < 0) {
        vk_warn("cannot remove what the failed backup '%s' left on target '%s' (the next backup "
                "of domain '%s' tries again): %s",
                b->res->id, transport_name(b->t), b->res->domain, vk_error_message());
        return;
    }
    if (!(note = vk_asprintf("%s; recovered", msg ? msg : "failed")) ||
        catalog_backup_set_error(b->cat, b->res->id, note) < 0)
        vk_warn("%s", vk_error_message());
}

static void bk_fail(struct bk *b)
{
    CLEANUP_FREE char *msg = vk_strdup(vk_error_message() ? vk_error_message() : "unknown error");
    enum vk_error_code code = vk_error_code() ? vk_error_code() : VK_ERR_INTERNAL;
    bool lost = code == VK_ERR_NETWORK && virt_last_failure() == VIRT_FAIL_CONN_LOST;

    if ((b->frozen || b->job || b->cp_made) && !conn_renew(b))
        b->frozen = b->job = b->cp_made = false; /* nothing to do it with */
    if (b->frozen && virt_fs_thaw(b->dom) < 0)
        vk_warn("%s", vk_error_message());
    if (b->job && virt_backup_abort(b->dom, 60000) < 0)
        vk_warn("%s", vk_error_message());
    b->job = false;
    if (b->cp_made)
        checkpoint_undo(b);
    if (b->rundir && virt_rundir_remove(b->rundir) < 0)
        vk_warn("%s", vk_error_message());
    if (b->row && catalog_backup_set_status(b->cat, b->res->id, CATALOG_STATUS_FAILED, msg) < 0)
        vk_warn("%s", vk_error_message());
    else if (b->row)
        target_undo(b, msg);
    /* Once the backup runs, "not found" or "invalid" is about a piece of
     * it, not about what the user named: the exit status says "failed". */
    if (b->row && (code == VK_ERR_NOT_FOUND || code == VK_ERR_INVALID))
        code = VK_ERR_IO;
    if (lost || b->conn_lost)
        vk_error(VK_ERR_NETWORK,
                 "the backup of domain '%s' failed: %s; check that libvirtd is running, then run "
                 "the backup again",
                 b->o->domain, msg ? msg : "the connection to libvirt was lost");
    else
        vk_error(code, "%s", msg ? msg : "the backup failed");
}

static void bk_close(struct bk *b)
{
    OPENSSL_cleanse(&b->key, sizeof b->key);
    free(b->rundir);
    free(b->cp_xml);
    catalog_next_clear(&b->next);
    free(b->domain_xml);
    vk_strv_free(b->selected);
    virt_disks_clear(&b->disks);
    catalog_backups_free(b->all);
    catalog_close(b->cat);
    backup_lock_release(b->lock);
    virt_domain_free(b->dom);
    virt_conn_close(b->conn);
    transport_close(b->t);
}

static int setup(struct bk *b)
{
    if (target_open(b) < 0 ||
        backup_key_load(b->o->config, b->res->target, b->o->domain, &b->key, &b->sealed) < 0 ||
        domain_open(b) < 0 || lock_take(b) < 0)
        return -1;
    if (b->sealed)
        vk_debug("backup of domain '%s' sealed with key '%s'", b->o->domain, b->key.id);
    b->cat = catalog_open(b->o->catalog_path, 0);
    /* Another VM of this name (on another host) has its own chain. */
    if (b->cat && catalog_domain_check_uuid(b->cat, b->dom->name, b->dom->uuid) < 0)
        return -1;
    if (b->cat && b->o->fence_epoch &&
        catalog_fence_set(b->cat, b->o->domain, b->o->fence_epoch) < 0)
        return -1;
    /* A backup of this domain killed earlier is cleaned up first (we hold
     * the lock), so that this one builds on a correct chain. */
    if (!b->cat || backup_recover(b->cat, b->dom, b->o->config, b->t, 0, NULL) < 0)
        return -1;
    if (disks_select(b) < 0 || level_choose(b) < 0 || result_init(b) < 0)
        return -1;
    return row_insert(b);
}

int backup_run(const struct backup_options *o, struct backup_result *out)
{
    struct bk b = {.o = o, .res = out, .t0 = vk_now_ns()};
    int r = -1;

    memset(out, 0, sizeof *out);
    if (setup(&b) == 0 && !cancelled(&b) && prepare(&b) == 0 && !cancelled(&b) &&
        disks_run(&b) == 0 && job_end(&b) == 0 && !cancelled(&b) && manifest_write(&b) == 0 &&
        commit(&b) == 0)
        r = 0;
    if (r < 0)
        bk_fail(&b);
    bk_close(&b);
    return r;
}
