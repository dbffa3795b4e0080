/* The s3:// backend against s3rver, through the fault-injecting proxy
 * (tests/lib/s3-fault-proxy.py), started by test-transport-s3.sh:
 *
 *   test-transport-s3               the contract suite, then S3's own tests
 *   test-transport-s3 kill PID      kill the server (PID) in the middle of a
 *                                   multipart upload: a clear error
 *   test-transport-s3 absent KEY    KEY is not on the (restarted) server
 *
 * Environment: VK_S3_ENDPOINT, VK_S3_PROXY, VK_S3_BUCKET, VK_S3_ACCESS_KEY,
 * VK_S3_SECRET_FILE, and VK_S3_FLAVOR: "s3rver" (the default) or "rgw"
 * (Ceph radosgw, tests/lib/rgw.sh).  The same tests run against both.
 *
 * "Unwritable" and "full" are faults of the proxy: neither server has a
 * quota, and s3rver enforces no bucket policy, so the proxy answers 403
 * AccessDenied to writes (what a read-only bucket policy gives) and 507
 * XMinioStorageFull to bodies over 64 KiB (what a full MinIO gives).
 * s3rver implements neither AbortMultipartUpload (405) nor
 * ListMultipartUploads (501) and checks no signature or payload digest:
 * there, that an abort was sent is checked in what the proxy saw.  radosgw
 * does all of it, so with it the tests also ask the server which uploads
 * are left (ListMultipartUploads), let the server refuse corrupted parts
 * (the proxy forwards them), and sign with a wrong secret.
 */
#include <config.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/log.h"
#include "tests/lib/transport-contract.h"
#include "transport/transport.h"

#define MiB (1024 * 1024)

static const char *endpoint, *proxy_ep, *bucket;
static struct transport_options opts;
static bool rgw;     /* the server is radosgw (VK_S3_FLAVOR=rgw) */
static char *secret; /* the secret key, to sign test requests and to look for in logs */

/* ------------------------------------------------------------------ */
/* The proxy                                                           */

static size_t grow_cb(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    char **buf = opaque;
    size_t old = *buf ? strlen(*buf) : 0, n = size * nmemb;
    char *bigger = realloc(*buf, old + n + 1);

    if (!bigger)
        return 0;
    memcpy(bigger + old, ptr, n);
    bigger[old + n] = '\0';
    *buf = bigger;
    return n;
}

/* GET PROXY/__proxy/WHAT; returns the answer (malloc'd). */
static char *proxy(const char *what)
{
    char url[512];
    char *body = NULL;
    CURL *h = curl_easy_init();

    snprintf(url, sizeof url, "%s/__proxy/%s", proxy_ep, what);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, grow_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    if (curl_easy_perform(h) != CURLE_OK)
        fail_msg("the proxy does not answer at %s", url);
    curl_easy_cleanup(h);
    return body ? body : strdup("");
}

static void proxy_set(const char *query)
{
    char what[256];

    snprintf(what, sizeof what, "set?%s", query);
    free(proxy(what));
}

static long proxy_stat(const char *name)
{
    char *s = proxy("stats"), *at, key[64];
    long v = -1;

    snprintf(key, sizeof key, "\n%s ", name);
    at = strstr(s, key + 1) == s ? s - 1 : strstr(s, key);
    if (at)
        v = strtol(at + strlen(key), NULL, 10);
    free(s);
    return v;
}

/* Lines of the proxy's log, since MARK, that contain all of A and B. */
static int log_count(size_t mark, const char *a, const char *b)
{
    char *log = proxy("log"), *line = log, *end;
    int n = 0;

    for (size_t i = 0; (end = strchr(line, '\n')) != NULL; line = end + 1, i++) {
        *end = '\0';
        if (i >= mark && strstr(line, a) && (!b || strstr(line, b)))
            n++;
    }
    free(log);
    return n;
}

static size_t log_mark(void)
{
    char *log = proxy("log");
    size_t n = 0;

    for (char *c = log; *c; c++)
        n += *c == '\n';
    free(log);
    return n;
}

/* The multipart uploads under PREFIX (of the bucket) that the proxy saw
 * begin and that the client neither completed nor aborted. */
static int proxy_uploads(const char *prefix)
{
    char *list = proxy("uploads"), *line = list, *end, path[512];
    int n = 0;

    snprintf(path, sizeof path, "/%s/%s", bucket, prefix);
    for (; (end = strchr(line, '\n')) != NULL; line = end + 1)
        n += strncmp(line, path, strlen(path)) == 0;
    free(list);
    return n;
}

/* A request to the server signed here with curl (not by the backend):
 * METHOD PATH_QUERY (in canonical form); returns the status, 0 when none
 * came, and the body in *BODY (malloc'd, or NULL). */
