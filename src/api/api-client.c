/* virtkeep - the control API client (src/api-client.h).
 *
 * The bearer token goes only where the caller asked (--url,
 * $VIRTKEEP_DAEMON_URL), never to [daemon] listen by default: when the
 * daemon is stopped, any local user may bind that port.  And even there it
 * is sent only once the connection is made and the server's end of it is
 * owned by root, by us, or by the owner of the token file (/proc/net/tcp,
 * CURLOPT_PREREQFUNCTION: after connect, before the request is sent).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "src/api/api.h"
#include "src/conf/conf.h"

#define API_CLIENT_TIMEOUT_MS 30000
#define API_CLIENT_BODY_MAX (16 << 20)

/* Where the CLI finds virtkeepd over HTTP when not told on the command line. */
#define API_URL_ENV "VIRTKEEP_DAEMON_URL"

static void endpoint_clear(struct api_endpoint *e)
{
    free(e->socket_path);
    free(e->url);
    free(e->token_file);
    free(e->name);
    memset(e, 0, sizeof *e);
}

void api_client_clear(struct api_client *cl)
{
    for (unsigned int i = 0; i < cl->count; i++)
        endpoint_clear(&cl->ends[i]);
    cl->count = 0;
}

/* The token of PATH (malloc'd) and the owner of the file, or NULL with the
 * error recorded. */
