/* virtkeep - signed S3 requests over libcurl: SigV4 through
 * CURLOPT_AWS_SIGV4, retries with exponential backoff and full jitter, and
 * the mapping of S3 errors to vk_error codes.
 *
 * curl 7.88 signs the path and the query exactly as given (it neither
 * re-encodes nor sorts), so URLs are built here in canonical form: keys
 * percent-encoded except '/', query parameters sorted, each as "name=value".
 * It also does not add x-amz-content-sha256, which S3 requires: it is sent
 * here and curl signs it.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/s3-int.h"

#define RESP_MAX (16u * 1024 * 1024) /* listings and error documents */
#define BACKOFF_CAP_MS 10000u

int s3_sign_setup(CURL *h, const char *sigv4, const struct s3_creds *creds,
                  const char *payload_hash, struct curl_slist **headers)
{
    CLEANUP_FREE char *hash = vk_asprintf("x-amz-content-sha256: %s", payload_hash);
    CLEANUP_FREE char *token = NULL;
    struct curl_slist *l;

    if (!hash)
        return -1;
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, creds->access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, creds->secret);
    if (!(l = curl_slist_append(*headers, hash)))
        return -1;
    *headers = l;
    if (creds->session_token) {
        if (!(token = vk_asprintf("x-amz-security-token: %s", creds->session_token)) ||
            !(l = curl_slist_append(*headers, token)))
            return -1;
        *headers = l;
    }
    return 0;
}

char *s3_uri_encode(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = vk_malloc(strlen(s) * 3 + 1), *o = out;

    if (!out)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~' || (keep_slash && *c == '/')) {
            *o++ = (char)*c;
        } else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------ */
/* Handles: one idle pool per target, so connections are reused.      */

static CURL *handle_get(struct s3 *s3)
{
    CURL *h = NULL;

    pthread_mutex_lock(&s3->pool_lock);
    if (s3->npool > 0)
        h = s3->pool[--s3->npool];
    pthread_mutex_unlock(&s3->pool_lock);
    if (h) {
        curl_easy_reset(h);
        return h;
    }
    if (!(h = curl_easy_init()))
        vk_error(VK_ERR_INTERNAL, "cannot create a curl handle");
    return h;
}

