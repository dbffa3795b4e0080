/* virtkeep - the catalog, as callers see it.
 *
 * The catalog is one SQLite file (WAL mode, foreign keys on, busy timeout),
 * created 0600 in directories created 0700, or a PostgreSQL database that
 * several hosts share, named by a postgresql:// URL in place of the path
 * (catalog/pg.c: libpq settings, where the password comes from, what a lost
 * connection does).  Both hold the same schema and behave the same through
 * this header; catalog_path() gives the path or the URL.  Only catalog/
 * speaks SQL: callers get the C structs and functions below.
 *
 * Tables (schema version CATALOG_SCHEMA_VERSION, see catalog/schema.c):
 *
 *   domains          name (unique), uuid.  A row appears when a domain is
 *                    first recorded (catalog_domain_set, or implicitly by
 *                    catalog_backup_insert / catalog_disk_set).
 *   disks            the disks a domain has now: domain, target ("vda"),
 *                    format ("qcow2", "raw"), virtual size.
 *   backups          one row per backup attempt.  id is text and sorts by
 *                    time within a domain ("web1-20261128T010203Z").  level is
 *                    full|inc|diff|copy; checkpoint is the libvirt checkpoint
 *                    it created (NULL for copy); parent is the backup it
 *                    builds on (inc: the previous backup of the chain, full,
 *                    inc or diff; diff: the full; NULL for full and copy).
 *                    parent is deliberately NOT a foreign key: a catalog
 *                    rebuilt from an incomplete target may lack a parent, and
 *                    the chain functions report that by name.  status is
 *                    running|committed|failed, with the error text of a
 *                    failure; started/finished times; bytes read, written and
 *                    stored; checkpoint XML and domain XML; the pid and the
 *                    start time of the process that runs it (so that a row
 *                    left "running" by a dead process can be marked failed,
 *                    even when its pid was reused).
 *   backup_disks     per backup per disk: target, format, virtual size,
 *                    bytes read and stored.
 *   archive_locations where each archive lives: a backup can have copies on
 *                    several targets.  backup, disk (NULL for the backup's
 *                    manifest), target name, object key, size, sha256, time.
 *   jobs             kind (backup, restore, copy, verify, prune, drill,
 *                    migrate, ...), domain, target, backup, state
 *                    queued|running|succeeded|failed|cancelled, pid and its
 *                    start time, times,
 *                    progress, estimated and actual seconds, error.
 *   prune_intents    backups a prune has decided to delete (backup, reason,
 *                    when marked): marked before any object is deleted, gone
 *                    with the backup row (see src/prune.h).
 *   drills           DR drills (src/drill.h): domain, backup restored,
 *                    targets read (comma-separated), state
 *                    running|ok|failed|cancelled, pid and its start time,
 *                    times, the estimate
 *                    made before it started and its source, the measured
 *                    restore time, bytes read and written, error.  The
 *                    restore estimator learns from the ok rows.
 *   hosts            each virtkeepd's host: name, libvirt URI, version,
 *                    when it registered, its last heartbeat.
 *   leases           per domain: the host that may run its jobs now, until
 *                    when (expires), and the fencing token (epoch) of that
 *                    claim, bumped by every claim.
 *   moves            migrations and evacuations: domain, uuid, from and to
 *                    host, kind, when.  Jobs, backups and drills also
 *                    record the host that ran them; domains, the host they
 *                    last ran on.
 *   throughput       measured transfer rates per target and direction
 *                    (read|write): bytes, seconds, when measured.  The
 *                    planner's estimates come from the recent samples.
 *
 * Times are Unix seconds (UTC).  Deleting a backup deletes its disks and
 * locations (ON DELETE CASCADE).  Failed and running backups never count in
 * chains.
 *
 * Errors follow common/error.h: functions return -1 or NULL and record one
 * message that names the catalog file or the object.
 */
#ifndef VIRTKEEP_CATALOG_H
#define VIRTKEEP_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The newest schema this code knows.  An older file is migrated on open; a
 * newer one is refused (VK_ERR_UNSUPPORTED). */
#define CATALOG_SCHEMA_VERSION 7

struct catalog;

enum catalog_level {
    CATALOG_LEVEL_FULL,
    CATALOG_LEVEL_INC,
    CATALOG_LEVEL_DIFF,
    CATALOG_LEVEL_COPY,
    CATALOG_LEVEL_AUTO, /* a request only (catalog_chain_next); never stored */
};

