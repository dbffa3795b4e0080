/* virtkeep - small SQLite helpers for the catalog: errors, binding, columns. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/proc.h"
#include "common/util.h"

static enum vk_error_code code_from_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return VK_ERR_CORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return VK_ERR_BUSY;
    case SQLITE_FULL:
        return VK_ERR_NO_SPACE;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return VK_ERR_PERMISSION;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
        return VK_ERR_IO;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return VK_ERR_INVALID;
    default:
        return VK_ERR_INTERNAL;
    }
}

int catalog_sql_error_rc(struct catalog *cat, int rc)
{
    const char *msg = cat->db ? sqlite3_errmsg(cat->db) : sqlite3_errstr(rc);
    enum vk_error_code code = code_from_sqlite(rc);

    if (code == VK_ERR_CORRUPT)
        vk_error(code, "catalog '%s' is corrupt or not a database: %s", cat->path, msg);
    else
        vk_error(code, "catalog '%s': %s", cat->path, msg);
    return -1;
}

int catalog_sql_error(struct catalog *cat)
{
    return catalog_sql_error_rc(cat, sqlite3_extended_errcode(cat->db));
}

static int bind_one(sqlite3_stmt *stmt, int idx, char type, va_list *ap)
{
    const char *s;
    uint64_t u;

    switch (type) {
    case 't':
        s = va_arg(*ap, const char *);
        return s ? sqlite3_bind_text(stmt, idx, s, -1, SQLITE_TRANSIENT)
                 : sqlite3_bind_null(stmt, idx);
    case 'i':
        return sqlite3_bind_int64(stmt, idx, va_arg(*ap, int64_t));
    case 'u':
        u = va_arg(*ap, uint64_t);
        if (u > INT64_MAX)
            return SQLITE_RANGE;
        return sqlite3_bind_int64(stmt, idx, (sqlite3_int64)u);
    case 'd':
        return sqlite3_bind_double(stmt, idx, va_arg(*ap, double));
    case 'v':
        return sqlite3_bind_value(stmt, idx, va_arg(*ap, const sqlite3_value *));
    default:
        return SQLITE_MISUSE;
    }
}

static sqlite3_stmt *prepare_va(struct catalog *cat, const char *sql, const char *types,
                                va_list *ap)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        catalog_sql_error_rc(cat, rc);
        return NULL;
    }
    for (int i = 0; types && types[i]; i++) {
        rc = bind_one(stmt, i + 1, types[i], ap);
        if (rc != SQLITE_OK) {
            vk_error(VK_ERR_INTERNAL, "catalog '%s': cannot bind parameter %d of '%s': %s",
                     cat->path, i + 1, sql, sqlite3_errstr(rc));
            sqlite3_finalize(stmt);
            return NULL;
        }
    }
    return stmt;
}

sqlite3_stmt *catalog_sql_prepare(struct catalog *cat, const char *sql, const char *types, ...)
{
    sqlite3_stmt *stmt;
    va_list ap;

    va_start(ap, types);
    stmt = prepare_va(cat, sql, types, &ap);
    va_end(ap);
    return stmt;
}

int catalog_sql_step(struct catalog *cat, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return catalog_sql_error_rc(cat, rc);
}

int catalog_sql_run(struct catalog *cat, const char *sql, const char *types, ...)
{
    CLEANUP_STMT sqlite3_stmt *stmt = NULL;
    va_list ap;
    int r;

    va_start(ap, types);
    stmt = prepare_va(cat, sql, types, &ap);
    va_end(ap);
    if (!stmt)
        return -1;
    while ((r = catalog_sql_step(cat, stmt)) == 1)
        ;
    if (r == -1)
        return -1;
    return sqlite3_changes(cat->db);
}

void catalog_sql_finalize(sqlite3_stmt **stmt)
{
    if (*stmt)
        sqlite3_finalize(*stmt);
    *stmt = NULL;
}

char *catalog_sql_text(sqlite3_stmt *stmt, int col, bool *ok)
{
    const unsigned char *s = sqlite3_column_text(stmt, col);
    char *copy;

    if (!s)
        return NULL;
    copy = vk_strdup((const char *)s);
    if (!copy)
        *ok = false;
    return copy;
}

int64_t catalog_sql_int(sqlite3_stmt *stmt, int col)
{
    return sqlite3_column_int64(stmt, col);
}

void *catalog_array_push(void **items, size_t *count, size_t size)
{
    char *grown = vk_realloc_array(*items, *count + 1, size);

    if (!grown)
        return NULL;
    *items = grown;
    memset(grown + *count * size, 0, size);
    return grown + (*count)++ * size;
}

void catalog_array_free(void *items, size_t count, size_t size, void (*clear)(void *))
{
    for (size_t i = 0; i < count; i++)
        clear((char *)items + i * size);
    free(items);
}

int catalog_sql_list(struct catalog *cat, sqlite3_stmt *stmt, size_t size,
                     int (*read_row)(sqlite3_stmt *, void *), void (*clear)(void *), void **items,
                     size_t *count)
{
    void *item;
    int r;

    while ((r = catalog_sql_step(cat, stmt)) == 1) {
        item = catalog_array_push(items, count, size);
        if (!item || read_row(stmt, item) == -1)
            break;
    }
    if (r != 0) {
        catalog_array_free(*items, *count, size, clear);
        *items = NULL;
        *count = 0;
        return -1;
    }
    return 0;
}

int catalog_sql_fail_orphans(struct catalog *cat, const char *select_sql, const char *update_sql,
                             unsigned int *marked)
{
    CLEANUP_STMT sqlite3_stmt *stmt = catalog_sql_prepare(cat, select_sql, NULL);
    CLEANUP_FREE char *why = NULL;
    unsigned int count = 0;
    int r, n;

    if (!stmt)
        return -1;
    while ((r = catalog_sql_step(cat, stmt)) == 1) {
        int64_t pid = catalog_sql_int(stmt, 1);

        if (!catalog_pid_gone(pid, catalog_sql_int(stmt, 2)))
            continue;
        free(why);
        why = vk_asprintf(CATALOG_ORPHAN_ERROR " (pid %" PRId64 ") is gone", pid);
        n = why ? catalog_sql_run(cat, update_sql, "vti", sqlite3_column_value(stmt, 0), why,
                                  (int64_t)time(NULL))
                : -1;
        if (n == -1)
            return -1;
        count += (unsigned int)n;
    }
    if (marked)
        *marked = count;
    return r == 0 ? 0 : -1;
}

bool catalog_pid_gone(int64_t pid, int64_t pid_start)
{
    return !vk_proc_alive(pid, (uint64_t)pid_start);
}

int64_t catalog_pid_start(int64_t pid, int64_t pid_start)
{
    uint64_t start = 0;

    if (pid_start)
        return pid_start;
    if (vk_proc_start_time(pid, &start) < 0) {
        vk_error_clear();
        return 0;
    }
    return start > INT64_MAX ? 0 : (int64_t)start;
}
