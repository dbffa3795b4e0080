/* virtkeep - virtkeepd's workers: reaping, outcomes, cancel and stop. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/daemon/daemon.h"

static bool policy_prunes(const struct config *cfg, const char *domain)
{
    const struct config_domain *cd = config_domain_find(cfg, domain);
    const struct config_policy *p = cd && cd->policy ? config_policy_find(cfg, cd->policy) : NULL;

    return p && (p->keep_last || p->keep_hourly || p->keep_daily || p->keep_weekly ||
                 p->keep_monthly || p->keep_yearly || p->keep_within);
}

static struct daemon_domain *domain_find(struct daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_domains; i++)
        if (strcmp(d->domains[i].name, name) == 0)
            return &d->domains[i];
    return NULL;
}

/* The backup id a successful `backup --json` printed. */
static char *backup_id_parse(const char *out)
{
    struct json_object *j = out ? json_tokener_parse(out) : NULL;
    struct json_object *v;
    char *id = NULL;

    if (j && json_object_object_get_ex(j, "backup", &v) && json_object_is_type(v, json_type_string))
        id = vk_strdup(json_object_get_string(v));
    json_object_put(j);
    return id;
}

/* Log the level a backup took, and why a full when it was not asked for
 * (a domain that moved here without its bitmaps, a broken chain). */
static void backup_level_log(const struct daemon_worker *w)
{
    struct json_object *j = w->out ? json_tokener_parse(w->out) : NULL;
    struct json_object *level = NULL, *reason = NULL;

    if (j && json_object_object_get_ex(j, "level", &level) && level) {
        json_object_object_get_ex(j, "reason", &reason);
        if (reason && json_object_is_type(reason, json_type_string))
            vk_info("domain '%s': %s backup: %s", w->domain, json_object_get_string(level),
                    json_object_get_string(reason));
        else
            vk_info("domain '%s': %s backup%s", w->domain, json_object_get_string(level),
                    strcmp(json_object_get_string(level), "full") ? ", the chain continues" : "");
    }
    json_object_put(j);
}

static char *exit_error(const struct daemon_worker *w)
{
    char *e = daemon_worker_error(w->err, w->err_len);

    if (e)
        return e;
    if (WIFSIGNALED(w->status))
        return vk_asprintf("the %s worker was killed by signal %d", w->kind, WTERMSIG(w->status));
    return vk_asprintf("the %s worker exited with status %d", w->kind, WEXITSTATUS(w->status));
}

/* Finish the job row: ours, or the worker's own row when it died before
 * finishing it (one is inserted if it never recorded any). */
static int row_finish(struct daemon *d, struct daemon_worker *w, enum catalog_job_state st,
                      const char *error, double secs)
{
    struct catalog_job *j;
    struct catalog_job row = {.kind = w->kind,
                              .domain = w->domain,
                              .target = w->target,
                              .backup_id = w->backup_id,
                              .state = CATALOG_JOB_RUNNING,
                              .pid = w->pid,
                              .started = w->started};
    bool open_row = true;

    if (w->own_row) {
        if (w->job_id == 0)
            daemon_job_adopt(d);
        if (w->job_id == 0 && (w->job_id = catalog_job_insert(d->cat, &row)) < 0)
            return -1;
        if ((j = catalog_job_get(d->cat, w->job_id)) != NULL) {
            open_row = j->state == CATALOG_JOB_RUNNING || j->state == CATALOG_JOB_QUEUED;
            catalog_job_free(j);
        }
    }
    if (w->job_id <= 0 || !open_row)
        return 0;
    return catalog_job_finish(d->cat, w->job_id, st, error, secs);
}

static void outcome_record(struct daemon *d, struct daemon_worker *w)
{
    bool ok = WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0;
    double secs = (double)(vk_now_ns() - w->t0_ns) / 1e9;
    enum catalog_job_state st = ok                             ? CATALOG_JOB_SUCCEEDED
                                : w->cancelling || w->stopping ? CATALOG_JOB_CANCELLED
                                                               : CATALOG_JOB_FAILED;
    CLEANUP_FREE char *err = ok ? NULL : exit_error(w);
    CLEANUP_FREE char *why = NULL;
    struct daemon_domain *dd;

    if (st == CATALOG_JOB_CANCELLED)
        why = vk_asprintf("%s: %s", w->stopping ? "virtkeepd stopped" : "cancelled",
                          err ? err : "interrupted");
    if (ok && strcmp(w->kind, "backup") == 0) {
        free(w->backup_id);
        w->backup_id = backup_id_parse(w->out);
        backup_level_log(w);
        if ((dd = domain_find(d, w->domain)) && policy_prunes(d->cfg, w->domain))
            dd->prune_pending = true;
    }
    if (row_finish(d, w, st, why ? why : err, secs) < 0)
        vk_warn("cannot record the end of the %s job of domain '%s': %s", w->kind, w->domain,
                vk_error_message());
    if (ok)
        vk_info("job %" PRId64 ": %s of domain '%s'%s%s succeeded in %.1fs", w->job_id, w->kind,
                w->domain, w->backup_id ? ": " : "", w->backup_id ? w->backup_id : "", secs);
    else
        vk_warn("job %" PRId64 ": %s of domain '%s' %s after %.1fs: %s", w->job_id, w->kind,
                w->domain, catalog_job_state_name(st), secs,
                why   ? why
                : err ? err
                      : "?");
}