enum catalog_status {
    CATALOG_STATUS_RUNNING,
    CATALOG_STATUS_COMMITTED,
    CATALOG_STATUS_FAILED,
};

enum catalog_job_state {
    CATALOG_JOB_QUEUED,
    CATALOG_JOB_RUNNING,
    CATALOG_JOB_SUCCEEDED,
    CATALOG_JOB_FAILED,
    CATALOG_JOB_CANCELLED,
};

enum catalog_direction {
    CATALOG_DIR_READ,
    CATALOG_DIR_WRITE,
};

/* Names as stored and printed ("full", "committed", "succeeded", "read"),
 * and the reverse; parsers return -1 with VK_ERR_INVALID. */
const char *catalog_level_name(enum catalog_level level);
int catalog_level_parse(const char *str, enum catalog_level *level);
const char *catalog_status_name(enum catalog_status status);
int catalog_status_parse(const char *str, enum catalog_status *status);
const char *catalog_job_state_name(enum catalog_job_state state);
int catalog_job_state_parse(const char *str, enum catalog_job_state *state);
const char *catalog_direction_name(enum catalog_direction dir);

/* ---- records ---------------------------------------------------------- */

struct catalog_domain {
    char *name;
    char *uuid; /* may be NULL */
    char *host; /* the host it last ran on (read only; NULL: unknown) */
};

struct catalog_disk {
    char *domain;
    char *target; /* "vda" */
    char *format; /* "qcow2", "raw" */
    uint64_t virtual_size;
};

struct catalog_backup {
    char *id;
    char *domain;
    enum catalog_level level;
    enum catalog_status status;
    char *checkpoint; /* libvirt checkpoint name, NULL for copy */
    char *parent;     /* inc: previous backup; diff: the full; else NULL */
    char *error;      /* why it failed, or NULL */
    int64_t started;  /* Unix seconds; the point in time the backup holds */
    int64_t finished; /* 0 while running */
    uint64_t bytes_read, bytes_written, bytes_stored;
    char *checkpoint_xml; /* may be NULL (and is, in lists without XML) */
    char *domain_xml;
    int64_t pid; /* process running it; 0 on insert means this process */
    /* Its start time (common/proc.h); 0 on insert means the one /proc
     * shows for PID now (0 when it cannot be read: the pid alone counts). */
    int64_t pid_start;
    /* The host whose process ran it (read only: an insert records this
     * host; NULL for rows older than several hosts). */
    char *host;
};

struct catalog_backup_disk {
    char *backup_id;
    char *target;
    char *format;
    uint64_t virtual_size;
    uint64_t bytes_read, bytes_stored;
};

struct catalog_location {
    char *backup_id;
    char *disk;   /* disk target, or NULL for the backup's manifest */
    char *target; /* target name ("offsite") */
    char *key;    /* object key on the target */
    uint64_t size;
    char *sha256;    /* lower-case hex, may be NULL */
    int64_t created; /* 0 on insert means now */
};

struct catalog_job {
    int64_t id;                        /* assigned by catalog_job_insert */
    char *kind;                        /* "backup", "restore", "copy", "drill", ... */
    char *domain, *target, *backup_id; /* each may be NULL */
    enum catalog_job_state state;
    int64_t pid;       /* 0 on insert means this process */
    int64_t pid_start; /* its start time: as in struct catalog_backup */
    int64_t started;   /* 0 on insert means now */
    int64_t finished;  /* 0 until finished */
    uint64_t progress_done, progress_total;
    double estimate_seconds; /* what the planner predicted, 0 if nothing */
    double elapsed_seconds;  /* measured, set by catalog_job_finish */
    char *error;
    int64_t downtime_ms; /* migrations: measured downtime, -1 unknown (read only) */
    char *host;          /* the host that runs it; NULL on insert: this host */
    int64_t epoch;       /* the lease epoch it runs under, 0: none */
};

/* A rate estimated from recent measurements. */
struct catalog_rate {
    double bytes_per_second; /* 0 when there is no history */
    unsigned int samples;    /* how many measurements it comes from */
    int64_t last_measured;   /* time of the newest sample, 0 if none */
};

