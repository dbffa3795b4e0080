/* virtkeep - /metrics in the Prometheus text format (src/metrics.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/api/api.h"

/* ---- failure reasons -------------------------------------------------- */

struct reason_rule {
    const char *reason;
    const char *needles[6];
};

/* First match wins: the more specific kinds first. */
static const struct reason_rule reason_rules[] = {
    {"interrupted", {"interrupted", "cancelled", "canceled", "killed", "is gone", NULL}},
    {"no-space", {"no space", "quota", "disk full", NULL}},
    {"permission", {"permission denied", "not permitted", NULL}},
    {"auth", {"authentic", "host key", "credential", "access denied", "signature", NULL}},
    {"network", {"connection", "timed out", "unreachable", "resolve", "network", NULL}},
    {"busy", {"locked", "busy", NULL}},
    {"corrupt", {"checksum", "corrupt", "mismatch", "truncated", "digest", NULL}},
    {"not-found", {"no such", "not found", "does not exist", "unknown", "missing", NULL}},
    {"libvirt", {"libvirt", "qemu", "checkpoint", NULL}},
    {"io", {"input/output", "cannot write", "cannot read", NULL}},
};

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

const char *metrics_failure_reason(const char *error)
{
    if (!error || !*error)
        return "other";
    for (size_t i = 0; i < VK_ARRAY_SIZE(reason_rules); i++)
        for (const char *const *n = reason_rules[i].needles; *n; n++)
            if (contains_nocase(error, *n))
                return reason_rules[i].reason;
    return "other";
}

void metrics_label_escape(FILE *fp, const char *value)
{
    for (const char *s = value ? value : ""; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", fp);
        else if (*s == '"')
            fputs("\\\"", fp);
        else if (*s == '\n')
            fputs("\\n", fp);
        else
            fputc(*s, fp);
    }
}

/* ---- a family of series, keyed by their rendered labels --------------- */

struct series {
    char *labels; /* domain="web1",kind="backup" */
    double value;
    int64_t stamp; /* for "last" series: the finish time of the job it shows */
};

struct family {
    const char *name, *type, *help;
    struct series *items;
    size_t count;
};

static void family_clear(struct family *f)
{
    for (size_t i = 0; i < f->count; i++)
        free(f->items[i].labels);
    free(f->items);
    f->items = NULL;
    f->count = 0;
}

/* Render NAMES[i]="VALUES[i]" pairs (N of them). */
static char *labels_make(const char *const *names, const char *const *values, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    if (!fp) {
        vk_error_errno(errno, "cannot render metric labels");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        fprintf(fp, "%s%s=\"", i ? "," : "", names[i]);
        metrics_label_escape(fp, values[i]);
        fputc('"', fp);
    }
    if (fclose(fp) != 0) {
        free(buf);
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    return buf;
}

/* The series of F with LABELS, created at 0 when new (LABELS is taken). */
static struct series *family_get(struct family *f, char *labels)
{
    struct series *items;

    if (!labels)
        return NULL;
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->items[i].labels, labels) == 0) {
            free(labels);
            return &f->items[i];
        }
    items = vk_realloc_array(f->items, f->count + 1, sizeof *items);
    if (!items) {
        free(labels);
        return NULL;
    }
    f->items = items;
    items[f->count] = (struct series){.labels = labels};
    return &items[f->count++];
}

static int series_cmp(const void *a, const void *b)
{
    return strcmp(((const struct series *)a)->labels, ((const struct series *)b)->labels);
}

static void family_print(FILE *fp, struct family *f)
{
    if (!f->count)
        return;
    qsort(f->items, f->count, sizeof *f->items, series_cmp);
    fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
    for (size_t i = 0; i < f->count; i++)
        fprintf(fp, "%s{%s} %.15g\n", f->name, f->items[i].labels, f->items[i].value);
}

/* ---- per-domain gauges from the status report ------------------------- */

