/* virtkeep - catalog: where each archive of a backup is stored. */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

static bool is_sha256_hex(const char *s)
{
    if (strlen(s) != 64)
        return false;
    return strspn(s, "0123456789abcdef") == 64;
}

static int check_location(const struct catalog_location *loc)
{
    const char *id = loc->backup_id ? loc->backup_id : "";

    if (!loc->target || !*loc->target || !loc->key || !*loc->key) {
        vk_error(VK_ERR_INVALID, "a location of backup '%s' lacks a target or an object key", id);
        return -1;
    }
    if (loc->sha256 && !is_sha256_hex(loc->sha256)) {
        vk_error(VK_ERR_INVALID,
                 "the sha256 of object '%s' of backup '%s' is not 64 lower-case hex digits: '%s'",
                 loc->key, id, loc->sha256);
        return -1;
    }
    return 0;
}

int catalog_archive_add_location(struct catalog *cat, const struct catalog_location *loc)
{
    int64_t created = loc->created ? loc->created : (int64_t)time(NULL);

    if (check_location(loc) == -1)
        return -1;
    if (catalog_sql_run(cat,
                        "INSERT INTO archive_locations(backup_id, disk, target, object_key, size, "
                        "sha256, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                        "ON CONFLICT(backup_id, target, object_key) DO UPDATE SET "
                        "disk = excluded.disk, size = excluded.size, sha256 = excluded.sha256, "
                        "created = excluded.created",
                        "ttttuti", loc->backup_id, loc->disk, loc->target, loc->key, loc->size,
                        loc->sha256, created) == -1) {
        if (catalog_sql_fault(cat) == CATALOG_FAULT_FOREIGN_KEY)
            vk_error(VK_ERR_NOT_FOUND, "backup '%s' is not in catalog '%s'", loc->backup_id,
                     cat->path);
        else
            vk_error_prefix("cannot record object '%s' on target '%s'", loc->key, loc->target);
        return -1;
    }
    return 0;
}

int catalog_archive_remove_location(struct catalog *cat, const char *backup_id, const char *target,
                                    const char *key)
{
    int n = catalog_sql_run(cat,
                            "DELETE FROM archive_locations WHERE backup_id = ?1 AND target = ?2 "
                            "AND object_key = ?3",
                            "ttt", backup_id, target, key);

    if (n == 0)
        vk_error(VK_ERR_NOT_FOUND, "backup '%s' has no object '%s' on target '%s'", backup_id, key,
                 target);
    return n >= 1 ? 0 : -1;
}

static int read_location(struct catalog_stmt *stmt, void *item)
{
    struct catalog_location *l = item;
    bool ok = true;

    l->backup_id = catalog_sql_text(stmt, 0, &ok);
    l->disk = catalog_sql_text(stmt, 1, &ok);
    l->target = catalog_sql_text(stmt, 2, &ok);
    l->key = catalog_sql_text(stmt, 3, &ok);
    l->size = (uint64_t)catalog_sql_int(stmt, 4);
    l->sha256 = catalog_sql_text(stmt, 5, &ok);
    l->created = catalog_sql_int(stmt, 6);
    return ok ? 0 : -1;
}

int catalog_archive_list(struct catalog *cat, const char *backup_id, const char *target,
                         struct catalog_locations **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_locations *list;

    *out = NULL;
    stmt = catalog_sql_prepare(cat,
                               "SELECT backup_id, disk, target, object_key, size, sha256, created "
                               "FROM archive_locations WHERE (?1 IS NULL OR backup_id = ?1) "
                               "AND (?2 IS NULL OR target = ?2) "
                               "ORDER BY backup_id, disk NULLS FIRST, target, object_key",
                               "tt", backup_id, target);
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list ||
        catalog_sql_list(cat, stmt, sizeof *list->items, read_location, catalog_location_clear,
                         (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}
