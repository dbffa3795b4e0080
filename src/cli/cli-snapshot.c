/* virtkeep - `virtkeep snapshot create|list|revert|delete DOMAIN [NAME]`:
 * the command line around src/snapshot.h. */
#include <config.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/error.h"
#include "src/cli/cli.h"
#include "src/snapshot/snapshot.h"
#include "src/virt/virt.h"

enum { OPT_QUIESCE = 256, OPT_MEMORY, OPT_DIR, OPT_JSON };

struct snap_args {
    const char *sub;
    const char *domain;
    const char *name;
    const char *dir;
    bool json, quiesce, memory;
};

/* Which options each subcommand accepts, and how many positional args. */
static int args_check(const struct snap_args *a, int npos)
{
    bool create = strcmp(a->sub, "create") == 0, list = strcmp(a->sub, "list") == 0;
    bool named = strcmp(a->sub, "revert") == 0 || strcmp(a->sub, "delete") == 0;

    if (!create && !list && !named)
        return cli_usage_error("snapshot", "unknown snapshot command '%s'", a->sub);
    if (npos < 1)
        return cli_usage_error("snapshot", "snapshot %s needs a DOMAIN", a->sub);
    if ((named && npos != 2) || (list && npos != 1) || (create && npos > 2))
        return cli_usage_error("snapshot", "wrong number of arguments for snapshot %s", a->sub);
    if (!create && (a->quiesce || a->dir))
        return cli_usage_error("snapshot", "--quiesce and --dir go with snapshot create only");
    if (a->memory && !create && strcmp(a->sub, "revert") != 0)
        return cli_usage_error("snapshot", "--memory goes with snapshot create or revert only");
    if (a->json && named)
        return cli_usage_error("snapshot", "--json goes with snapshot create or list only");
    return -1;
}

static int args_parse(const struct cli_command *cmd, int argc, char **argv, struct snap_args *a)
{
    static const struct option opts[] = {
        {"quiesce", no_argument, NULL, OPT_QUIESCE},
        {"memory", no_argument, NULL, OPT_MEMORY},
        {"dir", required_argument, NULL, OPT_DIR},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, npos;

    memset(a, 0, sizeof(*a));
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_QUIESCE:
            a->quiesce = true;
            break;
        case OPT_MEMORY:
            a->memory = true;
            break;
        case OPT_DIR:
            a->dir = optarg;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        default:
            return cli_option_default(cmd, c);
        }
    }
    if (optind >= argc)
        return cli_usage_error("snapshot", "no snapshot command given (create, list, revert, "
                                           "delete)");
    a->sub = argv[optind++];
    npos = argc - optind;
    a->domain = npos > 0 ? argv[optind] : NULL;
    a->name = npos > 1 ? argv[optind + 1] : NULL;
    return args_check(a, npos);
}

static int do_create(const struct cli *cli, struct virt_domain *d, const struct snap_args *a)
{
    struct snapshot_create_options o = {.name = a->name, .dir = a->dir};
    struct snapshot_info info;

    o.flags = (a->memory ? SNAPSHOT_MEMORY : 0) | (a->quiesce ? SNAPSHOT_QUIESCE : 0);
    if (snapshot_create(d, &o, &info) < 0)
        return cli_error_last();
    if (a->json) {
        struct json_object *j = snapshot_info_to_json(&info);
        json_object_object_add(j, "domain", json_object_new_string(d->name));
        cli_json_print(j);
    } else if (!cli->quiet) {
        printf("Created snapshot '%s' of domain '%s'", info.name, d->name);
        for (size_t i = 0; i < info.nr_disks; i++)
            printf("%s %s: %s", i ? "," : ":", info.disks[i].target, info.disks[i].overlay);
        printf("%s%s.\n", info.memory_file ? ", memory: " : "",
               info.memory_file ? info.memory_file : "");
    }
    snapshot_info_clear(&info);
    return CLI_EXIT_OK;
}

static void list_print_text(const struct snapshot_list *l)
{
    printf("%-28s %-20s %-14s %s\n", "NAME", "CREATED (UTC)", "STATE", "DISKS");
    for (size_t i = 0; i < l->count; i++) {
        const struct snapshot_info *s = &l->items[i];
        time_t t = (time_t)s->created;
        struct tm tm;
        char when[32] = "-";

        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%-28s %-20s %-14s", s->name, when, s->state ? s->state : "-");
        for (size_t k = 0; k < s->nr_disks; k++)
            printf("%s%s", k ? "," : " ", s->disks[k].target);
        printf("%s%s\n", s->memory_file ? " +memory" : "", s->current ? " (current)" : "");
    }
}

static int do_list(struct virt_domain *d, const struct snap_args *a)
{
    struct snapshot_list l;

    if (snapshot_list(d, &l, 0) < 0)
        return cli_error_last();
    if (a->json) {
        struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
        for (size_t i = 0; i < l.count; i++)
            json_object_array_add(arr, snapshot_info_to_json(&l.items[i]));
        json_object_object_add(o, "domain", json_object_new_string(d->name));
        json_object_object_add(o, "snapshots", arr);
        cli_json_print(o);
    } else {
        list_print_text(&l);
    }
    snapshot_list_clear(&l);
    return CLI_EXIT_OK;
}

static int dispatch(const struct cli *cli, struct virt_domain *d, const struct snap_args *a)
{
    const char *sub = a->sub;

    if (strcmp(sub, "create") == 0)
        return do_create(cli, d, a);
    if (strcmp(sub, "list") == 0)
        return do_list(d, a);
    if (strcmp(sub, "revert") == 0) {
        if (snapshot_revert(d, a->name, a->memory ? SNAPSHOT_REVERT_MEMORY : 0) < 0)
            return cli_error_last();
        if (!cli->quiet)
            printf("Reverted domain '%s' to snapshot '%s'.\n", d->name, a->name);
        return CLI_EXIT_OK;
    }
    if (snapshot_delete(d, a->name, 0) < 0)
        return cli_error_last();
    if (!cli->quiet)
        printf("Deleted snapshot '%s' of domain '%s' (overlays merged).\n", a->name, d->name);
    return CLI_EXIT_OK;
}

int cli_cmd_snapshot(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd = cli_command_find("snapshot");
    struct snap_args a;
    struct virt_conn *c;
    struct virt_domain *d;
    int r = args_parse(cmd, argc, argv, &a);

    if (r >= 0)
        return r;
    c = virt_conn_open(cli->connect_uri, 0);
    if (!c)
        return cli_error_last();
    d = virt_domain_lookup(c, a.domain);
    r = d ? dispatch(cli, d, &a) : cli_error_last();
    virt_domain_free(d);
    virt_conn_close(c);
    return r;
}
