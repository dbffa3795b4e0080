/* virtkeep - `virtkeep catalog rebuild --target NAME|URL [--json]` and
 * `virtkeep catalog migrate --to postgresql://... [--json]`. */
#include <config.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/error.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/lifecycle/lifecycle.h"

enum { OPT_TARGET = 256, OPT_JSON, OPT_TO };

static struct json_object *strv_json(char *const *v)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; v && v[i]; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

static void result_print_json(const struct rebuild_result *r)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "target", json_object_new_string(r->target));
    json_object_object_add(o, "manifests", json_object_new_int64((int64_t)r->manifests));
    json_object_object_add(o, "added", json_object_new_int64((int64_t)r->added));
    json_object_object_add(o, "known", json_object_new_int64((int64_t)r->known));
    json_object_object_add(o, "domains", strv_json(r->domains));
    json_object_object_add(o, "backups", strv_json(r->backups));
    json_object_object_add(o, "incomplete", strv_json(r->incomplete));
    json_object_object_add(o, "unreadable", strv_json(r->unreadable));
    json_object_object_add(o, "conflicts", strv_json(r->conflicts));
    json_object_object_add(o, "refused", strv_json(r->refused));
    json_object_object_add(o, "unchecked", strv_json(r->unchecked));
    cli_json_print(o);
}

static void result_print(const struct rebuild_result *r)
{
    printf("target %s: %zu manifests, %zu backups recorded, %zu already known, %zu domains\n",
           r->target, r->manifests, r->added, r->known, vk_strv_len(r->domains));
    for (size_t i = 0; r->incomplete && r->incomplete[i]; i++)
        printf("  incomplete (no manifest): %s\n", r->incomplete[i]);
    for (size_t i = 0; r->unchecked && r->unchecked[i]; i++)
        printf("  not checked: %s\n", r->unchecked[i]);
}

/* Unreadable manifests, conflicts and refused backups go to stderr, one
 * line each. */
