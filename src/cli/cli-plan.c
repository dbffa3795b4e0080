/* virtkeep - `virtkeep plan restore DOMAIN [--at TIME | --backup ID]
 * [--target NAME] [--disks LIST] [--json]` and `virtkeep plan dr
 * [--target NAME] [--parallel N] [--at TIME] [--json]` (src/dr.h). */
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
#include "src/cli/cli.h"
#include "src/plan/plan.h"
#include "src/restore/restore.h"

enum { OPT_AT = 256, OPT_BACKUP, OPT_TARGET, OPT_DISKS, OPT_JSON, OPT_PARALLEL };

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
        const struct reader_cost *t = &p->targets[i];
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "target", json_object_new_string(t->name));
        json_object_object_add(o, "bytes", i64(t->bytes));
        json_object_object_add(o, "rate", json_object_new_double(t->rate));
        json_object_object_add(o, "samples", i64(t->samples));
        json_object_object_add(o, "guess", json_object_new_boolean(t->guess));
        json_object_object_add(o, "overhead", json_object_new_double(t->overhead));
        json_object_object_add(o, "source", json_object_new_string(reader_source_name(t->source)));
        json_object_object_add(o, "seconds", json_object_new_double(t->seconds));
        json_object_array_add(a, o);
    }
    return a;
}

