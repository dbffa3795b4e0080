/* virtkeep - catalog: jobs and measured throughput. */
#include <config.h>

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

/* How many recent measurements an estimate averages. */
#define THROUGHPUT_SAMPLES 10

#define JOB_SELECT                                                                                 \
    "SELECT id, kind, domain, target, backup_id, state, pid, started, finished, "                  \
    "progress_done, progress_total, estimate_seconds, elapsed_seconds, error, downtime_ms, "       \
    "pid_start, host, epoch FROM jobs "

static int read_job(struct catalog_stmt *stmt, void *item)
{
    struct catalog_job *job = item;
    bool ok = true;

    job->id = catalog_sql_int(stmt, 0);
    job->kind = catalog_sql_text(stmt, 1, &ok);
    job->domain = catalog_sql_text(stmt, 2, &ok);
    job->target = catalog_sql_text(stmt, 3, &ok);
    job->backup_id = catalog_sql_text(stmt, 4, &ok);
    if (catalog_job_state_parse(catalog_sql_column(stmt, 5), &job->state) == -1)
        ok = false;
    job->pid = catalog_sql_int(stmt, 6);
    job->started = catalog_sql_int(stmt, 7);
    job->finished = catalog_sql_int(stmt, 8);
    job->progress_done = (uint64_t)catalog_sql_int(stmt, 9);
    job->progress_total = (uint64_t)catalog_sql_int(stmt, 10);
    job->estimate_seconds = catalog_sql_double(stmt, 11);
    job->elapsed_seconds = catalog_sql_double(stmt, 12);
    job->error = catalog_sql_text(stmt, 13, &ok);
    job->downtime_ms = catalog_sql_int(stmt, 14);
    job->pid_start = catalog_sql_int(stmt, 15);
    job->host = catalog_sql_text(stmt, 16, &ok);
    job->epoch = catalog_sql_int(stmt, 17);
    return ok ? 0 : -1;
}

int64_t catalog_job_insert(struct catalog *cat, const struct catalog_job *job)
{
    int64_t started = job->started ? job->started : (int64_t)time(NULL);
    int64_t pid = job->pid ? job->pid : (int64_t)getpid();
    int64_t pid_start = catalog_pid_start(pid, job->pid_start);
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    int64_t id = 0;

    if (!job->kind || !*job->kind || job->state > CATALOG_JOB_CANCELLED) {
        vk_error(VK_ERR_INVALID, "a job needs a kind and a valid state");
        return -1;
    }
    stmt = catalog_sql_prepare(
        cat,
        "INSERT INTO jobs(kind, domain, target, backup_id, state, pid, "
        "started, finished, progress_done, progress_total, "
        "estimate_seconds, elapsed_seconds, error, pid_start, host, epoch) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
        "RETURNING id",
        "tttttiiiuuddtiti", job->kind, job->domain, job->target, job->backup_id,
        catalog_job_state_name(job->state), pid, started, job->finished, job->progress_done,
        job->progress_total, job->estimate_seconds, job->elapsed_seconds, job->error, pid_start,
        job->host ? job->host : cat->host, job->epoch);
    if ((id = catalog_sql_new_id(cat, stmt, "job")) > 0)
        return id;
    vk_error_prefix("cannot record a %s job", job->kind);
    return -1;
}

static int job_missing(struct catalog *cat, int64_t id)
{
    vk_error(VK_ERR_NOT_FOUND, "job %" PRId64 " is not in catalog '%s'", id, cat->path);
    return -1;
}

int catalog_job_set_state(struct catalog *cat, int64_t id, enum catalog_job_state state)
{
    int n = catalog_sql_run(cat, "UPDATE jobs SET state = ?2 WHERE id = ?1", "it", id,
                            catalog_job_state_name(state));

    if (n == 0)
        return job_missing(cat, id);
    return n == -1 ? -1 : 0;
}

int catalog_job_set_progress(struct catalog *cat, int64_t id, uint64_t done, uint64_t total)
{
    int n = catalog_sql_run(cat,
                            "UPDATE jobs SET progress_done = ?2, progress_total = ?3 "
                            "WHERE id = ?1",
                            "iuu", id, done, total);

    if (n == 0)
        return job_missing(cat, id);
    return n == -1 ? -1 : 0;
}

int catalog_job_finish(struct catalog *cat, int64_t id, enum catalog_job_state state,
                       const char *error, double elapsed_seconds)
{
    int n;

    if (state != CATALOG_JOB_SUCCEEDED && state != CATALOG_JOB_FAILED &&
        state != CATALOG_JOB_CANCELLED) {
        vk_error(VK_ERR_INVALID, "job %" PRId64 " cannot finish as '%s'", id,
                 catalog_job_state_name(state));
        return -1;
    }
    n = catalog_sql_run(cat,
                        "UPDATE jobs SET state = ?2, error = ?3, elapsed_seconds = ?4, "
                        "finished = ?5 WHERE id = ?1",
                        "ittdi", id, catalog_job_state_name(state), error, elapsed_seconds,
                        (int64_t)time(NULL));
    if (n == 0)
        return job_missing(cat, id);
    return n == -1 ? -1 : 0;
}

