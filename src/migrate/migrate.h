/* virtkeep - live and offline migration, and host evacuation.
 *
 *   migrate-check.c  the pre-checks, all run and reported together before
 *                    anything moves: reachability, CPU, memory, storage,
 *                    name/UUID collision (the report is plain data)
 *   migrate.c        the migration itself (virDomainMigrate3 with typed
 *                    parameters), the job-stats monitor thread (progress,
 *                    post-copy switch, timeout, SIGINT abort), post-checks
 *                    and the catalog job (kind "migrate", with downtime)
 *   evacuate.c       every domain off one host: placement on the
 *                    destination with the most free memory that passes the
 *                    domain's pre-checks, N migrations in parallel
 *   migrate-planned.c  --planned: a cold move through backups for hosts
 *                    that cannot live-migrate (backup while running,
 *                    shutdown, final incremental, restore into the
 *                    destination's storage pool, define, start, verify)
 */
#ifndef VIRTKEEP_MIGRATE_H
#define VIRTKEEP_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <signal.h>

#include <libvirt/libvirt.h>

struct catalog;
struct config;

/* ---------------------------------------------------------------- options */

enum migrate_mode {
    MIGRATE_MODE_AUTO = 0, /* live when running, offline when shut off */
    MIGRATE_MODE_LIVE,
    MIGRATE_MODE_OFFLINE, /* shut off: define only; running: paused copy */
};

struct migrate_options {
    const char *domain;      /* name or UUID on the source */
    const char *from;        /* source libvirt URI (NULL: libvirt's default) */
    const char *to;          /* destination libvirt URI */
    const char *migrate_uri; /* QEMU's stream (VIR_MIGRATE_PARAM_URI), or NULL */
    enum migrate_mode mode;
    bool copy_storage;           /* VIR_MIGRATE_NON_SHARED_DISK */
    const char *dest_dir;        /* with copy_storage: images go to DIR/BASENAME */
    bool unsafe;                 /* VIR_MIGRATE_UNSAFE (shared path on one host) */
    bool auto_converge;          /* VIR_MIGRATE_AUTO_CONVERGE */
    uint64_t max_downtime_ms;    /* 0: QEMU's default */
    uint64_t bandwidth_mib;      /* MiB/s, 0: unlimited */
    unsigned int postcopy_after; /* seconds before switching to post-copy, 0: never */
    unsigned int parallel;       /* parallel connections, 0 or 1: one */
    unsigned int timeout;        /* seconds before the job is aborted, 0: none */
    /* Set (by a signal handler): abort the job, the domain stays on the
     * source (VK_ERR_INTERRUPTED).  May be NULL. */
    const volatile sig_atomic_t *cancel;

    /* --planned (migrate_planned_run) */
    bool planned;
    const char *via;               /* backup target (name or URL), NULL: the policy's primary */
    unsigned int shutdown_timeout; /* seconds to wait for a guest shutdown, 0: 120 */
    bool force;                    /* destroy the domain when it does not shut down in time */
    const char *dest_pool;         /* destination storage pool, NULL: "default" */
    const char *catalog_path;      /* set by the caller: the backups open their own handle */
    /* What the catalog's moves record a success as: "migrate" (NULL),
     * "evacuate" (set by migrate_evacuate). */
    const char *move_kind;
    const struct config *config; /* set by the caller: target names, policies; may be NULL */
};

/* Check option combinations (offline with copy-storage or post-copy, ...).
 * RUNNING says whether the domain runs.  VK_ERR_INVALID with a sentence. */
int migrate_options_check(const struct migrate_options *o, bool running);
/* The virDomainMigrateFlags for O and a domain that runs or not. */
unsigned long migrate_flags(const struct migrate_options *o, bool running);
/* The typed parameters of the migration (free with virTypedParamsFree);
 * DEST_XML and PERSIST_XML (the live and the persistent definition on the
 * destination) may be NULL. */
int migrate_params_build(const struct migrate_options *o, const char *dest_xml,
                         const char *persist_xml, virTypedParameterPtr *params, int *nparams);

