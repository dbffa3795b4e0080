/* virtkeep - tests of virtkeepd's control API (src/api.c, api-client.c,
 * status.c): a real server on a temporary unix socket and on 127.0.0.1
 * with a token, fake daemon ops, and a temporary catalog. */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/error.h"
#include "common/util.h"
#include "src/api/api.h"
#include "src/conf/conf.h"

static const char conf_text[] = "[policy gold]\nrpo = 1h\nrto = 30m\n\n"
                                "[domain web1]\npolicy = gold\n\n"
                                "[domain db1]\npolicy = gold\n\n"
                                "[domain scratch]\n";

struct fixture {
    char dir[64];
    char *sock, *catalog, *token;
    struct config *cfg;
    struct api_server *srv;
    int64_t now;
    int64_t cancelled; /* what the fake job_cancel got */
    int64_t recent_job;
};

/* ---- fake daemon ops -------------------------------------------------- */

static int fake_jobs(void *ctx, struct api_job **jobs, size_t *n)
{
    (void)ctx;
    *jobs = calloc(1, sizeof **jobs);
    assert_non_null(*jobs);
    (*jobs)[0].id = 42;
    (*jobs)[0].kind = strdup("backup");
    (*jobs)[0].domain = strdup("web1");
    (*jobs)[0].level = strdup("inc");
    (*jobs)[0].state = strdup("running");
    (*jobs)[0].pid = 4242;
    (*jobs)[0].started = 1000;
    *n = 1;
    return 0;
}

static int fake_cancel(void *ctx, int64_t id)
{
    struct fixture *f = ctx;

    if (id != 42) {
        vk_error(VK_ERR_NOT_FOUND, "job %" PRId64 " is not running", id);
        return -1;
    }
    f->cancelled = id;
    return 0;
}

static int fake_next(void *ctx, const char *domain, struct sched_job *out)
{
    (void)ctx;
    memset(out, 0, sizeof *out);
    out->kind = SCHED_INC;
    out->domain = strdup(domain);
    out->due = 12345;
    out->reason = strdup("fake scheduler");
    return 0;
}

/* ---- catalog rows ----------------------------------------------------- */

static void backup_add(struct catalog *cat, const char *id, enum catalog_level level,
                       const char *parent, int64_t started, uint64_t stored)
{
    struct catalog_backup b = {
        .id = (char *)id,
        .domain = "web1",
        .level = level,
        .status = CATALOG_STATUS_RUNNING,
        .parent = (char *)parent,
        .checkpoint = (char *)id,
        .started = started,
        .bytes_stored = stored,
    };

    char key[128];
    struct catalog_location loc = {
        .backup_id = (char *)id, .disk = "vda", .target = "main", .key = key, .size = stored};

    snprintf(key, sizeof key, "web1/%s/vda.tar", id);
    assert_int_equal(catalog_backup_insert(cat, &b), 0);
    assert_int_equal(catalog_archive_add_location(cat, &loc), 0);
    assert_int_equal(catalog_backup_set_status(cat, id, CATALOG_STATUS_COMMITTED, NULL), 0);
}

