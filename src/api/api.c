/* virtkeep - virtkeepd's control API server (src/api.h), on libmicrohttpd.
 *
 * Two listeners at most, each its own MHD daemon with one internal polling
 * thread: the unix socket (access by file mode) and the loopback TCP
 * address (access by bearer token).  Every request opens its own catalog
 * connection, so requests never share SQLite state with the daemon.
 *
 * Anyone on the host can connect to the TCP listener.  So that idle
 * connections cannot lock the others out, a connection that has not sent
 * its request within API_IDLE_TIMEOUT is closed, one address has at most
 * API_PER_IP_LIMIT connections, and one local user (the owner of the
 * client socket in /proc/net/tcp) other than root and the daemon's own
 * user at most API_PER_USER_LIMIT.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "src/api/api.h"
#include "common/version.h"

#define API_CONNECTION_LIMIT 64 /* per listener */
#define API_PER_IP_LIMIT 16     /* TCP: connections from one address */
#define API_PER_USER_LIMIT 4    /* TCP: of one local user, root and ours excepted */
#define API_IDLE_TIMEOUT 3      /* seconds a connection may wait before its request */
#define API_REQUEST_TIMEOUT 30  /* seconds, once the request is in (and authorized) */
#define API_MEMORY_LIMIT (64 * 1024)
#define API_BODY_MAX 4096
#define API_TOKEN_MAX 4096
#define API_RECENT_JOBS 20

/* A TCP connection of a user held to API_PER_USER_LIMIT. */
struct api_peer {
    struct sockaddr_storage addr; /* the client's address and port */
    uid_t uid;
};

struct api_listener {
    struct api_server *srv;
    struct MHD_Daemon *mhd;
    bool auth; /* TCP: every request needs the bearer token */
    /* TCP: where it listens, and the connections of limited users.  Only
     * the listener's one MHD thread touches them. */
    struct sockaddr_storage addr;
    struct api_peer peers[2 * API_CONNECTION_LIMIT];
    size_t n_peers;
};

struct api_server {
    struct api_listener *unix_l, *tcp_l;
    char *socket_path; /* to unlink on stop, or NULL */
    char *listen;      /* what tcp_l listens on, or NULL */
    int port;
    struct api_ops ops;
    char *catalog_path;
    /* Replaced by api_server_reload while the listeners' threads run. */
    pthread_mutex_t lock;
    unsigned char token_digest[32];
    const struct config *config;
};

struct api_request {
    size_t body; /* bytes of request body seen */
    bool answered;
};

void api_job_clear(struct api_job *job)
{
    if (!job)
        return;
    free(job->kind);
    free(job->domain);
    free(job->target);
    free(job->backup_id);
    free(job->level);
    free(job->state);
    memset(job, 0, sizeof *job);
}

