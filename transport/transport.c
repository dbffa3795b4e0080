/* virtkeep - transport registry, URL parsing, key validation and the shared
 * wrappers every backend goes through (after nbdkit's server/backend.c).
 *
 * The wrappers validate keys, log at debug level, count bytes and put
 * "target 'NAME': " in front of whatever error the backend recorded, so the
 * backends stay small and all report errors the same way.
 */
#include <config.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/transport-int.h"

/* The registry: one line per backend. */
static const struct transport_ops *const backends[] = {
    &transport_file,
    &transport_ssh,
    &transport_s3,
};

struct transport_writer {
    struct transport *t;
    void *handle;
    char *key;
    uint64_t bytes;
    bool failed; /* a write failed: commit must not publish a partial object */
};

/* ------------------------------------------------------------------ */
/* Registry                                                            */

/* The first required method OPS lacks, or NULL. */
static const char *ops_missing(const struct transport_ops *ops)
{
#define REQUIRE(m)                                                                                 \
    if (!ops->m)                                                                                   \
    return #m
    REQUIRE(open);
    REQUIRE(close);
    REQUIRE(check);
    REQUIRE(put_begin);
    REQUIRE(put_write);
    REQUIRE(put_commit);
    REQUIRE(put_abort);
    REQUIRE(get_range);
    REQUIRE(stat);
    REQUIRE(list);
    REQUIRE(remove);
#undef REQUIRE
    return NULL;
}

int transport_ops_validate(const struct transport_ops *ops)
{
    const char *missing;

    if (!ops || !ops->scheme || !*ops->scheme) {
        vk_error(VK_ERR_INTERNAL, "a transport backend has no scheme");
        return -1;
    }
    missing = ops_missing(ops);
    if (missing) {
        vk_error(VK_ERR_INTERNAL, "transport backend '%s' lacks the required method '%s'",
                 ops->scheme, missing);
        return -1;
    }
    return 0;
}

/* The registered backend for SCHEME, complete or not, or NULL. */
static const struct transport_ops *backend_find(const char *scheme)
{
    for (size_t i = 0; scheme && i < VK_ARRAY_SIZE(backends); i++)
        if (strcmp(backends[i]->scheme, scheme) == 0)
            return backends[i];
    return NULL;
}

bool transport_scheme_supported(const char *scheme)
{
    const struct transport_ops *ops = backend_find(scheme);

    return ops && !ops_missing(ops);
}

static char schemes_buf[64];
static pthread_once_t schemes_once = PTHREAD_ONCE_INIT;

static void schemes_build(void)
{
    size_t used = 0;

    for (size_t i = 0; i < VK_ARRAY_SIZE(backends); i++) {
        int n = snprintf(schemes_buf + used, sizeof schemes_buf - used, "%s%s", used ? ", " : "",
                         backends[i]->scheme);
        if (n < 0 || (size_t)n >= sizeof schemes_buf - used)
            break;
        used += (size_t)n;
    }
}

const char *transport_schemes(void)
{
    pthread_once(&schemes_once, schemes_build);
    return schemes_buf;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

/* Why KEY is not a valid key, or NULL when it is. */
static const char *key_problem(const char *key)
{
    size_t len = strlen(key);
    const char *c;

    if (len == 0)
        return "it is empty";
    if (len > TRANSPORT_KEY_MAX)
        return "it is longer than 1024 bytes";
    if (key[0] == '/')
        return "it must not start with '/'";
    if (key[len - 1] == '/')
        return "it must not end with '/'";
    if (strstr(key, ".vk-tmp-"))
        return "'.vk-tmp-' is reserved for puts in progress";
    for (c = key; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 0)
            return "it has an empty path component";
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return "it has a '.' or '..' path component";
        if (n > 255)
            return "a path component is longer than 255 bytes";
        c += n;
        if (*c == '/')
            c++;
    }
    return NULL;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return true;
    return false;
}

