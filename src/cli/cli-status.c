/* virtkeep - `virtkeep status [DOMAIN] [--socket PATH] [--url URL] [--json]`: where
 * each domain stands against its objectives, from virtkeepd when it runs,
 * else computed the same way from the catalog and the configuration. */
#include <config.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/api/api.h"
#include "src/cli/cli.h"

enum { OPT_JSON = 256, OPT_SOCKET, OPT_URL };

struct status_args {
    const char *domain;
    const char *socket;
    const char *url;
    bool json;
};

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct status_args *a)
{
    int c;

    while ((c = cli_options_next(&cli_command_status, argc, argv, "h")) != -1) {
        if (c == OPT_JSON)
            a->json = true;
        else if (c == OPT_SOCKET)
            a->socket = optarg;
        else if (c == OPT_URL)
            a->url = optarg;
        else
            return cli_option_default(cmd, c);
    }
    if (optind + 1 < argc)
        return cli_usage_error("status", "status takes at most one domain name");
    a->domain = optind < argc ? argv[optind] : NULL;
    return -1;
}

/* Ask the daemon.  1: it does not answer; 0: *REP filled; -1: error. */
static int status_remote(struct cli *cli, const struct status_args *a, struct status_report *rep)
{
    struct api_client cl;
    struct json_object *j = NULL;
    CLEANUP_FREE char *path = NULL;
    char *esc = a->domain ? curl_easy_escape(NULL, a->domain, 0) : NULL;
    int r;

    if (a->domain && !esc) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    path = esc ? vk_asprintf("/v1/status?domain=%s", esc) : vk_strdup("/v1/status");
    curl_free(esc);
    if (!path || api_client_init(&cl, cli->config, a->socket, a->url, 0) < 0)
        return -1;
    r = api_client_call(&cl, "GET", path, &j);
    api_client_clear(&cl);
    if (r < 0)
        return vk_error_code() == VK_ERR_NETWORK ? 1 : -1;
    r = status_report_from_json(j, rep);
    json_object_put(j);
    rep->daemon = true;
    return r;
}

static int status_offline(struct cli *cli, const char *domain, struct status_report *rep)
{
    struct catalog *cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    int r;

    if (!cat)
        return -1;
    r = status_compute(cat, cli->config, domain, time(NULL), NULL, rep, 0);
    catalog_close(cat);
    return r;
}

/* ---- the table -------------------------------------------------------- */

static const char *dur(int64_t s, char *buf, size_t len)
{
    if (s < 0)
        return "-";
    return vk_duration_format((uint64_t)s, buf, len);
}

static void next_job_format(const struct status_domain *d, int64_t now, char *buf, size_t len)
{
    char t[VK_DURATION_BUFLEN];

    if (d->next_kind == SCHED_NONE)
        snprintf(buf, len, "-");
    else if (d->next_due <= now)
        snprintf(buf, len, "%s now", sched_kind_name(d->next_kind));
    else
        snprintf(buf, len, "%s in %s", sched_kind_name(d->next_kind),
                 dur(d->next_due - now, t, sizeof t));
}

static void row_print(const struct status_domain *d, int64_t now, bool colour)
{
    char e[VK_DURATION_BUFLEN], o[VK_DURATION_BUFLEN], re[VK_DURATION_BUFLEN];
    char ro[VK_DURATION_BUFLEN], rpo[64], rto[64], next[80];
    bool bad = d->rpo_violated || d->rto_violated;

    snprintf(rpo, sizeof rpo, "%s / %s", dur(d->exposure, e, sizeof e),
             d->rpo ? dur((int64_t)d->rpo, o, sizeof o) : "-");
    snprintf(rto, sizeof rto, "%s / %s",
             d->rto_estimate >= 0 ? dur((int64_t)(d->rto_estimate + 0.5), re, sizeof re) : "?",
             d->rto ? dur((int64_t)d->rto, ro, sizeof ro) : "-");
    next_job_format(d, now, next, sizeof next);
    printf("%-16s %-10s %-32s %-20s %-20s %5u %4u  %-18s %s%s%s\n", d->domain,
           d->policy ? d->policy : "-", d->last_backup ? d->last_backup : "never", rpo, rto,
           d->chain_length, d->failures, next, bad && colour ? "\033[1;31m" : "",
           bad ? "VIOLATED" : "ok", bad && colour ? "\033[0m" : "");
}

static void host_lost_print(const struct status_domain *d)
{
    time_t t = (time_t)d->host_unreachable_since;
    char when[32] = "?";
    struct tm tm;

    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s: host '%s' unreachable since %s: its jobs there were failed; the domain's "
           "schedule resumes from the catalog wherever it runs next\n",
           d->domain, d->host, when);
}

