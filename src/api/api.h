/* virtkeep - virtkeepd's control API: the server the daemon runs and the
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
#ifndef VIRTKEEP_API_H
#define VIRTKEEP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "src/sched/sched.h"

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

#endif
