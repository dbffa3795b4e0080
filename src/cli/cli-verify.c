/* virtkeep - `virtkeep verify BACKUP|DOMAIN [--quick] [--from TARGET]
 * [--json]`: re-read archives and check them. */
#include <config.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/json.h"
#include "common/error.h"
#include "src/cli/cli.h"
#include "src/restore/restore.h"

enum { OPT_QUICK = 256, OPT_FROM, OPT_JSON };

static void result_print_json(const struct verify_result *r)
{
    struct json_object *o = json_object_new_object(), *items = json_object_new_array();

    for (size_t i = 0; i < r->nr; i++) {
        const struct verify_item *it = &r->items[i];
        struct json_object *j = json_object_new_object();
        json_object_object_add(j, "backup", vk_json_string_or_null(it->backup_id));
        json_object_object_add(j, "disk", vk_json_string_or_null(it->disk));
        json_object_object_add(j, "target", vk_json_string_or_null(it->target));
        json_object_object_add(j, "key", vk_json_string_or_null(it->key));
        json_object_object_add(j, "ok", json_object_new_boolean(it->ok));
        json_object_object_add(j, "chunks", json_object_new_int64((int64_t)it->chunks));
        json_object_object_add(j, "bytes", json_object_new_int64((int64_t)it->bytes));
        json_object_object_add(j, "error", vk_json_string_or_null(it->error));
        json_object_array_add(items, j);
    }
    json_object_object_add(o, "items", items);
    items = json_object_new_array();
    for (size_t i = 0; i < r->nr_links; i++) {
        const struct verify_item *it = &r->links[i];
        struct json_object *j = json_object_new_object();
        json_object_object_add(j, "backup", vk_json_string_or_null(it->backup_id));
        json_object_object_add(j, "parent", vk_json_string_or_null(it->parent));
        json_object_object_add(j, "target", vk_json_string_or_null(it->target));
        json_object_object_add(j, "key", vk_json_string_or_null(it->key));
        json_object_object_add(j, "ok", json_object_new_boolean(it->ok));
        json_object_object_add(j, "checked", json_object_new_boolean(it->ok && !it->unchecked));
        json_object_object_add(j, "error", vk_json_string_or_null(it->error));
        json_object_array_add(items, j);
    }
    json_object_object_add(o, "links", items);
    json_object_object_add(o, "failed", json_object_new_int64((int64_t)r->failed));
    json_object_object_add(o, "unchecked", json_object_new_int64((int64_t)r->unchecked));
    cli_json_print(o);
}

static void result_print(const struct verify_result *r, bool quiet)
{
    for (size_t i = 0; i < r->nr; i++) {
        const struct verify_item *it = &r->items[i];
        if (it->ok && !quiet)
            printf("OK      %s %s on '%s' (%s)\n", it->backup_id, it->disk ? it->disk : "manifest",
                   it->target, it->key ? it->key : "-");
        else if (!it->ok)
            cli_error("%s", it->error ? it->error : "verification failed");
    }
    for (size_t i = 0; i < r->nr_links; i++) {
        const struct verify_item *it = &r->links[i];
        if (!it->ok)
            cli_error("%s", it->error ? it->error : "chain link broken");
        else if (it->unchecked && !quiet)
            printf("UNCHECKED %s link to %s on '%s' (%s): its manifest is older than version 3 "
                   "and records no digest of its parent's manifest\n",
                   it->backup_id, it->parent, it->target, it->key ? it->key : "-");
        else if (!quiet)
            printf("OK      %s link to %s on '%s' (%s)\n", it->backup_id, it->parent, it->target,
                   it->key ? it->key : "-");
    }
    if (!quiet && r->unchecked)
        printf("%zu checked, %zu failed, %zu chain links not checked\n", r->nr + r->nr_links,
               r->failed, r->unchecked);
    else if (!quiet)
        printf("%zu checked, %zu failed\n", r->nr + r->nr_links, r->failed);
}

int cli_cmd_verify(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_verify;
    struct verify_options vo = {0};
    struct verify_result res = {0};
    struct catalog *cat;
    unsigned int flags = 0;
    bool json = false;
    int c, r;

    while ((c = cli_options_next(&cli_command_verify, argc, argv, "h")) != -1) {
        if (c == OPT_QUICK)
            flags |= VERIFY_QUICK;
        else if (c == OPT_FROM)
            vo.from = optarg;
        else if (c == OPT_JSON)
            json = true;
        else
            return cli_option_default(cmd, c);
    }
    if (optind + 1 != argc)
        return cli_usage_error("verify", "verify takes one backup id or domain name");
    vo.what = argv[optind];
    if ((r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    vo.config = cli->config;
    cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    if (!cat || verify_run(cat, &vo, flags, &res) < 0) {
        r = cli_error_last();
        catalog_close(cat);
        return r;
    }
    if (json) {
        result_print_json(&res);
        for (size_t i = 0; i < res.nr; i++)
            if (!res.items[i].ok)
                cli_error("%s", res.items[i].error ? res.items[i].error : "verification failed");
        for (size_t i = 0; i < res.nr_links; i++)
            if (!res.links[i].ok)
                cli_error("%s", res.links[i].error ? res.links[i].error : "chain link broken");
    } else
        result_print(&res, cli->quiet);
    r = res.failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    verify_result_clear(&res);
    catalog_close(cat);
    return r;
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option verify_options[] = {
    {"quick", no_argument, OPT_QUICK, NULL, "structure and sizes only: no chunk is read"},
    {"from", required_argument, OPT_FROM, "TARGET",
     "check only the copies on this target (name or URL)"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {items: [{backup, disk, target, key, ok, chunks, bytes,\n"
     "error}], links: [{backup, parent, target, key, ok, checked, error}],\n"
     "failed, unchecked} on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_verify = {
    .name = "verify",
    .synopsis = "BACKUP|DOMAIN [OPTIONS]",
    .summary = "Re-read the archives of backups and check them.",
    .help = "Checks every recorded copy of backup BACKUP, or of every committed backup of DOMAIN:\n"
            "the object size against the catalog, the trailer, the index and its sha256, every\n"
            "chunk (zstd and sha256), and the sha256 of each archive against the catalog and the\n"
            "manifest.  Each problem names the backup, the disk, the chunk and its offset.\n"
            "On each target, the chain link of every backup with a parent is checked too: its\n"
            "manifest names the catalog's parent and records the sha256 of the parent's manifest\n"
            "(a hash chain).  Manifests older than version 3 record no such digest: their links\n"
            "are reported as not checked, not as failures.\n",
    .options = verify_options,
    .tail = "Exit status: 0 all good, 1 something is corrupt or missing, 3 unknown backup.\n",
    .run = cli_cmd_verify,
};
