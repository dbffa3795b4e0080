/* virtkeep - main: the global options, then the command. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "common/version.h"
#include "src/cli/cli.h"
#include "src/conf/conf.h"
#include "transport/transport.h"

#define DEFAULT_URI "qemu:///system"

enum { OPT_CONFIG = 256, OPT_CATALOG };

/* Parse the global options; returns -1 to go on, else an exit code. */
static int global_options(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"catalog", required_argument, NULL, OPT_CATALOG},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "+c:qvhV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cli->connect_uri = optarg;
            break;
        case OPT_CONFIG:
            cli->config_path = optarg;
            break;
        case OPT_CATALOG:
            cli->catalog_path = optarg;
            break;
        case 'q':
            cli->quiet = true, cli->verbose = false;
            break;
        case 'v':
            cli->verbose = true, cli->quiet = false;
            break;
        case 'h':
            cli_usage_print(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("virtkeep %s\n", vk_version());
            return CLI_EXIT_OK;
        default:
            fputs("Try 'virtkeep --help'.\n", stderr);
            return CLI_EXIT_USAGE;
        }
    }
    return -1;
}

static void cli_init(struct cli *cli)
{
    const char *uri = getenv("LIBVIRT_DEFAULT_URI");

    memset(cli, 0, sizeof *cli);
    cli->connect_uri = uri && *uri ? uri : DEFAULT_URI;
}

static void cli_clear(struct cli *cli)
{
    config_free(cli->config);
    free(cli->default_config);
    free(cli->default_catalog);
}

static int cli_run(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd;
    int r = global_options(cli, argc, argv);

    if (r >= 0)
        return r;
    if (cli->quiet)
        vk_log_set_level(VK_LOG_QUIET);
    if (cli->verbose)
        vk_log_set_level(VK_LOG_DEBUG);
    if (optind >= argc)
        return cli_usage_error(NULL, "no command given");
    cmd = cli_command_find(argv[optind]);
    if (!cmd)
        return cli_usage_error(NULL, "unknown command '%s'", argv[optind]);
    vk_debug("command '%s', libvirt URI '%s'", cmd->name, cli->connect_uri);
    argc -= optind;
    argv += optind;
    optind = 0; /* the command parses its own options from the start */
    return cmd->run(cli, argc, argv);
}

int main(int argc, char **argv)
{
    struct cli cli;
    int r;

    /* A peer that goes away (libvirtd, an SSH server, the reader of our
     * output) must be an error we report and clean up after, not a
     * silent death by SIGPIPE that leaves a backup 'running'. */
    signal(SIGPIPE, SIG_IGN);
    vk_log_init("virtkeep");
    cli_init(&cli);
    r = cli_run(&cli, argc, argv);
    cli_clear(&cli);
    if (fflush(stdout) != 0 && r == CLI_EXIT_OK) {
        cli_error("cannot write the output: %s", strerror(errno));
        r = CLI_EXIT_FAILED;
    }
    return r;
}
