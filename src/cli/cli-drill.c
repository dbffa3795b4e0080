/* virtkeep - `virtkeep drill DOMAIN [--backup ID] [--from TARGET]
 * [--scratch DIR] [--keep] [--json]` (see src/drill.h). */
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
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/plan/plan.h"

enum { OPT_BACKUP = 256, OPT_FROM, OPT_SCRATCH, OPT_KEEP, OPT_JSON };

struct drill_args {
    struct drill_options o;
    bool json;
    bool quiet;
};

static struct json_object *disks_json(const struct drill_result *r)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; i < r->nr_disks; i++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "disk", json_object_new_string(r->disks[i].target));
        json_object_object_add(o, "path", json_object_new_string(r->disks[i].path));
        json_object_object_add(o, "virtual_size",
                               json_object_new_int64((int64_t)r->disks[i].virtual_size));
        json_object_array_add(a, o);
    }
    return a;
}

static void print_json(const struct drill_result *r)
{
    struct json_object *o = json_object_new_object(), *chain = json_object_new_array();

    for (size_t i = 0; r->chain && r->chain[i]; i++)
        json_object_array_add(chain, json_object_new_string(r->chain[i]));
    json_object_object_add(o, "domain", vk_json_string_or_null(r->domain));
    json_object_object_add(o, "backup", vk_json_string_or_null(r->backup_id));
    json_object_object_add(o, "chain", chain);
    json_object_object_add(o, "scratch", vk_json_string_or_null(r->scratch));
    json_object_object_add(o, "kept", json_object_new_boolean(r->kept));
    json_object_object_add(o, "targets", vk_json_string_or_null(r->targets));
    json_object_object_add(o, "estimate_seconds", json_object_new_double(r->estimate_seconds));
    json_object_object_add(o, "estimate_source",
                           json_object_new_string(reader_source_name(r->estimate_source)));
    json_object_object_add(o, "actual_seconds", json_object_new_double(r->actual_seconds));
    json_object_object_add(o, "verify_seconds", json_object_new_double(r->verify_seconds));
    json_object_object_add(o, "bytes_read", json_object_new_int64((int64_t)r->bytes_read));
    json_object_object_add(o, "disk_bytes", json_object_new_int64((int64_t)r->disk_bytes));
    json_object_object_add(o, "chunks_verified",
                           json_object_new_int64((int64_t)r->chunks_verified));
    json_object_object_add(o, "disks", disks_json(r));
    json_object_object_add(o, "drill_id", json_object_new_int64(r->drill_id));
    json_object_object_add(o, "job_id", json_object_new_int64(r->job_id));
    json_object_object_add(o, "ok", json_object_new_boolean(r->ok));
    json_object_object_add(o, "error", vk_json_string_or_null(r->error));
    cli_json_print(o);
}

static void print_human(const struct drill_result *r)
{
    char b[VK_SIZE_BUFLEN];

    printf("drill %" PRId64 " of %s: backup %s %s\n", r->drill_id, r->domain, r->backup_id,
           r->ok ? "restored and verified" : "FAILED");
    printf("  restore: %.1f s (estimated %.1f s from %s), %s read from %s\n", r->actual_seconds,
           r->estimate_seconds, reader_source_name(r->estimate_source),
           vk_size_format(r->bytes_read, b, sizeof b), r->targets ? r->targets : "?");
    printf("  verify: %.1f s, %zu chunks re-read, %zu images checked\n", r->verify_seconds,
           r->chunks_verified, r->nr_disks);
    printf("  scratch %s: %s\n", r->scratch ? r->scratch : "-", r->kept ? "kept" : "removed");
}

static void stage_print(void *opaque, const char *stage)
{
    const struct drill_args *a = opaque;

    if (!a->quiet)
        fprintf(stderr, "drill %s: %s\n", a->o.domain, stage);
}

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct drill_args *a)
{
    int c;

    while ((c = cli_options_next(&cli_command_drill, argc, argv, "h")) != -1) {
        if (c == OPT_BACKUP) {
            a->o.backup_id = optarg;
        } else if (c == OPT_FROM) {
            a->o.from = optarg;
        } else if (c == OPT_SCRATCH) {
            a->o.scratch = optarg;
        } else if (c == OPT_KEEP) {
            a->o.keep = true;
        } else if (c == OPT_JSON) {
            a->json = true;
        } else {
            return cli_option_default(cmd, c);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("drill", "drill takes one domain name");
    if (a->o.scratch && !*a->o.scratch)
        return cli_usage_error("drill", "--scratch needs a directory");
    a->o.domain = argv[optind];
    return -1;
}

int cli_cmd_drill(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_drill;
    struct drill_args a;
    struct drill_result res;
    struct catalog *cat = NULL;
    int r;

    memset(&a, 0, sizeof a);
    memset(&res, 0, sizeof res);
    if ((r = args_parse(cmd, argc, argv, &a)) >= 0 || (r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    a.quiet = cli->quiet || a.json;
    a.o.config = cli->config;
    a.o.cancel = &cli_interrupted;
    a.o.stage = stage_print;
    a.o.opaque = &a;
    cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    if (!cat) {
        r = cli_error_last();
        goto out;
    }
    cli_signals_catch();
    r = drill_run(cat, &a.o, &res, 0);
    cli_signals_default();
    if (res.drill_id > 0 && a.json)
        print_json(&res);
    else if (res.drill_id > 0 && !cli->quiet)
        print_human(&res);
    if (r == 0) {
        r = CLI_EXIT_OK;
        goto out;
    }
    r = cli_error_last();
    if (cli_interrupted)
        r = CLI_EXIT_INTERRUPTED;
out:
    drill_result_clear(&res);
    catalog_close(cat);
    return r;
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option drill_options[] = {
    {"backup", required_argument, OPT_BACKUP, "ID", "drill this backup instead of the latest"},
    {"from", required_argument, OPT_FROM, "TARGET", "read from this target (name or URL)"},
    {"scratch", required_argument, OPT_SCRATCH, "DIR", "restore into DIR (missing or empty)"},
    {"keep", no_argument, OPT_KEEP, NULL, "leave the restored images in the scratch directory"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {domain, backup, chain, scratch, kept, targets,\n"
     "estimate_seconds, estimate_source, actual_seconds,\n"
     "verify_seconds, bytes_read, disk_bytes, chunks_verified, disks,\n"
     "drill_id, job_id, ok, error} on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_drill = {
    .name = "drill",
    .synopsis = "DOMAIN [--backup ID] [--from TARGET] [--scratch DIR] [--keep] [--json]",
    .summary = "Run a DR drill: restore to scratch, verify, measure and record.",
    .help = "Restores the latest committed backup of DOMAIN (or backup ID) into a fresh scratch\n"
            "directory (mkdtemp under /var/tmp, or DIR, which must be missing or empty), then\n"
            "verifies it: every chunk restored is checked against its sha256 while restoring,\n"
            "every archive of the chain is re-read in full as verify does, and each restored\n"
            "image must pass 'qemu-img check' with the disk's virtual size.  The measured\n"
            "restore time is recorded in the catalog next to the estimate made before starting\n"
            "(with the bytes read and the outcome), and later restore estimates learn from it.\n"
            "The scratch directory is removed afterwards, also on failure or interruption.\n",
    .options = drill_options,
    .tail = "Exit status: 0 the drill verified ok, 1 the restore or the verification failed (the\n"
            "message names the disk and the chunk), 2 usage error or a non-empty --scratch,\n"
            "3 no such domain or backup, 130 interrupted.\n",
    .run = cli_cmd_drill,
};
