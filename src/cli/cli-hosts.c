/* virtkeep - `virtkeep hosts [--json]`: the hosts whose virtkeepd share the
 * catalog, their heartbeats, running jobs, domains and versions. */
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
#include "src/cli/cli.h"

enum { OPT_JSON = 256 };

struct fleet {
    int64_t now;
    struct catalog_hosts *hosts;
    struct catalog_domains *domains;
};

static void fleet_clear(struct fleet *f)
{
    catalog_hosts_free(f->hosts);
    catalog_domains_free(f->domains);
}

static int fleet_load(struct cli *cli, struct fleet *f)
{
    struct catalog *cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    int r;

    memset(f, 0, sizeof *f);
    f->now = (int64_t)time(NULL);
    if (!cat)
        return -1;
    r = catalog_host_list(cat, &f->hosts) < 0 || catalog_domain_list(cat, &f->domains) < 0 ? -1 : 0;
    catalog_close(cat);
    if (r < 0)
        fleet_clear(f);
    return r;
}

static const char *when(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return "never";
    return buf;
}

static struct json_object *host_json(const struct fleet *f, const struct catalog_host *h)
{
    struct json_object *o = json_object_new_object(), *doms = json_object_new_array();
    bool lost = catalog_host_lost(h, f->now);

    json_object_object_add(o, "host", json_object_new_string(h->name));
    json_object_object_add(o, "uri", h->uri ? json_object_new_string(h->uri) : NULL);
    json_object_object_add(o, "version", h->version ? json_object_new_string(h->version) : NULL);
    json_object_object_add(o, "started", json_object_new_int64(h->started));
    json_object_object_add(o, "heartbeat", json_object_new_int64(h->heartbeat));
    json_object_object_add(o, "heartbeat_age", json_object_new_int64(f->now - h->heartbeat));
    json_object_object_add(o, "lease_seconds", json_object_new_int64(h->lease_seconds));
    json_object_object_add(o, "state", json_object_new_string(lost ? "unreachable" : "up"));
    json_object_object_add(o, "unreachable_since",
                           lost ? json_object_new_int64(h->heartbeat) : NULL);
    json_object_object_add(o, "running_jobs", json_object_new_int64(h->running_jobs));
    for (size_t i = 0; i < f->domains->count; i++) {
        const struct catalog_domain *d = &f->domains->items[i];
        if (d->host && strcmp(d->host, h->name) == 0)
            json_object_array_add(doms, json_object_new_string(d->name));
    }
    json_object_object_add(o, "domains", doms);
    return o;
}

static struct json_object *fleet_json(const struct fleet *f)
{
    struct json_object *j = json_object_new_object(), *arr = json_object_new_array();

    json_object_object_add(j, "now", json_object_new_int64(f->now));
    for (size_t i = 0; i < f->hosts->count; i++)
        json_object_array_add(arr, host_json(f, &f->hosts->items[i]));
    json_object_object_add(j, "hosts", arr);
    return j;
}

/* One host of the table; DOMS: its domains, from its JSON. */
static void host_print(const struct fleet *f, const struct catalog_host *h,
                       struct json_object *doms)
{
    char t[32], age[VK_DURATION_BUFLEN], state[64];
    int64_t silent = f->now > h->heartbeat ? f->now - h->heartbeat : 0;

    if (catalog_host_lost(h, f->now))
        snprintf(state, sizeof state, "unreachable since %s", when(h->heartbeat, t, sizeof t));
    else
        snprintf(state, sizeof state, "up");
    printf("%-16s %-20s %8s ago  %4u  %-8s %-24s %s\n", h->name, when(h->heartbeat, t, sizeof t),
           vk_duration_format((uint64_t)silent, age, sizeof age), h->running_jobs,
           h->version ? h->version : "-", h->uri ? h->uri : "-", state);
    printf("%-16s domains: ", "");
    for (size_t i = 0; i < json_object_array_length(doms); i++)
        printf("%s%s", i ? ", " : "", json_object_get_string(json_object_array_get_idx(doms, i)));
    printf("%s\n", json_object_array_length(doms) ? "" : "(none)");
}

static void table_print(const struct fleet *f, struct json_object *j)
{
    struct json_object *arr = json_object_object_get(j, "hosts");

    printf("%-16s %-20s %12s  %4s  %-8s %-24s %s\n", "HOST", "HEARTBEAT", "", "JOBS", "VERSION",
           "URI", "STATE");
    for (size_t i = 0; i < f->hosts->count; i++)
        host_print(f, &f->hosts->items[i],
                   json_object_object_get(json_object_array_get_idx(arr, i), "domains"));
    if (!f->hosts->count)
        printf("(no host has registered: no virtkeepd has run on this catalog)\n");
}

int cli_cmd_hosts(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_hosts;
    struct json_object *j;
    struct fleet f;
    bool json = false;
    int c, r;

    while ((c = cli_options_next(cmd, argc, argv, "h")) != -1) {
        if (c != OPT_JSON)
            return cli_option_default(cmd, c);
        json = true;
    }
    if (optind < argc)
        return cli_usage_error("hosts", "hosts takes no argument");
    if ((r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    if (fleet_load(cli, &f) < 0)
        return cli_error_last();
    j = fleet_json(&f);
    if (json)
        cli_json_print(j);
    else {
        table_print(&f, j);
        json_object_put(j);
    }
    fleet_clear(&f);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option hosts_options[] = {
    {"json", no_argument, OPT_JSON, NULL,
     "print {now, hosts: [{host, uri, version, started, heartbeat,\n"
     "heartbeat_age, lease_seconds, state (up|unreachable),\n"
     "unreachable_since, running_jobs, domains: [NAME]}]}"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_hosts = {
    .name = "hosts",
    .synopsis = "[--json]",
    .summary = "List the hosts whose virtkeepd share the catalog.",
    .help =
        "Lists every host whose virtkeepd has registered in the catalog (several hosts share\n"
        "one PostgreSQL catalog): its last heartbeat, the jobs running on it, the domains that\n"
        "last ran there, its virtkeep version and libvirt URI.  A host silent for longer than\n"
        "its leases last is \"unreachable since\" its last heartbeat: another host's daemon\n"
        "marks its running jobs failed, and its domains' jobs run wherever they run next.\n",
    .options = hosts_options,
    .tail = "Exit status: 0 done, 1 failed, 2 usage error, 3 no catalog.\n",
    .run = cli_cmd_hosts,
};