/* ---- responses -------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned int status, const char *type,
                               char *body, size_t len, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result r;

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    r = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Takes J. */
static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned int status,
                                    struct json_object *j, const char *allow)
{
    char *body = vk_strdup(
        json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    size_t len = body ? strlen(body) : 0;

    json_object_put(j);
    if (!body)
        return MHD_NO;
    return respond(c, status, "application/json", body, len, allow);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned int status, const char *msg,
                                     const char *allow)
{
    struct json_object *j = json_object_new_object();

    json_object_object_add(j, "error", json_object_new_string(msg ? msg : "unknown error"));
    json_object_object_add(j, "code", json_object_new_int((int)status));
    return respond_json(c, status, j, allow);
}

unsigned int api_http_status(enum vk_error_code code)
{
    switch (code) {
    case VK_ERR_INVALID:
        return MHD_HTTP_BAD_REQUEST;
    case VK_ERR_NOT_FOUND:
        return MHD_HTTP_NOT_FOUND;
    case VK_ERR_BUSY:
        return MHD_HTTP_CONFLICT;
    case VK_ERR_AUTH:
        return MHD_HTTP_UNAUTHORIZED;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* The last recorded error as a response. */
static enum MHD_Result respond_last_error(struct MHD_Connection *c)
{
    return respond_error(c, api_http_status(vk_error_code()), vk_error_message(), NULL);
}

/* ---- endpoints -------------------------------------------------------- */

static enum MHD_Result get_health(struct api_server *srv, struct MHD_Connection *c)
{
    struct json_object *j = json_object_new_object();

    (void)srv;
    json_object_object_add(j, "ok", json_object_new_boolean(true));
    json_object_object_add(j, "pid", json_object_new_int64(getpid()));
    json_object_object_add(j, "version", json_object_new_string(vk_version()));
    return respond_json(c, MHD_HTTP_OK, j, NULL);
}

static struct catalog *server_catalog(struct api_server *srv)
{
    return catalog_open(srv->catalog_path, CATALOG_OPEN_EXISTING);
}

/* The configuration in use (the caller keeps the replaced ones alive). */
static const struct config *server_config(struct api_server *srv)
{
    const struct config *cfg;

    pthread_mutex_lock(&srv->lock);
    cfg = srv->config;
    pthread_mutex_unlock(&srv->lock);
    return cfg;
}

static enum MHD_Result get_status(struct api_server *srv, struct MHD_Connection *c)
{
    const char *domain = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "domain");
    struct status_report rep = {0};
    struct catalog *cat = server_catalog(srv);
    int r;

    if (!cat)
        return respond_last_error(c);
    r = status_compute(cat, server_config(srv), domain && *domain ? domain : NULL, time(NULL),
                       &srv->ops, &rep, 0);
    catalog_close(cat);
    if (r < 0)
        return respond_last_error(c);
    struct json_object *j = status_report_json(&rep);
    status_report_clear(&rep);
    return respond_json(c, MHD_HTTP_OK, j, NULL);
}

static int active_jobs(struct api_server *srv, struct api_job **jobs, size_t *n)
{
    *jobs = NULL;
    *n = 0;
    return srv->ops.jobs_active ? srv->ops.jobs_active(srv->ops.ctx, jobs, n) : 0;
}

static void active_jobs_free(struct api_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        api_job_clear(&jobs[i]);
    free(jobs);
}

static enum MHD_Result get_jobs(struct api_server *srv, struct MHD_Connection *c)
{
    bool all = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "all") != NULL;
    struct catalog_jobs *recent = NULL;
    struct api_job *jobs;
    struct catalog *cat;
    size_t n;
    int r;

    if (active_jobs(srv, &jobs, &n) < 0)
        return respond_last_error(c);
    cat = server_catalog(srv);
    r = cat ? catalog_job_list(cat, NULL, 0, all ? 0 : API_RECENT_JOBS, &recent) : -1;
    catalog_close(cat);
    if (r < 0) {
        active_jobs_free(jobs, n);
        return respond_last_error(c);
    }
    struct json_object *j = api_jobs_json(jobs, n, recent);
    active_jobs_free(jobs, n);
    catalog_jobs_free(recent);
    return respond_json(c, MHD_HTTP_OK, j, NULL);
}

static enum MHD_Result post_cancel(struct api_server *srv, struct MHD_Connection *c,
                                   const char *idstr)
{
    unsigned long long id;
    struct json_object *j;

    if (vk_parse_uint(idstr, INT64_MAX, &id) < 0 || id == 0)
        return respond_error(c, MHD_HTTP_BAD_REQUEST, "the job id must be a positive number", NULL);
    if (!srv->ops.job_cancel)
        return respond_error(c, MHD_HTTP_NOT_FOUND, "this server runs no jobs", NULL);
    if (srv->ops.job_cancel(srv->ops.ctx, (int64_t)id) < 0)
        return respond_last_error(c);
    j = json_object_new_object();
    json_object_object_add(j, "id", json_object_new_int64((int64_t)id));
    json_object_object_add(j, "cancelled", json_object_new_boolean(true));
    return respond_json(c, MHD_HTTP_OK, j, NULL);
}

static enum MHD_Result get_metrics(struct api_server *srv, struct MHD_Connection *c)
{
    struct status_report rep = {0};
    struct api_job *jobs;
    struct catalog *cat;
    size_t n, running = 0, len = 0;
    char *text = NULL;
    int r;

