/* virtkeep - recovery of backups whose process was killed (see
 * backup_recover() in backup.h for the order of the steps). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/backup/backup-int.h"
#include "src/conf/conf.h"
#include "src/format/format.h"
#include "src/virt/virt.h"
#include "transport/transport.h"

#define RECOVERED_NOTE "; recovered"
/* How long a killed worker's virDomainBackupBegin may still run in libvirtd. */
#define RECOVER_SETTLE_MS 120000

/* A backup killed with its process (the row failed as an orphan). */
static bool is_orphan(const struct catalog_backup *b)
{
    return b->error && strncmp(b->error, CATALOG_ORPHAN_ERROR, strlen(CATALOG_ORPHAN_ERROR)) == 0;
}

/* Every failed backup whose objects were not removed yet: killed ones, and
 * failed ones whose own cleanup (bk_fail in backup.c) could not reach the
 * target or did not run (a failure before this rule existed). */
static bool needs_recovery(const struct catalog_backup *b)
{
    const char *e = b->error ? b->error : "";
    size_t m = strlen(RECOVERED_NOTE);

    if (b->status != CATALOG_STATUS_FAILED)
        return false;
    return strlen(e) < m || strcmp(e + strlen(e) - m, RECOVERED_NOTE) != 0;
}

static bool checkpoint_used(const struct catalog_backups *all, const char *cp)
{
    for (size_t i = 0; i < all->count; i++)
        if (all->items[i].status == CATALOG_STATUS_COMMITTED && all->items[i].checkpoint &&
            strcmp(all->items[i].checkpoint, cp) == 0)
            return true;
    return false;
}

static int checkpoint_remove(struct virt_domain *dom, const char *cp)
{
    CLEANUP_FREE char *xml = NULL;
    CLEANUP_STRV char **selected = NULL;
    struct virt_disk_list disks = {0};
    enum virt_domain_state st;
    int r = -1;

    if (virt_domain_get_state(dom, &st) < 0)
        return -1;
    if (st != VIRT_DOMAIN_SHUTOFF && virt_checkpoint_delete(dom, cp, 0) == 0)
        return 0;
    if ((xml = virt_domain_get_xml(dom, 0)) && virt_disks_parse(xml, &disks) == 0 &&
        (selected = virt_disks_select(&disks, dom->name, NULL, NULL)))
        r = virt_checkpoint_discard(dom, cp, &disks, selected, 0);
    virt_disks_clear(&disks);
    return r;
}

struct objs {
    char **keys;
    size_t n;
};

static int obj_collect(void *opaque, const char *key, const struct transport_stat *st)
{
    struct objs *o = opaque;
    char **v = vk_realloc_array(o->keys, o->n + 2, sizeof *v);

    (void)st;
    if (!v)
        return -1;
    o->keys = v;
    if (!(v[o->n] = vk_strdup(key)))
        return -1;
    v[++o->n] = NULL;
    return 0;
}

static int obj_delete(struct transport *t, const char *key, const char *id)
{
    if (transport_delete(t, key) < 0) {
        if (vk_error_code() != VK_ERR_NOT_FOUND)
            return -1;
        vk_error_clear();
        return 0;
    }
    vk_info("removed partial object '%s' of backup '%s' from target '%s'", key, id,
            transport_name(t));
    return 0;
}

/* Delete DOMAIN/ID/ on T: the committed pieces (the manifest first, so that
 * an interrupted cleanup never leaves a manifest whose archives are gone),
 * then the temp files and unfinished uploads of puts in flight. */
static int target_clean(struct transport *t, const char *domain, const char *id)
{
    CLEANUP_FREE char *d = format_name_encode(domain);
    CLEANUP_FREE char *b = d ? format_name_encode(id) : NULL;
    CLEANUP_FREE char *dir = b ? vk_asprintf("%s/%s", d, b) : NULL;
    CLEANUP_FREE char *prefix = dir ? vk_asprintf("%s/", dir) : NULL;
    CLEANUP_FREE char *manifest = dir ? vk_asprintf("%s/manifest.json", dir) : NULL;
    struct objs o = {0};
    unsigned int temps = 0;
    int r = -1;

    if (!dir || !prefix || !manifest || transport_list(t, prefix, obj_collect, &o) < 0)
        goto out;
    for (size_t i = 0; i < o.n; i++)
        if (strcmp(o.keys[i], manifest) == 0 && obj_delete(t, o.keys[i], id) < 0)
            goto out;
    for (size_t i = 0; i < o.n; i++)
        if (strcmp(o.keys[i], manifest) != 0 && obj_delete(t, o.keys[i], id) < 0)
            goto out;
    if (transport_purge_temps(t, dir, &temps) < 0)
        goto out;
    if (temps)
        vk_info("removed %u temp file(s) of backup '%s' from target '%s'", temps, id,
                transport_name(t));
    r = 0;
out:
    vk_strv_free(o.keys);
    return r;
}