static int problems_report(const struct rebuild_result *r)
{
    for (size_t i = 0; r->unreadable && r->unreadable[i]; i++)
        cli_error("unreadable manifest %s", r->unreadable[i]);
    for (size_t i = 0; r->conflicts && r->conflicts[i]; i++)
        cli_error("conflict for backup %s", r->conflicts[i]);
    for (size_t i = 0; r->refused && r->refused[i]; i++)
        cli_error("refused backup %s", r->refused[i]);
    return r->unreadable || r->conflicts || r->refused ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

static int rebuild(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct rebuild_options ro = {0};
    struct rebuild_result res = {0};
    struct catalog *cat;
    bool json = false;
    int c, r;

    while ((c = cli_options_next(&cli_command_catalog, argc, argv, "h")) != -1) {
        if (c == OPT_TARGET)
            ro.target = optarg;
        else if (c == OPT_JSON)
            json = true;
        else
            return cli_option_default(cmd, c);
    }
    if (optind != argc || !ro.target)
        return cli_usage_error("catalog", "catalog rebuild takes --target NAME|URL only");
    if ((r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    ro.config = cli->config;
    cat = catalog_open(cli_catalog_path(cli), 0);
    if (!cat || rebuild_run(cat, &ro, &res, 0) < 0) {
        r = cli_error_last();
    } else {
        if (json)
            result_print_json(&res);
        else if (!cli->quiet)
            result_print(&res);
        r = problems_report(&res);
    }
    rebuild_result_clear(&res);
    catalog_close(cat);
    return r;
}

static void migrate_print(const char *from, const char *to, const struct catalog_import_result *res,
                          bool json)
{
    struct json_object *o;

    if (!json) {
        printf("catalog '%s' copied into '%s': %zu row(s) added, %zu already there\n"
               "next: point every host at it ([catalog] url = %s, or --catalog)\n",
               from, to, res->added, res->known, to);
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "from", json_object_new_string(from));
    json_object_object_add(o, "to", json_object_new_string(to));
    json_object_object_add(o, "added", json_object_new_int64((int64_t)res->added));
    json_object_object_add(o, "known", json_object_new_int64((int64_t)res->known));
    cli_json_print(o);
}

static int migrate(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct catalog_import_result res = {0};
    struct catalog *src = NULL, *dst = NULL;
    const char *to = NULL, *from;
    bool json = false;
    int c, r;

    while ((c = cli_options_next(&cli_command_catalog, argc, argv, "h")) != -1) {
        if (c == OPT_TO)
            to = optarg;
        else if (c == OPT_JSON)
            json = true;
        else
            return cli_option_default(cmd, c);
    }
    if (optind != argc || !to)
        return cli_usage_error("catalog", "catalog migrate takes --to URL only");
    if ((r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    if (!(from = cli_catalog_path(cli)))
        return cli_error_last();
    if (strcmp(from, to) == 0)
        return cli_usage_error("catalog", "catalog migrate: '%s' is already the catalog", to);
    if (!(src = catalog_open(from, CATALOG_OPEN_EXISTING)) || !(dst = catalog_open(to, 0)) ||
        catalog_import(dst, src, &res) < 0) {
        r = cli_error_last();
    } else {
        if (!cli->quiet || json)
            migrate_print(catalog_path(src), catalog_path(dst), &res, json);
        r = CLI_EXIT_OK;
    }
    catalog_import_result_clear(&res);
    catalog_close(dst);
    catalog_close(src);
    return r;
}

int cli_cmd_catalog(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_catalog;

    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        cli_help_print(cmd);
        return CLI_EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "migrate") == 0)
        return migrate(cli, cmd, argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "rebuild") != 0)
        return cli_usage_error("catalog", "the catalog commands are 'rebuild' and 'migrate'");
    return rebuild(cli, cmd, argc - 1, argv + 1);
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option catalog_options[] = {
    {"target", required_argument, OPT_TARGET, "NAME|URL",
     "rebuild: the target to read (a configured name or a URL); required"},
    {"to", required_argument, OPT_TO, "URL",
     "migrate: the catalog to copy into, usually postgresql://USER@HOST/DB\n"
     "(created there when the database has none); required"},
    {"json", no_argument, OPT_JSON, NULL,
     "rebuild: print {target, manifests, added, known, domains, backups,\n"
     "incomplete, unreadable, conflicts, refused, unchecked} on stdout;\n"
     "migrate: print {from, to, added, known}"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_catalog = {
    .name = "catalog",
    .synopsis = "rebuild --target NAME|URL [--json] | migrate --to URL [--json]",
    .summary = "Rebuild the catalog from a target, or move it into a shared one.",
    .help =
        "Reads every DOMAIN/BACKUP_ID/manifest.json on the target, checks each archive it\n"
        "names (present, with the recorded size, its trailer and index sound and matching)\n"
        "and each chain link (the parent exists, on the target or in the catalog, and its\n"
        "manifest has the sha256 the child's manifest records), and records the domains,\n"
        "the backups (committed, level, parent, checkpoint, XML, times, sizes), their disks\n"
        "and the archive locations in the catalog (--catalog), which is created when\n"
        "missing.\n"
        "Merging is idempotent: backups already recorded only get this target's locations\n"
        "added, so a rebuild never overwrites a catalog; a recorded backup that disagrees\n"
        "with its manifest is reported as a conflict and left alone.  Backup directories\n"
        "without a manifest (incomplete backups), unreadable manifests and backups whose\n"
        "chain link is broken (refused) are reported by name and recorded nowhere.  What\n"
        "cannot be checked without reading the data is listed as not checked: the links of\n"
        "manifests older than version 3, the newest manifest of each chain, and the sha256\n"
        "of whole archives (virtkeep verify reads them).\n"
        "\n"
        "'catalog migrate --to URL' copies the catalog in use (--catalog, [catalog] path)\n"
        "into the catalog at URL, usually the PostgreSQL catalog that several hosts share:\n"
        "domains, disks, backups with their disks and locations, prune marks, jobs, drills and\n"
        "throughput.  It runs in one transaction and is idempotent: rows already there with\n"
        "the same values are left alone, so it can be run again.  When the destination holds\n"
        "a row with other values (the same backup id with another status, say), nothing is\n"
        "copied and each conflicting row is named.  The source is not changed.\n",
    .options = catalog_options,
    .tail = "Exit status: 0 done, 1 some manifests were unreadable, in conflict or refused (the\n"
            "rest is recorded), the target or (migrate) a catalog could not be read, 2 usage\n"
            "error or (migrate) conflicting rows, 3 unknown target or no source catalog.\n",
    .run = cli_cmd_catalog,
};
