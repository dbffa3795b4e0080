/* virtkeep - `virtkeep jobs [--all] [--json]` and `virtkeep jobs cancel ID`:
 * the daemon's jobs, then the recent ones of the catalog. */
#include <config.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/api/api.h"
#include "src/cli/cli.h"

#define JOBS_RECENT 20 /* as the server's default */

enum { OPT_JSON = 256, OPT_SOCKET, OPT_ALL, OPT_URL };

struct jobs_args {
    const char *socket;
    const char *url;
    const char *cancel; /* the job id to cancel, or NULL: list */
    bool json, all;
};

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct jobs_args *a)
{
    int c;

    while ((c = cli_options_next(&cli_command_jobs, argc, argv, "h")) != -1) {
        if (c == OPT_JSON)
            a->json = true;
        else if (c == OPT_ALL)
            a->all = true;
        else if (c == OPT_SOCKET)
            a->socket = optarg;
        else if (c == OPT_URL)
            a->url = optarg;
        else
            return cli_option_default(cmd, c);
    }
    if (optind == argc)
        return -1;
    if (strcmp(argv[optind], "cancel") != 0)
        return cli_usage_error("jobs", "unknown jobs subcommand '%s'", argv[optind]);
    if (optind + 2 != argc)
        return cli_usage_error("jobs", "jobs cancel takes one job id");
    a->cancel = argv[optind + 1];
    return -1;
}

/* ---- list ------------------------------------------------------------- */

static int jobs_offline(struct cli *cli, bool all, struct json_object **out)
{
    struct catalog *cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    struct catalog_jobs *recent = NULL;
    int r;

    if (!cat)
        return -1;
    r = catalog_job_list(cat, NULL, 0, all ? 0 : JOBS_RECENT, &recent);
    catalog_close(cat);
    if (r < 0)
        return -1;
    *out = api_jobs_json(NULL, 0, recent);
    catalog_jobs_free(recent);
    return 0;
}

static const char *field(struct json_object *o, const char *key)
{
    struct json_object *v;
    const char *s;

    if (!json_object_object_get_ex(o, key, &v) || !v)
        return "-";
    s = json_object_get_string(v);
    return s && *s ? s : "-";
}

static int64_t ifield(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : 0;
}

static const char *when(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return "-";
    return buf;
}

static void rows_print(struct json_object *arr)
{
    char t[32];

    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        const char *err = field(o, "error");
        printf("%-6" PRId64 " %-8s %-16s %-12s %-10s %-20s %s\n", ifield(o, "id"), field(o, "kind"),
               field(o, "domain"), field(o, "target"), field(o, "state"),
               when(ifield(o, "started"), t, sizeof t), strcmp(err, "-") ? err : "");
    }
}

static void table_print(struct json_object *j, bool daemon)
{
    struct json_object *active = NULL, *recent = NULL;

    json_object_object_get_ex(j, "active", &active);
    json_object_object_get_ex(j, "recent", &recent);
    printf("%-6s %-8s %-16s %-12s %-10s %-20s %s\n", "ID", "KIND", "DOMAIN", "TARGET", "STATE",
           "STARTED", "ERROR");
    if (daemon) {
        printf("-- running in virtkeepd (%zu)\n", active ? json_object_array_length(active) : 0);
        rows_print(active);
    }
    printf("-- recent in the catalog\n");
    rows_print(recent);
}

static int jobs_list(struct cli *cli, const struct jobs_args *a)
{
    struct json_object *j = NULL;
    struct api_client cl;
    bool daemon = true;
    int r;

    if (api_client_init(&cl, cli->config, a->socket, a->url, 0) < 0)
        return cli_error_last();
    r = api_client_call(&cl, "GET", a->all ? "/v1/jobs?all=1" : "/v1/jobs", &j);
    api_client_clear(&cl);
    if (r < 0 && vk_error_code() == VK_ERR_NETWORK) {
        fprintf(stderr, "virtkeep: virtkeepd is not running: jobs from the catalog only\n");
        daemon = false;
        r = jobs_offline(cli, a->all, &j);
    }
    if (r < 0)
        return cli_error_last();
    json_object_object_add(j, "daemon", json_object_new_boolean(daemon));
    if (a->json)
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
    else
        table_print(j, daemon);
    json_object_put(j);
    return CLI_EXIT_OK;
}

/* ---- cancel ----------------------------------------------------------- */

static int jobs_cancel(struct cli *cli, const struct jobs_args *a)
{
    struct json_object *j = NULL;
    CLEANUP_FREE char *path = NULL;
    struct api_client cl;
    unsigned long long id;
    int r;

    if (vk_parse_uint(a->cancel, INT64_MAX, &id) < 0 || id == 0)
        return cli_usage_error("jobs", "'%s' is not a job id", a->cancel);
    if (!(path = vk_asprintf("/v1/jobs/%llu/cancel", id)) ||
        api_client_init(&cl, cli->config, a->socket, a->url, 0) < 0)
        return cli_error_last();
    r = api_client_call(&cl, "POST", path, &j);
    api_client_clear(&cl);
    if (r < 0) {
        vk_error_prefix("cannot cancel job %llu", id);
        return cli_error_last();
    }
    if (a->json)
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
    else if (!cli->quiet)
        printf("job %llu: cancel requested\n", id);
    json_object_put(j);
    return CLI_EXIT_OK;
}

int cli_cmd_jobs(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_jobs;
    struct jobs_args a = {0};
    int r;

    if ((r = args_parse(cmd, argc, argv, &a)) >= 0 || (r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    return a.cancel ? jobs_cancel(cli, &a) : jobs_list(cli, &a);
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option jobs_options[] = {
    {"all", no_argument, OPT_ALL, NULL, "every job of the catalog, not only the recent ones"},
    {"socket", required_argument, OPT_SOCKET, "PATH",
     "the daemon's unix socket (default as for status)"},
    {"url", required_argument, OPT_URL, "URL", "the daemon's HTTP address (as for status)"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {daemon, active: [{id, kind, domain, target, backup_id,\n"
     "level, state, pid, started}], recent: [{id, kind, domain, target,\n"
     "backup_id, state, pid, started, finished, progress_done,\n"
     "progress_total, estimate_seconds, elapsed_seconds, error}]}"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_jobs = {
    .name = "jobs",
    .synopsis = "[--all] [--json] | cancel ID",
    .summary = "List the daemon's jobs, or cancel one.",
    .help = "Lists the jobs virtkeepd runs or has queued, then the recent jobs of the catalog\n"
            "(the last 20; --all for every one).  When no daemon answers, only the catalog's jobs\n"
            "are listed and \"virtkeepd is not running\" is printed on stderr.\n"
            "'jobs cancel ID' asks virtkeepd to cancel job ID: the job cleans up and is recorded\n"
            "as cancelled.\n",
    .options = jobs_options,
    .tail = "Exit status: 0 done, 1 failed (cancel: virtkeepd is not running), 2 usage error,\n"
            "3 cancel: the daemon runs no job ID.\n",
    .run = cli_cmd_jobs,
};