static void handle_put(struct s3 *s3, CURL *h)
{
    pthread_mutex_lock(&s3->pool_lock);
    if (s3->npool < VK_ARRAY_SIZE(s3->pool)) {
        s3->pool[s3->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s3->pool_lock);
    curl_easy_cleanup(h);
}

/* ------------------------------------------------------------------ */
/* Callbacks                                                           */

struct upload_src {
    const char *data;
    size_t len, pos;
};

static size_t read_cb(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    struct upload_src *src = opaque;
    size_t n = size * nmemb;

    if (n > src->len - src->pos)
        n = src->len - src->pos;
    memcpy(ptr, src->data + src->pos, n);
    src->pos += n;
    return n;
}

struct sink {
    struct s3_req *req;
    CURL *h;
    size_t cap;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    struct sink *s = opaque;
    struct s3_req *r = s->req;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    if (r->dst && status >= 200 && status < 300) {
        if (n > r->dst_cap - r->dst_len)
            return 0; /* more than asked for: curl reports a write error */
        memcpy(r->dst + r->dst_len, ptr, n);
        r->dst_len += n;
        return n;
    }
    if (r->resp_len + n + 1 > s->cap) {
        size_t want = s->cap ? s->cap * 2 : 4096;
        char *bigger;
        while (want < r->resp_len + n + 1)
            want *= 2;
        if (want > RESP_MAX || !(bigger = realloc(r->resp, want)))
            return 0;
        r->resp = bigger;
        s->cap = want;
    }
    memcpy(r->resp + r->resp_len, ptr, n);
    r->resp_len += n;
    r->resp[r->resp_len] = '\0';
    return n;
}

/* "Content-Range: bytes FIRST-LAST/TOTAL" with FIRST >= TOTAL: a range past
 * the end that a server (s3rver, for an empty object) answered with 206
 * instead of 416 and a body that never comes. */
static bool range_past_end(const char *line, size_t n)
{
    char buf[128];
    unsigned long long first, last, total;

    if (n < 14 || n >= sizeof buf || strncasecmp(line, "Content-Range:", 14) != 0)
        return false;
    memcpy(buf, line + 14, n - 14);
    buf[n - 14] = '\0';
    return sscanf(buf, " bytes %llu-%llu/%llu", &first, &last, &total) == 3 && first >= total;
}

/* " 2026-12-09T01:02:03[.000]Z" into seconds since the epoch, 0 if malformed. */
static int64_t iso_time_parse(const char *p, size_t n)
{
    char buf[64];
    struct tm tm;

    memset(&tm, 0, sizeof tm);
    if (n >= sizeof buf)
        return 0;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (sscanf(buf, " %d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    struct s3_req *r = opaque;
    size_t n = size * nmemb;

    if (range_past_end(ptr, n)) {
        r->past_end = true;
        return 0; /* stop here: there is nothing to read */
    }

    if (n > 36 && strncasecmp(ptr, "x-amz-object-lock-retain-until-date:", 36) == 0)
        r->locked_until = iso_time_parse(ptr + 36, n - 36);
    if (n > 5 && strncasecmp(ptr, "ETag:", 5) == 0) {
        const char *v = ptr + 5;
        size_t vlen = n - 5;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        if (vlen < sizeof r->etag) {
            memcpy(r->etag, v, vlen);
            r->etag[vlen] = '\0';
        }
    }
    return n;
}

/* Debug tracing: request and response header lines, never the credentials. */
static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *opaque)
{
    (void)h;
    (void)opaque;
    if (type != CURLINFO_HEADER_OUT && type != CURLINFO_HEADER_IN)
        return 0;
    for (size_t i = 0; i < size;) {
        size_t n = strcspn(data + i, "\r\n");
        if (n > size - i)
            n = size - i;
        if (n > 0) {
            bool secret = (n >= 14 && strncasecmp(data + i, "Authorization:", 14) == 0) ||
                          (n >= 21 && strncasecmp(data + i, "x-amz-security-token:", 21) == 0);
            if (secret)
                vk_log_emit(VK_LOG_DEBUG, "s3: %s %.*s: (hidden)",
                            type == CURLINFO_HEADER_OUT ? ">" : "<", (int)strcspn(data + i, ":"),
                            data + i);
            else
                vk_log_emit(VK_LOG_DEBUG, "s3: %s %.*s", type == CURLINFO_HEADER_OUT ? ">" : "<",
                            (int)n, data + i);
        }
        i += n;
        while (i < size && (data[i] == '\r' || data[i] == '\n'))
            i++;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* One attempt                                                         */

static char *req_url(const struct s3 *s3, const struct s3_req *r)
{
    CLEANUP_FREE char *full = r->key ? vk_asprintf("%s%s", s3->prefix, r->key) : vk_strdup("");
    CLEANUP_FREE char *path = full ? s3_uri_encode(full, true) : NULL;
    const char *q = r->query ? "?" : "", *qs = r->query ? r->query : "";
    const char *rest;

    if (!path)
        return NULL;
    if (!s3->virtual_host)
        return vk_asprintf("%s/%s/%s%s%s", s3->endpoint, s3->bucket, path, q, qs);
    rest = strstr(s3->endpoint, "://") + 3;
    return vk_asprintf("%.*s%s.%s/%s%s%s", (int)(rest - s3->endpoint), s3->endpoint, s3->bucket,
                       rest, path, q, qs);
}

/* The hex SHA-256 of the body: signed (x-amz-content-sha256), so the server
 * checks the bytes it received against it. */
static int body_hash(const struct s3_req *r, char sha[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const void *body = r->body ? r->body : "";

    if (EVP_Digest(body, r->body_len, md, &mdlen, EVP_sha256(), NULL) != 1)
        return -1;
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static int header_add(struct curl_slist **hdrs, const char *line)
{
    struct curl_slist *l = curl_slist_append(*hdrs, line);

    if (!l)
        return -1;
    *hdrs = l;
    return 0;
}

/* Object Lock: COMPLIANCE until r->lock_until; S3 wants the body's
 * Content-MD5 on such puts (and on their parts: content_md5). */
static int lock_headers(const struct s3_req *r, struct curl_slist **hdrs)
{
    char buf[128];

    snprintf(buf, sizeof buf, "x-amz-object-lock-retain-until-date: %s", r->lock_until);
    return header_add(hdrs, "x-amz-object-lock-mode: COMPLIANCE") < 0 || header_add(hdrs, buf) < 0
               ? -1
               : 0;
}

static int md5_header(const struct s3_req *r, struct curl_slist **hdrs)
{
    unsigned char md[EVP_MAX_MD_SIZE], b64[64];
    unsigned int mdlen = 0;
    char buf[96];

    if (EVP_Digest(r->body ? r->body : "", r->body_len, md, &mdlen, EVP_md5(), NULL) != 1)
        return -1;
    EVP_EncodeBlock(b64, md, (int)mdlen);
    snprintf(buf, sizeof buf, "Content-MD5: %s", (const char *)b64);
    return header_add(hdrs, buf);
}

static struct curl_slist *req_headers(const struct s3 *s3, CURL *h, const struct s3_req *r)
{
    struct curl_slist *hdrs = NULL, *l;
    char sha[65], buf[96];

    if (body_hash(r, sha) < 0 || s3_sign_setup(h, s3->sigv4, &s3->creds, sha, &hdrs) < 0)
        goto oom;
    if ((r->lock_until && lock_headers(r, &hdrs) < 0) ||
        (r->content_md5 && md5_header(r, &hdrs) < 0))
        goto oom;
    if (r->range_len > 0) {
        snprintf(buf, sizeof buf, "Range: bytes=%llu-%llu", (unsigned long long)r->range_off,
                 (unsigned long long)(r->range_off + r->range_len - 1));
        if (!(l = curl_slist_append(hdrs, buf)))
            goto oom;
        hdrs = l;
    }
    return hdrs;
oom:
    curl_slist_free_all(hdrs);
    vk_error(VK_ERR_INTERNAL, "out of memory preparing an S3 request");
    return NULL;
}

static void req_options(const struct s3 *s3, CURL *h, struct s3_req *r, struct upload_src *src,
                        struct sink *sink)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, s3->timeout);
    /* A stalled transfer fails within a minute even when the timeout is long;
     * except where the server works before it says anything (a complete of a
     * large multipart upload: s3rver concatenates the parts first, and S3
     * may take minutes), where only the timeout applies. */
    if (!r->slow_answer) {
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    }
    /* No "Expect: 100-continue" round trip before each part: curl sends
     * the header but the body right after it.  The header cannot be removed
     * with an empty "Expect:" in the list: curl 7.88 then signs an "expect"
     * header that it never sends, and a server that checks signatures
     * (radosgw, AWS) refuses every request with SignatureDoesNotMatch. */
    curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (s3->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s3->ca_file);
    curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    if (vk_log_level >= VK_LOG_DEBUG) {
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    }
    if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(h, CURLOPT_READDATA, src);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)src->len);
    }
    if (strcmp(r->method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "PUT") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
}

static CURLcode attempt(struct s3 *s3, CURL *h, struct s3_req *r, const char *url)
{
    struct upload_src src = {.data = r->body, .len = r->body_len};
    struct sink sink = {.req = r, .h = h};
    struct curl_slist *hdrs = req_headers(s3, h, r);
    curl_off_t clen = -1;
    long ftime = -1;
    CURLcode rc;

    if (!hdrs)
        return CURLE_OUT_OF_MEMORY;
    free(r->resp);
    r->resp = NULL;
    r->resp_len = r->dst_len = 0;
    r->etag[0] = '\0';
    r->status = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    req_options(s3, h, r, &src, &sink);
    r->past_end = false;
    rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK && r->past_end) {
        r->status = 416;
        return CURLE_OK;
    }
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
        curl_easy_getinfo(h, CURLINFO_FILETIME, &ftime);
        r->content_length = clen > 0 ? (uint64_t)clen : 0;
        r->mtime = ftime > 0 ? ftime : 0;
    }
    return rc;
}

