/* virtkeep - the s3:// backend: s3://BUCKET/PREFIX?endpoint=URL&region=R
 *
 * URL query parameters (each also settable in transport_options where it
 * has a field; the URL wins):
 *   endpoint=http://127.0.0.1:4568   default https://s3.REGION.amazonaws.com
 *   region=us-east-1                 for SigV4 (default us-east-1)
 *   addressing=path|virtual          default path with an endpoint, else virtual
 *   part_size=SIZE                   first multipart part (default 8 MiB, >= 5 MiB)
 *   parallel=N                       parts in flight per put (default 8, 1..16)
 *   attempts=N                       tries per request (default 6)
 *   backoff_ms=N                     first retry delay (default 200)
 *   max_keys=N                       listing page size (default 1000)
 *   readahead=SIZE                   largest sequential read-ahead window
 *                                    (default 64 MiB, 0 turns it off; s3-read.c)
 *
 * Credentials: access_key_id with secret_key_file (mode 0600 or stricter)
 * or secret_key_env; else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 * AWS_SESSION_TOKEN from the environment.  Secrets are never logged.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"
#include "transport/s3-int.h"
#include "transport/transport-int.h"

#define CHECK_KEY ".vk-tmp-check"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ------------------------------------------------------------------ */
/* Credentials                                                         */

static int secret_from_file(const char *file, char **out)
{
    CLEANUP_CLOSE int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    char buf[1024];
    ssize_t n;

    if (fd < 0 || fstat(fd, &st) < 0) {
        vk_error_errno(errno, "cannot read the S3 secret key file '%s'", file);
        return -1;
    }
    if (st.st_mode & 077) {
        vk_error(VK_ERR_PERMISSION,
                 "the S3 secret key file '%s' is open to other users (mode %04o); make it "
                 "0600",
                 file, (unsigned int)(st.st_mode & 07777));
        return -1;
    }
    n = read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        vk_error_errno(errno, "cannot read the S3 secret key file '%s'", file);
        return -1;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0]) {
        vk_error(VK_ERR_AUTH, "the S3 secret key file '%s' is empty", file);
        return -1;
    }
    *out = vk_strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return *out ? 0 : -1;
}

static int secret_from_env(const char *var, char **out)
{
    const char *v = getenv(var);

    if (!v || !*v) {
        vk_error(VK_ERR_AUTH, "the environment variable '%s' with the S3 secret key is not set",
                 var);
        return -1;
    }
    *out = vk_strdup(v);
    return *out ? 0 : -1;
}

