/* virtkeep - `virtkeep list [DOMAIN] [--json]` and `virtkeep show BACKUP
 * [--json]`: what the catalog knows about backups. */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/json.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/cli/cli.h"

static struct json_object *ju64(uint64_t v)
{
    return json_object_new_int64((int64_t)v);
}

static void time_format(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "-");
}

static struct json_object *locations_json(const struct catalog_locations *locs, const char *id)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; i < locs->count; i++) {
        const struct catalog_location *l = &locs->items[i];
        struct json_object *o;
        if (strcmp(l->backup_id, id) != 0)
            continue;
        o = json_object_new_object();
        json_object_object_add(o, "disk", vk_json_string_or_null(l->disk));
        json_object_object_add(o, "target", vk_json_string_or_null(l->target));
        json_object_object_add(o, "key", vk_json_string_or_null(l->key));
        json_object_object_add(o, "size", ju64(l->size));
        json_object_object_add(o, "sha256", vk_json_string_or_null(l->sha256));
        json_object_array_add(a, o);
    }
    return a;
}

static struct json_object *backup_json(const struct catalog_backup *b)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "id", vk_json_string_or_null(b->id));
    json_object_object_add(o, "domain", vk_json_string_or_null(b->domain));
    json_object_object_add(o, "level", vk_json_string_or_null(catalog_level_name(b->level)));
    json_object_object_add(o, "status", vk_json_string_or_null(catalog_status_name(b->status)));
    json_object_object_add(o, "checkpoint", vk_json_string_or_null(b->checkpoint));
    json_object_object_add(o, "parent", vk_json_string_or_null(b->parent));
    json_object_object_add(o, "error", vk_json_string_or_null(b->error));
    json_object_object_add(o, "started", json_object_new_int64(b->started));
    json_object_object_add(o, "finished", json_object_new_int64(b->finished));
    json_object_object_add(o, "bytes_read", ju64(b->bytes_read));
    json_object_object_add(o, "bytes_written", ju64(b->bytes_written));
    json_object_object_add(o, "bytes_stored", ju64(b->bytes_stored));
    json_object_object_add(o, "pid", json_object_new_int64(b->pid));
    return o;
}

/* Open the catalog; *CAT stays NULL when it does not exist yet. */
static int catalog_get(struct cli *cli, struct catalog **cat)
{
    const char *path;
    int r = cli_config_load(cli);

    *cat = NULL;
    if (r != CLI_EXIT_OK)
        return r;
    path = cli_catalog_path(cli);
    if (!path)
        return cli_error_last();
    *cat = catalog_open(path, CATALOG_OPEN_EXISTING);
    if (*cat || vk_error_code() == VK_ERR_NOT_FOUND)
        return CLI_EXIT_OK;
    return cli_error_last();
}

/* ---- list ------------------------------------------------------------- */

static void list_print(const struct catalog_backups *bs)
{
    printf("%-34s %-16s %-5s %-9s %-20s %-34s %s\n", "ID", "DOMAIN", "LEVEL", "STATUS", "STARTED",
           "PARENT", "STORED");
    for (size_t i = 0; i < bs->count; i++) {
        const struct catalog_backup *b = &bs->items[i];
        char when[32], size[VK_SIZE_BUFLEN];
        time_format(b->started, when, sizeof when);
        vk_size_format(b->bytes_stored, size, sizeof size);
        printf("%-34s %-16s %-5s %-9s %-20s %-34s %s\n", b->id, b->domain,
               catalog_level_name(b->level), catalog_status_name(b->status), when,
               b->parent ? b->parent : "-", b->status == CATALOG_STATUS_COMMITTED ? size : "-");
        if (b->status == CATALOG_STATUS_FAILED && b->error)
            printf("    failed: %s\n", b->error);
    }
}