/* Arrays returned by the list functions; the free functions accept NULL. */
struct catalog_domains {
    size_t count;
    struct catalog_domain *items;
};
struct catalog_disks {
    size_t count;
    struct catalog_disk *items;
};
struct catalog_backups {
    size_t count;
    struct catalog_backup *items;
};
struct catalog_backup_disks {
    size_t count;
    struct catalog_backup_disk *items;
};
struct catalog_locations {
    size_t count;
    struct catalog_location *items;
};
struct catalog_jobs {
    size_t count;
    struct catalog_job *items;
};

void catalog_domain_free(struct catalog_domain *domain);
void catalog_backup_free(struct catalog_backup *backup);
void catalog_job_free(struct catalog_job *job);
void catalog_domains_free(struct catalog_domains *list);
void catalog_disks_free(struct catalog_disks *list);
void catalog_backups_free(struct catalog_backups *list);
void catalog_backup_disks_free(struct catalog_backup_disks *list);
void catalog_locations_free(struct catalog_locations *list);
void catalog_jobs_free(struct catalog_jobs *list);

/* ---- open, close, transactions ---------------------------------------- */

/* Fail with VK_ERR_NOT_FOUND instead of creating a missing catalog. */
#define CATALOG_OPEN_EXISTING 0x1

/* Open or create the catalog at PATH (a file, or a postgresql:// URL whose
 * database exists) and migrate it to the current schema.  A newer schema
 * fails with VK_ERR_UNSUPPORTED; a file or database that is not a virtkeep
 * catalog, or a damaged one, fails with VK_ERR_CORRUPT; a server that
 * cannot be reached, VK_ERR_NETWORK (VK_ERR_AUTH: refused credentials).
 * With CATALOG_OPEN_EXISTING, a database without a catalog is
 * VK_ERR_NOT_FOUND.  Every message names PATH. */
struct catalog *catalog_open(const char *path, unsigned int flags);
void catalog_close(struct catalog *cat);
const char *catalog_path(const struct catalog *cat);
/* The schema version of the open file, or -1. */
int catalog_schema_version(struct catalog *cat);

/* An explicit write transaction around several calls: one at a time across
 * every process and host (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
 * lock held until it ends).  Calls outside one are each atomic on their own.
 * A failed call inside one must be followed by catalog_rollback() (in
 * PostgreSQL a failed statement ends the transaction).  When the connection
 * to PostgreSQL is lost inside one, the call fails with VK_ERR_NETWORK, the
 * server has rolled everything back, and every call fails until
 * catalog_rollback(); the caller then retries the whole transaction, on a
 * new connection. */
int catalog_begin(struct catalog *cat);
int catalog_commit(struct catalog *cat);
void catalog_rollback(struct catalog *cat);

/* ---- domains and disks ------------------------------------------------ */

/* Insert the domain, or update its uuid when UUID is not NULL. */
int catalog_domain_set(struct catalog *cat, const char *name, const char *uuid);
/* NULL with VK_ERR_NOT_FOUND when unknown. */
struct catalog_domain *catalog_domain_get(struct catalog *cat, const char *name);
int catalog_domain_list(struct catalog *cat, struct catalog_domains **out);

/* Insert or update one disk of a domain (the domain is created if needed). */
int catalog_disk_set(struct catalog *cat, const struct catalog_disk *disk);
int catalog_disk_list(struct catalog *cat, const char *domain, struct catalog_disks **out);

/* ---- backups ---------------------------------------------------------- */

/* "DOMAIN-YYYYMMDDTHHMMSSZ" for WHEN (UTC): sorts by time per domain. */
char *catalog_backup_id_make(const char *domain, int64_t when);

/* Insert a new backup row (usually status running).  The domain row is
 * created if needed.  A duplicate id fails with VK_ERR_INVALID. */
int catalog_backup_insert(struct catalog *cat, const struct catalog_backup *backup);
/* Move a running backup to committed or failed (ERROR says why, may be
 * NULL) and set its finish time to now.  A backup that is no longer running
 * cannot change: VK_ERR_INVALID. */
int catalog_backup_set_status(struct catalog *cat, const char *id, enum catalog_status status,
                              const char *error);
/* Replace the error of a failed backup (recovery notes); VK_ERR_INVALID
 * when ID is not a failed backup. */
int catalog_backup_set_error(struct catalog *cat, const char *id, const char *error);
/* Update the mutable fields of a backup: checkpoint, bytes, XMLs. */
int catalog_backup_update(struct catalog *cat, const struct catalog_backup *backup);
/* NULL with VK_ERR_NOT_FOUND when unknown.  Includes the XML. */
struct catalog_backup *catalog_backup_get(struct catalog *cat, const char *id);