static int creds_load(struct s3_creds *c, const struct transport_options *o)
{
    const char *id = o->access_key_id ? o->access_key_id : getenv("AWS_ACCESS_KEY_ID");
    const char *token = getenv("AWS_SESSION_TOKEN");

    if (!id || !*id) {
        vk_error(VK_ERR_AUTH, "no S3 credentials: set access_key_id and secret_key_file (or "
                              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
        return -1;
    }
    if (strchr(id, ':') || strchr(id, '\n')) {
        vk_error(VK_ERR_INVALID, "the S3 access key id is malformed");
        return -1;
    }
    if (!(c->access_key = vk_strdup(id)))
        return -1;
    if (o->secret_key_file)
        return secret_from_file(o->secret_key_file, &c->secret);
    if (o->secret_key_env)
        return secret_from_env(o->secret_key_env, &c->secret);
    if (secret_from_env("AWS_SECRET_ACCESS_KEY", &c->secret) < 0)
        return -1;
    /* A session token belongs to environment credentials only. */
    if (!o->access_key_id && token && *token && !(c->session_token = vk_strdup(token)))
        return -1;
    return 0;
}

static void creds_clear(struct s3_creds *c)
{
    if (c->secret)
        explicit_bzero(c->secret, strlen(c->secret));
    free(c->access_key);
    free(c->secret);
    free(c->session_token);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static int opt_uint(const struct transport_url *url, const char *name, unsigned long long min,
                    unsigned long long max, unsigned int *out)
{
    CLEANUP_FREE char *v = transport_url_query_get(url, name);
    unsigned long long n;

    if (!v)
        return 0;
    if (vk_parse_uint(v, max, &n) < 0 || n < min) {
        vk_error(VK_ERR_INVALID, "the option %s=%s is not a number from %llu to %llu", name, v, min,
                 max);
        return -1;
    }
    *out = (unsigned int)n;
    return 0;
}

static int opt_part_size(struct s3 *s3, const struct transport_url *url)
{
    CLEANUP_FREE char *v = transport_url_query_get(url, "part_size");
    uint64_t n;

    if (!v)
        return 0;
    if (vk_size_parse(v, &n) < 0 || n < S3_MIN_PART_SIZE || n > S3_MAX_PART_SIZE) {
        vk_error(VK_ERR_INVALID, "the option part_size=%s is not a size from 5 MiB to 5 GiB", v);
        return -1;
    }
    s3->part_size = (size_t)n;
    return 0;
}

static int opt_readahead(struct s3 *s3, const struct transport_url *url)
{
    CLEANUP_FREE char *v = transport_url_query_get(url, "readahead");
    uint64_t n;

    if (!v)
        return 0;
    if (vk_size_parse(v, &n) < 0 || n > 1024 * 1024 * 1024) {
        vk_error(VK_ERR_INVALID, "the option readahead=%s is not a size from 0 to 1 GiB", v);
        return -1;
    }
    s3->ra.max_window = (size_t)n;
    return 0;
}

static int opt_endpoint(struct s3 *s3, const struct transport_url *url,
                        const struct transport_options *o)
{
    CLEANUP_FREE char *q = transport_url_query_get(url, "endpoint");
    CLEANUP_FREE char *addr = transport_url_query_get(url, "addressing");
    const char *e = q ? q : o->endpoint;
    size_t len;

    s3->endpoint = e ? vk_strdup(e) : vk_asprintf("https://s3.%s.amazonaws.com", s3->region);
    if (!s3->endpoint)
        return -1;
    len = strlen(s3->endpoint);
    while (len > 0 && s3->endpoint[len - 1] == '/')
        s3->endpoint[--len] = '\0';
    if ((strncmp(s3->endpoint, "http://", 7) != 0 && strncmp(s3->endpoint, "https://", 8) != 0) ||
        strlen(strstr(s3->endpoint, "://")) <= 3 ||
        strpbrk(strstr(s3->endpoint, "://") + 3, "/?#@")) {
        vk_error(VK_ERR_INVALID, "the S3 endpoint '%s' must be http[s]://HOST[:PORT]",
                 s3->endpoint);
        return -1;
    }
    s3->virtual_host = e == NULL;
    if (addr && strcmp(addr, "path") != 0 && strcmp(addr, "virtual") != 0) {
        vk_error(VK_ERR_INVALID, "the option addressing=%s must be 'path' or 'virtual'", addr);
        return -1;
    }
    if (addr)
        s3->virtual_host = strcmp(addr, "virtual") == 0;
    return 0;
}

static int s3_configure(struct s3 *s3, const struct transport_url *url,
                        const struct transport_options *o)
{
    CLEANUP_FREE char *region = transport_url_query_get(url, "region");
    unsigned int timeout = o->timeout_seconds ? o->timeout_seconds : 3600;

    s3->region = vk_strdup(region ? region : o->region ? o->region : "us-east-1");
    s3->bucket = vk_strdup(url->host);
    s3->prefix = *url->path ? vk_asprintf("%s/", url->path) : vk_strdup("");
    if (!s3->region || !s3->bucket || !s3->prefix)
        return -1;
    if (!*s3->region || strpbrk(s3->region, ":/ ")) {
        vk_error(VK_ERR_INVALID, "the S3 region '%s' is malformed", s3->region);
        return -1;
    }
    if (!(s3->sigv4 = vk_asprintf("aws:amz:%s:s3", s3->region)))
        return -1;
    if (o->ca_file && !(s3->ca_file = vk_strdup(o->ca_file)))
        return -1;
    s3->timeout = (long)timeout;
    s3->attempts = 6;
    s3->backoff_ms = 200;
    s3->part_size = 8u * 1024 * 1024;
    /* radosgw here: 4 parts in flight put 1 GiB at 0.69x of one curl PUT,
     * 8 at 1.0x (make bench); the memory bound doubles to 9 parts. */
    s3->parallel = 8;
    s3->max_keys = 1000;
    s3->lock_seconds = o->lock_seconds;
    if (opt_endpoint(s3, url, o) < 0 || opt_part_size(s3, url) < 0 || opt_readahead(s3, url) < 0 ||
        opt_uint(url, "parallel", 1, S3_MAX_PARALLEL, &s3->parallel) < 0 ||
        opt_uint(url, "attempts", 1, 100, &s3->attempts) < 0 ||
        opt_uint(url, "backoff_ms", 1, 60000, &s3->backoff_ms) < 0 ||
        opt_uint(url, "max_keys", 1, 1000, &s3->max_keys) < 0)
        return -1;
    return creds_load(&s3->creds, o);
}

static void s3_free(struct s3 *s3)
{
    if (!s3)
        return;
    for (unsigned int i = 0; i < s3->npool; i++)
        curl_easy_cleanup(s3->pool[i]);
    pthread_mutex_destroy(&s3->pool_lock);
    s3_ra_free(&s3->ra);
    creds_clear(&s3->creds);
    free(s3->endpoint);
    free(s3->bucket);
    free(s3->prefix);
    free(s3->region);
    free(s3->sigv4);
    free(s3->ca_file);
    free(s3);
}

static int s3_open(struct transport *t, const struct transport_url *url,
                   const struct transport_options *opts)
{
    struct s3 *s3 = vk_calloc(1, sizeof *s3);

    if (!s3)
        return -1;
    pthread_once(&curl_once, curl_init);
    pthread_mutex_init(&s3->pool_lock, NULL);
    s3_ra_init(&s3->ra, S3_RA_MAX_WINDOW);
    if (s3_configure(s3, url, opts) < 0) {
        s3_free(s3);
        return -1;
    }
    t->priv = s3;
    vk_debug("s3: bucket '%s' prefix '%s' at %s (%s-style), region %s", s3->bucket, s3->prefix,
             s3->endpoint, s3->virtual_host ? "virtual-host" : "path", s3->region);
    return 0;
}

static void s3_close(struct transport *t)
{
    s3_free(t->priv);
    t->priv = NULL;
}

/* ------------------------------------------------------------------ */
/* Objects                                                             */

/* S3 holds names of at most S3_NAME_MAX bytes, the prefix included: a
 * longer key is refused here, before a multipart upload begins, with a
 * message that says why. */
static int name_fits(const struct s3 *s3, const char *key, const char *op)
{
    size_t n = strlen(s3->prefix) + strlen(key);

    if (n <= S3_NAME_MAX)
        return 0;
    vk_error(VK_ERR_INVALID,
             "cannot %s '%.1100s': with the prefix '%s' its S3 name has %zu bytes, more than the "
             "%u that S3 allows",
             op, key, s3->prefix, n, S3_NAME_MAX);
    return -1;
}

/* One request on KEY whose answer must be 2xx; WHAT names the operation. */
static int simple(struct s3 *s3, struct s3_req *r, const char *what)
{
    if (s3_perform(s3, r, what) < 0)
        return -1;
    if (r->status / 100 != 2) {
        s3_fail(s3, r, what);
        s3_req_clear(r);
        return -1;
    }
    return 0;
}

static int s3_stat(struct transport *t, const char *key, struct transport_stat *st)
{
    CLEANUP_FREE char *what = vk_asprintf("cannot stat '%s'", key);
    struct s3_req r = {.method = "HEAD", .key = key};

    if (!what || name_fits(t->priv, key, "stat") < 0 || simple(t->priv, &r, what) < 0)
        return -1;
    st->size = r.content_length;
    st->mtime = r.mtime;
    st->locked_until = r.locked_until;
    s3_req_clear(&r);
    return 0;
}

static ssize_t s3_get_range(struct transport *t, const char *key, uint64_t offset, void *buf,
                            size_t len)
{
    struct transport_stat st;

    if (len == 0) /* no empty ranges in HTTP: just check that it exists */
        return s3_stat(t, key, &st) < 0 ? -1 : 0;
    if (name_fits(t->priv, key, "read") < 0)
        return -1;
    return s3_ra_read(t->priv, key, offset, buf, len);
}

static int s3_remove(struct transport *t, const char *key)
{
    CLEANUP_FREE char *what = vk_asprintf("cannot delete '%s'", key);
    struct transport_stat st;
    struct s3_req r = {.method = "DELETE", .key = key};

    int ret = -1;

    /* DELETE answers 204 for a missing key too. */
    if (what && name_fits(t->priv, key, "delete") == 0 && s3_stat(t, key, &st) == 0 &&
        simple(t->priv, &r, what) == 0) {
        s3_req_clear(&r);
        ret = 0;
    }
    s3_ra_forget(t->priv, key); /* after: no window of the old object survives */
    return ret;
}

/* ------------------------------------------------------------------ */
/* Listing                                                             */

static char *list_query(const struct s3 *s3, const char *prefix, const char *token)
{
    CLEANUP_FREE char *full = vk_asprintf("%s%s", s3->prefix, prefix);
    CLEANUP_FREE char *p = full ? s3_uri_encode(full, false) : NULL;
    CLEANUP_FREE char *tok = token ? s3_uri_encode(token, false) : NULL;

    if (!p || (token && !tok))
        return NULL;
    /* Sorted by name: that is the canonical query SigV4 signs. */
    return vk_asprintf("%s%s%slist-type=2&max-keys=%u&prefix=%s", tok ? "continuation-token=" : "",
                       tok ? tok : "", tok ? "&" : "", s3->max_keys, p);
}

/* Pass one page's entries to CB; returns 0, a stop value, or -1. */
static int list_deliver(const struct s3 *s3, const struct s3_list_page *page, transport_list_cb cb,
                        void *opaque)
{
    size_t plen = strlen(s3->prefix);

    for (size_t i = 0; i < page->n; i++) {
        const struct s3_list_entry *e = &page->entries[i];
        struct transport_stat st = {.size = e->size, .mtime = e->mtime};
        int r;
        if (strncmp(e->key, s3->prefix, plen) != 0 || !e->key[plen] ||
            strstr(e->key + plen, ".vk-tmp-") || transport_key_valid(e->key + plen) < 0) {
            vk_error_clear();
            continue; /* not ours to show */
        }
        r = cb(opaque, e->key + plen, &st);
        if (r != 0)
            return r;
    }
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct s3_list_entry *)a)->key, ((const struct s3_list_entry *)b)->key);
}

