/* virtkeep - the SQLite backend of the catalog: one file, WAL mode, foreign
 * keys on, a busy timeout; created 0600 in directories created 0700. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

/* How long a writer waits for another process holding the write lock. */
#define BUSY_TIMEOUT_MS 10000
#define OPEN_RETRY_MS 20

#define DB(cat) ((sqlite3 *)(cat)->db)
#define STMT(stmt) ((sqlite3_stmt *)(stmt)->handle)

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

static enum catalog_fault fault_from_sqlite(int rc)
{
    switch (rc) {
    case SQLITE_OK:
        return CATALOG_FAULT_NONE;
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        return CATALOG_FAULT_UNIQUE;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return CATALOG_FAULT_FOREIGN_KEY;
    default:
        return CATALOG_FAULT_OTHER;
    }
}

/* Record an SQLite error against the catalog file.  Returns -1. */
static int sql_error_rc(struct catalog *cat, int rc)
{
    const char *msg = cat->db ? sqlite3_errmsg(DB(cat)) : sqlite3_errstr(rc);
    enum vk_error_code code = code_from_sqlite(rc);

    if (cat->db)
        rc = sqlite3_extended_errcode(DB(cat));
    cat->fault = fault_from_sqlite(rc);
    if (code == VK_ERR_CORRUPT)
        vk_error(code, "catalog '%s' is corrupt or not a database: %s", cat->path, msg);
    else
        vk_error(code, "catalog '%s': %s", cat->path, msg);
    return -1;
}

static int sql_error(struct catalog *cat)
{
    return sql_error_rc(cat, sqlite3_extended_errcode(DB(cat)));
}

static int bind_one(sqlite3_stmt *stmt, int idx, const struct catalog_value *v)
{
    switch (v->type) {
    case 't':
        return v->u.s ? sqlite3_bind_text(stmt, idx, v->u.s, -1, SQLITE_TRANSIENT)
                      : sqlite3_bind_null(stmt, idx);
    case 'i':
        return sqlite3_bind_int64(stmt, idx, v->u.i);
    case 'd':
        return sqlite3_bind_double(stmt, idx, v->u.d);
    default:
        return SQLITE_MISUSE;
    }
}

/* The length of SQL without its trailing row lock: BEGIN IMMEDIATE
 * already holds the whole file (catalog-int.h). */
static int sql_length(const char *sql)
{
    const char *lock = strstr(sql, " FOR UPDATE");

    return lock && !strchr(lock + 1, '?') ? (int)(lock - sql) : -1;
}

static struct catalog_stmt *lite_prepare(struct catalog *cat, const char *sql, size_t n,
                                         const struct catalog_value *vals)
{
    struct catalog_stmt *stmt;
    sqlite3_stmt *handle = NULL;
    int rc;

    rc = sqlite3_prepare_v2(DB(cat), sql, sql_length(sql), &handle, NULL);
    if (rc != SQLITE_OK) {
        sql_error_rc(cat, rc);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        rc = bind_one(handle, (int)i + 1, &vals[i]);
        if (rc != SQLITE_OK) {
            vk_error(VK_ERR_INTERNAL, "catalog '%s': cannot bind parameter %zu of '%s': %s",
                     cat->path, i + 1, sql, sqlite3_errstr(rc));
            sqlite3_finalize(handle);
            return NULL;
        }
    }
    stmt = vk_calloc(1, sizeof *stmt);
    if (!stmt) {
        sqlite3_finalize(handle);
        return NULL;
    }
    stmt->cat = cat;
    stmt->handle = handle;
    return stmt;
}

static int lite_step(struct catalog_stmt *stmt)
{
    int rc = sqlite3_step(STMT(stmt));

    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return sql_error_rc(stmt->cat, rc);
}

static int64_t lite_changes(struct catalog_stmt *stmt)
{
    return sqlite3_changes(DB(stmt->cat));
}

