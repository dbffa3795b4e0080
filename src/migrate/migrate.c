/* virtkeep - migration: the migration call, the job-stats monitor,
 * post-checks and the catalog job.
 *
 * virDomainMigrate3 runs in the calling thread, with a destination
 * connection opened here (the client drives both sides, so no
 * peer-to-peer setup between the daemons is needed).  A monitor thread
 * polls virDomainGetJobStats: it prints progress, switches to post-copy
 * after --postcopy-after seconds, and aborts the job (virDomainAbortJob) on
 * SIGINT/SIGTERM or after --timeout, so that the domain keeps running on
 * the source.  The downtime is read from the completed job's statistics on
 * the destination (VIR_DOMAIN_JOB_DOWNTIME).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"
#include "src/migrate/migrate.h"
#include "src/virt/virt.h"

#define MONITOR_TICK_MS 250

/* ---------------------------------------------------------------- monitor */

struct monitor {
    virDomainPtr dom;
    const struct migrate_options *o;
    unsigned int flags;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    uint64_t start_ns;
    /* results */
    bool postcopy, aborted;
    const char *abort_reason; /* static text */
    uint64_t data_total;
};

struct job_stats {
    unsigned long long data_processed, data_remaining, data_total;
    unsigned long long mem_processed, mem_total, dirty_rate, iteration, page_size;
};

static void stats_read(virTypedParameterPtr p, int n, struct job_stats *s)
{
    memset(s, 0, sizeof(*s));
    virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED, &s->data_processed);
    virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DATA_REMAINING, &s->data_remaining);
    virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DATA_TOTAL, &s->data_total);
    virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_PROCESSED, &s->mem_processed);
    virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_TOTAL, &s->mem_total);
    virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, &s->dirty_rate);
    virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_ITERATION, &s->iteration);
    virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, &s->page_size);
}

static void progress_print(const struct job_stats *s, double elapsed)
{
    char done[32], left[32], mem[32], dirty[32];
    double rate = elapsed > 0 ? (double)s->data_processed / elapsed : 0;
    double eta = rate > 0 ? (double)s->data_remaining / rate : 0;

    vk_size_format(s->data_processed, done, sizeof(done));
    vk_size_format(s->data_remaining, left, sizeof(left));
    vk_size_format(s->mem_processed, mem, sizeof(mem));
    vk_size_format(s->dirty_rate * (s->page_size ? s->page_size : 4096), dirty, sizeof(dirty));
    fprintf(stderr,
            "\rmigrating: %s done, %s left, memory %s, dirty %s/s, iteration %llu, ETA %.0f s   ",
            done, left, mem, dirty, s->iteration, eta);
    fflush(stderr);
}

static void monitor_abort(struct monitor *m, const char *reason)
{
    if (m->aborted)
        return;
    if (m->postcopy) {
        vk_warn("migration of '%s' is in post-copy and can no longer be aborted (%s)", m->o->domain,
                reason);
        return;
    }
    m->aborted = true;
    m->abort_reason = reason;
    if (virDomainAbortJob(m->dom) < 0)
        vk_warn("cannot abort the migration of '%s'", m->o->domain);
}

static void monitor_tick(struct monitor *m)
{
    double elapsed = (double)(vk_now_ns() - m->start_ns) / 1e9;
    virTypedParameterPtr p = NULL;
    struct job_stats s;
    int type = VIR_DOMAIN_JOB_NONE, n = 0;

    if (migrate_cancelled(m->o))
        monitor_abort(m, "interrupted");
    else if (m->o->timeout && elapsed >= m->o->timeout)
        monitor_abort(m, "timed out");
    if (virDomainGetJobStats(m->dom, &type, &p, &n, 0) < 0 || type == VIR_DOMAIN_JOB_NONE) {
        virTypedParamsFree(p, n);
        return;
    }
    stats_read(p, n, &s);
    virTypedParamsFree(p, n);
    if (s.data_total)
        m->data_total = s.data_total;
    if (m->o->postcopy_after && !m->postcopy && !m->aborted && elapsed >= m->o->postcopy_after) {
        if (virDomainMigrateStartPostCopy(m->dom, 0) == 0) {
            m->postcopy = true;
            vk_info("migration of '%s' switched to post-copy after %.0f s", m->o->domain, elapsed);
        }
    }
    if (m->flags & MIGRATE_PROGRESS)
        progress_print(&s, elapsed);
}