    if (active_jobs(srv, &jobs, &n) < 0)
        return respond_last_error(c);
    for (size_t i = 0; i < n; i++)
        running += jobs[i].state && strcmp(jobs[i].state, "queued") != 0;
    active_jobs_free(jobs, n);
    if (!(cat = server_catalog(srv)))
        return respond_last_error(c);
    r = status_compute(cat, server_config(srv), NULL, time(NULL), &srv->ops, &rep, 0);
    if (r == 0)
        r = metrics_render(cat, &rep, running, &text, &len);
    status_report_clear(&rep);
    catalog_close(cat);
    if (r < 0)
        return respond_last_error(c);
    return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
}

/* ---- routing ---------------------------------------------------------- */

static bool is_get(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

typedef enum MHD_Result (*get_handler)(struct api_server *, struct MHD_Connection *);

static const struct {
    const char *path;
    get_handler fn;
} get_routes[] = {
    {"/v1/health", get_health},
    {"/v1/status", get_status},
    {"/v1/jobs", get_jobs},
    {"/metrics", get_metrics},
};

/* "/v1/jobs/ID/cancel": ID into BUF. */
static bool cancel_path(const char *url, char *buf, size_t size)
{
    static const char prefix[] = "/v1/jobs/", suffix[] = "/cancel";
    size_t len = strlen(url), idlen;

    if (strncmp(url, prefix, sizeof prefix - 1) != 0 || len < sizeof prefix + sizeof suffix - 1 ||
        strcmp(url + len - (sizeof suffix - 1), suffix) != 0)
        return false;
    idlen = len - (sizeof prefix - 1) - (sizeof suffix - 1);
    if (idlen == 0 || idlen >= size)
        return false;
    memcpy(buf, url + sizeof prefix - 1, idlen);
    buf[idlen] = '\0';
    return strchr(buf, '/') == NULL;
}

static enum MHD_Result route(struct api_server *srv, struct MHD_Connection *c, const char *url,
                             const char *method)
{
    char id[32];

    for (size_t i = 0; i < VK_ARRAY_SIZE(get_routes); i++) {
        if (strcmp(url, get_routes[i].path) != 0)
            continue;
        if (!is_get(method))
            return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET on this path",
                                 "GET, HEAD");
        return get_routes[i].fn(srv, c);
    }
    if (cancel_path(url, id, sizeof id)) {
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST to cancel a job",
                                 "POST");
        return post_cancel(srv, c, id);
    }
    return respond_error(c, MHD_HTTP_NOT_FOUND, "no such API endpoint", NULL);
}

/* ---- authentication --------------------------------------------------- */

static int digest(const void *buf, size_t len, unsigned char out[32])
{
    unsigned int n = 0;

    if (!EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) || n != 32) {
        vk_error(VK_ERR_INTERNAL, "cannot compute a SHA-256 digest");
        return -1;
    }
    return 0;
}

/* Compare digests, so that the time taken says nothing about the token,
 * not even its length. */
static bool authorized(struct api_server *srv, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    unsigned char d[32], want[32];
    bool ok;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    if (digest(h, strlen(h), d) < 0)
        return false;
    pthread_mutex_lock(&srv->lock);
    memcpy(want, srv->token_digest, sizeof want);
    pthread_mutex_unlock(&srv->lock);
    ok = CRYPTO_memcmp(d, want, sizeof d) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

/* Reject before the body is read: bad token, or a body over the cap. */
static bool precheck(struct api_listener *l, struct MHD_Connection *c, enum MHD_Result *res)
{
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long n;

    if (l->auth && !authorized(l->srv, c)) {
        *res = respond_error(c, MHD_HTTP_UNAUTHORIZED, "a valid bearer token is required", NULL);
        return false;
    }
    if (cl && (vk_parse_uint(cl, UINT64_MAX, &n) < 0 || n > API_BODY_MAX)) {
        *res = respond_error(c, 413, "the request body is too large", NULL);
        return false;
    }
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct api_listener *l = cls;
    struct api_request *rq = *con_cls;
    enum MHD_Result res;

    (void)version;
    (void)upload;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        *con_cls = rq;
        if (!precheck(l, c, &res)) {
            rq->answered = true;
            return res;
        }
        /* The request is in and may be served: no longer held to the
         * short idle timeout. */
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
                                  (unsigned int)API_REQUEST_TIMEOUT);
        return MHD_YES;
    }
    if (*upload_size) {
        rq->body += *upload_size;
        *upload_size = 0;
        return rq->body > API_BODY_MAX ? MHD_NO : MHD_YES; /* chunked past the cap: drop */
    }
    if (rq->answered)
        return MHD_YES;
    rq->answered = true;
    vk_error_clear();
    return route(l->srv, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];

    (void)cls;
    vsnprintf(buf, sizeof buf, fmt, ap);
    vk_debug("api: %s", vk_trim(buf));
}