static const char *lite_column_text(struct catalog_stmt *stmt, int col)
{
    return (const char *)sqlite3_column_text(STMT(stmt), col);
}

static int64_t lite_column_int(struct catalog_stmt *stmt, int col)
{
    return sqlite3_column_int64(STMT(stmt), col);
}

static double lite_column_double(struct catalog_stmt *stmt, int col)
{
    return sqlite3_column_double(STMT(stmt), col);
}

static void lite_finalize(struct catalog_stmt *stmt)
{
    sqlite3_finalize(STMT(stmt));
    free(stmt);
}

static int lite_exec(struct catalog *cat, const char *script)
{
    int rc = sqlite3_exec(DB(cat), script, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : sql_error_rc(cat, rc);
}

static int lite_begin(struct catalog *cat)
{
    return catalog_sql_run(cat, "BEGIN IMMEDIATE", NULL) == -1 ? -1 : 0;
}

static int lite_commit(struct catalog *cat)
{
    return catalog_sql_run(cat, "COMMIT", NULL) == -1 ? -1 : 0;
}

static void lite_rollback(struct catalog *cat)
{
    /* Keep the error that made the caller roll back. */
    if (cat->db && !sqlite3_get_autocommit(DB(cat)))
        sqlite3_exec(DB(cat), "ROLLBACK", NULL, NULL, NULL);
}

/* The schema version is PRAGMA user_version; PRAGMA application_id marks
 * the file as a virtkeep catalog.  All three read in one statement so that
 * they come from the same snapshot (another process may be migrating). */
static int lite_schema_read(struct catalog *cat, struct catalog_schema_state *st)
{
    CLEANUP_STMT struct catalog_stmt *stmt = catalog_sql_prepare(
        cat,
        "SELECT (SELECT application_id FROM pragma_application_id), "
        "(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)",
        NULL);

    if (!stmt || catalog_sql_step(cat, stmt) != 1)
        return -1;
    st->app_id = catalog_sql_int(stmt, 0);
    st->version = catalog_sql_int(stmt, 1);
    st->objects = catalog_sql_int(stmt, 2);
    return 0;
}

static int lite_schema_write(struct catalog *cat, int64_t version)
{
    char bump[64];

    snprintf(bump, sizeof bump, "PRAGMA user_version=%lld", (long long)version);
    if (catalog_sql_run(cat, bump, NULL) == -1)
        return -1;
    if (version == 1) {
        snprintf(bump, sizeof bump, "PRAGMA application_id=%d", CATALOG_APPLICATION_ID);
        if (catalog_sql_run(cat, bump, NULL) == -1)
            return -1;
    }
    return 0;
}

/* mkdir -p of the directory part of PATH, new directories 0700. */
static int make_parent_dirs(const char *path)
{
    CLEANUP_FREE char *dir = vk_strdup(path);

    if (!dir)
        return -1;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
            vk_error_errno(errno, "cannot create directory '%s' for catalog '%s'", dir, path);
            return -1;
        }
        *p = '/';
    }
    return 0;
}

/* Make sure PATH is a regular file, creating it 0600 when allowed: SQLite
 * would create it with the umask's permissions, and gives its -wal and -shm
 * files the database file's permissions. */
static int prepare_file(const char *path, unsigned int flags)
{
    struct stat st;
    int fd;

    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            vk_error(VK_ERR_INVALID, "catalog '%s' is not a regular file", path);
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT) {
        vk_error_errno(errno, "cannot open catalog '%s'", path);
        return -1;
    }
    if (flags & CATALOG_OPEN_EXISTING) {
        vk_error(VK_ERR_NOT_FOUND, "catalog '%s' does not exist", path);
        return -1;
    }
    if (make_parent_dirs(path) == -1)
        return -1;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1 && errno != EEXIST) {
        vk_error_errno(errno, "cannot create catalog '%s'", path);
        return -1;
    }
    if (fd >= 0)
        close(fd);
    return 0;
}

