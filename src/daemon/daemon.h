/* virtkeep - virtkeepd, the daemon: scheduler loop, workers, recovery.
 *
 * One thread runs the loop (daemon.c): every tick it loads each policy
 * domain's scheduler input (sched-input.h), plans its jobs (sched.h) and
 * starts those sched_dispatch() picks under [daemon] max_jobs and
 * max_target_jobs.  A job is a worker process: the `virtkeep` CLI run with
 * the daemon's --config/--catalog/-c and e.g. `backup DOMAIN --target T
 * --level inc --json` (daemon-job.c).  Its stdout and stderr are read
 * through pipes in the same poll loop; a job row in the catalog records
 * it (pid = the worker) and its outcome.  `copy` and `drill` record their
 * own job row: the daemon adopts that row (found by the worker's pid)
 * instead of adding a second one, and finishes it only if the worker died
 * without doing so.  After each successful backup the
 * domain is pruned (`prune DOMAIN`), and domains whose policy has
 * drill_every get `drill DOMAIN` runs when the CLI has that command.
 *
 * Start (daemon-recover.c), before any job: jobs and drills whose process
 * is gone are marked failed (catalog_job_fail_orphans,
 * catalog_drill_fail_orphans); for each domain with a killed
 * backup, under the domain's backup lock, backup_recover() marks it failed,
 * aborts the libvirt job, deletes its checkpoint and its partial objects;
 * then the remaining orphans of domains that no longer exist are failed
 * (catalog_backup_fail_orphans), and the run directories of killed workers
 * removed (backup_recover_rundirs).  Missed runs are spread with
 * sched_catchup() so that they do not start at once.  A row's process is
 * its pid and start time (common/proc.h): a zombie, or a process that got
 * the pid later, does not keep a row alive.
 *
 * A worker that dies without finishing its rows while the daemon runs
 * (kill -9, OOM, a crash) gets the same recovery when it is reaped
 * (daemon-finish.c, daemon_recover_domain): its backup row is marked
 * failed (one failure: the scheduler backs off, the domain is no longer
 * busy), then under the domain's lock the libvirt job is aborted, its
 * checkpoint deleted and its partial objects removed.
 *
 * Signals: SIGTERM/SIGINT stop starting jobs, send SIGTERM to the workers,
 * wait for them (DAEMON_STOP_WAIT seconds, then SIGKILL) and return 0.
 * SIGHUP reloads the configuration; an invalid one is logged and the old
 * one kept.  The control API moves to the new [daemon] listen and token
 * only once they are bound and read: until then, and when that fails, it
 * keeps serving on the old ones.  Workers get PR_SET_PDEATHSIG(SIGTERM): a
 * killed daemon does not leave them running unsupervised.
 *
 * The API server (api.h) calls the ops in daemon-api.c from its threads;
 * the worker list and the cached next jobs are behind a mutex.
 */
#ifndef VIRTKEEP_DAEMON_H
#define VIRTKEEP_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "src/api/api.h"
#include "src/conf/conf.h"
#include "src/sched/sched.h"

#define DAEMON_TICK_DEFAULT 10    /* seconds */
#define DAEMON_MAX_JOBS_DEFAULT 2 /* per host */
#define DAEMON_TARGET_JOBS_DEFAULT 1
#define DAEMON_STOP_WAIT 30          /* seconds for workers to stop */
#define DAEMON_CATCHUP_MAX 300       /* seconds over which missed runs spread */
#define DAEMON_OUTPUT_MAX (1u << 20) /* bytes of a worker's stdout kept */
#define DAEMON_ERRLOG_MAX 8192       /* bytes of a worker's stderr kept (the tail) */
#define DAEMON_LEASE_TICKS 3         /* a domain's lease lasts this many ticks */
#define DAEMON_LEASE_MIN 15          /* seconds, at least */

struct daemon_options {
    const char *config_path;  /* --config, or NULL: the default file (may be missing) */
    const char *catalog_path; /* --catalog, or NULL: [catalog] path, else the default */
    const char *connect_uri;  /* -c, or NULL: $LIBVIRT_DEFAULT_URI, else qemu:///system */
    const char *socket_path;  /* --socket, or NULL: [daemon] socket, else the default */
    const char *log;          /* --log stderr|syslog, or NULL: [daemon] log */
    uint64_t tick;            /* --tick, or 0: [daemon] tick, else DAEMON_TICK_DEFAULT */
    bool once;                /* one pass; wait for its jobs (and prunes); return */
};

/* A worker: one running job. */
struct daemon_worker {
    int64_t job_id;
    char *kind; /* "backup", "copy", "prune", "drill" */
    char *domain, *target, *backup_id, *level, *reason;
    pid_t pid;
    uint64_t pid_start; /* its start time (common/proc.h), 0 if unknown */
    int out_fd, err_fd; /* -1 once at EOF */
    char *out;
    size_t out_len;
    char err[DAEMON_ERRLOG_MAX];
    size_t err_len;
    int64_t started;
    uint64_t t0_ns;
    bool exited;
    int status;      /* waitpid status once exited */
    bool own_row;    /* the CLI records its own job row (copy, drill): adopted by pid */
    bool cancelling; /* SIGTERM sent on request (api job_cancel) */
    bool stopping;   /* SIGTERM sent because the daemon stops */
    int64_t epoch;   /* the domain's lease this worker runs under (0: none, lost) */
};

/* Per configured domain, what the loop remembers between ticks. */
struct daemon_domain {
    char *name;
    int64_t not_before;    /* catch-up: no backup before this time */
    bool prune_pending;    /* a backup succeeded: prune next */
    struct sched_job next; /* the latest plan's next job (kind SCHED_NONE: none) */
};