static int list_json(struct catalog *cat, const struct catalog_backups *bs)
{
    struct catalog_locations *locs = NULL;
    struct json_object *top, *arr;

    if (cat && catalog_archive_list(cat, NULL, NULL, &locs) < 0)
        return cli_error_last();
    top = json_object_new_object();
    arr = json_object_new_array();
    for (size_t i = 0; bs && i < bs->count; i++) {
        struct json_object *o = backup_json(&bs->items[i]);
        json_object_object_add(
            o, "locations", locs ? locations_json(locs, bs->items[i].id) : json_object_new_array());
        json_object_array_add(arr, o);
    }
    json_object_object_add(top, "backups", arr);
    cli_json_print(top);
    catalog_locations_free(locs);
    return CLI_EXIT_OK;
}

int cli_cmd_list(struct cli *cli, int argc, char **argv)
{
    struct catalog_backups *bs = NULL;
    struct catalog *cat = NULL;
    bool json = false;
    int r = cli_json_options_parse(&cli_command_list, argc, argv, "h", &json);

    if (r >= 0)
        return r;
    if (argc - optind > 1)
        return cli_usage_error("list", "list takes at most one domain");
    r = catalog_get(cli, &cat);
    if (r == CLI_EXIT_OK && cat &&
        catalog_backup_list(cat, argc > optind ? argv[optind] : NULL, 0, &bs) < 0)
        r = cli_error_last();
    if (r == CLI_EXIT_OK && json)
        r = list_json(cat, bs);
    else if (r == CLI_EXIT_OK && bs && bs->count)
        list_print(bs);
    catalog_backups_free(bs);
    catalog_close(cat);
    return r;
}

/* ---- show ------------------------------------------------------------- */

struct shown {
    struct catalog_backup *b;
    struct catalog_backup_disks *disks;
    struct catalog_locations *locs;
    struct catalog_backups *all, *chain;
    char *chain_error;
};

static void shown_clear(struct shown *s)
{
    catalog_backup_free(s->b);
    catalog_backup_disks_free(s->disks);
    catalog_locations_free(s->locs);
    catalog_backups_free(s->all);
    catalog_backups_free(s->chain);
    free(s->chain_error);
}

static int shown_load(struct catalog *cat, const char *id, struct shown *s)
{
    s->b = catalog_backup_get(cat, id);
    if (!s->b)
        return -1;
    if (catalog_backup_disk_list(cat, id, &s->disks) < 0 ||
        catalog_archive_list(cat, id, NULL, &s->locs) < 0 ||
        catalog_backup_list(cat, s->b->domain, 0, &s->all) < 0)
        return -1;
    if (catalog_chain_resolve(s->all, id, &s->chain) < 0)
        s->chain_error = vk_strdup(vk_error_message());
    return 0;
}

static void show_json(const struct shown *s)
{
    struct json_object *o = backup_json(s->b);
    struct json_object *disks = json_object_new_array();
    struct json_object *chain = s->chain ? json_object_new_array() : NULL;

    json_object_object_add(o, "checkpoint_xml", vk_json_string_or_null(s->b->checkpoint_xml));
    json_object_object_add(o, "domain_xml", vk_json_string_or_null(s->b->domain_xml));
    for (size_t i = 0; i < s->disks->count; i++) {
        const struct catalog_backup_disk *d = &s->disks->items[i];
        struct json_object *dj = json_object_new_object();
        json_object_object_add(dj, "disk", vk_json_string_or_null(d->target));
        json_object_object_add(dj, "format", vk_json_string_or_null(d->format));
        json_object_object_add(dj, "virtual_size", ju64(d->virtual_size));
        json_object_object_add(dj, "bytes_read", ju64(d->bytes_read));
        json_object_object_add(dj, "bytes_stored", ju64(d->bytes_stored));
        json_object_array_add(disks, dj);
    }
    json_object_object_add(o, "disks", disks);
    json_object_object_add(o, "locations", locations_json(s->locs, s->b->id));
    for (size_t i = 0; chain && i < s->chain->count; i++)
        json_object_array_add(chain, vk_json_string_or_null(s->chain->items[i].id));
    json_object_object_add(o, "chain", chain);
    json_object_object_add(o, "chain_error", vk_json_string_or_null(s->chain_error));
    cli_json_print(o);
}

