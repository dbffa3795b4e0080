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
    int c, npos;

    memset(a, 0, sizeof(*a));
    while ((c = cli_options_next(&cli_command_snapshot, argc, argv, "h")) != -1) {
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
    const struct cli_command *cmd = &cli_command_snapshot;
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

/* ---------------------------------------------------------------- the command */

static const struct cli_option snapshot_options[] = {
    {"quiesce", no_argument, OPT_QUIESCE, NULL,
     "create: freeze the guest file systems (guest agent)"},
    {"memory", no_argument, OPT_MEMORY, NULL,
     "create: a full-system snapshot with the memory state;\n"
     "revert: restore that memory state"},
    {"dir", required_argument, OPT_DIR, "DIR", "create: put the overlays in DIR"},
    {"json", no_argument, OPT_JSON, NULL, "create, list: print JSON on stdout"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_snapshot = {
    .name = "snapshot",
    .synopsis = "create|list|revert|delete DOMAIN [NAME]",
    .summary = "Create, list, revert or delete external snapshots.",
    .help = "  snapshot create DOMAIN [NAME] [--quiesce] [--memory] [--dir DIR] [--json]\n"
            "      External disk-only snapshot (default NAME vk-YYYYmmddTHHMMSS, UTC): each\n"
            "      writable file or block disk gets an overlay IMAGE.NAME next to its image (or\n"
            "      DIR/IMAGE.NAME with --dir) and new writes go there.  --quiesce freezes the\n"
            "      guest file systems through the guest agent (fails without one); --memory\n"
            "      takes a full-system snapshot of a running domain, its memory state going to\n"
            "      DOMAIN.NAME.mem beside the first overlay.  Checkpoints and backups go on.\n"
            "  snapshot list DOMAIN [--json]\n"
            "      Snapshots, oldest first: name, time, state, disks, current.  --json prints\n"
            "      {domain, snapshots: [{name, parent, state, created, current, external,\n"
            "      memory_file, disks: [{disk, overlay, base}]}]}.\n"
            "  snapshot revert DOMAIN NAME [--memory]\n"
            "      Put the disks back as they were when NAME was taken: the domain is stopped,\n"
            "      the overlays above the snapshot (and snapshots taken after it) are discarded,\n"
            "      a fresh overlay is put on the snapshot's base, and a running domain is\n"
            "      started again (--memory: restored from the snapshot's memory state).\n"
            "      virtkeep's checkpoints are discarded: the next backup is a full.\n"
            "  snapshot delete DOMAIN NAME\n"
            "      Merge the overlays of NAME back into their bases (block commit with pivot\n"
            "      for the active layer; qemu-img commit when the domain is shut off), then\n"
            "      remove the snapshot's metadata, overlays and memory file.\n"
            "\n"
            "Exit status: 0 done, 1 failed, 2 usage error (also: name taken, overlay exists),\n"
            "3 unknown domain or snapshot.\n",
    .tail = NULL,
    .options = snapshot_options,
    .run = cli_cmd_snapshot,
};
