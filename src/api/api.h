/* virtkeep - the daemon's control API: the server, its client, the status report
 * and the Prometheus metrics.
 */
#ifndef VIRTKEEP_API_H
#define VIRTKEEP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"
#include "src/sched/sched.h"

/* ======== virtkeepd's control API: the server the daemon runs and the
 * client the CLI (`virtkeep status`, `virtkeep jobs`) uses.
 *
 * Transport: HTTP/1.1 served by libmicrohttpd, on a unix socket (default;
 * access by file mode 0660) and, when [daemon] listen is set, on a loopback
 * TCP address where every request needs "Authorization: Bearer TOKEN", the
 * token being read from [daemon] token_file.  Nothing binds beyond loopback.
 *
 * Endpoints (JSON unless said):
 *   GET  /v1/health              {"ok":true,"pid":N,"version":"..."}
 *   GET  /v1/status              per domain: last good backup, RPO exposure
 *                                against the objective, estimated RTO
 *                                against the objective, next job, chain
 *                                length, violations
 *   GET  /v1/jobs                running/queued jobs of the daemon, then
 *                                recent ones from the catalog
 *   POST /v1/jobs/ID/cancel      cancel a running job
 *   GET  /metrics                Prometheus text format 0.0.4
 *
 * The server runs in its own thread(s); the ops below are called from them
 * and must be thread-safe.  The server opens its own catalog connection.
 */

struct config;
struct catalog_job;
struct catalog_jobs;
struct json_object;

/* Where virtkeepd listens, and `virtkeep status` looks, by default. */
#define API_DEFAULT_SOCKET "/run/virtkeep/virtkeepd.sock"

/* A job the daemon runs now (or has queued). */
struct api_job {
    int64_t id; /* catalog job id */
    char *kind; /* "backup", "copy", "prune", "drill" */
    char *domain, *target, *backup_id, *level;
    char *state; /* "queued", "running", "cancelling" */
    int64_t pid; /* the worker process, 0 when queued */
    int64_t started;
};
void api_job_clear(struct api_job *job);

/* What the server asks of the daemon.  Each returns 0, or -1 with the
 * error recorded (vk_error).  CTX is passed back as given. */
struct api_ops {
    void *ctx;
    /* The daemon's jobs now: *JOBS malloc'd (api_job_clear each, free). */
    int (*jobs_active)(void *ctx, struct api_job **jobs, size_t *n);
    /* Cancel job ID: VK_ERR_NOT_FOUND when the daemon does not run it. */
    int (*job_cancel)(void *ctx, int64_t id);
    /* The next job the scheduler has for DOMAIN (kind SCHED_NONE when none). */
    int (*next_job)(void *ctx, const char *domain, struct sched_job *out);
};

struct api_server_options {
    const char *socket_path; /* unix socket to listen on, or NULL */
    const char *listen;      /* "127.0.0.1:PORT" / "[::1]:PORT", or NULL */
    const char *token_file;  /* required with LISTEN */
    const char *catalog_path;
    const struct config *config; /* borrowed; valid until api_server_stop */
};

/* Start listening (both listeners when both are set).  A socket file
 * nothing answers on is replaced; one a server answers on fails with
 * VK_ERR_BUSY, and so does a path that is not a socket.  The socket gets
 * mode 0660.  LISTEN must be a loopback address; the token file must be a
 * regular file of mode 0600 (else VK_ERR_PERMISSION).  OPS may be NULL
 * (no daemon behind: no jobs).  Returns NULL with the error recorded. */
struct api_server;
struct api_server *api_server_start(const struct api_server_options *opts,
                                    const struct api_ops *ops, unsigned int flags);
/* Apply new options (SIGHUP): the configuration, the token, the listen
 * address (SOCKET_PATH and CATALOG_PATH cannot change).  What is new is
 * bound and serving before what it replaces stops, so that on failure
 * (the port is taken, a bad token file: -1, the error recorded) the server
 * goes on as before, with only the configuration replaced.  The replaced
 * configuration must stay valid until api_server_stop. */
int api_server_reload(struct api_server *srv, const struct api_server_options *opts);
/* The TCP port listened on (useful with port 0), or -1 without LISTEN. */
int api_server_port(const struct api_server *srv);
/* Stop serving and remove the socket file. */
void api_server_stop(struct api_server *srv);

/* The JSON forms the server sends, shared with the CLI.  GET /v1/jobs is
 * {"active": [api_job_json...], "recent": [api_catalog_job_json...]};
 * errors are {"error": MESSAGE, "code": HTTP_STATUS}. */
struct json_object *api_job_json(const struct api_job *job);
struct json_object *api_catalog_job_json(const struct catalog_job *job);
struct json_object *api_jobs_json(const struct api_job *active, size_t n,
                                  const struct catalog_jobs *recent);
/* The HTTP status for an error code: 400 invalid, 404 not found, 409 busy,
 * 401 auth, 500 anything else. */
unsigned int api_http_status(enum vk_error_code code);

/* ======== the CLI's side of virtkeepd's control API (src/api.h), over
 * libcurl: HTTP on the unix socket, or, only when the caller names it, on
 * an http://HOST:PORT address with the bearer token.  The token is sent
 * only after the connection is made and the server's end of it is found to
 * belong to root, to this user or to the owner of the token file
 * (/proc/net/tcp): a local user who binds the port while virtkeepd is
 * stopped gets nothing.
 */

struct config;
struct json_object;

struct api_endpoint {
    char *socket_path; /* unix socket, or NULL: TCP */
    char *url;         /* "http://localhost" on the socket, "http://HOST:PORT" on TCP */
    char *token_file;  /* TCP: [daemon] token_file (read for each request), or NULL */
    char *name;        /* for messages: the socket path or the address */
};