enum {
    F_LAST_SUCCESS,
    F_EXPOSURE,
    F_RPO,
    F_RTO_EST,
    F_RTO,
    F_VIOLATED,
    F_CHAIN,
    F_FAILURES,
    F_LAST_DURATION,
    F_LAST_BYTES,
    F_JOBS_TOTAL,
    F_BYTES_TOTAL,
    F_FAILURES_TOTAL,
    F_HOST_HEARTBEAT,
    F_HOST_UP,
    F_HOST_JOBS,
    F_DOMAIN_HOST,
    F_COUNT,
};

static const struct family families_init[F_COUNT] = {
    [F_LAST_SUCCESS] = {"virtkeep_last_success_timestamp_seconds", "gauge",
                        "Start time of the latest good backup (the point in time it holds)."},
    [F_EXPOSURE] = {"virtkeep_rpo_exposure_seconds", "gauge",
                    "Data that would be lost now: seconds since the latest good backup."},
    [F_RPO] = {"virtkeep_rpo_objective_seconds", "gauge", "The recovery point objective."},
    [F_RTO_EST] = {"virtkeep_rto_estimate_seconds", "gauge",
                   "Estimated time to restore the current chain."},
    [F_RTO] = {"virtkeep_rto_objective_seconds", "gauge", "The recovery time objective."},
    [F_VIOLATED] = {"virtkeep_objective_violated", "gauge",
                    "1 when the objective is not met now, else 0."},
    [F_CHAIN] = {"virtkeep_chain_length", "gauge", "Backups in the current chain."},
    [F_FAILURES] = {"virtkeep_consecutive_failures", "gauge",
                    "Failed backups since the latest good one."},
    [F_LAST_DURATION] = {"virtkeep_last_job_duration_seconds", "gauge",
                         "Duration of the latest finished job of this domain, kind and level."},
    [F_LAST_BYTES] = {"virtkeep_last_job_bytes", "gauge",
                      "Bytes stored or moved by the latest finished job of this domain, kind "
                      "and level."},
    [F_JOBS_TOTAL] = {"virtkeep_jobs_total", "counter", "Finished jobs recorded in the catalog."},
    [F_BYTES_TOTAL] = {"virtkeep_job_bytes_total", "counter",
                       "Bytes stored or moved by the succeeded jobs recorded in the catalog."},
    [F_FAILURES_TOTAL] = {"virtkeep_job_failures_total", "counter",
                          "Failed jobs recorded in the catalog, by reason."},
    [F_HOST_HEARTBEAT] = {"virtkeep_host_heartbeat_timestamp_seconds", "gauge",
                          "Last heartbeat of each host's virtkeepd on the catalog."},
    [F_HOST_UP] = {"virtkeep_host_up", "gauge",
                   "1 while the host heartbeats, 0 once silent for longer than its leases."},
    [F_HOST_JOBS] = {"virtkeep_host_jobs_running", "gauge", "Jobs running on each host."},
    [F_DOMAIN_HOST] = {"virtkeep_domain_host", "gauge",
                       "1 for the host each domain last ran on (join on domain)."},
};

static int gauge_set(struct family *f, const char *domain, const char *objective, double v)
{
    static const char *const names[] = {"domain", "objective"};
    const char *values[] = {domain, objective};
    struct series *s = family_get(f, labels_make(names, values, objective ? 2 : 1));

    if (!s)
        return -1;
    s->value = v;
    return 0;
}

