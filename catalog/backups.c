/* virtkeep - catalog: backups and the disks they cover. */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

#define BACKUP_SELECT                                                                              \
    "SELECT b.id, d.name, b.level, b.status, b.checkpoint, b.parent, b.error, b.started, "         \
    "b.finished, b.bytes_read, b.bytes_written, b.bytes_stored, b.pid, b.pid_start, b.host, "
#define BACKUP_FROM " FROM backups b JOIN domains d ON d.id = b.domain_id "

char *catalog_backup_id_make(const char *domain, int64_t when)
{
    time_t t = (time_t)when;
    struct tm tm;
    char stamp[32];

    if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm) == 0) {
        vk_error(VK_ERR_INVALID, "cannot make a backup id for domain '%s' at time %" PRId64, domain,
                 when);
        return NULL;
    }
    return vk_asprintf("%s-%s", domain, stamp);
}

static int read_backup(struct catalog_stmt *stmt, void *item)
{
    struct catalog_backup *b = item;
    bool ok = true;

    b->id = catalog_sql_text(stmt, 0, &ok);
    b->domain = catalog_sql_text(stmt, 1, &ok);
    if (catalog_level_parse(catalog_sql_column(stmt, 2), &b->level) == -1 ||
        catalog_status_parse(catalog_sql_column(stmt, 3), &b->status) == -1)
        ok = false;
    b->checkpoint = catalog_sql_text(stmt, 4, &ok);
    b->parent = catalog_sql_text(stmt, 5, &ok);
    b->error = catalog_sql_text(stmt, 6, &ok);
    b->started = catalog_sql_int(stmt, 7);
    b->finished = catalog_sql_int(stmt, 8);
    b->bytes_read = (uint64_t)catalog_sql_int(stmt, 9);
    b->bytes_written = (uint64_t)catalog_sql_int(stmt, 10);
    b->bytes_stored = (uint64_t)catalog_sql_int(stmt, 11);
    b->pid = catalog_sql_int(stmt, 12);
    b->pid_start = catalog_sql_int(stmt, 13);
    b->host = catalog_sql_text(stmt, 14, &ok);
    b->checkpoint_xml = catalog_sql_text(stmt, 15, &ok);
    b->domain_xml = catalog_sql_text(stmt, 16, &ok);
    return ok ? 0 : -1;
}

static int check_new_backup(const struct catalog_backup *b)
{
    if (!b->id || !*b->id) {
        vk_error(VK_ERR_INVALID, "a backup of domain '%s' has no id", b->domain ? b->domain : "");
        return -1;
    }
    if (b->level == CATALOG_LEVEL_AUTO || b->level > CATALOG_LEVEL_AUTO ||
        b->status > CATALOG_STATUS_FAILED) {
        vk_error(VK_ERR_INVALID, "backup '%s' has an invalid level or status", b->id);
        return -1;
    }
    return 0;
}

int catalog_backup_insert(struct catalog *cat, const struct catalog_backup *b)
{
    int64_t started = b->started ? b->started : (int64_t)time(NULL);
    int64_t pid = b->pid ? b->pid : (int64_t)getpid();
    int64_t pid_start = catalog_pid_start(pid, b->pid_start);

    if (check_new_backup(b) == -1 || catalog_domain_ensure(cat, b->domain) == -1)
        return -1;
    if (catalog_sql_run(
            cat,
            "INSERT INTO backups(id, domain_id, level, status, checkpoint, parent, error, "
            "started, finished, bytes_read, bytes_written, bytes_stored, checkpoint_xml, "
            "domain_xml, pid, pid_start, host) SELECT ?1, id, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
            "?11, ?12, ?13, ?14, ?15, ?16, ?17 FROM domains WHERE name = ?2",
            "tttttttiiuuuttiit", b->id, b->domain, catalog_level_name(b->level),
            catalog_status_name(b->status), b->checkpoint, b->parent, b->error, started,
            b->finished, b->bytes_read, b->bytes_written, b->bytes_stored, b->checkpoint_xml,
            b->domain_xml, pid, pid_start, cat->host) == -1) {
        if (catalog_sql_fault(cat) == CATALOG_FAULT_UNIQUE)
            vk_error(VK_ERR_INVALID, "backup '%s' already exists in catalog '%s'", b->id,
                     cat->path);
        else
            vk_error_prefix("cannot record backup '%s'", b->id);
        return -1;
    }
    return 0;
}

struct catalog_backup *catalog_backup_get(struct catalog *cat, const char *id)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_backup *b;
    int r;

    stmt = catalog_sql_prepare(
        cat, BACKUP_SELECT "b.checkpoint_xml, b.domain_xml" BACKUP_FROM "WHERE b.id = ?1", "t", id);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return NULL;
    if (r == 0) {
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' is not in catalog '%s'", id, cat->path);
        return NULL;
    }
    b = vk_calloc(1, sizeof *b);
    if (b && read_backup(stmt, b) == -1) {
        catalog_backup_free(b);
        return NULL;
    }
    return b;
}