static struct json_object *drill_json(const struct reader_drill_ref *d)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_new_int64(d->id));
    json_object_object_add(o, "time", json_object_new_int64(d->time));
    json_object_object_add(o, "actual_seconds", json_object_new_double(d->actual_seconds));
    json_object_object_add(o, "estimate_seconds", json_object_new_double(d->estimate_seconds));
    json_object_object_add(o, "bytes_read", i64(d->bytes_read));
    json_object_object_add(o, "samples", i64(d->samples));
    return o;
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
    json_object_object_add(o, "estimate_source",
                           json_object_new_string(reader_source_name(p->source)));
    if (p->drill.id > 0)
        json_object_object_add(o, "drill", drill_json(&p->drill));
    cli_json_print(o);
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
        const struct reader_cost *t = &p->targets[i];
        char r[VK_SIZE_BUFLEN];
        printf("  target %s: %s at %s/s + %.1f s: %.1f s (%s)%s\n", t->name,
               vk_size_format(t->bytes, b, sizeof b),
               vk_size_format((uint64_t)t->rate, r, sizeof r), t->overhead, t->seconds,
               reader_source_name(t->source), t->guess ? ": no measured history" : "");
    }
    printf("estimated duration: %.1f s (source: %s)\n", p->estimate_seconds,
           reader_source_name(p->source));
    if (p->drill.id > 0)
        printf("learned from %u drill(s), the newest (drill %" PRId64 ") took %.1f s, "
               "estimated %.1f s\n",
               p->drill.samples, p->drill.id, p->drill.actual_seconds, p->drill.estimate_seconds);
}

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct plan_args *a)
{
    int c;

    while ((c = cli_options_next(&cli_command_plan, argc, argv, "h")) != -1) {
        if (c == OPT_AT) {
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
        } else if (c == OPT_PARALLEL) {
            return cli_usage_error("plan", "--parallel goes with plan dr only");
        } else {
            return cli_option_default(cmd, c);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("plan", "plan restore takes one domain name");
    if (a->at && a->o.backup_id)
        return cli_usage_error("plan", "give --at TIME or --backup ID, not both");
    a->o.domain = argv[optind];
    a->o.now = (int64_t)time(NULL);
    a->o.at = INT64_MAX;
    if (a->at && reader_time_parse(a->at, a->o.now, &a->o.at) < 0)
        return cli_usage_error("plan", "%s", vk_error_message());
    a->o.disks = a->disks;
    return -1;
}

/* ---------------------------------------------------------------- plan dr */

static struct json_object *dr_item_json(const struct dr_item *it)
{
    struct json_object *o = json_object_new_object(), *r = json_object_new_array();
    bool ok = it->slot >= 0;

    for (size_t i = 0; it->reasons && it->reasons[i]; i++)
        json_object_array_add(r, json_object_new_string(it->reasons[i]));
    json_object_object_add(o, "domain", json_object_new_string(it->domain));
    json_object_object_add(o, "host", vk_json_string_or_null(it->host));
    json_object_object_add(o, "priority", i64(it->priority));
    json_object_object_add(o, "rpo", i64(it->rpo));
    json_object_object_add(o, "rto", i64(it->rto));
    json_object_object_add(o, "backup", vk_json_string_or_null(it->backup_id));
    json_object_object_add(o, "backup_time",
                           it->backup_id ? json_object_new_int64(it->backup_time) : NULL);
    json_object_object_add(o, "restorable", json_object_new_boolean(ok));
    json_object_object_add(o, "estimate_seconds",
                           ok ? json_object_new_double(it->estimate_seconds) : NULL);
    json_object_object_add(o, "estimate_source",
                           ok ? json_object_new_string(reader_source_name(it->source)) : NULL);
    json_object_object_add(o, "slot", ok ? json_object_new_int(it->slot) : NULL);
    json_object_object_add(o, "start_seconds", ok ? json_object_new_double(it->start) : NULL);
    json_object_object_add(o, "finish_seconds", ok ? json_object_new_double(it->finish) : NULL);
    json_object_object_add(o, "data_loss_seconds",
                           it->data_loss >= 0 ? json_object_new_int64(it->data_loss) : NULL);
    json_object_object_add(o, "rto_met", json_object_new_boolean(it->rto_met));
    json_object_object_add(o, "rpo_met", json_object_new_boolean(it->rpo_met));
    json_object_object_add(o, "reasons", r);
    return o;
}

static void dr_print_json(const struct dr_plan *p)
{
    struct json_object *o = json_object_new_object(), *a = json_object_new_array();

    for (size_t i = 0; i < p->nr; i++)
        json_object_array_add(a, dr_item_json(&p->items[i]));
    json_object_object_add(o, "at", json_object_new_int64(p->at));
    json_object_object_add(o, "parallel", i64(p->parallel));
    json_object_object_add(o, "hosts", i64(p->hosts));
    json_object_object_add(o, "makespan_seconds", json_object_new_double(p->makespan));
    json_object_object_add(o, "missed", i64(p->missed));
    json_object_object_add(o, "domains", a);
    cli_json_print(o);
}

static const char *secs(double s, char *buf, size_t len)
{
    if (s < 0)
        return "-";
    return vk_duration_format((uint64_t)(s + 0.5), buf, len);
}

static void dr_print(const struct dr_plan *p)
{
    char a[VK_DURATION_BUFLEN], b[VK_DURATION_BUFLEN], c[VK_DURATION_BUFLEN], d[VK_DURATION_BUFLEN],
        e[VK_DURATION_BUFLEN], f[VK_DURATION_BUFLEN];

    if (p->hosts > 1)
        printf("DR plan: %zu domain(s) on %u parallel slot(s) on each of %zu hosts, data-centre "
               "total %s, %zu with an objective missed\n",
               p->nr, p->parallel, p->hosts, secs(p->makespan, a, sizeof a), p->missed);
    else
        printf("DR plan: %zu domain(s) on %u parallel slot(s), total %s, %zu with an objective "
               "missed\n",
               p->nr, p->parallel, secs(p->makespan, a, sizeof a), p->missed);
    printf("%-4s %-20s %-4s %9s %9s %9s %9s %-4s %9s %9s %-4s\n", "PRIO", "DOMAIN", "SLOT",
           "ESTIMATE", "START", "FINISH", "RTO", "MET", "LOSS", "RPO", "MET");
    for (size_t i = 0; i < p->nr; i++) {
        const struct dr_item *it = &p->items[i];
        char prio[16], slot[80];
        snprintf(prio, sizeof prio, "%u", it->priority);
        /* several hosts: HOST/SLOT */
        snprintf(slot, sizeof slot, "%.64s%s%d", p->hosts > 1 && it->host ? it->host : "",
                 p->hosts > 1 && it->host ? "/" : "", it->slot);
        printf("%-4s %-20s %-4s %9s %9s %9s %9s %-4s %9s %9s %-4s\n", it->priority ? prio : "-",
               it->domain, it->slot >= 0 ? slot : "-",
               secs(it->slot >= 0 ? it->estimate_seconds : -1, a, sizeof a),
               secs(it->start, b, sizeof b), secs(it->finish, c, sizeof c),
               it->rto ? secs((double)it->rto, d, sizeof d) : "-", it->rto_met ? "yes" : "NO",
               secs(it->data_loss >= 0 ? (double)it->data_loss : -1, e, sizeof e),
               it->rpo ? secs((double)it->rpo, f, sizeof f) : "-", it->rpo_met ? "yes" : "NO");
        for (size_t j = 0; it->reasons && it->reasons[j]; j++)
            printf("       %s: %s\n", it->domain, it->reasons[j]);
    }
}

static int dr_args(const struct cli_command *cmd, int argc, char **argv, struct dr_options *o,
                   bool *json)
{
    const char *at = NULL;
    unsigned long long n;
    int c;

    o->parallel = 1;
    while ((c = cli_options_next(&cli_command_plan, argc, argv, "h")) != -1) {
        if (c == OPT_TARGET) {
            o->target = optarg;
        } else if (c == OPT_PARALLEL) {
            if (vk_parse_uint(optarg, 1024, &n) < 0 || n == 0)
                return cli_usage_error("plan", "--parallel '%s' is not a number from 1 to 1024",
                                       optarg);
            o->parallel = (unsigned int)n;
        } else if (c == OPT_AT) {
            at = optarg;
        } else if (c == OPT_JSON) {
            *json = true;
        } else if (c == OPT_BACKUP || c == OPT_DISKS) {
            return cli_usage_error("plan", "--backup and --disks go with plan restore only");
        } else {
            return cli_option_default(cmd, c);
        }
    }
    if (optind != argc)
        return cli_usage_error("plan", "plan dr takes no domain: it plans every domain");
    o->now = (int64_t)time(NULL);
    o->at = INT64_MAX;
    if (at && reader_time_parse(at, o->now, &o->at) < 0)
        return cli_usage_error("plan", "%s", vk_error_message());
    return -1;
}

static int cli_plan_dr(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct dr_options o = {0};
    struct dr_plan p = {0};
    struct catalog *cat = NULL;
    bool json = false;
    int r;

    if ((r = dr_args(cmd, argc, argv, &o, &json)) >= 0 || (r = cli_config_load(cli)) != 0)
        return r;
    o.config = cli->config;
    cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    if (!cat || dr_plan_build(cat, &o, &p, 0) < 0) {
        r = cli_error_last();
        goto out;
    }
    if (json)
        dr_print_json(&p);
    else
        dr_print(&p);
    r = p.missed ? CLI_EXIT_VIOLATED : CLI_EXIT_OK;
out:
    dr_plan_clear(&p);
    catalog_close(cat);
    return r;
}

int cli_cmd_plan(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_plan;
    struct plan_args a;
    struct plan_restore p;
    struct catalog *cat = NULL;
    int r;

    memset(&a, 0, sizeof a);
    memset(&p, 0, sizeof p);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        cli_help_print(cmd);
        return CLI_EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "dr") == 0)
        return cli_plan_dr(cli, cmd, argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "restore") != 0)
        return cli_usage_error("plan", "the plans are 'plan restore DOMAIN' and 'plan dr'");
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

