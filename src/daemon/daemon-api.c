/* virtkeep - virtkeepd's side of the control API (api.h): the ops the
 * server threads call, and starting/stopping the server. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/daemon/daemon.h"

static int job_fill(const struct daemon_worker *w, struct api_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = w->job_id;
    j->pid = w->pid;
    j->started = w->started;
    j->kind = vk_strdup(w->kind);
    j->domain = w->domain ? vk_strdup(w->domain) : NULL;
    j->target = w->target ? vk_strdup(w->target) : NULL;
    j->backup_id = w->backup_id ? vk_strdup(w->backup_id) : NULL;
    j->level = w->level ? vk_strdup(w->level) : NULL;
    j->state = vk_strdup(w->cancelling || w->stopping ? "cancelling" : "running");
    if (!j->kind || !j->state || (w->domain && !j->domain) || (w->target && !j->target) ||
        (w->backup_id && !j->backup_id) || (w->level && !j->level)) {
        api_job_clear(j);
        return -1;
    }
    return 0;
}

static int op_jobs_active(void *ctx, struct api_job **jobs, size_t *n)
{
    struct daemon *d = ctx;
    struct api_job *v;
    int r = 0;

    pthread_mutex_lock(&d->lock);
    v = vk_calloc(d->n_workers + 1, sizeof *v);
    *n = 0;
    for (size_t i = 0; v && i < d->n_workers && r == 0; i++)
        if ((r = job_fill(d->workers[i], &v[i])) == 0)
            (*n)++;
    pthread_mutex_unlock(&d->lock);
    if (!v || r < 0) {
        for (size_t i = 0; v && i < *n; i++)
            api_job_clear(&v[i]);
        free(v);
        *n = 0;
        return -1;
    }
    *jobs = v;
    return 0;
}

static int op_job_cancel(void *ctx, int64_t id)
{
    return daemon_job_cancel(ctx, id);
}

static int op_next_job(void *ctx, const char *domain, struct sched_job *out)
{
    struct daemon *d = ctx;
    const struct sched_job *src = NULL;
    int r = 0;

    memset(out, 0, sizeof *out);
    out->kind = SCHED_NONE;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_domains; i++)
        if (strcmp(d->domains[i].name, domain) == 0)
            src = &d->domains[i].next;
    if (src && src->kind != SCHED_NONE) {
        *out = *src;
        out->domain = src->domain ? vk_strdup(src->domain) : NULL;
        out->target = src->target ? vk_strdup(src->target) : NULL;
        out->backup_id = src->backup_id ? vk_strdup(src->backup_id) : NULL;
        out->parent = src->parent ? vk_strdup(src->parent) : NULL;
        out->reason = src->reason ? vk_strdup(src->reason) : NULL;
        if ((src->domain && !out->domain) || (src->target && !out->target) ||
            (src->backup_id && !out->backup_id) || (src->parent && !out->parent) ||
            (src->reason && !out->reason)) {
            sched_job_clear(out);
            r = -1;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return r;
}

void daemon_api_ops(struct daemon *d, struct api_ops *ops)
{
    memset(ops, 0, sizeof *ops);
    ops->ctx = d;
    ops->jobs_active = op_jobs_active;
    ops->job_cancel = op_job_cancel;
    ops->next_job = op_next_job;
}

static void api_options(const struct daemon *d, struct api_server_options *o)
{
    *o = (struct api_server_options){
        .socket_path = d->socket_path,
        .listen = d->cfg->daemon.listen,
        .token_file = d->cfg->daemon.token_file,
        .catalog_path = d->catalog_path,
        .config = d->cfg,
    };
}

int daemon_api_start(struct daemon *d)
{
    static struct api_ops ops;
    struct api_server_options o;

    api_options(d, &o);
    daemon_api_ops(d, &ops);
    if (!(d->api = api_server_start(&o, &ops, 0)))
        return -1;
    vk_info("control API on socket '%s'%s%s", d->socket_path, o.listen ? " and " : "",
            o.listen ? o.listen : "");
    return 0;
}

int daemon_api_reload(struct daemon *d)
{
    struct api_server_options o;

    if (!d->api)
        return daemon_api_start(d);
    api_options(d, &o);
    if (api_server_reload(d->api, &o) < 0)
        return -1;
    vk_info("control API on socket '%s'%s%s", d->socket_path, o.listen ? " and " : "",
            o.listen ? o.listen : "");
    return 0;
}

void daemon_api_stop(struct daemon *d)
{
    api_server_stop(d->api);
    d->api = NULL;
}
