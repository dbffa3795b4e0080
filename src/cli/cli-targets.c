/* virtkeep - `virtkeep targets [--json] [URL...]`: list the configured
 * targets and the URLs given, and check whether each is reachable. */
#include <config.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/conf/conf.h"
#include "transport/transport.h"

struct target_row {
    const char *name; /* NULL for a URL from the command line */
    const char *url;
    char *scheme;
    bool reachable;
    char *error; /* why not, or NULL */
};

static void row_check(struct target_row *row, const struct config_target *target)
{
    struct transport_options opts;
    struct transport *t;

    memset(&opts, 0, sizeof opts);
    if (target)
        config_target_options(target, &opts);
    vk_debug("checking target '%s' (%s)", row->name ? row->name : row->url, row->url);
    t = transport_open(row->name, row->url, &opts);
    if (t && transport_check(t) == 0) {
        row->reachable = true;
    } else {
        const char *msg = vk_error_message();
        row->error = vk_strdup(msg ? msg : "unknown error");
    }
    transport_close(t);
}

/* Check an argument before anything is opened; returns an exit code. */
static int arg_validate(const struct config *cfg, const char *arg, char **scheme)
{
    struct transport_url u;

    if (!transport_is_url(arg)) {
        if (config_target_find(cfg, arg))
            return CLI_EXIT_OK; /* listed already */
        cli_error("unknown target '%s': it is neither a URL nor a target of '%s'", arg, cfg->file);
        fprintf(stderr, "Give a URL such as file:///PATH, or add a [target %s] section.\n", arg);
        return CLI_EXIT_NOT_FOUND;
    }
    if (transport_url_parse(arg, &u) < 0)
        return cli_error_last();
    if (!transport_scheme_supported(u.scheme)) {
        cli_error("unknown scheme '%s' in URL '%s': expected one of %s", u.scheme, arg,
                  transport_schemes());
        transport_url_clear(&u);
        return CLI_EXIT_USAGE;
    }
    *scheme = VK_STEAL(u.scheme);
    transport_url_clear(&u);
    return CLI_EXIT_OK;
}

static void rows_free(struct target_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].scheme);
        free(rows[i].error);
    }
    free(rows);
}

/* One row per configured target, then one per URL argument. */
static int rows_build(const struct config *cfg, int argc, char **argv, struct target_row **out,
                      size_t *n_out)
{
    size_t n = 0, max = cfg->n_targets + (size_t)argc;
    struct target_row *rows = vk_calloc(max, sizeof *rows);

    if (!rows)
        return cli_error_last();
    for (size_t i = 0; i < cfg->n_targets; i++, n++) {
        rows[n].name = cfg->targets[i].name;
        rows[n].url = cfg->targets[i].url;
        rows[n].scheme = vk_strdup(cfg->targets[i].scheme);
    }
    for (int i = 0; i < argc; i++) {
        char *scheme = NULL;
        int r = arg_validate(cfg, argv[i], &scheme);
        if (r != CLI_EXIT_OK) {
            rows_free(rows, n);
            return r;
        }
        if (scheme)
            rows[n++] = (struct target_row){.url = argv[i], .scheme = scheme};
    }
    *out = rows;
    *n_out = n;
    return CLI_EXIT_OK;
}

static void rows_print(const struct target_row *rows, size_t n)
{
    int w = 4;

    for (size_t i = 0; i < n; i++)
        if (rows[i].name && (int)strlen(rows[i].name) > w)
            w = (int)strlen(rows[i].name);
    printf("%-*s  %-6s  %-11s  %s\n", w, "NAME", "SCHEME", "STATUS", "URL");
    for (size_t i = 0; i < n; i++) {
        printf("%-*s  %-6s  %-11s  %s\n", w, rows[i].name ? rows[i].name : "-", rows[i].scheme,
               rows[i].reachable ? "reachable" : "unreachable", rows[i].url);
        if (rows[i].error)
            printf("%*s  %s\n", w, "", rows[i].error);
    }
}

static void rows_print_json(const struct target_row *rows, size_t n, size_t unreachable)
{
    struct json_object *obj = json_object_new_object();
    struct json_object *list = json_object_new_array();

    for (size_t i = 0; i < n; i++) {
        struct json_object *t = json_object_new_object();
        json_object_object_add(t, "name", vk_json_string_or_null(rows[i].name));
        json_object_object_add(t, "url", json_object_new_string(rows[i].url));
        json_object_object_add(t, "scheme", json_object_new_string(rows[i].scheme));
        json_object_object_add(t, "reachable", json_object_new_boolean(rows[i].reachable));
        json_object_object_add(t, "error", vk_json_string_or_null(rows[i].error));
        json_object_array_add(list, t);
    }
    json_object_object_add(obj, "targets", list);
    json_object_object_add(obj, "unreachable", json_object_new_int64((int64_t)unreachable));
    cli_json_print(obj);
}

static int targets_run(struct cli *cli, int argc, char **argv, bool json)
{
    struct target_row *rows = NULL;
    size_t n = 0, unreachable = 0;
    int r = rows_build(cli->config, argc, argv, &rows, &n);

    if (r != CLI_EXIT_OK)
        return r;
    for (size_t i = 0; i < n; i++) {
        row_check(&rows[i], rows[i].name ? config_target_find(cli->config, rows[i].name) : NULL);
        unreachable += !rows[i].reachable;
    }
    if (json)
        rows_print_json(rows, n, unreachable);
    else if (n > 0)
        rows_print(rows, n);
    else if (!cli->quiet)
        fprintf(stderr,
                "virtkeep: no targets: '%s' defines none; give a URL such as "
                "file:///PATH, or add a [target NAME] section\n",
                cli->config->file);
    rows_free(rows, n);
    return unreachable ? CLI_EXIT_UNREACHABLE : CLI_EXIT_OK;
}

int cli_cmd_targets(struct cli *cli, int argc, char **argv)
{
    bool json = false;
    int r = cli_json_options_parse(&cli_command_targets, argc, argv, "h", &json);

    if (r >= 0)
        return r;
    r = cli_config_load(cli);
    if (r != CLI_EXIT_OK)
        return r;
    return targets_run(cli, argc - optind, argv + optind, json);
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option targets_options[] = {
    {"json", no_argument, 'j', NULL,
     "print {\"targets\": [{\"name\", \"url\", \"scheme\", \"reachable\",\n"
     "\"error\"}, ...], \"unreachable\": N} on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_targets = {
    .name = "targets",
    .synopsis = "[--json] [URL...]",
    .summary = "List targets and whether each is reachable.",
    .help = "Lists the targets of the configuration file, and the URLs given as arguments, with\n"
            "their scheme and whether each is reachable (opened and checked for writing).\n"
            "A URL is file:///PATH (or an absolute path), ssh://[USER@]HOST[:PORT]/PATH or\n"
            "s3://BUCKET/PREFIX.  URLs work without any configuration file; credentials for\n"
            "ssh and s3 come from [target NAME] sections (never from the command line).\n",
    .options = targets_options,
    .tail = "Exit status: 0 when every target is reachable, 5 when some are not, 2 for a\n"
            "usage or configuration error, 3 for an argument that is neither a URL nor a\n"
            "configured target.\n",
    .run = cli_cmd_targets,
};
