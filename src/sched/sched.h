/* virtkeep - the scheduler core: what each domain's next job is, and when.
 *
 * Everything here is pure: the clock is an argument (NOW), the history is
 * the catalog's rows given as arrays, and nothing is read or written
 * elsewhere, so that tests run weeks of simulated time in milliseconds.
 * The daemon (virtkeepd) feeds it from the catalog and runs what it says.
 *
 * Times are Unix seconds (UTC).  A backup's time is its start: the point in
 * time it holds.  For a domain whose policy has an RPO:
 *
 *   - the next backup is due at  last good start + RPO - expected duration
 *     - margin, so that it is committed before the RPO runs out.  The
 *     expected duration is the mean of the last SCHED_HISTORY committed
 *     backups of that level (full, or inc/diff), else of any level, else
 *     the default; the margin is RPO/10 (at most SCHED_MARGIN_MAX).  Never
 *     backed up: due at once.
 *   - it is a full when there is no valid chain, when the chain already has
 *     max_chain backups, when full_every has passed since the chain's full,
 *     or when the estimated restore of the chain plus the next incremental
 *     would exceed the RTO while a fresh full alone would not (when even a
 *     full misses the RTO, another full does not help: inc, and the status
 *     says so).  Otherwise an incremental on top of the chain.
 *   - after consecutive failures the next attempt waits SCHED_RETRY_BASE
 *     doubled per failure, at most min(RPO/4, SCHED_RETRY_MAX) (so less
 *     than the base for an RPO under 4 minutes; at least a second), plus a
 *     deterministic per-domain jitter of up to 1/8 of the wait.  But when
 *     the failure left time for a retry that still commits before the RPO
 *     runs out, the retry starts by then (latest_start): a single failure
 *     never by itself costs the RPO (sched_retry_at).
 *   - a backup starts only inside the policy's window (config_window); a
 *     due time outside it moves to the next opening.
 *   - no backup is due while one of the domain runs.
 *
 * Copies: each target of the policy after the first gets a copy of the
 * latest good backup, due when it finished; failed copy jobs to that target
 * back off as backups do.
 *
 * Across domains, sched_dispatch() picks which due jobs start now under
 * per-host and per-target limits, and sched_catchup() spreads the runs
 * missed while the daemon was down so that they do not all start at once.
 * Order: priority (1 first, 0 = unset last), then due time, then a
 * deterministic hash of the domain name.
 */
#ifndef VIRTKEEP_SCHED_H
#define VIRTKEEP_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "src/conf/conf.h"

#define SCHED_DEFAULT_DURATION 300.0 /* seconds, with no history at all */
#define SCHED_HISTORY 5              /* recent backups averaged */
#define SCHED_MARGIN_MAX 600         /* seconds */
#define SCHED_RETRY_BASE 60          /* seconds */
#define SCHED_RETRY_MAX 3600         /* seconds */

enum sched_kind {
    SCHED_NONE, /* nothing to schedule (reason says why) */
    SCHED_FULL,
    SCHED_INC,
    SCHED_COPY, /* copy a backup to a secondary target */
};
const char *sched_kind_name(enum sched_kind kind);

/* How long a restore takes: bytes of the chain / READ_RATE + OVERHEAD.
 * READ_RATE is the rate of the slowest target the chain needs (planner:
 * reader_cost_read); 0 means unknown, and no RTO decision is made. */
struct sched_restore_model {
    double read_rate;        /* bytes per second */
    double overhead_seconds; /* fixed cost of a restore */
};

struct sched_input {
    const char *domain;
    const struct config_policy *policy;        /* NULL: nothing is scheduled */
    const struct catalog_backups *history;     /* catalog_backup_list (any domain, status) */
    const struct catalog_locations *locations; /* where backups are (copies); may be NULL */
    const struct catalog_jobs *jobs;           /* recent jobs, newest first; may be NULL */
    struct sched_restore_model restore;
    double default_duration; /* 0: SCHED_DEFAULT_DURATION */
};

struct sched_job {
    enum sched_kind kind;
    char *domain;
    char *target;    /* backups: the primary target (NULL without targets); copies: the copy's */
    char *backup_id; /* copies: the backup to copy; backups: NULL */
    char *parent;    /* inc: the backup it builds on */
    int64_t due;     /* may be in the past: overdue */
    unsigned int priority;
    unsigned int attempt; /* failures since the last success (0: first try) */
    double expected_seconds;
    int64_t latest_start; /* backups: the last start that commits before the RPO
                           * runs out (last good start + RPO - expected); 0: none */
    char *reason;
};
void sched_job_clear(struct sched_job *job);

/* Every job IN's domain has pending at NOW: at most one backup and one copy
 * per secondary target, earliest due first.  *JOBS is malloc'd (free each
 * with sched_job_clear, then free the array); *N may be 0.  -1 on ENOMEM. */
int sched_plan(const struct sched_input *in, int64_t now, struct sched_job **jobs, size_t *n);
/* The earliest of them (a backup wins a tie), or kind SCHED_NONE. */
int sched_next(const struct sched_input *in, int64_t now, struct sched_job *out);

