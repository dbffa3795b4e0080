/* virtkeep - catalog: copy every row of one catalog into another
 * (`virtkeep catalog migrate --to postgresql://...`).
 *
 * Each table is described once: the columns read from the source (key
 * columns first), how to find the same row in the destination by its key,
 * and how to insert it there.  Integer ids differ between catalogs, so rows
 * refer to domains by name, and rows without a natural key (jobs, drills,
 * throughput, moves) are found by the columns that identify them.  A row
 * the destination already has with the same values is "known"; with other
 * values, a conflict.  Everything runs in one transaction of the
 * destination: any conflict, and nothing is written.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

#define IMPORT_COLUMNS_MAX 20
#define IMPORT_CONFLICTS_SHOWN 5

struct table {
    const char *name;
    const char *types; /* one letter per column: t, i, d */
    size_t keys;       /* the first KEYS columns identify a row */
    const char *select, *find, *insert;
};

#define BACKUP_COLS                                                                                \
    "b.id, d.name, b.level, b.checkpoint, b.parent, b.status, b.error, b.started, b.finished, "    \
    "b.bytes_read, b.bytes_written, b.bytes_stored, b.checkpoint_xml, b.domain_xml, b.pid, "       \
    "b.pid_start, b.host FROM backups b JOIN domains d ON d.id = b.domain_id "
#define JOB_COLS                                                                                   \
    "kind, domain, started, pid, target, backup_id, state, finished, progress_done, "              \
    "progress_total, estimate_seconds, elapsed_seconds, error, downtime_ms, pid_start, host, "     \
    "epoch FROM jobs "
#define DRILL_COLS                                                                                 \
    "domain, started, pid, backup_id, targets, state, finished, estimate_seconds, "                \
    "estimate_source, actual_seconds, bytes_read, disk_bytes, error, pid_start, host FROM drills "

