/* virtkeep - `virtkeep migrate DOMAIN --to URI [OPTIONS]` (live, offline,
 * or --planned through backups) and `virtkeep evacuate --to URI[,URI...]
 * [OPTIONS]`.  SIGINT/SIGTERM set cli_interrupted, the migration's cancel
 * flag. */
#include <config.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/migrate/migrate.h"

enum { OPT_DRY_RUN = 512, OPT_JSON, OPT_FROM, OPT_PARALLEL, OPT_INCLUDE_STOPPED };

#define TUNING_OPTIONS                                                                             \
    {"max-downtime", required_argument, NULL, MIGRATE_OPT_MAX_DOWNTIME},                           \
        {"bandwidth", required_argument, NULL, MIGRATE_OPT_BANDWIDTH},                             \
        {"auto-converge", no_argument, NULL, MIGRATE_OPT_AUTO_CONVERGE},                           \
        {"postcopy-after", required_argument, NULL, MIGRATE_OPT_POSTCOPY_AFTER},                   \
        {"parallel-connections", required_argument, NULL, MIGRATE_OPT_PARALLEL_CONNECTIONS},       \
        {"unsafe", no_argument, NULL, MIGRATE_OPT_UNSAFE},                                         \
        {"migrate-uri", required_argument, NULL, MIGRATE_OPT_MIGRATE_URI},                         \
        {"timeout", required_argument, NULL, MIGRATE_OPT_TIMEOUT},                                 \
        {"dry-run", no_argument, NULL, OPT_DRY_RUN}, {"json", no_argument, NULL, OPT_JSON},        \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

static struct json_object *checks_json(const struct migrate_report *r)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; i < r->nr; i++) {
        struct json_object *j = json_object_new_object();
        json_object_object_add(j, "check", json_object_new_string(r->items[i].name));
        json_object_object_add(
            j, "status", json_object_new_string(migrate_check_status_name(r->items[i].status)));
        json_object_object_add(j, "detail", json_object_new_string(r->items[i].detail));
        json_object_array_add(a, j);
    }
    return a;
}

static struct json_object *strv_json(char *const *v)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; v && v[i]; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

static struct json_object *result_json(const struct migrate_result *res)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "domain", cli_json_string(res->domain));
    json_object_object_add(o, "to", cli_json_string(res->to));
    json_object_object_add(o, "ok", json_object_new_boolean(res->ok));
    json_object_object_add(o, "dry_run", json_object_new_boolean(res->dry_run));
    json_object_object_add(o, "live", json_object_new_boolean(res->live));
    json_object_object_add(o, "postcopy", json_object_new_boolean(res->postcopy));
    json_object_object_add(o, "aborted", json_object_new_boolean(res->aborted));
    json_object_object_add(o, "source_running", json_object_new_boolean(res->source_running));
    json_object_object_add(o, "seconds", json_object_new_double(res->seconds));
    json_object_object_add(o, "downtime_ms",
                           res->downtime_ms >= 0 ? json_object_new_int64(res->downtime_ms) : NULL);
    json_object_object_add(o, "data_total", json_object_new_int64((int64_t)res->data_total));
    json_object_object_add(o, "job", res->job_id ? json_object_new_int64(res->job_id) : NULL);
    json_object_object_add(o, "error", cli_json_string(res->error));
    json_object_object_add(o, "checks", checks_json(&res->report));
    if (res->planned) {
        json_object_object_add(o, "planned", json_object_new_boolean(true));
        json_object_object_add(o, "failed_step", cli_json_string(res->failed_step));
        json_object_object_add(o, "backups", strv_json(res->backups));
        json_object_object_add(o, "volumes", strv_json(res->volumes));
    }
    return o;
}

static void checks_print(const struct migrate_report *r)
{
    printf("%-14s %-6s %s\n", "CHECK", "RESULT", "DETAIL");
    for (size_t i = 0; i < r->nr; i++)
        printf("%-14s %-6s %s\n", r->items[i].name,
               r->items[i].status == MIGRATE_CHECK_FAIL
                   ? "FAIL"
                   : migrate_check_status_name(r->items[i].status),
               r->items[i].detail);
}

