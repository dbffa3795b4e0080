/* virtkeep - configuration keys: one table row per key, one setter per kind
 * of value.  Every error says what was expected. */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/conf/conf-int.h"
#include "src/conf/conf.h"
#include "transport/transport.h"

#define MAX_COUNT 1000000

struct key_spec {
    enum config_section kind;
    const char *name;
    int (*set)(struct config_parser *p, const struct key_spec *k, void *base, const char *value);
    size_t offset;
    const char *expect;
    const char *conflicts; /* a key that cannot be given with this one */
};

#define FIELD(base, k, type) ((type *)((char *)(base) + (k)->offset))

static int store_string(struct config_parser *p, const struct key_spec *k, void *base,
                        const char *value)
{
    char *s = vk_strdup(value);

    if (!s)
        return config_oom(p);
    *FIELD(base, k, char *) = s;
    return 0;
}

static int set_path(struct config_parser *p, const struct key_spec *k, void *base,
                    const char *value)
{
    if (value[0] != '/')
        return config_fail(p, k->name, "invalid path '%s': expected %s", value, k->expect);
    return store_string(p, k, base, value);
}

/* [catalog] url: a PostgreSQL catalog.  The password is never inline (the
 * catalog takes it from a 0600 password_file= or libpq's password or service
 * file), and the value is not repeated in the error, in case it held one. */
static int set_catalog_url(struct config_parser *p, const struct key_spec *k, void *base,
                           const char *value)
{
    const char *auth = strstr(value, "://");
    size_t auth_len;
    const char *at;

    if (strncmp(value, "postgresql://", 13) != 0 && strncmp(value, "postgres://", 11) != 0)
        return config_fail(p, k->name, "invalid catalog URL '%s': expected %s", value, k->expect);
    auth += 3;
    auth_len = strcspn(auth, "/?#");
    at = memchr(auth, '@', auth_len);
    if ((at && memchr(auth, ':', (size_t)(at - auth))) || strstr(value, "?password=") ||
        strstr(value, "&password="))
        return config_fail(p, k->name,
                           "the catalog URL holds a password: put it in a file readable only by "
                           "its owner (password_file=/PATH in the URL, or libpq's PGPASSFILE or "
                           "service file)");
    return store_string(p, k, base, value);
}

static int secret_file_check(struct config_parser *p, const struct key_spec *k, const char *path)
{
    struct stat st;

    if (p->flags & CONFIG_NO_FILE_CHECKS)
        return 0;
    if (stat(path, &st) < 0)
        return config_fail(p, k->name, "cannot use secret file '%s': %s: expected %s", path,
                           strerror(errno), k->expect);
    if (!S_ISREG(st.st_mode))
        return config_fail(p, k->name, "secret file '%s' is not a regular file: expected %s", path,
                           k->expect);
    if (st.st_mode & 077)
        return config_fail(p, k->name,
                           "secret file '%s' is accessible by group or others (mode %04o): "
                           "run 'chmod 600 %s'",
                           path, (unsigned int)(st.st_mode & 07777), path);
    return 0;
}

static int set_secret_path(struct config_parser *p, const struct key_spec *k, void *base,
                           const char *value)
{
    if (value[0] != '/')
        return config_fail(p, k->name, "invalid path '%s': expected %s", value, k->expect);
    if (secret_file_check(p, k, value) < 0)
        return -1;
    return store_string(p, k, base, value);
}

static int set_word(struct config_parser *p, const struct key_spec *k, void *base,
                    const char *value)
{
    for (const char *s = value; *s; s++)
        if (isspace((unsigned char)*s))
            return config_fail(p, k->name, "invalid value '%s': expected %s", value, k->expect);
    return store_string(p, k, base, value);
}

static int set_encryption(struct config_parser *p, const struct key_spec *k, void *base,
                          const char *value)
{
    if (strcmp(value, "aes-256-gcm") != 0 && strcmp(value, "none") != 0)
        return config_fail(p, k->name, "invalid value '%s': expected %s", value, k->expect);
    return store_string(p, k, base, value);
}

static int set_quiesce(struct config_parser *p, const struct key_spec *k, void *base,
                       const char *value)
{
    if (strcmp(value, "required") != 0 && strcmp(value, "try") != 0 && strcmp(value, "no") != 0)
        return config_fail(p, k->name, "invalid value '%s': expected %s", value, k->expect);
    return store_string(p, k, base, value);
}

