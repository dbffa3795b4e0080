/* SigV4 signing of the s3:// backend, against the example signatures AWS
 * publishes in the S3 API reference ("Examples of how to calculate the
 * signature (AWS Signature Version 4)": GET Object with a Range, PUT Object,
 * GET Bucket Lifecycle, GET Bucket (List Objects)), reproduced exactly from
 * a captured request.
 *
 * curl signs the requests, configured by s3_sign_setup() exactly as the
 * backend configures it, and sends them to a socket of this program on
 * 127.0.0.1 (CURLOPT_CONNECT_TO maps examplebucket.s3.amazonaws.com:80
 * there, so the Host header is AWS's).  The fixed date of the examples is
 * supplied as an x-amz-date header: curl 7.88 (lib/http_aws_sigv4.c) signs
 * with a user-supplied X-Amz-Date instead of the clock.  The Authorization
 * header is taken from the bytes received and compared with AWS's.
 *
 * What curl 7.88 signs as given, and the backend must therefore send in
 * canonical form (checked below too):
 *  - the path: curl does not percent-encode it, so the PUT example's key
 *    "test$file.text" must be sent as "test%24file.text" (S3 decodes it);
 *  - the query: curl neither sorts it nor adds '=' to a bare name, so the
 *    lifecycle example's "?lifecycle" signs differently from AWS's canonical
 *    "lifecycle=" unless it is sent as "?lifecycle=" (the same request to
 *    S3).  The backend always sends "name=value" pairs, sorted.
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport/s3-int.h"

#define HOST "examplebucket.s3.amazonaws.com"
#define DATE "20130524T000000Z"

static const struct s3_creds example_creds = {
    .access_key = (char *)"AKIAIOSFODNN7EXAMPLE",
    .secret = (char *)"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

/* ------------------------------------------------------------------ */
/* A one-request HTTP server that keeps what it received.             */

struct capture {
    int listen_fd;
    int port;
    char request[16384];
    size_t len;
};

static void *serve_one(void *opaque)
{
    struct capture *c = opaque;
    static const char answer[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    int fd = accept(c->listen_fd, NULL, NULL);
    char scratch[4096];
    ssize_t n;

    c->len = 0;
    if (fd < 0)
        return NULL;
    while (c->len < sizeof c->request - 1 && !strstr(c->request, "\r\n\r\n")) {
        n = read(fd, c->request + c->len, sizeof c->request - 1 - c->len);
        if (n <= 0)
            break;
        c->len += (size_t)n;
        c->request[c->len] = '\0';
    }
    if (write(fd, answer, sizeof answer - 1) < 0)
        perror("write");
    /* Drain the body (if any) so that curl sees a clean close. */
    shutdown(fd, SHUT_WR);
    while (read(fd, scratch, sizeof scratch) > 0)
        ;
    close(fd);
    return NULL;
}

static void capture_open(struct capture *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;

    memset(c, 0, sizeof *c);
    c->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->listen_fd >= 0);
    assert_int_equal(bind(c->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(c->listen_fd, 4), 0);
    assert_int_equal(getsockname(c->listen_fd, (struct sockaddr *)&sa, &len), 0);
    c->port = ntohs(sa.sin_port);
}

struct body {
    const char *data;
    size_t len, pos;
};

static size_t body_read(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    struct body *b = opaque;
    size_t n = size * nmemb;

    if (n > b->len - b->pos)
        n = b->len - b->pos;
    memcpy(ptr, b->data + b->pos, n);
    b->pos += n;
    return n;
}

/* Send METHOD PATH (with EXTRA headers and BODY) as the backend signs it;
 * returns the Authorization header received, malloc'd. */
static char *signed_request(const char *method, const char *path, const char *payload_hash,
                            const char *const *extra, const char *body)
{
    struct capture c;
    struct curl_slist *hdrs = NULL;
    struct body b = {.data = body, .len = body ? strlen(body) : 0};
    struct curl_slist *ct;
    char url[256], connect_to[128], *auth, *end;
    pthread_t th;
    CURL *h = curl_easy_init();

    assert_non_null(h);
    capture_open(&c);
    assert_int_equal(pthread_create(&th, NULL, serve_one, &c), 0);
    snprintf(url, sizeof url, "http://%s%s", HOST, path);
    snprintf(connect_to, sizeof connect_to, "%s:80:127.0.0.1:%d", HOST, c.port);
    ct = curl_slist_append(NULL, connect_to);
    assert_int_equal(s3_sign_setup(h, "aws:amz:us-east-1:s3", &example_creds, payload_hash, &hdrs),
                     0);
    hdrs = curl_slist_append(hdrs, "x-amz-date: " DATE);
    for (; extra && *extra; extra++)
        hdrs = curl_slist_append(hdrs, *extra);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, body_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &b);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)b.len);
    }
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    pthread_join(th, NULL);
    close(c.listen_fd);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(ct);
    curl_easy_cleanup(h);

    auth = strstr(c.request, "\r\nAuthorization: ");
    if (!auth)
        fail_msg("no Authorization header in the request:\n%s", c.request);
    auth += 17;
    end = strstr(auth, "\r\n");
    assert_non_null(end);
    return strndup(auth, (size_t)(end - auth));
}