int catalog_job_set_downtime(struct catalog *cat, int64_t id, int64_t downtime_ms)
{
    int n;

    if (downtime_ms < 0) {
        vk_error(VK_ERR_INVALID, "job %" PRId64 " cannot have a negative downtime", id);
        return -1;
    }
    n = catalog_sql_run(cat, "UPDATE jobs SET downtime_ms = ?2 WHERE id = ?1", "ii", id,
                        downtime_ms);
    if (n == 0)
        return job_missing(cat, id);
    return n == -1 ? -1 : 0;
}

struct catalog_job *catalog_job_get(struct catalog *cat, int64_t id)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_job *job;
    int r;

    stmt = catalog_sql_prepare(cat, JOB_SELECT "WHERE id = ?1", "i", id);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return NULL;
    if (r == 0) {
        job_missing(cat, id);
        return NULL;
    }
    job = vk_calloc(1, sizeof *job);
    if (job && read_job(stmt, job) == -1) {
        catalog_job_free(job);
        return NULL;
    }
    return job;
}

int catalog_job_list(struct catalog *cat, const char *domain, unsigned int flags, size_t limit,
                     struct catalog_jobs **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_jobs *list;

    *out = NULL;
    stmt = catalog_sql_prepare(cat,
                               JOB_SELECT "WHERE (?1 IS NULL OR domain = ?1) "
                                          "AND (?2 = 0 OR state IN ('queued', 'running')) "
                                          "ORDER BY id DESC LIMIT ?3",
                               "tii", domain, (int64_t)(flags & CATALOG_JOB_LIST_ACTIVE),
                               limit && limit < INT64_MAX ? (int64_t)limit : INT64_MAX);
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list || catalog_sql_list(cat, stmt, sizeof *list->items, read_job, catalog_job_clear,
                                  (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}

int catalog_job_fail_orphans(struct catalog *cat, unsigned int flags, unsigned int *marked)
{
    (void)flags;
    return catalog_sql_fail_orphans(cat,
                                    "SELECT id, pid, pid_start FROM jobs "
                                    "WHERE state IN ('queued', 'running') "
                                    "AND (host IS NULL OR host = ?1)",
                                    "UPDATE jobs SET state = 'failed', error = ?2, finished = ?3 "
                                    "WHERE id = ?1 AND state IN ('queued', 'running')",
                                    true, marked);
}

int catalog_throughput_record(struct catalog *cat, const char *target, enum catalog_direction dir,
                              uint64_t bytes, double seconds, int64_t when)
{
    if (!target || !*target || dir > CATALOG_DIR_WRITE || !(seconds > 0) || !isfinite(seconds)) {
        vk_error(VK_ERR_INVALID,
                 "cannot record throughput of target '%s': it needs a target, a direction "
                 "and a positive duration",
                 target ? target : "");
        return -1;
    }
    if (catalog_sql_run(cat,
                        "INSERT INTO throughput(target, direction, bytes, seconds, measured) "
                        "VALUES(?1, ?2, ?3, ?4, ?5)",
                        "ttudi", target, catalog_direction_name(dir), bytes, seconds,
                        when ? when : (int64_t)time(NULL)) == -1) {
        vk_error_prefix("cannot record throughput of target '%s'", target);
        return -1;
    }
    return 0;
}

int catalog_throughput_estimate(struct catalog *cat, const char *target, enum catalog_direction dir,
                                struct catalog_rate *out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    double bytes, seconds;

    /* A weighted rate (total bytes over total time) of the newest samples:
     * a long transfer counts more than a short one. */
    stmt = catalog_sql_prepare(cat,
                               "SELECT count(*), coalesce(sum(bytes * 1.0), 0), "
                               "coalesce(sum(seconds), 0), coalesce(max(measured), 0) "
                               "FROM (SELECT * FROM throughput "
                               "WHERE target = ?1 AND direction = ?2 "
                               "ORDER BY measured DESC, id DESC LIMIT ?3) AS recent",
                               "tti", target, catalog_direction_name(dir),
                               (int64_t)THROUGHPUT_SAMPLES);
    if (!stmt || catalog_sql_step(cat, stmt) != 1)
        return -1;
    out->samples = (unsigned int)catalog_sql_int(stmt, 0);
    bytes = catalog_sql_double(stmt, 1);
    seconds = catalog_sql_double(stmt, 2);
    out->bytes_per_second = out->samples && seconds > 0 ? bytes / seconds : 0;
    out->last_measured = catalog_sql_int(stmt, 3);
    return 0;
}
