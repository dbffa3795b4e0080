/* virtkeep - command line front end: what the commands share.
 *
 * Each command is one descriptor, struct cli_command cli_command_NAME, in
 * its own cli-NAME.c, next to its option table, help text and output; the
 * table in cli.c lists them.  A command receives its own argv (argv[0] is
 * the command name), parses its options with cli_options_next() from its
 * descriptor (the same table --help prints), and returns an exit code.
 */
#ifndef VIRTKEEP_CLI_H
#define VIRTKEEP_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/json.h"
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

/* One option of a command: what getopt_long gets and what --help prints. */
struct cli_option {
    const char *name; /* the long name, without "--" */
    int has_arg;      /* no_argument or required_argument */
    int val;          /* what cli_options_next returns for it */
    const char *arg;  /* the value's name in --help ("LEVEL"), NULL without one */
    const char *help; /* its help, lines separated by '\n' */
};
/* The most options a command may have. */
#define CLI_OPTIONS_MAX 40

struct cli_command {
    const char *name;
    const char *synopsis;             /* arguments after the name */
    const char *summary;              /* one line */
    const char *help;                 /* what it does, before the options (or NULL) */
    const struct cli_option *options; /* ended by a NULL name; --help is implied */
    const char *tail;                 /* after the options: output, exit status */
    int (*run)(struct cli *cli, int argc, char **argv);
};

/* getopt_long over CMD's options (and -h/--help) from optind: the option's
 * val, 'h', '?' for an error getopt_long has reported, or -1 at the end. */
int cli_options_next(const struct cli_command *cmd, int argc, char **argv, const char *shortopts);
/* The program's usage (`virtkeep --help`). */
void cli_usage_print(FILE *fp);

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

/* Print one command's help (cli.c). */
void cli_help_print(const struct cli_command *cmd);
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
int cli_cmd_key(struct cli *cli, int argc, char **argv);
int cli_cmd_hosts(struct cli *cli, int argc, char **argv);

extern const struct cli_command cli_command_help, cli_command_version, cli_command_config,
    cli_command_targets, cli_command_backup, cli_command_list, cli_command_show,
    cli_command_restore, cli_command_verify, cli_command_catalog, cli_command_plan,
    cli_command_snapshot, cli_command_copy, cli_command_migrate, cli_command_evacuate,
    cli_command_prune, cli_command_drill, cli_command_status, cli_command_jobs, cli_command_key,
    cli_command_hosts;
struct backup_options;
/* Parse the arguments of `backup` (ARGV[0] is the command name) into O.
 * Returns 0, 1 when --help was given, or -1 with VK_ERR_INVALID recorded
 * (an unknown option, a bad value, no domain, --disks with --exclude). */
int cli_backup_options_parse(int argc, char **argv, struct backup_options *o);

struct migrate_options;
/* Command-line options shared by `migrate` and `evacuate` (cli_options_next
 * values).  cli_migrate_option_set() applies one to O, validating its value:
 * VK_ERR_INVALID with a sentence naming the option. */
enum migrate_opt {
    MIGRATE_OPT_TO = 256,
    MIGRATE_OPT_LIVE,
    MIGRATE_OPT_OFFLINE,
    MIGRATE_OPT_COPY_STORAGE,
    MIGRATE_OPT_DEST_DIR,
    MIGRATE_OPT_MAX_DOWNTIME,
    MIGRATE_OPT_BANDWIDTH,
    MIGRATE_OPT_AUTO_CONVERGE,
    MIGRATE_OPT_POSTCOPY_AFTER,
    MIGRATE_OPT_PARALLEL_CONNECTIONS,
    MIGRATE_OPT_UNSAFE,
    MIGRATE_OPT_MIGRATE_URI,
    MIGRATE_OPT_TIMEOUT,
    MIGRATE_OPT_PLANNED,
    MIGRATE_OPT_VIA,
    MIGRATE_OPT_SHUTDOWN_TIMEOUT,
    MIGRATE_OPT_FORCE,
    MIGRATE_OPT_DEST_POOL,
    MIGRATE_OPT_LAST = MIGRATE_OPT_DEST_POOL,
};
int cli_migrate_option_set(struct migrate_options *o, int opt, const char *arg);

/* Every command, NULL-terminated, in the order --help lists them. */
extern const struct cli_command *const cli_commands[];
const struct cli_command *cli_command_find(const char *name);

#endif