/* Why a status change was refused: the row is missing or already final. */
static int status_refused(struct catalog *cat, const char *id)
{
    struct catalog_backup *b = catalog_backup_get(cat, id);

    if (b)
        vk_error(VK_ERR_INVALID, "backup '%s' is already %s and cannot change status", id,
                 catalog_status_name(b->status));
    catalog_backup_free(b);
    return -1;
}

/* Commit backup ID only while this host still holds the lease it runs
 * under (catalog_fence_set): the lease row stays locked until the commit,
 * so that a takeover cannot slip in between the check and the update. */
static int commit_fenced(struct catalog *cat, const char *id)
{
    int64_t now = (int64_t)time(NULL);
    int n = -1;

    if (catalog_begin_rows(cat) == -1)
        return -1;
    if (catalog_lease_fence(cat, cat->fence_domain, cat->fence_epoch, now) == 0)
        n = catalog_sql_run(cat,
                            "UPDATE backups SET status = 'committed', error = NULL, "
                            "finished = ?2 WHERE id = ?1 AND status = 'running'",
                            "ti", id, now);
    if (n == 1 && catalog_commit(cat) == 0)
        return 0;
    catalog_rollback(cat);
    if (n == 0)
        return status_refused(cat, id);
    vk_error_prefix("cannot commit backup '%s'", id);
    return -1;
}

int catalog_backup_set_status(struct catalog *cat, const char *id, enum catalog_status status,
                              const char *error)
{
    int n;

    if (status != CATALOG_STATUS_COMMITTED && status != CATALOG_STATUS_FAILED) {
        vk_error(VK_ERR_INVALID, "backup '%s' can only become committed or failed", id);
        return -1;
    }
    if (status == CATALOG_STATUS_COMMITTED && cat->fence_domain && !cat->in_tx)
        return commit_fenced(cat, id);
    n = catalog_sql_run(cat,
                        "UPDATE backups SET status = ?2, error = ?3, finished = ?4 "
                        "WHERE id = ?1 AND status = 'running'",
                        "ttti", id, catalog_status_name(status), error, (int64_t)time(NULL));
    if (n == -1)
        return -1;
    return n == 0 ? status_refused(cat, id) : 0;
}

int catalog_backup_set_error(struct catalog *cat, const char *id, const char *error)
{
    int n = catalog_sql_run(
        cat, "UPDATE backups SET error = ?2 WHERE id = ?1 AND status = 'failed'", "tt", id, error);

    if (n == 0)
        vk_error(VK_ERR_INVALID, "backup '%s' is not a failed backup of catalog '%s'", id,
                 cat->path);
    return n == 1 ? 0 : -1;
}

int catalog_backup_update(struct catalog *cat, const struct catalog_backup *b)
{
    int n = catalog_sql_run(cat,
                            "UPDATE backups SET checkpoint = coalesce(?2, checkpoint), "
                            "bytes_read = ?3, bytes_written = ?4, bytes_stored = ?5, "
                            "checkpoint_xml = coalesce(?6, checkpoint_xml), "
                            "domain_xml = coalesce(?7, domain_xml) WHERE id = ?1",
                            "ttuuutt", b->id, b->checkpoint, b->bytes_read, b->bytes_written,
                            b->bytes_stored, b->checkpoint_xml, b->domain_xml);

    if (n == 0)
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' is not in catalog '%s'", b->id, cat->path);
    return n == 1 ? 0 : -1;
}