int transport_key_valid(const char *key)
{
    const char *why;

    if (!key) {
        vk_error(VK_ERR_INVALID, "invalid key: no key was given");
        return -1;
    }
    if (has_control(key)) {
        vk_error(VK_ERR_INVALID, "invalid key: it contains a control character");
        return -1;
    }
    why = key_problem(key);
    if (why) {
        vk_error(VK_ERR_INVALID, "invalid key '%.1100s': %s", key, why);
        return -1;
    }
    return 0;
}

/* A list prefix is any string that can start a key: "" or "web1/" or
 * "web1/2026".  It is checked by appending one letter. */
static int prefix_valid(const char *prefix)
{
    CLEANUP_FREE char *probe = NULL;

    if (!prefix || !*prefix)
        return 0;
    if (has_control(prefix) || strlen(prefix) >= TRANSPORT_KEY_MAX ||
        !(probe = vk_asprintf("%sx", prefix)) || key_problem(probe)) {
        vk_error(VK_ERR_INVALID, "invalid key prefix '%.1100s': it cannot start a valid key",
                 has_control(prefix) ? "(control characters)" : prefix);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* URLs                                                                */

struct url_parse {
    const char *url;
    bool show; /* may the URL appear in messages (no password, no control chars) */
};

static int __attribute__((format(printf, 2, 3)))
url_fail(const struct url_parse *p, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (p->show)
        vk_error(VK_ERR_INVALID, "invalid target URL '%.300s': %s", p->url, why);
    else
        vk_error(VK_ERR_INVALID, "invalid target URL: %s", why);
    return -1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decode LEN bytes of S.  Returns NULL and sets *WHY on a bad escape or an
 * escaped control character; NULL with *WHY unset when out of memory. */
static char *pct_decode(const char *s, size_t len, const char **why)
{
    char *out = vk_malloc(len + 1), *o = out;

    *why = NULL;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
        lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            *why = "it has a malformed percent-escape";
            free(out);
            return NULL;
        }
        *o = (char)(hi * 16 + lo);
        if ((unsigned char)*o < 0x20 || (unsigned char)*o == 0x7f) {
            *why = "it has an escaped control character";
            free(out);
            return NULL;
        }
        o++;
        i += 2;
    }
    *o = '\0';
    return out;
}

static int decode_into(const struct url_parse *p, const char *s, size_t len, const char *what,
                       char **out)
{
    const char *why;

    *out = pct_decode(s, len, &why);
    if (*out)
        return 0;
    return why ? url_fail(p, "the %s: %s", what, why) : -1;
}

static void strip_trailing_slashes(char *path)
{
    size_t len = strlen(path);

    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
}

static int parse_port(const struct url_parse *p, const char *s, size_t len, int *port)
{
    unsigned long v = 0;

    if (len == 0 || len > 5)
        return url_fail(p, "the port must be a number from 1 to 65535");
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return url_fail(p, "the port must be a number from 1 to 65535");
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return url_fail(p, "the port must be a number from 1 to 65535");
    *port = (int)v;
    return 0;
}

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* "[v6addr]" or "[v6addr%25zone]" at S (LEN bytes including brackets). */
static int parse_ipv6(const struct url_parse *p, const char *s, size_t len, char **host)
{
    char addr[INET6_ADDRSTRLEN + 1];
    struct in6_addr bin;
    const char *in = s + 1, *zone;
    size_t inlen = len - 2, alen;

    zone = memmem(in, inlen, "%25", 3);
    alen = zone ? (size_t)(zone - in) : inlen;
    if (alen == 0 || alen >= sizeof addr)
        return url_fail(p, "the IPv6 address in brackets is malformed");
    memcpy(addr, in, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET6, addr, &bin) != 1)
        return url_fail(p, "the IPv6 address in brackets is malformed");
    if (zone) {
        const char *z = zone + 3, *end = in + inlen;
        if (z == end)
            return url_fail(p, "the IPv6 zone is empty");
        for (; z < end; z++)
            if (!isalnum((unsigned char)*z) && *z != '-' && *z != '.' && *z != '_')
                return url_fail(p, "the IPv6 zone is malformed");
        *host = vk_asprintf("%s%%%.*s", addr, (int)(end - zone - 3), zone + 3);
    } else {
        *host = vk_strdup(addr);
    }
    return *host ? 0 : -1;
}