static int set_log(struct config_parser *p, const struct key_spec *k, void *base, const char *value)
{
    if (strcmp(value, "stderr") != 0 && strcmp(value, "syslog") != 0)
        return config_fail(p, k->name, "invalid value '%s': expected %s", value, k->expect);
    return store_string(p, k, base, value);
}

/* "HOST:PORT" with HOST 127.0.0.1, localhost or [::1]: the daemon's HTTP API
 * is for this host only (a token is not enough to expose it further). */
static int set_listen(struct config_parser *p, const struct key_spec *k, void *base,
                      const char *value)
{
    static const char *const hosts[] = {"127.0.0.1:", "localhost:", "[::1]:"};
    unsigned long long port;

    for (size_t i = 0; i < VK_ARRAY_SIZE(hosts); i++) {
        size_t n = strlen(hosts[i]);
        if (strncmp(value, hosts[i], n) == 0 && vk_parse_uint(value + n, 65535, &port) == 0 &&
            port > 0)
            return store_string(p, k, base, value);
    }
    return config_fail(p, k->name, "invalid address '%s': expected %s", value, k->expect);
}

static int set_region(struct config_parser *p, const struct key_spec *k, void *base,
                      const char *value)
{
    if (strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(value))
        return config_fail(p, k->name, "invalid region '%s': expected %s", value, k->expect);
    return store_string(p, k, base, value);
}

static int set_endpoint(struct config_parser *p, const struct key_spec *k, void *base,
                        const char *value)
{
    if ((strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) ||
        strpbrk(value, " \t"))
        return config_fail(p, k->name, "invalid endpoint '%s': expected %s", value, k->expect);
    return store_string(p, k, base, value);
}

static int set_env_name(struct config_parser *p, const struct key_spec *k, void *base,
                        const char *value)
{
    bool ok = isalpha((unsigned char)value[0]) || value[0] == '_';

    for (const char *s = value; ok && *s; s++)
        ok = isalnum((unsigned char)*s) || *s == '_';
    if (!ok)
        return config_fail(p, k->name, "invalid environment variable name '%s': expected %s", value,
                           k->expect);
    return store_string(p, k, base, value);
}

static int set_duration(struct config_parser *p, const struct key_spec *k, void *base,
                        const char *value)
{
    uint64_t secs;

    if (vk_duration_parse(value, &secs) < 0) {
        CLEANUP_FREE char *msg = vk_strdup(vk_error_message());
        return config_fail(p, k->name, "%s", msg ? msg : "invalid duration");
    }
    if (secs == 0)
        return config_fail(p, k->name, "invalid duration '%s': expected %s", value, k->expect);
    *FIELD(base, k, uint64_t) = secs;
    return 0;
}

static int set_count(struct config_parser *p, const struct key_spec *k, void *base,
                     const char *value)
{
    unsigned long long n;

    if (vk_parse_uint(value, MAX_COUNT, &n) < 0)
        return config_fail(p, k->name, "invalid count '%s': expected %s", value, k->expect);
    *FIELD(base, k, unsigned int) = (unsigned int)n;
    return 0;
}