int catalog_backup_list(struct catalog *cat, const char *domain, unsigned int flags,
                        struct catalog_backups **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_backups *list;

    *out = NULL;
    stmt = catalog_sql_prepare(cat,
                               BACKUP_SELECT "CASE WHEN ?3 <> 0 THEN b.checkpoint_xml END, "
                                             "CASE WHEN ?3 <> 0 THEN b.domain_xml END" BACKUP_FROM
                                             "WHERE (?1 IS NULL OR d.name = ?1) "
                                             "AND (?2 = 0 OR b.status = 'committed') "
                                             "ORDER BY b.started, b.id",
                               "tii", domain, (int64_t)(flags & CATALOG_LIST_COMMITTED),
                               (int64_t)((flags & CATALOG_LIST_WITH_XML) != 0));
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list || catalog_sql_list(cat, stmt, sizeof *list->items, read_backup, catalog_backup_clear,
                                  (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}

int catalog_backup_delete(struct catalog *cat, const char *id, unsigned int flags)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    int r, n;

    (void)flags;
    stmt = catalog_sql_prepare(cat, "SELECT id FROM backups WHERE parent = ?1 LIMIT 1", "t", id);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return -1;
    if (r == 1) {
        vk_error(VK_ERR_INVALID, "backup '%s' cannot be deleted: backup '%s' depends on it", id,
                 catalog_sql_column(stmt, 0));
        return -1;
    }
    n = catalog_sql_run(cat, "DELETE FROM backups WHERE id = ?1", "t", id);
    if (n == 0)
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' is not in catalog '%s'", id, cat->path);
    return n == 1 ? 0 : -1;
}

int catalog_backup_fail_orphans(struct catalog *cat, unsigned int flags, unsigned int *marked)
{
    (void)flags;
    return catalog_sql_fail_orphans(cat,
                                    "SELECT id, pid, pid_start FROM backups "
                                    "WHERE status = 'running' "
                                    "AND (host IS NULL OR host = ?1)",
                                    "UPDATE backups SET status = 'failed', error = ?2, "
                                    "finished = ?3 WHERE id = ?1 AND status = 'running'",
                                    false, marked);
}

int catalog_backup_disk_add(struct catalog *cat, const struct catalog_backup_disk *d)
{
    if (!d->target || !*d->target) {
        vk_error(VK_ERR_INVALID, "a disk of backup '%s' has no target name", d->backup_id);
        return -1;
    }
    if (catalog_sql_run(cat,
                        "INSERT INTO backup_disks(backup_id, target, format, virtual_size, "
                        "bytes_read, bytes_stored) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                        "ON CONFLICT(backup_id, target) DO UPDATE SET format = excluded.format, "
                        "virtual_size = excluded.virtual_size, bytes_read = excluded.bytes_read, "
                        "bytes_stored = excluded.bytes_stored",
                        "tttuuu", d->backup_id, d->target, d->format, d->virtual_size,
                        d->bytes_read, d->bytes_stored) == -1) {
        if (catalog_sql_fault(cat) == CATALOG_FAULT_FOREIGN_KEY)
            vk_error(VK_ERR_NOT_FOUND, "backup '%s' is not in catalog '%s'", d->backup_id,
                     cat->path);
        else
            vk_error_prefix("cannot record disk '%s' of backup '%s'", d->target, d->backup_id);
        return -1;
    }
    return 0;
}

static int read_backup_disk(struct catalog_stmt *stmt, void *item)
{
    struct catalog_backup_disk *d = item;
    bool ok = true;

    d->backup_id = catalog_sql_text(stmt, 0, &ok);
    d->target = catalog_sql_text(stmt, 1, &ok);
    d->format = catalog_sql_text(stmt, 2, &ok);
    d->virtual_size = (uint64_t)catalog_sql_int(stmt, 3);
    d->bytes_read = (uint64_t)catalog_sql_int(stmt, 4);
    d->bytes_stored = (uint64_t)catalog_sql_int(stmt, 5);
    return ok ? 0 : -1;
}

int catalog_backup_disk_list(struct catalog *cat, const char *backup_id,
                             struct catalog_backup_disks **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_backup_disks *list;

    *out = NULL;
    stmt = catalog_sql_prepare(cat,
                               "SELECT backup_id, target, format, virtual_size, bytes_read, "
                               "bytes_stored FROM backup_disks WHERE backup_id = ?1 "
                               "ORDER BY target",
                               "t", backup_id);
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list ||
        catalog_sql_list(cat, stmt, sizeof *list->items, read_backup_disk,
                         catalog_backup_disk_clear, (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}

int catalog_prune_mark(struct catalog *cat, const char *id, const char *reason)
{
    int n = catalog_sql_run(cat,
                            "INSERT INTO prune_intents (backup_id, reason, marked) "
                            "SELECT id, ?2, ?3 FROM backups WHERE id = ?1 "
                            "ON CONFLICT (backup_id) DO NOTHING",
                            "tti", id, reason, (int64_t)time(NULL));
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    int r;

    if (n != 0)
        return n == -1 ? -1 : 0;
    /* Nothing inserted: already marked, or no such backup. */
    stmt = catalog_sql_prepare(cat, "SELECT 1 FROM backups WHERE id = ?1", "t", id);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return -1;
    if (r == 0) {
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' is not in catalog '%s'", id, cat->path);
        return -1;
    }
    return 0;
}

int catalog_prune_list(struct catalog *cat, const char *domain, char ***ids)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    CLEANUP_STRV char **v = vk_calloc(1, sizeof *v);
    size_t n = 0;
    int r;

    *ids = NULL;
    stmt = catalog_sql_prepare(cat,
                               "SELECT b.id FROM prune_intents p JOIN backups b ON b.id = "
                               "p.backup_id JOIN domains d ON d.id = b.domain_id "
                               "WHERE ?1 IS NULL OR d.name = ?1 ORDER BY b.started DESC, b.id DESC",
                               "t", domain);
    if (!v || !stmt)
        return -1;
    while ((r = catalog_sql_step(cat, stmt)) == 1) {
        char **nv = vk_realloc_array(v, n + 2, sizeof *v);
        if (!nv)
            return -1;
        v = nv;
        v[n] = vk_strdup(catalog_sql_column(stmt, 0));
        v[++n] = NULL;
        if (!v[n - 1])
            return -1;
    }
    if (r == -1)
        return -1;
    *ids = VK_STEAL(v);
    return 0;
}