static void catalog_fill(struct fixture *f)
{
    struct catalog *cat = catalog_open(f->catalog, 0);
    struct catalog_job job = {.kind = "copy", .domain = "web1", .target = "offsite"};

    assert_non_null(cat);
    backup_add(cat, "web1-full", CATALOG_LEVEL_FULL, NULL, f->now - 7200, 1000);
    backup_add(cat, "web1-inc", CATALOG_LEVEL_INC, "web1-full", f->now - 600, 100);
    assert_int_equal(catalog_domain_set(cat, "db1", NULL), 0);
    f->recent_job = catalog_job_insert(cat, &job);
    assert_true(f->recent_job > 0);
    catalog_close(cat);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static const struct api_ops *fake_ops(struct fixture *f)
{
    static struct api_ops ops;

    ops = (struct api_ops){
        .ctx = f, .jobs_active = fake_jobs, .job_cancel = fake_cancel, .next_job = fake_next};
    return &ops;
}

static struct api_server *server_start(struct fixture *f, const char *listen)
{
    struct api_server_options o = {
        .socket_path = f->sock,
        .listen = listen,
        .token_file = f->token,
        .catalog_path = f->catalog,
        .config = f->cfg,
    };

    return api_server_start(&o, fake_ops(f), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/vk-api-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->sock = vk_asprintf("%s/api.sock", f->dir);
    f->catalog = vk_asprintf("%s/catalog.db", f->dir);
    f->token = vk_asprintf("%s/token", f->dir);
    f->now = time(NULL);
    f->cfg = config_parse_buffer("test.conf", conf_text, strlen(conf_text), 0);
    assert_non_null(f->cfg);
    write_file(f->token, "s3cret-token\n", 0600);
    catalog_fill(f);
    f->srv = server_start(f, "127.0.0.1:0");
    if (!f->srv)
        fail_msg("cannot start the server: %s", vk_error_message());
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char *cmd = vk_asprintf("rm -rf '%s'", f->dir);

    api_server_stop(f->srv);
    config_free(f->cfg);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f->sock);
    free(f->catalog);
    free(f->token);
    free(f);
    return 0;
}

/* ---- an HTTP client --------------------------------------------------- */

struct reply {
    long status;
    char *body;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;

    r->body = realloc(r->body, r->len + size * n + 1);
    assert_non_null(r->body);
    memcpy(r->body + r->len, p, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

/* METHOD PATH on the socket (PORT 0) or on 127.0.0.1:PORT with AUTH. */
static struct reply http(struct fixture *f, const char *method, const char *path, int port,
                         const char *auth)
{
    struct reply r = {0};
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char url[256];

    assert_non_null(h);
    if (port)
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    else {
        snprintf(url, sizeof url, "http://localhost%s", path);
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, f->sock);
    }
    if (auth)
        hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return r;
}

static struct json_object *http_json(struct fixture *f, const char *method, const char *path,
                                     long want)
{
    struct reply r = http(f, method, path, 0, NULL);
    struct json_object *j;

    if (r.status != want)
        fail_msg("%s %s: HTTP %ld, expected %ld: %s", method, path, r.status, want, r.body);
    j = json_tokener_parse(r.body);
    assert_non_null(j);
    free(r.body);
    return j;
}

static struct json_object *get(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    assert_true(json_object_object_get_ex(o, key, &v));
    return v;
}

/* The error answers carry the HTTP status as "code" and a message. */
static void expect_error(struct json_object *j, int code)
{
    assert_int_equal(json_object_get_int(get(j, "code")), code);
    assert_true(strlen(json_object_get_string(get(j, "error"))) > 0);
    json_object_put(j);
}

/* ---- tests ------------------------------------------------------------ */

static void test_health(void **state)
{
    struct json_object *j = http_json(*state, "GET", "/v1/health", 200);

    assert_true(json_object_get_boolean(get(j, "ok")));
    assert_int_equal(json_object_get_int64(get(j, "pid")), getpid());
    json_object_put(j);
}

static struct json_object *domain_find(struct json_object *report, const char *name)
{
    struct json_object *arr = get(report, "domains");

    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *d = json_object_array_get_idx(arr, i);
        if (strcmp(json_object_get_string(get(d, "domain")), name) == 0)
            return d;
    }
    fail_msg("no status for domain '%s'", name);
    return NULL;
}

static void test_status(void **state)
{
    struct fixture *f = *state;
    struct json_object *j = http_json(f, "GET", "/v1/status", 200), *w, *d, *n;
    int64_t exposure;

    /* Domains with a policy only: web1 and db1, not scratch. */
    assert_int_equal(json_object_array_length(get(j, "domains")), 2);
    assert_true(json_object_get_boolean(get(j, "daemon")));
    w = domain_find(j, "web1");
    assert_string_equal(json_object_get_string(get(w, "last_backup")), "web1-inc");
    assert_int_equal(json_object_get_int64(get(w, "last_success")), f->now - 600);
    exposure = json_object_get_int64(get(w, "rpo_exposure"));
    assert_true(exposure >= 600 && exposure < 660);
    assert_int_equal(json_object_get_int64(get(w, "rpo")), 3600);
    assert_int_equal(json_object_get_int64(get(w, "rto")), 1800);
    assert_false(json_object_get_boolean(get(w, "rpo_violated")));
    assert_int_equal(json_object_get_int(get(w, "chain_length")), 2);
    assert_int_equal(json_object_get_int(get(w, "failures")), 0);
    n = get(w, "next_job");
    assert_string_equal(json_object_get_string(get(n, "kind")), "inc");
    assert_int_equal(json_object_get_int64(get(n, "due")), 12345);
    d = domain_find(j, "db1");
    assert_null(get(d, "last_backup"));
    assert_true(json_object_get_boolean(get(d, "rpo_violated")));
    assert_non_null(strstr(json_object_get_string(get(d, "rpo_reason")), "never been backed up"));
    assert_int_equal(json_object_get_int(get(j, "violations")), 1);
    json_object_put(j);

    j = http_json(f, "GET", "/v1/status?domain=web1", 200);
    assert_int_equal(json_object_array_length(get(j, "domains")), 1);
    json_object_put(j);
    expect_error(http_json(f, "GET", "/v1/status?domain=nosuch", 404), 404);
}

static void test_jobs_cancel(void **state)
{
    struct fixture *f = *state;
    struct json_object *j = http_json(f, "GET", "/v1/jobs", 200), *a, *r;

    a = get(j, "active");
    assert_int_equal(json_object_array_length(a), 1);
    assert_int_equal(json_object_get_int64(get(json_object_array_get_idx(a, 0), "id")), 42);
    assert_string_equal(json_object_get_string(get(json_object_array_get_idx(a, 0), "state")),
                        "running");
    r = get(j, "recent");
    assert_int_equal(json_object_array_length(r), 1);
    assert_int_equal(json_object_get_int64(get(json_object_array_get_idx(r, 0), "id")),
                     f->recent_job);
    json_object_put(j);

    j = http_json(f, "POST", "/v1/jobs/42/cancel", 200);
    assert_true(json_object_get_boolean(get(j, "cancelled")));
    json_object_put(j);
    assert_int_equal(f->cancelled, 42);
    expect_error(http_json(f, "POST", "/v1/jobs/7/cancel", 404), 404);
    expect_error(http_json(f, "POST", "/v1/jobs/abc/cancel", 400), 400);
    expect_error(http_json(f, "GET", "/v1/jobs/42/cancel", 405), 405);
}

static void test_not_found_method(void **state)
{
    struct fixture *f = *state;

    expect_error(http_json(f, "GET", "/v1/nothing", 404), 404);
    expect_error(http_json(f, "GET", "/", 404), 404);
    expect_error(http_json(f, "POST", "/v1/status", 405), 405);
    expect_error(http_json(f, "DELETE", "/metrics", 405), 405);
}

static void test_metrics_endpoint(void **state)
{
    struct fixture *f = *state;
    struct reply r = http(f, "GET", "/metrics", 0, NULL);

    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "# TYPE virtkeep_rpo_objective_seconds gauge\n"));
    assert_non_null(strstr(r.body, "virtkeep_rpo_objective_seconds{domain=\"web1\"} 3600\n"));
    assert_non_null(
        strstr(r.body, "virtkeep_objective_violated{domain=\"db1\",objective=\"rpo\"} 1\n"));
    assert_non_null(strstr(r.body, "virtkeep_chain_length{domain=\"web1\"} 2\n"));
    assert_non_null(strstr(r.body, "virtkeep_jobs_running 1\n"));
    free(r.body);
}

