/* virtkeep - `virtkeep key create|list|rotate|export`: the keyring of
 * sealed backups.  A key is printed only by export, which is asked for by
 * name; it never goes to argv or a log. */
#include <config.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/format/format.h"

enum { OPT_KEYRING = 256, OPT_JSON };

struct key_args {
    const char *keyring; /* --keyring, else the configuration's only keyring */
    bool json;
    char *const *rest;
    int nr_rest;
};

static int args_parse(struct cli *cli, int argc, char **argv, struct key_args *a)
{
    CLEANUP_FREE const char **files = NULL;
    int c, r;

    while ((c = cli_options_next(&cli_command_key, argc, argv, "h")) != -1) {
        if (c == OPT_KEYRING)
            a->keyring = optarg;
        else if (c == OPT_JSON)
            a->json = true;
        else
            return cli_option_default(&cli_command_key, c);
    }
    a->rest = argv + optind;
    a->nr_rest = argc - optind;
    if (a->keyring)
        return CLI_EXIT_OK;
    if ((r = cli_config_load(cli)) != CLI_EXIT_OK)
        return r;
    files = config_key_files(cli->config);
    if (!files || !files[0] || files[1])
        return cli_usage_error("key",
                               "give --keyring FILE: the configuration names %s keyring "
                               "(encryption_key_file =)",
                               files && files[0] ? "more than one" : "no");
    a->keyring = files[0];
    return CLI_EXIT_OK;
}

/* Load the keyring (a missing file is an empty keyring when MAY_BE_NEW). */
static int keyring_open(const char *path, bool may_be_new, struct format_keyring *kr)
{
    memset(kr, 0, sizeof(*kr));
    if (format_keyring_load(kr, path) == 0)
        return CLI_EXIT_OK;
    if (may_be_new && vk_error_code() == VK_ERR_NOT_FOUND)
        return CLI_EXIT_OK;
    return cli_error_last();
}

static void created_json(const char *id, const char *path)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "keyring", json_object_new_string(path));
    cli_json_print(o);
}

static int key_new(struct format_keyring *kr, const char *path, bool retire, bool json)
{
    struct format_key k;
    int r = CLI_EXIT_OK;

    if (format_key_generate(&k) < 0)
        return cli_error_last();
    for (size_t i = 0; retire && i < kr->nr; i++)
        kr->keys[i].retired = true;
    if (format_keyring_add(kr, &k, path) < 0 || format_keyring_save(kr, path) < 0)
        r = cli_error_last();
    else if (json)
        created_json(k.id, path);
    else
        printf("key %s created in %s: back it up now (virtkeep key export %s); without it the "
               "backups it seals cannot be read\n",
               k.id, path, k.id);
    OPENSSL_cleanse(&k, sizeof(k));
    return r;
}

static int key_create(const struct key_args *a)
{
    struct format_keyring kr;
    const struct format_key *act;
    int r = keyring_open(a->keyring, true, &kr);

    if (r == CLI_EXIT_OK && (act = format_keyring_active(&kr))) {
        cli_error("the keyring '%s' already has the active key %s: run 'virtkeep key rotate' "
                  "to replace it",
                  a->keyring, act->id);
        r = CLI_EXIT_FAILED;
    }
    if (r == CLI_EXIT_OK)
        r = key_new(&kr, a->keyring, false, a->json);
    format_keyring_clear(&kr);
    return r;
}

static int key_rotate(const struct key_args *a)
{
    struct format_keyring kr;
    int r = keyring_open(a->keyring, false, &kr);

    if (r == CLI_EXIT_OK)
        r = key_new(&kr, a->keyring, true, a->json);
    format_keyring_clear(&kr);
    return r;
}

static void list_json(const struct format_keyring *kr)
{
    struct json_object *arr = json_object_new_array();

    for (size_t i = 0; i < kr->nr; i++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(kr->keys[i].id));
        json_object_object_add(o, "state",
                               json_object_new_string(kr->keys[i].retired ? "retired" : "active"));
        json_object_object_add(o, "created", json_object_new_int64(kr->keys[i].created));
        json_object_array_add(arr, o);
    }
    cli_json_print(arr);
}