static void assert_signed(const char *auth, const char *signed_headers, const char *signature)
{
    char want[512];

    snprintf(want, sizeof want,
             "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
             "aws4_request, SignedHeaders=%s, Signature=%s",
             signed_headers, signature);
    assert_string_equal(auth, want);
}

/* ------------------------------------------------------------------ */
/* AWS's examples                                                      */

static void test_get_object_range(void **state)
{
    static const char *const extra[] = {"Range: bytes=0-9", NULL};
    char *auth = signed_request("GET", "/test.txt", S3_EMPTY_SHA256, extra, NULL);

    (void)state;
    assert_signed(auth, "host;range;x-amz-content-sha256;x-amz-date",
                  "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    free(auth);
}

static void test_put_object(void **state)
{
    static const char *const extra[] = {"Date: Fri, 24 May 2013 00:00:00 GMT",
                                        "x-amz-storage-class: REDUCED_REDUNDANCY", NULL};
    char *enc = s3_uri_encode("test$file.text", true), path[64], *auth;

    (void)state;
    /* The key is encoded by the backend, as it must be for curl 7.88. */
    assert_string_equal(enc, "test%24file.text");
    snprintf(path, sizeof path, "/%s", enc);
    auth = signed_request("PUT", path,
                          "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072", extra,
                          "Welcome to Amazon S3.");
    assert_signed(auth, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                  "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    free(auth);
    free(enc);
}

static void test_get_bucket_lifecycle(void **state)
{
    char *auth = signed_request("GET", "/?lifecycle=", S3_EMPTY_SHA256, NULL, NULL);

    (void)state;
    assert_signed(auth, "host;x-amz-content-sha256;x-amz-date",
                  "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    free(auth);
    /* The bare form is not canonicalized by curl 7.88: it must differ, which
     * is why the backend never sends a bare query name. */
    auth = signed_request("GET", "/?lifecycle", S3_EMPTY_SHA256, NULL, NULL);
    assert_null(strstr(auth, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
    free(auth);
}

static void test_list_objects(void **state)
{
    char *auth = signed_request("GET", "/?max-keys=2&prefix=J", S3_EMPTY_SHA256, NULL, NULL);

    (void)state;
    assert_signed(auth, "host;x-amz-content-sha256;x-amz-date",
                  "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    free(auth);
}

/* A session token is sent and signed. */
static void test_session_token(void **state)
{
    struct s3_creds creds = example_creds;
    struct curl_slist *hdrs = NULL;
    CURL *h = curl_easy_init();
    bool token = false, hash = false;

    (void)state;
    creds.session_token = (char *)"TOKEN123";
    assert_int_equal(s3_sign_setup(h, "aws:amz:us-east-1:s3", &creds, S3_UNSIGNED_PAYLOAD, &hdrs),
                     0);
    for (struct curl_slist *l = hdrs; l; l = l->next) {
        token |= strcmp(l->data, "x-amz-security-token: TOKEN123") == 0;
        hash |= strcmp(l->data, "x-amz-content-sha256: UNSIGNED-PAYLOAD") == 0;
    }
    assert_true(token);
    assert_true(hash);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
}

/* The backend's own requests (s3_perform, with every header it adds) sign
 * only headers they send.  curl 7.88 signs each entry of the header list,
 * also an empty "Expect:" that only removes a header: radosgw then refused
 * every request with SignatureDoesNotMatch, s3rver (no signature check)
 * did not notice. */
static void test_signed_headers_are_sent(void **state)
{
    static const char *const methods[] = {"PUT", "POST", "GET", "HEAD", "DELETE"};
    static char body[70000]; /* large enough for curl to send Expect: 100-continue */

    (void)state;
    memset(body, 'b', sizeof body);
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        struct capture c;
        struct s3 s3 = {.bucket = (char *)"examplebucket",
                        .prefix = (char *)"p/",
                        .region = (char *)"us-east-1",
                        .sigv4 = (char *)"aws:amz:us-east-1:s3",
                        .creds = example_creds,
                        .timeout = 30,
                        .attempts = 1,
                        .backoff_ms = 1};
        bool upload = methods[m][0] == 'P';
        struct s3_req r = {.method = methods[m],
                           .key = "a key",
                           .query = upload && methods[m][1] == 'O' ? "uploads=" : NULL,
                           .body = upload ? body : NULL,
                           .body_len = upload ? sizeof body : 0};
        char endpoint[64], *sh, *end, name[64];
        pthread_t th;

        capture_open(&c);
        snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", c.port);
        s3.endpoint = endpoint;
        pthread_mutex_init(&s3.pool_lock, NULL);
        assert_int_equal(pthread_create(&th, NULL, serve_one, &c), 0);
        assert_int_equal(s3_perform(&s3, &r, "test"), 0);
        pthread_join(th, NULL);
        close(c.listen_fd);
        s3_req_clear(&r);
        for (unsigned int i = 0; i < s3.npool; i++)
            curl_easy_cleanup(s3.pool[i]);
        pthread_mutex_destroy(&s3.pool_lock);
        assert_int_equal(r.status, 200);

        sh = strstr(c.request, "SignedHeaders=");
        if (!sh)
            fail_msg("%s: no SignedHeaders in:\n%s", methods[m], c.request);
        sh += strlen("SignedHeaders=");
        end = strchr(sh, ',');
        assert_non_null(end);
        while (sh < end) {
            size_t n = strcspn(sh, ";,");
            char line[80];
            assert_true(n < sizeof name);
            memcpy(name, sh, n);
            name[n] = '\0';
            snprintf(line, sizeof line, "\r\n%s:", name);
            if (!strcasestr(c.request, line))
                fail_msg("%s: '%s' is signed but not sent:\n%s", methods[m], name, c.request);
            sh += n + (sh[n] == ';');
        }
    }
}

static void test_uri_encode(void **state)
{
    char *s;

    (void)state;
    s = s3_uri_encode("web1/a b+c~d_e.f-g=h&i%j", true);
    assert_string_equal(s, "web1/a%20b%2Bc~d_e.f-g%3Dh%26i%25j");
    free(s);
    s = s3_uri_encode("web1/x", false);
    assert_string_equal(s, "web1%2Fx");
    free(s);
    s = s3_uri_encode("\xc3\xa9", false);
    assert_string_equal(s, "%C3%A9");
    free(s);
}

/* Part sizes grow so that 5 TiB fits in 10,000 parts, within 5 GiB each. */
static void test_part_sizes(void **state)
{
    const size_t base = 8u * 1024 * 1024;
    unsigned long long total = 0;

    (void)state;
    assert_int_equal(s3_part_size(base, 1), base);
    assert_int_equal(s3_part_size(base, 1000), base);
    assert_int_equal(s3_part_size(base, 1001), 2 * base);
    for (unsigned int n = 1; n <= S3_MAX_PARTS; n++) {
        assert_true(s3_part_size(base, n) <= S3_MAX_PART_SIZE);
        assert_true(s3_part_size(base, n) >= s3_part_size(base, n > 1 ? n - 1 : 1));
        total += s3_part_size(base, n);
    }
    assert_true(total >= 5ull << 40);
    /* The smallest first part allowed also fits 5 TiB. */
    total = 0;
    for (unsigned int n = 1; n <= S3_MAX_PARTS; n++)
        total += s3_part_size(S3_MIN_PART_SIZE, n);
    assert_true(total >= 5ull << 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_object_range),     cmocka_unit_test(test_put_object),
        cmocka_unit_test(test_get_bucket_lifecycle), cmocka_unit_test(test_list_objects),
        cmocka_unit_test(test_session_token),        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_part_sizes),           cmocka_unit_test(test_signed_headers_are_sent),
    };
    int r;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    r = cmocka_run_group_tests_name("s3-sigv4", tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
