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

/* Migrations (schema.c): bring the open database to CATALOG_SCHEMA_VERSION. */
int catalog_schema_migrate(struct catalog *cat);

/* Is process PID gone?  (0 or negative: treated as gone.) */
bool catalog_pid_gone(int64_t pid);

/* Make sure domain NAME has a row (domains.c). */
int catalog_domain_ensure(struct catalog *cat, const char *name);

/* Record field helpers (records.c). */
void catalog_backup_clear(struct catalog_backup *backup);
int catalog_backup_copy(struct catalog_backup *dst, const struct catalog_backup *src);

#endif
