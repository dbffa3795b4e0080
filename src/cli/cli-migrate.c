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
#include "common/json.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/migrate/migrate.h"

/* ---------------------------------------------------------------- options */

static int uint_option(const char *name, const char *arg, unsigned long long min,
                       unsigned long long max, unsigned long long *out)
{
    if (vk_parse_uint(arg, max, out) < 0 || *out < min) {
        vk_error(VK_ERR_INVALID,
                 "invalid value '%s' for --%s: expected a whole number from %llu to %llu.", arg,
                 name, min, max);
        return -1;
    }
    return 0;
}

static int mode_set(struct migrate_options *o, enum migrate_mode mode)
{
    if (o->mode != MIGRATE_MODE_AUTO && o->mode != mode) {
        vk_error(VK_ERR_INVALID, "--live and --offline exclude each other.");
        return -1;
    }
    o->mode = mode;
    return 0;
}

static int seconds_option(const char *name, const char *arg, unsigned int *out)
{
    uint64_t secs;

    if (vk_duration_parse(arg, &secs) < 0 || secs == 0 || secs > 86400 * 7) {
        vk_error(VK_ERR_INVALID,
                 "invalid value '%s' for --%s: expected seconds (or 30s, 5m) from 1 s to 7 days.",
                 arg, name);
        return -1;
    }
    *out = (unsigned int)secs;
    return 0;
}

static int planned_option_set(struct migrate_options *o, int opt, const char *arg)
{
    switch (opt) {
    case MIGRATE_OPT_PLANNED:
        o->planned = true;
        return 0;
    case MIGRATE_OPT_VIA:
        o->via = arg;
        return 0;
    case MIGRATE_OPT_SHUTDOWN_TIMEOUT:
        return seconds_option("shutdown-timeout", arg, &o->shutdown_timeout);
    case MIGRATE_OPT_FORCE:
        o->force = true;
        return 0;
    case MIGRATE_OPT_DEST_POOL:
        if (!arg || !*arg) {
            vk_error(VK_ERR_INVALID, "--dest-pool needs a storage pool name.");
            return -1;
        }
        o->dest_pool = arg;
        return 0;
    }
    vk_error(VK_ERR_INTERNAL, "unknown migration option %d.", opt);
    return -1;
}

int cli_migrate_option_set(struct migrate_options *o, int opt, const char *arg)
{
    unsigned long long v;

    switch (opt) {
    case MIGRATE_OPT_TO:
        o->to = arg;
        return 0;
    case MIGRATE_OPT_LIVE:
        return mode_set(o, MIGRATE_MODE_LIVE);
    case MIGRATE_OPT_OFFLINE:
        return mode_set(o, MIGRATE_MODE_OFFLINE);
    case MIGRATE_OPT_COPY_STORAGE:
        o->copy_storage = true;
        return 0;
    case MIGRATE_OPT_DEST_DIR:
        if (!arg || arg[0] != '/') {
            vk_error(VK_ERR_INVALID, "--dest-dir needs an absolute directory, not '%s'.",
                     arg ? arg : "");
            return -1;
        }
        o->dest_dir = arg;
        return 0;
    case MIGRATE_OPT_MAX_DOWNTIME:
        if (uint_option("max-downtime", arg, 1, 3600000, &v) < 0)
            return -1;
        o->max_downtime_ms = v;
        return 0;
    case MIGRATE_OPT_BANDWIDTH:
        if (uint_option("bandwidth", arg, 1, 1024 * 1024, &v) < 0)
            return -1;
        o->bandwidth_mib = v;
        return 0;
    case MIGRATE_OPT_AUTO_CONVERGE:
        o->auto_converge = true;
        return 0;
    case MIGRATE_OPT_POSTCOPY_AFTER:
        return seconds_option("postcopy-after", arg, &o->postcopy_after);
    case MIGRATE_OPT_PARALLEL_CONNECTIONS:
        if (uint_option("parallel-connections", arg, 1, 255, &v) < 0)
            return -1;
        o->parallel = (unsigned int)v;
        return 0;
    case MIGRATE_OPT_UNSAFE:
        o->unsafe = true;
        return 0;
    case MIGRATE_OPT_MIGRATE_URI:
        o->migrate_uri = arg;
        return 0;
    case MIGRATE_OPT_TIMEOUT:
        return seconds_option("timeout", arg, &o->timeout);
    default:
        return planned_option_set(o, opt, arg);
    }
}