/* "HH:MM" into minutes after midnight. */
static bool clock_parse(const char *s, size_t len, unsigned int *minutes)
{
    unsigned int h, m;

    if (len != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return false;
    h = (unsigned int)(s[0] - '0') * 10 + (unsigned int)(s[1] - '0');
    m = (unsigned int)(s[3] - '0') * 10 + (unsigned int)(s[4] - '0');
    if (h > 23 || m > 59)
        return false;
    *minutes = h * 60 + m;
    return true;
}

static int set_window(struct config_parser *p, const struct key_spec *k, void *base,
                      const char *value)
{
    struct config_window *w = FIELD(base, k, struct config_window);
    const char *dash = strchr(value, '-');

    if (!dash || !clock_parse(value, (size_t)(dash - value), &w->start) ||
        !clock_parse(dash + 1, strlen(dash + 1), &w->end) || w->start == w->end)
        return config_fail(p, k->name, "invalid window '%s': expected %s", value, k->expect);
    w->set = true;
    return 0;
}

static int ref_add(struct config_parser *p, const char *key, enum config_section kind,
                   const char *name)
{
    struct config_ref *refs = vk_realloc_array(p->refs, p->n_refs + 1, sizeof *refs);

    if (!refs)
        return config_oom(p);
    p->refs = refs;
    refs[p->n_refs] = (struct config_ref){.kind = kind, .line = p->line};
    refs[p->n_refs].name = vk_strdup(name);
    refs[p->n_refs].where = vk_asprintf("[%s] %s", p->section, key);
    p->n_refs++;
    if (!refs[p->n_refs - 1].name || !refs[p->n_refs - 1].where)
        return config_oom(p);
    return 0;
}

static int set_policy_ref(struct config_parser *p, const struct key_spec *k, void *base,
                          const char *value)
{
    if (!config_word_valid(value))
        return config_fail(p, k->name, "invalid policy name '%s': expected %s", value, k->expect);
    if (ref_add(p, k->name, SEC_POLICY, value) < 0)
        return -1;
    return store_string(p, k, base, value);
}

/* A comma-separated list of distinct words. */
static char **list_parse(struct config_parser *p, const struct key_spec *k, const char *value)
{
    CLEANUP_STRV char **v = vk_strv_split(value, ',');

    if (!v) {
        CLEANUP_FREE char *msg = vk_strdup(vk_error_message());
        config_fail(p, k->name, "%s: expected %s", msg ? msg : "invalid list", k->expect);
        return NULL;
    }
    for (size_t i = 0; v[i]; i++) {
        if (!config_word_valid(v[i])) {
            config_fail(p, k->name, "invalid name '%s': expected %s", v[i], k->expect);
            return NULL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[i], v[j]) == 0) {
                config_fail(p, k->name, "'%s' is listed twice: expected %s", v[i], k->expect);
                return NULL;
            }
    }
    return VK_STEAL(v);
}

static int set_list(struct config_parser *p, const struct key_spec *k, void *base,
                    const char *value)
{
    char **v = list_parse(p, k, value);

    if (!v)
        return -1;
    *FIELD(base, k, char **) = v;
    return 0;
}

static int set_target_list(struct config_parser *p, const struct key_spec *k, void *base,
                           const char *value)
{
    if (set_list(p, k, base, value) < 0)
        return -1;
    for (char **v = *FIELD(base, k, char **); *v; v++)
        if (ref_add(p, k->name, SEC_TARGET, *v) < 0)
            return -1;
    return 0;
}

/* Refuse a password in the URL's user part ("ssh://user:secret@host"). */
static int url_check_no_password(struct config_parser *p, const char *url)
{
    const char *auth = strstr(url, "://");
    size_t auth_len;
    const char *at, *colon;

    if (!auth)
        return 0;
    auth += 3;
    auth_len = strcspn(auth, "/?#");
    at = memrchr(auth, '@', auth_len);
    colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon)
        return config_fail(p, "url",
                           "the URL contains a password: secrets are never written inline; "
                           "expected password_file = PATH (a file readable only by its owner)");
    return 0;
}

static int url_scheme(struct config_parser *p, const char *url, char **scheme)
{
    const char *sep = strstr(url, "://");
    size_t n;

    if (url[0] == '/') {
        *scheme = vk_strdup("file");
        return *scheme ? 0 : config_oom(p);
    }
    n = sep ? (size_t)(sep - url) : 0;
    if (!n || strspn(url, "abcdefghijklmnopqrstuvwxyz0123456789+.-") != n)
        return config_fail(p, "url",
                           "invalid URL '%s': expected SCHEME://... (%s) or an absolute "
                           "path",
                           url, transport_schemes());
    *scheme = vk_strndup(url, n);
    if (!*scheme)
        return config_oom(p);
    if (!transport_scheme_supported(*scheme))
        return config_fail(p, "url", "unknown scheme '%s' in URL '%s': expected one of %s", *scheme,
                           url, transport_schemes());
    return 0;
}

static int set_url(struct config_parser *p, const struct key_spec *k, void *base, const char *value)
{
    struct config_target *t = base;
    CLEANUP_FREE char *scheme = NULL;
    struct transport_url u;

    if (url_check_no_password(p, value) < 0 || url_scheme(p, value, &scheme) < 0)
        return -1;
    if (transport_url_parse(value, &u) < 0) {
        CLEANUP_FREE char *msg = vk_strdup(vk_error_message());
        return config_fail(p, k->name, "%s: expected %s", msg ? msg : "invalid URL", k->expect);
    }
    transport_url_clear(&u);
    t->scheme = VK_STEAL(scheme);
    return store_string(p, k, base, value);
}

