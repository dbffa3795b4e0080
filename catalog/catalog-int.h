/* virtkeep - catalog internals shared by the files of catalog/.  Never
 * included from outside this folder. */
#ifndef VIRTKEEP_CATALOG_INT_H
#define VIRTKEEP_CATALOG_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/catalog.h"

/* ---- backends ------------------------------------------------------------
 *
 * The catalog speaks SQL to one of two engines: SQLite (a file, the default)
 * or PostgreSQL (a postgresql:// URL, libpq).  Everything above this line
 * of abstraction (the files of catalog/ other than sqlite.c and pg.c) is
 * written once, in SQL that both accept:
 *
 *   - parameters are ?1, ?2 ... (the PostgreSQL backend sends $1, $2 ...),
 *     each bound with a C type (text, int64, double) that PostgreSQL is told;
 *   - upserts are INSERT ... ON CONFLICT (...) DO UPDATE / DO NOTHING, with
 *     the existing row named by its table (domains.uuid), new ids come from
 *     INSERT ... RETURNING id;
 *   - NULLs sort where asked (NULLS FIRST), a subquery in FROM has an alias,
 *     sums are coalesce(sum(x * 1.0), 0), text search is instr(), which the
 *     PostgreSQL backend sends as strpos() (same arguments);
 *   - a row lock is written FOR UPDATE [SKIP LOCKED] at the end of a
 *     SELECT, inside a transaction opened by catalog_begin_rows(); SQLite,
 *     whose write transaction already holds the whole file, drops it;
 *   - the schema (schema.c) is written with the SQLite type names INTEGER,
 *     REAL, TEXT and "INTEGER PRIMARY KEY [AUTOINCREMENT]"; the PostgreSQL
 *     backend maps them to BIGINT, DOUBLE PRECISION, TEXT COLLATE "C" (byte
 *     order, as SQLite compares) and BIGINT identity columns.
 *
 * A backend is one const struct catalog_backend.  Its statements are
 * prepared with their parameters already bound, so that PostgreSQL can run
 * them at once (the whole result is then in memory); step walks the rows.
 */

/* One bound parameter. */
struct catalog_value {
    char type; /* 't' text (s may be NULL), 'i' int64, 'd' double */
    union {
        const char *s;
        int64_t i;
        double d;
    } u;
};

/* Why the last statement failed, for the callers that tell the cases
 * apart (a duplicate id, a row that references a missing one). */
enum catalog_fault {
    CATALOG_FAULT_NONE,
    CATALOG_FAULT_UNIQUE,
    CATALOG_FAULT_FOREIGN_KEY,
    CATALOG_FAULT_OTHER,
};

/* A statement: prepared, bound, and (PostgreSQL) already run. */
struct catalog_stmt {
    struct catalog *cat;
    void *handle;    /* sqlite3_stmt * or PGresult * */
    int row, rows;   /* PostgreSQL: the current row (-1 before the first) */
    int64_t changes; /* PostgreSQL: rows changed (PQcmdTuples) */
};

/* What a catalog says about itself: a virtkeep catalog has the application
 * id CATALOG_APPLICATION_ID and a schema version; OBJECTS counts the
 * tables, indexes ... of the database (or schema), ours or not. */
struct catalog_schema_state {
    int64_t app_id, version, objects;
};

/* 'VKCT' */
#define CATALOG_APPLICATION_ID 0x564b4354