/* ---- JSON of jobs ----------------------------------------------------- */

struct json_object *api_job_json(const struct api_job *job)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_new_int64(job->id));
    json_object_object_add(o, "kind", vk_json_string_or_null(job->kind));
    json_object_object_add(o, "domain", vk_json_string_or_null(job->domain));
    json_object_object_add(o, "target", vk_json_string_or_null(job->target));
    json_object_object_add(o, "backup_id", vk_json_string_or_null(job->backup_id));
    json_object_object_add(o, "level", vk_json_string_or_null(job->level));
    json_object_object_add(o, "state", vk_json_string_or_null(job->state));
    json_object_object_add(o, "pid", json_object_new_int64(job->pid));
    json_object_object_add(o, "started", json_object_new_int64(job->started));
    return o;
}

struct json_object *api_catalog_job_json(const struct catalog_job *job)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_new_int64(job->id));
    json_object_object_add(o, "kind", vk_json_string_or_null(job->kind));
    json_object_object_add(o, "domain", vk_json_string_or_null(job->domain));
    json_object_object_add(o, "target", vk_json_string_or_null(job->target));
    json_object_object_add(o, "backup_id", vk_json_string_or_null(job->backup_id));
    json_object_object_add(o, "state", vk_json_string_or_null(catalog_job_state_name(job->state)));
    json_object_object_add(o, "pid", json_object_new_int64(job->pid));
    json_object_object_add(o, "started", json_object_new_int64(job->started));
    json_object_object_add(o, "finished", json_object_new_int64(job->finished));
    json_object_object_add(o, "progress_done", json_object_new_int64((int64_t)job->progress_done));
    json_object_object_add(o, "progress_total",
                           json_object_new_int64((int64_t)job->progress_total));
    json_object_object_add(o, "estimate_seconds", json_object_new_double(job->estimate_seconds));
    json_object_object_add(o, "elapsed_seconds", json_object_new_double(job->elapsed_seconds));
    json_object_object_add(o, "error", vk_json_string_or_null(job->error));
    return o;
}

struct json_object *api_jobs_json(const struct api_job *active, size_t n,
                                  const struct catalog_jobs *recent)
{
    struct json_object *o = json_object_new_object(), *a = json_object_new_array();
    struct json_object *r = json_object_new_array();

    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, api_job_json(&active[i]));
    for (size_t i = 0; recent && i < recent->count; i++)
        json_object_array_add(r, api_catalog_job_json(&recent->items[i]));
    json_object_object_add(o, "active", a);
    json_object_object_add(o, "recent", r);
    return o;
}

/* ---- listening sockets ------------------------------------------------ */

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        vk_error(VK_ERR_INVALID, "the socket path '%s' is too long", path);
        return -1;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* A socket file at PATH that nothing answers on is stale: remove it.  One
 * that answers belongs to a running daemon; anything else is not ours. */
static int unix_stale_remove(const char *path, const struct sockaddr_un *sa)
{
    CLEANUP_CLOSE int fd = -1;
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : (vk_error_errno(errno, "cannot inspect '%s'", path), -1);
    if (!S_ISSOCK(st.st_mode)) {
        vk_error(VK_ERR_BUSY, "'%s' exists and is not a socket: not replacing it", path);
        return -1;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        vk_error_errno(errno, "cannot create a unix socket");
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0) {
        vk_error(VK_ERR_BUSY, "another server already answers on socket '%s'", path);
        return -1;
    }
    if (errno != ECONNREFUSED) {
        vk_error_errno(errno, "cannot probe the existing socket '%s'", path);
        return -1;
    }
    vk_info("removing the stale socket '%s'", path);
    if (unlink(path) < 0 && errno != ENOENT) {
        vk_error_errno(errno, "cannot remove the stale socket '%s'", path);
        return -1;
    }
    return 0;
}

