/* virtkeep - command line front end: what the commands share.
 *
 * Each command is one function in a cli-*.c file and one row in the table
 * in cli.c.  A command receives its own argv (argv[0] is the command name),
 * parses its options with getopt_long, and returns an exit code.
 */
#ifndef VIRTKEEP_CLI_H
#define VIRTKEEP_CLI_H

#include <signal.h>
#include <stdbool.h>

#include "common/error.h"
#include "src/conf/conf.h"

struct json_object;

/* Exit codes, documented in --help and virtkeep(1). */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,      /* the operation failed */
    CLI_EXIT_USAGE = 2,       /* usage or configuration error */
    CLI_EXIT_NOT_FOUND = 3,   /* unknown domain, backup or target */
    CLI_EXIT_BUSY = 4,        /* busy or locked */
    CLI_EXIT_UNREACHABLE = 5, /* some targets unreachable (targets) */
    CLI_EXIT_VIOLATED = 6,    /* an RPO or RTO objective is not met (status, plan dr) */
    CLI_EXIT_INTERRUPTED = 130,
};

/* The global options, the same for every command. */
struct cli {
    const char *connect_uri;  /* -c/--connect, LIBVIRT_DEFAULT_URI or qemu:///system */
    const char *config_path;  /* --config, or NULL for the default */
    const char *catalog_path; /* --catalog, or NULL */
    bool quiet;
    bool verbose;
    struct config *config; /* loaded by cli_config_load */
    char *default_config;  /* the default path, when --config was not given */
    char *default_catalog;
};

struct cli_command {
    const char *name;
    const char *synopsis; /* arguments after the name */
    const char *summary;  /* one line */
    const char *help;     /* the rest of `virtkeep help NAME` */
    int (*run)(struct cli *cli, int argc, char **argv);
};

/* Long commands (backup, restore) catch SIGINT and SIGTERM while they run:
 * the handler only sets cli_interrupted, which the engine polls as its
 * cancel flag and then cleans up.  cli_signals_catch clears the flag and
 * installs the handler; cli_signals_default puts the default back. */
extern volatile sig_atomic_t cli_interrupted;
void cli_signals_catch(void);
void cli_signals_default(void);

/* Print "virtkeep: MESSAGE" on stderr, once. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the last recorded error; returns the exit code its kind maps to. */
int cli_error_last(void);
int cli_exit_code(enum vk_error_code code);
/* Print a usage error with a pointer to help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Load the configuration file into cli->config: --config FILE (which must
 * exist), or the default file (which may be missing).  Prints the error and
 * returns an exit code. */
int cli_config_load(struct cli *cli);
/* --catalog, else [catalog] path, else the default. */
const char *cli_catalog_path(struct cli *cli);

/* --json output: print OBJ pretty on stdout and release it. */
void cli_json_print(struct json_object *obj);
/* A JSON string of S, or NULL (JSON null) when S is NULL. */
struct json_object *cli_json_string(const char *s);

/* Print one command's help (cli.c). */
void cli_command_help(const struct cli_command *cmd);
/* Common handling of -h/--help and bad options inside commands. */
int cli_option_error(const struct cli_command *cmd);
/* The last branch of a command's option loop: -h/--help prints the
 * command's help and returns CLI_EXIT_OK; any other C is an option that
 * getopt_long has already complained about: CLI_EXIT_USAGE. */
int cli_option_default(const struct cli_command *cmd, int c);
/* The option loop of a command whose only option is --json: parses from
 * optind with getopt_long SHORTOPTS ("h", or "+h" to stop at the first
 * operand) and sets *JSON when --json is given.  Returns -1 to go on, else
 * an exit code. */
int cli_json_options_parse(const struct cli_command *cmd, int argc, char **argv,
                           const char *shortopts, bool *json);

int cli_cmd_config(struct cli *cli, int argc, char **argv);
int cli_cmd_targets(struct cli *cli, int argc, char **argv);
int cli_cmd_restore(struct cli *cli, int argc, char **argv);
int cli_cmd_verify(struct cli *cli, int argc, char **argv);
int cli_cmd_catalog(struct cli *cli, int argc, char **argv);
int cli_cmd_plan(struct cli *cli, int argc, char **argv);
int cli_cmd_backup(struct cli *cli, int argc, char **argv);
int cli_cmd_list(struct cli *cli, int argc, char **argv);
int cli_cmd_show(struct cli *cli, int argc, char **argv);
int cli_cmd_snapshot(struct cli *cli, int argc, char **argv);
int cli_cmd_copy(struct cli *cli, int argc, char **argv);
int cli_cmd_migrate(struct cli *cli, int argc, char **argv);
int cli_cmd_evacuate(struct cli *cli, int argc, char **argv);
int cli_cmd_prune(struct cli *cli, int argc, char **argv);
int cli_cmd_drill(struct cli *cli, int argc, char **argv);
int cli_cmd_status(struct cli *cli, int argc, char **argv);
int cli_cmd_jobs(struct cli *cli, int argc, char **argv);

extern const struct cli_command cli_commands[];
const struct cli_command *cli_command_find(const char *name);

#endif
