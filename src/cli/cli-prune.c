/* virtkeep - `virtkeep prune [DOMAIN] [--dry-run] [--json]`: apply the
 * retention of each domain's policy (src/prune.h). */
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

enum { OPT_DRY_RUN = 256, OPT_JSON };

static struct json_object *item_json(const struct prune_item *it, bool dry_run)
{
    struct json_object *j = json_object_new_object();
    const char *action = it->keep      ? "keep"
                         : it->deleted ? "deleted"
                         : dry_run     ? "delete"
                                       : "marked";

    json_object_object_add(j, "backup", cli_json_string(it->backup_id));
    json_object_object_add(j, "domain", cli_json_string(it->domain));
    json_object_object_add(j, "action", json_object_new_string(action));
    json_object_object_add(j, "reason", cli_json_string(it->reason));
    json_object_object_add(j, "resumed", json_object_new_boolean(it->resumed));
    json_object_object_add(j, "objects_deleted", json_object_new_int64((int64_t)it->objects));
    json_object_object_add(j, "bytes_deleted", json_object_new_int64((int64_t)it->bytes));
    return j;
}

static void result_print_json(const struct prune_result *r, bool dry_run, const char *error)
{
    struct json_object *o = json_object_new_object(), *items = json_object_new_array();

    for (size_t i = 0; i < r->nr; i++)
        json_object_array_add(items, item_json(&r->items[i], dry_run));
    json_object_object_add(o, "dry_run", json_object_new_boolean(dry_run));
    json_object_object_add(o, "backups", items);
    json_object_object_add(o, "kept", json_object_new_int64((int64_t)r->kept));
    json_object_object_add(o, "deleted", json_object_new_int64((int64_t)r->deleted));
    json_object_object_add(o, "objects_deleted", json_object_new_int64((int64_t)r->objects));
    json_object_object_add(o, "bytes_deleted", json_object_new_int64((int64_t)r->bytes));
    json_object_object_add(o, "error", cli_json_string(error));
    cli_json_print(o);
}

static void result_print(const struct prune_result *r, bool dry_run)
{
    char sz[VK_SIZE_BUFLEN];

    for (size_t i = 0; i < r->nr; i++) {
        const struct prune_item *it = &r->items[i];
        const char *what = it->keep ? "keep" : dry_run ? "would delete" : "deleted";
        printf("%-12s %s (%s)\n", what, it->backup_id, it->reason);
    }
    if (dry_run)
        printf("%zu backups would be deleted, %zu kept (dry run: nothing was changed)\n",
               r->deleted, r->kept);
    else
        printf("%zu backups deleted (%zu objects, %s), %zu kept\n", r->deleted, r->objects,
               vk_size_format(r->bytes, sz, sizeof sz), r->kept);
}

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct prune_options *o,
                      bool *json)
{
    static const struct option opts[] = {
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == OPT_DRY_RUN)
            o->dry_run = true;
        else if (c == OPT_JSON)
            *json = true;
        else
            return cli_option_default(cmd, c);
    }
    if (optind + 1 < argc)
        return cli_usage_error("prune", "prune takes at most one domain name");
    o->domain = optind < argc ? argv[optind] : NULL;
    return -1;
}

int cli_cmd_prune(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = cli_command_find("prune");
    struct prune_options o = {0};
    struct prune_result res = {0};
    struct catalog *cat;
    bool json = false;
    int r;

    if ((r = args_parse(cmd, argc, argv, &o, &json)) >= 0 ||
        (r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    o.config = cli->config;
    cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    if (!cat)
        return cli_error_last();
    r = prune_run(cat, &o, 0, &res);
    if (json)
        result_print_json(&res, o.dry_run, r < 0 ? vk_error_message() : NULL);
    else if (r == 0 && !cli->quiet)
        result_print(&res, o.dry_run);
    r = r < 0 ? cli_error_last() : CLI_EXIT_OK;
    prune_result_clear(&res);
    catalog_close(cat);
    return r;
}