/* 501 Not Implemented does not get better by asking again (s3rver has no
 * ListMultipartUploads). */
static bool retryable_status(long status)
{
    return status == 429 || (status >= 500 && status != 501);
}

static bool retryable_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* Full jitter: a random delay in [0, min(cap, base * 2^n)]. */
static void backoff(const struct s3 *s3, unsigned int n)
{
    unsigned long long ceil = s3->backoff_ms;
    unsigned int seed = (unsigned int)vk_now_ns();

    for (unsigned int i = 0; i < n && ceil < BACKOFF_CAP_MS; i++)
        ceil *= 2;
    if (ceil > BACKOFF_CAP_MS)
        ceil = BACKOFF_CAP_MS;
    usleep((useconds_t)((ceil / 2 + (unsigned long long)rand_r(&seed) % (ceil / 2 + 1)) * 1000));
}

int s3_perform(struct s3 *s3, struct s3_req *r, const char *what)
{
    CLEANUP_FREE char *url = req_url(s3, r);
    CURL *h;
    CURLcode rc = CURLE_OK;

    if (!url || !(h = handle_get(s3))) {
        vk_error(VK_ERR_INTERNAL, "%s: out of memory", what);
        return -1;
    }
    for (unsigned int n = 0; n < s3->attempts; n++) {
        bool refused;
        if (n > 0) {
            __atomic_add_fetch(&s3->retries, 1, __ATOMIC_RELAXED);
            backoff(s3, n - 1);
        }
        if (!h && !(h = handle_get(s3))) {
            rc = CURLE_OUT_OF_MEMORY;
            break;
        }
        rc = attempt(s3, h, r, url);
        /* A body sent with "Expect: 100-continue" that the server refused
         * may be left unread on the connection: radosgw answers an error at
         * once and then parses the body as the next request (a HEAD after a
         * refused PUT got 405).  Such a connection is closed, not reused. */
        refused = r->body_len > 0 && (rc != CURLE_OK || r->status / 100 != 2);
        if (refused) {
            curl_easy_cleanup(h);
            h = NULL;
        }
        if (rc == CURLE_OK && !retryable_status(r->status))
            break;
        vk_debug("s3: %s %s: %s (attempt %u of %u)", r->method, url,
                 rc == CURLE_OK ? "server error" : curl_easy_strerror(rc), n + 1, s3->attempts);
    }
    if (h)
        handle_put(s3, h);
    if (rc != CURLE_OK) {
        vk_error(retryable_curl(rc) || rc == CURLE_OUT_OF_MEMORY ? VK_ERR_NETWORK : VK_ERR_IO,
                 "%s: cannot reach the S3 endpoint '%s' (bucket '%s') after %u attempts: %s", what,
                 s3->endpoint, s3->bucket, s3->attempts, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

void s3_req_clear(struct s3_req *r)
{
    free(r->resp);
    r->resp = NULL;
    r->resp_len = 0;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static enum vk_error_code map_code(long status, const char *code)
{
    static const char *const auth[] = {
        "SignatureDoesNotMatch", "InvalidAccessKeyId",           "InvalidToken",   "ExpiredToken",
        "TokenRefreshRequired",  "AuthorizationHeaderMalformed", "InvalidSecurity"};
    static const char *const full[] = {"XMinioStorageFull", "QuotaExceeded",
                                       "XMinioAdminBucketQuotaExceeded", "InsufficientStorage"};

    for (size_t i = 0; i < VK_ARRAY_SIZE(auth); i++)
        if (strcmp(code, auth[i]) == 0)
            return VK_ERR_AUTH;
    for (size_t i = 0; i < VK_ARRAY_SIZE(full); i++)
        if (strcmp(code, full[i]) == 0)
            return VK_ERR_NO_SPACE;
    if (status == 507)
        return VK_ERR_NO_SPACE;
    if (status == 404)
        return VK_ERR_NOT_FOUND;
    if (status == 401)
        return VK_ERR_AUTH;
    if (status == 403)
        return VK_ERR_PERMISSION;
    if (status == 400 || status == 405 || status == 411 || status == 412 || status == 416)
        return VK_ERR_INVALID;
    return status >= 500 ? VK_ERR_NETWORK : VK_ERR_IO;
}

int s3_fail(const struct s3 *s3, const struct s3_req *r, const char *what)
{
    struct s3_error_info info;
    bool have = s3_xml_error(r->resp, r->resp_len, &info);
    enum vk_error_code code = map_code(r->status, have ? info.code : "");

    if (have && strcmp(info.code, "NoSuchBucket") == 0)
        vk_error(code, "%s: the bucket '%s' does not exist at '%s' (S3 error %s: %s)", what,
                 s3->bucket, s3->endpoint, info.code, info.message);
    else if (code == VK_ERR_NO_SPACE)
        vk_error(code, "%s: the target is full (S3 answered HTTP %ld %s: %s)", what, r->status,
                 have ? info.code : "", have ? info.message : "");
    else if (code == VK_ERR_NOT_FOUND && (!have || strcmp(info.code, "NoSuchKey") == 0))
        vk_error(code, "%s: the object does not exist%s%s", what, have ? " (NoSuchKey)" : "", "");
    else if (have)
        vk_error(code, "%s: S3 answered HTTP %ld %s: %s", what, r->status, info.code, info.message);
    else
        vk_error(code, "%s: S3 answered HTTP %ld", what, r->status);
    return -1;
}

int s3_perform_ok(struct s3 *s3, struct s3_req *r, const char *what)
{
    int ret = -1;

    if (s3_perform(s3, r, what) < 0)
        return -1;
    if (r->status / 100 != 2)
        s3_fail(s3, r, what);
    else
        ret = 0;
    s3_req_clear(r);
    return ret;
}