static void table_print(const struct status_report *rep)
{
    bool colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");

    printf("%-16s %-10s %-32s %-20s %-20s %5s %4s  %-18s %s\n", "DOMAIN", "POLICY",
           "LAST GOOD BACKUP", "RPO EXPOSURE/OBJ", "RTO ESTIMATE/OBJ", "CHAIN", "FAIL", "NEXT JOB",
           "OBJECTIVES");
    for (size_t i = 0; i < rep->count; i++)
        row_print(&rep->items[i], rep->now, colour);
    for (size_t i = 0; i < rep->count; i++) {
        const struct status_domain *d = &rep->items[i];
        if (d->rpo_violated)
            printf("%s: RPO VIOLATED: %s\n", d->domain, d->rpo_reason ? d->rpo_reason : "");
        if (d->rto_violated)
            printf("%s: RTO VIOLATED: %s\n", d->domain, d->rto_reason ? d->rto_reason : "");
        if (d->immutable_until) {
            char when[32] = "?";
            time_t u = (time_t)d->immutable_until;
            struct tm tm;
            if (gmtime_r(&u, &tm))
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%s: newest immutable copy %s, locked until about %s\n", d->domain,
                   d->last_backup, when);
        }
        if (d->host_unreachable_since)
            host_lost_print(d);
    }
    if (rep->count == 0)
        printf("(no domain has a policy)\n");
}

static void json_print(const struct status_report *rep)
{
    struct json_object *j = status_report_json(rep);

    puts(json_object_to_json_string_ext(j,
                                        JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);
}

int cli_cmd_status(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_status;
    struct status_args a = {0};
    struct status_report rep = {0};
    int r;

    if ((r = args_parse(cmd, argc, argv, &a)) >= 0 || (r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    r = status_remote(cli, &a, &rep);
    if (r == 1) {
        fprintf(stderr, "virtkeep: virtkeepd is not running: status computed from the catalog\n");
        r = status_offline(cli, a.domain, &rep);
    }
    if (r < 0)
        return cli_error_last();
    if (a.json)
        json_print(&rep);
    else
        table_print(&rep);
    r = status_report_violations(&rep) ? CLI_EXIT_VIOLATED : CLI_EXIT_OK;
    status_report_clear(&rep);
    return r;
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option status_options[] = {
    {"socket", required_argument, OPT_SOCKET, "PATH", "the daemon's unix socket"},
    {"url", required_argument, OPT_URL, "URL",
     "the daemon's HTTP address, http://127.0.0.1:PORT ([daemon] listen)"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {now, daemon, violations, domains: [{domain, policy,\n"
     "last_backup, last_success, rpo_exposure, rpo, rpo_violated,\n"
     "rpo_reason, rto_estimate, rto, rto_violated, rto_reason,\n"
     "chain_length, failures, immutable_until (the newest\n"
     "immutable copy stays locked until then), next_job: {kind, due,\n"
     "target, reason}, host, host_unreachable_since}]}\n"
     "(times in Unix seconds, durations in seconds, null when unknown)"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_status = {
    .name = "status",
    .synopsis = "[DOMAIN] [--socket PATH] [--url URL] [--json]",
    .summary = "Show each domain against its RPO and RTO objectives.",
    .help = "For each [domain] with a policy (or DOMAIN only): the latest good backup, the RPO\n"
            "exposure now (time since that backup) against the objective, the estimated restore\n"
            "time of the current chain against the RTO, the chain length, consecutive failed\n"
            "backups, the next job the scheduler has, and the objectives that are violated, with\n"
            "the reason.  The answer comes from virtkeepd over its unix socket (--socket PATH,\n"
            "else [daemon] socket, else /run/virtkeep/virtkeepd.sock), or over HTTP only when\n"
            "asked (--url, else $VIRTKEEP_DAEMON_URL after the socket), with the token of\n"
            "[daemon] token_file, sent only to a server on this host run by root, this user or\n"
            "the owner of the token file.  When no daemon answers, the same status is computed\n"
            "from the catalog and the configuration, and \"virtkeepd is not running\" is printed\n"
            "on stderr.\n",
    .options = status_options,
    .tail = "Exit status: 0 every objective is met, 6 an RPO or RTO objective is violated (for\n"
            "monitoring scripts), 1 failed, 2 usage or configuration error, 3 unknown domain.\n",
    .run = cli_cmd_status,
};
