/* virtkeep - catalog: DR drills (see src/drill.h for what a drill does and
 * src/plan.h for how the restore estimator learns from them). */
#include <config.h>

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

#define DRILL_SELECT                                                                               \
    "SELECT id, job_id, domain, backup_id, targets, state, pid, started, finished, "               \
    "estimate_seconds, estimate_source, actual_seconds, bytes_read, disk_bytes, error, pid_start " \
    "FROM drills "

static void drill_clear(void *item)
{
    struct catalog_drill *d = item;

    free(d->domain);
    free(d->backup_id);
    free(d->targets);
    free(d->estimate_source);
    free(d->error);
}

void catalog_drill_free(struct catalog_drill *drill)
{
    if (!drill)
        return;
    drill_clear(drill);
    free(drill);
}

void catalog_drills_free(struct catalog_drills *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items, drill_clear);
    free(list);
}

static int read_drill(struct catalog_stmt *stmt, void *item)
{
    struct catalog_drill *d = item;
    bool ok = true;

    d->id = catalog_sql_int(stmt, 0);
    d->job_id = catalog_sql_int(stmt, 1);
    d->domain = catalog_sql_text(stmt, 2, &ok);
    d->backup_id = catalog_sql_text(stmt, 3, &ok);
    d->targets = catalog_sql_text(stmt, 4, &ok);
    if (catalog_drill_state_parse(catalog_sql_column(stmt, 5), &d->state) == -1)
        ok = false;
    d->pid = catalog_sql_int(stmt, 6);
    d->started = catalog_sql_int(stmt, 7);
    d->finished = catalog_sql_int(stmt, 8);
    d->estimate_seconds = catalog_sql_double(stmt, 9);
    d->estimate_source = catalog_sql_text(stmt, 10, &ok);
    d->actual_seconds = catalog_sql_double(stmt, 11);
    d->bytes_read = (uint64_t)catalog_sql_int(stmt, 12);
    d->disk_bytes = (uint64_t)catalog_sql_int(stmt, 13);
    d->error = catalog_sql_text(stmt, 14, &ok);
    d->pid_start = catalog_sql_int(stmt, 15);
    return ok ? 0 : -1;
}

int64_t catalog_drill_insert(struct catalog *cat, const struct catalog_drill *d)
{
    int64_t started = d->started ? d->started : (int64_t)time(NULL);
    int64_t pid = d->pid ? d->pid : (int64_t)getpid();
    int64_t pid_start = catalog_pid_start(pid, d->pid_start);
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    int64_t id = 0;

    if (!d->domain || !*d->domain || (unsigned int)d->state > CATALOG_DRILL_CANCELLED ||
        !isfinite(d->estimate_seconds) || !isfinite(d->actual_seconds)) {
        vk_error(VK_ERR_INVALID, "a drill needs a domain, a valid state and finite times");
        return -1;
    }
    stmt = catalog_sql_prepare(
        cat,
        "INSERT INTO drills(job_id, domain, backup_id, targets, state, pid, started, finished, "
        "estimate_seconds, estimate_source, actual_seconds, bytes_read, disk_bytes, error, "
        "pid_start, host) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
        "?15, ?16) RETURNING id",
        "ittttiiidtduutit", d->job_id, d->domain, d->backup_id, d->targets,
        catalog_drill_state_name(d->state), pid, started, d->finished, d->estimate_seconds,
        d->estimate_source, d->actual_seconds, d->bytes_read, d->disk_bytes, d->error, pid_start,
        cat->host);
    if ((id = catalog_sql_new_id(cat, stmt, "drill")) > 0)
        return id;
    vk_error_prefix("cannot record a drill of domain '%s'", d->domain);
    return -1;
}

static int drill_missing(struct catalog *cat, int64_t id)
{
    vk_error(VK_ERR_NOT_FOUND, "drill %" PRId64 " is not in catalog '%s'", id, cat->path);
    return -1;
}

int catalog_drill_finish(struct catalog *cat, int64_t id, enum catalog_drill_state state,
                         double actual_seconds, uint64_t bytes_read, uint64_t disk_bytes,
                         const char *error)
{
    struct catalog_drill *cur;
    int n;

    if (state == CATALOG_DRILL_RUNNING || (unsigned int)state > CATALOG_DRILL_CANCELLED ||
        !isfinite(actual_seconds) || actual_seconds < 0) {
        vk_error(VK_ERR_INVALID, "drill %" PRId64 " cannot finish as '%s' after %g seconds", id,
                 catalog_drill_state_name(state), actual_seconds);
        return -1;
    }
    n = catalog_sql_run(cat,
                        "UPDATE drills SET state = ?2, actual_seconds = ?3, bytes_read = ?4, "
                        "disk_bytes = ?5, error = ?6, finished = ?7 "
                        "WHERE id = ?1 AND state = 'running'",
                        "itduuti", id, catalog_drill_state_name(state), actual_seconds, bytes_read,
                        disk_bytes, error, (int64_t)time(NULL));
    if (n != 0)
        return n == -1 ? -1 : 0;
    /* Nothing changed: unknown, or no longer running. */
    cur = catalog_drill_get(cat, id);
    if (!cur)
        return -1;
    vk_error(VK_ERR_INVALID, "drill %" PRId64 " of domain '%s' is already %s", id, cur->domain,
             catalog_drill_state_name(cur->state));
    catalog_drill_free(cur);
    return -1;
}

struct catalog_drill *catalog_drill_get(struct catalog *cat, int64_t id)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_drill *d;
    int r;

    stmt = catalog_sql_prepare(cat, DRILL_SELECT "WHERE id = ?1", "i", id);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return NULL;
    if (r == 0) {
        drill_missing(cat, id);
        return NULL;
    }
    d = vk_calloc(1, sizeof *d);
    if (d && read_drill(stmt, d) == -1) {
        catalog_drill_free(d);
        return NULL;
    }
    return d;
}

int catalog_drill_list(struct catalog *cat, const char *domain, const char *target,
                       unsigned int flags, size_t limit, struct catalog_drills **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_drills *list;

    *out = NULL;
    /* TARGET matches one whole name of the comma-separated list. */
    stmt = catalog_sql_prepare(cat,
                               DRILL_SELECT "WHERE (?1 IS NULL OR domain = ?1) "
                                            "AND (?2 IS NULL OR "
                                            "  instr(',' || coalesce(targets, '') || ',', "
                                            "        ',' || ?2 || ',') > 0) "
                                            "AND (?3 = 0 OR state = 'ok') "
                                            "ORDER BY started DESC, id DESC LIMIT ?4",
                               "ttii", domain, target, (int64_t)(flags & CATALOG_DRILL_LIST_OK),
                               limit && limit < INT64_MAX ? (int64_t)limit : INT64_MAX);
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list || catalog_sql_list(cat, stmt, sizeof *list->items, read_drill, drill_clear,
                                  (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}

int catalog_drill_fail_orphans(struct catalog *cat, unsigned int flags, unsigned int *marked)
{
    (void)flags;
    return catalog_sql_fail_orphans(cat,
                                    "SELECT id, pid, pid_start FROM drills WHERE state = 'running' "
                                    "AND (host IS NULL OR host = ?1)",
                                    "UPDATE drills SET state = 'failed', error = ?2, finished = ?3 "
                                    "WHERE id = ?1 AND state = 'running'",
                                    true, marked);
}
