/* virtkeep - per-domain status against the objectives (src/status.h). */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/units.h"
#include "common/util.h"
#include "src/api/api.h"
#include "src/conf/conf.h"
#include "src/sched/sched.h"

static void domain_clear(struct status_domain *d)
{
    free(d->domain);
    free(d->policy);
    free(d->last_backup);
    free(d->rpo_reason);
    free(d->rto_reason);
    free(d->next_target);
    free(d->next_reason);
    free(d->host);
    memset(d, 0, sizeof *d);
}

void status_report_clear(struct status_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        domain_clear(&r->items[i]);
    free(r->items);
    memset(r, 0, sizeof *r);
}

size_t status_report_violations(const struct status_report *r)
{
    size_t n = 0;

    for (size_t i = 0; i < r->count; i++)
        n += r->items[i].rpo_violated + r->items[i].rto_violated;
    return n;
}

/* Why the objectives are not met, in words. */
static int reasons_set(struct status_domain *d)
{
    char a[VK_DURATION_BUFLEN], b[VK_DURATION_BUFLEN];

    if (d->rpo_violated) {
        if (!d->last_backup)
            d->rpo_reason = vk_asprintf("domain '%s' has never been backed up", d->domain);
        else
            d->rpo_reason =
                vk_asprintf("the latest good backup '%s' is %s old, more than the RPO (%s)%s",
                            d->last_backup, vk_duration_format((uint64_t)d->exposure, a, sizeof a),
                            vk_duration_format(d->rpo, b, sizeof b),
                            d->failures ? " after failed backups" : "");
        if (!d->rpo_reason)
            return -1;
    }
    if (d->rto_violated) {
        d->rto_reason = vk_asprintf(
            "restoring the current chain of %u backups would take about %s, more than the RTO "
            "(%s)",
            d->chain_length, vk_duration_format((uint64_t)(d->rto_estimate + 0.5), a, sizeof a),
            vk_duration_format(d->rto, b, sizeof b));
        if (!d->rto_reason)
            return -1;
    }
    return 0;
}

static int next_job_set(struct status_domain *d, const struct sched_input *in, int64_t now,
                        const struct api_ops *ops)
{
    struct sched_job job = {0};
    int r;

    if (ops && ops->next_job)
        r = ops->next_job(ops->ctx, d->domain, &job);
    else
        r = sched_next(in, now, &job);
    if (r < 0) {
        sched_job_clear(&job);
        return -1;
    }
    d->next_kind = job.kind;
    d->next_due = job.kind == SCHED_NONE ? 0 : job.due;
    d->next_target = VK_STEAL(job.target);
    d->next_reason = VK_STEAL(job.reason);
    sched_job_clear(&job);
    return 0;
}

/* The host D last ran on, and whether that host is lost. */
static int host_set(struct catalog *cat, const char *name, int64_t now, struct status_domain *d)
{
    struct catalog_domain *dom = catalog_domain_get(cat, name);
    struct catalog_hosts *hosts = NULL;

    if (!dom)
        return vk_error_code() == VK_ERR_NOT_FOUND ? 0 : -1;
    d->host = VK_STEAL(dom->host);
    catalog_domain_free(dom);
    if (!d->host || catalog_host_list(cat, &hosts) < 0)
        return d->host ? -1 : 0;
    for (size_t i = 0; i < hosts->count; i++)
        if (strcmp(hosts->items[i].name, d->host) == 0 && catalog_host_lost(&hosts->items[i], now))
            d->host_unreachable_since = hosts->items[i].heartbeat;
    catalog_hosts_free(hosts);
    return 0;
}

static int domain_compute(struct catalog *cat, const struct config *cfg, const char *name,
                          int64_t now, const struct api_ops *ops, struct status_domain *d)
{
    struct sched_input_owned owned = {0};
    struct sched_status st = {0};
    const struct config_policy *p;
    int r = -1;

    if (!(d->domain = vk_strdup(name)) || sched_input_load(cat, cfg, name, &owned) < 0)
        return -1;
    p = owned.in.policy;
    if (sched_status_compute(&owned.in, now, &st) < 0)
        goto out;
    if (p && !(d->policy = vk_strdup(p->name)))
        goto out;
    d->last_backup = VK_STEAL(st.last_backup);
    d->last_success = st.last_success;
    d->exposure = st.exposure;
    d->rpo = p ? p->rpo : 0;
    d->rto = p ? p->rto : 0;
    d->rto_estimate = st.rto_estimate;
    d->chain_length = st.chain_length;
    d->failures = st.failures;
    d->rpo_violated = st.rpo_violated;
    d->rto_violated = st.rto_violated;
    if (p && p->immutable_days && d->last_backup)
        d->immutable_until = d->last_success + (int64_t)p->immutable_days * 86400;
    if (reasons_set(d) < 0 || next_job_set(d, &owned.in, now, ops) < 0 ||
        host_set(cat, name, now, d) < 0)
        goto out;
    r = 0;
out:
    sched_status_clear(&st);
    sched_input_owned_clear(&owned);
    return r;
}

