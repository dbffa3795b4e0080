/* virtkeep - the catalog's SQL helpers over either backend: binding, steps,
 * columns, lists. */
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

/* More parameters than any statement of the catalog has. */
#define MAX_PARAMS 32

bool catalog_is_pg_url(const char *path)
{
    return path &&
           (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0);
}

static int collect(struct catalog *cat, const char *sql, const char *types, va_list *ap,
                   struct catalog_value *vals, size_t *n)
{
    uint64_t u;

    for (*n = 0; types && types[*n]; (*n)++) {
        struct catalog_value *v = &vals[*n];

        if (*n == MAX_PARAMS) {
            vk_error(VK_ERR_INTERNAL, "catalog '%s': too many parameters in '%s'", cat->path, sql);
            return -1;
        }
        switch (types[*n]) {
        case 't':
            v->type = 't';
            v->u.s = va_arg(*ap, const char *);
            break;
        case 'i':
            v->type = 'i';
            v->u.i = va_arg(*ap, int64_t);
            break;
        case 'u':
            u = va_arg(*ap, uint64_t);
            if (u > INT64_MAX) {
                vk_error(VK_ERR_INVALID,
                         "catalog '%s': parameter %zu of '%s' is too large (%" PRIu64 ")",
                         cat->path, *n + 1, sql, u);
                return -1;
            }
            v->type = 'i';
            v->u.i = (int64_t)u;
            break;
        case 'd':
            v->type = 'd';
            v->u.d = va_arg(*ap, double);
            break;
        default:
            vk_error(VK_ERR_INTERNAL, "catalog '%s': bad parameter type '%c' for '%s'", cat->path,
                     types[*n], sql);
            return -1;
        }
    }
    return 0;
}

static struct catalog_stmt *prepare_va(struct catalog *cat, const char *sql, const char *types,
                                       va_list *ap)
{
    struct catalog_value vals[MAX_PARAMS];
    size_t n;

    cat->fault = CATALOG_FAULT_NONE;
    if (collect(cat, sql, types, ap, vals, &n) == -1)
        return NULL;
    return cat->be->prepare(cat, sql, n, vals);
}

struct catalog_stmt *catalog_sql_prepare(struct catalog *cat, const char *sql, const char *types,
                                         ...)
{
    struct catalog_stmt *stmt;
    va_list ap;

    va_start(ap, types);
    stmt = prepare_va(cat, sql, types, &ap);
    va_end(ap);
    return stmt;
}

int catalog_sql_step(struct catalog *cat, struct catalog_stmt *stmt)
{
    (void)cat;
    return stmt->cat->be->step(stmt);
}

int64_t catalog_sql_new_id(struct catalog *cat, struct catalog_stmt *stmt, const char *what)
{
    int64_t id = 0;
    int r = stmt ? catalog_sql_step(cat, stmt) : -1;

    if (r == 1)
        id = catalog_sql_int(stmt, 0);
    if (r == 1 && id > 0 && (r = catalog_sql_step(cat, stmt)) == 0)
        return id;
    if (r != -1)
        vk_error(VK_ERR_INTERNAL, "catalog '%s' gave no id to the new %s", cat->path, what);
    return -1;
}

enum catalog_fault catalog_sql_fault(struct catalog *cat)
{
    return cat->fault;
}

int catalog_sql_run(struct catalog *cat, const char *sql, const char *types, ...)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
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
    return (int)cat->be->changes(stmt);
}

void catalog_sql_finalize(struct catalog_stmt **stmt)
{
    if (*stmt)
        (*stmt)->cat->be->finalize(*stmt);
    *stmt = NULL;
}

char *catalog_sql_text(struct catalog_stmt *stmt, int col, bool *ok)
{
    const char *s = catalog_sql_column(stmt, col);
    char *copy;

    if (!s)
        return NULL;
    copy = vk_strdup(s);
    if (!copy)
        *ok = false;
    return copy;
}

const char *catalog_sql_column(struct catalog_stmt *stmt, int col)
{
    return stmt->cat->be->column_text(stmt, col);
}

int64_t catalog_sql_int(struct catalog_stmt *stmt, int col)
{
    return stmt->cat->be->column_int(stmt, col);
}

double catalog_sql_double(struct catalog_stmt *stmt, int col)
{
    return stmt->cat->be->column_double(stmt, col);
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

int catalog_sql_list(struct catalog *cat, struct catalog_stmt *stmt, size_t size,
                     int (*read_row)(struct catalog_stmt *, void *), void (*clear)(void *),
                     void **items, size_t *count)
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
                             bool id_is_int, unsigned int *marked)
{
    CLEANUP_STMT struct catalog_stmt *stmt = catalog_sql_prepare(cat, select_sql, "t", cat->host);
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
        if (!why)
            return -1;
        if (id_is_int)
            n = catalog_sql_run(cat, update_sql, "iti", catalog_sql_int(stmt, 0), why,
                                (int64_t)time(NULL));
        else
            n = catalog_sql_run(cat, update_sql, "tti", catalog_sql_column(stmt, 0), why,
                                (int64_t)time(NULL));
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