static void *monitor_main(void *arg)
{
    struct monitor *m = arg;
    struct timespec ts;

    pthread_mutex_lock(&m->lock);
    while (!m->done) {
        pthread_mutex_unlock(&m->lock);
        monitor_tick(m);
        pthread_mutex_lock(&m->lock);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += MONITOR_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (!m->done)
            pthread_cond_timedwait(&m->cond, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    if (m->flags & MIGRATE_PROGRESS)
        fputc('\n', stderr);
    return NULL;
}

static void monitor_stop(struct monitor *m, pthread_t tid)
{
    pthread_mutex_lock(&m->lock);
    m->done = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(tid, NULL);
}

/* ---------------------------------------------------------------- the run */

struct run_ctx {
    struct virt_conn *src, *dst;
    struct virt_domain *dom;
    bool running;
    struct catalog *cat;
    char *connect_error;
};

void migrate_result_clear(struct migrate_result *res)
{
    if (!res)
        return;
    free(res->domain);
    free(res->to);
    free(res->error);
    vk_strv_free(res->backups);
    vk_strv_free(res->volumes);
    migrate_report_clear(&res->report);
    memset(res, 0, sizeof(*res));
}

/* Keep the first failure of the run as the result's error. */
static int fail(struct migrate_result *res)
{
    if (!res->error)
        res->error = vk_strdup(vk_error_message() ? vk_error_message() : "migration failed");
    return -1;
}

static int open_both(struct run_ctx *c, const struct migrate_options *o, struct migrate_result *res)
{
    enum virt_domain_state st;

    if (!(c->src = virt_conn_open(o->from, 0)) || !(c->dom = virt_domain_lookup(c->src, o->domain)))
        return fail(res);
    if (virt_domain_get_state(c->dom, &st) < 0)
        return fail(res);
    c->running = st == VIRT_DOMAIN_RUNNING || st == VIRT_DOMAIN_PAUSED;
    res->live = c->running && o->mode != MIGRATE_MODE_OFFLINE;
    if (migrate_options_check(o, c->running) < 0)
        return fail(res);
    c->dst = virt_conn_open(o->to, 0);
    if (!c->dst)
        c->connect_error = vk_strdup(vk_error_message());
    return 0;
}

static int pre_checks(struct run_ctx *c, const struct migrate_options *o, unsigned int flags,
                      struct migrate_result *res, char **dest_xml, char **persist_xml)
{
    CLEANUP_FREE char *failed = NULL;
    CLEANUP_FREE char *inactive = NULL;

    if (migrate_check_run(c->dom->dom, c->dst ? c->dst->conn : NULL, c->connect_error, o, flags,
                          &res->report, dest_xml) < 0)
        return fail(res);
    if (res->report.failed) {
        failed = migrate_report_failures(&res->report);
        vk_error(VK_ERR_INVALID, "migration of domain '%s' to '%s' failed its pre-checks: %s.",
                 o->domain, o->to, failed ? failed : "?");
        return fail(res);
    }
    if (!o->dest_dir) {
        free(*dest_xml);
        *dest_xml = NULL;
        return 0;
    }
    inactive =
        virDomainGetXMLDesc(c->dom->dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_MIGRATABLE);
    if (!inactive) {
        virt_error_libvirt("cannot read the persistent XML of domain '%s'", o->domain);
        return fail(res);
    }
    if (!(*persist_xml = migrate_xml_move_disks(inactive, o->dest_dir)))
        return fail(res);
    return 0;
}

/* The downtime QEMU measured, from the completed job on the destination. */
static int64_t downtime_read(virDomainPtr ddom)
{
    virTypedParameterPtr p = NULL;
    unsigned long long ms = 0;
    int type, n = 0, found;

    if (virDomainGetJobStats(ddom, &type, &p, &n, VIR_DOMAIN_JOB_STATS_COMPLETED) < 0)
        return -1;
    found = virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DOWNTIME, &ms);
    virTypedParamsFree(p, n);
    return found == 1 ? (int64_t)ms : -1;
}

/* Post-checks: running (when it ran) and persistent on the destination,
 * undefined on the source. */
static int post_checks(struct run_ctx *c, virDomainPtr ddom, const struct migrate_options *o,
                       struct migrate_result *res)
{
    virDomainPtr left;
    int state = 0, reason = 0;

    if (virDomainIsPersistent(ddom) != 1) {
        vk_error(VK_ERR_LIBVIRT, "domain '%s' is not persistent on '%s' after the migration.",
                 o->domain, o->to);
        return fail(res);
    }
    if (c->running && (virDomainGetState(ddom, &state, &reason, 0) < 0 ||
                       (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED))) {
        vk_error(VK_ERR_LIBVIRT, "domain '%s' does not run on '%s' after the migration.", o->domain,
                 o->to);
        return fail(res);
    }
    left = virDomainLookupByUUIDString(c->src->conn, c->dom->uuid);
    if (left) {
        virDomainFree(left);
        vk_error(VK_ERR_LIBVIRT, "domain '%s' is still defined on the source after the migration.",
                 o->domain);
        return fail(res);
    }
    return 0;
}

/* After a failure: is the domain still running on the source? */
static void source_check(struct run_ctx *c, struct migrate_result *res)
{
    enum virt_domain_state st;

    res->source_running = virt_domain_get_state(c->dom, &st) == 0 &&
                          (st == VIRT_DOMAIN_RUNNING || st == VIRT_DOMAIN_PAUSED);
}

static int migrate_call(struct run_ctx *c, const struct migrate_options *o, unsigned int flags,
                        struct migrate_result *res, virTypedParameterPtr params, int nparams)
{
    struct monitor m = {.dom = c->dom->dom, .o = o, .flags = flags, .start_ns = vk_now_ns()};
    unsigned long mflags = migrate_flags(o, c->running);
    virDomainPtr ddom;
    pthread_t tid;
    int ret = 0;

    if (c->running && o->max_downtime_ms &&
        virDomainMigrateSetMaxDowntime(c->dom->dom, o->max_downtime_ms, 0) < 0) {
        virt_error_libvirt("cannot set the maximum downtime of domain '%s'", o->domain);
        return fail(res);
    }
    pthread_mutex_init(&m.lock, NULL);
    pthread_cond_init(&m.cond, NULL);
    if (pthread_create(&tid, NULL, monitor_main, &m) != 0) {
        vk_error(VK_ERR_INTERNAL, "cannot start the migration monitor.");
        return fail(res);
    }
    ddom = virDomainMigrate3(c->dom->dom, c->dst->conn, params, (unsigned int)nparams,
                             (unsigned int)mflags);
    if (!ddom)
        virt_error_libvirt("cannot migrate domain '%s' to '%s'", o->domain, o->to);
    monitor_stop(&m, tid);
    res->seconds = (double)(vk_now_ns() - m.start_ns) / 1e9;
    res->postcopy = m.postcopy;
    res->aborted = m.aborted;
    res->data_total = m.data_total;
    if (!ddom) {
        if (m.aborted)
            vk_error(migrate_cancelled(o) ? VK_ERR_INTERRUPTED : VK_ERR_LIBVIRT,
                     "migration of domain '%s' to '%s' was aborted (%s) after %.1f s.", o->domain,
                     o->to, m.abort_reason, res->seconds);
        ret = fail(res);
    } else {
        res->downtime_ms = c->running ? downtime_read(ddom) : -1;
        ret = post_checks(c, ddom, o, res);
        virDomainFree(ddom);
    }
    pthread_cond_destroy(&m.cond);
    pthread_mutex_destroy(&m.lock);
    return ret;
}

static int64_t job_begin(struct catalog *cat, const struct migrate_options *o)
{
    struct catalog_job job = {.kind = (char *)"migrate",
                              .domain = (char *)o->domain,
                              .target = (char *)o->to,
                              .state = CATALOG_JOB_RUNNING};
    int64_t id;

    if (!cat)
        return 0;
    id = catalog_job_insert(cat, &job);
    return id > 0 ? id : -1;
}

static void job_end(struct catalog *cat, const struct migrate_options *o,
                    struct migrate_result *res, int ret)
{
    enum catalog_job_state st = CATALOG_JOB_SUCCEEDED;

    if (!cat || res->job_id <= 0)
        return;
    if (ret < 0)
        st = res->aborted && migrate_cancelled(o) ? CATALOG_JOB_CANCELLED : CATALOG_JOB_FAILED;
    if (res->downtime_ms >= 0)
        catalog_job_set_downtime(cat, res->job_id, res->downtime_ms);
    if (catalog_job_finish(cat, res->job_id, st, ret < 0 ? res->error : NULL, res->seconds) < 0)
        vk_warn("cannot record the end of migration job %" PRId64 ": %s", res->job_id,
                vk_error_message());
}

/* The name of the host at libvirt URI (registered in the catalog), else
 * the URI itself; a NULL URI is this host. */
static char *host_of(struct catalog *cat, const char *uri)
{
    char *name;

    if (!uri)
        return vk_strdup(catalog_host_name(cat));
    if ((name = catalog_host_by_uri(cat, uri)) != NULL)
        return name;
    vk_error_clear();
    return vk_strdup(uri);
}

void migrate_move_record(struct catalog *cat, const struct migrate_options *o, const char *name,
                         const char *uuid, const char *kind)
{
    CLEANUP_FREE char *from = cat ? host_of(cat, o->from) : NULL;
    CLEANUP_FREE char *to = cat ? host_of(cat, o->to) : NULL;
    struct catalog_move m = {.domain = (char *)name,
                             .uuid = (char *)uuid,
                             .from_host = from,
                             .to_host = to,
                             .kind = (char *)kind};

    if (!cat)
        return;
    if (!to || catalog_move_record(cat, &m) < 0)
        vk_warn("%s: the next backup on host '%s' still continues the chain when the bitmaps "
                "travelled",
                vk_error_message(), to ? to : o->to);
    else
        vk_info("domain '%s' moved from host '%s' to host '%s' (%s): recorded in catalog '%s'",
                name, from ? from : "?", to, kind, catalog_path(cat));
}

static int run_moves(struct run_ctx *c, const struct migrate_options *o, unsigned int flags,
                     struct migrate_result *res)
{
    CLEANUP_FREE char *dest_xml = NULL;
    CLEANUP_FREE char *persist_xml = NULL;
    virTypedParameterPtr params = NULL;
    int nparams = 0, ret;

    if (pre_checks(c, o, flags, res, &dest_xml, &persist_xml) < 0) {
        migrate_report_remove_created(&res->report);
        return -1;
    }
    if (flags & MIGRATE_DRY_RUN)
        return 0;
    if ((res->job_id = job_begin(c->cat, o)) < 0) {
        res->job_id = 0;
        return fail(res);
    }
    if (migrate_params_build(o, c->running ? dest_xml : persist_xml,
                             c->running ? persist_xml : NULL, &params, &nparams) < 0)
        ret = fail(res);
    else
        ret = migrate_call(c, o, flags, res, params, nparams);
    virTypedParamsFree(params, nparams);
    if (ret < 0) {
        source_check(c, res);
        /* A domain that stayed on the source leaves nothing behind. */
        if (res->source_running)
            migrate_report_remove_created(&res->report);
    }
    job_end(c->cat, o, res, ret);
    if (ret == 0)
        migrate_move_record(c->cat, o, c->dom->name, c->dom->uuid,
                            o->move_kind ? o->move_kind : "migrate");
    return ret;
}

int migrate_run(struct catalog *cat, const struct migrate_options *o, unsigned int flags,
                struct migrate_result *res)
{
    struct run_ctx c = {.cat = cat};
    int ret;

    if (o->planned)
        return migrate_planned_run(cat, o, flags, res);
    memset(res, 0, sizeof(*res));
    res->downtime_ms = -1;
    res->dry_run = flags & MIGRATE_DRY_RUN;
    res->domain = vk_strdup(o->domain);
    res->to = vk_strdup(o->to);
    if (!res->domain || !res->to)
        ret = fail(res);
    else if (open_both(&c, o, res) < 0)
        ret = -1;
    else
        ret = run_moves(&c, o, flags, res);
    res->ok = ret == 0;
    if (ret < 0 && res->error)
        vk_error(vk_error_code() ? vk_error_code() : VK_ERR_LIBVIRT, "%s", res->error);
    virt_domain_free(c.dom);
    virt_conn_close(c.dst);
    virt_conn_close(c.src);
    free(c.connect_error);
    return ret;
}
