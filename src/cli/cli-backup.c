/* virtkeep - `virtkeep backup DOMAIN [OPTIONS]`: the command line around
 * backup_run(): options, signals, progress on a terminal, the summary. */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "src/backup/backup.h"
#include "src/cli/cli.h"
#include "common/progress.h"

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

int cli_cmd_backup(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = cli_command_find("backup");
    struct backup_options o;
    int r = backup_options_parse(argc, argv, &o);

    if (r == 1) {
        cli_command_help(cmd);
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