#define CATALOG_LIST_COMMITTED 0x1 /* only committed backups */
#define CATALOG_LIST_WITH_XML 0x2  /* also load checkpoint and domain XML */
/* Backups of DOMAIN (every domain when NULL), oldest first. */
int catalog_backup_list(struct catalog *cat, const char *domain, unsigned int flags,
                        struct catalog_backups **out);
/* Delete a backup with its disks and locations.  A backup that another
 * backup names as its parent cannot be deleted (VK_ERR_INVALID): delete
 * the newest first. */
int catalog_backup_delete(struct catalog *cat, const char *id, unsigned int flags);
/* The error of a backup marked failed by catalog_backup_fail_orphans()
 * starts with this; backup_recover() (src/backup.h) appends "; recovered". */
#define CATALOG_ORPHAN_ERROR "interrupted: the process that ran it"
/* Mark failed every running backup whose process is gone (startup
 * recovery, and virtkeepd when a worker dies): no process has its pid, the
 * one that has it is a zombie, or it started at another time than the row
 * records (vk_proc_alive() in common/proc.h).  *MARKED (may be NULL)
 * gets how many were marked. */
int catalog_backup_fail_orphans(struct catalog *cat, unsigned int flags, unsigned int *marked);

/* Prune intents (src/prune.h): mark backup ID as doomed, REASON may be
 * NULL; marking again keeps the first mark.  An unknown backup fails with
 * VK_ERR_NOT_FOUND.  The mark disappears with catalog_backup_delete(). */
int catalog_prune_mark(struct catalog *cat, const char *id, const char *reason);
/* The marked backups of DOMAIN (every domain when NULL), newest first, as
 * a NULL-terminated list of ids (vk_strv_free it; empty when none). */
int catalog_prune_list(struct catalog *cat, const char *domain, char ***ids);

int catalog_backup_disk_add(struct catalog *cat, const struct catalog_backup_disk *disk);
int catalog_backup_disk_list(struct catalog *cat, const char *backup_id,
                             struct catalog_backup_disks **out);

/* ---- archive locations ------------------------------------------------ */

/* Record that an archive (or the manifest, disk NULL) of a backup is stored
 * under KEY on TARGET.  Recording the same backup/target/key again
 * replaces its size, digest and time. */
int catalog_archive_add_location(struct catalog *cat, const struct catalog_location *loc);
int catalog_archive_remove_location(struct catalog *cat, const char *backup_id, const char *target,
                                    const char *key);
/* Locations of BACKUP_ID (every backup when NULL) on TARGET (every target
 * when NULL), ordered by backup, disk, target. */
int catalog_archive_list(struct catalog *cat, const char *backup_id, const char *target,
                         struct catalog_locations **out);

/* ---- jobs ------------------------------------------------------------- */

/* Insert a job; returns its id (> 0) or -1. */
int64_t catalog_job_insert(struct catalog *cat, const struct catalog_job *job);
int catalog_job_set_state(struct catalog *cat, int64_t id, enum catalog_job_state state);
int catalog_job_set_progress(struct catalog *cat, int64_t id, uint64_t done, uint64_t total);
/* End a job: STATE succeeded, failed or cancelled; ERROR may be NULL. */
int catalog_job_finish(struct catalog *cat, int64_t id, enum catalog_job_state state,
                       const char *error, double elapsed_seconds);
struct catalog_job *catalog_job_get(struct catalog *cat, int64_t id);
/* Record the measured downtime of a migration job (milliseconds, >= 0). */
int catalog_job_set_downtime(struct catalog *cat, int64_t id, int64_t downtime_ms);

#define CATALOG_JOB_LIST_ACTIVE 0x1 /* only queued and running jobs */
/* Jobs of DOMAIN (every job when NULL), newest first, at most LIMIT (0: all). */
int catalog_job_list(struct catalog *cat, const char *domain, unsigned int flags, size_t limit,
                     struct catalog_jobs **out);
/* Mark failed every queued or running job whose process is gone. */
int catalog_job_fail_orphans(struct catalog *cat, unsigned int flags, unsigned int *marked);

/* ---- throughput ------------------------------------------------------- */