static void show_text(const struct shown *s)
{
    const struct catalog_backup *b = s->b;
    char t1[32], t2[32], sz[VK_SIZE_BUFLEN];

    time_format(b->started, t1, sizeof t1);
    time_format(b->finished, t2, sizeof t2);
    printf("Backup:      %s\nDomain:      %s\nLevel:       %s\nStatus:      %s\n", b->id, b->domain,
           catalog_level_name(b->level), catalog_status_name(b->status));
    if (b->error)
        printf("Error:       %s\n", b->error);
    printf("Started:     %s\nFinished:    %s\nParent:      %s\nCheckpoint:  %s\n", t1, t2,
           b->parent ? b->parent : "-", b->checkpoint ? b->checkpoint : "-");
    printf("Read:        %s\n", vk_size_format(b->bytes_read, sz, sizeof sz));
    printf("Stored:      %s\n", vk_size_format(b->bytes_stored, sz, sizeof sz));
    printf("Chain:      ");
    for (size_t i = 0; s->chain && i < s->chain->count; i++)
        printf(" %s", s->chain->items[i].id);
    printf("%s\n", s->chain ? "" : s->chain_error ? s->chain_error : " -");
    for (size_t i = 0; i < s->disks->count; i++)
        printf("Disk:        %s (%s, %s virtual)\n", s->disks->items[i].target,
               s->disks->items[i].format,
               vk_size_format(s->disks->items[i].virtual_size, sz, sizeof sz));
    for (size_t i = 0; i < s->locs->count; i++)
        printf("Location:    %s: %s (%s, sha256 %s)\n", s->locs->items[i].target,
               s->locs->items[i].key, vk_size_format(s->locs->items[i].size, sz, sizeof sz),
               s->locs->items[i].sha256 ? s->locs->items[i].sha256 : "-");
}

int cli_cmd_show(struct cli *cli, int argc, char **argv)
{
    struct shown s = {0};
    struct catalog *cat = NULL;
    bool json = false;
    int r = cli_json_options_parse(&cli_command_show, argc, argv, "h", &json);

    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return cli_usage_error("show", "show takes one backup id");
    r = catalog_get(cli, &cat);
    if (r == CLI_EXIT_OK && !cat) {
        cli_error("backup '%s' not found: the catalog is empty", argv[optind]);
        r = CLI_EXIT_NOT_FOUND;
    } else if (r == CLI_EXIT_OK && shown_load(cat, argv[optind], &s) < 0) {
        r = cli_error_last();
    } else if (r == CLI_EXIT_OK) {
        if (json)
            show_json(&s);
        else
            show_text(&s);
    }
    shown_clear(&s);
    catalog_close(cat);
    return r;
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option list_options[] = {
    {"json", no_argument, 'j', NULL,
     "print {\"backups\": [{id, domain, level, status, checkpoint, parent,\n"
     "error, started, finished, bytes_read, bytes_written, bytes_stored, pid,\n"
     "locations: [{disk, target, key, size, sha256}]}]} on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_list = {
    .name = "list",
    .synopsis = "[DOMAIN] [--json]",
    .summary = "List the backups in the catalog.",
    .help = "Lists the backups of DOMAIN (or of every domain), oldest first: id, domain, level,\n"
            "status, start time (UTC), parent and stored size.  Failed backups are listed with\n"
            "their reason.\n",
    .options = list_options,
    .tail = NULL,
    .run = cli_cmd_list,
};

static const struct cli_option show_options[] = {
    {"json", no_argument, 'j', NULL,
     "the same as one JSON object (list fields plus checkpoint_xml,\n"
     "domain_xml, disks, locations, chain, chain_error)"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_show = {
    .name = "show",
    .synopsis = "BACKUP [--json]",
    .summary = "Show everything about one backup.",
    .help = "Shows the fields of backup BACKUP, its disks, where its archives are stored (target,\n"
            "key, size, sha256), its checkpoint and the chain a restore needs (oldest first).\n",
    .options = show_options,
    .tail = "Exit status: 0, or 3 when BACKUP is not in the catalog.\n",
    .run = cli_cmd_show,
};