static int unix_listen(const char *path)
{
    CLEANUP_CLOSE int fd = -1;
    struct sockaddr_un sa;

    if (unix_addr(path, &sa) < 0 || unix_stale_remove(path, &sa) < 0)
        return -1;
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        vk_error_errno(errno, "cannot create a unix socket");
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)&sa, sizeof sa) < 0) {
        vk_error_errno(errno, "cannot bind the socket '%s'", path);
        return -1;
    }
    /* Before listen(): nobody can connect while the mode is the umask's. */
    if (chmod(path, 0660) < 0 || listen(fd, API_CONNECTION_LIMIT) < 0) {
        vk_error_errno(errno, "cannot listen on the socket '%s'", path);
        unlink(path);
        return -1;
    }
    return VK_STEAL_FD(fd);
}

static bool addr_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

/* "127.0.0.1:PORT" or "[::1]:PORT" into HOST and PORT. */
static int listen_split(const char *addr, char *host, size_t size, const char **port)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t len;

    if (!colon || !colon[1])
        goto bad;
    len = (size_t)(colon - addr);
    if (*h == '[') {
        if (len < 2 || addr[len - 1] != ']')
            goto bad;
        h++, len -= 2;
    }
    if (len == 0 || len >= size)
        goto bad;
    memcpy(host, h, len);
    host[len] = '\0';
    *port = colon + 1;
    return 0;
bad:
    vk_error(VK_ERR_INVALID, "the listen address '%s' is not HOST:PORT", addr);
    return -1;
}

static int tcp_bind(const struct addrinfo *ai, const char *addr)
{
    CLEANUP_CLOSE int fd = -1;
    int one = 1;

    if (!addr_loopback(ai->ai_addr)) {
        vk_error(VK_ERR_INVALID, "the listen address '%s' is not a loopback address", addr);
        return -1;
    }
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, API_CONNECTION_LIMIT) < 0) {
        vk_error_errno(errno, "cannot listen on '%s'", addr);
        return -1;
    }
    return VK_STEAL_FD(fd);
}

/* The first address of listen address ADDR (freeaddrinfo it). */
static struct addrinfo *listen_resolve(const char *addr)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    const char *portstr;
    char host[64];
    int e;

    if (listen_split(addr, host, sizeof host, &portstr) < 0)
        return NULL;
    if ((e = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
        vk_error(VK_ERR_INVALID, "the listen address '%s' is not valid: %s", addr, gai_strerror(e));
        return NULL;
    }
    return ai;
}

/* Listen on ADDR; *PORT and *BOUND get where. */
static int tcp_listen(const char *addr, int *port, struct sockaddr_storage *bound)
{
    struct addrinfo *ai = listen_resolve(addr);
    socklen_t sl = sizeof *bound;
    int fd;

    if (!ai)
        return -1;
    fd = tcp_bind(ai, addr);
    freeaddrinfo(ai);
    memset(bound, 0, sizeof *bound);
    if (fd >= 0 && getsockname(fd, (struct sockaddr *)bound, &sl) == 0)
        *port = ntohs(bound->ss_family == AF_INET ? ((struct sockaddr_in *)bound)->sin_port
                                                  : ((struct sockaddr_in6 *)bound)->sin6_port);
    return fd;
}

/* ---- the token -------------------------------------------------------- */

static int token_load(const char *path, unsigned char out[32])
{
    CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char buf[API_TOKEN_MAX + 1];
    struct stat st;
    ssize_t n;
    int r;

    if (fd < 0 || fstat(fd, &st) < 0) {
        vk_error_errno(errno, "cannot open the token file '%s'", path);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077)) {
        vk_error(VK_ERR_PERMISSION,
                 "the token file '%s' must be a regular file that only its owner can read "
                 "(mode 0600)",
                 path);
        return -1;
    }
    if ((n = vk_pread_all(fd, buf, sizeof buf - 1, 0)) < 0) {
        vk_error_errno(errno, "cannot read the token file '%s'", path);
        return -1;
    }
    buf[n] = '\0';
    vk_trim(buf);
    if (!*buf || strchr(buf, '\n')) {
        vk_error(VK_ERR_INVALID, "the token file '%s' must hold one token on one line", path);
        return -1;
    }
    r = digest(buf, strlen(buf), out);
    OPENSSL_cleanse(buf, sizeof buf);
    return r;
}

