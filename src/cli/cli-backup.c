/* virtkeep - `virtkeep backup DOMAIN [OPTIONS]`: the command line around
 * backup_run(): options, signals, progress on a terminal, the summary. */
#include <config.h>

#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"
#include "src/backup/backup.h"
#include "src/cli/cli.h"
#include "common/progress.h"

/* A number in the help text, from its constant. */
#define STR_(x) #x
#define STR(x) STR_(x)

struct ui {
    struct progress *progress;
};

static void ui_notice(void *opaque, const char *line)
{
    struct ui *ui = opaque;

    progress_done(ui->progress);
    fprintf(stderr, "virtkeep: %s\n", line);
}

static void ui_progress(void *opaque, const char *disk, size_t index, size_t count, uint64_t done,
                        uint64_t total)
{
    struct ui *ui = opaque;
    progress_update(ui->progress, disk, index, count, done, total);
}

static void result_print(const struct cli *cli, const struct backup_options *o,
                         const struct backup_result *r)
{
    if (o->json) {
        cli_json_print(backup_result_to_json(r));
    } else if (!cli->quiet) {
        CLEANUP_FREE char *line = backup_result_summary(r);
        if (line)
            puts(line);
    }
}

static int backup_exec(struct cli *cli, struct backup_options *o)
{
    struct ui ui = {.progress = cli->quiet ? NULL : progress_new(stderr, 0)};
    struct backup_result res;
    int r;

    o->connect_uri = cli->connect_uri;
    o->catalog_path = cli_catalog_path(cli);
    o->config = cli->config;
    o->cancel = &cli_interrupted;
    o->notice = ui_notice;
    o->progress = ui_progress;
    o->opaque = &ui;
    if (!o->catalog_path)
        return cli_error_last();
    cli_signals_catch();
    r = backup_run(o, &res);
    cli_signals_default();
    progress_free(ui.progress);
    if (r == 0)
        result_print(cli, o, &res);
    else
        r = cli_error_last();
    backup_result_clear(&res);
    return r;
}

/* ---------------------------------------------------------------- options */

static int threads_parse(const char *str, unsigned int *threads)
{
    unsigned long long v;

    if (vk_parse_uint(str, BACKUP_THREADS_MAX, &v) < 0 || v < 1) {
        vk_error(VK_ERR_INVALID, "invalid thread count '%s': expected a number from 1 to %d", str,
                 BACKUP_THREADS_MAX);
        return -1;
    }
    *threads = (unsigned int)v;
    return 0;
}

static int level_parse(const char *str, enum catalog_level *level)
{
    if (catalog_level_parse(str, level) == 0 || strcmp(str, "auto") == 0) {
        if (strcmp(str, "auto") == 0)
            *level = CATALOG_LEVEL_AUTO;
        return 0;
    }
    vk_error(VK_ERR_INVALID, "invalid level '%s': expected full, inc, diff, copy or auto", str);
    return -1;
}

static int list_parse(const char *str, const char *opt, char ***out)
{
    if (*out) {
        vk_error(VK_ERR_INVALID, "%s is given twice", opt);
        return -1;
    }
    *out = vk_strv_split(str, ',');
    if (!*out)
        vk_error_prefix("invalid %s '%s'", opt, str);
    return *out ? 0 : -1;
}

enum {
    OPT_LEVEL = 256,
    OPT_TARGET,
    OPT_DISKS,
    OPT_EXCLUDE,
    OPT_QUIESCE,
    OPT_CLEVEL,
    OPT_THREADS,
    OPT_JSON,
    OPT_FENCE
};

static int fence_parse(const char *arg, int64_t *epoch)
{
    unsigned long long v;

    if (vk_parse_uint(arg, INT64_MAX, &v) < 0 || v == 0) {
        vk_error(VK_ERR_INVALID, "--fence needs a lease epoch (a positive number), not '%s'", arg);
        return -1;
    }
    *epoch = (int64_t)v;
    return 0;
}

static int option_one(int c, const char *arg, struct backup_options *o)
{
    switch (c) {
    case OPT_LEVEL:
        return level_parse(arg, &o->level);
    case OPT_TARGET:
        free(o->target);
        o->target = vk_strdup(arg);
        return o->target ? 0 : -1;
    case OPT_DISKS:
        return list_parse(arg, "--disks", &o->disks);
    case OPT_EXCLUDE:
        return list_parse(arg, "--exclude", &o->exclude);
    case OPT_QUIESCE:
        o->quiesce = true;
        return 0;
    case OPT_CLEVEL:
        return backup_compress_level_parse(arg, &o->compress_level);
    case OPT_THREADS:
        return threads_parse(arg, &o->threads);
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_FENCE:
        return fence_parse(arg, &o->fence_epoch);
    }
    vk_error(VK_ERR_INVALID, "invalid option for backup");
    return -1;
}

