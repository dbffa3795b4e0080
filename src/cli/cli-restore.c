/* virtkeep - `virtkeep restore DOMAIN [--at TIME | --backup ID] --dest DIR
 * [--disks vda,...] [--from TARGET] [--force] [--define] [--name NEW]
 * [--start] [--keep-host-devices] [--json]`. */
#include <config.h>

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/units.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/restore/restore.h"

enum {
    OPT_AT = 256,
    OPT_BACKUP,
    OPT_DEST,
    OPT_DISKS,
    OPT_FROM,
    OPT_FORCE,
    OPT_JSON,
    OPT_DEFINE,
    OPT_NAME,
    OPT_START,
    OPT_KEEP_HOST_DEVICES
};

struct restore_args {
    struct restore_options o;
    const char *at;
    char **disks;
    bool json;
};

static struct json_object *disk_json(const struct restore_disk_result *d)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "disk", json_object_new_string(d->target));
    json_object_object_add(o, "path", json_object_new_string(d->path));
    json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)d->virtual_size));
    json_object_object_add(o, "cluster_size", json_object_new_int64((int64_t)d->cluster_size));
    json_object_object_add(o, "compat", vk_json_string_or_null(d->compat));
    json_object_object_add(o, "bytes_written", json_object_new_int64((int64_t)d->bytes_written));
    json_object_object_add(o, "zero_bytes", json_object_new_int64((int64_t)d->zero_bytes));
    json_object_object_add(o, "chunks_read", json_object_new_int64((int64_t)d->nr_chunks));
    json_object_object_add(o, "frame_bytes_fetched",
                           json_object_new_int64((int64_t)d->frame_bytes));
    json_object_object_add(o, "raw_bytes_decompressed",
                           json_object_new_int64((int64_t)d->raw_bytes));
    json_object_object_add(o, "index_bytes_fetched",
                           json_object_new_int64((int64_t)d->index_bytes));
    json_object_object_add(o, "merged_data_bytes",
                           json_object_new_int64((int64_t)d->map.data_bytes));
    json_object_object_add(o, "merged_frame_bytes",
                           json_object_new_int64((int64_t)d->map.chunk_frame_bytes));
    json_object_object_add(o, "seconds", json_object_new_double(d->seconds));
    return o;
}

static void result_print_json(const struct restore_result *r)
{
    struct json_object *o = json_object_new_object(), *chain = json_object_new_array();
    struct json_object *disks = json_object_new_array(), *dropped = json_object_new_array();

    struct json_object *devices = json_object_new_array();

    for (size_t i = 0; r->dropped && r->dropped[i]; i++)
        json_object_array_add(dropped, json_object_new_string(r->dropped[i]));
    for (size_t i = 0; r->dropped_devices && r->dropped_devices[i]; i++)
        json_object_array_add(devices, json_object_new_string(r->dropped_devices[i]));
    for (size_t i = 0; r->chain && r->chain[i]; i++)
        json_object_array_add(chain, json_object_new_string(r->chain[i]));
    for (size_t i = 0; i < r->nr_disks; i++)
        json_object_array_add(disks, disk_json(&r->disks[i]));
    json_object_object_add(o, "chain", chain);
    json_object_object_add(o, "disks", disks);
    json_object_object_add(o, "job", json_object_new_int64(r->job_id));
    json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
    json_object_object_add(o, "estimate_seconds", json_object_new_double(r->estimate_seconds));
    json_object_object_add(o, "defined", vk_json_string_or_null(r->defined));
    json_object_object_add(o, "started", json_object_new_boolean(r->started));
    json_object_object_add(o, "dropped_disks", dropped);
    json_object_object_add(o, "dropped_devices", devices);
    cli_json_print(o);
}

static void result_print(const struct restore_result *r)
{
    size_t n = vk_strv_len(r->chain);

    printf("restored from %s (chain of %zu)\n", n ? r->chain[n - 1] : "?", n);
    for (size_t i = 0; i < r->nr_disks; i++) {
        const struct restore_disk_result *d = &r->disks[i];
        char w[VK_SIZE_BUFLEN], f[VK_SIZE_BUFLEN];
        printf("  %s -> %s: wrote %s, fetched %s in %zu chunks, %.1f s\n", d->target, d->path,
               vk_size_format(d->bytes_written, w, sizeof w),
               vk_size_format(d->frame_bytes, f, sizeof f), d->nr_chunks, d->seconds);
    }
    if (r->defined)
        printf("defined domain '%s'%s\n", r->defined, r->started ? " and started it" : "");
    for (size_t i = 0; r->dropped && r->dropped[i]; i++)
        printf("  disk %s was not restored: left out of the definition\n", r->dropped[i]);
}

