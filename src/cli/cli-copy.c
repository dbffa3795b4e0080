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
#include "common/error.h"
#include "common/units.h"
#include "src/cli/cli.h"
#include "src/lifecycle/lifecycle.h"

enum { OPT_TO = 256, OPT_FROM, OPT_JSON };

static struct json_object *item_json(const struct copy_item *it)
{
    struct json_object *j = json_object_new_object();

    json_object_object_add(j, "backup", cli_json_string(it->backup_id));
    json_object_object_add(j, "disk", cli_json_string(it->disk));
    json_object_object_add(j, "key", cli_json_string(it->key));
    json_object_object_add(j, "action", json_object_new_string(it->copied ? "copied" : "skipped"));
    json_object_object_add(j, "source", cli_json_string(it->source));
    json_object_object_add(j, "size", json_object_new_int64((int64_t)it->size));
    json_object_object_add(j, "sha256", cli_json_string(it->sha256));
    json_object_object_add(j, "seconds", json_object_new_double(it->seconds));
    return j;
}

static void result_print_json(const struct copy_result *r, const char *error)
{
    struct json_object *o = json_object_new_object(), *items = json_object_new_array();

    for (size_t i = 0; i < r->nr; i++)
        json_object_array_add(items, item_json(&r->items[i]));
    json_object_object_add(o, "target", cli_json_string(r->target));
    json_object_object_add(o, "items", items);
    json_object_object_add(o, "backups_copied", json_object_new_int64((int64_t)r->backups_copied));
    json_object_object_add(o, "backups_skipped",
                           json_object_new_int64((int64_t)r->backups_skipped));
    json_object_object_add(o, "objects_copied", json_object_new_int64((int64_t)r->objects_copied));
    json_object_object_add(o, "bytes_copied", json_object_new_int64((int64_t)r->bytes_copied));
    json_object_object_add(o, "job", json_object_new_int64(r->job_id));
    json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
    json_object_object_add(o, "error", cli_json_string(error));
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
    static const struct option opts[] = {
        {"to", required_argument, NULL, OPT_TO},
        {"from", required_argument, NULL, OPT_FROM},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
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
    const struct cli_command *cmd = cli_command_find("copy");
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