struct catalog_backend {
    const char *name; /* "sqlite", "postgresql" */
    /* Connect to cat->path and configure the connection (not the schema).
     * FLAGS: CATALOG_OPEN_*. */
    int (*connect)(struct catalog *cat, unsigned int flags);
    void (*disconnect)(struct catalog *cat);
    /* Prepare SQL (the portable text above) with its N parameters bound;
     * NULL with the error recorded. */
    struct catalog_stmt *(*prepare)(struct catalog *cat, const char *sql, size_t n,
                                    const struct catalog_value *vals);
    /* 1 for a row, 0 at the end, -1 (recorded). */
    int (*step)(struct catalog_stmt *stmt);
    /* Rows changed by a statement stepped to its end. */
    int64_t (*changes)(struct catalog_stmt *stmt);
    /* Columns of the current row: NULL reads as NULL, 0 and 0.0. */
    const char *(*column_text)(struct catalog_stmt *stmt, int col);
    int64_t (*column_int)(struct catalog_stmt *stmt, int col);
    double (*column_double)(struct catalog_stmt *stmt, int col);
    void (*finalize)(struct catalog_stmt *stmt);
    /* Run a script of several statements without parameters (a schema
     * step, in the backend's own type names: see above). */
    int (*exec_schema)(struct catalog *cat, const char *script);
    /* Transactions.  begin takes the catalog's write lock: one explicit
     * transaction at a time, from any process (SQLite: BEGIN IMMEDIATE;
     * PostgreSQL: a transaction-level advisory lock). */
    int (*begin)(struct catalog *cat);
    /* A transaction that takes row locks (SELECT ... FOR UPDATE [SKIP
     * LOCKED]) rather than the catalog's write lock, so that claimers of
     * different rows do not wait for each other (PostgreSQL: BEGIN; SQLite:
     * BEGIN IMMEDIATE, one writer at a time). */
    int (*begin_rows)(struct catalog *cat);
    int (*commit)(struct catalog *cat);
    void (*rollback)(struct catalog *cat);
    /* Read the schema state; inside a transaction when migrating. */
    int (*schema_read)(struct catalog *cat, struct catalog_schema_state *st);
    /* Record that the schema is now at VERSION (from VERSION - 1), with
     * the application id when VERSION is 1.  Inside the migration's
     * transaction. */
    int (*schema_write)(struct catalog *cat, int64_t version);
};

extern const struct catalog_backend catalog_backend_sqlite;
extern const struct catalog_backend catalog_backend_pg;

struct catalog {
    const struct catalog_backend *be;
    char *path;               /* the file, or the URL as shown (never a password) */
    void *db;                 /* sqlite3 *, or the PostgreSQL backend's state */
    bool in_tx;               /* between catalog_begin and catalog_commit/rollback */
    enum catalog_fault fault; /* of the last failed statement */
    char *host;               /* this host's name (catalog_host_self) */
    char *fence_domain;       /* catalog_fence_set: commits of this domain's */
    int64_t fence_epoch;      /* backups check the lease at this epoch */
};

/* Open a transaction with catalog_begin_rows() for row locks (see the
 * backend's begin_rows); end it with catalog_commit/rollback. */
int catalog_begin_rows(struct catalog *cat);

/* Inside a catalog_begin_rows() transaction: lock the lease of DOMAIN and
 * check that this host holds it at EPOCH and that it has not expired at
 * NOW.  -1 (VK_ERR_BUSY, naming the domain, the holder and the next step)
 * when the lease was lost. */
int catalog_lease_fence(struct catalog *cat, const char *domain, int64_t epoch, int64_t now);

/* Is PATH a PostgreSQL URL (postgresql:// or postgres://)? */
bool catalog_is_pg_url(const char *path);

/* Prepare SQL and bind the arguments described by TYPES, one letter each:
 *   t  const char * (NULL binds NULL)
 *   i  int64_t
 *   u  uint64_t (must fit in int64_t)
 *   d  double
 * Returns NULL with the error recorded. */
struct catalog_stmt *catalog_sql_prepare(struct catalog *cat, const char *sql, const char *types,
                                         ...);
/* Prepare, bind, and step to the end.  Returns the number of rows changed,
 * or -1. */
