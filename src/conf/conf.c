/* virtkeep - the configuration file (see config.h).
 *
 * libinih splits lines into sections, keys and values.  Debian's libinih is
 * built without INI_HANDLER_LINENO, so we feed it through our own reader:
 * the reader counts lines (the handler runs for the line the reader has just
 * returned), refuses binary data and overlong lines, strips indentation (so
 * that inih's continuation lines never join two keys) and interprets section
 * headers itself, so that an empty section or a duplicate one is seen too.
 *
 * Errors are recorded once, for the first line at fault.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/conf/conf-int.h"
#include "src/conf/conf.h"

#define CONFIG_MAX_FILE_SIZE (1024 * 1024)

static const char *const section_names[] = {
    [SEC_NONE] = "",         [SEC_CATALOG] = "catalog", [SEC_TARGET] = "target",
    [SEC_POLICY] = "policy", [SEC_DOMAIN] = "domain",   [SEC_DAEMON] = "daemon",
};

static __thread unsigned int last_error_line;

unsigned int config_error_line(void)
{
    return last_error_line;
}

static void vfail_at(struct config_parser *p, unsigned int line, const char *where, const char *fmt,
                     va_list ap)
{
    CLEANUP_FREE char *msg = NULL;

    /* Keep the error of the earliest line: the checks made after parsing
     * may find several. */
    if (p->err_line && p->err_line <= line)
        return;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    p->err_line = line;
    last_error_line = line;
    if (where)
        vk_error(VK_ERR_INVALID, "%s:%u: %s: %s", p->cfg->file, line, where,
                 msg ? msg : "out of memory");
    else
        vk_error(VK_ERR_INVALID, "%s:%u: %s", p->cfg->file, line, msg ? msg : "out of memory");
}

int config_oom(struct config_parser *p)
{
    /* vk_malloc and friends recorded the error; only mark the line. */
    if (!p->err_line || p->line < p->err_line)
        p->err_line = p->line ? p->line : 1;
    return -1;
}

void config_fail_at(struct config_parser *p, unsigned int line, const char *where, const char *fmt,
                    ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail_at(p, line, where, fmt, ap);
    va_end(ap);
}

int config_fail(struct config_parser *p, const char *key, const char *fmt, ...)
{
    CLEANUP_FREE char *where = NULL;
    va_list ap;

    where = key ? vk_asprintf("[%s] %s", p->section, key) : vk_asprintf("[%s]", p->section);
    va_start(ap, fmt);
    vfail_at(p, p->line, where, fmt, ap);
    va_end(ap);
    return -1;
}

/* Names of targets and policies are used on the command line next to URLs,
 * so they are plain words.  Domain names follow libvirt, which allows almost
 * anything: we refuse only what would break the INI syntax or a path. */