/* Record BYTES moved in SECONDS (> 0) to or from TARGET at WHEN (0: now). */
int catalog_throughput_record(struct catalog *cat, const char *target, enum catalog_direction dir,
                              uint64_t bytes, double seconds, int64_t when);
/* The rate over the most recent measurements (at most 10) of TARGET and
 * DIR.  No history is not an error: OUT->samples is 0. */
int catalog_throughput_estimate(struct catalog *cat, const char *target, enum catalog_direction dir,
                                struct catalog_rate *out);

/* ---- DR drills (src/drill.h) ------------------------------------------ */

enum catalog_drill_state {
    CATALOG_DRILL_RUNNING,
    CATALOG_DRILL_OK,
    CATALOG_DRILL_FAILED,
    CATALOG_DRILL_CANCELLED,
};

struct catalog_drill {
    int64_t id;     /* assigned by catalog_drill_insert */
    int64_t job_id; /* its row in jobs, 0 if none */
    char *domain;
    char *backup_id;
    char *targets; /* names of the targets read, comma-separated; may be NULL */
    enum catalog_drill_state state;
    int64_t pid;             /* 0 on insert means this process */
    int64_t pid_start;       /* its start time: as in struct catalog_backup */
    int64_t started;         /* 0 on insert means now */
    int64_t finished;        /* 0 until finished */
    double estimate_seconds; /* predicted before it started */
    char *estimate_source;   /* "drill", "throughput", "guess"; may be NULL */
    double actual_seconds;   /* measured restore (+ verify) time */
    uint64_t bytes_read;     /* bytes read from the targets */
    uint64_t disk_bytes;     /* bytes written to the scratch images */
    char *error;             /* why it failed, or NULL */
};

struct catalog_drills {
    size_t count;
    struct catalog_drill *items;
};

const char *catalog_drill_state_name(enum catalog_drill_state state);
int catalog_drill_state_parse(const char *str, enum catalog_drill_state *state);
void catalog_drill_free(struct catalog_drill *drill);
void catalog_drills_free(struct catalog_drills *list);

/* Insert a drill (normally state running); returns its id (> 0) or -1. */
int64_t catalog_drill_insert(struct catalog *cat, const struct catalog_drill *drill);
/* End a running drill: STATE ok, failed or cancelled, with the measured
 * time, bytes and ERROR (may be NULL).  A drill that is not running cannot
 * change: VK_ERR_INVALID; an unknown one: VK_ERR_NOT_FOUND. */
int catalog_drill_finish(struct catalog *cat, int64_t id, enum catalog_drill_state state,
                         double actual_seconds, uint64_t bytes_read, uint64_t disk_bytes,
                         const char *error);
/* NULL with VK_ERR_NOT_FOUND when unknown. */
struct catalog_drill *catalog_drill_get(struct catalog *cat, int64_t id);

#define CATALOG_DRILL_LIST_OK 0x1 /* only drills that finished ok */
/* Drills of DOMAIN (every domain when NULL) that read TARGET (any when
 * NULL; a drill matches when TARGET is one of its targets), newest first,
 * at most LIMIT (0: all). */
int catalog_drill_list(struct catalog *cat, const char *domain, const char *target,
                       unsigned int flags, size_t limit, struct catalog_drills **out);
/* Mark failed every running drill whose process is gone. */
int catalog_drill_fail_orphans(struct catalog *cat, unsigned int flags, unsigned int *marked);

/* ---- hosts and leases: several hosts on one catalog -------------------- *
 *
 * Each virtkeepd registers its host and heartbeats.  Before it runs a job
 * of a domain it claims the domain's lease (PostgreSQL: SELECT ... FOR
 * UPDATE SKIP LOCKED, so that concurrent claimers never wait on each other
 * and exactly one wins; SQLite: its single-writer transaction), renews it
 * while the job runs and releases it after.  Every claim bumps the lease's
 * epoch, the fencing token: a process that runs under a lease names it with
 * catalog_fence_set(), and its backup commits then check, under the lease's
 * row lock, that the lease is still its own at that epoch and unexpired.
 * So at most one host runs jobs of a domain at a time, and a worker whose
 * lease was lost (expired, taken over) cannot commit.  When a host stops
 * heartbeating, another daemon's catalog_host_reap() marks its running rows
 * failed once its leases have expired.
 *
 * Rows that a process inserts carry its host (catalog_host_name()), and
 * the *_fail_orphans() functions only judge rows of their own host: a pid
 * means nothing on another machine.
 */

