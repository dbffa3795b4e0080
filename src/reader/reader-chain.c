/* virtkeep - the chain of a backup, or of a point in time, and its disks. */
#include <config.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/reader/reader.h"

int reader_chain_find(struct catalog *cat, const char *domain, const char *backup_id, int64_t at,
                      struct catalog_backups **chain)
{
    struct catalog_backups *all = NULL;
    int r;

    if (catalog_backup_list(cat, domain, 0, &all) < 0)
        return -1;
    if (backup_id)
        r = catalog_chain_resolve(all, backup_id, chain);
    else
        r = catalog_chain_at(all, domain, at, chain);
    catalog_backups_free(all);
    if (r == 0 && (*chain)->count == 0) {
        catalog_backups_free(*chain);
        vk_error(VK_ERR_INTERNAL, "the chain of backup '%s' is empty", backup_id ? backup_id : "");
        return -1;
    }
    return r;
}

int reader_disks_select(struct catalog *cat, char *const *disks, const char *tip,
                        struct catalog_backup_disks **out)
{
    struct catalog_backup_disks *all;
    size_t n = 0;

    if (catalog_backup_disk_list(cat, tip, &all) < 0)
        return -1;
    for (size_t i = 0; disks && disks[i]; i++) {
        bool found = false;
        for (size_t j = 0; j < all->count && !found; j++)
            found = strcmp(all->items[j].target, disks[i]) == 0;
        if (!found) {
            vk_error(VK_ERR_NOT_FOUND, "backup '%s' has no disk '%s'", tip, disks[i]);
            catalog_backup_disks_free(all);
            return -1;
        }
    }
    for (size_t j = 0; j < all->count; j++) {
        if (disks && !vk_strv_contains(disks, all->items[j].target)) {
            free(all->items[j].backup_id);
            free(all->items[j].target);
            free(all->items[j].format);
            continue;
        }
        all->items[n++] = all->items[j];
    }
    all->count = n;
    *out = all;
    return 0;
}