bool config_word_valid(const char *s)
{
    if (!*s || strlen(s) > 64 || !isalnum((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return false;
    return true;
}

static bool domain_name_valid(const char *s)
{
    if (!*s || strlen(s) > 128 || isspace((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (strchr("/[];", *s))
            return false;
    return !isspace((unsigned char)s[-1]);
}

/* Grow an array of structs by one zeroed element; returns it or NULL. */
static void *array_push(void **array, size_t *n, size_t size)
{
    char *a = vk_realloc_array(*array, *n + 1, size);

    if (!a)
        return NULL;
    *array = a;
    memset(a + *n * size, 0, size);
    return a + (*n)++ * size;
}

static unsigned int section_find(struct config_parser *p, enum config_section kind,
                                 const char *name)
{
    const struct config *cfg = p->cfg;

    if (kind == SEC_CATALOG)
        return p->catalog_line;
    if (kind == SEC_DAEMON)
        return p->daemon_line;
    for (size_t i = 0; kind == SEC_TARGET && i < cfg->n_targets; i++)
        if (strcmp(cfg->targets[i].name, name) == 0)
            return cfg->targets[i].line;
    for (size_t i = 0; kind == SEC_POLICY && i < cfg->n_policies; i++)
        if (strcmp(cfg->policies[i].name, name) == 0)
            return cfg->policies[i].line;
    for (size_t i = 0; kind == SEC_DOMAIN && i < cfg->n_domains; i++)
        if (strcmp(cfg->domains[i].name, name) == 0)
            return cfg->domains[i].line;
    return 0;
}

static int section_add(struct config_parser *p, enum config_section kind, const char *name)
{
    struct config *cfg = p->cfg;
    char **namep = NULL;
    unsigned int *linep = NULL;

    if (kind == SEC_CATALOG) {
        p->catalog_line = p->line;
        return 0;
    }
    if (kind == SEC_DAEMON) {
        p->daemon_line = cfg->daemon.line = p->line;
        return 0;
    }
    if (kind == SEC_TARGET) {
        struct config_target *t = array_push((void **)&cfg->targets, &cfg->n_targets, sizeof *t);
        if (t)
            namep = &t->name, linep = &t->line;
    } else if (kind == SEC_POLICY) {
        struct config_policy *t = array_push((void **)&cfg->policies, &cfg->n_policies, sizeof *t);
        if (t)
            namep = &t->name, linep = &t->line;
    } else {
        struct config_domain *t = array_push((void **)&cfg->domains, &cfg->n_domains, sizeof *t);
        if (t)
            namep = &t->name, linep = &t->line;
    }
    if (!namep || !(*namep = vk_strdup(name)))
        return config_oom(p);
    *linep = p->line;
    return 0;
}

static enum config_section section_kind(const char *type)
{
    for (size_t i = SEC_CATALOG; i < VK_ARRAY_SIZE(section_names); i++)
        if (strcmp(type, section_names[i]) == 0)
            return (enum config_section)i;
    return SEC_NONE;
}

static int section_check_name(struct config_parser *p, enum config_section kind, const char *name)
{
    const char *type = section_names[kind];

    if (kind == SEC_CATALOG || kind == SEC_DAEMON) {
        if (*name)
            return config_fail(p, NULL, "unexpected name '%s': expected [%s] alone", name, type);
        return 0;
    }
    if (!*name)
        return config_fail(p, NULL, "missing name: expected [%s NAME]", type);
    if (kind == SEC_DOMAIN ? !domain_name_valid(name) : !config_word_valid(name))
        return config_fail(p, NULL, "invalid %s name '%s': expected %s", type, name,
                           kind == SEC_DOMAIN
                               ? "a libvirt domain name without '/', '[', ']' or ';'"
                               : "letters, digits, '_', '.' and '-' (at most 64, starting "
                                 "with a letter or digit)");
    return 0;
}

/* "[target offsite]": open a section.  TEXT is what lies between the
 * brackets, as inih will pass it to the handler. */
static int section_open(struct config_parser *p, const char *text)
{
    CLEANUP_FREE char *copy = vk_strdup(text);
    char *type, *name, *sp;
    enum config_section kind;
    unsigned int prev;

    free(p->section);
    p->section = vk_strdup(text);
    p->kind = SEC_NONE;
    memset(p->key_lines, 0, sizeof p->key_lines);
    if (!copy || !p->section)
        return config_oom(p);
    type = vk_trim(copy);
    sp = type + strcspn(type, " \t");
    name = vk_trim(sp);
    *sp = '\0';
    if (!*type)
        return config_fail(p, NULL,
                           "empty section header: expected [catalog], [daemon], [target NAME], "
                           "[policy NAME] or [domain NAME]");
    kind = section_kind(type);
    if (kind == SEC_NONE)
        return config_fail(
            p, NULL,
            "unknown section type '%s': expected [catalog], [daemon], [target NAME], "
            "[policy NAME] or [domain NAME]",
            type);
    if (section_check_name(p, kind, name) < 0)
        return -1;
    prev = section_find(p, kind, name);
    if (prev)
        return config_fail(p, NULL, "duplicate section: it is already defined at line %u", prev);
    p->kind = kind;
    return section_add(p, kind, name);
}

/* A line starting with '[' is a section header, "[TEXT]" followed by
 * nothing but blanks or a comment. */
static int header_parse(struct config_parser *p, const char *line)
{
    CLEANUP_FREE char *text = NULL;
    const char *end = strchr(line, ']');
    const char *rest;

    if (!end) {
        config_fail_at(p, p->line, NULL,
                       "unterminated section header: expected [TYPE NAME], such as "
                       "[target offsite]");
        return -1;
    }
    for (rest = end + 1; *rest == ' ' || *rest == '\t' || *rest == '\r'; rest++)
        ;
    if (*rest && *rest != '\n' && *rest != ';' && *rest != '#') {
        config_fail_at(p, p->line, NULL,
                       "unexpected text after the section header: expected a comment "
                       "starting with ';' or nothing");
        return -1;
    }
    text = vk_strndup(line + 1, (size_t)(end - line - 1));
    if (!text)
        return config_oom(p);
    return section_open(p, text);
}

static int line_check_text(struct config_parser *p, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0') {
            config_fail_at(p, p->line, NULL, "the line contains a NUL byte: expected text");
            return -1;
        }
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
            config_fail_at(p, p->line, NULL,
                           "the line contains the control character 0x%02x: expected text", c);
            return -1;
        }
    }
    return 0;
}

/* The ini_reader: hands inih one line at a time (fgets semantics). */
static char *line_read(char *str, int num, void *stream)
{
    struct config_parser *p = stream;
    const char *start, *nl;
    size_t len;

    if (p->err_line || p->pos >= p->len)
        return NULL;
    start = p->buf + p->pos;
    nl = memchr(start, '\n', p->len - p->pos);
    len = nl ? (size_t)(nl - start) : p->len - p->pos;
    p->pos += len + (nl ? 1 : 0);
    p->line++;
    if (p->line == 1 && len >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
        start += 3, len -= 3; /* UTF-8 byte order mark */
    if (line_check_text(p, start, len) < 0)
        return NULL;
    while (len > 0 && (*start == ' ' || *start == '\t'))
        start++, len--;
    if (num < 3 || len > (size_t)num - 3) {
        config_fail_at(p, p->line, NULL, "the line is too long (%zu bytes): the limit is %d bytes",
                       len, num < 3 ? 0 : num - 3);
        return NULL;
    }
    memcpy(str, start, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    if (*str == '[' && header_parse(p, str) < 0)
        return NULL;
    return str;
}

/* The ini_handler: one key = value in the current section. */
static int key_handle(void *user, const char *section, const char *name, const char *value)
{
    struct config_parser *p = user;

    if (p->err_line)
        return 1; /* the reader stops at the next line */
    if (!*name) {
        config_fail_at(p, p->line, NULL, "missing key name before '=': expected KEY = VALUE");
        return 0;
    }
    if (!p->section) {
        config_fail_at(p, p->line, NULL,
                       "key '%s' is outside any section: expected a section header such as "
                       "[target NAME] before it",
                       name);
        return 0;
    }
    /* inih truncates long section names; ours is the whole one. */
    if (p->kind == SEC_NONE || strncmp(p->section, section, strlen(section)) != 0) {
        config_fail_at(p, p->line, NULL, "internal error: section '%s' is not open", section);
        return 0;
    }
    return config_key_set(p, name, value) == 0;
}

/* After the last line: url in every target, references defined. */
static void config_check_refs(struct config_parser *p)
{
    const struct config *cfg = p->cfg;

    for (size_t i = 0; i < cfg->n_targets; i++)
        if (!cfg->targets[i].url)
            config_fail_at(p, cfg->targets[i].line, NULL,
                           "[target %s]: missing key 'url': expected url = file:///PATH, "
                           "ssh://USER@HOST/PATH or s3://BUCKET/PREFIX",
                           cfg->targets[i].name);
    for (size_t i = 0; i < p->n_refs; i++) {
        const struct config_ref *r = &p->refs[i];
        const char *type = section_names[r->kind];

        if (!section_find(p, r->kind, r->name))
            config_fail_at(p, r->line, r->where,
                           "%s '%s' is not defined: expected the name of a [%s NAME] section", type,
                           r->name, type);
    }
}

static void parser_clear(struct config_parser *p)
{
    for (size_t i = 0; i < p->n_refs; i++) {
        free(p->refs[i].name);
        free(p->refs[i].where);
    }
    free(p->refs);
    free(p->section);
}

static int parse_run(struct config_parser *p)
{
    int r = ini_parse_stream(line_read, p, key_handle, p);

    if (r < 0 && !p->err_line) {
        vk_error(VK_ERR_INTERNAL, "%s: out of memory while parsing", p->cfg->file);
        return -1;
    }
    /* inih's own syntax errors: a line that is no header, key or comment. */
    if (r > 0 && (!p->err_line || (unsigned int)r < p->err_line))
        config_fail_at(p, (unsigned int)r, NULL,
                       "expected KEY = VALUE, a section header such as [target NAME], or a "
                       "comment starting with ';' or '#'");
    if (!p->err_line)
        config_check_refs(p);
    return p->err_line ? -1 : 0;
}

struct config *config_new_empty(const char *name)
{
    struct config *cfg = vk_calloc(1, sizeof *cfg);

    if (!cfg)
        return NULL;
    cfg->file = vk_strdup(name ? name : "(none)");
    if (!cfg->file) {
        free(cfg);
        return NULL;
    }
    return cfg;
}

struct config *config_parse_buffer(const char *name, const char *buf, size_t len,
                                   unsigned int flags)
{
    struct config_parser p = {.buf = buf, .len = len, .flags = flags};
    int r;

    p.cfg = config_new_empty(name);
    if (!p.cfg)
        return NULL;
    vk_error_clear();
    last_error_line = 0;
    r = parse_run(&p);
    parser_clear(&p);
    if (r < 0) {
        config_free(p.cfg);
        return NULL;
    }
    return p.cfg;
}

static char *file_read(const char *path, size_t *len)
{
    CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
    CLEANUP_FREE char *buf = NULL;
    struct stat st;
    ssize_t r;

    if (fd < 0 || fstat(fd, &st) < 0) {
        vk_error_errno(errno, "cannot read configuration file '%s'", path);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_FILE_SIZE) {
        vk_error(VK_ERR_INVALID,
                 "cannot read configuration file '%s': expected a regular file "
                 "of at most %d bytes",
                 path, CONFIG_MAX_FILE_SIZE);
        return NULL;
    }
    buf = vk_malloc((size_t)st.st_size + 1);
    if (!buf)
        return NULL;
    r = vk_pread_all(fd, buf, (size_t)st.st_size, 0);
    if (r < 0) {
        vk_error_errno(errno, "cannot read configuration file '%s'", path);
        return NULL;
    }
    *len = (size_t)r;
    return VK_STEAL(buf);
}

struct config *config_parse_file(const char *path, unsigned int flags)
{
    CLEANUP_FREE char *buf = NULL;
    size_t len = 0;

    last_error_line = 0;
    buf = file_read(path, &len);
    if (!buf)
        return NULL;
    return config_parse_buffer(path, buf, len, flags);
}

static void target_clear(struct config_target *t)
{
    free(t->name);
    free(t->url);
    free(t->scheme);
    free(t->user);
    free(t->key_file);
    free(t->known_hosts);
    free(t->password_file);
    free(t->passphrase_file);
    free(t->passphrase_env);
    free(t->access_key_id);
    free(t->secret_key_file);
    free(t->secret_key_env);
    free(t->region);
    free(t->endpoint);
    free(t->ca_file);
    free(t->encryption);
    free(t->encryption_key_file);
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_targets; i++)
        target_clear(&cfg->targets[i]);
    for (size_t i = 0; i < cfg->n_policies; i++) {
        free(cfg->policies[i].name);
        vk_strv_free(cfg->policies[i].targets);
        free(cfg->policies[i].quiesce);
        free(cfg->policies[i].encryption);
        free(cfg->policies[i].encryption_key_file);
    }
    for (size_t i = 0; i < cfg->n_domains; i++) {
        free(cfg->domains[i].name);
        free(cfg->domains[i].policy);
        vk_strv_free(cfg->domains[i].disks);
        vk_strv_free(cfg->domains[i].exclude);
        free(cfg->domains[i].quiesce);
    }
    free(cfg->targets);
    free(cfg->policies);
    free(cfg->domains);
    free(cfg->catalog_path);
    free(cfg->daemon.socket);
    free(cfg->daemon.listen);
    free(cfg->daemon.token_file);
    free(cfg->daemon.log);
    free(cfg->file);
    free(cfg);
}

const struct config_target *config_target_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->n_targets; i++)
        if (strcmp(cfg->targets[i].name, name) == 0)
            return &cfg->targets[i];
    return NULL;
}

const struct config_policy *config_policy_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->n_policies; i++)
        if (strcmp(cfg->policies[i].name, name) == 0)
            return &cfg->policies[i];
    return NULL;
}

