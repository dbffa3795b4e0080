/* virtkeep - catalog internals shared by the files of catalog/.  Never
 * included from outside this folder. */
#ifndef VIRTKEEP_CATALOG_INT_H
#define VIRTKEEP_CATALOG_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "catalog/catalog.h"

struct catalog {
    sqlite3 *db;
    char *path;
};

/* Record the connection's last SQLite error against the catalog file, with
 * a code derived from SQLite's (corrupt, busy, full, I/O ...).  Returns -1. */
int catalog_sql_error(struct catalog *cat);
/* Same for an explicit SQLite result code. */
int catalog_sql_error_rc(struct catalog *cat, int rc);

/* Prepare SQL and bind the arguments described by TYPES, one letter each:
 *   t  const char * (NULL binds NULL)
 *   i  int64_t
 *   u  uint64_t (must fit in int64_t)
 *   d  double
 *   v  const sqlite3_value * (a column of another statement, type kept)
 * Returns NULL with the error recorded. */
sqlite3_stmt *catalog_sql_prepare(struct catalog *cat, const char *sql, const char *types, ...);
/* Prepare, bind, and step to the end.  Returns the number of rows changed,
 * or -1. */
int catalog_sql_run(struct catalog *cat, const char *sql, const char *types, ...);
/* Step once: 1 for a row, 0 when done, -1 on error (recorded). */
int catalog_sql_step(struct catalog *cat, sqlite3_stmt *stmt);

void catalog_sql_finalize(sqlite3_stmt **stmt);
#define CLEANUP_STMT __attribute__((cleanup(catalog_sql_finalize)))

/* Column readers.  catalog_sql_text duplicates the text (NULL stays NULL)
 * and clears *OK when out of memory. */
char *catalog_sql_text(sqlite3_stmt *stmt, int col, bool *ok);
int64_t catalog_sql_int(sqlite3_stmt *stmt, int col);

/* Grow an array by one zeroed element; returns it or NULL (recorded). */
void *catalog_array_push(void **items, size_t *count, size_t size);
/* Free an array of COUNT elements of SIZE bytes, CLEAR freeing the fields
 * of each. */
void catalog_array_free(void *items, size_t count, size_t size, void (*clear)(void *));

/* Step STMT to its end, appending one element of SIZE bytes to *ITEMS per
 * row, filled by READ_ROW (which returns -1 on failure, the error recorded).
 * On failure every element is cleared with CLEAR, the array freed, *ITEMS
 * and *COUNT reset, and -1 returned.  STMT stays the caller's. */
int catalog_sql_list(struct catalog *cat, sqlite3_stmt *stmt, size_t size,
                     int (*read_row)(sqlite3_stmt *, void *), void (*clear)(void *), void **items,
                     size_t *count);

/* Fail the orphans of one table: SELECT_SQL returns (id, pid, pid_start) of the
 * rows still queued or running; each whose process is gone is updated by UPDATE_SQL
 * (?1 the id, ?2 the error, starting with CATALOG_ORPHAN_ERROR, ?3 the time),
 * which must only change a row still queued or running.  *MARKED (if not
 * NULL) gets the number of rows changed. */
int catalog_sql_fail_orphans(struct catalog *cat, const char *select_sql, const char *update_sql,
                             unsigned int *marked);

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
