/* virtkeep - catalog records: free and copy functions. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "catalog/catalog-int.h"
#include "common/util.h"

void catalog_domain_free(struct catalog_domain *domain)
{
    if (!domain)
        return;
    free(domain->name);
    free(domain->uuid);
    free(domain);
}

void catalog_backup_clear(struct catalog_backup *b)
{
    free(b->id);
    free(b->domain);
    free(b->checkpoint);
    free(b->parent);
    free(b->error);
    free(b->checkpoint_xml);
    free(b->domain_xml);
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
    if (!ok) {
        catalog_backup_clear(dst);
        return -1;
    }
    return 0;
}

static void job_clear(struct catalog_job *job)
{
    free(job->kind);
    free(job->domain);
    free(job->target);
    free(job->backup_id);
    free(job->error);
}

void catalog_job_free(struct catalog_job *job)
{
    if (!job)
        return;
    job_clear(job);
    free(job);
}

void catalog_domains_free(struct catalog_domains *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].name);
        free(list->items[i].uuid);
    }
    free(list->items);
    free(list);
}

void catalog_disks_free(struct catalog_disks *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].domain);
        free(list->items[i].target);
        free(list->items[i].format);
    }
    free(list->items);
    free(list);
}

void catalog_backups_free(struct catalog_backups *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        catalog_backup_clear(&list->items[i]);
    free(list->items);
    free(list);
}

void catalog_backup_disks_free(struct catalog_backup_disks *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].backup_id);
        free(list->items[i].target);
        free(list->items[i].format);
    }
    free(list->items);
    free(list);
}

void catalog_locations_free(struct catalog_locations *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].backup_id);
        free(list->items[i].disk);
        free(list->items[i].target);
        free(list->items[i].key);
        free(list->items[i].sha256);
    }
    free(list->items);
    free(list);
}

void catalog_jobs_free(struct catalog_jobs *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        job_clear(&list->items[i]);
    free(list->items);
    free(list);
}