static int key_list(const struct key_args *a)
{
    struct format_keyring kr;
    int r = keyring_open(a->keyring, false, &kr);

    if (r != CLI_EXIT_OK)
        return r;
    if (a->json) {
        list_json(&kr);
    } else {
        for (size_t i = 0; i < kr.nr; i++) {
            char when[32] = "?";
            time_t t = (time_t)kr.keys[i].created;
            struct tm tm;
            if (gmtime_r(&t, &tm))
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%s  %-7s  created %s%s\n", kr.keys[i].id,
                   kr.keys[i].retired ? "retired" : "active", when,
                   kr.keys[i].retired ? "  (still needed by the backups it sealed)" : "");
        }
    }
    format_keyring_clear(&kr);
    return CLI_EXIT_OK;
}

static int key_export(const struct key_args *a)
{
    struct format_keyring kr;
    const struct format_key *k;
    char *paper;
    int r;

    if (a->nr_rest != 1)
        return cli_usage_error("key", "key export takes one key id");
    if ((r = keyring_open(a->keyring, false, &kr)) != CLI_EXIT_OK)
        return r;
    if (!(k = format_keyring_find(&kr, a->rest[0]))) {
        cli_error("no key '%s' in the keyring '%s': 'virtkeep key list' shows its keys", a->rest[0],
                  a->keyring);
        r = CLI_EXIT_NOT_FOUND;
    } else if (!(paper = format_key_export(k))) {
        r = cli_error_last();
    } else {
        fputs(paper, stdout);
        OPENSSL_cleanse(paper, strlen(paper));
        free(paper);
    }
    format_keyring_clear(&kr);
    return r;
}

int cli_cmd_key(struct cli *cli, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(const struct key_args *a);
        bool takes_args;
    } subs[] = {{"create", key_create, false},
                {"list", key_list, false},
                {"rotate", key_rotate, false},
                {"export", key_export, true}};
    struct key_args a = {0};
    int r;

    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        cli_help_print(&cli_command_key);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; argc >= 2 && i < VK_ARRAY_SIZE(subs); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        if ((r = args_parse(cli, argc - 1, argv + 1, &a)) != CLI_EXIT_OK)
            return r;
        if (!subs[i].takes_args && a.nr_rest != 0)
            return cli_usage_error("key", "key %s takes no arguments", subs[i].name);
        return subs[i].run(&a);
    }
    return cli_usage_error("key", "expected one of: key create, key list, key rotate, key export");
}

/* ---------------------------------------------------------------- the command */

static const struct cli_option key_options[] = {
    {"keyring", required_argument, OPT_KEYRING, "FILE",
     "the keyring file (created mode 0600 by create); default: the one\n"
     "encryption_key_file of the configuration"},
    {"json", no_argument, OPT_JSON, NULL,
     "create, rotate: {id, keyring}; list: [{id, state, created}]"},
    {NULL, 0, 0, NULL, NULL},
};

const struct cli_command cli_command_key = {
    .name = "key",
    .synopsis = "create|list|rotate|export [ID] [--keyring FILE] [--json]",
    .summary = "Manage the keys that seal backups (encryption = aes-256-gcm).",
    .help = "create  add a new active key to the keyring (refused when it has one).\n"
            "list    the keys: id, active or retired, creation time.\n"
            "rotate  retire the active key and create a new one: new backups are sealed with\n"
            "        the new key; the retired one stays in the keyring, because the backups it\n"
            "        sealed still need it.\n"
            "export  print key ID as a paper backup: 64 hex digits and a checksum.\n"
            "LOSING A KEY MAKES EVERY BACKUP IT SEALED UNREADABLE: nobody, virtkeep included,\n"
            "can recover the data without it.  Keep an exported copy somewhere safe.\n",
    .options = key_options,
    .tail = "Exit status: 0 done, 1 failed, 2 usage error, 3 unknown key.\n",
    .run = cli_cmd_key,
};