const struct config_domain *config_domain_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->n_domains; i++)
        if (strcmp(cfg->domains[i].name, name) == 0)
            return &cfg->domains[i];
    return NULL;
}

void config_target_options(const struct config_target *target, struct transport_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->key_file = target->key_file;
    opts->known_hosts = target->known_hosts;
    opts->password_file = target->password_file;
    opts->user = target->user;
    opts->passphrase_file = target->passphrase_file;
    opts->passphrase_env = target->passphrase_env;
    opts->access_key_id = target->access_key_id;
    opts->secret_key_file = target->secret_key_file;
    opts->secret_key_env = target->secret_key_env;
    opts->region = target->region;
    opts->endpoint = target->endpoint;
    opts->ca_file = target->ca_file;
}

/* $XDG_<VAR> if set to an absolute path, else $HOME/<fallback>, then /<file>. */
static char *xdg_path(const char *var, const char *fallback, const char *file)
{
    const char *dir = getenv(var);
    const char *home;

    if (dir && dir[0] == '/')
        return vk_asprintf("%s/virtkeep/%s", dir, file);
    home = getenv("HOME");
    if (!home || home[0] != '/') {
        vk_error(VK_ERR_NOT_FOUND,
                 "cannot find the default %s: neither %s nor HOME is set to "
                 "an absolute path",
                 file, var);
        return NULL;
    }
    return vk_asprintf("%s/%s/virtkeep/%s", home, fallback, file);
}