enum { OPT_DRY_RUN = 512, OPT_JSON, OPT_FROM, OPT_PARALLEL, OPT_INCLUDE_STOPPED };

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

    json_object_object_add(o, "domain", vk_json_string_or_null(res->domain));
    json_object_object_add(o, "to", vk_json_string_or_null(res->to));
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
    json_object_object_add(o, "error", vk_json_string_or_null(res->error));
    json_object_object_add(o, "checks", checks_json(&res->report));
    if (res->planned) {
        json_object_object_add(o, "planned", json_object_new_boolean(true));
        json_object_object_add(o, "failed_step", vk_json_string_or_null(res->failed_step));
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
    const struct cli_command *cmd = &cli_command_migrate;
    struct migrate_options mo = {0};
    struct migrate_result res = {0};
    struct catalog *cat = NULL;
    unsigned int flags = 0;
    bool json = false;
    int c, r;

    while ((c = cli_options_next(&cli_command_migrate, argc, argv, "h")) != -1) {
        if (c == OPT_DRY_RUN)
            flags |= MIGRATE_DRY_RUN;
        else if (c == OPT_JSON)
            json = true;
        else if (c < MIGRATE_OPT_TO || c > MIGRATE_OPT_LAST)
            return cli_option_default(cmd, c);
        else if (cli_migrate_option_set(&mo, c, optarg) < 0)
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
        json_object_object_add(j, "domain", vk_json_string_or_null(it->domain));
        json_object_object_add(j, "destination", vk_json_string_or_null(it->dest));
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
    const struct cli_command *cmd = &cli_command_evacuate;
    struct evacuate_options eo = {0};
    struct evacuate_result res = {0};
    CLEANUP_STRV char **to = NULL;
    CLEANUP_FREE char *catalog = NULL;
    unsigned long long n;
    unsigned int flags = 0;
    bool json = false;
    int c, r;

    while ((c = cli_options_next(&cli_command_evacuate, argc, argv, "h")) != -1) {
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
        else if (cli_migrate_option_set(&eo.base, c, optarg) < 0)
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

/* ---------------------------------------------------------------- the command */

/* The tuning options migrate and evacuate share. */
#define MIGRATE_TUNING_OPTIONS                                                                     \
    {"max-downtime", required_argument, MIGRATE_OPT_MAX_DOWNTIME, "MS",                            \
     "the longest pause QEMU may take to switch over"},                                            \
        {"bandwidth", required_argument, MIGRATE_OPT_BANDWIDTH, "MIB", "limit to MIB MiB/s"},      \
        {"auto-converge", no_argument, MIGRATE_OPT_AUTO_CONVERGE, NULL,                            \
         "slow the guest's CPUs down until it converges"},                                         \
        {"postcopy-after", required_argument, MIGRATE_OPT_POSTCOPY_AFTER, "SECS",                  \
         "switch to post-copy when not done after SECS"},                                          \
        {"parallel-connections", required_argument, MIGRATE_OPT_PARALLEL_CONNECTIONS, "N",         \
         "migrate over N connections"},                                                            \
        {"timeout", required_argument, MIGRATE_OPT_TIMEOUT, "SECS",                                \
         "abort (domain stays on the source) when not done by then"},                              \
        {"migrate-uri", required_argument, MIGRATE_OPT_MIGRATE_URI, "URI",                         \
         "where QEMU sends the stream (e.g. tcp://10.0.0.2)"},                                     \
        {"unsafe", no_argument, MIGRATE_OPT_UNSAFE, NULL,                                          \
         "allow shared storage libvirt deems unsafe (two daemons on\n"                             \
         "one machine seeing the same path)"},

static const struct cli_option migrate_options[] = {
    {"to", required_argument, MIGRATE_OPT_TO, "URI", "the destination libvirt URI"},
    {"live", no_argument, MIGRATE_OPT_LIVE, NULL, "live (the default for a running domain)"},
    {"offline", no_argument, MIGRATE_OPT_OFFLINE, NULL, "paused copy"},
    {"copy-storage", no_argument, MIGRATE_OPT_COPY_STORAGE, NULL,
     "copy the disks too (destination images at the same path,\n"
     "or under --dest-dir DIR)"},
    {"dest-dir", required_argument, MIGRATE_OPT_DEST_DIR, "DIR",
     "with --copy-storage: the images go to DIR/NAME"},
    MIGRATE_TUNING_OPTIONS{"dry-run", no_argument, OPT_DRY_RUN, NULL,
                           "run the pre-checks only: table, exit 0 when all pass"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {domain, to, ok, dry_run, live, postcopy, aborted,\n"
     "source_running, seconds, downtime_ms, data_total, job,\n"
     "error, checks: [{check, status, detail}]}"},
    {"planned", no_argument, MIGRATE_OPT_PLANNED, NULL, "a planned (cold) move through backups"},
    {"via", required_argument, MIGRATE_OPT_VIA, "TARGET",
     "the backup target (default: the policy's first target)"},
    {"shutdown-timeout", required_argument, MIGRATE_OPT_SHUTDOWN_TIMEOUT, "SECS",
     "wait that long for the guest to shut down (default 120)"},
    {"force", no_argument, MIGRATE_OPT_FORCE, NULL,
     "destroy the domain when it does not shut down in time"},
    {"dest-pool", required_argument, MIGRATE_OPT_DEST_POOL, "POOL",
     "the destination storage pool (default \"default\")"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_migrate = {
    .name = "migrate",
    .synopsis = "DOMAIN --to URI [OPTIONS]",
    .summary = "Migrate a domain to another host, after pre-checks.",
    .help = "Checks, all together and before anything moves: the destination is reachable; the\n"
            "CPU is compatible (virConnectCompareHypervisorCPU with the domain's <cpu>; for\n"
            "host-passthrough, and host-model before it is expanded, the source host's CPU; with\n"
            "no <cpu>, QEMU's default qemu64); the destination has the memory free; every disk is\n"
            "visible at the same path (shared storage: a storage volume there, or the file on\n"
            "this machine readable by the destination daemon's user) or, with --copy-storage, its\n"
            "destination image exists or is created (qemu-img, same format and size) where there\n"
            "is room; no domain of that name or UUID exists there.  Then the domain migrates\n"
            "(persistent on the destination, undefined on the source), with progress from the\n"
            "job statistics on a terminal, and post-checks.  A shut-off domain is moved offline.\n",
    .options = migrate_options,
    .tail = "SIGINT, SIGTERM, --timeout or a failure aborts the job: the domain keeps running\n"
            "on the source.  The job (kind migrate), its outcome and the measured downtime go\n"
            "into the catalog.\n"
            "\n"
            "--planned moves the domain cold, through backups, to a host that cannot take a live\n"
            "migration: checks (reachable, memory, name/UUID, backup target, disks, destination\n"
            "pool), a backup while it runs, a graceful shutdown, a final incremental, a restore\n"
            "uploaded into the destination's storage pool (sparse streams, any libvirt URI), a\n"
            "read-back of each volume (SHA-256), define and start there, undefine on the source\n"
            "(its disk files stay).  The downtime runs from the shutdown request to the domain\n"
            "running on the destination (job kind migrate-planned).  A failure after the\n"
            "shutdown removes what was made on the destination and starts the domain again on\n"
            "the source.\n"
            "\n"
            "Exit status: 0 migrated (or all pre-checks passed), 1 failed or a pre-check failed,\n"
            "2 usage error, 3 unknown domain, 130 interrupted.\n",
    .run = cli_cmd_migrate,
};

static const struct cli_option evacuate_options[] = {
    {"from", required_argument, OPT_FROM, "URI", "the host to empty"},
    {"to", required_argument, MIGRATE_OPT_TO, "URI,...", "the destinations"},
    {"parallel", required_argument, OPT_PARALLEL, "N", "migrations at a time (default 1)"},
    {"include-stopped", no_argument, OPT_INCLUDE_STOPPED, NULL, "move shut-off domains too"},
    MIGRATE_TUNING_OPTIONS{"dry-run", no_argument, OPT_DRY_RUN, NULL,
                           "placement and pre-checks only"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {domains: [{domain, destination, outcome, seconds,\n"
     "downtime_ms, error, checks, ...}], failed}"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_evacuate = {
    .name = "evacuate",
    .synopsis = "--to URI[,URI...] [OPTIONS]",
    .summary = "Migrate every running domain off a host.",
    .help = "Moves every running domain of the source (--from, default -c) and, with\n"
            "--include-stopped, every shut-off persistent one (offline).  Each domain goes to the\n"
            "destination with the most free memory (less what was already placed there) that\n"
            "passes its pre-checks (see migrate); the largest domains are placed first.  N\n"
            "migrations run at a time; one failure does not stop the others.\n",
    .options = evacuate_options,
    .tail = "The report lists each domain, its destination, outcome (migrated, failed, planned),\n"
            "duration and downtime.\n"
            "\n"
            "Exit status: 0 all moved, 1 some failed, 2 usage error, 130 interrupted.\n",
    .run = cli_cmd_evacuate,
};