struct daemon {
    struct daemon_options opt;
    struct config *cfg;
    char *config_path; /* the file in use, or NULL (no file) */
    char *catalog_path;
    char *connect_uri; /* may be NULL */
    char *cli_path;
    char *socket_path;
    struct catalog *cat;
    uint64_t tick;
    struct sched_limits limits;
    bool drill_supported;
    bool caught_up; /* sched_catchup was applied */
    bool stop;      /* SIGTERM/SIGINT */
    int sigpipe[2];
    struct api_server *api;
    pthread_mutex_t lock; /* workers, domains: read by the API threads */
    struct daemon_worker **workers;
    size_t n_workers;
    struct daemon_domain *domains;
    size_t n_domains;
};

/* daemon.c */
struct daemon *daemon_new(const struct daemon_options *opt);
/* Run until stopped (or one pass with --once).  0 on a clean stop. */
int daemon_run(struct daemon *d);
void daemon_free(struct daemon *d);
/* Load the configuration (first time or SIGHUP) and the settings from it. */
int daemon_config_load(struct daemon *d);
/* One scheduler pass at NOW (daemon-tick.c). */
int daemon_tick(struct daemon *d, int64_t now);
/* Start the prunes due after successful backups, as the limits allow. */
void daemon_prunes_start(struct daemon *d);

/* daemon-job.c */
/* The CLI the workers run: $VIRTKEEP_CLI, else `virtkeep` next to
 * /proc/self/exe, else BINDIR/virtkeep (malloc'd). */
char *daemon_cli_path(void);
/* Start a worker for JOB (backup or copy); the job row is inserted. */
int daemon_job_start(struct daemon *d, const struct sched_job *job);
/* Start `prune DOMAIN` or `drill DOMAIN` (KIND). */
int daemon_job_start_simple(struct daemon *d, const char *kind, const char *domain);
/* Read the output of the workers whose fds are ready (POLLIN/POLLHUP). */
void daemon_job_read(struct daemon_worker *w, int fd);
/* Find the job rows that copy and drill workers record themselves. */
void daemon_job_adopt(struct daemon *d);
/* Reap exited workers and finish the jobs of those done. */
void daemon_job_reap(struct daemon *d);
/* SIGTERM to worker of job ID (cancel); VK_ERR_NOT_FOUND if none. */
int daemon_job_cancel(struct daemon *d, int64_t id);
/* Stop every worker (SIGTERM, wait, SIGKILL) and finish their jobs. */
void daemon_jobs_stop(struct daemon *d);
bool daemon_domain_busy(const struct daemon *d, const char *domain);
void daemon_worker_free(struct daemon_worker *w);
/* The error of a failed worker: its last stderr line without the
 * "virtkeep: error: " prefix (malloc'd; NULL when it printed nothing). */
char *daemon_worker_error(const char *err, size_t len);

/* daemon-recover.c */
int daemon_recover(struct daemon *d);
/* Recover the backups of DOMAIN whose process is gone, now (a worker died):
 * rows failed, then backup_recover() under the domain's lock.  A domain
 * that cannot be reached or locked is left to the next backup or start
 * (warning); -1 only when the catalog fails. */
int daemon_recover_domain(struct daemon *d, const char *domain);

struct virt_conn;

/* daemon-fleet.c: several hosts on one catalog (catalog.h, "hosts and
 * leases").  At start the daemon registers its host ($VIRTKEEP_HOST, else
 * the system's name; its workers inherit it) and frees the leases of its
 * previous run; every tick it heartbeats, renews the lease of each running
 * worker (a lost one: the worker is stopped, its commit would be refused
 * anyway) and fails the rows of hosts whose heartbeat and leases expired.
 * Each worker runs under its domain's lease, claimed before it starts and
 * released when it is reaped; a backup worker gets the epoch (--fence). */
int64_t daemon_lease_ttl(const struct daemon *d);
int daemon_fleet_start(struct daemon *d, int64_t now);
void daemon_fleet_tick(struct daemon *d, int64_t now);
/* Claim DOMAIN's lease: 0 with *EPOCH, or -1 (VK_ERR_BUSY: another host
 * holds it, named in the message). */
int daemon_lease_claim(struct daemon *d, const char *domain, int64_t *epoch);
void daemon_lease_release(struct daemon *d, const char *domain, int64_t epoch);
/* Does domain NAME run on another host, not this one?  True when this
 * host's libvirt does not have it and the catalog last saw it on another
 * host, or another host heartbeats: the daemon then plans nothing for it
 * (each daemon backs up the domains its host runs).  Alone on a catalog,
 * a missing domain is still planned, and its failure shows. */
struct daemon_fleet_view {
    int64_t now;
    bool others_alive;      /* another host heartbeats */
    struct virt_conn *conn; /* this host's libvirt, opened when first needed */
    bool conn_failed;
};
void daemon_fleet_view_init(struct daemon *d, struct daemon_fleet_view *v, int64_t now);
void daemon_fleet_view_clear(struct daemon_fleet_view *v);
bool daemon_domain_elsewhere(struct daemon *d, struct daemon_fleet_view *v, const char *name);

/* daemon-api.c */
void daemon_api_ops(struct daemon *d, struct api_ops *ops);
int daemon_api_start(struct daemon *d);
/* After SIGHUP: the new configuration, token and listen address.  On
 * failure (a listen port that is taken) the old listeners keep serving. */
int daemon_api_reload(struct daemon *d);
void daemon_api_stop(struct daemon *d);

#endif