/* ---------------------------------------------------------------- the command */

static const struct cli_option plan_options[] = {
    {"at", required_argument, OPT_AT, "TIME", "as for restore (RFC 3339, 'now', '2h ago')"},
    {"backup", required_argument, OPT_BACKUP, "ID", "plan the restore of exactly this backup"},
    {"target", required_argument, OPT_TARGET, "NAME",
     "read from this target (name or URL), as restore --from"},
    {"disks", required_argument, OPT_DISKS, "LIST", "only these disks"},
    {"parallel", required_argument, OPT_PARALLEL, "N",
     "plan dr: restore slots that run at once on each destination\n"
     "host (default 1)"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {domain, backup, chain, backup_time, at, rpo_seconds,\n"
     "archives: [{backup, disk, target, key, read_bytes, index_bytes,\n"
     "chunks}], targets: [{target, bytes, rate, overhead, samples,\n"
     "source, guess, seconds}], read_bytes, disk_bytes,\n"
     "virtual_bytes, estimate_seconds, estimate_source, guess,\n"
     "drill: {id, time, actual_seconds, estimate_seconds, bytes_read,\n"
     "samples} (when learned from drills)} on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_plan = {
    .name = "plan",
    .synopsis = "restore DOMAIN [--at TIME|--backup ID] [--target NAME] [--json] | dr [OPTIONS]",
    .summary = "Show what a restore (or a disaster recovery) would read, lose and take.",
    .help =
        "plan restore DOMAIN: resolves the chain a restore would use (as restore does), reads\n"
        "only the indexes of its archives, merges them and shows the bytes to read per archive\n"
        "and per target, the data lost (RPO: TIME, or now, minus the time of the chosen\n"
        "backup) and an estimated duration.  The estimate of a target comes from the recent\n"
        "DR drills that read it (source drill: seconds = overhead + bytes / rate fitted to\n"
        "them), else from the read throughput measured on earlier jobs (source throughput),\n"
        "else 100 MiB/s (source guess).\n",
    .options = plan_options,
    .tail = "plan dr [--target NAME] [--parallel N] [--at TIME] [--json]: the disaster recovery\n"
            "plan of every domain of the configuration and the catalog: the restore of each\n"
            "one's latest backup (at or before TIME), estimated as above, ordered by policy\n"
            "priority (1 first, unset last; ties: the least RTO slack first, then the name) and\n"
            "scheduled on N parallel restore slots per destination host, the host each domain\n"
            "last ran on when several hosts share the catalog (default 1; a domain starts on its\n"
            "host's first slot free; hosts restore side by side, and the total is the data\n"
            "centre's makespan).  Each domain's RTO is judged by its finish offset, waiting in the "
            "queue\n"
            "included; its RPO by the age of its latest backup.  Reasons are given for every\n"
            "objective missed.\n"
            "\n"
            "Exit status: 0, 1 an archive cannot be read, 2 usage error, 3 no such domain or\n"
            "backup; plan dr: 6 when some RTO or RPO objective would be missed.\n",
    .run = cli_cmd_plan,
};