/* Parents before children: domains, then what refers to them. */
static const struct table tables[] = {
    {"domains", "tt", 1, "SELECT name, uuid FROM domains ORDER BY name",
     "SELECT name, uuid FROM domains WHERE name = ?1",
     "INSERT INTO domains(name, uuid) VALUES(?1, ?2)"},
    {"disks", "ttti", 2,
     "SELECT d.name, k.target, k.format, k.virtual_size FROM disks k "
     "JOIN domains d ON d.id = k.domain_id ORDER BY 1, 2",
     "SELECT d.name, k.target, k.format, k.virtual_size FROM disks k "
     "JOIN domains d ON d.id = k.domain_id WHERE d.name = ?1 AND k.target = ?2",
     "INSERT INTO disks(domain_id, target, format, virtual_size) "
     "SELECT id, ?2, ?3, ?4 FROM domains WHERE name = ?1"},
    {"backups", "tttttttiiiiittiit", 1, "SELECT " BACKUP_COLS "ORDER BY b.started, b.id",
     "SELECT " BACKUP_COLS "WHERE b.id = ?1",
     "INSERT INTO backups(id, domain_id, level, checkpoint, parent, status, error, started, "
     "finished, bytes_read, bytes_written, bytes_stored, checkpoint_xml, domain_xml, pid, "
     "pid_start, host) SELECT ?1, id, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
     "?16, ?17 FROM domains WHERE name = ?2"},
    {"backup_disks", "tttiii", 2,
     "SELECT backup_id, target, format, virtual_size, bytes_read, bytes_stored FROM backup_disks "
     "ORDER BY 1, 2",
     "SELECT backup_id, target, format, virtual_size, bytes_read, bytes_stored FROM backup_disks "
     "WHERE backup_id = ?1 AND target = ?2",
     "INSERT INTO backup_disks(backup_id, target, format, virtual_size, bytes_read, bytes_stored) "
     "VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
    {"archive_locations", "ttttiti", 3,
     "SELECT backup_id, target, object_key, disk, size, sha256, created FROM archive_locations "
     "ORDER BY 1, 2, 3",
     "SELECT backup_id, target, object_key, disk, size, sha256, created FROM archive_locations "
     "WHERE backup_id = ?1 AND target = ?2 AND object_key = ?3",
     "INSERT INTO archive_locations(backup_id, target, object_key, disk, size, sha256, created) "
     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
    {"prune_intents", "tti", 1, "SELECT backup_id, reason, marked FROM prune_intents ORDER BY 1",
     "SELECT backup_id, reason, marked FROM prune_intents WHERE backup_id = ?1",
     "INSERT INTO prune_intents(backup_id, reason, marked) VALUES(?1, ?2, ?3)"},
    {"jobs", "ttiitttiiiddtiiti", 4, "SELECT " JOB_COLS "ORDER BY id",
     "SELECT " JOB_COLS "WHERE kind = ?1 AND domain IS NOT DISTINCT FROM ?2 AND started = ?3 "
     "AND pid = ?4",
     "INSERT INTO jobs(kind, domain, started, pid, target, backup_id, state, finished, "
     "progress_done, progress_total, estimate_seconds, elapsed_seconds, error, downtime_ms, "
     "pid_start, host, epoch) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
     "?14, ?15, ?16, ?17)"},
    {"drills", "tiitttidtdiitit", 3, "SELECT " DRILL_COLS "ORDER BY id",
     "SELECT " DRILL_COLS "WHERE domain = ?1 AND started = ?2 AND pid = ?3",
     "INSERT INTO drills(domain, started, pid, backup_id, targets, state, finished, "
     "estimate_seconds, estimate_source, actual_seconds, bytes_read, disk_bytes, error, "
     "pid_start, host) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"},
    {"throughput", "ttidi", 5,
     "SELECT target, direction, measured, seconds, bytes FROM throughput ORDER BY id",
     "SELECT target, direction, measured, seconds, bytes FROM throughput WHERE target = ?1 "
     "AND direction = ?2 AND measured = ?3 AND seconds = ?4 AND bytes = ?5",
     "INSERT INTO throughput(target, direction, measured, seconds, bytes) "
     "VALUES(?1, ?2, ?3, ?4, ?5)"},
    {"moves", "titttt", 4,
     "SELECT domain, moved, to_host, kind, from_host, uuid FROM moves ORDER BY id",
     "SELECT domain, moved, to_host, kind, from_host, uuid FROM moves WHERE domain = ?1 "
     "AND moved = ?2 AND to_host = ?3 AND kind = ?4",
     "INSERT INTO moves(domain, moved, to_host, kind, from_host, uuid) "
     "VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
};

struct row {
    size_t n;
    struct catalog_value v[IMPORT_COLUMNS_MAX];
    char *text[IMPORT_COLUMNS_MAX];
};

static void row_clear(struct row *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->text[i]);
    memset(r, 0, sizeof *r);
}

static int row_read(struct catalog_stmt *stmt, const char *types, struct row *r)
{
    bool ok = true;

    r->n = strlen(types);
    if (r->n > IMPORT_COLUMNS_MAX) {
        vk_error(VK_ERR_INTERNAL, "a catalog table to copy has more than %d columns",
                 IMPORT_COLUMNS_MAX);
        r->n = 0;
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        r->v[i].type = types[i];
        if (types[i] == 't')
            r->v[i].u.s = r->text[i] = catalog_sql_text(stmt, (int)i, &ok);
        else if (types[i] == 'i')
            r->v[i].u.i = catalog_sql_int(stmt, (int)i);
        else
            r->v[i].u.d = catalog_sql_double(stmt, (int)i);
    }
    return ok ? 0 : -1;
}

/* Equal doubles, but for the last bits a round trip through text may
 * change. */
static bool same_double(double a, double b)
{
    double diff = a > b ? a - b : b - a, mag = a < 0 ? -a : a;

    return diff <= 1e-9 * (mag > 1 ? mag : 1);
}

/* The first column where A and B differ, or -1. */
static int row_differs(const struct row *a, const struct row *b)
{
    for (size_t i = 0; i < a->n; i++) {
        const struct catalog_value *x = &a->v[i], *y = &b->v[i];
        bool same = x->type == 't'
                        ? (!x->u.s && !y->u.s) || (x->u.s && y->u.s && strcmp(x->u.s, y->u.s) == 0)
                    : x->type == 'i' ? x->u.i == y->u.i
                                     : same_double(x->u.d, y->u.d);
        if (!same)
            return (int)i;
    }
    return -1;
}

static char *value_show(const struct catalog_value *v)
{
    if (v->type == 't')
        return v->u.s ? vk_asprintf("'%.60s%s'", v->u.s, strlen(v->u.s) > 60 ? "..." : "")
                      : vk_strdup("NULL");
    if (v->type == 'i')
        return vk_asprintf("%lld", (long long)v->u.i);
    return vk_asprintf("%g", v->u.d);
}

/* "backups 'web1-...': column 6 is 'failed' in the destination, 'committed' in the source" */
static int conflict_add(const struct table *t, const struct row *src, const struct row *dst,
                        int col, struct catalog_import_result *res)
{
    CLEANUP_FREE char *key = value_show(&src->v[0]);
    CLEANUP_FREE char *was = value_show(&dst->v[col]);
    CLEANUP_FREE char *now = value_show(&src->v[col]);
    char *line, **v;
    size_t n = vk_strv_len(res->conflicts);

    if (!key || !was || !now)
        return -1;
    line = vk_asprintf("%s %s%s: column %d is %s in the destination but %s in the source", t->name,
                       key, t->keys > 1 ? " (and more key columns)" : "", col + 1, was, now);
    if (!line || !(v = vk_realloc_array(res->conflicts, n + 2, sizeof *v))) {
        free(line);
        return -1;
    }
    v[n] = line;
    v[n + 1] = NULL;
    res->conflicts = v;
    return 0;
}

/* One row of the source into DST: added, known or a conflict. */
static int row_import(struct catalog *dst, const struct table *t, const struct row *src,
                      struct catalog_import_result *res)
{
    struct catalog_stmt *stmt = dst->be->prepare(dst, t->find, t->keys, src->v);
    struct row have = {0};
    int r, col;

    if (!stmt)
        return -1;
    r = catalog_sql_step(dst, stmt);
    if (r == 1 && row_read(stmt, t->types, &have) < 0)
        r = -1;
    catalog_sql_finalize(&stmt);
    if (r == 1) {
        col = row_differs(src, &have);
        r = col < 0 ? 0 : conflict_add(t, src, &have, col, res);
        row_clear(&have);
        res->known += col < 0;
        return r;
    }
    if (r < 0 || !(stmt = dst->be->prepare(dst, t->insert, src->n, src->v)))
        return -1;
    r = catalog_sql_step(dst, stmt);
    catalog_sql_finalize(&stmt);
    res->added += r == 0;
    return r == 0 ? 0 : -1;
}

static int table_import(struct catalog *dst, struct catalog *src, const struct table *t,
                        struct catalog_import_result *res)
{
    CLEANUP_STMT struct catalog_stmt *stmt = src->be->prepare(src, t->select, 0, NULL);
    struct row row = {0};
    int r;

    if (!stmt)
        return -1;
    while ((r = catalog_sql_step(src, stmt)) == 1) {
        if (row_read(stmt, t->types, &row) < 0 || row_import(dst, t, &row, res) < 0) {
            row_clear(&row);
            vk_error_prefix("cannot copy the %s of catalog '%s'", t->name, src->path);
            return -1;
        }
        row_clear(&row);
    }
    return r;
}

static void conflicts_error(struct catalog *dst, struct catalog *src,
                            const struct catalog_import_result *res)
{
    size_t n = vk_strv_len(res->conflicts);
    CLEANUP_FREE char *shown = NULL;

    for (size_t i = 0; i < n && i < IMPORT_CONFLICTS_SHOWN; i++) {
        char *s = vk_asprintf("%s%s%s", shown ? shown : "", shown ? "; " : "", res->conflicts[i]);
        free(shown);
        if (!(shown = s))
            break;
    }
    vk_error(VK_ERR_INVALID,
             "catalog '%s' already holds %zu row(s) that differ from catalog '%s': %s%s; nothing "
             "was copied: resolve these rows (or migrate into an empty database) and run again",
             dst->path, n, src->path, shown ? shown : "",
             n > IMPORT_CONFLICTS_SHOWN ? "; ..." : "");
}

int catalog_import(struct catalog *dst, struct catalog *src, struct catalog_import_result *res)
{
    memset(res, 0, sizeof *res);
    if (catalog_begin(dst) < 0)
        return -1;
    for (size_t i = 0; i < VK_ARRAY_SIZE(tables); i++) {
        if (table_import(dst, src, &tables[i], res) < 0)
            goto fail;
    }
    if (res->conflicts) {
        conflicts_error(dst, src, res);
        goto fail;
    }
    if (catalog_commit(dst) == 0)
        return 0;
fail:
    catalog_rollback(dst);
    return -1;
}

void catalog_import_result_clear(struct catalog_import_result *res)
{
    vk_strv_free(res->conflicts);
    memset(res, 0, sizeof *res);
}