/* The pieces, for the daemon, status and tests. */
double sched_expected_duration(const struct catalog_backups *history, const char *domain,
                               enum catalog_level level, double dflt);
/* Seconds to restore CHAIN and then EXTRA_BYTES more; -1 when the rate is unknown. */
double sched_restore_estimate(const struct catalog_backups *chain, uint64_t extra_bytes,
                              const struct sched_restore_model *model);
int64_t sched_margin(uint64_t rpo);
/* The wait before attempt FAILURES + 1 of DOMAIN (FAILURES >= 1). */
int64_t sched_backoff(unsigned int failures, uint64_t rpo, const char *domain);
/* When attempt FAILURES + 1 may start, the last failure having ended at
 * LAST_END: LAST_END + sched_backoff(), but no later than LATEST (a backup
 * job's latest_start; 0: no limit) when the failure ended by then. */
int64_t sched_retry_at(unsigned int failures, int64_t last_end, int64_t latest, uint64_t rpo,
                       const char *domain);
/* A deterministic value in [0, SPAN) from the domain name (0 when SPAN is 0). */
uint32_t sched_jitter(const char *domain, uint32_t span);
bool sched_window_contains(const struct config_window *w, int64_t t);
/* The earliest time >= T inside the window (T itself without a window). */
int64_t sched_window_next(const struct config_window *w, int64_t t);

/* Where a domain stands against its objectives at NOW. */
struct sched_status {
    char *last_backup;         /* id of the latest good backup, or NULL */
    int64_t last_success;      /* its start (the data it holds), 0 when none */
    int64_t exposure;          /* NOW - last_success: data lost if lost now; -1 none */
    double rto_estimate;       /* restore of the current chain, seconds; -1 unknown */
    unsigned int chain_length; /* backups in the current chain */
    unsigned int failures;     /* consecutive failed backups */
    bool rpo_violated;         /* exposure > rpo (or never backed up) */
    bool rto_violated;         /* rto_estimate > rto */
};
int sched_status_compute(const struct sched_input *in, int64_t now, struct sched_status *out);
void sched_status_clear(struct sched_status *st);

/* ---- across domains --------------------------------------------------- */

struct sched_limits {
    unsigned int per_host;   /* jobs at a time on this host; 0: no limit */
    unsigned int per_target; /* jobs at a time per target; 0: no limit */
};

/* A job running now. */
struct sched_busy {
    const char *domain;
    const char *target; /* may be NULL */
};

/* Which of JOBS (N) to start at NOW: those due (due <= NOW), of domains with
 * nothing running, in priority order, while the limits allow.  Their
 * indexes go to START (room for N), in order; returns how many. */
size_t sched_dispatch(const struct sched_job *jobs, size_t n, int64_t now,
                      const struct sched_limits *limits, const struct sched_busy *running,
                      size_t n_running, size_t *start);

/* At daemon start: spread the overdue jobs (due < NOW) of JOBS over
 * [NOW, NOW + SPREAD): the k-th of M in priority order gets
 * NOW + k * SPREAD / M.  Jobs not overdue are left alone. */
void sched_catchup(struct sched_job *jobs, size_t n, int64_t now, unsigned int spread);

/* Priority order of two jobs (qsort-style). */
int sched_job_compare(const struct sched_job *a, const struct sched_job *b);

/* ======== what the scheduler needs to know about one domain, read from
 * the catalog and the configuration.  One place for it: virtkeepd and
 * `virtkeep status` (through the API) both call sched_input_load().
 *
 * What is loaded:
 *   - the policy of the domain's [domain] section (borrowed from CFG, which
 *     must outlive the input), or NULL when the domain has none;
 *   - the history: every backup row of the domain, any status;
 *   - the locations of the backups of the current chain (and the latest
 *     good backup), for the copies to secondary targets;
 *   - the domain's recent jobs (SCHED_INPUT_JOBS, newest first);
 *   - the restore model: the read rate of the slowest target the current
 *     chain needs.  Each backup is read from its fastest copy, so the rate
 *     is, over the chain's backups, the lowest of each backup's best rate,
 *     as estimated by the planner (reader_cost_read: measured read
 *     throughput, else READER_DEFAULT_READ_RATE, then GUESS is set).  Without
 *     a chain, the policy's primary target is used.
 */

#define SCHED_INPUT_JOBS 50 /* recent jobs loaded per domain */

struct sched_input_owned {
    struct sched_input in; /* points into the fields below and into the config */
    char *domain;
    struct catalog_backups *history;
    struct catalog_locations *locations;
    struct catalog_jobs *jobs;
    char *restore_target; /* the slowest target of the model, or NULL */
    bool restore_guess;   /* its rate is a guess (no measurement) */
};

/* Fill OUT for DOMAIN.  Returns 0, or -1 with the error recorded (OUT is
 * then cleared).  CFG may be NULL (no policy: nothing is scheduled). */
int sched_input_load(struct catalog *cat, const struct config *cfg, const char *domain,
                     struct sched_input_owned *out);
/* Free what OUT owns; safe on a zeroed or cleared OUT. */
void sched_input_owned_clear(struct sched_input_owned *out);

#endif