/* On stderr whatever the output: the saved XML asked for these. */
static void dropped_devices_warn(const struct restore_result *r)
{
    for (size_t i = 0; r->dropped_devices && r->dropped_devices[i]; i++)
        fprintf(stderr,
                "virtkeep: restore: %s reaches the host: left out of the definition "
                "(--keep-host-devices keeps it)\n",
                r->dropped_devices[i]);
}

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct restore_args *a)
{
    int c;

    while ((c = cli_options_next(&cli_command_restore, argc, argv, "h")) != -1) {
        switch (c) {
        case OPT_AT:
            a->at = optarg;
            break;
        case OPT_BACKUP:
            a->o.backup_id = optarg;
            break;
        case OPT_DEST:
            a->o.dest_dir = optarg;
            break;
        case OPT_DISKS:
            vk_strv_free(a->disks);
            if (!(a->disks = vk_strv_split(optarg, ',')))
                return cli_usage_error("restore", "%s", vk_error_message());
            break;
        case OPT_FROM:
            a->o.from = optarg;
            break;
        case OPT_FORCE:
            a->o.force = true;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_DEFINE:
            a->o.define = true;
            break;
        case OPT_NAME:
            a->o.new_name = optarg;
            break;
        case OPT_START:
            a->o.start = a->o.define = true;
            break;
        case OPT_KEEP_HOST_DEVICES:
            a->o.keep_host_devices = true;
            break;
        default:
            return cli_option_default(cmd, c);
        }
    }
    return -1;
}

static int args_check(int argc, char **argv, struct restore_args *a)
{
    if (optind + 1 != argc)
        return cli_usage_error("restore", "restore takes one domain name");
    a->o.domain = argv[optind];
    if (!a->o.dest_dir)
        return cli_usage_error("restore", "--dest DIR is required");
    if (a->at && a->o.backup_id)
        return cli_usage_error("restore", "give --at TIME or --backup ID, not both");
    a->o.at = INT64_MAX;
    if (a->at && reader_time_parse(a->at, (int64_t)time(NULL), &a->o.at) < 0)
        return cli_usage_error("restore", "%s", vk_error_message());
    if (a->o.new_name && !a->o.define)
        return cli_usage_error("restore", "--name NEW needs --define");
    if (a->o.keep_host_devices && !a->o.define)
        return cli_usage_error("restore", "--keep-host-devices needs --define");
    if (a->o.new_name && (!*a->o.new_name || strchr(a->o.new_name, '/')))
        return cli_usage_error("restore", "--name '%s' is not a valid domain name", a->o.new_name);
    a->o.disks = a->disks;
    return -1;
}