static struct transport *target_open_name(const struct config *cfg, const char *name)
{
    const struct config_target *ct = cfg ? config_target_find(cfg, name) : NULL;
    struct transport_options topts;

    if (!ct) {
        vk_error(VK_ERR_NOT_FOUND, "target '%s' is not in the configuration", name);
        return NULL;
    }
    memset(&topts, 0, sizeof topts);
    config_target_options(ct, &topts);
    return transport_open(name, ct->url, &topts);
}

/* Clean backup B on target NAME unless it is T (done already). */
static int clean_named(const struct config *cfg, struct transport *t, const char *name,
                       const struct catalog_backup *b)
{
    struct transport *o;
    int r;

    if (t && strcmp(transport_name(t), name) == 0)
        return 0;
    if (!(o = target_open_name(cfg, name))) {
        vk_warn("cannot clean up backup '%s' on target '%s': %s", b->id, name, vk_error_message());
        return 0;
    }
    r = target_clean(o, b->domain, b->id);
    transport_close(o);
    return r;
}

static int targets_clean(struct catalog *cat, const struct config *cfg, struct transport *t,
                         const struct catalog_backup *b)
{
    const struct config_domain *cd = cfg ? config_domain_find(cfg, b->domain) : NULL;
    const struct config_policy *p = cd && cd->policy ? config_policy_find(cfg, cd->policy) : NULL;
    struct catalog_locations *locs = NULL;
    int r = -1;

    if ((t && target_clean(t, b->domain, b->id) < 0) ||
        catalog_archive_list(cat, b->id, NULL, &locs) < 0)
        goto out;
    for (size_t i = 0; i < locs->count; i++)
        if (clean_named(cfg, t, locs->items[i].target, b) < 0 ||
            catalog_archive_remove_location(cat, b->id, locs->items[i].target, locs->items[i].key) <
                0)
            goto out;
    for (size_t i = 0; p && p->targets && p->targets[i]; i++)
        if (clean_named(cfg, t, p->targets[i], b) < 0)
            goto out;
    r = 0;
out:
    catalog_locations_free(locs);
    return r;
}

int backup_clean_failed(struct catalog *cat, const struct config *cfg, struct transport *t,
                        const struct catalog_backup *b)
{
    return targets_clean(cat, cfg, t, b);
}

static int recover_one(struct catalog *cat, struct virt_domain *dom, const struct config *cfg,
                       struct transport *t, const struct catalog_backups *all,
                       const struct catalog_backup *b)
{
    CLEANUP_FREE char *note = NULL;

    vk_info("recovering backup '%s' of domain '%s' (%s)", b->id, b->domain,
            b->error ? b->error : "failed");
    /* A failed (not killed) backup removed its checkpoint itself. */
    if (is_orphan(b) && b->checkpoint && !checkpoint_used(all, b->checkpoint) &&
        checkpoint_remove(dom, b->checkpoint) < 0) {
        vk_error_prefix("cannot remove checkpoint '%s' of the interrupted backup '%s'",
                        b->checkpoint, b->id);
        return -1;
    }
    if (targets_clean(cat, cfg, t, b) < 0)
        return -1;
    if (!(note = vk_asprintf("%s" RECOVERED_NOTE, b->error ? b->error : "failed")))
        return -1;
    return catalog_backup_set_error(cat, b->id, note);
}

/* ---- unfinished uploads of the domain ----------------------------------- */

struct dirs {
    const char *domain_enc;
    const struct catalog_backups *all;
    char **dirs; /* "DOMAIN/ID" of each upload to abort */
};

static bool committed_enc(const struct catalog_backups *all, const char *id_enc)
{
    for (size_t i = 0; i < all->count; i++) {
        CLEANUP_FREE char *e = NULL;
        if (all->items[i].status != CATALOG_STATUS_COMMITTED)
            continue;
        e = format_name_encode(all->items[i].id);
        if (e && strcmp(e, id_enc) == 0)
            return true;
    }
    return false;
}

/* An upload under DOMAIN/ID/: its directory, unless ID is a committed
 * backup (a copy to this target may be writing it right now). */