static int domain_gauges(struct family *fam, const struct status_domain *d)
{
    const char *n = d->domain;

    if ((d->last_backup && gauge_set(&fam[F_LAST_SUCCESS], n, NULL, (double)d->last_success)) ||
        (d->exposure >= 0 && gauge_set(&fam[F_EXPOSURE], n, NULL, (double)d->exposure)) ||
        (d->rpo && gauge_set(&fam[F_RPO], n, NULL, (double)d->rpo)) ||
        (d->rto_estimate >= 0 && gauge_set(&fam[F_RTO_EST], n, NULL, d->rto_estimate)) ||
        (d->rto && gauge_set(&fam[F_RTO], n, NULL, (double)d->rto)) ||
        (d->rpo && gauge_set(&fam[F_VIOLATED], n, "rpo", d->rpo_violated)) ||
        (d->rto && gauge_set(&fam[F_VIOLATED], n, "rto", d->rto_violated)) ||
        gauge_set(&fam[F_CHAIN], n, NULL, d->chain_length) ||
        gauge_set(&fam[F_FAILURES], n, NULL, d->failures))
        return -1;
    return 0;
}

/* ---- per-job series from the catalog ---------------------------------- */

struct job_fact {
    const char *domain, *kind, *level;
    const char *outcome; /* "succeeded", "failed", "cancelled" */
    const char *error;
    double seconds;
    uint64_t bytes;
    int64_t finished;
};

static int job_add(struct family *fam, const struct job_fact *j)
{
    static const char *const names[] = {"domain", "kind", "level"};
    static const char *const onames[] = {"domain", "kind", "outcome"};
    static const char *const rnames[] = {"domain", "kind", "reason"};
    const char *v[] = {j->domain ? j->domain : "", j->kind, j->level};
    const char *ov[] = {v[0], j->kind, j->outcome};
    const char *rv[] = {v[0], j->kind, metrics_failure_reason(j->error)};
    struct series *s;

    if (!(s = family_get(&fam[F_JOBS_TOTAL], labels_make(onames, ov, 3))))
        return -1;
    s->value++;
    if (strcmp(j->outcome, "failed") == 0) {
        if (!(s = family_get(&fam[F_FAILURES_TOTAL], labels_make(rnames, rv, 3))))
            return -1;
        s->value++;
        return 0;
    }
    if (strcmp(j->outcome, "succeeded") != 0)
        return 0;
    if (!(s = family_get(&fam[F_BYTES_TOTAL], labels_make(names, v, 2))))
        return -1;
    s->value += (double)j->bytes;
    for (int f = F_LAST_DURATION; f <= F_LAST_BYTES; f++) {
        if (!(s = family_get(&fam[f], labels_make(names, v, 3))))
            return -1;
        if (s->stamp <= j->finished) {
            s->stamp = j->finished;
            s->value = f == F_LAST_DURATION ? j->seconds : (double)j->bytes;
        }
    }
    return 0;
}

static int backups_add(struct family *fam, const struct catalog_backups *all)
{
    for (size_t i = 0; i < all->count; i++) {
        const struct catalog_backup *b = &all->items[i];
        struct job_fact j = {
            .domain = b->domain,
            .kind = "backup",
            .level = catalog_level_name(b->level),
            .error = b->error,
            .seconds = b->finished > b->started ? (double)(b->finished - b->started) : 0,
            .bytes = b->bytes_stored,
            .finished = b->finished,
        };

        if (b->status == CATALOG_STATUS_RUNNING)
            continue;
        j.outcome = b->status == CATALOG_STATUS_COMMITTED ? "succeeded" : "failed";
        if (job_add(fam, &j) < 0)
            return -1;
    }
    return 0;
}

static const char *backup_level(const struct catalog_backups *all, const char *id)
{
    for (size_t i = 0; id && i < all->count; i++)
        if (strcmp(all->items[i].id, id) == 0)
            return catalog_level_name(all->items[i].level);
    return "none";
}

