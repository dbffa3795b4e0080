/* virtkeep - smoke test: S3 put and get with libcurl and SigV4.
 *
 * Usage: smoke-s3 ENDPOINT BUCKET ACCESS_KEY SECRET_FILE KEY
 *
 * PUTs about 1 MiB of data to ENDPOINT/BUCKET/KEY (path style), signed with
 * CURLOPT_AWS_SIGV4 "aws:amz:us-east-1:s3" and the secret read from
 * SECRET_FILE, GETs it back and compares, GETs a byte range and compares,
 * then DELETEs it and checks that it is gone.
 *
 * Exit status: 0 success, 1 failure, 2 usage, 4 the server refused the
 * credentials (HTTP 403).
 */
#include <config.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"

#define OBJECT_SIZE ((1u << 20) + 4093)
#define EXIT_AUTH 4

struct buf {
    unsigned char *data;
    size_t len, cap, pos;
};

struct s3 {
    const char *url_base; /* ENDPOINT/BUCKET */
    const char *access_key;
    char secret[256];
};

static size_t read_cb(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    struct buf *b = opaque;
    size_t n = size * nmemb;

    if (n > b->len - b->pos)
        n = b->len - b->pos;
    memcpy(ptr, b->data + b->pos, n);
    b->pos += n;
    return n;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    struct buf *b = opaque;
    size_t n = size * nmemb;

    if (n > b->cap - b->len)
        return 0; /* more than expected: curl reports a write error */
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

static int sha256_hex(const unsigned char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;

    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -1;
    for (i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static int read_secret(const char *file, char *secret, size_t size)
{
    CLEANUP_FCLOSE FILE *fp = fopen(file, "re");

    if (fp == NULL) {
        fprintf(stderr, "smoke-s3: cannot open secret file '%s': %m\n", file);
        return -1;
    }
    if (fgets(secret, (int)size, fp) == NULL) {
        fprintf(stderr, "smoke-s3: secret file '%s' is empty\n", file);
        return -1;
    }
    secret[strcspn(secret, "\r\n")] = '\0';
    return 0;
}

/* One request: method on KEY, optional body (PUT) and Range; the response
 * body goes to resp.  Returns the HTTP status or -1. */
static long request(struct s3 *s3, const char *method, const char *key, struct buf *body,
                    const char *range, struct buf *resp)
{
    CLEANUP_FREE char *url = vk_asprintf("%s/%s", s3->url_base, key);
    CLEANUP_FREE char *hash_hdr = NULL;
    CLEANUP_FREE char *range_hdr = NULL;
    struct curl_slist *hdrs = NULL;
    char hash[65];
    long status = -1;
    CURL *curl = curl_easy_init();
    CURLcode rc;

    if (url == NULL || curl == NULL ||
        sha256_hex(body ? body->data : (const unsigned char *)"", body ? body->len : 0, hash))
        goto out;
    hash_hdr = vk_asprintf("x-amz-content-sha256: %s", hash);
    if (range != NULL)
        range_hdr = vk_asprintf("Range: bytes=%s", range);
    if (hash_hdr == NULL || (range != NULL && range_hdr == NULL))
        goto out;
    hdrs = curl_slist_append(hdrs, hash_hdr);
    if (range_hdr != NULL)
        hdrs = curl_slist_append(hdrs, range_hdr);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(curl, CURLOPT_USERNAME, s3->access_key);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, s3->secret);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    if (body != NULL) {
        body->pos = 0;
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(curl, CURLOPT_READDATA, body);
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body->len);
    } else {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    resp->len = 0;
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
    rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        fprintf(stderr, "smoke-s3: %s '%s' failed: %s\n", method, url, curl_easy_strerror(rc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    return status;
}

static int expect_status(long got, long want, const char *what, const struct buf *resp)
{
    if (got == want)
        return 0;
    fprintf(stderr, "smoke-s3: %s: HTTP %ld, expected %ld: %.*s\n", what, got, want,
            (int)(resp->len < 400 ? resp->len : 400), (const char *)resp->data);
    return got == 403 ? EXIT_AUTH : 1;
}

static int expect_bytes(const struct buf *resp, const unsigned char *want, size_t len,
                        const char *what)
{
    if (resp->len == len && memcmp(resp->data, want, len) == 0)
        return 0;
    fprintf(stderr, "smoke-s3: %s returned %zu bytes that differ from the %zu expected\n", what,
            resp->len, len);
    return 1;
}

static void fill_pattern(unsigned char *p, size_t len)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t i;

    for (i = 0; i < len; i++) {
        x ^= x << 7;
        x ^= x >> 9;
        p[i] = (unsigned char)(x >> 11);
    }
}

static int round_trip(struct s3 *s3, const char *key, struct buf *obj, struct buf *resp)
{
    const size_t first = 65536 - 17, last = 3 * 65536 + 5; /* a slice across boundaries */
    CLEANUP_FREE char *range = vk_asprintf("%zu-%zu", first, last);
    int r;

    if (range == NULL)
        return 1;
    if ((r = expect_status(request(s3, "PUT", key, obj, NULL, resp), 200, "PUT", resp)) ||
        (r = expect_status(request(s3, "GET", key, NULL, NULL, resp), 200, "GET", resp)) ||
        (r = expect_bytes(resp, obj->data, obj->len, "GET")) ||
        (r = expect_status(request(s3, "GET", key, NULL, range, resp), 206, "ranged GET", resp)) ||
        (r = expect_bytes(resp, obj->data + first, last - first + 1, "ranged GET")) ||
        (r = expect_status(request(s3, "DELETE", key, NULL, NULL, resp), 204, "DELETE", resp)) ||
        (r = expect_status(request(s3, "GET", key, NULL, NULL, resp), 404, "GET after DELETE",
                           resp)))
        return r;
    return 0;
}

int main(int argc, char **argv)
{
    CLEANUP_FREE char *url_base = NULL;
    CLEANUP_FREE unsigned char *data = NULL, *resp_data = NULL;
    struct s3 s3 = {0};
    struct buf obj, resp;
    int r;

    if (argc != 6) {
        fprintf(stderr, "usage: smoke-s3 ENDPOINT BUCKET ACCESS_KEY SECRET_FILE KEY\n");
        return 2;
    }
    if (read_secret(argv[4], s3.secret, sizeof s3.secret) == -1)
        return 1;
    url_base = vk_asprintf("%s/%s", argv[1], argv[2]);
    data = vk_malloc(OBJECT_SIZE);
    resp_data = vk_malloc(OBJECT_SIZE + 1);
    if (url_base == NULL || data == NULL || resp_data == NULL)
        return 1;
    fill_pattern(data, OBJECT_SIZE);
    s3.url_base = url_base;
    s3.access_key = argv[3];
    obj = (struct buf){.data = data, .len = OBJECT_SIZE, .cap = OBJECT_SIZE};
    resp = (struct buf){.data = resp_data, .cap = OBJECT_SIZE + 1};
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    r = round_trip(&s3, argv[5], &obj, &resp);
    curl_global_cleanup();
    explicit_bzero(s3.secret, sizeof s3.secret);
    if (r == 0)
        printf("smoke-s3: %u bytes put, got, range-got and deleted at '%s/%s'\n", OBJECT_SIZE,
               url_base, argv[5]);
    return r;
}