/* DOMAIN must be configured or known to the catalog. */
static int domain_check(struct catalog *cat, const struct config *cfg, const char *domain)
{
    struct catalog_domain *d;

    if (cfg && config_domain_find(cfg, domain))
        return 0;
    d = catalog_domain_get(cat, domain);
    if (!d) {
        if (vk_error_code() == VK_ERR_NOT_FOUND)
            vk_error(VK_ERR_NOT_FOUND,
                     "domain '%s' is neither configured nor recorded in the catalog", domain);
        return -1;
    }
    catalog_domain_free(d);
    return 0;
}

static int report_add(struct status_report *out, struct catalog *cat, const struct config *cfg,
                      const char *name, const struct api_ops *ops)
{
    struct status_domain *items = vk_realloc_array(out->items, out->count + 1, sizeof *items);

    if (!items)
        return -1;
    out->items = items;
    memset(&items[out->count], 0, sizeof *items);
    if (domain_compute(cat, cfg, name, out->now, ops, &items[out->count]) < 0) {
        domain_clear(&items[out->count]);
        return -1;
    }
    out->count++;
    return 0;
}

/* Several hosts on one catalog: the domains that last ran on another host
 * and that this configuration does not name, so that status covers the
 * estate (their objectives are those of this configuration: none). */
static int others_add(struct status_report *out, struct catalog *cat, const struct config *cfg,
                      const struct api_ops *ops)
{
    struct catalog_domains *doms = NULL;
    int r = 0;

    if (catalog_domain_list(cat, &doms) < 0)
        return -1;
    for (size_t i = 0; r == 0 && i < doms->count; i++) {
        const struct catalog_domain *d = &doms->items[i];
        if (d->host && strcmp(d->host, catalog_host_name(cat)) != 0 &&
            !(cfg && config_domain_find(cfg, d->name)))
            r = report_add(out, cat, cfg, d->name, ops);
    }
    catalog_domains_free(doms);
    return r;
}

int status_compute(struct catalog *cat, const struct config *cfg, const char *domain, int64_t now,
                   const struct api_ops *ops, struct status_report *out, unsigned int flags)
{
    (void)flags;
    memset(out, 0, sizeof *out);
    out->now = now;
    out->daemon = ops != NULL;
    if (domain) {
        if (domain_check(cat, cfg, domain) < 0 || report_add(out, cat, cfg, domain, ops) < 0)
            goto fail;
        return 0;
    }
    for (size_t i = 0; cfg && i < cfg->n_domains; i++) {
        if (!cfg->domains[i].policy)
            continue;
        if (report_add(out, cat, cfg, cfg->domains[i].name, ops) < 0)
            goto fail;
    }
    if (others_add(out, cat, cfg, ops) < 0)
        goto fail;
    return 0;
fail:
    status_report_clear(out);
    return -1;
}

/* ---- JSON ------------------------------------------------------------- */

static struct json_object *jpos(int64_t v)
{
    return v >= 0 ? json_object_new_int64(v) : NULL;
}

static struct json_object *next_json(const struct status_domain *d)
{
    struct json_object *o;

    if (d->next_kind == SCHED_NONE && !d->next_reason)
        return NULL;
    o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(sched_kind_name(d->next_kind)));
    json_object_object_add(o, "due",
                           d->next_kind == SCHED_NONE ? NULL : json_object_new_int64(d->next_due));
    json_object_object_add(o, "target", vk_json_string_or_null(d->next_target));
    json_object_object_add(o, "reason", vk_json_string_or_null(d->next_reason));
    return o;
}

static struct json_object *domain_json(const struct status_domain *d)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "domain", vk_json_string_or_null(d->domain));
    json_object_object_add(o, "policy", vk_json_string_or_null(d->policy));
    json_object_object_add(o, "last_backup", vk_json_string_or_null(d->last_backup));
    json_object_object_add(o, "last_success", d->last_backup ? jpos(d->last_success) : NULL);
    json_object_object_add(o, "rpo_exposure", jpos(d->exposure));
    json_object_object_add(o, "rpo", d->rpo ? json_object_new_int64((int64_t)d->rpo) : NULL);
    json_object_object_add(o, "rpo_violated", json_object_new_boolean(d->rpo_violated));
    json_object_object_add(o, "rpo_reason", vk_json_string_or_null(d->rpo_reason));
    json_object_object_add(o, "rto_estimate",
                           d->rto_estimate >= 0 ? json_object_new_double(d->rto_estimate) : NULL);
    json_object_object_add(o, "rto", d->rto ? json_object_new_int64((int64_t)d->rto) : NULL);
    json_object_object_add(o, "rto_violated", json_object_new_boolean(d->rto_violated));
    json_object_object_add(o, "rto_reason", vk_json_string_or_null(d->rto_reason));
    json_object_object_add(o, "chain_length", json_object_new_int64(d->chain_length));
    json_object_object_add(o, "failures", json_object_new_int64(d->failures));
    json_object_object_add(o, "immutable_until",
                           d->immutable_until ? jpos(d->immutable_until) : NULL);
    json_object_object_add(o, "next_job", next_json(d));
    json_object_object_add(o, "host", vk_json_string_or_null(d->host));
    json_object_object_add(
        o, "host_unreachable_since",
        d->host_unreachable_since ? json_object_new_int64(d->host_unreachable_since) : NULL);
    return o;
}