static int list_page(struct s3 *s3, const char *prefix, char **token, struct s3_list_page *page)
{
    CLEANUP_FREE char *query = list_query(s3, prefix, *token);
    CLEANUP_FREE char *what = vk_asprintf("cannot list '%s'", prefix);
    struct s3_req r = {.method = "GET", .query = query};
    int ret;

    if (!query || !what || simple(s3, &r, what) < 0)
        return -1;
    ret = s3_xml_list(r.resp, r.resp_len, page);
    s3_req_clear(&r);
    if (ret < 0) {
        vk_error_prefix("%s", what);
        return -1;
    }
    /* S3 lists in byte order; some servers (s3rver) in directory order:
     * put each page in byte order at least. */
    if (page->n > 1) /* an empty page has no array: qsort(NULL, ...) is undefined */
        qsort(page->entries, page->n, sizeof page->entries[0], entry_cmp);
    free(*token);
    *token = VK_STEAL(page->next_token);
    return 0;
}

static int s3_list(struct transport *t, const char *prefix, transport_list_cb cb, void *opaque)
{
    struct s3 *s3 = t->priv;
    CLEANUP_FREE char *token = NULL;

    for (;;) {
        struct s3_list_page page;
        int r;
        if (list_page(s3, prefix, &token, &page) < 0)
            return -1;
        r = list_deliver(s3, &page, cb, opaque);
        if (r == 0 && page.truncated && !token) {
            vk_error(VK_ERR_CORRUPT, "cannot list '%s': a truncated page has no token", prefix);
            r = -1;
        }
        if (r != 0 || !page.truncated) {
            s3_list_page_clear(&page);
            return r;
        }
        s3_list_page_clear(&page);
    }
}