/* Did the backup worker W leave a backup row running (killed, OOM, a
 * crash)?  Its rows carry its pid and start time. */
static bool backups_left(struct daemon *d, const struct daemon_worker *w)
{
    struct catalog_backups *all = NULL;
    bool left = false;

    if (catalog_backup_list(d->cat, w->domain, 0, &all) < 0) {
        vk_warn("cannot list the backups of domain '%s': %s", w->domain, vk_error_message());
        return true; /* recovery only touches rows whose process is gone */
    }
    for (size_t i = 0; i < all->count && !left; i++) {
        const struct catalog_backup *b = &all->items[i];
        left = b->status == CATALOG_STATUS_RUNNING && b->pid == w->pid &&
               (!b->pid_start || !w->pid_start || (uint64_t)b->pid_start == w->pid_start);
    }
    catalog_backups_free(all);
    return left;
}

/* A worker that died without finishing its rows: what a restart of the
 * daemon would do for them, now, so that its domain is not left busy. */
static void rows_recover(struct daemon *d, struct daemon_worker *w)
{
    unsigned int drills = 0;

    if (strcmp(w->kind, "drill") == 0) {
        if (catalog_drill_fail_orphans(d->cat, 0, &drills) < 0)
            vk_warn("cannot fail the drill of the dead worker: %s", vk_error_message());
        else if (drills)
            vk_info("marked %u drill(s) of a dead worker failed", drills);
    }
    if (strcmp(w->kind, "backup") != 0 || !backups_left(d, w))
        return;
    vk_warn("the backup worker of domain '%s' (pid %d) left its backup running: recovering it",
            w->domain, (int)w->pid);
    if (daemon_recover_domain(d, w->domain) < 0)
        vk_warn("cannot recover the backup of domain '%s': %s", w->domain, vk_error_message());
}

static void worker_remove(struct daemon *d, size_t i)
{
    struct daemon_worker *w = d->workers[i];

    daemon_lease_release(d, w->domain, w->epoch);
    pthread_mutex_lock(&d->lock);
    d->workers[i] = d->workers[--d->n_workers];
    pthread_mutex_unlock(&d->lock);
    daemon_worker_free(w);
}

void daemon_job_reap(struct daemon *d)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < d->n_workers; i++) {
            struct daemon_worker *w = d->workers[i];
            if (w->pid != pid)
                continue;
            w->exited = true;
            w->status = status;
        }
    }
    for (size_t i = d->n_workers; i-- > 0;) {
        struct daemon_worker *w = d->workers[i];
        if (!w->exited)
            continue;
        /* Drain what is left; a grandchild holding the pipe open must not
         * keep the job alive. */
        if (w->out_fd >= 0)
            daemon_job_read(w, w->out_fd);
        if (w->err_fd >= 0)
            daemon_job_read(w, w->err_fd);
        outcome_record(d, w);
        if (!WIFEXITED(w->status) || WEXITSTATUS(w->status) != 0)
            rows_recover(d, w);
        worker_remove(d, i);
    }
}

int daemon_job_cancel(struct daemon *d, int64_t id)
{
    bool found = false;
    int r = 0;

    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_workers && !found; i++) {
        struct daemon_worker *w = d->workers[i];
        if (w->job_id != id)
            continue;
        found = true;
        w->cancelling = true;
        if (!w->exited && kill(w->pid, SIGTERM) < 0 && errno != ESRCH) {
            vk_error_errno(errno, "cannot stop the worker of job %" PRId64, id);
            r = -1;
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (!found) {
        vk_error(VK_ERR_NOT_FOUND, "job %" PRId64 " is not running in virtkeepd", id);
        return -1;
    }
    if (r == 0)
        vk_info("job %" PRId64 ": cancel requested", id);
    return r;
}

void daemon_jobs_stop(struct daemon *d)
{
    uint64_t deadline = vk_now_ns() + (uint64_t)DAEMON_STOP_WAIT * 1000000000u;
    bool killed = false;

    for (size_t i = 0; i < d->n_workers; i++) {
        d->workers[i]->stopping = true;
        kill(d->workers[i]->pid, SIGTERM);
    }
    if (d->n_workers)
        vk_info("waiting for %zu job(s) to stop", d->n_workers);
    while (d->n_workers) {
        daemon_job_reap(d);
        if (!d->n_workers)
            break;
        if (!killed && vk_now_ns() > deadline) {
            for (size_t i = 0; i < d->n_workers; i++)
                kill(d->workers[i]->pid, SIGKILL);
            killed = true;
        }
        for (size_t i = 0; i < d->n_workers; i++) {
            struct daemon_worker *w = d->workers[i];
            if (w->out_fd >= 0)
                daemon_job_read(w, w->out_fd);
            if (w->err_fd >= 0)
                daemon_job_read(w, w->err_fd);
        }
        usleep(50000);
    }
}
