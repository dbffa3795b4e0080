/* virtkeep - virtkeepd at start, and when a worker dies: jobs and backups
 * of killed processes.  The order is described in daemon.h. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "src/backup/backup.h"
#include "src/daemon/daemon.h"
#include "src/virt/virt.h"

/* A backup a killed process left: running without its process (none has
 * its pid, a zombie has it, or one that started at another time); or a
 * failed one (killed, or whose own cleanup could not reach its target) not
 * recovered yet: its objects may still be on a target. */
static bool orphaned(struct catalog *cat, const struct catalog_backup *b)
{
    const char *e = b->error;

    /* A pid means nothing on another host: its daemon, or the reaping of
     * a lost host (catalog_host_reap), fails those. */
    if (b->status == CATALOG_STATUS_RUNNING && b->host &&
        strcmp(b->host, catalog_host_name(cat)) != 0)
        return false;
    if (b->status == CATALOG_STATUS_RUNNING)
        return !vk_proc_alive(b->pid, (uint64_t)b->pid_start);
    return b->status == CATALOG_STATUS_FAILED && (!e || !strstr(e, "; recovered"));
}

static int domains_orphaned(struct catalog *cat, char ***out)
{
    struct catalog_backups *all = NULL;
    int r = -1;

    *out = NULL;
    if (catalog_backup_list(cat, NULL, 0, &all) < 0)
        return -1;
    for (size_t i = 0; i < all->count; i++)
        if (orphaned(cat, &all->items[i]) && !vk_strv_contains(*out, all->items[i].domain) &&
            vk_strv_add(out, all->items[i].domain) < 0)
            goto out;
    r = 0;
out:
    catalog_backups_free(all);
    return r;
}

/* Recover DOMAIN under its backup lock; a busy lock means a live backup. */
static void domain_recover(struct daemon *d, struct virt_conn *conn, const char *domain)
{
    CLEANUP_FREE char *dir = backup_lock_dir_default();
    struct virt_domain *dom = NULL;
    struct backup_lock *lock = NULL;
    unsigned int n = 0;

    if (!dir)
        goto fail;
    if (!(dom = virt_domain_lookup(conn, domain))) {
        if (vk_error_code() != VK_ERR_NOT_FOUND)
            goto fail;
        /* Several hosts: the host that runs it recovers them. */
        vk_info("domain '%s' is not on host '%s': its interrupted backups are recovered "
                "where it runs",
                domain, catalog_host_name(d->cat));
        return;
    }
    if (!(lock = backup_lock_acquire(dir, domain, 0)))
        goto fail;
    if (backup_recover(d->cat, dom, d->cfg, NULL, 0, &n) < 0)
        goto fail;
    vk_info("recovered %u interrupted backup(s) of domain '%s'", n, domain);
    goto out;
fail:
    vk_warn("cannot recover the interrupted backups of domain '%s': %s", domain,
            vk_error_message());
out:
    backup_lock_release(lock);
    virt_domain_free(dom);
}

int daemon_recover_domain(struct daemon *d, const char *domain)
{
    struct virt_conn *conn;
    unsigned int backups = 0;

    /* First the rows, so that the scheduler sees the failure (and backs
     * off) even when the domain cannot be reached; the rest is done under
     * the domain's lock, or by the next backup or restart. */
    if (catalog_backup_fail_orphans(d->cat, 0, &backups) < 0)
        return -1;
    if (backups)
        vk_info("marked %u interrupted backup(s) failed", backups);
    if (!(conn = virt_conn_open(d->connect_uri, 0))) {
        vk_warn("cannot recover the interrupted backups of domain '%s': %s", domain,
                vk_error_message());
        return 0;
    }
    domain_recover(d, conn, domain);
    virt_conn_close(conn);
    return 0;
}

int daemon_recover(struct daemon *d)
{
    CLEANUP_STRV char **domains = NULL;
    struct virt_conn *conn = NULL;
    unsigned int jobs = 0, drills = 0, backups = 0;

    if (catalog_job_fail_orphans(d->cat, 0, &jobs) < 0 ||
        catalog_drill_fail_orphans(d->cat, 0, &drills) < 0 ||
        domains_orphaned(d->cat, &domains) < 0)
        return -1;
    if (jobs || drills)
        vk_info("marked %u job(s) and %u drill(s) of killed processes failed", jobs, drills);
    if (domains && domains[0]) {
        if (!(conn = virt_conn_open(d->connect_uri, 0)))
            vk_warn("cannot recover interrupted backups: %s", vk_error_message());
        for (size_t i = 0; conn && domains[i]; i++)
            domain_recover(d, conn, domains[i]);
        virt_conn_close(conn);
    }
    /* What is left: backups of domains that cannot be reached. */
    if (catalog_backup_fail_orphans(d->cat, 0, &backups) < 0)
        return -1;
    if (backups)
        vk_info("marked %u more interrupted backup(s) failed", backups);
    /* Run directories of killed workers, after their jobs were aborted. */
    return backup_recover_rundirs(NULL);
}