/* HOSTPORT (no user part) into host and port. */
static int parse_hostport(const struct url_parse *p, const char *s, size_t len,
                          struct transport_url *out)
{
    const char *colon;
    size_t hlen;

    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return url_fail(p, "the IPv6 address has no closing ']'");
        hlen = (size_t)(close - s) + 1;
        if (parse_ipv6(p, s, hlen, &out->host) < 0)
            return -1;
        if (hlen == len)
            return 0;
        if (s[hlen] != ':')
            return url_fail(p, "unexpected characters after the IPv6 address");
        return parse_port(p, s + hlen + 1, len - hlen - 1, &out->port);
    }
    colon = memchr(s, ':', len);
    hlen = colon ? (size_t)(colon - s) : len;
    if (hlen == 0)
        return url_fail(p, "the host name is empty");
    if (hlen > 253)
        return url_fail(p, "the host name is longer than 253 characters");
    for (size_t i = 0; i < hlen; i++)
        if (!host_char(s[i]))
            return url_fail(p, "the host name has an invalid character");
    if (!(out->host = vk_strndup(s, hlen)))
        return -1;
    return colon ? parse_port(p, colon + 1, len - hlen - 1, &out->port) : 0;
}

static int parse_authority(const struct url_parse *p, const char *s, size_t len,
                           struct transport_url *out)
{
    const char *at = memchr(s, '@', len);
    size_t ulen;

    if (!at)
        return parse_hostport(p, s, len, out);
    ulen = (size_t)(at - s);
    if (memchr(at + 1, '@', len - ulen - 1))
        return url_fail(p, "it has more than one '@' (write '@' in a user name as %%40)");
    if (memchr(s, ':', ulen))
        return url_fail(p, "passwords in URLs are not accepted; give a password or key file "
                           "in the target's options");
    if (ulen == 0)
        return url_fail(p, "the user name before '@' is empty");
    if (decode_into(p, s, ulen, "user name", &out->user) < 0)
        return -1;
    return parse_hostport(p, at + 1, len - ulen - 1, out);
}

/* Query: NAME[=VALUE] items separated by '&', each well escaped. */
static int check_query(const struct url_parse *p, const char *q)
{
    const char *why;

    for (const char *c = q;;) {
        size_t n = strcspn(c, "&");
        char *d;
        if (n == 0 || c[0] == '=')
            return url_fail(p, "the query has an empty parameter");
        d = pct_decode(c, n, &why);
        if (!d)
            return why ? url_fail(p, "the query: %s", why) : -1;
        free(d);
        if (!c[n])
            return 0;
        c += n + 1;
    }
}

static int parse_file(const struct url_parse *p, const char *auth, size_t alen, const char *path,
                      size_t plen, struct transport_url *out)
{
    if (alen != 0 && !(alen == 9 && strncasecmp(auth, "localhost", 9) == 0))
        return url_fail(p, "a file URL takes an absolute path: write file:///PATH (three "
                           "slashes)");
    if (plen == 0)
        return url_fail(p, "the file URL has no path");
    if (out->query)
        return url_fail(p, "a file URL takes no query ('?'); write '?' in a path as %%3F");
    if (decode_into(p, path, plen, "path", &out->path) < 0)
        return -1;
    strip_trailing_slashes(out->path);
    return 0;
}

