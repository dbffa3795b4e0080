/* virtkeep - virtkeepd's loop: configuration, ticks, signals. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/daemon/daemon.h"
#include "src/sched/sched.h"

/* Configurations replaced by SIGHUP stay alive until the end: the API
 * server and the workers' bookkeeping may still point into them. */
static struct config **old_configs;
static size_t n_old_configs;

static int sig_fd = -1;

static void sig_handler(int sig)
{
    unsigned char c = (unsigned char)sig;
    int saved = errno;

    if (sig_fd >= 0 && write(sig_fd, &c, 1) < 0) {
        /* the pipe is full: the loop wakes up anyway */
    }
    errno = saved;
}

static int signals_install(struct daemon *d)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    struct sigaction sa;

    if (pipe2(d->sigpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        vk_error_errno(errno, "cannot create the signal pipe");
        return -1;
    }
    sig_fd = d->sigpipe[1];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static struct config *config_read(const struct daemon *d, char **used)
{
    CLEANUP_FREE char *dflt = NULL;
    struct stat st;

    *used = NULL;
    if (d->opt.config_path) {
        *used = vk_strdup(d->opt.config_path);
        return *used ? config_parse_file(d->opt.config_path, 0) : NULL;
    }
    if (!(dflt = config_default_path(geteuid())))
        return NULL;
    if (stat(dflt, &st) < 0 && errno == ENOENT) {
        vk_info("no configuration file '%s': nothing is scheduled", dflt);
        return config_new_empty(dflt);
    }
    *used = VK_STEAL(dflt);
    return config_parse_file(*used, 0);
}

static void settings_apply(struct daemon *d)
{
    const struct config_daemon *cd = &d->cfg->daemon;
    const char *log = d->opt.log ? d->opt.log : cd->log;

    d->tick = d->opt.tick ? d->opt.tick : cd->tick ? cd->tick : DAEMON_TICK_DEFAULT;
    d->limits.per_host = cd->max_jobs ? cd->max_jobs : DAEMON_MAX_JOBS_DEFAULT;
    d->limits.per_target = cd->max_target_jobs ? cd->max_target_jobs : DAEMON_TARGET_JOBS_DEFAULT;
    vk_log_set_sink(log && strcmp(log, "syslog") == 0 ? VK_LOG_SINK_SYSLOG : vk_log_sink_auto());
}

int daemon_config_load(struct daemon *d)
{
    char *used = NULL;
    struct config *cfg = config_read(d, &used), **v;

    if (!cfg) {
        free(used);
        if (d->cfg)
            vk_log_error("cannot reload the configuration: %s; keeping the previous one",
                         vk_error_message());
        return -1;
    }
    if (d->cfg) {
        if (!(v = vk_realloc_array(old_configs, n_old_configs + 1, sizeof *v))) {
            config_free(cfg);
            free(used);
            return -1;
        }
        old_configs = v;
        old_configs[n_old_configs++] = d->cfg;
        vk_info("configuration reloaded from '%s'", used ? used : cfg->file);
    }
    pthread_mutex_lock(&d->lock);
    d->cfg = cfg;
    pthread_mutex_unlock(&d->lock);
    free(d->config_path);
    d->config_path = used;
    settings_apply(d);
    return 0;
}

static int paths_resolve(struct daemon *d)
{
    const char *uri = getenv("LIBVIRT_DEFAULT_URI");

    if (d->opt.catalog_path)
        d->catalog_path = vk_strdup(d->opt.catalog_path);
    else if (d->cfg->catalog_path)
        d->catalog_path = vk_strdup(d->cfg->catalog_path);
    else
        d->catalog_path = config_default_catalog(geteuid());
    d->connect_uri = vk_strdup(d->opt.connect_uri ? d->opt.connect_uri
                               : uri && *uri      ? uri
                                                  : "qemu:///system");
    d->socket_path = vk_strdup(d->opt.socket_path      ? d->opt.socket_path
                               : d->cfg->daemon.socket ? d->cfg->daemon.socket
                                                       : API_DEFAULT_SOCKET);
    d->cli_path = daemon_cli_path();
    return d->catalog_path && d->connect_uri && d->socket_path && d->cli_path ? 0 : -1;
}

struct daemon *daemon_new(const struct daemon_options *opt)
{
    struct daemon *d = vk_calloc(1, sizeof *d);

    if (!d)
        return NULL;
    d->opt = *opt;
    d->sigpipe[0] = d->sigpipe[1] = -1;
    pthread_mutex_init(&d->lock, NULL);
    if (daemon_config_load(d) < 0 || paths_resolve(d) < 0 ||
        !(d->cat = catalog_open(d->catalog_path, 0))) {
        daemon_free(d);
        return NULL;
    }
    return d;
}

void daemon_free(struct daemon *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_workers; i++)
        daemon_worker_free(d->workers[i]);
    free(d->workers);
    for (size_t i = 0; i < d->n_domains; i++) {
        free(d->domains[i].name);
        sched_job_clear(&d->domains[i].next);
    }
    free(d->domains);
    catalog_close(d->cat);
    config_free(d->cfg);
    for (size_t i = 0; i < n_old_configs; i++)
        config_free(old_configs[i]);
    free(old_configs);
    old_configs = NULL;
    n_old_configs = 0;
    free(d->config_path);
    free(d->catalog_path);
    free(d->connect_uri);
    free(d->cli_path);
    free(d->socket_path);
    for (int i = 0; i < 2; i++)
        if (d->sigpipe[i] >= 0)
            close(d->sigpipe[i]);
    sig_fd = -1;
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* ---- the loop --------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Does the CLI have `drill`?  `virtkeep help drill` says so. */
static bool drill_probe(const struct daemon *d)
{
    pid_t pid = fork();
    int status = 0;

    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl(d->cli_path, d->cli_path, "help", "drill", (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool prunes_pending(const struct daemon *d)
{
    for (size_t i = 0; i < d->n_domains; i++)
        if (d->domains[i].prune_pending)
            return true;
    return false;
}

static void signals_handle(struct daemon *d)
{
    unsigned char c;

    while (read(d->sigpipe[0], &c, 1) == 1) {
        if (c == SIGTERM || c == SIGINT) {
            if (!d->stop)
                vk_info("signal %d: stopping", c);
            d->stop = true;
        } else if (c == SIGHUP) {
            vk_info("SIGHUP: reloading the configuration");
            /* The API server borrows the configuration: move it to the new
             * one, the listeners only once the new ones are bound. */
            if (daemon_config_load(d) == 0 && daemon_api_reload(d) < 0)
                vk_log_error("cannot apply the new [daemon] listen or token_file to the control "
                             "API: %s; it keeps serving as before",
                             vk_error_message());
        }
    }
}

static void poll_once(struct daemon *d, int timeout_ms)
{
    struct pollfd *fds = vk_calloc(1 + 2 * d->n_workers, sizeof *fds);
    size_t n = 0;

    if (!fds) {
        usleep(100000);
        return;
    }
    fds[n++] = (struct pollfd){.fd = d->sigpipe[0], .events = POLLIN};
    for (size_t i = 0; i < d->n_workers; i++) {
        if (d->workers[i]->out_fd >= 0)
            fds[n++] = (struct pollfd){.fd = d->workers[i]->out_fd, .events = POLLIN};
        if (d->workers[i]->err_fd >= 0)
            fds[n++] = (struct pollfd){.fd = d->workers[i]->err_fd, .events = POLLIN};
    }
    if (poll(fds, n, timeout_ms) > 0) {
        for (size_t k = 1; k < n; k++) {
            if (!fds[k].revents)
                continue;
            for (size_t i = 0; i < d->n_workers; i++)
                if (d->workers[i]->out_fd == fds[k].fd || d->workers[i]->err_fd == fds[k].fd)
                    daemon_job_read(d->workers[i], fds[k].fd);
        }
    }
    free(fds);
    signals_handle(d);
    daemon_job_adopt(d);
    daemon_job_reap(d);
}

int daemon_run(struct daemon *d)
{
    int64_t next_tick = 0;
    bool ticked = false;

    if (signals_install(d) < 0 || daemon_recover(d) < 0 ||
        daemon_fleet_start(d, (int64_t)time(NULL)) < 0)
        return -1;
    if (daemon_api_start(d) < 0)
        return -1;
    d->drill_supported = drill_probe(d);
    if (!d->drill_supported)
        vk_debug("'%s help drill' failed: the CLI has no drill command, no drills are run",
                 d->cli_path);
    vk_info("virtkeepd started: tick %" PRIu64 "s, at most %u job(s), %u per target, catalog '%s'",
            d->tick, d->limits.per_host, d->limits.per_target, d->catalog_path);
    while (!d->stop) {
        int64_t t = now_ms();
        if ((!d->opt.once || !ticked) && t >= next_tick) {
            if (daemon_tick(d, t / 1000) < 0)
                vk_log_error("scheduler pass failed: %s", vk_error_message());
            next_tick = t + (int64_t)d->tick * 1000;
            ticked = true;
        } else if (d->opt.once) {
            daemon_prunes_start(d);
        }
        if (d->opt.once && ticked && d->n_workers == 0 && !prunes_pending(d))
            break;
        poll_once(d, d->opt.once ? 200 : (int)(next_tick > t ? next_tick - t : 0));
    }
    daemon_jobs_stop(d);
    daemon_api_stop(d);
    vk_info("virtkeepd stopped");
    return 0;
}
