/* virtkeep - what the commands share: the command table, option parsing
 * and --help from each command's descriptor, errors and exit codes, the
 * configuration, --json output and signals. */
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

#include "common/json.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "common/version.h"
#include "src/cli/cli.h"
#include "src/conf/conf.h"
#include "transport/transport.h"

/* The commands, in the order --help lists them.  Each is defined, with its
 * options, help text and output, in its own cli-NAME.c. */
const struct cli_command *const cli_commands[] = {
    &cli_command_help,     &cli_command_version,
    &cli_command_config,   &cli_command_targets,
    &cli_command_backup,   &cli_command_list,
    &cli_command_show,     &cli_command_restore,
    &cli_command_verify,   &cli_command_catalog,
    &cli_command_plan,     &cli_command_snapshot,
    &cli_command_copy,     &cli_command_migrate,
    &cli_command_evacuate, &cli_command_prune,
    &cli_command_drill,    &cli_command_status,
    &cli_command_jobs,     &cli_command_key,
    &cli_command_hosts,    NULL,
};

void cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("virtkeep: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_exit_code(enum vk_error_code code)
{
    switch (code) {
    case VK_ERR_NONE:
        return CLI_EXIT_OK;
    case VK_ERR_INVALID:
        return CLI_EXIT_USAGE;
    case VK_ERR_NOT_FOUND:
        return CLI_EXIT_NOT_FOUND;
    case VK_ERR_BUSY:
        return CLI_EXIT_BUSY;
    case VK_ERR_INTERRUPTED:
        return CLI_EXIT_INTERRUPTED;
    default:
        return CLI_EXIT_FAILED;
    }
}

int cli_error_last(void)
{
    const char *msg = vk_error_message();

    cli_error("%s", msg ? msg : "unknown error");
    return vk_error_code() == VK_ERR_NONE ? CLI_EXIT_FAILED : cli_exit_code(vk_error_code());
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;

    fputs("virtkeep: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (command)
        fprintf(stderr, "\nTry 'virtkeep help %s'.\n", command);
    else
        fputs("\nTry 'virtkeep --help'.\n", stderr);
    return CLI_EXIT_USAGE;
}

const struct cli_command *cli_command_find(const char *name)
{
    for (const struct cli_command *const *c = cli_commands; *c; c++)
        if (strcmp((*c)->name, name) == 0)
            return *c;
    return NULL;
}

/* "  --level LEVEL" */
static int option_label(const struct cli_option *o, char *buf, size_t len)
{
    return snprintf(buf, len, "  --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

/* The options of CMD, each label padded to one column, its help lines
 * indented to that column. */
static void options_print(const struct cli_option *opts)
{
    char label[64];
    int width = 0;

    for (const struct cli_option *o = opts; o->name; o++) {
        int n = option_label(o, label, sizeof label);
        width = n > width ? n : width;
    }
    width += 2;
    for (const struct cli_option *o = opts; o->name; o++) {
        const char *h = o->help, *nl;

        option_label(o, label, sizeof label);
        printf("%-*s", width, label);
        do {
            nl = strchr(h, '\n');
            printf("%.*s\n", nl ? (int)(nl - h) : (int)strlen(h), h);
            h = nl ? nl + 1 : h;
            if (nl)
                printf("%*s", width, "");
        } while (nl);
    }
}

void cli_help_print(const struct cli_command *cmd)
{
    printf("Usage: virtkeep [GLOBAL OPTIONS] %s %s\n\n%s\n", cmd->name, cmd->synopsis,
           cmd->summary);
    if (cmd->help)
        printf("\n%s", cmd->help);
    if (cmd->options) {
        putchar('\n');
        options_print(cmd->options);
    }
    if (cmd->tail)
        printf("\n%s", cmd->tail);
}

int cli_options_next(const struct cli_command *cmd, int argc, char **argv, const char *shortopts)
{
    /* One command runs per process: its getopt table is built once. */
    static struct option table[CLI_OPTIONS_MAX + 2];
    static const struct cli_command *built;
    size_t n = 0;

    if (built != cmd) {
        for (const struct cli_option *o = cmd->options; o && o->name; o++) {
            if (n == CLI_OPTIONS_MAX)
                abort(); /* a programming error: raise CLI_OPTIONS_MAX */
            table[n++] = (struct option){o->name, o->has_arg, NULL, o->val};
        }
        table[n++] = (struct option){"help", no_argument, NULL, 'h'};
        table[n] = (struct option){NULL, 0, NULL, 0};
        built = cmd;
    }
    return getopt_long(argc, argv, shortopts, table, NULL);
}

int cli_option_error(const struct cli_command *cmd)
{
    /* getopt_long has already said what was wrong. */
    fprintf(stderr, "Try 'virtkeep help %s'.\n", cmd->name);
    return CLI_EXIT_USAGE;
}

void cli_json_print(struct json_object *obj)
{
    puts(json_object_to_json_string_ext(obj,
                                        JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(obj);
}

int cli_option_default(const struct cli_command *cmd, int c)
{
    if (c != 'h')
        return cli_option_error(cmd);
    cli_help_print(cmd);
    return CLI_EXIT_OK;
}

int cli_json_options_parse(const struct cli_command *cmd, int argc, char **argv,
                           const char *shortopts, bool *json)
{
    int c;

    while ((c = cli_options_next(cmd, argc, argv, shortopts)) != -1) {
        if (c != 'j')
            return cli_option_default(cmd, c);
        *json = true;
    }
    return -1;
}

int cli_config_load(struct cli *cli)
{
    const char *path = cli->config_path;
    struct stat st;

    if (cli->config)
        return CLI_EXIT_OK;
    if (!path) {
        cli->default_config = config_default_path(geteuid());
        if (!cli->default_config) {
            cli_error_last();
            return CLI_EXIT_USAGE;
        }
        path = cli->default_config;
        if (stat(path, &st) < 0 && errno == ENOENT) {
            vk_debug("no configuration file '%s': using none", path);
            cli->config = config_new_empty(path);
            return cli->config ? CLI_EXIT_OK : cli_error_last();
        }
    }
    vk_debug("reading configuration file '%s'", path);
    cli->config = config_parse_file(path, 0);
    if (!cli->config) {
        cli_error_last();
        if (!cli->config_path && !config_error_line())
            fprintf(stderr, "Give another file with --config FILE.\n");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

const char *cli_catalog_path(struct cli *cli)
{
    if (cli->catalog_path)
        return cli->catalog_path;
    if (cli->config && cli->config->catalog_path)
        return cli->config->catalog_path;
    if (!cli->default_catalog)
        cli->default_catalog = config_default_catalog(geteuid());
    return cli->default_catalog;
}

volatile sig_atomic_t cli_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

static void signals_set(void (*handler)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_signals_catch(void)
{
    cli_interrupted = 0;
    signals_set(on_signal);
}

void cli_signals_default(void)
{
    signals_set(SIG_DFL);
}