static int parse_s3(const struct url_parse *p, const char *auth, size_t alen, const char *path,
                    size_t plen, struct transport_url *out)
{
    char *start;

    if (alen == 0)
        return url_fail(p, "the bucket name is empty");
    if (memchr(auth, '@', alen))
        return url_fail(p, "an s3 URL takes no user; give credentials in the target's options");
    if (alen > 255)
        return url_fail(p, "the bucket name is longer than 255 characters");
    for (size_t i = 0; i < alen; i++)
        if (!isalnum((unsigned char)auth[i]) && auth[i] != '-' && auth[i] != '.' && auth[i] != '_')
            return url_fail(p, "the bucket name has an invalid character (the endpoint goes "
                               "in ?endpoint=)");
    if (!(out->host = vk_strndup(auth, alen)))
        return -1;
    if (decode_into(p, path, plen, "path", &out->path) < 0)
        return -1;
    start = out->path + strspn(out->path, "/");
    memmove(out->path, start, strlen(start) + 1);
    strip_trailing_slashes(out->path);
    if (strcmp(out->path, "/") == 0)
        out->path[0] = '\0';
    if (*out->path && key_problem(out->path))
        return url_fail(p, "the key prefix: %s", key_problem(out->path));
    return 0;
}

static int parse_ssh(const struct url_parse *p, const char *auth, size_t alen, const char *path,
                     size_t plen, struct transport_url *out)
{
    if (alen == 0)
        return url_fail(p, "the host name is empty");
    if (parse_authority(p, auth, alen, out) < 0)
        return -1;
    if (decode_into(p, path, plen, "path", &out->path) < 0)
        return -1;
    strip_trailing_slashes(out->path);
    return 0;
}