static void result_print(const struct migrate_result *res, bool quiet)
{
    if (!quiet || !res->ok)
        checks_print(&res->report);
    if (res->dry_run)
        printf("%s: %zu pre-check%s failed\n", res->ok ? "dry run passed" : "dry run failed",
               res->report.failed, res->report.failed == 1 ? "" : "s");
    else if (res->ok && !quiet) {
        printf("%s '%s' to '%s' in %.1f s", res->planned ? "moved (planned)" : "migrated",
               res->domain, res->to, res->seconds);
        if (res->downtime_ms >= 0)
            printf(", downtime %lld ms", (long long)res->downtime_ms);
        printf("%s\n", res->postcopy ? " (post-copy)" : "");
    }
}

/* The exit status of a failed run. */
static int failure_exit(const struct migrate_result *res)
{
    if (cli_interrupted && (res->aborted || vk_error_code() == VK_ERR_INTERRUPTED))
        return CLI_EXIT_INTERRUPTED;
    if (res->dry_run || res->report.failed)
        return CLI_EXIT_FAILED;
    return cli_exit_code(vk_error_code());
}

int cli_cmd_migrate(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, MIGRATE_OPT_TO},
        {"live", no_argument, NULL, MIGRATE_OPT_LIVE},
        {"offline", no_argument, NULL, MIGRATE_OPT_OFFLINE},
        {"copy-storage", no_argument, NULL, MIGRATE_OPT_COPY_STORAGE},
        {"dest-dir", required_argument, NULL, MIGRATE_OPT_DEST_DIR},
        {"planned", no_argument, NULL, MIGRATE_OPT_PLANNED},
        {"via", required_argument, NULL, MIGRATE_OPT_VIA},
        {"shutdown-timeout", required_argument, NULL, MIGRATE_OPT_SHUTDOWN_TIMEOUT},
        {"force", no_argument, NULL, MIGRATE_OPT_FORCE},
        {"dest-pool", required_argument, NULL, MIGRATE_OPT_DEST_POOL},
        TUNING_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const struct cli_command *cmd = cli_command_find("migrate");
    struct migrate_options mo = {0};
    struct migrate_result res = {0};
    struct catalog *cat = NULL;
    unsigned int flags = 0;
    bool json = false;
    int c, r;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == OPT_DRY_RUN)
            flags |= MIGRATE_DRY_RUN;
        else if (c == OPT_JSON)
            json = true;
        else if (c < MIGRATE_OPT_TO || c > MIGRATE_OPT_LAST)
            return cli_option_default(cmd, c);
        else if (migrate_option_set(&mo, c, optarg) < 0)
            return cli_usage_error("migrate", "%s", vk_error_message());
    }
    if (optind + 1 != argc)
        return cli_usage_error("migrate", "migrate takes one domain");
    if (!mo.to)
        return cli_usage_error("migrate", "migrate needs --to URI");
    mo.domain = argv[optind];
    mo.from = cli->connect_uri;
    if ((r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    if (!(flags & MIGRATE_DRY_RUN) && !(cat = catalog_open(cli_catalog_path(cli), 0)))
        return cli_error_last();
    if (isatty(STDERR_FILENO) && !cli->quiet)
        flags |= MIGRATE_PROGRESS;
    if (!cli->quiet)
        flags |= MIGRATE_STEPS;
    mo.config = cli->config;
    mo.catalog_path = cli_catalog_path(cli);
    mo.cancel = &cli_interrupted;
    cli_signals_catch();
    r = migrate_run(cat, &mo, flags, &res) == 0 ? CLI_EXIT_OK : failure_exit(&res);
    cli_signals_default();
    if (json)
        cli_json_print(result_json(&res));
    else
        result_print(&res, cli->quiet);
    if (!res.ok && res.error)
        cli_error("%s%s", res.error,
                  res.dry_run || res.report.failed || res.planned ? ""
                  : res.source_running ? " The domain still runs on the source."
                                       : "");
    migrate_result_clear(&res);
    catalog_close(cat);
    return r;
}

/* ---------------------------------------------------------------- evacuate */

static const char *outcome_name(const struct evacuate_item *it)
{
    if (!it->res.ok)
        return "failed";
    return it->res.dry_run ? "planned" : "migrated";
}

static void evacuate_print_json(const struct evacuate_result *res)
{
    struct json_object *o = json_object_new_object(), *a = json_object_new_array();

    for (size_t i = 0; i < res->nr; i++) {
        const struct evacuate_item *it = &res->items[i];
        struct json_object *j = result_json(&it->res);
        json_object_object_add(j, "domain", cli_json_string(it->domain));
        json_object_object_add(j, "destination", cli_json_string(it->dest));
        json_object_object_add(j, "was_running", json_object_new_boolean(it->was_running));
        json_object_object_add(j, "outcome", json_object_new_string(outcome_name(it)));
        json_object_array_add(a, j);
    }
    json_object_object_add(o, "domains", a);
    json_object_object_add(o, "failed", json_object_new_int64((int64_t)res->failed));
    cli_json_print(o);
}

static void evacuate_print(const struct evacuate_result *res)
{
    printf("%-20s %-9s %9s %9s  %s\n", "DOMAIN", "OUTCOME", "DURATION", "DOWNTIME",
           "DESTINATION / ERROR");
    for (size_t i = 0; i < res->nr; i++) {
        const struct evacuate_item *it = &res->items[i];
        char down[32] = "-";
        if (it->res.downtime_ms >= 0)
            snprintf(down, sizeof(down), "%lld ms", (long long)it->res.downtime_ms);
        printf("%-20s %-9s %8.1fs %9s  %s\n", it->domain, outcome_name(it), it->res.seconds, down,
               it->res.ok ? it->dest : (it->res.error ? it->res.error : "?"));
    }
    printf("%zu domain%s, %zu failed\n", res->nr, res->nr == 1 ? "" : "s", res->failed);
}

int cli_cmd_evacuate(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, MIGRATE_OPT_TO},
        {"parallel", required_argument, NULL, OPT_PARALLEL},
        {"include-stopped", no_argument, NULL, OPT_INCLUDE_STOPPED},
        TUNING_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const struct cli_command *cmd = cli_command_find("evacuate");
    struct evacuate_options eo = {0};
    struct evacuate_result res = {0};
    CLEANUP_STRV char **to = NULL;
    CLEANUP_FREE char *catalog = NULL;
    unsigned long long n;
    unsigned int flags = 0;
    bool json = false;
    int c, r;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == OPT_DRY_RUN)
            flags |= MIGRATE_DRY_RUN;
        else if (c == OPT_JSON)
            json = true;
        else if (c == OPT_FROM)
            eo.from = optarg;
        else if (c == OPT_INCLUDE_STOPPED)
            eo.include_stopped = true;
        else if (c == OPT_PARALLEL) {
            if (vk_parse_uint(optarg, 64, &n) < 0 || n == 0)
                return cli_usage_error("evacuate", "--parallel takes a number from 1 to 64");
            eo.parallel = (unsigned int)n;
        } else if (c < MIGRATE_OPT_TO || c > MIGRATE_OPT_TIMEOUT)
            return cli_option_default(cmd, c); /* no --planned options here */
        else if (migrate_option_set(&eo.base, c, optarg) < 0)
            return cli_usage_error("evacuate", "%s", vk_error_message());
    }
    if (optind != argc)
        return cli_usage_error("evacuate", "evacuate takes no arguments");
    if (!eo.base.to || !(to = vk_strv_split(eo.base.to, ',')))
        return cli_usage_error("evacuate", "evacuate needs --to URI[,URI...]");
    eo.to = to;
    eo.base.to = NULL;
    if (!eo.from)
        eo.from = cli->connect_uri;
    if ((r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    if (!(flags & MIGRATE_DRY_RUN)) {
        struct catalog *cat = catalog_open(cli_catalog_path(cli), 0);
        if (!cat)
            return cli_error_last();
        catalog_close(cat);
        eo.catalog_path = catalog = vk_strdup(cli_catalog_path(cli));
    }
    eo.base.cancel = &cli_interrupted;
    cli_signals_catch();
    r = evacuate_run(&eo, flags, &res);
    cli_signals_default();
    if (r < 0)
        return cli_error_last();
    if (json)
        evacuate_print_json(&res);
    else
        evacuate_print(&res);
    r = cli_interrupted ? CLI_EXIT_INTERRUPTED : res.failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    evacuate_result_clear(&res);
    return r;
}
