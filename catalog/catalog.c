/* virtkeep - the catalog: open (either backend), close, transactions, names. */
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

struct catalog *catalog_open(const char *path, unsigned int flags)
{
    struct catalog *cat;

    if (!path || !*path) {
        vk_error(VK_ERR_INVALID, "the catalog path is empty");
        return NULL;
    }
    cat = vk_calloc(1, sizeof *cat);
    if (!cat)
        return NULL;
    cat->be = catalog_is_pg_url(path) ? &catalog_backend_pg : &catalog_backend_sqlite;
    /* The PostgreSQL backend replaces this with the URL as shown. */
    cat->path = vk_strdup(path);
    cat->host = catalog_host_self();
    if (!cat->path || !cat->host || cat->be->connect(cat, flags) == -1) {
        catalog_close(cat);
        return NULL;
    }
    return cat;
}

void catalog_close(struct catalog *cat)
{
    if (!cat)
        return;
    if (cat->db)
        cat->be->disconnect(cat);
    free(cat->path);
    free(cat->host);
    free(cat->fence_domain);
    free(cat);
}

const char *catalog_path(const struct catalog *cat)
{
    return cat->path;
}

int catalog_schema_version(struct catalog *cat)
{
    struct catalog_schema_state st;

    if (cat->be->schema_read(cat, &st) == -1)
        return -1;
    return (int)st.version;
}

int catalog_begin(struct catalog *cat)
{
    if (cat->be->begin(cat) == -1)
        return -1;
    cat->in_tx = true;
    return 0;
}

int catalog_begin_rows(struct catalog *cat)
{
    if (cat->be->begin_rows(cat) == -1)
        return -1;
    cat->in_tx = true;
    return 0;
}

int catalog_commit(struct catalog *cat)
{
    int r = cat->be->commit(cat);

    /* Committed or not, the caller's transaction is over: PostgreSQL
     * rolls back a failed COMMIT, and an SQLite transaction left open by a
     * busy COMMIT goes with the caller's catalog_rollback. */
    cat->in_tx = false;
    return r;
}

void catalog_rollback(struct catalog *cat)
{
    cat->be->rollback(cat);
    cat->in_tx = false;
}
