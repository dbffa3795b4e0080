/* virtkeep - `virtkeep plan restore DOMAIN [--at TIME | --backup ID]
 * [--target NAME] [--disks LIST] [--json]`. */
#include <config.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/cli.h"
#include "src/plan.h"
#include "src/restore.h"

enum { OPT_AT = 256, OPT_BACKUP, OPT_TARGET, OPT_DISKS, OPT_JSON };

struct plan_args {
    struct plan_options o;
    const char *at;
    char **disks;
    bool json;
};

static struct json_object *i64(uint64_t v)
{
    return json_object_new_int64((int64_t)v);
}

static struct json_object *archives_json(const struct plan_restore *p)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; i < p->nr_archives; i++) {
        const struct plan_archive *x = &p->archives[i];
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "backup", json_object_new_string(x->backup_id));
        json_object_object_add(o, "disk", json_object_new_string(x->disk));
        json_object_object_add(o, "target", json_object_new_string(x->target));
        json_object_object_add(o, "key", json_object_new_string(x->key));
        json_object_object_add(o, "read_bytes", i64(x->read_bytes));
        json_object_object_add(o, "index_bytes", i64(x->index_bytes));
        json_object_object_add(o, "chunks", i64(x->chunks));
        json_object_array_add(a, o);
    }
    return a;
}

static struct json_object *targets_json(const struct plan_restore *p)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; i < p->nr_targets; i++) {
        const struct plan_target *t = &p->targets[i];
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "target", json_object_new_string(t->name));
        json_object_object_add(o, "bytes", i64(t->bytes));
        json_object_object_add(o, "rate", json_object_new_double(t->rate));
        json_object_object_add(o, "samples", i64(t->samples));
        json_object_object_add(o, "guess", json_object_new_boolean(t->guess));
        json_object_object_add(o, "seconds", json_object_new_double(t->seconds));
        json_object_array_add(a, o);
    }
    return a;
}

static void plan_print_json(const char *domain, const struct plan_restore *p)
{
    struct json_object *o = json_object_new_object(), *chain = json_object_new_array();

    for (size_t i = 0; p->chain && p->chain[i]; i++)
        json_object_array_add(chain, json_object_new_string(p->chain[i]));
    json_object_object_add(o, "domain", json_object_new_string(domain));
    json_object_object_add(o, "backup", json_object_new_string(p->backup_id));
    json_object_object_add(o, "chain", chain);
    json_object_object_add(o, "backup_time", json_object_new_int64(p->backup_time));
    json_object_object_add(o, "at", json_object_new_int64(p->at));
    json_object_object_add(o, "rpo_seconds", json_object_new_int64(p->rpo_seconds));
    json_object_object_add(o, "archives", archives_json(p));
    json_object_object_add(o, "targets", targets_json(p));
    json_object_object_add(o, "read_bytes", i64(p->read_bytes));
    json_object_object_add(o, "disk_bytes", i64(p->disk_bytes));
    json_object_object_add(o, "virtual_bytes", i64(p->virtual_bytes));
    json_object_object_add(o, "estimate_seconds", json_object_new_double(p->estimate_seconds));
    json_object_object_add(o, "guess", json_object_new_boolean(p->guess));
    puts(json_object_to_json_string_ext(o,
                                        JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static void plan_print(const struct plan_restore *p)
{
    char b[VK_SIZE_BUFLEN], d[VK_DURATION_BUFLEN];

    printf("restore from %s (chain of %zu):", p->backup_id, vk_strv_len(p->chain));
    for (size_t i = 0; p->chain && p->chain[i]; i++)
        printf(" %s", p->chain[i]);
    printf("\ndata lost (RPO): %s\n", vk_duration_format((uint64_t)p->rpo_seconds, d, sizeof d));
    for (size_t i = 0; i < p->nr_archives; i++)
        printf("  %s %s on %s: read %s in %zu chunks\n", p->archives[i].backup_id,
               p->archives[i].disk, p->archives[i].target,
               vk_size_format(p->archives[i].read_bytes, b, sizeof b), p->archives[i].chunks);
    for (size_t i = 0; i < p->nr_targets; i++) {
        const struct plan_target *t = &p->targets[i];
        char r[VK_SIZE_BUFLEN];
        printf("  target %s: %s at %s/s: %.1f s%s\n", t->name,
               vk_size_format(t->bytes, b, sizeof b),
               vk_size_format((uint64_t)t->rate, r, sizeof r), t->seconds,
               t->guess ? " (guess: no measured history)" : "");
    }
    printf("estimated duration: %.1f s%s\n", p->estimate_seconds, p->guess ? " (guess)" : "");
}

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct plan_args *a)
{
    static const struct option opts[] = {
        {"at", required_argument, NULL, OPT_AT},
        {"backup", required_argument, NULL, OPT_BACKUP},
        {"target", required_argument, NULL, OPT_TARGET},
        {"disks", required_argument, NULL, OPT_DISKS},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            cli_command_help(cmd);
            return CLI_EXIT_OK;
        } else if (c == OPT_AT) {
            a->at = optarg;
        } else if (c == OPT_BACKUP) {
            a->o.backup_id = optarg;
        } else if (c == OPT_TARGET) {
            a->o.from = optarg;
        } else if (c == OPT_DISKS) {
            vk_strv_free(a->disks);
            if (!(a->disks = vk_strv_split(optarg, ',')))
                return cli_usage_error("plan", "%s", vk_error_message());
        } else if (c == OPT_JSON) {
            a->json = true;
        } else {
            return cli_option_error(cmd);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("plan", "plan restore takes one domain name");
    if (a->at && a->o.backup_id)
        return cli_usage_error("plan", "give --at TIME or --backup ID, not both");
    a->o.domain = argv[optind];
    a->o.now = (int64_t)time(NULL);
    a->o.at = INT64_MAX;
    if (a->at && restore_time_parse(a->at, a->o.now, &a->o.at) < 0)
        return cli_usage_error("plan", "%s", vk_error_message());
    a->o.disks = a->disks;
    return -1;
}

int cli_cmd_plan(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = cli_command_find("plan");
    struct plan_args a;
    struct plan_restore p;
    struct catalog *cat = NULL;
    int r;

    memset(&a, 0, sizeof a);
    memset(&p, 0, sizeof p);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        cli_command_help(cmd);
        return CLI_EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "restore") != 0)
        return cli_usage_error("plan", "the only plan is 'plan restore DOMAIN'");
    if ((r = args_parse(cmd, argc - 1, argv + 1, &a)) >= 0 || (r = cli_config_load(cli)) != 0)
        goto out;
    a.o.config = cli->config;
    cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    if (!cat || plan_restore(cat, &a.o, &p, 0) < 0) {
        r = cli_error_last();
        goto out;
    }
    if (a.json)
        plan_print_json(a.o.domain, &p);
    else
        plan_print(&p);
    r = CLI_EXIT_OK;
out:
    plan_restore_clear(&p);
    catalog_close(cat);
    vk_strv_free(a.disks);
    return r;
}