static int dir_collect(void *opaque, const char *key, const struct transport_stat *st)
{
    struct dirs *x = opaque;
    const char *id = key + strlen(x->domain_enc) + 1;
    const char *slash = strchr(id, '/');
    CLEANUP_FREE char *id_enc = slash ? vk_strndup(id, (size_t)(slash - id)) : NULL;
    CLEANUP_FREE char *dir = NULL;

    (void)st;
    if (!slash)
        return 0; /* not a backup's object */
    if (!id_enc || !(dir = vk_strndup(key, (size_t)(slash - key))))
        return -1;
    if (committed_enc(x->all, id_enc) || vk_strv_contains(x->dirs, dir))
        return 0;
    return vk_strv_add(&x->dirs, dir);
}

/* Abort the unfinished uploads (s3://) under DOMAIN/ on T that no backup
 * row leads to: a killed put whose row is gone or was never written.  We
 * hold the domain's lock, so no backup of it writes there. */
static int uploads_purge(struct transport *t, const char *domain, const struct catalog_backups *all)
{
    CLEANUP_FREE char *d = format_name_encode(domain);
    CLEANUP_FREE char *prefix = d ? vk_asprintf("%s/", d) : NULL;
    struct dirs x = {.domain_enc = d, .all = all};
    int r = -1;

    if (!prefix || transport_list_temps(t, prefix, dir_collect, &x) < 0)
        goto out;
    for (size_t i = 0; x.dirs && x.dirs[i]; i++) {
        unsigned int n = 0;
        if (transport_purge_temps(t, x.dirs[i], &n) < 0)
            goto out;
        if (n)
            vk_info("aborted %u unfinished upload(s) under '%s/' on target '%s'", n, x.dirs[i],
                    transport_name(t));
    }
    r = 0;
out:
    vk_strv_free(x.dirs);
    return r;
}

/* On T and on the targets of the domain's policy; a policy target that
 * cannot be opened or listed is a warning. */
static int uploads_purge_all(const struct config *cfg, struct transport *t, const char *domain,
                             const struct catalog_backups *all)
{
    const struct config_domain *cd = cfg ? config_domain_find(cfg, domain) : NULL;
    const struct config_policy *p = cd && cd->policy ? config_policy_find(cfg, cd->policy) : NULL;

    if (t && uploads_purge(t, domain, all) < 0)
        return -1;
    for (size_t i = 0; p && p->targets && p->targets[i]; i++) {
        struct transport *o;
        if (t && strcmp(transport_name(t), p->targets[i]) == 0)
            continue;
        if (!(o = target_open_name(cfg, p->targets[i])) || uploads_purge(o, domain, all) < 0)
            vk_warn("cannot abort the unfinished uploads of domain '%s' on target '%s': %s", domain,
                    p->targets[i], vk_error_message());
        transport_close(o);
    }
    return 0;
}

int backup_recover(struct catalog *cat, struct virt_domain *dom, const struct config *cfg,
                   struct transport *t, unsigned int flags, unsigned int *recovered)
{
    struct catalog_backups *all = NULL;
    unsigned int n = 0;
    bool aborted = false;
    int r = -1;

    (void)flags;
    if (recovered)
        *recovered = 0;
    if (catalog_backup_fail_orphans(cat, 0, NULL) < 0 ||
        catalog_backup_list(cat, dom->name, 0, &all) < 0)
        goto out;
    for (size_t i = 0; i < all->count; i++) {
        const struct catalog_backup *b = &all->items[i];
        if (!needs_recovery(b))
            continue;
        if (!aborted) {
            int active = virt_backup_settle(dom, RECOVER_SETTLE_MS);
            if (active < 0) {
                vk_error_prefix("cannot recover the backups of domain '%s'", dom->name);
                goto out;
            }
            if (active) {
                vk_info("aborting the backup job left on domain '%s'", dom->name);
                if (virt_backup_abort(dom, 60000) < 0)
                    goto out;
            }
        }
        aborted = true;
        if (recover_one(cat, dom, cfg, t, all, b) < 0)
            goto out;
        n++;
    }
    if (recovered)
        *recovered = n;
    if (uploads_purge_all(cfg, t, dom->name, all) < 0)
        goto out;
    /* Last, once this domain's job is aborted.  Other domains' orphaned
     * jobs keep the files they have open; their own recovery ends them. */
    r = backup_recover_rundirs(NULL);
out:
    catalog_backups_free(all);
    return r;
}

int backup_recover_rundirs(unsigned int *removed)
{
    if (virt_rundir_clean_stale(NULL, removed) < 0) {
        vk_warn("cannot remove the run directories of killed processes: %s", vk_error_message());
        if (removed)
            *removed = 0;
    }
    return 0;
}