int cli_cmd_restore(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_restore;
    struct restore_args a;
    struct restore_result res;
    struct catalog *cat = NULL;
    int r;

    memset(&a, 0, sizeof a);
    memset(&res, 0, sizeof res);
    if ((r = args_parse(cmd, argc, argv, &a)) >= 0 || (r = args_check(argc, argv, &a)) >= 0 ||
        (r = cli_config_load(cli)) != CLI_EXIT_OK)
        goto out;
    a.o.config = cli->config;
    a.o.connect_uri = cli->connect_uri;
    a.o.cancel = &cli_interrupted;
    cat = catalog_open(cli_catalog_path(cli), CATALOG_OPEN_EXISTING);
    if (!cat)
        goto fail;
    cli_signals_catch();
    r = restore_run(cat, &a.o, &res, 0);
    cli_signals_default();
    if (r < 0)
        goto fail;
    dropped_devices_warn(&res);
    if (a.json)
        result_print_json(&res);
    else if (!cli->quiet)
        result_print(&res);
    r = CLI_EXIT_OK;
    goto out;
fail:
    r = cli_error_last();
    if (cli_interrupted)
        r = CLI_EXIT_INTERRUPTED; /* whatever the signal broke on the way */
out:
    restore_result_clear(&res);
    catalog_close(cat);
    vk_strv_free(a.disks);
    return r;
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option restore_options[] = {
    {"at", required_argument, OPT_AT, "TIME",
     "RFC 3339 (2026-11-28T01:02:03Z, or with an offset), 'now', or\n"
     "a duration ago ('2h ago', '15m ago')"},
    {"backup", required_argument, OPT_BACKUP, "ID", "restore exactly this backup"},
    {"dest", required_argument, OPT_DEST, "DIR", "where the images go (created when missing)"},
    {"disks", required_argument, OPT_DISKS, "LIST", "restore only these disks (vda,vdb)"},
    {"from", required_argument, OPT_FROM, "TARGET",
     "read from this target (name or URL) instead of the recorded one"},
    {"force", no_argument, OPT_FORCE, NULL,
     "replace existing images in DIR; with --define, replace the\n"
     "definition of a shut-off domain of the same name (keeping its UUID)"},
    {"define", no_argument, OPT_DEFINE, NULL,
     "define the domain (persistent) from the XML saved with the backup,\n"
     "its disks pointing at the restored images (qcow2); disks not\n"
     "restored are left out of the definition and named.  A domain of\n"
     "that name already defined is refused unless --force.  The saved\n"
     "XML is not trusted: devices that reach the host (file system\n"
     "passthrough, host devices, char devices with host files or\n"
     "sockets, smartcards, USB redirection, parallel ports, shared\n"
     "memory, TPM passthrough, passthrough input, direct, hostdev and\n"
     "vhost-user interfaces, qemu:commandline, static security labels)\n"
     "are left out, cdrom and floppy media ejected, each named on stderr."},
    {"keep-host-devices", no_argument, OPT_KEEP_HOST_DEVICES, NULL,
     "with --define, keep the devices of the saved XML that reach the\n"
     "host (only for a target you trust as much as this host)"},
    {"name", required_argument, OPT_NAME, "NEW",
     "define it as NEW, beside the original: no UUID, no MAC addresses,\n"
     "no fixed graphics ports, no NVRAM path (libvirt makes new ones)"},
    {"start", no_argument, OPT_START, NULL, "start the defined domain (implies --define)"},
    {"json", no_argument, OPT_JSON, NULL,
     "print {chain, disks: [{disk, path, virtual_size, cluster_size,\n"
     "compat, bytes_written, zero_bytes, chunks_read,\n"
     "frame_bytes_fetched, raw_bytes_decompressed, index_bytes_fetched,\n"
     "merged_data_bytes, merged_frame_bytes, seconds}], job, seconds,\n"
     "estimate_seconds, defined, started, dropped_disks,\n"
     "dropped_devices} on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_restore = {
    .name = "restore",
    .synopsis = "DOMAIN --dest DIR [OPTIONS]",
    .summary = "Restore the disks of a domain to a point in time.",
    .help = "Picks the newest committed backup of DOMAIN at or before TIME (or backup ID, or\n"
            "the latest), merges the indexes of its chain (full + incs, or full + diff) so that\n"
            "each block is read once from the newest backup that holds it, verifies every\n"
            "chunk it reads (sha256), and writes one qcow2 image per disk, DIR/DISK.qcow2\n"
            "(e.g. DIR/vda.qcow2), through qemu-nbd.  Zero ranges become zero clusters.\n"
            "An image is written under a temporary name and renamed only when complete.\n",
    .options = restore_options,
    .tail = "Images keep the source image's qcow2 cluster size and compat level (recorded in\n"
            "the manifest).  The restore job records the planner's estimate (see plan restore)\n"
            "next to the measured duration.  SIGINT or SIGTERM stops the restore: no temporary\n"
            "image and no qemu-nbd are left, and the exit status is 130.\n"
            "\n"
            "Exit status: 0 done, 1 failed (a corrupt chunk names backup, disk and offset),\n"
            "2 usage error, existing destination or domain without --force, 3 no such domain or\n"
            "backup, 130 interrupted.\n",
    .run = cli_cmd_restore,
};