struct catalog_host {
    char *name;
    char *uri;                 /* its libvirt URI, may be NULL */
    char *version;             /* the virtkeep version of its daemon, may be NULL */
    int64_t started;           /* when its daemon registered */
    int64_t heartbeat;         /* its last heartbeat */
    int64_t lease_seconds;     /* how long its leases last: lost once silent longer */
    unsigned int running_jobs; /* jobs running on it now (catalog_host_list) */
    unsigned int domains;      /* domains that last ran on it (catalog_host_list) */
};

struct catalog_hosts {
    size_t count;
    struct catalog_host *items;
};

struct catalog_lease {
    char *domain;
    char *host;      /* NULL when free */
    int64_t epoch;   /* bumped by every claim */
    int64_t expires; /* Unix seconds */
};

void catalog_hosts_free(struct catalog_hosts *list);
void catalog_lease_clear(struct catalog_lease *lease);

/* This process's host name: $VIRTKEEP_HOST when set (several daemons on
 * one machine, tests), else the system's host name.  malloc'd. */
char *catalog_host_self(void);
/* The host name an open catalog records rows under. */
const char *catalog_host_name(const struct catalog *cat);
/* Register this host (insert or update URI, version and the duration of
 * its leases, LEASE_SECONDS; started and the heartbeat are NOW). */
int catalog_host_register(struct catalog *cat, const char *uri, const char *version,
                          int64_t lease_seconds, int64_t now);
/* Has host H been silent at NOW for longer than its leases last? */
bool catalog_host_lost(const struct catalog_host *h, int64_t now);
/* Heartbeat at NOW; VK_ERR_NOT_FOUND when the host is not registered. */
int catalog_host_heartbeat(struct catalog *cat, int64_t now);
/* Every registered host, by name, with its running jobs and domains. */
int catalog_host_list(struct catalog *cat, struct catalog_hosts **out);
/* Fail the rows of hosts that stopped heartbeating: a host (not this one)
 * silent for longer than its own lease duration and TTL, none of whose leases is still
 * valid at NOW gets its queued and running jobs, running backups and
 * drills marked failed (the error names it and when it was last heard
 * from), and its leases freed.  *MARKED (may be NULL): rows marked. */
int catalog_host_reap(struct catalog *cat, int64_t now, int64_t ttl, unsigned int *marked);

/* Claim the lease of DOMAIN for this host until NOW + TTL.  1: claimed,
 * *EPOCH is the new fencing token and the domain's host is this host; 0:
 * another host holds it unexpired, or is claiming it at this moment (not
 * an error: try again later); -1: error.  A lease this host already holds
 * unexpired is not claimed again (0): one job per domain. */
int catalog_lease_claim(struct catalog *cat, const char *domain, int64_t now, int64_t ttl,
                        int64_t *epoch);
/* Extend this host's lease of DOMAIN at EPOCH to NOW + TTL.  1: renewed;
 * 0: lost (expired or taken over); -1: error. */
int catalog_lease_renew(struct catalog *cat, const char *domain, int64_t epoch, int64_t now,
                        int64_t ttl);
/* Free this host's lease of DOMAIN at EPOCH (nothing when it is no longer
 * ours). */
int catalog_lease_release(struct catalog *cat, const char *domain, int64_t epoch);
/* Free every lease of this host (a daemon that starts again owns no job). */
int catalog_lease_release_all(struct catalog *cat);
/* The lease of DOMAIN (a free one, epoch 0, when it was never claimed). */
int catalog_lease_get(struct catalog *cat, const char *domain, struct catalog_lease *out);
/* Run under the lease of DOMAIN at EPOCH (a worker of virtkeepd): from
 * now on, committing a backup through this handle (outside an explicit
 * transaction) checks the lease under its row lock first, and fails with
 * VK_ERR_BUSY, the backup left running, when the lease was lost. */
int catalog_fence_set(struct catalog *cat, const char *domain, int64_t epoch);

/* ---- domains across hosts: one UUID, and the moves between hosts ------ */

/* Is NAME with UUID the domain the catalog knows by NAME?  0 when the
 * catalog has no such name, no UUID for it, the same UUID, or last saw it
 * on this host (a VM defined again); -1 with VK_ERR_INVALID when it
 * records another UUID last seen on another host (another VM of the same
 * name: their backups must not share a chain). */