#define PATH_ "an absolute path"
#define SECRET_ "an absolute path to a file readable only by its owner (mode 0600)"
#define DURATION_ "a positive duration such as 90s, 15m, 1h30m or 7d"
#define COUNT_ "a whole number from 0 to 1000000"
#define ENC_ "aes-256-gcm or none"
#define KEYRING_ "an absolute path to a keyring file (virtkeep key create; mode 0600)"
#define T_(key, fn, expect, ...)                                                                   \
    {                                                                                              \
        SEC_TARGET, #key, fn, offsetof(struct config_target, key), expect, __VA_ARGS__             \
    }
#define P_(key, fn, expect)                                                                        \
    {                                                                                              \
        SEC_POLICY, #key, fn, offsetof(struct config_policy, key), expect, NULL                    \
    }
#define M_(key, fn, expect)                                                                        \
    {                                                                                              \
        SEC_DAEMON, #key, fn, offsetof(struct config, daemon.key), expect, NULL                    \
    }
#define D_(key, fn, expect, other)                                                                 \
    {                                                                                              \
        SEC_DOMAIN, #key, fn, offsetof(struct config_domain, key), expect, other                   \
    }

static const struct key_spec keys[] = {
    {SEC_CATALOG, "path", set_path, offsetof(struct config, catalog_path), PATH_, "url"},
    {SEC_CATALOG, "url", set_catalog_url, offsetof(struct config, catalog_path),
     "a PostgreSQL URL: postgresql://USER@HOST/DB[?sslmode=...&password_file=/PATH]", "path"},
    T_(url, set_url,
       "a target URL: file:///PATH, ssh://[USER@]HOST[:PORT]/PATH or "
       "s3://BUCKET/PREFIX",
       NULL),
    T_(user, set_word, "a user name without spaces", NULL),
    T_(key_file, set_secret_path, SECRET_, NULL),
    T_(known_hosts, set_path, PATH_, NULL),
    T_(password_file, set_secret_path, SECRET_, NULL),
    T_(passphrase_file, set_secret_path, SECRET_, "passphrase_env"),
    T_(passphrase_env, set_env_name,
       "the name of an environment variable that holds the key's passphrase", "passphrase_file"),
    T_(access_key_id, set_word, "an access key id without spaces", NULL),
    T_(secret_key_file, set_secret_path, SECRET_, "secret_key_env"),
    T_(secret_key_env, set_env_name,
       "the name of an environment variable, such as "
       "AWS_SECRET_ACCESS_KEY",
       "secret_key_file"),
    T_(region, set_region, "a region name such as us-east-1", NULL),
    T_(endpoint, set_endpoint, "an http:// or https:// URL", NULL),
    T_(ca_file, set_path, PATH_, NULL),
    T_(encryption, set_encryption, ENC_, NULL),
    T_(encryption_key_file, set_path, KEYRING_, NULL),
    P_(rpo, set_duration, DURATION_),
    P_(rto, set_duration, DURATION_),
    P_(keep_last, set_count, COUNT_),
    P_(keep_hourly, set_count, COUNT_),
    P_(keep_daily, set_count, COUNT_),
    P_(keep_weekly, set_count, COUNT_),
    P_(keep_monthly, set_count, COUNT_),
    P_(keep_yearly, set_count, COUNT_),
    P_(keep_within, set_duration, DURATION_),
    P_(full_every, set_duration, DURATION_),
    P_(targets, set_target_list, "a comma-separated list of target names"),
    P_(priority, set_count, COUNT_ " (1 is the most important; 0 or unset, the least)"),
    P_(max_chain, set_count, COUNT_ " (backups in a chain, the full included; 0: no limit)"),
    P_(quiesce, set_quiesce, "required, try or no"),
    P_(window, set_window,
       "a daily window HH:MM-HH:MM in UTC, such as 22:00-06:00 (start and end differ)"),
    P_(drill_every, set_duration, DURATION_),
    P_(encryption, set_encryption, ENC_),
    P_(encryption_key_file, set_path, KEYRING_),
    P_(immutable_days, set_count, COUNT_ " (days each new S3 object stays locked; 0: none)"),
    M_(socket, set_path, PATH_),
    M_(listen, set_listen, "a loopback address and port such as 127.0.0.1:8750 or [::1]:8750"),
    M_(token_file, set_secret_path, SECRET_),
    M_(log, set_log, "stderr or syslog"),
    M_(max_jobs, set_count, COUNT_ " (jobs at a time on this host)"),
    M_(max_target_jobs, set_count, COUNT_ " (jobs at a time per target)"),
    M_(tick, set_duration, DURATION_),
    D_(policy, set_policy_ref, "the name of a [policy NAME] section", NULL),
    D_(disks, set_list, "a comma-separated list of disk targets such as vda, vdb", "exclude"),
    D_(exclude, set_list, "a comma-separated list of disk targets such as vda, vdb", "disks"),
    D_(quiesce, set_quiesce,
       "required (freeze the guest file systems, fail without a guest agent), try (warn "
       "and go on without one) or no",
       NULL),
};