static void test_tcp_token(void **state)
{
    struct fixture *f = *state;
    int port = api_server_port(f->srv);
    struct reply r;

    assert_true(port > 0);
    r = http(f, "GET", "/v1/health", port, NULL);
    assert_int_equal(r.status, 401);
    free(r.body);
    r = http(f, "GET", "/v1/health", port, "Authorization: Bearer wrong");
    assert_int_equal(r.status, 401);
    free(r.body);
    r = http(f, "GET", "/v1/health", port, "Authorization: Bearer s3cret-token-and-more");
    assert_int_equal(r.status, 401);
    free(r.body);
    r = http(f, "GET", "/v1/health", port, "Authorization: Bearer s3cret-token");
    assert_int_equal(r.status, 200);
    free(r.body);
    /* The unix socket needs no token. */
    r = http(f, "GET", "/v1/health", 0, NULL);
    assert_int_equal(r.status, 200);
    free(r.body);
}

static void test_token_mode(void **state)
{
    struct fixture *f = *state;
    struct api_server_options o = {.listen = "127.0.0.1:0",
                                   .token_file = f->token,
                                   .catalog_path = f->catalog,
                                   .config = f->cfg};

    assert_int_equal(chmod(f->token, 0640), 0);
    assert_null(api_server_start(&o, NULL, 0));
    assert_int_equal(vk_error_code(), VK_ERR_PERMISSION);
    assert_int_equal(chmod(f->token, 0600), 0);
    /* Not loopback. */
    o.listen = "0.0.0.0:0";
    assert_null(api_server_start(&o, NULL, 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
}

static void test_socket_mode_and_stale(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *path = vk_asprintf("%s/stale.sock", f->dir);
    struct api_server_options o = {
        .socket_path = path, .catalog_path = f->catalog, .config = f->cfg};
    struct api_server *a, *b;
    struct stat st;
    int fd;

    assert_int_equal(stat(f->sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);

    /* A socket file nobody listens on: replaced. */
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    a = api_server_start(&o, NULL, 0);
    if (!a)
        fail_msg("stale socket not replaced: %s", vk_error_message());
    /* A live one: refused, and left alone. */
    b = api_server_start(&o, NULL, 0);
    assert_null(b);
    assert_int_equal(vk_error_code(), VK_ERR_BUSY);
    assert_int_equal(stat(path, &st), 0);
    api_server_stop(a);
    assert_int_equal(stat(path, &st), -1);

    /* Not a socket: refused, never deleted. */
    write_file(path, "data\n", 0600);
    assert_null(api_server_start(&o, NULL, 0));
    assert_int_equal(vk_error_code(), VK_ERR_BUSY);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    free(path);
}

static void test_client(void **state)
{
    struct fixture *f = *state;
    struct api_client cl;
    struct json_object *j = NULL;
    struct status_report rep;
    char *none = vk_asprintf("%s/none.sock", f->dir);

    assert_int_equal(api_client_init(&cl, NULL, f->sock, NULL, 0), 0);
    assert_int_equal(api_client_call(&cl, "GET", "/v1/status", &j), 0);
    assert_int_equal(status_report_from_json(j, &rep), 0);
    json_object_put(j);
    assert_int_equal(rep.count, 2);
    assert_int_equal(status_report_violations(&rep), 1);
    status_report_clear(&rep);
    assert_int_equal(api_client_call(&cl, "POST", "/v1/jobs/9/cancel", &j), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_null(j);
    api_client_clear(&cl);

    /* Nobody there: VK_ERR_NETWORK, which the CLI takes as "not running". */
    assert_int_equal(api_client_init(&cl, NULL, none, NULL, 0), 0);
    assert_int_equal(api_client_call(&cl, "GET", "/v1/health", &j), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(vk_error_message(), "virtkeepd is not running"));
    api_client_clear(&cl);
    free(none);
}

/* The client never sends the token to [daemon] listen by itself: only to
 * an address it is given (or $VIRTKEEP_DAEMON_URL), and there only to a
 * server run by root, this user or the owner of the token file. */
static void test_client_tcp_explicit(void **state)
{
    struct fixture *f = *state;
    int port = api_server_port(f->srv);
    char *none = vk_asprintf("%s/none.sock", f->dir);
    char *text = vk_asprintf("[daemon]\nsocket = %s\nlisten = 127.0.0.1:%d\ntoken_file = %s\n",
                             none, port, f->token);
    char *url = vk_asprintf("http://127.0.0.1:%d/", port);
    struct config *cfg = config_parse_buffer("t.conf", text, strlen(text), 0);
    struct api_client cl;
    struct json_object *j = NULL;

    assert_non_null(cfg);
    unsetenv("VIRTKEEP_DAEMON_URL");
    assert_int_equal(api_client_init(&cl, cfg, NULL, NULL, 0), 0);
    assert_int_equal(cl.count, 1);
    assert_non_null(cl.ends[0].socket_path);
    assert_int_equal(api_client_call(&cl, "GET", "/v1/health", &j), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    api_client_clear(&cl);

    /* Given: the server is ours, the token goes. */
    assert_int_equal(api_client_init(&cl, cfg, NULL, url, 0), 0);
    assert_int_equal(cl.count, 1);
    assert_null(cl.ends[0].socket_path);
    if (api_client_call(&cl, "GET", "/v1/health", &j) < 0)
        fail_msg("health over TCP: %s", vk_error_message());
    json_object_put(j);
    api_client_clear(&cl);

    /* From the environment: after the socket. */
    setenv("VIRTKEEP_DAEMON_URL", url + 7, 1);
    assert_int_equal(api_client_init(&cl, cfg, NULL, NULL, 0), 0);
    assert_int_equal(cl.count, 2);
    if (api_client_call(&cl, "GET", "/v1/health", &j) < 0)
        fail_msg("health over $VIRTKEEP_DAEMON_URL: %s", vk_error_message());
    json_object_put(j);
    api_client_clear(&cl);
    unsetenv("VIRTKEEP_DAEMON_URL");

    /* Not http://. */
    assert_int_equal(api_client_init(&cl, cfg, NULL, "https://127.0.0.1:1", 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    /* No token file configured: nothing is sent, and it says why. */
    assert_int_equal(api_client_init(&cl, NULL, NULL, url, 0), 0);
    assert_int_equal(api_client_call(&cl, "GET", "/v1/health", &j), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "token_file"));
    api_client_clear(&cl);
    config_free(cfg);
    free(url);
    free(text);
    free(none);
}

/* SIGHUP: a new listen port that is taken leaves the server as it was
 * (both listeners answer); a free one moves the TCP listener; the same
 * one keeps it. */
static void test_reload(void **state)
{
    struct fixture *f = *state;
    int port = api_server_port(f->srv), busy = socket(AF_INET, SOCK_STREAM, 0), taken;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    struct api_server_options o = {.socket_path = f->sock,
                                   .token_file = f->token,
                                   .catalog_path = f->catalog,
                                   .config = f->cfg};
    char listen_addr[64];
    struct reply r;

    assert_int_equal(bind(busy, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(busy, 1), 0);
    assert_int_equal(getsockname(busy, (struct sockaddr *)&sa, &len), 0);
    taken = ntohs(sa.sin_port);
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", taken);
    o.listen = listen_addr;
    assert_int_equal(api_server_reload(f->srv, &o), -1);
    assert_non_null(strstr(vk_error_message(), listen_addr));
    assert_int_equal(api_server_port(f->srv), port);
    r = http(f, "GET", "/v1/health", 0, NULL);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = http(f, "GET", "/v1/health", port, "Authorization: Bearer s3cret-token");
    assert_int_equal(r.status, 200);
    free(r.body);
    close(busy);

    /* A new token file that is not 0600: refused, the old token works. */
    write_file(f->token, "other-token\n", 0644);
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", port);
    assert_int_equal(api_server_reload(f->srv, &o), -1);
    assert_int_equal(vk_error_code(), VK_ERR_PERMISSION);
    r = http(f, "GET", "/v1/health", port, "Authorization: Bearer s3cret-token");
    assert_int_equal(r.status, 200);
    free(r.body);
    /* The same address with a new token: the listener stays, the token changes. */
    assert_int_equal(chmod(f->token, 0600), 0);
    assert_int_equal(api_server_reload(f->srv, &o), 0);
    assert_int_equal(api_server_port(f->srv), port);
    r = http(f, "GET", "/v1/health", port, "Authorization: Bearer other-token");
    assert_int_equal(r.status, 200);
    free(r.body);

    /* A free port: the listener moves. */
    o.listen = "127.0.0.1:0";
    assert_int_equal(api_server_reload(f->srv, &o), 0);
    assert_true(api_server_port(f->srv) > 0);
    assert_int_not_equal(api_server_port(f->srv), port);
    r = http(f, "GET", "/v1/health", api_server_port(f->srv), "Authorization: Bearer other-token");
    assert_int_equal(r.status, 200);
    free(r.body);
    /* No listen address: only the socket is left. */
    o.listen = NULL;
    assert_int_equal(api_server_reload(f->srv, &o), 0);
    assert_int_equal(api_server_port(f->srv), -1);
    r = http(f, "GET", "/v1/health", 0, NULL);
    assert_int_equal(r.status, 200);
    free(r.body);
}

/* The offline computation gives the numbers the server gives. */
static void test_status_offline_same(void **state)
{
    struct fixture *f = *state;
    struct catalog *cat = catalog_open(f->catalog, CATALOG_OPEN_EXISTING);
    struct status_report rep;
    struct json_object *j = http_json(f, "GET", "/v1/status?domain=web1", 200), *w;

    assert_non_null(cat);
    assert_int_equal(status_compute(cat, f->cfg, "web1", f->now, NULL, &rep, 0), 0);
    catalog_close(cat);
    w = domain_find(j, "web1");
    assert_false(rep.daemon);
    assert_string_equal(rep.items[0].last_backup, json_object_get_string(get(w, "last_backup")));
    assert_int_equal(rep.items[0].chain_length, json_object_get_int(get(w, "chain_length")));
    if (rep.items[0].rto_estimate < 0)
        assert_null(get(w, "rto_estimate"));
    else
        assert_true(rep.items[0].rto_estimate == json_object_get_double(get(w, "rto_estimate")));
    /* Offline, the next job comes from sched_next: a backup of some kind. */
    assert_true(rep.items[0].next_kind == SCHED_INC || rep.items[0].next_kind == SCHED_FULL);
    status_report_clear(&rep);
    json_object_put(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode_and_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_tcp_explicit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_offline_same, setup, teardown),
    };
    int r;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