/* ---------------------------------------------------------------- pre-checks */

enum migrate_check_status {
    MIGRATE_CHECK_PASS = 0,
    MIGRATE_CHECK_FAIL,
    MIGRATE_CHECK_SKIP, /* could not run because an earlier check failed */
};

struct migrate_check {
    char *name; /* "reachable", "cpu", "memory", "storage vda", "name", "uuid" */
    enum migrate_check_status status;
    char *detail; /* one sentence */
};

struct migrate_report {
    struct migrate_check *items;
    size_t nr;
    size_t failed;
    uint64_t dest_free_bytes; /* free memory on the destination, 0 if unknown */
    uint64_t domain_bytes;    /* the domain's memory */
    char **created;           /* destination images the checks created (NULL-terminated) */
};

int migrate_report_add(struct migrate_report *r, const char *name, enum migrate_check_status status,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Remember an image the checks created (removed again if the migration
 * fails). */
int migrate_report_created(struct migrate_report *r, const char *path);
/* Remove the images the checks created. */
void migrate_report_remove_created(struct migrate_report *r);
/* "memory, storage vda" (malloc'd), or NULL with nothing failed. */
char *migrate_report_failures(const struct migrate_report *r);
/* "name: a domain named 'x' already exists ...; memory: ..." (malloc'd),
 * or NULL with nothing failed. */
char *migrate_report_describe(const struct migrate_report *r);
const char *migrate_check_status_name(enum migrate_check_status status);
void migrate_report_clear(struct migrate_report *r);

/* Run every pre-check of domain DOM against the destination connection
 * DCONN (NULL when it could not be opened: CONNECT_ERROR says why).  With
 * MIGRATE_DRY_RUN nothing is created; otherwise missing destination images
 * for --copy-storage are created (qemu-img, same format and size).  The
 * destination XML (disk paths moved to --dest-dir) is returned in
 * *DEST_XML when DEST_XML is not NULL.  Returns 0 (look at R->failed) or -1
 * when the checks themselves could not run. */
#define MIGRATE_DRY_RUN 1u
#define MIGRATE_PROGRESS 2u /* print job progress on stderr */
#define MIGRATE_PLANNED 4u  /* the checks of a planned move: no CPU, no storage paths */
#define MIGRATE_STEPS 8u    /* planned moves: one line per step on stderr */
int migrate_check_run(virDomainPtr dom, virConnectPtr dconn, const char *connect_error,
                      const struct migrate_options *o, unsigned int flags, struct migrate_report *r,
                      char **dest_xml);
/* Pure helpers (unit tests): whether a destination with FREE bytes takes
 * NEED bytes; where a source image goes with --dest-dir. */
bool migrate_memory_fits(uint64_t free_bytes, uint64_t need_bytes);
char *migrate_dest_path(const char *source, const char *dest_dir);
/* Replace each disk <source file='...'/> of XML by its place under
 * DEST_DIR (malloc'd XML), or return a copy when DEST_DIR is NULL. */
char *migrate_xml_move_disks(const char *xml, const char *dest_dir);

/* ---------------------------------------------------------------- migration */

struct migrate_result {
    char *domain;
    char *to;
    bool ok;
    bool dry_run;
    bool live;
    bool postcopy;       /* switched to post-copy */
    bool aborted;        /* SIGINT or timeout */
    bool source_running; /* after a failure: still running on the source */
    char *error;         /* what failed, or NULL */
    double seconds;      /* wall-clock duration of the migration */
    int64_t downtime_ms; /* measured (VIR_DOMAIN_JOB_DOWNTIME), -1: unknown */
    uint64_t data_total; /* bytes, from the last job stats */
    int64_t job_id;      /* catalog job, 0 when none */
    struct migrate_report report;
    /* planned moves */
    bool planned;
    const char *failed_step; /* static: "backup", "shutdown", "restore", ...; or NULL */
    char **backups;          /* ids of the backups taken (NULL-terminated), or NULL */
    char **volumes;          /* paths of the volumes on the destination, or NULL */
};

/* Migrate O->domain from O->from to O->to.  The job goes into CAT (which
 * may be NULL).  Returns 0 when the domain moved (or, with
 * MIGRATE_DRY_RUN, when every pre-check passed), -1 otherwise; RES is
 * filled either way (migrate_result_clear() it). */
int migrate_run(struct catalog *cat, const struct migrate_options *o, unsigned int flags,
                struct migrate_result *res);
void migrate_result_clear(struct migrate_result *res);
/* Record in CAT (may be NULL) that domain O->domain (UUID) moved from O->from
 * to O->to: the hosts registered with those libvirt URIs, else the URIs.  A
 * failure is logged, not returned: the move itself succeeded. */
void migrate_move_record(struct catalog *cat, const struct migrate_options *o, const char *name,
                         const char *uuid, const char *kind);

/* Whether O->cancel is set (SIGINT/SIGTERM while the job runs). */
bool migrate_cancelled(const struct migrate_options *o);

/* ---------------------------------------------------------------- planned moves */

/* The steps of a planned move, in order (names as in migrate_result's
 * failed_step and in VIRTKEEP_TEST_FAIL_STEP). */
enum migrate_planned_step {
    MIGRATE_STEP_CHECKS = 0,
    MIGRATE_STEP_BACKUP,   /* incremental while the domain runs */
    MIGRATE_STEP_SHUTDOWN, /* graceful, destroy only with --force */
    MIGRATE_STEP_FINAL,    /* final incremental of the shut-off domain */
    MIGRATE_STEP_RESTORE,  /* restore into a local staging directory */
    MIGRATE_STEP_UPLOAD,   /* volumes in the destination pool, sparse upload */
    MIGRATE_STEP_VERIFY,   /* the volumes read back equal the restored images */
    MIGRATE_STEP_DEFINE,   /* define and start there: running and persistent */
    MIGRATE_STEP_UNDEFINE, /* undefine on the source (its disk files stay) */
    MIGRATE_STEP_COUNT,
};
const char *migrate_planned_step_name(enum migrate_planned_step step);

/* Move O->domain (O->planned) from O->from to O->to through backups on
 * O->via, recording a "migrate-planned" job with the downtime (from the
 * shutdown request to the domain running on the destination) in CAT.  On a
 * failure after the shutdown everything made on the destination is removed
 * and the domain is started again on the source.  Returns 0 when the
 * domain moved (with MIGRATE_DRY_RUN: when every check passed), -1
 * otherwise; RES is filled either way. */
int migrate_planned_run(struct catalog *cat, const struct migrate_options *o, unsigned int flags,
                        struct migrate_result *res);

/* ---------------------------------------------------------------- evacuation */

struct evacuate_options {
    const char *from;
    char **to; /* NULL-terminated destination URIs */
    unsigned int parallel;
    bool include_stopped;
    const char *catalog_path;    /* each worker opens its own handle; NULL: none */
    struct migrate_options base; /* bandwidth, unsafe, migrate_uri, ... */
};

struct evacuate_item {
    char *domain;
    char *dest; /* NULL when no destination passed the pre-checks */
    bool was_running;
    struct migrate_result res;
};

struct evacuate_result {
    struct evacuate_item *items;
    size_t nr;
    size_t failed;
};

/* One destination seen by the placement. */
struct evacuate_dest {
    const char *uri;
    uint64_t free_bytes; /* decreases as domains are placed on it */
};

/* Pick the destination for a domain of NEED bytes: among DESTS whose
 * PASSES[i] is true and which still fit, the one with the most free memory
 * (the first on ties).  Its free memory is reduced by NEED.  Returns the
 * index, or -1 when none fits. */
int evacuate_place(struct evacuate_dest *dests, size_t n, const bool *passes, uint64_t need);

int evacuate_run(const struct evacuate_options *o, unsigned int flags, struct evacuate_result *res);
void evacuate_result_clear(struct evacuate_result *res);

#endif
