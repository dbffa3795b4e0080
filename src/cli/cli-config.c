/* virtkeep - `virtkeep config check [--json] [FILE]`. */
#include <config.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/conf/conf.h"

static int check_report_json(const char *path, const struct config *cfg)
{
    struct json_object *obj = json_object_new_object();

    json_object_object_add(obj, "file", json_object_new_string(path));
    json_object_object_add(obj, "valid", json_object_new_boolean(cfg != NULL));
    if (cfg) {
        json_object_object_add(obj, "targets", json_object_new_int64((int64_t)cfg->n_targets));
        json_object_object_add(obj, "policies", json_object_new_int64((int64_t)cfg->n_policies));
        json_object_object_add(obj, "domains", json_object_new_int64((int64_t)cfg->n_domains));
    } else {
        struct json_object *err = json_object_new_object();
        const char *msg = vk_error_message();
        json_object_object_add(err, "message", json_object_new_string(msg ? msg : "unknown"));
        json_object_object_add(err, "code",
                               json_object_new_string(vk_error_code_name(vk_error_code())));
        json_object_object_add(err, "line", json_object_new_int64(config_error_line()));
        json_object_object_add(obj, "error", err);
    }
    cli_json_print(obj);
    return cfg ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static int check_report(const char *path, const struct config *cfg)
{
    if (!cfg) {
        cli_error_last();
        return CLI_EXIT_USAGE;
    }
    printf("%s: OK (%zu target%s, %zu polic%s, %zu domain%s)\n", path, cfg->n_targets,
           cfg->n_targets == 1 ? "" : "s", cfg->n_policies, cfg->n_policies == 1 ? "y" : "ies",
           cfg->n_domains, cfg->n_domains == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

static int config_check(struct cli *cli, const char *file, bool json)
{
    CLEANUP_FREE char *def = NULL;
    struct config *cfg;
    int r;

    if (!file)
        file = cli->config_path;
    if (!file) {
        def = config_default_path(geteuid());
        if (!def)
            return cli_error_last();
        file = def;
    }
    cfg = config_parse_file(file, 0);
    r = json ? check_report_json(file, cfg) : check_report(file, cfg);
    config_free(cfg);
    return r;
}

int cli_cmd_config(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_command_config;
    bool json = false;
    int r;

    if ((r = cli_json_options_parse(cmd, argc, argv, "+h", &json)) >= 0)
        return r;
    if (optind >= argc)
        return cli_usage_error("config", "config needs a subcommand: check");
    if (strcmp(argv[optind], "check") != 0)
        return cli_usage_error("config", "unknown config subcommand '%s': expected check",
                               argv[optind]);
    /* Options may also follow the subcommand: config check --json FILE. */
    argc -= optind;
    argv += optind;
    optind = 0;
    if ((r = cli_json_options_parse(cmd, argc, argv, "h", &json)) >= 0)
        return r;
    if (argc - optind > 1)
        return cli_usage_error("config", "config check takes at most one FILE");
    return config_check(cli, optind < argc ? argv[optind] : NULL, json);
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option config_options[] = {
    {"json", no_argument, 'j', NULL,
     "print the result as a JSON object on stdout:\n"
     "{\"file\", \"valid\", \"targets\", \"policies\", \"domains\"} or\n"
     "{\"file\", \"valid\": false, \"error\": {\"message\", \"line\"}}"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_config = {
    .name = "config",
    .synopsis = "check [--json] [FILE]",
    .summary = "Validate a configuration file.",
    .help = "Reads FILE (by default the file given with --config, or the default configuration\n"
            "file) and checks every section and key: syntax, values, references between\n"
            "sections, target URLs and the permissions of secret files.  Prints\n"
            "\"FILE: OK (N targets, N policies, N domains)\", or the first error as\n"
            "FILE:LINE: [SECTION] KEY: what is wrong: what is expected.\n",
    .options = config_options,
    .tail = "Exit status: 0 when the file is valid, 2 when it is not or cannot be read.\n",
    .run = cli_cmd_config,
};