/* A full structural check is cheap at catalog sizes and turns a damaged
 * file into one clear error at open instead of odd failures later. */
static int check_integrity(struct catalog *cat)
{
    CLEANUP_STMT struct catalog_stmt *stmt =
        catalog_sql_prepare(cat, "PRAGMA quick_check(1)", NULL);
    const char *res;
    int r;

    if (!stmt)
        return -1;
    r = catalog_sql_step(cat, stmt);
    if (r == -1)
        return -1;
    res = r == 1 ? catalog_sql_column(stmt, 0) : NULL;
    if (!res || strcmp(res, "ok") != 0) {
        vk_error(VK_ERR_CORRUPT, "catalog '%s' is corrupt: %s", cat->path,
                 res ? res : "integrity check returned nothing");
        return -1;
    }
    return 0;
}

static int set_wal(struct catalog *cat)
{
    CLEANUP_STMT struct catalog_stmt *stmt =
        catalog_sql_prepare(cat, "PRAGMA journal_mode=WAL", NULL);
    const char *mode;

    if (!stmt || catalog_sql_step(cat, stmt) != 1)
        return stmt ? sql_error(cat) : -1;
    mode = catalog_sql_column(stmt, 0);
    if (!mode || strcmp(mode, "wal") != 0) {
        vk_error(VK_ERR_UNSUPPORTED, "catalog '%s' cannot use WAL mode (journal mode is '%s')",
                 cat->path, mode ? mode : "unknown");
        return -1;
    }
    return 0;
}

static int configure(struct catalog *cat)
{
    sqlite3_extended_result_codes(DB(cat), 1);
    sqlite3_busy_timeout(DB(cat), BUSY_TIMEOUT_MS);
    if (check_integrity(cat) == -1 || set_wal(cat) == -1)
        return -1;
    if (catalog_sql_run(cat, "PRAGMA foreign_keys=ON", NULL) == -1 ||
        catalog_sql_run(cat, "PRAGMA synchronous=FULL", NULL) == -1)
        return -1;
    return catalog_schema_migrate(cat);
}

static void lite_disconnect(struct catalog *cat)
{
    sqlite3_close_v2(DB(cat));
    cat->db = NULL;
}

/* Open, configure and migrate.  A few first-open steps (switching a fresh
 * file to WAL while another process migrates it) can report SQLITE_BUSY
 * without waiting in the busy handler: retry those from scratch for up to
 * the busy timeout. */
static int lite_connect(struct catalog *cat, unsigned int flags)
{
    sqlite3 *db;
    int rc;

    if (prepare_file(cat->path, flags) == -1)
        return -1;
    for (int waited = 0;; waited += OPEN_RETRY_MS) {
        db = NULL;
        rc = sqlite3_open_v2(cat->path, &db, SQLITE_OPEN_READWRITE, NULL);
        cat->db = db;
        if (rc != SQLITE_OK)
            return sql_error_rc(cat, rc);
        if (configure(cat) == 0)
            return 0;
        if (vk_error_code() != VK_ERR_BUSY || waited >= BUSY_TIMEOUT_MS)
            return -1;
        vk_debug("catalog '%s' is busy at open, retrying", cat->path);
        lite_disconnect(cat);
        usleep(OPEN_RETRY_MS * 1000);
    }
}

const struct catalog_backend catalog_backend_sqlite = {
    .name = "sqlite",
    .connect = lite_connect,
    .disconnect = lite_disconnect,
    .prepare = lite_prepare,
    .step = lite_step,
    .changes = lite_changes,
    .column_text = lite_column_text,
    .column_int = lite_column_int,
    .column_double = lite_column_double,
    .finalize = lite_finalize,
    .exec_schema = lite_exec,
    .begin = lite_begin,
    .begin_rows = lite_begin,
    .commit = lite_commit,
    .rollback = lite_rollback,
    .schema_read = lite_schema_read,
    .schema_write = lite_schema_write,
};
