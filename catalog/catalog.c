/* virtkeep - SQLite catalog: open, close, transactions, names. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

/* How long a writer waits for another process holding the write lock. */
#define BUSY_TIMEOUT_MS 10000
#define OPEN_RETRY_MS 20

static const char *const level_names[] = {"full", "inc", "diff", "copy", "auto"};
static const char *const status_names[] = {"running", "committed", "failed"};
static const char *const job_state_names[] = {"queued", "running", "succeeded", "failed",
                                              "cancelled"};
static const char *const direction_names[] = {"read", "write"};
static const char *const drill_state_names[] = {"running", "ok", "failed", "cancelled"};

static const char *name_of(const char *const *names, size_t n, unsigned int v)
{
    return v < n ? names[v] : "unknown";
}

static int parse_name(const char *const *names, size_t n, const char *what, const char *str,
                      unsigned int *out)
{
    for (size_t i = 0; str && i < n; i++) {
        if (strcmp(names[i], str) == 0) {
            *out = (unsigned int)i;
            return 0;
        }
    }
    vk_error(VK_ERR_INVALID, "unknown %s '%s'", what, str ? str : "");
    return -1;
}

const char *catalog_level_name(enum catalog_level level)
{
    return name_of(level_names, VK_ARRAY_SIZE(level_names), level);
}

int catalog_level_parse(const char *str, enum catalog_level *level)
{
    unsigned int v;

    if (parse_name(level_names, VK_ARRAY_SIZE(level_names), "backup level", str, &v) == -1)
        return -1;
    *level = (enum catalog_level)v;
    return 0;
}

const char *catalog_status_name(enum catalog_status status)
{
    return name_of(status_names, VK_ARRAY_SIZE(status_names), status);
}

int catalog_status_parse(const char *str, enum catalog_status *status)
{
    unsigned int v;

    if (parse_name(status_names, VK_ARRAY_SIZE(status_names), "backup status", str, &v) == -1)
        return -1;
    *status = (enum catalog_status)v;
    return 0;
}

const char *catalog_job_state_name(enum catalog_job_state state)
{
    return name_of(job_state_names, VK_ARRAY_SIZE(job_state_names), state);
}

int catalog_job_state_parse(const char *str, enum catalog_job_state *state)
{
    unsigned int v;

    if (parse_name(job_state_names, VK_ARRAY_SIZE(job_state_names), "job state", str, &v) == -1)
        return -1;
    *state = (enum catalog_job_state)v;
    return 0;
}

const char *catalog_direction_name(enum catalog_direction dir)
{
    return name_of(direction_names, VK_ARRAY_SIZE(direction_names), dir);
}

const char *catalog_drill_state_name(enum catalog_drill_state state)
{
    return name_of(drill_state_names, VK_ARRAY_SIZE(drill_state_names), state);
}

int catalog_drill_state_parse(const char *str, enum catalog_drill_state *state)
{
    unsigned int v;

    if (parse_name(drill_state_names, VK_ARRAY_SIZE(drill_state_names), "drill state", str, &v) < 0)
        return -1;
    *state = (enum catalog_drill_state)v;
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
    CLEANUP_STMT sqlite3_stmt *stmt = catalog_sql_prepare(cat, "PRAGMA quick_check(1)", NULL);
    const char *res;
    int r;

    if (!stmt)
        return -1;
    r = catalog_sql_step(cat, stmt);
    if (r == -1)
        return -1;
    res = r == 1 ? (const char *)sqlite3_column_text(stmt, 0) : NULL;
    if (!res || strcmp(res, "ok") != 0) {
        vk_error(VK_ERR_CORRUPT, "catalog '%s' is corrupt: %s", cat->path,
                 res ? res : "integrity check returned nothing");
        return -1;
    }
    return 0;
}

static int set_wal(struct catalog *cat)
{
    CLEANUP_STMT sqlite3_stmt *stmt = catalog_sql_prepare(cat, "PRAGMA journal_mode=WAL", NULL);
    const char *mode;

    if (!stmt || catalog_sql_step(cat, stmt) != 1)
        return stmt ? catalog_sql_error(cat) : -1;
    mode = (const char *)sqlite3_column_text(stmt, 0);
    if (!mode || strcmp(mode, "wal") != 0) {
        vk_error(VK_ERR_UNSUPPORTED, "catalog '%s' cannot use WAL mode (journal mode is '%s')",
                 cat->path, mode ? mode : "unknown");
        return -1;
    }
    return 0;
}

static int configure(struct catalog *cat)
{
    sqlite3_extended_result_codes(cat->db, 1);
    sqlite3_busy_timeout(cat->db, BUSY_TIMEOUT_MS);
    if (check_integrity(cat) == -1 || set_wal(cat) == -1)
        return -1;
    if (catalog_sql_run(cat, "PRAGMA foreign_keys=ON", NULL) == -1 ||
        catalog_sql_run(cat, "PRAGMA synchronous=FULL", NULL) == -1)
        return -1;
    return catalog_schema_migrate(cat);
}

/* Open and configure the connection.  A few first-open steps (switching a
 * fresh file to WAL while another process migrates it) can report
 * SQLITE_BUSY without waiting in the busy handler: retry those from scratch
 * for up to the busy timeout. */
static int connect_db(struct catalog *cat)
{
    int rc;

    for (int waited = 0;; waited += OPEN_RETRY_MS) {
        rc = sqlite3_open_v2(cat->path, &cat->db, SQLITE_OPEN_READWRITE, NULL);
        if (rc != SQLITE_OK)
            return catalog_sql_error_rc(cat, rc);
        if (configure(cat) == 0)
            return 0;
        if (vk_error_code() != VK_ERR_BUSY || waited >= BUSY_TIMEOUT_MS)
            return -1;
        vk_debug("catalog '%s' is busy at open, retrying", cat->path);
        sqlite3_close_v2(cat->db);
        cat->db = NULL;
        usleep(OPEN_RETRY_MS * 1000);
    }
}

struct catalog *catalog_open(const char *path, unsigned int flags)
{
    struct catalog *cat;

    if (!path || !*path) {
        vk_error(VK_ERR_INVALID, "the catalog path is empty");
        return NULL;
    }
    if (prepare_file(path, flags) == -1)
        return NULL;
    cat = vk_calloc(1, sizeof *cat);
    if (!cat)
        return NULL;
    cat->path = vk_strdup(path);
    if (!cat->path || connect_db(cat) == -1) {
        catalog_close(cat);
        return NULL;
    }
    return cat;
}

void catalog_close(struct catalog *cat)
{
    if (!cat)
        return;
    sqlite3_close_v2(cat->db);
    free(cat->path);
    free(cat);
}

const char *catalog_path(const struct catalog *cat)
{
    return cat->path;
}

int catalog_schema_version(struct catalog *cat)
{
    CLEANUP_STMT sqlite3_stmt *stmt = catalog_sql_prepare(cat, "PRAGMA user_version", NULL);

    if (!stmt || catalog_sql_step(cat, stmt) != 1)
        return -1;
    return sqlite3_column_int(stmt, 0);
}

int catalog_begin(struct catalog *cat)
{
    return catalog_sql_run(cat, "BEGIN IMMEDIATE", NULL) == -1 ? -1 : 0;
}

int catalog_commit(struct catalog *cat)
{
    return catalog_sql_run(cat, "COMMIT", NULL) == -1 ? -1 : 0;
}

void catalog_rollback(struct catalog *cat)
{
    /* Keep the error that made the caller roll back. */
    if (!sqlite3_get_autocommit(cat->db))
        sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
}