static long server_request(const char *method, const char *path_query, char **body)
{
    struct curl_slist *hdrs =
        curl_slist_append(NULL, "x-amz-content-sha256: "
                                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char url[2048];
    CURL *h = curl_easy_init();
    long status = 0;

    *body = NULL;
    snprintf(url, sizeof url, "%s/%s%s", endpoint, bucket, path_query);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(h, CURLOPT_USERNAME, opts.access_key_id);
    curl_easy_setopt(h, CURLOPT_PASSWORD, secret);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, grow_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return status;
}

/* What the server says: ListMultipartUploads of PREFIX; the number of
 * uploads it lists, or -1.  With ABORT, each is aborted too. */
static int server_uploads_do(const char *prefix, bool abort)
{
    char q[1024], *body, *enc = curl_easy_escape(NULL, prefix, 0);
    long status;
    int n = 0;

    /* Sorted "name=value" pairs: what curl 7.88 signs as given. */
    snprintf(q, sizeof q, "?prefix=%s&uploads=", enc);
    curl_free(enc);
    status = server_request("GET", q, &body);
    if (status != 200 || !body || !strstr(body, "<ListMultipartUploadsResult")) {
        print_message("ListMultipartUploads %s: HTTP %ld: %s\n", q, status, body ? body : "");
        free(body);
        return -1;
    }
    for (const char *at = body; (at = strstr(at, "<Upload>")) != NULL; at++) {
        const char *k = strstr(at, "<Key>"), *u = strstr(at, "<UploadId>");
        char *key, *kenc, *uenc, *answer;
        n++;
        if (!abort || !k || !u)
            continue;
        k += 5;
        u += 10;
        key = strndup(k, strcspn(k, "<"));
        kenc = curl_easy_escape(NULL, key, 0);
        for (char *c = strstr(kenc, "%2F"); c; c = strstr(c, "%2F")) { /* keep '/' */
            *c = '/';
            memmove(c + 1, c + 3, strlen(c + 3) + 1);
        }
        uenc = curl_easy_escape(NULL, u, (int)strcspn(u, "<"));
        snprintf(q, sizeof q, "/%s?uploadId=%s", kenc, uenc);
        status = server_request("DELETE", q, &answer);
        if (status / 100 != 2)
            print_message("AbortMultipartUpload %s: HTTP %ld\n", q, status);
        free(answer);
        free(key);
        curl_free(kenc);
        curl_free(uenc);
    }
    free(body);
    return n;
}

static int server_uploads(const char *prefix)
{
    return server_uploads_do(prefix, false);
}

/* Uploads left under PREFIX: none that the client did not end (the proxy),
 * and with radosgw, none that the server still keeps. */
static int uploads_left(const char *prefix)
{
    int n = proxy_uploads(prefix), m;

    if (!rgw)
        return n;
    m = server_uploads(prefix);
    return m < 0 ? -1 : n + m;
}

/* ------------------------------------------------------------------ */
/* Contract hooks                                                      */

static int hook_leftovers(void *opaque, unsigned int *count)
{
    int n = uploads_left("contract/");

    (void)opaque;
    if (n < 0)
        return -1;
    *count = (unsigned int)n;
    return 0;
}

static int hook_unwritable(void *opaque)
{
    (void)opaque;
    proxy_set("mode=readonly");
    return 0;
}

static int hook_full(void *opaque)
{
    (void)opaque;
    proxy_set("mode=full");
    return 0;
}

static int hook_restore(void *opaque)
{
    (void)opaque;
    proxy_set("mode=pass");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static struct transport *open_url(const char *ep, const char *prefix, const char *extra,
                                  const struct transport_options *o)
{
    char url[1024];
    struct transport *t;

    snprintf(url, sizeof url, "s3://%s/%s?endpoint=%s&backoff_ms=20%s%s", bucket, prefix, ep,
             extra ? "&" : "", extra ? extra : "");
    t = transport_open("s3test", url, o);
    if (!t)
        fail_msg("cannot open %s: %s", url, vk_error_message());
    return t;
}

static uint8_t byte_at(uint64_t pos, unsigned int seed)
{
    uint64_t x = (pos + 1) * 0x9E3779B97F4A7C15ULL ^ seed;

    return (uint8_t)(x >> 29 ^ x >> 7);
}

/* Put SIZE bytes in writes of 1..8191 bytes; returns the commit's result. */
static int put_stream(struct transport *t, const char *key, size_t size, unsigned int seed)
{
    struct transport_writer *w = transport_put_begin(t, key, 0);
    static uint8_t buf[8192];
    size_t done = 0;

    if (!w)
        return -1;
    for (unsigned int i = 0; done < size; i++) {
        size_t n = 1 + (i * 7919u) % 8191;
        if (n > size - done)
            n = size - done;
        for (size_t j = 0; j < n; j++)
            buf[j] = byte_at(done + j, seed);
        if (transport_writer_write(w, buf, n) < 0) {
            transport_writer_abort(w);
            return -1;
        }
        done += n;
    }
    return transport_writer_commit(w);
}

static void assert_content(struct transport *t, const char *key, size_t size, unsigned int seed)
{
    uint8_t *buf = malloc(4 * MiB);
    struct transport_stat st;

    assert_non_null(buf);
    if (transport_stat(t, key, &st) < 0)
        fail_msg("stat '%s': %s", key, vk_error_message());
    assert_int_equal(st.size, size);
    for (size_t off = 0; off < size; off += 4 * MiB) {
        ssize_t r = transport_get_range(t, key, off, buf, 4 * MiB);
        size_t want = size - off < 4 * MiB ? size - off : 4 * MiB;
        if (r < 0)
            fail_msg("read '%s': %s", key, vk_error_message());
        assert_int_equal(r, want);
        for (size_t j = 0; j < want; j++)
            if (buf[j] != byte_at(off + j, seed))
                fail_msg("'%s': byte %zu differs", key, off + j);
    }
    free(buf);
}

static void assert_absent(struct transport *t, const char *key)
{
    struct transport_stat st;

    assert_int_equal(transport_stat(t, key, &st), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
}

static int any_cb(void *opaque, const char *key, const struct transport_stat *st)
{
    (void)key;
    (void)st;
    (*(int *)opaque)++;
    return 0;
}

static int s3_teardown(void **state)
{
    (void)state;
    proxy_set("mode=pass");
    vk_error_clear();
    return 0;
}

/* ------------------------------------------------------------------ */
/* S3's own tests                                                      */

static void test_multipart_parallel(void **state)
{
    struct transport *t = open_url(proxy_ep, "mp", "part_size=5MiB&parallel=4", &opts);
    size_t mark = log_mark();
    long checked = proxy_stat("sha_checked"), bad = proxy_stat("sha_mismatch");

    (void)state;
    if (put_stream(t, "big/40MiB", 40 * MiB, 1) < 0)
        fail_msg("multipart put: %s", vk_error_message());
    /* Every part carried its SHA-256 (x-amz-content-sha256), and it matched. */
    assert_true(proxy_stat("sha_checked") - checked >= 8);
    assert_int_equal(proxy_stat("sha_mismatch"), bad);
    assert_int_equal(log_count(mark, "POST /", "?uploads="), 1);
    assert_int_equal(log_count(mark, "PUT /", "partNumber="), 8);
    assert_int_equal(log_count(mark, "POST /", "?uploadId="), 1);
    assert_true(proxy_stat("inflight_max") >= 2); /* parts went up in parallel */
    assert_content(t, "big/40MiB", 40 * MiB, 1);
    assert_int_equal(transport_delete(t, "big/40MiB"), 0);
    transport_close(t);
}

static void test_small_is_single_put(void **state)
{
    struct transport *t = open_url(proxy_ep, "mp", "part_size=5MiB", &opts);
    size_t mark = log_mark();

    (void)state;
    assert_int_equal(put_stream(t, "small", 5 * MiB - 1, 2), 0);
    assert_int_equal(log_count(mark, "?uploads", NULL), 0);
    assert_int_equal(log_count(mark, "PUT /", "/mp/small 200"), 1);
    assert_content(t, "small", 5 * MiB - 1, 2);
    assert_int_equal(transport_delete(t, "small"), 0);
    transport_close(t);
}

static void test_abort(void **state)
{
    struct transport *t = open_url(proxy_ep, "ab", "part_size=5MiB", &opts);
    struct transport_writer *w = transport_put_begin(t, "aborted", 0);
    static uint8_t buf[MiB];
    size_t mark = log_mark();
    int n = 0;

    (void)state;
    assert_non_null(w);
    for (int i = 0; i < 12; i++)
        assert_int_equal(transport_writer_write(w, buf, sizeof buf), 0);
    assert_absent(t, "aborted");
    transport_writer_abort(w);
    assert_absent(t, "aborted");
    assert_int_equal(log_count(mark, "PUT /", "partNumber="), 2);
    assert_int_equal(log_count(mark, "DELETE /", "/ab/aborted?uploadId="), 1);
    assert_int_equal(log_count(mark, "POST /", "?uploadId="), 0); /* never completed */
    assert_int_equal(transport_list(t, "", any_cb, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(uploads_left("ab/"), 0);
    transport_close(t);
}

/* The puts in flight under a directory, purged.  s3rver has no
 * ListMultipartUploads (501 NotImplemented): purging and listing find
 * nothing, succeed, and ask once (a 501 is not retried).  radosgw lists the
 * upload in flight, and the purge aborts it. */
static void test_purge_not_implemented(void **state)
{
    struct transport *t = open_url(proxy_ep, "pg", "part_size=5MiB", &opts);
    struct transport_writer *w = transport_put_begin(t, "dom/b1/vda.tar", 0);
    static uint8_t buf[MiB];
    unsigned int removed = 7;
    size_t mark;
    int n = 0;

    (void)state;
    assert_non_null(w);
    for (int i = 0; i < 6; i++) /* one part up: the upload exists */
        assert_int_equal(transport_writer_write(w, buf, sizeof buf), 0);
    if (rgw) {
        assert_int_equal(transport_purge_temps(t, "dom/b1", &removed), 0);
        assert_int_equal(removed, 1);
        assert_int_equal(transport_list_temps(t, "dom/", any_cb, &n), 0);
        assert_int_equal(n, 0);
        transport_writer_abort(w);
        transport_close(t);
        return;
    }
    mark = log_mark();
    assert_int_equal(transport_purge_temps(t, "dom/b1", &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(transport_list_temps(t, "dom/", any_cb, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(log_count(mark, "GET /", "uploads="), 2);
    transport_writer_abort(w);
    transport_close(t);
}

static void test_wrong_credentials(void **state)
{
    struct transport_options bad = opts;
    struct transport *t;
    int n = 0;

    (void)state;
    bad.access_key_id = "NOT-A-KEY";
    t = open_url(endpoint, "auth", NULL, &bad);
    assert_int_equal(transport_put(t, "x", "data", 4), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_non_null(strstr(vk_error_message(), "InvalidAccessKeyId"));
    assert_non_null(strstr(vk_error_message(), "'x'"));
    assert_int_equal(put_stream(t, "big", 12 * MiB, 3), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_int_equal(transport_list(t, "", any_cb, &n), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_int_equal(transport_check(t), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    transport_close(t);
}

static void test_missing_bucket(void **state)
{
    char url[512];
    struct transport *t;
    struct transport_stat st;

    (void)state;
    snprintf(url, sizeof url, "s3://no-such-bucket-vk/p?endpoint=%s", endpoint);
    t = transport_open("nob", url, &opts);
    assert_non_null(t);
    assert_int_equal(transport_put(t, "x", "1", 1), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_non_null(strstr(vk_error_message(), "no-such-bucket-vk"));
    assert_int_equal(transport_stat(t, "x", &st), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    transport_close(t);
}

static void test_503_burst(void **state)
{
    struct transport *t = open_url(proxy_ep, "busy", "part_size=5MiB", &opts);
    uint8_t buf[16];
    long before = proxy_stat("503");

    (void)state;
    proxy_set("mode=fail503&n=4");
    assert_int_equal(transport_put(t, "one", "0123456789", 10), 0);
    assert_int_equal(proxy_stat("503") - before, 4);
    /* Parts: each retried with its buffered data. */
    proxy_set("mode=fail503&n=5&match=partNumber");
    if (put_stream(t, "parts", 16 * MiB, 4) < 0)
        fail_msg("put under 503s: %s", vk_error_message());
    assert_int_equal(proxy_stat("503") - before, 9);
    proxy_set("mode=fail503&n=3&match=GET");
    assert_int_equal(transport_get_range(t, "one", 2, buf, 4), 4);
    assert_memory_equal(buf, "2345", 4);
    assert_int_equal(proxy_stat("503") - before, 12);
    proxy_set("mode=pass");
    assert_content(t, "parts", 16 * MiB, 4);
    /* A burst longer than the attempts: a clear error, no object. */
    proxy_set("mode=fail503&n=100");
    assert_int_equal(transport_put(t, "never", "x", 1), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(vk_error_message(), "SlowDown"));
    proxy_set("mode=pass");
    assert_absent(t, "never");
    transport_close(t);
}

static void test_reset_mid_part(void **state)
{
    struct transport *t = open_url(proxy_ep, "rst", "part_size=5MiB&attempts=3", &opts);
    size_t mark;

    (void)state;
    /* Two resets: the parts are sent again and the object is whole. */
    proxy_set("mode=reset&n=2&match=partNumber");
    if (put_stream(t, "ok", 12 * MiB, 5) < 0)
        fail_msg("put with resets: %s", vk_error_message());
    assert_int_equal(proxy_stat("resets") >= 2, 1);
    assert_content(t, "ok", 12 * MiB, 5);
    /* Every try reset: the put fails clearly, aborts, leaves nothing. */
    mark = log_mark();
    proxy_set("mode=reset&n=1000&match=partNumber");
    assert_int_equal(put_stream(t, "broken", 12 * MiB, 6), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(vk_error_message(), proxy_ep));
    assert_non_null(strstr(vk_error_message(), "'broken'"));
    proxy_set("mode=pass");
    assert_absent(t, "broken");
    assert_int_equal(log_count(mark, "DELETE /", "/rst/broken?uploadId="), 1);
    assert_int_equal(uploads_left("rst/"), 0);
    transport_close(t);
}

/* A part corrupted in transit fails its checksum at the server (radosgw,
 * as AWS does; for s3rver the proxy checks): the put fails naming the key,
 * the upload is aborted and nothing is visible. */
static void test_part_corrupted(void **state)
{
    struct transport *t = open_url(proxy_ep, "bad", "part_size=5MiB&attempts=3", &opts);
    long bad = proxy_stat("sha_mismatch"), refused = proxy_stat("400");
    size_t mark = log_mark();

    (void)state;
    proxy_set("mode=corrupt&n=1&match=partNumber=2");
    assert_int_equal(put_stream(t, "torn", 12 * MiB, 7), -1);
    assert_non_null(strstr(vk_error_message(), "'torn'"));
    assert_non_null(strstr(vk_error_message(), "XAmzContentSHA256Mismatch"));
    assert_int_equal(proxy_stat("sha_mismatch") - bad, 1);
    if (rgw) /* the server refused it, not the proxy */
        assert_int_equal(proxy_stat("400"), refused);
    proxy_set("mode=pass");
    assert_absent(t, "torn");
    assert_int_equal(log_count(mark, "DELETE /", "/bad/torn?uploadId="), 1);
    assert_int_equal(uploads_left("bad/"), 0);
    transport_close(t);
}

/* radosgw checks signatures: the right key id with a wrong secret is
 * refused (403 SignatureDoesNotMatch, an authentication error), for single
 * puts, multipart puts, listings and the check; no upload is left. */
static void test_wrong_secret(void **state)
{
    char path[] = "/tmp/vk-s3-secret-XXXXXX";
    int fd = mkstemp(path);
    struct transport_options bad = opts;
    struct transport *t;
    int n = 0;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not-the-secret", 14), 14);
    close(fd);
    bad.secret_key_file = path;
    t = open_url(endpoint, "sig", "part_size=5MiB", &bad);
    assert_int_equal(transport_put(t, "x", "data", 4), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_non_null(strstr(vk_error_message(), "SignatureDoesNotMatch"));
    assert_int_equal(put_stream(t, "big", 12 * MiB, 3), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_int_equal(transport_list(t, "", any_cb, &n), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_int_equal(transport_check(t), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    transport_close(t);
    unlink(path);
    assert_int_equal(server_uploads("sig/"), 0);
}

/* The client dies in the middle of a multipart upload (parts sent, never
 * completed nor aborted): nothing is visible under the key.  radosgw keeps
 * the orphan upload (a bucket lifecycle rule, AbortIncompleteMultipartUpload,
 * is what removes such uploads); listing it proves the parts were sent. */
static void test_client_killed(void **state)
{
    struct transport *t;
    int status;
    pid_t pid;

    (void)state;
    if (rgw) /* orphans of an earlier run */
        assert_true(server_uploads_do("killed/", true) >= 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* no cmocka here: a failure must not run on in the child */
        static uint8_t buf[MiB];
        char url[1024];
        struct transport *ct;
        struct transport_writer *w;
        snprintf(url, sizeof url, "s3://%s/killed?endpoint=%s&part_size=5MiB&parallel=1", bucket,
                 endpoint);
        if (!(ct = transport_open("killed", url, &opts)) ||
            !(w = transport_put_begin(ct, "victim", 0)))
            _exit(3);
        /* With one part in flight, the write that fills part 2 waits until
         * part 1 is on the server. */
        for (int i = 0; i < 11; i++)
            if (transport_writer_write(w, buf, sizeof buf) < 0)
                _exit(2);
        _exit(0); /* killed: neither committed nor aborted */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    t = open_url(endpoint, "killed", NULL, &opts);
    assert_absent(t, "victim");
    {
        int n = 0;
        assert_int_equal(transport_list(t, "", any_cb, &n), 0);
        assert_int_equal(n, 0);
    }
    if (rgw) {
        assert_int_equal(server_uploads("killed/victim"), 1);
        assert_int_equal(server_uploads_do("killed/", true), 1);
        assert_int_equal(server_uploads("killed/"), 0);
    }
    transport_close(t);
}

static void test_slow_link(void **state)
{
    struct transport *t = open_url(proxy_ep, "slow", "part_size=5MiB", &opts);
    long before = proxy_stat("slowed");

    (void)state;
    proxy_set("mode=slow&delay_ms=15");
    if (put_stream(t, "obj", 11 * MiB, 7) < 0)
        fail_msg("put on a slow link: %s", vk_error_message());
    assert_content(t, "obj", 11 * MiB, 7);
    assert_true(proxy_stat("slowed") - before >= 4);
    transport_close(t);
}

static int count_cb(void *opaque, const char *key, const struct transport_stat *st)
{
    char **last = opaque;

    (void)st;
    if (*last && strcmp(*last, key) >= 0)
        fail_msg("'%s' listed after '%s'", key, *last);
    free(*last);
    *last = strdup(key);
    return 0;
}

static void test_pagination(void **state)
{
    struct transport *t = open_url(proxy_ep, "pages", "max_keys=7", &opts);
    char key[32], *last = NULL;
    size_t mark;

    (void)state;
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "k%03d", (i * 17) % 30);
        assert_int_equal(transport_put(t, key, key, strlen(key)), 0);
    }
    mark = log_mark();
    assert_int_equal(transport_list(t, "", count_cb, &last), 0);
    assert_string_equal(last, "k029");
    free(last);
    assert_int_equal(log_count(mark, "list-type=2", NULL), 5);
    assert_int_equal(log_count(mark, "continuation-token=", NULL), 4);
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        assert_int_equal(transport_delete(t, key), 0);
    }
    transport_close(t);
}

/* Debug logging shows the requests but never the credentials. */
static void test_debug_hides_secrets(void **state)
{
    struct transport *t = open_url(endpoint, "dbg", NULL, &opts);
    char path[] = "/tmp/vk-s3-debug-XXXXXX", buf[65536];
    int fd = mkstemp(path), saved = dup(2);
    ssize_t n;

    (void)state;
    assert_true(fd >= 0);
    fflush(stderr);
    dup2(fd, 2);
    vk_log_set_level(VK_LOG_DEBUG);
    assert_int_equal(transport_put(t, "secretive", "abc", 3), 0);
    vk_log_set_level(VK_LOG_WARN);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    n = pread(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    close(fd);
    unlink(path);
    assert_non_null(strstr(buf, "PUT /"));
    assert_non_null(strstr(buf, "Authorization: (hidden)"));
    assert_null(strstr(buf, "Signature="));
    assert_null(strstr(buf, secret));
    assert_int_equal(transport_delete(t, "secretive"), 0);
    transport_close(t);
}

/* ------------------------------------------------------------------ */
/* Read-ahead (transport/s3-read.c)                                    */

#define RA_SIZE (64 * MiB + 12345)

/* Read KEY from 0 to its end in BLOCK-byte ranges, checking every byte;
 * returns the number of GETs the proxy saw for it. */
static int read_sequential(struct transport *t, const char *key, size_t size, size_t block,
                           unsigned int seed)
{
    uint8_t *buf = malloc(block);
    size_t mark = log_mark(), off = 0;
    char path[128];

    assert_non_null(buf);
    for (;;) {
        ssize_t r = transport_get_range(t, key, off, buf, block);
        size_t want = size - off < block ? size - off : block;
        if (r < 0)
            fail_msg("read '%s' at %zu: %s", key, off, vk_error_message());
        assert_int_equal(r, want);
        for (size_t j = 0; j < want; j++)
            if (buf[j] != byte_at(off + j, seed))
                fail_msg("'%s': byte %zu differs", key, off + j);
        off += want;
        if (want < block)
            break;
    }
    free(buf);
    snprintf(path, sizeof path, "/%s ", key);
    return log_count(mark, "GET /", path);
}

static void test_readahead_sequential(void **state)
{
    struct transport *plain = open_url(proxy_ep, "ra", "readahead=0", &opts);
    struct transport *t = open_url(proxy_ep, "ra", NULL, &opts);
    int without, with;

    (void)state;
    if (put_stream(t, "seq", RA_SIZE, 11) < 0)
        fail_msg("put: %s", vk_error_message());
    /* 8 MiB ranges, as copy and the benchmark read: one GET each without
     * read-ahead; with it, windows of 16, 32 and 64 MiB after two reads. */
    without = read_sequential(plain, "seq", RA_SIZE, 8 * MiB, 11);
    assert_int_equal(without, 9);
    with = read_sequential(t, "seq", RA_SIZE, 8 * MiB, 11);
    assert_true(with < without);
    assert_int_equal(with, 5);
    /* Small reads (restore's frames): a few windows, not 2,000 GETs. */
    with = read_sequential(t, "seq", RA_SIZE, 32 * 1024 + 7, 11);
    assert_true(with <= 6);
    transport_close(plain);
    transport_close(t);
}

/* Random reads, jumps back and forth around windows, reads across the end:
 * every byte as written, every length as the contract says. */
static void test_readahead_random(void **state)
{
    struct transport *t = open_url(proxy_ep, "ra", NULL, &opts);
    uint8_t *buf = malloc(9 * MiB);
    unsigned int seed = 12345;

    (void)state;
    assert_non_null(buf);
    for (int i = 0; i < 60; i++) {
        uint64_t off;
        size_t len;
        ssize_t r, want;
        if (i % 3 == 2) { /* a sequential run after a random start */
            off = (uint64_t)rand_r(&seed) % RA_SIZE;
            for (int k = 0; k < 4; k++) {
                len = 1 + (size_t)rand_r(&seed) % (3 * MiB);
                r = transport_get_range(t, "seq", off, buf, len);
                want = (ssize_t)(off >= RA_SIZE ? 0 : RA_SIZE - off < len ? RA_SIZE - off : len);
                assert_int_equal(r, want);
                for (ssize_t j = 0; j < r; j++)
                    if (buf[j] != byte_at(off + (uint64_t)j, 11))
                        fail_msg("byte %llu differs", (unsigned long long)off + (uint64_t)j);
                off += len;
            }
            continue;
        }
        off = (uint64_t)rand_r(&seed) % (RA_SIZE + 2 * MiB);
        len = 1 + (size_t)rand_r(&seed) % (9 * MiB);
        r = transport_get_range(t, "seq", off, buf, len);
        want = (ssize_t)(off >= RA_SIZE ? 0 : RA_SIZE - off < len ? RA_SIZE - off : len);
        assert_int_equal(r, want);
        for (ssize_t j = 0; j < r; j++)
            if (buf[j] != byte_at(off + (uint64_t)j, 11))
                fail_msg("byte %llu differs", (unsigned long long)off + (uint64_t)j);
    }
    assert_int_equal(transport_get_range(t, "seq", RA_SIZE, buf, 10), 0);
    assert_int_equal(transport_get_range(t, "seq", RA_SIZE - 1, buf, 10), 1);
    free(buf);
    transport_close(t);
}

/* Is BUF the LEN bytes at OFF of the object written with SEED? */
static void assert_bytes(const uint8_t *buf, uint64_t off, size_t len, unsigned int seed)
{
    for (size_t j = 0; j < len; j++)
        if (buf[j] != byte_at(off + j, seed))
            fail_msg("byte %llu differs (seed %u)", (unsigned long long)(off + j), seed);
}

/* A put or delete through the transport drops what it buffered. */
static void test_readahead_invalidate(void **state)
{
    struct transport *t = open_url(proxy_ep, "ra", NULL, &opts);
    uint8_t *buf = malloc(4 * MiB);

    (void)state;
    assert_non_null(buf);
    assert_int_equal(put_stream(t, "inv", 24 * MiB, 21), 0);
    /* The second read is sequential: it fetches [4 MiB, 12 MiB). */
    assert_int_equal(transport_get_range(t, "inv", 0, buf, 4 * MiB), 4 * MiB);
    assert_int_equal(transport_get_range(t, "inv", 4 * MiB, buf, 4 * MiB), 4 * MiB);
    assert_bytes(buf, 4 * MiB, 4 * MiB, 21);
    assert_int_equal(put_stream(t, "inv", 20 * MiB, 22), 0);
    for (size_t off = 8 * MiB; off < 20 * MiB; off += 4 * MiB) {
        assert_int_equal(transport_get_range(t, "inv", off, buf, 4 * MiB), 4 * MiB);
        assert_bytes(buf, off, 4 * MiB, 22);
    }
    assert_int_equal(transport_get_range(t, "inv", 20 * MiB, buf, 4 * MiB), 0);
    /* Buffer [4 MiB, 12 MiB) again, then delete. */
    assert_int_equal(transport_get_range(t, "inv", 0, buf, 4 * MiB), 4 * MiB);
    assert_int_equal(transport_get_range(t, "inv", 4 * MiB, buf, 4 * MiB), 4 * MiB);
    assert_int_equal(transport_delete(t, "inv"), 0);
    assert_int_equal(transport_get_range(t, "inv", 8 * MiB, buf, 4 * MiB), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    free(buf);
    transport_close(t);
}

struct ra_thread {
    struct transport *t;
    const char *key;
    size_t size, block;
    unsigned int seed;
    int bad;
};

static void *ra_thread_main(void *opaque)
{
    struct ra_thread *a = opaque;
    uint8_t *buf = malloc(a->block);

    for (size_t off = 0; buf && off < a->size; off += a->block) {
        size_t want = a->size - off < a->block ? a->size - off : a->block;
        ssize_t r = transport_get_range(a->t, a->key, off, buf, a->block);
        if (r != (ssize_t)want) {
            a->bad++;
            break;
        }
        for (size_t j = 0; j < want; j++)
            a->bad += buf[j] != byte_at(off + j, a->seed);
    }
    free(buf);
    return NULL;
}

/* Threads reading the same and other objects at once through one
 * transport (more streams than slots): every byte right. */
static void test_readahead_threads(void **state)
{
    struct transport *t = open_url(proxy_ep, "ra", NULL, &opts);
    struct ra_thread a[5];
    pthread_t th[5];

    (void)state;
    assert_int_equal(put_stream(t, "thr", 20 * MiB + 3, 31), 0);
    for (int i = 0; i < 5; i++) {
        bool other = i >= 3;
        a[i] = (struct ra_thread){.t = t,
                                  .key = other ? "seq" : "thr",
                                  .size = other ? RA_SIZE : 20 * MiB + 3,
                                  .block = (size_t)(i + 1) * 1000 * 1000,
                                  .seed = other ? 11 : 31};
        assert_int_equal(pthread_create(&th[i], NULL, ra_thread_main, &a[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].bad, 0);
    }
    assert_int_equal(transport_delete(t, "thr"), 0);
    assert_int_equal(transport_delete(t, "seq"), 0);
    transport_close(t);
}

static int specific_run(void)
{
#define T(f) cmocka_unit_test_teardown(f, s3_teardown)
    const struct CMUnitTest tests[] = {
        T(test_multipart_parallel),
        T(test_small_is_single_put),
        T(test_abort),
        T(test_purge_not_implemented),
        T(test_wrong_credentials),
        T(test_missing_bucket),
        T(test_503_burst),
        T(test_reset_mid_part),
        T(test_slow_link),
        T(test_pagination),
        T(test_debug_hides_secrets),
        T(test_part_corrupted),
        T(test_readahead_sequential),
        T(test_readahead_random),
        T(test_readahead_invalidate),
        T(test_readahead_threads),
        T(test_client_killed),
    };
    const struct CMUnitTest rgw_tests[] = {
        T(test_wrong_secret),
    };
#undef T
    int failed = cmocka_run_group_tests_name("transport-s3", tests, NULL, NULL);

    if (rgw)
        failed += cmocka_run_group_tests_name("transport-s3-rgw", rgw_tests, NULL, NULL);
    return failed;
}

/* ------------------------------------------------------------------ */
/* The server killed in the middle of an upload                        */

static int run_kill(pid_t pid)
{
    struct transport *t = open_url(endpoint, "kill", "part_size=5MiB&attempts=3", &opts);
    struct transport_writer *w = transport_put_begin(t, "victim", 0);
    static uint8_t buf[MiB];
    int failed_at = -1;

    if (!w)
        return 1;
    for (int i = 0; i < 40 && failed_at < 0; i++) {
        if (i == 16 && kill(pid, SIGKILL) < 0) {
            perror("kill");
            return 1;
        }
        if (transport_writer_write(w, buf, sizeof buf) < 0)
            failed_at = i;
    }
    if (failed_at < 0 && transport_writer_commit(w) == 0) {
        fprintf(stderr, "the put succeeded with the server killed\n");
        return 1;
    }
    if (failed_at >= 0)
        transport_writer_abort(w);
    printf("error after the kill: %s\n", vk_error_message());
    if (vk_error_code() != VK_ERR_NETWORK || !strstr(vk_error_message(), endpoint) ||
        !strstr(vk_error_message(), "victim")) {
        fprintf(stderr, "not the expected clear network error\n");
        return 1;
    }
    transport_close(t);
    return 0;
}

static int run_absent(const char *key)
{
    struct transport *t = open_url(endpoint, "kill", NULL, &opts);
    struct transport_stat st;
    int r = transport_stat(t, key, &st) == -1 && vk_error_code() == VK_ERR_NOT_FOUND ? 0 : 1;

    if (r)
        fprintf(stderr, "'%s' is on the server after the kill\n", key);
    transport_close(t);
    return r;
}

static char *read_secret(const char *file)
{
    char buf[256];
    FILE *f = fopen(file, "r");
    size_t n;

    if (!f) {
        perror(file);
        return NULL;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return strdup(buf);
}

int main(int argc, char **argv)
{
    static struct contract_fixture fx = {
        .name = "contract",
        .make_unwritable = hook_unwritable,
        .make_full = hook_full,
        .restore = hook_restore,
        .leftovers = hook_leftovers,
        .full_put_bytes = 12 * MiB,               /* a multipart upload */
        .key_max = 1024 - sizeof "contract/" + 1, /* S3's limit with the prefix */
    };
    char url[1024];
    int failed;

    endpoint = getenv("VK_S3_ENDPOINT");
    proxy_ep = getenv("VK_S3_PROXY");
    bucket = getenv("VK_S3_BUCKET");
    opts.access_key_id = getenv("VK_S3_ACCESS_KEY");
    opts.secret_key_file = getenv("VK_S3_SECRET_FILE");
    rgw = getenv("VK_S3_FLAVOR") && strcmp(getenv("VK_S3_FLAVOR"), "rgw") == 0;
    if (!endpoint || !proxy_ep || !bucket || !opts.access_key_id || !opts.secret_key_file) {
        fprintf(stderr, "test-transport-s3: run it through test-transport-s3.sh\n");
        return 77;
    }
    if (!(secret = read_secret(opts.secret_key_file)))
        return 99;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc == 3 && strcmp(argv[1], "kill") == 0)
        return run_kill((pid_t)strtol(argv[2], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "absent") == 0)
        return run_absent(argv[2]);
    /* 5 MiB parts: the contract's 12 MiB puts are multipart uploads. */
    snprintf(url, sizeof url, "s3://%s/contract?endpoint=%s&backoff_ms=20&part_size=5MiB", bucket,
             proxy_ep);
    fx.url = url;
    fx.opts = &opts;
    failed = transport_contract_run("transport-contract-s3", &fx);
    failed += specific_run();
    curl_global_cleanup();
    free(secret);
    return failed ? 1 : 0;
}
