/* virtkeep - `virtkeep help [COMMAND]`, `virtkeep version` and the
 * program's usage text. */
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

static const char usage_text[] =
    "Usage: virtkeep [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Back up, snapshot and migrate libvirt/QEMU domains.\n"
    "\n"
    "Global options (before the command):\n"
    "  -c, --connect URI   libvirt connection URI (default: $LIBVIRT_DEFAULT_URI,\n"
    "                      else qemu:///system)\n"
    "      --config FILE   configuration file (default: /etc/virtkeep/virtkeep.conf\n"
    "                      for root, else $XDG_CONFIG_HOME/virtkeep/virtkeep.conf);\n"
    "                      a missing default file is fine, a missing FILE is an error\n"
    "      --catalog PATH  catalog database (default: [catalog] path in the\n"
    "                      configuration, else /var/lib/virtkeep/catalog.db for\n"
    "                      root, else $XDG_DATA_HOME/virtkeep/catalog.db)\n"
    "  -q, --quiet         print errors only\n"
    "  -v, --verbose       print debugging messages\n"
    "  -h, --help          show this help and exit\n"
    "  -V, --version       show the version and exit\n"
    "\n"
    "Commands:\n";

static const char usage_tail[] =
    "\n"
    "Run 'virtkeep help COMMAND' for a command's options.\n"
    "\n"
    "Exit status:\n"
    "  0    success\n"
    "  1    the operation failed\n"
    "  2    usage or configuration error\n"
    "  3    not found (unknown domain, backup or target)\n"
    "  4    busy or locked by another job\n"
    "  5    some targets are unreachable (targets)\n"
    "  6    an RPO or RTO objective is violated (status)\n"
    "  130  interrupted\n"
    "\n"
    "Environment:\n"
    "  VIRTKEEP_DEBUG       1 for debugging messages, 'data' to add data-path ones\n"
    "  LIBVIRT_DEFAULT_URI  the default for --connect\n"
    "  XDG_CONFIG_HOME      where the default configuration lives (~/.config)\n"
    "  XDG_DATA_HOME        where the default catalog lives (~/.local/share)\n"
    "\n"
    "Files:\n"
    "  /etc/virtkeep/virtkeep.conf   configuration (root)\n"
    "  /var/lib/virtkeep/catalog.db  catalog (root)\n"
    "\n"
    "Secrets (SSH keys and passwords, S3 secret keys) are read from files that only\n"
    "their owner can read, or from environment variables named in the configuration;\n"
    "never from the command line.  See virtkeep(1).\n";

void cli_usage_print(FILE *fp)
{
    fputs(usage_text, fp);
    for (const struct cli_command *const *cp = cli_commands; *cp; cp++) {
        const struct cli_command *c = *cp;
        char head[64];
        snprintf(head, sizeof head, "%s %s", c->name, c->synopsis);
        fprintf(fp, "  %-30s %s\n", head, c->summary);
    }
    fputs(usage_tail, fp);
}

static int cmd_help(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd;

    (void)cli;
    if (argc > 2)
        return cli_usage_error("help", "help takes at most one command name");
    if (argc < 2) {
        cli_usage_print(stdout);
        return CLI_EXIT_OK;
    }
    cmd = cli_command_find(argv[1]);
    if (!cmd)
        return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    cli_help_print(cmd);
    return CLI_EXIT_OK;
}

static int cmd_version(struct cli *cli, int argc, char **argv)
{
    (void)cli;
    (void)argv;
    if (argc > 1)
        return cli_usage_error("version", "version takes no arguments");
    printf("virtkeep %s\n", vk_version());
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- the command */

const struct cli_command cli_command_help = {
    .name = "help",
    .synopsis = "[COMMAND]",
    .summary = "Show help for virtkeep or for one command.",
    .help = NULL,
    .tail = NULL,
    .run = cmd_help,
};

const struct cli_command cli_command_version = {
    .name = "version",
    .synopsis = "",
    .summary = "Show the version.",
    .help = NULL,
    .tail = NULL,
    .run = cmd_version,
};
