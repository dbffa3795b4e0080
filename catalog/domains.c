/* virtkeep - catalog: domains and their disks. */
#include <config.h>

#include <stdlib.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

static int check_name(const char *name)
{
    if (!name || !*name) {
        vk_error(VK_ERR_INVALID, "a domain name in the catalog cannot be empty");
        return -1;
    }
    return 0;
}

int catalog_domain_set(struct catalog *cat, const char *name, const char *uuid)
{
    if (check_name(name) == -1)
        return -1;
    if (catalog_sql_run(cat,
                        "INSERT INTO domains(name, uuid) VALUES(?1, ?2) ON CONFLICT(name) "
                        "DO UPDATE SET uuid = coalesce(excluded.uuid, domains.uuid)",
                        "tt", name, uuid) == -1) {
        vk_error_prefix("cannot record domain '%s'", name);
        return -1;
    }
    return 0;
}

static int read_domain(struct catalog_stmt *stmt, void *item)
{
    struct catalog_domain *d = item;
    bool ok = true;

    d->name = catalog_sql_text(stmt, 0, &ok);
    d->uuid = catalog_sql_text(stmt, 1, &ok);
    d->host = catalog_sql_text(stmt, 2, &ok);
    return ok ? 0 : -1;
}

struct catalog_domain *catalog_domain_get(struct catalog *cat, const char *name)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_domain *dom;
    int r = -1;

    stmt =
        catalog_sql_prepare(cat, "SELECT name, uuid, host FROM domains WHERE name = ?1", "t", name);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return NULL;
    if (r == 0) {
        vk_error(VK_ERR_NOT_FOUND, "domain '%s' is not in catalog '%s'", name, cat->path);
        return NULL;
    }
    dom = vk_calloc(1, sizeof *dom);
    if (dom && read_domain(stmt, dom) == -1) {
        catalog_domain_free(dom);
        return NULL;
    }
    return dom;
}

int catalog_domain_list(struct catalog *cat, struct catalog_domains **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_domains *list;

    *out = NULL;
    stmt = catalog_sql_prepare(cat, "SELECT name, uuid, host FROM domains ORDER BY name", NULL);
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list || catalog_sql_list(cat, stmt, sizeof *list->items, read_domain, catalog_domain_clear,
                                  (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}

int catalog_domain_ensure(struct catalog *cat, const char *name)
{
    if (check_name(name) == -1)
        return -1;
    return catalog_sql_run(cat, "INSERT INTO domains(name) VALUES(?1) ON CONFLICT(name) DO NOTHING",
                           "t", name) == -1
               ? -1
               : 0;
}

int catalog_disk_set(struct catalog *cat, const struct catalog_disk *disk)
{
    if (!disk->target || !*disk->target) {
        vk_error(VK_ERR_INVALID, "a disk of domain '%s' has no target name",
                 disk->domain ? disk->domain : "");
        return -1;
    }
    if (catalog_domain_ensure(cat, disk->domain) == -1 ||
        catalog_sql_run(cat,
                        "INSERT INTO disks(domain_id, target, format, virtual_size) "
                        "SELECT id, ?2, ?3, ?4 FROM domains WHERE name = ?1 "
                        "ON CONFLICT(domain_id, target) DO UPDATE SET "
                        "format = excluded.format, virtual_size = excluded.virtual_size",
                        "tttu", disk->domain, disk->target, disk->format,
                        disk->virtual_size) == -1) {
        vk_error_prefix("cannot record disk '%s' of domain '%s'", disk->target,
                        disk->domain ? disk->domain : "");
        return -1;
    }
    return 0;
}

static int read_disk(struct catalog_stmt *stmt, void *item)
{
    struct catalog_disk *d = item;
    bool ok = true;

    d->domain = catalog_sql_text(stmt, 0, &ok);
    d->target = catalog_sql_text(stmt, 1, &ok);
    d->format = catalog_sql_text(stmt, 2, &ok);
    d->virtual_size = (uint64_t)catalog_sql_int(stmt, 3);
    return ok ? 0 : -1;
}

int catalog_disk_list(struct catalog *cat, const char *domain, struct catalog_disks **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_disks *list;

    *out = NULL;
    stmt = catalog_sql_prepare(cat,
                               "SELECT d.name, k.target, k.format, k.virtual_size "
                               "FROM disks k JOIN domains d ON d.id = k.domain_id "
                               "WHERE d.name = ?1 ORDER BY k.target",
                               "t", domain);
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list || catalog_sql_list(cat, stmt, sizeof *list->items, read_disk, catalog_disk_clear,
                                  (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}