/* ---- connections per user ---------------------------------------------- */

static bool peer_same(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return false;
}

static void peer_forget(struct api_listener *l, const struct sockaddr *addr)
{
    for (size_t i = 0; i < l->n_peers; i++)
        if (peer_same(&l->peers[i].addr, addr)) {
            l->peers[i] = l->peers[--l->n_peers];
            return;
        }
}

/* MHD's accept policy: a user other than root and ours (or one that cannot
 * be told, uid -1) gets at most API_PER_USER_LIMIT connections.  Root's
 * requests (`virtkeep status --url`, monitoring) always find room. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    struct api_listener *l = cls;
    size_t open = 0;
    uid_t uid;

    (void)len;
    if (!l->auth || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return MHD_YES; /* the unix socket: access by file mode */
    if (vk_tcp_socket_uid(addr, (const struct sockaddr *)&l->addr, &uid) < 0) {
        vk_error_clear();
        uid = (uid_t)-1;
    }
    if (uid == 0 || uid == geteuid())
        return MHD_YES;
    peer_forget(l, addr); /* a stale entry of the same address and port */
    for (size_t i = 0; i < l->n_peers; i++)
        open += l->peers[i].uid == uid;
    if (open >= API_PER_USER_LIMIT || l->n_peers == VK_ARRAY_SIZE(l->peers)) {
        vk_debug("api: refusing a connection of uid %d: it has %zu open", (int)uid, open);
        return MHD_NO;
    }
    memcpy(&l->peers[l->n_peers].addr, addr,
           addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    l->peers[l->n_peers].addr.ss_family = addr->sa_family;
    l->peers[l->n_peers++].uid = uid;
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct api_listener *l = cls;
    const union MHD_ConnectionInfo *ci;

    (void)socket_context;
    if (code != MHD_CONNECTION_NOTIFY_CLOSED || !l->auth)
        return;
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr)
        peer_forget(l, ci->client_addr);
}

/* ---- start and stop --------------------------------------------------- */

static void listener_stop(struct api_listener *l)
{
    if (!l)
        return;
    if (l->mhd)
        MHD_stop_daemon(l->mhd);
    free(l);
}

/* Serve FD (closed on failure); BOUND: where a TCP listener listens. */
static struct api_listener *listener_start(struct api_server *srv, int fd, bool auth,
                                           const struct sockaddr_storage *bound)
{
    struct api_listener *l = vk_calloc(1, sizeof *l);

    if (!l) {
        close(fd);
        return NULL;
    }
    l->srv = srv;
    l->auth = auth;
    if (bound)
        l->addr = *bound;
    l->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0, on_accept, l,
        on_request, l,
        /* first, so that MHD logs nothing through its own logger */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)API_CONNECTION_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)(auth ? API_PER_IP_LIMIT : 0),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)API_IDLE_TIMEOUT,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_MEMORY_LIMIT, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, l, MHD_OPTION_END);
    if (!l->mhd) {
        close(fd);
        free(l);
        vk_error(VK_ERR_INTERNAL, "cannot start the API server (libmicrohttpd)");
        return NULL;
    }
    return l;
}

/* The TCP listener of O (listen address and token), not started: *FD
 * bound, *BOUND and *PORT where, DIGEST the token's. */
static int tcp_prepare(const struct api_server_options *o, unsigned char digest_out[32], int *fd,
                       int *port, struct sockaddr_storage *bound)
{
    if (token_load(o->token_file, digest_out) < 0)
        return -1;
    return (*fd = tcp_listen(o->listen, port, bound)) < 0 ? -1 : 0;
}

static int server_listen(struct api_server *srv, const struct api_server_options *o)
{
    struct sockaddr_storage bound;
    int fd;

    if (o->socket_path) {
        if ((fd = unix_listen(o->socket_path)) < 0)
            return -1;
        if (!(srv->socket_path = vk_strdup(o->socket_path))) {
            close(fd);
            return -1;
        }
        if (!(srv->unix_l = listener_start(srv, fd, false, NULL)))
            return -1;
    }
    if (o->listen) {
        if (!(srv->listen = vk_strdup(o->listen)) ||
            tcp_prepare(o, srv->token_digest, &fd, &srv->port, &bound) < 0)
            return -1;
        if (!(srv->tcp_l = listener_start(srv, fd, true, &bound)))
            return -1;
    }
    return 0;
}