/* ------------------------------------------------------------------ */
/* Check and puts                                                      */

static int stop_cb(void *opaque, const char *key, const struct transport_stat *st)
{
    (void)opaque;
    (void)key;
    (void)st;
    return 1;
}

static int s3_check(struct transport *t)
{
    struct s3 *s3 = t->priv;
    CLEANUP_FREE char *probe = vk_asprintf("%s-%llx", CHECK_KEY, (unsigned long long)vk_now_ns());
    struct s3_req put = {.method = "PUT", .key = probe};
    struct s3_req del = {.method = "DELETE", .key = probe};

    if (!probe || s3_list(t, "", stop_cb, NULL) < 0)
        return -1;
    /* Writable?  A probe under a reserved name that listings never show. */
    if (simple(s3, &put, "cannot write to the bucket") < 0)
        return -1;
    s3_req_clear(&put);
    if (simple(s3, &del, "cannot delete from the bucket") < 0)
        return -1;
    s3_req_clear(&del);
    return 0;
}

/* A put handle remembers its key: the commit drops what the read-ahead
 * holds of it. */
struct put_op {
    struct s3_put *p;
    char *key;
};

static void *s3_put_begin_op(struct transport *t, const char *key, unsigned int flags)
{
    struct put_op *op;

    (void)flags;
    if (name_fits(t->priv, key, "put") < 0)
        return NULL;
    op = vk_calloc(1, sizeof *op);
    if (!op || !(op->key = vk_strdup(key)) || !(op->p = s3_put_begin(t->priv, key))) {
        if (op)
            free(op->key);
        free(op);
        return NULL;
    }
    return op;
}