_Static_assert(VK_ARRAY_SIZE(keys) <= CONFIG_MAX_KEYS, "config_parser.key_lines is too small");

/* Keys that would hold a secret inline, and where the secret goes instead. */
static const char *const inline_secrets[][2] = {
    {"password", "password_file = PATH"},
    {"passphrase", "passphrase_file = PATH or passphrase_env = VARIABLE"},
    {"secret_key", "secret_key_file = PATH or secret_key_env = VARIABLE"},
    {"secret_access_key", "secret_key_file = PATH or secret_key_env = VARIABLE"},
    {"aws_secret_access_key", "secret_key_file = PATH or secret_key_env = VARIABLE"},
    {"token", "a file or an environment variable"},
    {"session_token", "a file or an environment variable"},
};

static const struct key_spec *key_find(enum config_section kind, const char *name)
{
    for (size_t i = 0; i < VK_ARRAY_SIZE(keys); i++)
        if (keys[i].kind == kind && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int key_unknown(struct config_parser *p, const char *key)
{
    CLEANUP_FREE char *list = NULL;

    for (size_t i = 0; i < VK_ARRAY_SIZE(inline_secrets); i++)
        if (strcmp(key, inline_secrets[i][0]) == 0)
            return config_fail(p, key,
                               "secrets are never written inline: expected %s (a file "
                               "readable only by its owner)",
                               inline_secrets[i][1]);
    for (size_t i = 0; i < VK_ARRAY_SIZE(keys); i++) {
        char *l;
        if (keys[i].kind != p->kind)
            continue;
        l = list ? vk_asprintf("%s, %s", list, keys[i].name) : vk_strdup(keys[i].name);
        free(list);
        list = l;
        if (!list)
            return config_oom(p);
    }
    return config_fail(p, key, "unknown key: expected one of %s", list);
}

static void *section_base(struct config_parser *p)
{
    struct config *cfg = p->cfg;

    switch (p->kind) {
    case SEC_CATALOG:
    case SEC_DAEMON:
        return cfg;
    case SEC_TARGET:
        return &cfg->targets[cfg->n_targets - 1];
    case SEC_POLICY:
        return &cfg->policies[cfg->n_policies - 1];
    case SEC_DOMAIN:
        return &cfg->domains[cfg->n_domains - 1];
    case SEC_NONE:
        break;
    }
    return NULL;
}

int config_key_set(struct config_parser *p, const char *key, const char *value)
{
    CLEANUP_FREE char *norm = vk_strdup(key);
    const struct key_spec *k;
    size_t idx;

    if (!norm)
        return config_oom(p);
    /* keep-daily and keep_daily are the same key. */
    for (char *c = norm; *c; c++)
        if (*c == '-')
            *c = '_';
    k = key_find(p->kind, norm);
    if (!k)
        return key_unknown(p, key);
    idx = (size_t)(k - keys);
    if (p->key_lines[idx])
        return config_fail(p, key, "duplicate key: it is already set at line %u",
                           p->key_lines[idx]);
    if (k->conflicts) {
        const struct key_spec *other = key_find(p->kind, k->conflicts);
        unsigned int at = p->key_lines[other - keys];
        if (at)
            return config_fail(p, key, "cannot be given with %s (line %u): expected one of them",
                               other->name, at);
    }
    p->key_lines[idx] = p->line;
    if (!*value)
        return config_fail(p, key, "missing value: expected %s", k->expect);
    return k->set(p, k, section_base(p), value);
}
