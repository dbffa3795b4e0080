/* virtkeep - catalog records: free and copy functions. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "catalog/catalog-int.h"
#include "common/util.h"

void catalog_domain_clear(void *domain)
{
    struct catalog_domain *d = domain;

    free(d->name);
    free(d->uuid);
    free(d->host);
}

void catalog_domain_free(struct catalog_domain *domain)
{
    if (!domain)
        return;
    catalog_domain_clear(domain);
    free(domain);
}

void catalog_disk_clear(void *disk)
{
    struct catalog_disk *d = disk;

    free(d->domain);
    free(d->target);
    free(d->format);
}

void catalog_backup_disk_clear(void *disk)
{
    struct catalog_backup_disk *d = disk;

    free(d->backup_id);
    free(d->target);
    free(d->format);
}

void catalog_location_clear(void *location)
{
    struct catalog_location *l = location;

    free(l->backup_id);
    free(l->disk);
    free(l->target);
    free(l->key);
    free(l->sha256);
}

void catalog_backup_clear(void *backup)
{
    struct catalog_backup *b = backup;

    free(b->id);
    free(b->domain);
    free(b->checkpoint);
    free(b->parent);
    free(b->error);
    free(b->checkpoint_xml);
    free(b->domain_xml);
    free(b->host);
    memset(b, 0, sizeof *b);
}

void catalog_backup_free(struct catalog_backup *backup)
{
    if (!backup)
        return;
    catalog_backup_clear(backup);
    free(backup);
}

/* Duplicate an optional string: *OK is cleared when out of memory. */
static char *dup_opt(const char *s, bool *ok)
{
    char *copy;

    if (!s)
        return NULL;
    copy = vk_strdup(s);
    if (!copy)
        *ok = false;
    return copy;
}

int catalog_backup_copy(struct catalog_backup *dst, const struct catalog_backup *src)
{
    bool ok = true;

    *dst = *src;
    dst->id = dup_opt(src->id, &ok);
    dst->domain = dup_opt(src->domain, &ok);
    dst->checkpoint = dup_opt(src->checkpoint, &ok);
    dst->parent = dup_opt(src->parent, &ok);
    dst->error = dup_opt(src->error, &ok);
    dst->checkpoint_xml = dup_opt(src->checkpoint_xml, &ok);
    dst->domain_xml = dup_opt(src->domain_xml, &ok);
    dst->host = dup_opt(src->host, &ok);
    if (!ok) {
        catalog_backup_clear(dst);
        return -1;
    }
    return 0;
}

void catalog_job_clear(void *item)
{
    struct catalog_job *job = item;

    free(job->kind);
    free(job->domain);
    free(job->target);
    free(job->backup_id);
    free(job->error);
    free(job->host);
}

void catalog_job_free(struct catalog_job *job)
{
    if (!job)
        return;
    catalog_job_clear(job);
    free(job);
}

void catalog_domains_free(struct catalog_domains *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items, catalog_domain_clear);
    free(list);
}

void catalog_disks_free(struct catalog_disks *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items, catalog_disk_clear);
    free(list);
}

void catalog_backups_free(struct catalog_backups *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items, catalog_backup_clear);
    free(list);
}

void catalog_backup_disks_free(struct catalog_backup_disks *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items,
                           catalog_backup_disk_clear);
    free(list);
}

void catalog_locations_free(struct catalog_locations *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items, catalog_location_clear);
    free(list);
}

void catalog_jobs_free(struct catalog_jobs *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items, catalog_job_clear);
    free(list);
}
