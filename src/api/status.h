/* virtkeep - where each domain stands against its objectives: the rows of
 * `virtkeep status` and of the daemon's GET /v1/status, and the numbers of
 * /metrics.  One computation (sched_status_compute over the input that
 * sched_input_load builds) serves the daemon and the CLI when no daemon
 * answers, so both always show the same values.
 *
 * A row exists for each [domain] of the configuration that has a policy, or
 * for the one domain asked for (which needs no policy: it then has no
 * objectives and violates none).  Times are Unix seconds.
 */
#ifndef VIRTKEEP_STATUS_H
#define VIRTKEEP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/sched/sched.h"

struct catalog;
struct config;
struct json_object;
struct api_ops;

struct status_domain {
    char *domain;
    char *policy;         /* NULL: no policy, no objectives */
    char *last_backup;    /* latest good backup, or NULL */
    int64_t last_success; /* its start (the point in time it holds), 0 when none */
    int64_t exposure;     /* now - last_success, -1 when never backed up */
    uint64_t rpo;         /* objective, seconds; 0 none */
    double rto_estimate;  /* restore of the current chain, seconds; -1 unknown */
    uint64_t rto;         /* objective, seconds; 0 none */
    unsigned int chain_length;
    unsigned int failures; /* consecutive failed backups */
    bool rpo_violated, rto_violated;
    char *rpo_reason, *rto_reason; /* why, when violated; else NULL */
    /* The next job: kind SCHED_NONE when there is none. */
    enum sched_kind next_kind;
    int64_t next_due;
    char *next_target;
    char *next_reason;
};

struct status_report {
    int64_t now;
    bool daemon; /* computed by virtkeepd (true) or offline by the CLI */
    size_t count;
    struct status_domain *items;
};

/* Compute the report at NOW for DOMAIN (every [domain] with a policy when
 * NULL).  The next job comes from OPS->next_job (the daemon's scheduler)
 * when OPS is not NULL, else from sched_next().  An unknown DOMAIN
 * (neither configured nor in the catalog) fails with VK_ERR_NOT_FOUND. */
int status_compute(struct catalog *cat, const struct config *cfg, const char *domain, int64_t now,
                   const struct api_ops *ops, struct status_report *out, unsigned int flags);
void status_report_clear(struct status_report *r);
/* How many objectives are violated over the report. */
size_t status_report_violations(const struct status_report *r);

/* The JSON form (GET /v1/status, `virtkeep status --json`):
 * {"now", "daemon", "violations", "domains": [{"domain", "policy",
 * "last_backup", "last_success", "rpo_exposure", "rpo", "rpo_violated",
 * "rpo_reason", "rto_estimate", "rto", "rto_violated", "rto_reason",
 * "chain_length", "failures", "next_job": {"kind", "due", "target",
 * "reason"} | null}]}.  Unknown values are null. */
struct json_object *status_report_json(const struct status_report *r);
/* And back (what the CLI got from the daemon); VK_ERR_INVALID when malformed. */
int status_report_from_json(struct json_object *j, struct status_report *out);

#endif