int cli_backup_options_parse(int argc, char **argv, struct backup_options *o)
{
    int c;

    memset(o, 0, sizeof *o);
    o->level = CATALOG_LEVEL_AUTO;
    o->compress_level = BACKUP_COMPRESS_LEVEL_DEFAULT;
    optind = 0;
    opterr = 0;
    while ((c = cli_options_next(&cli_command_backup, argc, argv, "h")) != -1) {
        if (c == 'h')
            return 1;
        if (c == '?' || c == ':') {
            vk_error(VK_ERR_INVALID, "invalid option or missing value: '%s'", argv[optind - 1]);
            return -1;
        }
        if (option_one(c, optarg, o) < 0)
            return -1;
    }
    if (o->disks && o->exclude) {
        vk_error(VK_ERR_INVALID, "--disks and --exclude cannot be given together");
        return -1;
    }
    if (argc - optind != 1) {
        vk_error(VK_ERR_INVALID, argc - optind < 1 ? "no domain given" : "more than one domain");
        return -1;
    }
    o->domain = vk_strdup(argv[optind]);
    return o->domain ? 0 : -1;
}

int cli_cmd_backup(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_backup;
    struct backup_options o;
    int r = cli_backup_options_parse(argc, argv, &o);

    if (r == 1) {
        cli_help_print(cmd);
        backup_options_clear(&o);
        return CLI_EXIT_OK;
    }
    if (r < 0) {
        r = cli_usage_error("backup", "%s", vk_error_message());
        backup_options_clear(&o);
        return r;
    }
    r = cli_config_load(cli);
    if (r == CLI_EXIT_OK)
        r = backup_exec(cli, &o);
    backup_options_clear(&o);
    return r;
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option backup_options[] = {
    {"level", required_argument, OPT_LEVEL, "LEVEL",
     "full, inc (since the last backup), diff (since the last full),\n"
     "copy (no checkpoint) or auto (default: inc when the chain is\n"
     "usable, else full).  When an inc or diff cannot be taken (no\n"
     "chain, checkpoint inconsistent after a QEMU crash, stale\n"
     "bitmap) a full is taken instead and one line says why.\n"
     "Raw disks have no dirty bitmap: they are backed up in full."},
    {"target", required_argument, OPT_TARGET, "NAME|URL",
     "a configured target or a URL (file:///PATH, ssh://, s3://);\n"
     "default: the first target of the domain's policy"},
    {"disks", required_argument, OPT_DISKS, "LIST", "back up only these disks (vda,vdb)"},
    {"exclude", required_argument, OPT_EXCLUDE, "LIST", "back up every disk but these"},
    {"quiesce", no_argument, OPT_QUIESCE, NULL,
     "freeze the guest file systems (guest agent) around the start;\n"
     "fails when the domain has no agent"},
    {"compress-level", required_argument, OPT_CLEVEL, "N",
     "zstd level 1..19 (default " STR(BACKUP_COMPRESS_LEVEL_DEFAULT) ")"},
    {"threads", required_argument, OPT_THREADS, "N", "compression threads (default: online CPUs)"},
    {"json", no_argument, OPT_JSON, NULL,
     "print the result as one JSON object on stdout: backup, domain,\n"
     "level, requested_level, parent, reason, checkpoint, target,\n"
     "status, started, finished, duration_seconds, bytes_read,\n"
     "bytes_stored, disks [{disk, format, virtual_size, key,\n"
     "archive_size, sha256, data_bytes, zero_bytes, stored_bytes,\n"
     "chunks}], manifest_key"},
    {"fence", required_argument, OPT_FENCE, "EPOCH",
     "set by virtkeepd: the epoch of the domain's lease it claimed\n"
     "(several hosts on one catalog); the backup commits only while\n"
     "that lease is still this host's, else it fails (exit 4)"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_backup = {
    .name = "backup",
    .synopsis = "DOMAIN [OPTIONS]",
    .summary = "Back up the disks of a domain.",
    .help = "Backs up every disk of DOMAIN (cdrom, floppy and LUN devices are skipped) into one\n"
            "archive per disk, DOMAIN/BACKUP_ID/DISK.tar, then DOMAIN/BACKUP_ID/manifest.json on\n"
            "the target, and records it in the catalog.  A running domain is read through a\n"
            "libvirt pull-mode backup job, a shut-off one through qemu-nbd; both leave a\n"
            "checkpoint (except copy) so that the next incremental works either way.\n",
    .options = backup_options,
    .tail = "On a terminal, progress (bytes, rate, ETA) is shown on stderr; otherwise only one\n"
            "summary line is printed on stdout (none with -q).  A failed or interrupted backup\n"
            "is marked failed in the catalog and leaves no archive, no libvirt job and no new\n"
            "checkpoint behind.  Only one backup of a domain runs at a time.\n"
            "\n"
            "Exit status: 0 done, 1 failed, 2 usage or configuration error (also: no target),\n"
            "3 unknown domain or target, 4 another backup of the domain is running,\n"
            "130 interrupted (SIGINT or SIGTERM).\n",
    .run = cli_cmd_backup,
};
