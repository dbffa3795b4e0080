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
#include "common/json.h"
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

    json_object_object_add(j, "backup", vk_json_string_or_null(it->backup_id));
    json_object_object_add(j, "domain", vk_json_string_or_null(it->domain));
    json_object_object_add(j, "action", json_object_new_string(action));
    json_object_object_add(j, "reason", vk_json_string_or_null(it->reason));
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
    json_object_object_add(o, "error", vk_json_string_or_null(error));
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
    int c;

    while ((c = cli_options_next(&cli_command_prune, argc, argv, "h")) != -1) {
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
    const struct cli_command *cmd = &cli_command_prune;
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

/* ---------------------------------------------------------------- the command */

static const struct cli_option prune_options[] = {
    {"dry-run", no_argument, OPT_DRY_RUN, NULL,
     "show what would be kept and deleted, and why; change nothing"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {dry_run, backups: [{backup, domain, action (keep, delete,\n"
     "deleted, marked), reason, resumed, objects_deleted, bytes_deleted}],\n"
     "kept, deleted, objects_deleted, bytes_deleted, error} on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_prune = {
    .name = "prune",
    .synopsis = "[DOMAIN] [--dry-run] [--json]",
    .summary = "Delete the backups retention no longer keeps.",
    .help = "Applies the retention rules of each domain's policy (of DOMAIN only, when given):\n"
            "keep_last N keeps the N newest backups; keep_hourly, keep_daily, keep_weekly (ISO\n"
            "weeks), keep_monthly and keep_yearly N keep the newest backup of each of the N\n"
            "most recent hours, days... that have a backup (UTC); keep_within D keeps every\n"
            "backup less than D older than the newest.  The rules add up.  A backup that a kept\n"
            "backup needs (the full and the incrementals before a kept inc, the full of a kept\n"
            "diff) is always kept.  Failed backups older than the newest good one are deleted.\n"
            "Domains whose policy has no keep rule are left alone.\n"
            "\n"
            "Crash-safe: the doomed backups are marked in the catalog first; then, newest\n"
            "first, each backup's manifest is deleted from every target (so that a rebuilt\n"
            "catalog never sees a half-deleted backup), then its archives, then its catalog\n"
            "rows.  A prune that was interrupted is finished by the next one, before anything\n"
            "new is decided.  Libvirt checkpoints are not touched.\n",
    .options = prune_options,
    .tail = "Exit status: 0 done, 1 failed (an object could not be deleted), 2 usage error or\n"
            "DOMAIN has no retention policy, 3 a target is unknown or its directory, bucket or\n"
            "host is missing.  After a failure the rest stays marked for the next prune.\n",
    .run = cli_cmd_prune,
};