static int options_check(const struct api_server_options *opts)
{
    if (!opts->socket_path && !opts->listen) {
        vk_error(VK_ERR_INVALID, "the API server needs a socket path or a listen address");
        return -1;
    }
    if (opts->listen && !opts->token_file) {
        vk_error(VK_ERR_INVALID, "listening on '%s' needs a token file", opts->listen);
        return -1;
    }
    return 0;
}

struct api_server *api_server_start(const struct api_server_options *opts,
                                    const struct api_ops *ops, unsigned int flags)
{
    struct api_server *srv;

    (void)flags;
    if (options_check(opts) < 0 || !(srv = vk_calloc(1, sizeof *srv)))
        return NULL;
    pthread_mutex_init(&srv->lock, NULL);
    srv->port = -1;
    srv->config = opts->config;
    if (ops)
        srv->ops = *ops;
    if (!(srv->catalog_path = vk_strdup(opts->catalog_path)) || server_listen(srv, opts) < 0) {
        api_server_stop(srv);
        return NULL;
    }
    return srv;
}

static bool str_same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Does L listen on ADDR already?  (Port 0, "any", never matches.) */
static bool listening_on(const struct api_listener *l, const char *addr)
{
    struct addrinfo *ai = l && addr ? listen_resolve(addr) : NULL;
    bool same = ai && peer_same(&l->addr, ai->ai_addr);

    if (ai)
        freeaddrinfo(ai);
    vk_error_clear();
    return same;
}

int api_server_reload(struct api_server *srv, const struct api_server_options *opts)
{
    struct api_listener *tcp = NULL, *old;
    struct sockaddr_storage bound;
    unsigned char d[32];
    CLEANUP_FREE char *where = opts->listen ? vk_strdup(opts->listen) : NULL;
    bool same = (!opts->listen && !srv->tcp_l) || listening_on(srv->tcp_l, opts->listen);
    int fd = -1, port = -1, r = 0;

    pthread_mutex_lock(&srv->lock);
    srv->config = opts->config;
    pthread_mutex_unlock(&srv->lock);
    if (options_check(opts) < 0)
        return -1;
    if (!str_same(opts->socket_path, srv->socket_path)) {
        vk_error(VK_ERR_INVALID, "the control socket cannot change without a restart ('%s')",
                 srv->socket_path ? srv->socket_path : "none");
        return -1;
    }
    /* Everything new is bound and serving before anything old stops: a
     * port that is taken, or a bad token file, leaves the API as it was. */
    if (opts->listen && !where)
        r = -1;
    else if (opts->listen && same)
        r = token_load(opts->token_file, d);
    else if (opts->listen && (tcp_prepare(opts, d, &fd, &port, &bound) < 0 ||
                              !(tcp = listener_start(srv, fd, true, &bound))))
        r = -1;
    if (r < 0) {
        listener_stop(tcp);
        OPENSSL_cleanse(d, sizeof d);
        return -1;
    }
    pthread_mutex_lock(&srv->lock);
    if (opts->listen)
        memcpy(srv->token_digest, d, sizeof d);
    pthread_mutex_unlock(&srv->lock);
    OPENSSL_cleanse(d, sizeof d);
    free(srv->listen);
    srv->listen = VK_STEAL(where);
    if (same)
        return 0;
    old = srv->tcp_l;
    srv->tcp_l = tcp;
    srv->port = tcp ? port : -1;
    listener_stop(old);
    return 0;
}

int api_server_port(const struct api_server *srv)
{
    return srv->port;
}

void api_server_stop(struct api_server *srv)
{
    if (!srv)
        return;
    listener_stop(srv->unix_l);
    listener_stop(srv->tcp_l);
    if (srv->socket_path) /* we bound it */
        unlink(srv->socket_path);
    OPENSSL_cleanse(srv->token_digest, sizeof srv->token_digest);
    pthread_mutex_destroy(&srv->lock);
    free(srv->socket_path);
    free(srv->listen);
    free(srv->catalog_path);
    free(srv);
}