struct api_client {
    struct api_endpoint ends[2]; /* tried in order until one answers */
    unsigned int count;
    long timeout_ms;
};

/* Where to reach the daemon: SOCKET and/or URL ("http://HOST:PORT" or
 * "HOST:PORT") when given, in that order; else [daemon] socket (or
 * API_DEFAULT_SOCKET), then $VIRTKEEP_DAEMON_URL when set.  [daemon]
 * listen is never used by itself.  On TCP every request carries the token
 * of [daemon] token_file.  CFG may be NULL.  -1 on ENOMEM or an unusable
 * URL (VK_ERR_INVALID). */
int api_client_init(struct api_client *cl, const struct config *cfg, const char *socket,
                    const char *url, unsigned int flags);
void api_client_clear(struct api_client *cl);

/* METHOD PATH ("/v1/status"); a 2xx JSON answer goes to *OUT (put it).
 * When no endpoint answers: -1 with VK_ERR_NETWORK ("virtkeepd is not
 * running ...").  A TCP server that is not virtkeepd's user, or no token
 * file: -1 with VK_ERR_AUTH / VK_ERR_INVALID / an I/O error, the token
 * not sent.  An error answer: -1 with the server's message and the
 * code its HTTP status maps to (404 VK_ERR_NOT_FOUND, 400 VK_ERR_INVALID,
 * 409 VK_ERR_BUSY, 401 VK_ERR_AUTH, else VK_ERR_INTERNAL). */
int api_client_call(struct api_client *cl, const char *method, const char *path,
                    struct json_object **out);

/* ======== where each domain stands against its objectives: the rows of
 * `virtkeep status` and of the daemon's GET /v1/status, and the numbers of
 * /metrics.  One computation (sched_status_compute over the input that
 * sched_input_load builds) serves the daemon and the CLI when no daemon
 * answers, so both always show the same values.
 *
 * A row exists for each [domain] of the configuration that has a policy, or
 * for the one domain asked for (which needs no policy: it then has no
 * objectives and violates none).  Times are Unix seconds.
 */

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
    /* The newest immutable copy (policy immutable_days): the latest good
     * backup and the date its objects stay locked until (its start + the
     * retention: the lock itself is set when each object is put, a few
     * seconds later).  0 when the policy locks nothing. */
    int64_t immutable_until;
    /* The next job: kind SCHED_NONE when there is none. */
    enum sched_kind next_kind;
    int64_t next_due;
    char *next_target;
    char *next_reason;
    /* Several hosts on one catalog: the host the domain last ran on (NULL:
     * unknown), and when it was last heard from if it is lost (0: up). */
    char *host;
    int64_t host_unreachable_since;
};

struct status_report {
    int64_t now;
    bool daemon; /* computed by virtkeepd (true) or offline by the CLI */
    size_t count;
    struct status_domain *items;
};

/* Compute the report at NOW for DOMAIN (every [domain] with a policy when
 * NULL, and the domains that last ran on another host of a catalog that
 * several hosts share).  The next job comes from OPS->next_job (the daemon's scheduler)
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
 * "chain_length", "failures", "immutable_until", "next_job": {"kind", "due", "target",
 * "reason"} | null, "host", "host_unreachable_since"}]}.  Unknown values
 * are null. */
struct json_object *status_report_json(const struct status_report *r);
/* And back (what the CLI got from the daemon); VK_ERR_INVALID when malformed. */
int status_report_from_json(struct json_object *j, struct status_report *out);

/* ======== /metrics: the Prometheus text format (0.0.4) of what the
 * status report and the catalog say.
 *
 * Per domain (from the status report, the same numbers `virtkeep status`
 * shows; a value that is unknown is left out):
 *   virtkeep_last_success_timestamp_seconds{domain}
 *   virtkeep_rpo_exposure_seconds{domain}, virtkeep_rpo_objective_seconds{domain}
 *   virtkeep_rto_estimate_seconds{domain}, virtkeep_rto_objective_seconds{domain}
 *   virtkeep_objective_violated{domain,objective="rpo"|"rto"}
 *   virtkeep_chain_length{domain}, virtkeep_consecutive_failures{domain}
 * Per finished job (backups from the backups table, kind "backup"; other
 * kinds from the jobs table, level "none" unless the job names a backup):
 *   virtkeep_last_job_duration_seconds{domain,kind,level}
 *   virtkeep_last_job_bytes{domain,kind,level}
 *   virtkeep_jobs_total{domain,kind,outcome}        (counter)
 *   virtkeep_job_bytes_total{domain,kind}           (counter, succeeded jobs)
 *   virtkeep_job_failures_total{domain,kind,reason} (counter)
 *   virtkeep_jobs_running
 * Several hosts on one catalog (present once a virtkeepd registered):
 *   virtkeep_host_heartbeat_timestamp_seconds{host,version}
 *   virtkeep_host_up{host}, virtkeep_host_jobs_running{host}
 *   virtkeep_domain_host{domain,host}               (1: where it last ran)
 * Series are sorted by their labels, so the text is stable.
 */

struct catalog;
struct status_report;

/* Render into *OUT (malloc'd, NUL-terminated; *LEN without the NUL).
 * JOBS_RUNNING is how many jobs the daemon runs now. */
int metrics_render(struct catalog *cat, const struct status_report *st, size_t jobs_running,
                   char **out, size_t *len);

/* A short stable word for why a job failed, from its error text: the
 * common/error.h code names ("no-space", "network", "auth", ...) recognised
 * from the message, "interrupted" for killed or cancelled work, "other"
 * when nothing matches. */
const char *metrics_failure_reason(const char *error);

/* Write VALUE escaped as a label value (backslash, double quote and
 * newline escaped) to FP. */
void metrics_label_escape(FILE *fp, const char *value);

#endif
