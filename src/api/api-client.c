/* virtkeep - the control API client (src/api-client.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/api/api.h"
#include "src/conf/conf.h"

#define API_CLIENT_TIMEOUT_MS 30000
#define API_CLIENT_BODY_MAX (16 << 20)

static void endpoint_clear(struct api_endpoint *e)
{
    free(e->socket_path);
    free(e->url);
    if (e->token)
        explicit_bzero(e->token, strlen(e->token));
    free(e->token);
    free(e->name);
    memset(e, 0, sizeof *e);
}

void api_client_clear(struct api_client *cl)
{
    for (unsigned int i = 0; i < cl->count; i++)
        endpoint_clear(&cl->ends[i]);
    cl->count = 0;
}

/* The token, or NULL (not an error: the TCP endpoint is then not tried). */
static char *token_read(const char *path)
{
    char buf[4097];
    CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    char *t;

    if (fd < 0 || (n = vk_pread_all(fd, buf, sizeof buf - 1, 0)) < 0) {
        vk_debug("cannot read the token file '%s': %s", path, strerror(errno));
        return NULL;
    }
    buf[n] = '\0';
    t = *vk_trim(buf) ? vk_strdup(buf) : NULL;
    explicit_bzero(buf, sizeof buf);
    return t;
}

static int add_socket(struct api_client *cl, const char *path)
{
    struct api_endpoint *e = &cl->ends[cl->count++];

    e->socket_path = vk_strdup(path);
    e->url = vk_strdup("http://localhost");
    e->name = vk_asprintf("socket '%s'", path);
    return e->socket_path && e->url && e->name ? 0 : -1;
}

static int add_tcp(struct api_client *cl, const struct config_daemon *d)
{
    struct api_endpoint *e;
    char *token = token_read(d->token_file);

    if (!token)
        return 0;
    e = &cl->ends[cl->count++];
    e->token = token;
    e->url = vk_asprintf("http://%s", d->listen);
    e->name = vk_asprintf("'%s'", d->listen);
    return e->url && e->name ? 0 : -1;
}

int api_client_init(struct api_client *cl, const struct config *cfg, const char *socket,
                    unsigned int flags)
{
    const struct config_daemon *d = cfg ? &cfg->daemon : NULL;

    (void)flags;
    memset(cl, 0, sizeof *cl);
    cl->timeout_ms = API_CLIENT_TIMEOUT_MS;
    if (add_socket(cl, socket ? socket : d && d->socket ? d->socket : API_DEFAULT_SOCKET) < 0)
        goto fail;
    if (!socket && d && d->listen && d->token_file && add_tcp(cl, d) < 0)
        goto fail;
    return 0;
fail:
    api_client_clear(cl);
    return -1;
}

/* ---- one request ------------------------------------------------------ */

struct body {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    char *p;

    if (b->len + n > API_CLIENT_BODY_MAX) {
        b->too_big = true;
        return 0;
    }
    if (!(p = realloc(b->data, b->len + n + 1)))
        return 0;
    memcpy(p + b->len, ptr, n);
    b->len += n;
    p[b->len] = '\0';
    b->data = p;
    return n;
}

/* 0 with *STATUS and B filled; -1 with VK_ERR_NETWORK when E does not answer. */
static int request(const struct api_client *cl, const struct api_endpoint *e, const char *method,
                   const char *path, long *status, struct body *b)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    CLEANUP_FREE char *url = vk_asprintf("%s%s", e->url, path);
    CLEANUP_FREE char *auth = e->token ? vk_asprintf("Authorization: Bearer %s", e->token) : NULL;
    CURLcode rc;

    if (!h || !url || (e->token && !auth)) {
        if (h)
            curl_easy_cleanup(h);
        vk_error(VK_ERR_INTERNAL, "cannot set up a request to virtkeepd");
        return -1;
    }
    if (auth)
        hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (e->socket_path)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, e->socket_path);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, cl->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        vk_error(VK_ERR_NETWORK, "virtkeepd is not running (nothing answers on %s: %s)", e->name,
                 b->too_big ? "the answer is too large" : curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

static enum vk_error_code code_from_http(long status)
{
    switch (status) {
    case 400:
        return VK_ERR_INVALID;
    case 401:
        return VK_ERR_AUTH;
    case 404:
        return VK_ERR_NOT_FOUND;
    case 409:
        return VK_ERR_BUSY;
    default:
        return VK_ERR_INTERNAL;
    }
}

/* Turn an answer into *OUT or the server's error. */
static int answer_parse(const char *name, long status, const struct body *b,
                        struct json_object **out)
{
    struct json_object *j = b->data ? json_tokener_parse(b->data) : NULL;
    struct json_object *msg;

    if (status >= 200 && status < 300 && j) {
        *out = j;
        return 0;
    }
    if (j && json_object_object_get_ex(j, "error", &msg))
        vk_error(code_from_http(status), "%s", json_object_get_string(msg));
    else
        vk_error(code_from_http(status),
                 "virtkeepd on %s answered HTTP %ld without a valid JSON "
                 "body",
                 name, status);
    json_object_put(j);
    return -1;
}

int api_client_call(struct api_client *cl, const char *method, const char *path,
                    struct json_object **out)
{
    *out = NULL;
    for (unsigned int i = 0; i < cl->count; i++) {
        struct body b = {0};
        long status = 0;
        int r;

        if (request(cl, &cl->ends[i], method, path, &status, &b) < 0) {
            free(b.data);
            continue;
        }
        r = answer_parse(cl->ends[i].name, status, &b, out);
        free(b.data);
        return r;
    }
    return -1;
}