int catalog_sql_run(struct catalog *cat, const char *sql, const char *types, ...);
/* Step once: 1 for a row, 0 when done, -1 on error (recorded). */
int catalog_sql_step(struct catalog *cat, struct catalog_stmt *stmt);
/* Step an INSERT ... RETURNING id to its end: the new id (> 0), or -1
 * (recorded; WHAT names the row, e.g. "drill"). */
int64_t catalog_sql_new_id(struct catalog *cat, struct catalog_stmt *stmt, const char *what);
/* Why the last failed statement failed. */
enum catalog_fault catalog_sql_fault(struct catalog *cat);

void catalog_sql_finalize(struct catalog_stmt **stmt);
#define CLEANUP_STMT __attribute__((cleanup(catalog_sql_finalize)))

/* Column readers.  catalog_sql_text duplicates the text (NULL stays NULL)
 * and clears *OK when out of memory; catalog_sql_column borrows it (valid
 * until the next step). */
char *catalog_sql_text(struct catalog_stmt *stmt, int col, bool *ok);
const char *catalog_sql_column(struct catalog_stmt *stmt, int col);
int64_t catalog_sql_int(struct catalog_stmt *stmt, int col);
double catalog_sql_double(struct catalog_stmt *stmt, int col);

/* Grow an array by one zeroed element; returns it or NULL (recorded). */
void *catalog_array_push(void **items, size_t *count, size_t size);
/* Free an array of COUNT elements of SIZE bytes, CLEAR freeing the fields
 * of each. */
void catalog_array_free(void *items, size_t count, size_t size, void (*clear)(void *));

/* Step STMT to its end, appending one element of SIZE bytes to *ITEMS per
 * row, filled by READ_ROW (which returns -1 on failure, the error recorded).
 * On failure every element is cleared with CLEAR, the array freed, *ITEMS
 * and *COUNT reset, and -1 returned.  STMT stays the caller's. */
int catalog_sql_list(struct catalog *cat, struct catalog_stmt *stmt, size_t size,
                     int (*read_row)(struct catalog_stmt *, void *), void (*clear)(void *),
                     void **items, size_t *count);

/* Fail the orphans of one table: SELECT_SQL returns (id, pid, pid_start) of the
 * rows of this host (?1, bound to its name) still queued or running; each whose process is gone is
 * updated by UPDATE_SQL
 * (?1 the id, ?2 the error, starting with CATALOG_ORPHAN_ERROR, ?3 the time),
 * which must only change a row still queued or running.  ID_IS_INT: the id
 * is an integer (else text).  *MARKED (if not NULL) gets the number of rows
 * changed. */
int catalog_sql_fail_orphans(struct catalog *cat, const char *select_sql, const char *update_sql,
                             bool id_is_int, unsigned int *marked);

/* Migrations (schema.c): bring the open database to CATALOG_SCHEMA_VERSION. */
int catalog_schema_migrate(struct catalog *cat);

/* Is the process of a row (PID started at PID_START, 0: unknown) gone?
 * (A pid of 0 or less: treated as gone.) */
bool catalog_pid_gone(int64_t pid, int64_t pid_start);
/* The pid_start to store for a row inserted with PID and PID_START: PID_START
 * when set, else what /proc shows for PID now (0 when it cannot be read). */
int64_t catalog_pid_start(int64_t pid, int64_t pid_start);

/* Make sure domain NAME has a row (domains.c). */
int catalog_domain_ensure(struct catalog *cat, const char *name);

/* Record field helpers (records.c).  The clear functions free the fields
 * of one element (a struct catalog_domain, _disk, _backup, _backup_disk,
 * _location or _job), in the shape catalog_sql_list and catalog_array_free
 * take. */
void catalog_domain_clear(void *domain);
void catalog_disk_clear(void *disk);
void catalog_backup_clear(void *backup);
void catalog_backup_disk_clear(void *disk);
void catalog_location_clear(void *location);
void catalog_job_clear(void *job);
int catalog_backup_copy(struct catalog_backup *dst, const struct catalog_backup *src);

#endif