struct json_object *status_report_json(const struct status_report *r)
{
    struct json_object *o = json_object_new_object(), *arr = json_object_new_array();

    for (size_t i = 0; i < r->count; i++)
        json_object_array_add(arr, domain_json(&r->items[i]));
    json_object_object_add(o, "now", json_object_new_int64(r->now));
    json_object_object_add(o, "daemon", json_object_new_boolean(r->daemon));
    json_object_object_add(o, "violations",
                           json_object_new_int64((int64_t)status_report_violations(r)));
    json_object_object_add(o, "domains", arr);
    return o;
}

/* ---- JSON back to a report -------------------------------------------- */

static int64_t get_int(struct json_object *o, const char *key, int64_t dflt)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : dflt;
}

static double get_double(struct json_object *o, const char *key, double dflt)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_double(v) : dflt;
}

static bool get_bool(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* A copy of the string KEY, NULL when absent; -1 on ENOMEM. */
static int get_str(struct json_object *o, const char *key, char **out)
{
    struct json_object *v;

    *out = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return 0;
    *out = vk_strdup(json_object_get_string(v));
    return *out ? 0 : -1;
}

static int kind_parse(const char *s, enum sched_kind *kind)
{
    static const enum sched_kind kinds[] = {SCHED_NONE, SCHED_FULL, SCHED_INC, SCHED_COPY};

    for (size_t i = 0; i < VK_ARRAY_SIZE(kinds); i++)
        if (s && strcmp(s, sched_kind_name(kinds[i])) == 0) {
            *kind = kinds[i];
            return 0;
        }
    return -1;
}

static int next_from_json(struct json_object *o, struct status_domain *d)
{
    struct json_object *n, *k;

    d->next_kind = SCHED_NONE;
    if (!json_object_object_get_ex(o, "next_job", &n) || !n)
        return 0;
    if (!json_object_object_get_ex(n, "kind", &k) ||
        kind_parse(json_object_get_string(k), &d->next_kind) < 0) {
        vk_error(VK_ERR_INVALID, "the status of domain '%s' has an unknown next job kind",
                 d->domain);
        return -1;
    }
    d->next_due = get_int(n, "due", 0);
    if (get_str(n, "target", &d->next_target) < 0 || get_str(n, "reason", &d->next_reason) < 0)
        return -1;
    return 0;
}

static int domain_from_json(struct json_object *o, struct status_domain *d)
{
    if (!json_object_is_type(o, json_type_object)) {
        vk_error(VK_ERR_INVALID, "a status entry is not a JSON object");
        return -1;
    }
    if (get_str(o, "domain", &d->domain) < 0)
        return -1;
    if (!d->domain) {
        vk_error(VK_ERR_INVALID, "a status entry has no domain name");
        return -1;
    }
    if (get_str(o, "policy", &d->policy) < 0 || get_str(o, "last_backup", &d->last_backup) < 0 ||
        get_str(o, "rpo_reason", &d->rpo_reason) < 0 ||
        get_str(o, "rto_reason", &d->rto_reason) < 0 || get_str(o, "host", &d->host) < 0)
        return -1;
    d->host_unreachable_since = get_int(o, "host_unreachable_since", 0);
    d->last_success = get_int(o, "last_success", 0);
    d->exposure = get_int(o, "rpo_exposure", -1);
    d->rpo = (uint64_t)get_int(o, "rpo", 0);
    d->rto = (uint64_t)get_int(o, "rto", 0);
    d->rto_estimate = get_double(o, "rto_estimate", -1);
    d->chain_length = (unsigned int)get_int(o, "chain_length", 0);
    d->failures = (unsigned int)get_int(o, "failures", 0);
    d->immutable_until = get_int(o, "immutable_until", 0);
    d->rpo_violated = get_bool(o, "rpo_violated");
    d->rto_violated = get_bool(o, "rto_violated");
    return next_from_json(o, d);
}

int status_report_from_json(struct json_object *j, struct status_report *out)
{
    struct json_object *arr;
    size_t n;

    memset(out, 0, sizeof *out);
    if (!json_object_is_type(j, json_type_object) ||
        !json_object_object_get_ex(j, "domains", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        vk_error(VK_ERR_INVALID, "the status report has no list of domains");
        return -1;
    }
    out->now = get_int(j, "now", 0);
    out->daemon = get_bool(j, "daemon");
    n = json_object_array_length(arr);
    if (n && !(out->items = vk_calloc(n, sizeof *out->items)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        out->count = i + 1;
        if (domain_from_json(json_object_array_get_idx(arr, i), &out->items[i]) < 0) {
            status_report_clear(out);
            return -1;
        }
    }
    return 0;
}
