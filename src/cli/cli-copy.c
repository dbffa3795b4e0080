/* virtkeep - `virtkeep copy BACKUP|DOMAIN --to TARGET [--from TARGET]
 * [--json]`: replicate backups to another target.  SIGINT/SIGTERM stop the
 * copy (the object being put is aborted, the job is cancelled, exit 130). */
#include <config.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/json.h"
#include "common/error.h"
#include "common/units.h"
#include "src/cli/cli.h"
#include "src/lifecycle/lifecycle.h"

enum { OPT_TO = 256, OPT_FROM, OPT_JSON };

static struct json_object *item_json(const struct copy_item *it)
{
    struct json_object *j = json_object_new_object();

    json_object_object_add(j, "backup", vk_json_string_or_null(it->backup_id));
    json_object_object_add(j, "disk", vk_json_string_or_null(it->disk));
    json_object_object_add(j, "key", vk_json_string_or_null(it->key));
    json_object_object_add(j, "action", json_object_new_string(it->copied ? "copied" : "skipped"));
    json_object_object_add(j, "source", vk_json_string_or_null(it->source));
    json_object_object_add(j, "size", json_object_new_int64((int64_t)it->size));
    json_object_object_add(j, "sha256", vk_json_string_or_null(it->sha256));
    json_object_object_add(j, "seconds", json_object_new_double(it->seconds));
    return j;
}

static void result_print_json(const struct copy_result *r, const char *error)
{
    struct json_object *o = json_object_new_object(), *items = json_object_new_array();

    for (size_t i = 0; i < r->nr; i++)
        json_object_array_add(items, item_json(&r->items[i]));
    json_object_object_add(o, "target", vk_json_string_or_null(r->target));
    json_object_object_add(o, "items", items);
    json_object_object_add(o, "backups_copied", json_object_new_int64((int64_t)r->backups_copied));
    json_object_object_add(o, "backups_skipped",
                           json_object_new_int64((int64_t)r->backups_skipped));
    json_object_object_add(o, "objects_copied", json_object_new_int64((int64_t)r->objects_copied));
    json_object_object_add(o, "bytes_copied", json_object_new_int64((int64_t)r->bytes_copied));
    json_object_object_add(o, "job", json_object_new_int64(r->job_id));
    json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
    json_object_object_add(o, "error", vk_json_string_or_null(error));
    cli_json_print(o);
}

static void result_print(const struct copy_result *r)
{
    char sz[VK_SIZE_BUFLEN];

    for (size_t i = 0; i < r->nr; i++) {
        const struct copy_item *it = &r->items[i];
        if (it->copied)
            printf("copied  %s %s from '%s' (%s, %.1f s)\n", it->backup_id,
                   it->disk ? it->disk : "manifest", it->source,
                   vk_size_format(it->size, sz, sizeof sz), it->seconds);
    }
    printf("%zu backups copied to '%s' (%s), %zu already there\n", r->backups_copied, r->target,
           vk_size_format(r->bytes_copied, sz, sizeof sz), r->backups_skipped);
}

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct copy_options *o,
                      bool *json)
{
    int c;

    while ((c = cli_options_next(&cli_command_copy, argc, argv, "h")) != -1) {
        if (c == OPT_TO)
            o->to = optarg;
        else if (c == OPT_FROM)
            o->from = optarg;
        else if (c == OPT_JSON)
            *json = true;
        else
            return cli_option_default(cmd, c);
    }
    if (optind + 1 != argc)
        return cli_usage_error("copy", "copy takes one backup id or domain name");
    if (!o->to)
        return cli_usage_error("copy", "--to TARGET is required");
    o->what = argv[optind];
    return -1;
}

int cli_cmd_copy(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_copy;
    struct copy_options o = {0};
    struct copy_result res = {0};
    struct catalog *cat;
    bool json = false;
    int r;

    if ((r = args_parse(cmd, argc, argv, &o, &json)) >= 0 ||
        (r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    o.config = cli->config;
    o.cancel = &cli_interrupted;
    cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    if (!cat)
        return cli_error_last();
    cli_signals_catch();
    r = copy_run(cat, &o, 0, &res);
    cli_signals_default();
    if (json)
        result_print_json(&res, r < 0 ? vk_error_message() : NULL);
    else if (r == 0 && !cli->quiet)
        result_print(&res);
    r = r < 0 ? cli_error_last() : CLI_EXIT_OK;
    copy_result_clear(&res);
    catalog_close(cat);
    return r;
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option copy_options[] = {
    {"to", required_argument, OPT_TO, "TARGET", "where the copies go (name or URL); required"},
    {"from", required_argument, OPT_FROM, "TARGET",
     "read from this target (name or URL) instead of the fastest copy"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {target, items: [{backup, disk, key, action (copied or\n"
     "skipped), source, size, sha256, seconds}], backups_copied,\n"
     "backups_skipped, objects_copied, bytes_copied, job, seconds,\n"
     "error} on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_copy = {
    .name = "copy",
    .synopsis = "BACKUP|DOMAIN --to TARGET [OPTIONS]",
    .summary = "Copy backups to another target.",
    .help = "Copies the archives of backup BACKUP, or of every committed backup of DOMAIN (oldest\n"
            "first, so that parents arrive before their children), then each backup's manifest,\n"
            "to TARGET (a configured target or a URL).  Each object streams from the copy with\n"
            "the best measured read throughput (or from --from) and its sha256 is checked on\n"
            "arrival against the catalog; an archive is then re-opened on TARGET (trailer,\n"
            "index).  The new copies are recorded in the catalog with throughput samples.\n"
            "Objects already on TARGET with the recorded size and sha256 are skipped: a second\n"
            "copy is a no-op.  A failed copy leaves no partial object on TARGET.\n",
    .options = copy_options,
    .tail = "Exit status: 0 done, 1 failed (the message names backup, disk, source and\n"
            "destination), 2 usage error, 3 unknown backup, domain or target.\n",
    .run = cli_cmd_copy,
};