/* SCHEME://... into OUT->scheme; returns the part after "://" or NULL. */
static const char *parse_scheme(const struct url_parse *p, struct transport_url *out)
{
    static const char *const known[] = {"file", "ssh", "s3"};
    const char *s = p->url;
    size_t n = 0;

    if (isalpha((unsigned char)s[0]))
        for (n = 1; isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-' || s[n] == '.';)
            n++;
    if (n == 0 || strncmp(s + n, "://", 3) != 0) {
        url_fail(p, "missing scheme (expected file://, ssh:// or s3://, or an absolute path)");
        return NULL;
    }
    if (!(out->scheme = vk_strndup(s, n)))
        return NULL;
    for (char *c = out->scheme; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    for (size_t i = 0; i < VK_ARRAY_SIZE(known); i++)
        if (strcmp(out->scheme, known[i]) == 0)
            return s + n + 3;
    url_fail(p, "unknown scheme '%.20s' (expected file, ssh or s3)", out->scheme);
    return NULL;
}

static int url_parse_scheme_url(const struct url_parse *p, struct transport_url *out)
{
    const char *rest = parse_scheme(p, out), *q, *slash;
    size_t end, alen;

    if (!rest)
        return -1;
    if (strchr(rest, '#'))
        return url_fail(p, "fragments ('#') are not accepted; write '#' as %%23");
    q = strchr(rest, '?');
    end = q ? (size_t)(q - rest) : strlen(rest);
    if (q && (check_query(p, q + 1) < 0 || !(out->query = vk_strdup(q + 1))))
        return -1;
    slash = memchr(rest, '/', end);
    alen = slash ? (size_t)(slash - rest) : end;
    if (strcmp(out->scheme, "file") == 0)
        return parse_file(p, rest, alen, rest + alen, end - alen, out);
    if (strcmp(out->scheme, "s3") == 0)
        return parse_s3(p, rest, alen, rest + alen, end - alen, out);
    return parse_ssh(p, rest, alen, rest + alen, end - alen, out);
}

/* Is there a ':' in the user part of the authority (a password)? */
static bool url_has_password(const char *url)
{
    const char *a = strstr(url, "://"), *at;
    size_t alen;

    if (!a)
        return false;
    a += 3;
    alen = strcspn(a, "/?#");
    at = memchr(a, '@', alen);
    return at && memchr(a, ':', (size_t)(at - a));
}

bool transport_is_url(const char *arg)
{
    return arg[0] == '/' || strstr(arg, "://") != NULL;
}

int transport_url_parse(const char *url, struct transport_url *out)
{
    struct url_parse p = {.url = url, .show = false};
    int r;

    memset(out, 0, sizeof *out);
    if (!url || !*url) {
        vk_error(VK_ERR_INVALID, "invalid target URL: it is empty");
        return -1;
    }
    if (has_control(url)) {
        vk_error(VK_ERR_INVALID, "invalid target URL: it contains a control character");
        return -1;
    }
    p.show = !url_has_password(url);
    if (url[0] == '/') {
        out->scheme = vk_strdup("file");
        out->path = vk_strdup(url);
        r = out->scheme && out->path ? 0 : -1;
        if (r == 0)
            strip_trailing_slashes(out->path);
    } else {
        r = url_parse_scheme_url(&p, out);
    }
    if (r == 0 && !out->path)
        r = (out->path = vk_strdup("")) ? 0 : -1;
    if (r < 0)
        transport_url_clear(out);
    return r;
}

void transport_url_clear(struct transport_url *url)
{
    if (!url)
        return;
    free(url->scheme);
    free(url->user);
    free(url->host);
    free(url->path);
    free(url->query);
    memset(url, 0, sizeof *url);
}

char *transport_url_query_get(const struct transport_url *url, const char *key)
{
    const char *why;

    if (!url || !url->query || !key)
        return NULL;
    for (const char *c = url->query; *c;) {
        size_t n = strcspn(c, "&"), nlen = strcspn(c, "=&");
        CLEANUP_FREE char *name = pct_decode(c, nlen, &why);
        if (!name)
            return NULL;
        if (strcmp(name, key) == 0)
            return nlen < n ? pct_decode(c + nlen + 1, n - nlen - 1, &why) : vk_strdup("");
        c += n;
        if (*c == '&')
            c++;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */

static int transport_open_backend(struct transport *t, const char *url,
                                  const struct transport_options *opts)
{
    if (transport_url_parse(url, &t->parsed) < 0)
        return -1;
    t->ops = backend_find(t->parsed.scheme);
    if (!t->ops) {
        vk_error(VK_ERR_UNSUPPORTED, "scheme '%s' is not available in this build (available: %s)",
                 t->parsed.scheme, transport_schemes());
        return -1;
    }
    if (transport_ops_validate(t->ops) < 0) {
        t->ops = NULL;
        return -1;
    }
    if (opts && opts->lock_seconds && strcmp(t->ops->scheme, "s3") != 0) {
        vk_error(VK_ERR_UNSUPPORTED,
                 "target '%s' cannot lock objects (immutable_days): only S3 targets with Object "
                 "Lock can; a %s:// target can only be made immutable by its file system or "
                 "server",
                 t->name, t->ops->scheme);
        t->ops = NULL;
        return -1;
    }
    if (t->ops->open(t, &t->parsed, opts) < 0) {
        t->ops = NULL; /* nothing to close */
        return -1;
    }
    return 0;
}

struct transport *transport_open(const char *name, const char *url,
                                 const struct transport_options *opts)
{
    static const struct transport_options no_opts;
    struct transport *t;

    t = vk_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->name = vk_strdup(name ? name : url);
    t->url = vk_strdup(url);
    if (!t->name || !t->url || transport_open_backend(t, url, opts ? opts : &no_opts) < 0) {
        if (name)
            vk_error_prefix("cannot open target '%s'", name);
        transport_close(t);
        return NULL;
    }
    vk_debug("target '%s': opened %s (%s)", t->name, url, t->ops->scheme);
    return t;
}

void transport_close(struct transport *t)
{
    if (!t)
        return;
    if (t->ops) {
        vk_debug("target '%s': closed after %llu bytes written, %llu read", t->name,
                 (unsigned long long)t->counters.bytes_written,
                 (unsigned long long)t->counters.bytes_read);
        t->ops->close(t);
    }
    transport_url_clear(&t->parsed);
    free(t->name);
    free(t->url);
    free(t);
}

const char *transport_name(const struct transport *t)
{
    return t->name;
}

const char *transport_scheme(const struct transport *t)
{
    return t->ops->scheme;
}

void transport_counters_get(const struct transport *t, struct transport_counters *out)
{
    out->bytes_written = __atomic_load_n(&t->counters.bytes_written, __ATOMIC_RELAXED);
    out->bytes_read = __atomic_load_n(&t->counters.bytes_read, __ATOMIC_RELAXED);
    out->puts = __atomic_load_n(&t->counters.puts, __ATOMIC_RELAXED);
    out->gets = __atomic_load_n(&t->counters.gets, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* The wrappers                                                        */

static int target_fail(const struct transport *t)
{
    vk_error_prefix("target '%s'", t->name);
    return -1;
}

static int key_check(const struct transport *t, const char *key)
{
    return transport_key_valid(key) < 0 ? target_fail(t) : 0;
}

int transport_check(struct transport *t)
{
    vk_debug("target '%s': check", t->name);
    return t->ops->check(t) < 0 ? target_fail(t) : 0;
}

struct transport_writer *transport_put_begin(struct transport *t, const char *key,
                                             unsigned int flags)
{
    struct transport_writer *w;

    if (key_check(t, key) < 0)
        return NULL;
    if (flags != 0) {
        vk_error(VK_ERR_INVALID, "cannot put '%s': unknown flags 0x%x", key, flags);
        target_fail(t);
        return NULL;
    }
    w = vk_calloc(1, sizeof *w);
    if (!w || !(w->key = vk_strdup(key)) || !(w->handle = t->ops->put_begin(t, key, flags))) {
        if (w)
            free(w->key);
        free(w);
        target_fail(t);
        return NULL;
    }
    w->t = t;
    vk_debug("target '%s': put '%s' begins", t->name, key);
    return w;
}

int transport_writer_write(struct transport_writer *w, const void *buf, size_t len)
{
    if (w->failed) {
        vk_error(VK_ERR_INVALID, "cannot put '%s': an earlier write failed", w->key);
        return target_fail(w->t);
    }
    if (len == 0)
        return 0;
    vk_debug_data("target '%s': put '%s' write %zu bytes at %llu", w->t->name, w->key, len,
                  (unsigned long long)w->bytes);
    if (w->t->ops->put_write(w->t, w->handle, buf, len) < 0) {
        w->failed = true;
        return target_fail(w->t);
    }
    w->bytes += len;
    return 0;
}

static void writer_free(struct transport_writer *w)
{
    free(w->key);
    free(w);
}

int transport_writer_commit(struct transport_writer *w)
{
    struct transport *t = w->t;
    int r;

    if (w->failed) {
        vk_error(VK_ERR_INVALID, "cannot commit '%s': an earlier write failed", w->key);
        target_fail(t);
        t->ops->put_abort(t, w->handle);
        writer_free(w);
        return -1;
    }
    r = t->ops->put_commit(t, w->handle);
    if (r < 0) {
        target_fail(t);
    } else {
        __atomic_add_fetch(&t->counters.bytes_written, w->bytes, __ATOMIC_RELAXED);
        __atomic_add_fetch(&t->counters.puts, 1, __ATOMIC_RELAXED);
        vk_debug("target '%s': put '%s' committed, %llu bytes", t->name, w->key,
                 (unsigned long long)w->bytes);
    }
    writer_free(w);
    return r < 0 ? -1 : 0;
}

void transport_writer_abort(struct transport_writer *w)
{
    int saved = errno;

    if (!w)
        return;
    vk_debug("target '%s': put '%s' aborted after %llu bytes", w->t->name, w->key,
             (unsigned long long)w->bytes);
    w->t->ops->put_abort(w->t, w->handle);
    writer_free(w);
    errno = saved;
}

uint64_t transport_writer_bytes(const struct transport_writer *w)
{
    return w->bytes;
}

int transport_put(struct transport *t, const char *key, const void *buf, size_t len)
{
    struct transport_writer *w = transport_put_begin(t, key, 0);

    if (!w)
        return -1;
    if (transport_writer_write(w, buf, len) < 0) {
        transport_writer_abort(w);
        return -1;
    }
    return transport_writer_commit(w);
}

ssize_t transport_get_range(struct transport *t, const char *key, uint64_t offset, void *buf,
                            size_t len)
{
    ssize_t r;

    if (key_check(t, key) < 0)
        return -1;
    if (offset > (uint64_t)INT64_MAX) {
        vk_error(VK_ERR_INVALID, "cannot read '%s': offset %llu is out of range", key,
                 (unsigned long long)offset);
        return target_fail(t);
    }
    if (len > (size_t)SSIZE_MAX)
        len = (size_t)SSIZE_MAX;
    if (len > (uint64_t)INT64_MAX - offset)
        len = (size_t)((uint64_t)INT64_MAX - offset);
    r = t->ops->get_range(t, key, offset, buf, len);
    if (r < 0)
        return target_fail(t);
    __atomic_add_fetch(&t->counters.bytes_read, (uint64_t)r, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->counters.gets, 1, __ATOMIC_RELAXED);
    vk_debug_data("target '%s': read '%s' %zu bytes at %llu: got %zd", t->name, key, len,
                  (unsigned long long)offset, r);
    return r;
}

/* Make room for at least two more bytes (one to read, one for the NUL),
 * never beyond MAX + 2. */
static int buffer_grow(char **data, size_t *cap, size_t used, uint64_t max)
{
    size_t want = *cap * 2;
    char *bigger;

    if (*cap - used >= 2)
        return 0;
    if (want > max + 2)
        want = (size_t)max + 2;
    if (!(bigger = vk_realloc_array(*data, want, 1)))
        return -1;
    *data = bigger;
    *cap = want;
    return 0;
}

int transport_get_all(struct transport *t, const char *key, uint64_t max_size, void **buf,
                      size_t *len)
{
    struct transport_stat st;
    CLEANUP_FREE char *data = NULL;
    size_t cap, used = 0;

    *buf = NULL;
    *len = 0;
    if (transport_stat(t, key, &st) < 0)
        return -1;
    if (max_size > SIZE_MAX / 4)
        max_size = SIZE_MAX / 4;
    /* Room for one byte past the size so that an object that grew since the
     * stat is noticed, and for the NUL. */
    cap = (size_t)(st.size < max_size ? st.size : max_size) + 2;
    if (!(data = vk_malloc(cap)))
        return target_fail(t);
    for (;;) {
        ssize_t r;
        if (buffer_grow(&data, &cap, used, max_size) < 0)
            return target_fail(t);
        r = transport_get_range(t, key, used, data + used, cap - 1 - used);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        used += (size_t)r;
        if (used > max_size) {
            vk_error(VK_ERR_INVALID, "cannot read '%s': it is larger than %llu bytes", key,
                     (unsigned long long)max_size);
            return target_fail(t);
        }
    }
    data[used] = '\0';
    *buf = VK_STEAL(data);
    *len = used;
    return 0;
}

int transport_stat(struct transport *t, const char *key, struct transport_stat *st)
{
    if (key_check(t, key) < 0)
        return -1;
    memset(st, 0, sizeof *st);
    if (t->ops->stat(t, key, st) < 0)
        return target_fail(t);
    vk_debug("target '%s': stat '%s': %llu bytes", t->name, key, (unsigned long long)st->size);
    return 0;
}

int transport_list(struct transport *t, const char *prefix, transport_list_cb cb, void *opaque)
{
    int r;

    if (!prefix)
        prefix = "";
    if (prefix_valid(prefix) < 0)
        return target_fail(t);
    vk_error_clear();
    r = t->ops->list(t, prefix, cb, opaque);
    /* A callback's non-zero stop value passes through as is; a backend
     * failure is -1 with an error recorded. */
    if (r == -1 && vk_error_code() != VK_ERR_NONE)
        return target_fail(t);
    vk_debug("target '%s': list '%s': %d", t->name, prefix, r);
    return r;
}

int transport_delete(struct transport *t, const char *key)
{
    if (key_check(t, key) < 0)
        return -1;
    if (t->ops->remove(t, key) < 0)
        return target_fail(t);
    vk_debug("target '%s': deleted '%s'", t->name, key);
    return 0;
}

int transport_purge_temps(struct transport *t, const char *dir_key, unsigned int *removed)
{
    CLEANUP_FREE char *dir = NULL;
    unsigned int n = 0;
    DIR *d;
    struct dirent *e;

    if (removed)
        *removed = 0;
    if (key_check(t, dir_key) < 0)
        return -1;
    if (t->ops->purge_temps) {
        if (t->ops->purge_temps(t, dir_key, &n) < 0)
            return target_fail(t);
        if (removed)
            *removed = n;
        return 0;
    }
    if (strcmp(t->ops->scheme, "file") != 0)
        return 0;
    if (!(dir = vk_asprintf("%s/%s", t->parsed.path, dir_key)))
        return -1;
    if (!(d = opendir(dir))) {
        if (errno == ENOENT)
            return 0;
        vk_error_errno(errno, "target '%s': cannot open directory '%s'", t->name, dir_key);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (!strstr(e->d_name, TRANSPORT_TMP_MARK))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
            vk_error_errno(errno, "target '%s': cannot remove '%s/%s'", t->name, dir_key,
                           e->d_name);
            closedir(d);
            return -1;
        }
        vk_debug("target '%s': removed leftover '%s/%s'", t->name, dir_key, e->d_name);
        n++;
    }
    closedir(d);
    if (rmdir(dir) < 0 && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
        vk_debug("target '%s': cannot remove directory '%s': %s", t->name, dir_key,
                 strerror(errno));
    if (removed)
        *removed = n;
    return 0;
}

int transport_list_temps(struct transport *t, const char *prefix, transport_list_cb cb,
                         void *opaque)
{
    int r;

    if (!prefix)
        prefix = "";
    if (prefix_valid(prefix) < 0)
        return target_fail(t);
    if (!t->ops->list_temps)
        return 0;
    vk_error_clear();
    r = t->ops->list_temps(t, prefix, cb, opaque);
    if (r == -1 && vk_error_code() != VK_ERR_NONE)
        return target_fail(t);
    vk_debug("target '%s': list the puts in flight under '%s': %d", t->name, prefix, r);
    return r;
}

/* ---- listing helpers for tree-walking backends ------------------------ */

int transport_entries_add(struct transport_entries *e, char *key, uint64_t size, int64_t mtime)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        struct transport_entry *v = vk_realloc_array(e->v, cap, sizeof *v);
        if (!v) {
            free(key);
            return -1;
        }
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n].key = key;
    e->v[e->n].st.size = size;
    e->v[e->n].st.mtime = mtime;
    e->n++;
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct transport_entry *)a)->key,
                  ((const struct transport_entry *)b)->key);
}

int transport_entries_deliver(struct transport_entries *e, transport_list_cb cb, void *opaque)
{
    int r = 0;

    if (e->n > 1)
        qsort(e->v, e->n, sizeof *e->v, entry_cmp);
    for (size_t i = 0; i < e->n && r == 0; i++)
        r = cb(opaque, e->v[i].key, &e->v[i].st);
    return r;
}

void transport_entries_clear(struct transport_entries *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].key);
    free(e->v);
    memset(e, 0, sizeof *e);
}

bool transport_dir_may_match(const char *rel, const char *prefix)
{
    size_t rlen = strlen(rel), plen = strlen(prefix);

    if (rlen == 0)
        return true;
    if (plen <= rlen)
        return strncmp(rel, prefix, plen) == 0;
    return strncmp(rel, prefix, rlen) == 0 && prefix[rlen] == '/';
}

bool transport_name_listable(const char *name)
{
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strstr(name, TRANSPORT_TMP_MARK))
        return false;
    for (const char *c = name; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            return false;
    return true;
}
