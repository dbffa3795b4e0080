/* virtkeep - the options of a backup (parsed by the CLI, src/cli/cli-backup.c)
 * and what a backup reports: the --json object and the one-line summary. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/json.h"
#include "common/units.h"
#include "common/util.h"
#include "src/backup/backup.h"

int backup_compress_level_parse(const char *str, int *level)
{
    unsigned long long v;

    if (vk_parse_uint(str, BACKUP_COMPRESS_LEVEL_MAX, &v) < 0 || v < 1) {
        vk_error(VK_ERR_INVALID, "invalid compression level '%s': expected a number from 1 to %d",
                 str, BACKUP_COMPRESS_LEVEL_MAX);
        return -1;
    }
    *level = (int)v;
    return 0;
}

void backup_options_clear(struct backup_options *o)
{
    free(o->domain);
    free(o->target);
    vk_strv_free(o->disks);
    vk_strv_free(o->exclude);
    memset(o, 0, sizeof *o);
}

/* ---- the result ----------------------------------------------------- */

void backup_result_clear(struct backup_result *r)
{
    for (size_t i = 0; i < r->nr_disks; i++) {
        free(r->disks[i].disk);
        free(r->disks[i].format);
        free(r->disks[i].key);
    }
    free(r->disks);
    free(r->id);
    free(r->domain);
    free(r->parent);
    free(r->reason);
    free(r->checkpoint);
    free(r->target);
    free(r->manifest_key);
    memset(r, 0, sizeof *r);
}

struct backup_result_disk *backup_result_disk_add(struct backup_result *r)
{
    struct backup_result_disk *d = vk_realloc_array(r->disks, r->nr_disks + 1, sizeof *d);

    if (!d)
        return NULL;
    r->disks = d;
    d = &r->disks[r->nr_disks++];
    memset(d, 0, sizeof *d);
    return d;
}

static struct json_object *u64(uint64_t v)
{
    return json_object_new_int64((int64_t)v);
}

static struct json_object *disk_to_json(const struct backup_result_disk *d)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "disk", vk_json_string_or_null(d->disk));
    json_object_object_add(o, "format", vk_json_string_or_null(d->format));
    json_object_object_add(o, "virtual_size", u64(d->virtual_size));
    json_object_object_add(o, "key", vk_json_string_or_null(d->key));
    json_object_object_add(o, "archive_size", u64(d->archive_size));
    json_object_object_add(o, "sha256", json_object_new_string(d->sha256));
    json_object_object_add(o, "data_bytes", u64(d->data_bytes));
    json_object_object_add(o, "zero_bytes", u64(d->zero_bytes));
    json_object_object_add(o, "stored_bytes", u64(d->stored_bytes));
    json_object_object_add(o, "chunks", u64(d->chunks));
    return o;
}

struct json_object *backup_result_to_json(const struct backup_result *r)
{
    struct json_object *o = json_object_new_object();
    struct json_object *disks = json_object_new_array();

    json_object_object_add(o, "backup", vk_json_string_or_null(r->id));
    json_object_object_add(o, "domain", vk_json_string_or_null(r->domain));
    json_object_object_add(o, "level", json_object_new_string(catalog_level_name(r->level)));
    json_object_object_add(o, "requested_level",
                           json_object_new_string(r->requested_level == CATALOG_LEVEL_AUTO
                                                      ? "auto"
                                                      : catalog_level_name(r->requested_level)));
    json_object_object_add(o, "parent", vk_json_string_or_null(r->parent));
    json_object_object_add(o, "reason", vk_json_string_or_null(r->reason));
    json_object_object_add(o, "checkpoint", vk_json_string_or_null(r->checkpoint));
    json_object_object_add(o, "target", vk_json_string_or_null(r->target));
    json_object_object_add(o, "status", json_object_new_string("committed"));
    json_object_object_add(o, "started", json_object_new_int64(r->started));
    json_object_object_add(o, "finished", json_object_new_int64(r->finished));
    json_object_object_add(o, "duration_seconds", json_object_new_double(r->wall_ns / 1e9));
    json_object_object_add(o, "bytes_read", u64(r->bytes_read));
    json_object_object_add(o, "bytes_stored", u64(r->bytes_stored));
    for (size_t i = 0; i < r->nr_disks; i++)
        json_object_array_add(disks, disk_to_json(&r->disks[i]));
    json_object_object_add(o, "disks", disks);
    json_object_object_add(o, "manifest_key", vk_json_string_or_null(r->manifest_key));
    return o;
}

char *backup_result_summary(const struct backup_result *r)
{
    char rd[VK_SIZE_BUFLEN], st[VK_SIZE_BUFLEN], dur[VK_DURATION_BUFLEN];
    uint64_t secs = (r->wall_ns + 500000000) / 1000000000;

    vk_size_format(r->bytes_read, rd, sizeof rd);
    vk_size_format(r->bytes_stored, st, sizeof st);
    vk_duration_format(secs, dur, sizeof dur);
    return vk_asprintf("backup %s: %s of %s, %zu disk%s, read %s, stored %s in %s -> target '%s'",
                       r->id, catalog_level_name(r->level), r->domain, r->nr_disks,
                       r->nr_disks == 1 ? "" : "s", rd, st, dur, r->target);
}