char *config_default_path(uid_t euid)
{
    if (euid == 0)
        return vk_strdup(CONFIG_SYSTEM_PATH);
    return xdg_path("XDG_CONFIG_HOME", ".config", "virtkeep.conf");
}

char *config_default_catalog(uid_t euid)
{
    if (euid == 0)
        return vk_strdup(CONFIG_SYSTEM_CATALOG);
    return xdg_path("XDG_DATA_HOME", ".local/share", "catalog.db");
}

bool config_encryption(const struct config *cfg, const char *target, const char *domain,
                       const char **key_file)
{
    const struct config_target *t = cfg && target ? config_target_find(cfg, target) : NULL;
    const struct config_domain *d = cfg && domain ? config_domain_find(cfg, domain) : NULL;
    const struct config_policy *p = d && d->policy ? config_policy_find(cfg, d->policy) : NULL;
    const char *enc = NULL;

    *key_file = NULL;
    if (t && t->encryption) {
        enc = t->encryption;
        *key_file = t->encryption_key_file;
    } else if (p && p->encryption) {
        enc = p->encryption;
        *key_file = p->encryption_key_file;
    }
    if (!enc || strcmp(enc, "none") == 0) {
        *key_file = NULL;
        return false;
    }
    return true;
}

static bool strv_has(const char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

const char **config_key_files(const struct config *cfg)
{
    size_t nt = cfg ? cfg->n_targets : 0, np = cfg ? cfg->n_policies : 0, n = 0;
    const char **v = vk_calloc(nt + np + 1, sizeof(*v));

    for (size_t i = 0; v && i < nt + np; i++) {
        const char *f = i < nt ? cfg->targets[i].encryption_key_file
                               : cfg->policies[i - nt].encryption_key_file;
        if (f && !strv_has(v, n, f))
            v[n++] = f;
    }
    return v;
}

uint64_t config_lock_seconds(const struct config *cfg, const char *domain)
{
    const struct config_domain *d = cfg && domain ? config_domain_find(cfg, domain) : NULL;
    const struct config_policy *p = d && d->policy ? config_policy_find(cfg, d->policy) : NULL;
    const char *test = getenv("VIRTKEEP_TEST_LOCK_SECONDS");

    if (!p || !p->immutable_days)
        return 0;
    if (test && *test)
        return strtoull(test, NULL, 10);
    return (uint64_t)p->immutable_days * 86400;
}