int catalog_domain_check_uuid(struct catalog *cat, const char *name, const char *uuid);

struct catalog_move {
    char *domain;
    char *uuid;      /* may be NULL */
    char *from_host; /* may be NULL */
    char *to_host;
    char *kind;    /* "migrate", "evacuate", "planned" */
    int64_t moved; /* 0 on insert means now */
};

struct catalog_moves {
    size_t count;
    struct catalog_move *items;
};

void catalog_moves_free(struct catalog_moves *list);
/* Record that a domain moved (migrate, evacuate, a planned move): a row in
 * moves, and the domain's host becomes TO_HOST. */
int catalog_move_record(struct catalog *cat, const struct catalog_move *move);
/* Moves of DOMAIN (every domain when NULL), oldest first. */
int catalog_move_list(struct catalog *cat, const char *domain, struct catalog_moves **out);
/* The name of the registered host whose libvirt URI is URI, or NULL
 * (VK_ERR_NOT_FOUND: no such host).  malloc'd. */
char *catalog_host_by_uri(struct catalog *cat, const char *uri);

/* ---- moving a catalog into another (catalog migrate --to) ------------- */

struct catalog_import_result {
    size_t added;     /* rows copied */
    size_t known;     /* rows the destination already had, identical */
    char **conflicts; /* rows it has with other values, one line each (NULL: none) */
};

/* Copy every row of SRC (domains, disks, backups and their disks and
 * locations, prune marks, jobs, drills, throughput, moves) into DST, in
 * one transaction of DST.  Rows are matched by what names them (a backup
 * by its id, a disk by domain and target, a job by kind, domain, start and
 * pid ...), not by integer ids, which differ between catalogs; drills lose
 * their job id.  Rows DST already holds with the same values are counted
 * as known, so running it again changes nothing.  When DST holds a row
 * with other values, nothing is written and -1 is returned
 * (VK_ERR_INVALID, naming the rows; RES->conflicts lists all of them). */
int catalog_import(struct catalog *dst, struct catalog *src, struct catalog_import_result *res);
void catalog_import_result_clear(struct catalog_import_result *res);

/* ---- chains: pure functions over a list of backups -------------------- *
 *
 * ALL is what catalog_backup_list() returned (any domains, any statuses);
 * running and failed rows are ignored.  "Latest" orders by started time,
 * then id.  Returned chains are copies, in restore order (the full first,
 * the requested backup last); free them with catalog_backups_free().
 */

/* The latest committed backup of DOMAIN (any level), or NULL. */
const struct catalog_backup *catalog_chain_latest(const struct catalog_backups *all,
                                                  const char *domain);
/* The chain needed to restore backup ID: full + diff, full + incs, or the
 * copy alone.  A missing, failed or mismatched link fails with a message
 * naming it (VK_ERR_NOT_FOUND for a missing backup, VK_ERR_CORRUPT for a
 * link that cannot be used). */
int catalog_chain_resolve(const struct catalog_backups *all, const char *id,
                          struct catalog_backups **chain);
/* The chain of the newest committed backup of DOMAIN started at or before
 * WHEN (VK_ERR_NOT_FOUND when there is none). */
int catalog_chain_at(const struct catalog_backups *all, const char *domain, int64_t when,
                     struct catalog_backups **chain);
/* The current chain of DOMAIN: its latest committed full and every
 * committed inc/diff after it that resolves to that full, oldest first.
 * Empty (count 0) when DOMAIN has no committed full. */
int catalog_chain_current(const struct catalog_backups *all, const char *domain,
                          struct catalog_backups **chain);

/* What the next backup of a domain should be. */
struct catalog_next {
    enum catalog_level level;
    char *parent;            /* parent backup id, NULL for full and copy */
    char *parent_checkpoint; /* its checkpoint (<incremental>), or NULL */
    char *reason;            /* why auto chose full, or NULL */
};
/* Decide the next backup of DOMAIN for REQUESTED (auto, full, inc, diff,
 * copy).  auto gives full when there is no valid chain (REASON says why),
 * otherwise inc on top of the latest committed full/inc/diff.  An explicit
 * inc or diff without a valid chain fails with VK_ERR_NOT_FOUND. */
int catalog_chain_next(const struct catalog_backups *all, const char *domain,
                       enum catalog_level requested, struct catalog_next *next);
void catalog_next_clear(struct catalog_next *next);

#endif