static char *token_read(const char *path, uid_t *owner)
{
    char buf[4097];
    CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    ssize_t n;
    char *t;

    if (fd < 0 || fstat(fd, &st) < 0 || (n = vk_pread_all(fd, buf, sizeof buf - 1, 0)) < 0) {
        vk_error_errno(errno, "cannot read the token file '%s'", path);
        return NULL;
    }
    *owner = st.st_uid;
    buf[n] = '\0';
    t = *vk_trim(buf) ? vk_strdup(buf) : NULL;
    if (!*buf)
        vk_error(VK_ERR_INVALID, "the token file '%s' is empty", path);
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

/* "http://HOST:PORT" from "http://HOST:PORT[/]" or "HOST:PORT" (malloc'd). */
static char *url_make(const char *in)
{
    const char *sep = strstr(in, "://");
    size_t len;

    if (sep && strncasecmp(in, "http://", 7) != 0) {
        vk_error(VK_ERR_INVALID, "virtkeepd's address '%s' is not an http:// URL", in);
        return NULL;
    }
    if (sep)
        in += 7;
    len = strlen(in);
    while (len > 0 && in[len - 1] == '/')
        len--;
    if (len == 0 || memchr(in, '/', len)) {
        vk_error(VK_ERR_INVALID, "virtkeepd's address '%s' is not http://HOST:PORT", in);
        return NULL;
    }
    return vk_asprintf("http://%.*s", (int)len, in);
}

/* TCP at URL, with the token of [daemon] token_file (read when tried). */
static int add_tcp(struct api_client *cl, const struct config_daemon *d, const char *url)
{
    struct api_endpoint *e = &cl->ends[cl->count++];

    if (!(e->url = url_make(url)))
        return -1;
    e->name = vk_asprintf("'%s'", e->url + 7);
    if (d && d->token_file && !(e->token_file = vk_strdup(d->token_file)))
        return -1;
    return e->name ? 0 : -1;
}

int api_client_init(struct api_client *cl, const struct config *cfg, const char *socket,
                    const char *url, unsigned int flags)
{
    const struct config_daemon *d = cfg ? &cfg->daemon : NULL;
    const char *env = getenv(API_URL_ENV);
    const char *dflt = d && d->socket ? d->socket : API_DEFAULT_SOCKET;

    (void)flags;
    memset(cl, 0, sizeof *cl);
    cl->timeout_ms = API_CLIENT_TIMEOUT_MS;
    if ((socket || !url) && add_socket(cl, socket ? socket : dflt) < 0)
        goto fail;
    if (!url && !socket && env && *env)
        url = env; /* after the socket */
    if (url && add_tcp(cl, d, url) < 0)
        goto fail;
    return 0;
fail:
    api_client_clear(cl);
    return -1;
}

/* ---- who listens: the server's end of the connection ------------------- */

struct peer_check {
    uid_t allowed[3]; /* root, us, the owner of the token file */
    char why[256];    /* why the token was not sent */
};

static int sockaddr_make(const char *ip, int port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -1;
}

/* CURLOPT_PREREQFUNCTION: connected, nothing sent yet.  The server's end
 * of this connection (its address and port as local, ours as remote) must
 * belong to an allowed user, else the request (and the token) is not sent. */
static int peer_verify(void *opaque, char *server_ip, char *client_ip, int server_port,
                       int client_port)
{
    struct peer_check *pc = opaque;
    struct sockaddr_storage server, client;
    uid_t uid;

    if (sockaddr_make(server_ip, server_port, &server) < 0 ||
        sockaddr_make(client_ip, client_port, &client) < 0) {
        snprintf(pc->why, sizeof pc->why, "cannot parse the addresses of the connection");
        return CURL_PREREQFUNC_ABORT;
    }
    if (vk_tcp_socket_uid((struct sockaddr *)&server, (struct sockaddr *)&client, &uid) < 0) {
        snprintf(pc->why, sizeof pc->why,
                 "cannot tell which user serves %s port %d (only a server on this host can be "
                 "checked): %s",
                 server_ip, server_port, vk_error_message());
        vk_error_clear();
        return CURL_PREREQFUNC_ABORT;
    }
    for (size_t i = 0; i < VK_ARRAY_SIZE(pc->allowed); i++)
        if (uid == pc->allowed[i])
            return CURL_PREREQFUNC_OK;
    snprintf(pc->why, sizeof pc->why,
             "the server on %s port %d runs as uid %u, not as root, this user or the owner of "
             "the token file: it is not virtkeepd",
             server_ip, server_port, (unsigned int)uid);
    return CURL_PREREQFUNC_ABORT;
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

/* The "Authorization: Bearer TOKEN" header of TCP endpoint E (malloc'd;
 * wipe it) and who may receive it, or NULL with the error recorded. */
static char *auth_header(const struct api_endpoint *e, struct peer_check *pc)
{
    char *token, *h;
    uid_t owner;

    if (!e->token_file) {
        vk_error(VK_ERR_INVALID, "talking to virtkeepd on %s needs [daemon] token_file", e->name);
        return NULL;
    }
    if (!(token = token_read(e->token_file, &owner)))
        return NULL;
    h = vk_asprintf("Authorization: Bearer %s", token);
    explicit_bzero(token, strlen(token));
    free(token);
    pc->allowed[0] = 0;
    pc->allowed[1] = geteuid();
    pc->allowed[2] = owner;
    return h;
}

static void auth_free(char **h)
{
    if (*h)
        explicit_bzero(*h, strlen(*h));
    free(*h);
}

/* 0 with *STATUS and B filled; -1 with VK_ERR_NETWORK when E does not answer,
 * VK_ERR_AUTH when what answers on TCP is not virtkeepd (nothing sent). */
static int request(const struct api_client *cl, const struct api_endpoint *e, const char *method,
                   const char *path, long *status, struct body *b)
{
    CURL *h;
    struct curl_slist *hdrs = NULL;
    struct peer_check pc = {.why = ""};
    CLEANUP_FREE char *url = vk_asprintf("%s%s", e->url, path);
    __attribute__((cleanup(auth_free))) char *auth = NULL;
    CURLcode rc;

    if (!e->socket_path && !(auth = auth_header(e, &pc)))
        return -1;
    h = curl_easy_init();
    if (!h || !url || (!e->socket_path && !(hdrs = curl_slist_append(NULL, auth)))) {
        if (h)
            curl_easy_cleanup(h);
        vk_error(VK_ERR_INTERNAL, "cannot set up a request to virtkeepd");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (e->socket_path) {
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, e->socket_path);
    } else {
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, peer_verify);
        curl_easy_setopt(h, CURLOPT_PREREQDATA, &pc);
    }
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
    for (struct curl_slist *s = hdrs; s; s = s->next)
        explicit_bzero(s->data, strlen(s->data));
    curl_slist_free_all(hdrs);
    if (rc == CURLE_ABORTED_BY_CALLBACK && pc.why[0]) {
        vk_error(VK_ERR_AUTH, "not sending the token to %s: %s", e->name, pc.why);
        return -1;
    }
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
            if (vk_error_code() != VK_ERR_NETWORK)
                return -1; /* not "nothing answers": say what is wrong */
            continue;
        }
        r = answer_parse(cl->ends[i].name, status, &b, out);
        free(b.data);
        return r;
    }
    return -1;
}