static int s3_put_write_op(struct transport *t, void *handle, const void *buf, size_t len)
{
    struct put_op *op = handle;

    (void)t;
    return s3_put_write(op->p, buf, len);
}

static int s3_put_commit_op(struct transport *t, void *handle)
{
    struct put_op *op = handle;
    int r;

    s3_ra_forget(t->priv, op->key);
    r = s3_put_commit(op->p);
    /* Again: a read during the commit may have buffered the old object. */
    s3_ra_forget(t->priv, op->key);
    free(op->key);
    free(op);
    return r;
}

static void s3_put_abort_op(struct transport *t, void *handle)
{
    struct put_op *op = handle;

    (void)t;
    if (!op)
        return;
    s3_put_abort(op->p);
    free(op->key);
    free(op);
}

const struct transport_ops transport_s3 = {
    .scheme = "s3",
    .open = s3_open,
    .close = s3_close,
    .check = s3_check,
    .put_begin = s3_put_begin_op,
    .put_write = s3_put_write_op,
    .put_commit = s3_put_commit_op,
    .put_abort = s3_put_abort_op,
    .get_range = s3_get_range,
    .stat = s3_stat,
    .list = s3_list,
    .remove = s3_remove,
    .purge_temps = s3_purge_temps,
    .list_temps = s3_list_temps,
};