/* Jobs other than backups (the backups table has those, with their level). */
static int jobs_add(struct family *fam, const struct catalog_jobs *jobs,
                    const struct catalog_backups *all)
{
    for (size_t i = 0; i < jobs->count; i++) {
        const struct catalog_job *c = &jobs->items[i];
        struct job_fact j = {
            .domain = c->domain,
            .kind = c->kind ? c->kind : "unknown",
            .level = backup_level(all, c->backup_id),
            .outcome = catalog_job_state_name(c->state),
            .error = c->error,
            .seconds = c->elapsed_seconds,
            .bytes = c->progress_done,
            .finished = c->finished,
        };

        if (c->state == CATALOG_JOB_QUEUED || c->state == CATALOG_JOB_RUNNING ||
            strcmp(j.kind, "backup") == 0)
            continue;
        if (job_add(fam, &j) < 0)
            return -1;
    }
    return 0;
}

static int labelled(struct family *f, const char *n1, const char *v1, const char *n2,
                    const char *v2, double value)
{
    const char *names[] = {n1, n2}, *values[] = {v1, v2};
    struct series *s = family_get(f, labels_make(names, values, n2 ? 2 : 1));

    if (!s)
        return -1;
    s->value = value;
    return 0;
}

/* Several hosts on one catalog: each host, and where each domain runs. */
static int hosts_add(struct family *fam, struct catalog *cat, const struct status_report *st)
{
    struct catalog_hosts *hosts = NULL;
    int r = 0;

    if (catalog_host_list(cat, &hosts) < 0)
        return -1;
    for (size_t i = 0; r == 0 && i < hosts->count; i++) {
        const struct catalog_host *h = &hosts->items[i];
        r = labelled(&fam[F_HOST_HEARTBEAT], "host", h->name, "version",
                     h->version ? h->version : "", (double)h->heartbeat) < 0 ||
                    labelled(&fam[F_HOST_UP], "host", h->name, NULL, NULL,
                             catalog_host_lost(h, st->now) ? 0 : 1) < 0 ||
                    labelled(&fam[F_HOST_JOBS], "host", h->name, NULL, NULL, h->running_jobs) < 0
                ? -1
                : 0;
    }
    for (size_t i = 0; r == 0 && i < st->count; i++)
        if (st->items[i].host)
            r = labelled(&fam[F_DOMAIN_HOST], "domain", st->items[i].domain, "host",
                         st->items[i].host, 1);
    catalog_hosts_free(hosts);
    return r;
}

static int families_fill(struct family *fam, struct catalog *cat, const struct status_report *st)
{
    struct catalog_backups *all = NULL;
    struct catalog_jobs *jobs = NULL;
    int r = -1;

    for (size_t i = 0; i < st->count; i++)
        if (domain_gauges(fam, &st->items[i]) < 0)
            return -1;
    if (catalog_backup_list(cat, NULL, 0, &all) < 0 || catalog_job_list(cat, NULL, 0, 0, &jobs) < 0)
        goto out;
    if (backups_add(fam, all) < 0 || jobs_add(fam, jobs, all) < 0 || hosts_add(fam, cat, st) < 0)
        goto out;
    r = 0;
out:
    catalog_backups_free(all);
    catalog_jobs_free(jobs);
    return r;
}

int metrics_render(struct catalog *cat, const struct status_report *st, size_t jobs_running,
                   char **out, size_t *len)
{
    struct family fam[F_COUNT];
    FILE *fp;
    int r = -1;

    memcpy(fam, families_init, sizeof fam);
    *out = NULL;
    *len = 0;
    if (families_fill(fam, cat, st) < 0)
        goto out;
    if (!(fp = open_memstream(out, len))) {
        vk_error_errno(errno, "cannot render the metrics");
        goto out;
    }
    for (int f = 0; f < F_COUNT; f++)
        family_print(fp, &fam[f]);
    fprintf(fp,
            "# HELP virtkeep_jobs_running Jobs the daemon runs now.\n"
            "# TYPE virtkeep_jobs_running gauge\nvirtkeep_jobs_running %zu\n",
            jobs_running);
    if (fclose(fp) != 0) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        free(*out);
        *out = NULL;
        goto out;
    }
    r = 0;
out:
    for (int f = 0; f < F_COUNT; f++)
        family_clear(&fam[f]);
    return r;
}
