/* virtkeep - virtkeepd's workers: fork + exec of the virtkeep CLI, output
 * through pipes, a catalog job row per worker. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "src/daemon/daemon.h"

#ifndef BINDIR
#define BINDIR "/usr/bin"
#endif

char *daemon_cli_path(void)
{
    const char *env = getenv("VIRTKEEP_CLI");
    char self[PATH_MAX];
    ssize_t n;

    if (env && *env)
        return vk_strdup(env);
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        char *slash, *p;
        self[n] = '\0';
        if ((slash = strrchr(self, '/')) != NULL) {
            *slash = '\0';
            if (!(p = vk_asprintf("%s/virtkeep", self)))
                return NULL;
            if (access(p, X_OK) == 0)
                return p;
            free(p);
        }
    }
    return vk_strdup(BINDIR "/virtkeep");
}

void daemon_worker_free(struct daemon_worker *w)
{
    if (!w)
        return;
    if (w->out_fd >= 0)
        close(w->out_fd);
    if (w->err_fd >= 0)
        close(w->err_fd);
    free(w->kind);
    free(w->domain);
    free(w->target);
    free(w->backup_id);
    free(w->level);
    free(w->reason);
    free(w->out);
    free(w);
}

bool daemon_domain_busy(const struct daemon *d, const char *domain)
{
    for (size_t i = 0; i < d->n_workers; i++)
        if (d->workers[i]->domain && strcmp(d->workers[i]->domain, domain) == 0)
            return true;
    return false;
}

/* argv: CLI, global options, then ARGS (NULL-terminated). */
static char **argv_build(const struct daemon *d, const char *const *args)
{
    size_t n = 0, k = 0;
    char **v;

    while (args[n])
        n++;
    if (!(v = vk_calloc(n + 8, sizeof *v)))
        return NULL;
    v[k++] = d->cli_path;
    if (d->config_path) {
        v[k++] = "--config";
        v[k++] = d->config_path;
    }
    v[k++] = "--catalog";
    v[k++] = d->catalog_path;
    if (d->connect_uri) {
        v[k++] = "-c";
        v[k++] = d->connect_uri;
    }
    for (size_t i = 0; i < n; i++)
        v[k++] = (char *)args[i];
    v[k] = NULL;
    return v;
}

/* In the child: only async-signal-safe calls until exec. */
static void __attribute__((noreturn)) child_exec(char **argv, int out_w, int err_w, pid_t parent)
{
    sigset_t none;
    int null = open("/dev/null", O_RDONLY);

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        _exit(127);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    execv(argv[0], argv);
    _exit(127);
}

static int worker_spawn(struct daemon *d, struct daemon_worker *w, const char *const *args)
{
    CLEANUP_FREE char **argv = argv_build(d, args);
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    pid_t parent = getpid();

    if (!argv)
        return -1;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        vk_error_errno(errno, "cannot create the pipes of a %s worker", w->kind);
        goto fail;
    }
    w->pid = fork();
    if (w->pid < 0) {
        vk_error_errno(errno, "cannot start a %s worker", w->kind);
        goto fail;
    }
    if (w->pid == 0)
        child_exec(argv, out[1], err[1], parent);
    close(out[1]);
    close(err[1]);
    w->out_fd = out[0];
    w->err_fd = err[0];
    fcntl(w->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(w->err_fd, F_SETFL, O_NONBLOCK);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    return -1;
}

/* ARGS of a backup worker, then --fence EPOCH (FENCE holds the number). */
static const char **args_fenced(const struct daemon_worker *w, const char *const *args, char *fence,
                                size_t size)
{
    size_t n = 0;
    const char **v;

    while (args[n])
        n++;
    if (!(v = vk_calloc(n + 3, sizeof *v)))
        return NULL;
    memcpy(v, args, n * sizeof *v);
    if (strcmp(w->kind, "backup") == 0 && w->epoch > 0) {
        snprintf(fence, size, "%" PRId64, w->epoch);
        v[n++] = "--fence";
        v[n++] = fence;
    }
    return v;
}

static int worker_add_leased(struct daemon *d, struct daemon_worker *w, const char *const *args)
{
    struct daemon_worker **v;
    char id[24], fence[24];
    CLEANUP_FREE const char **argv = args_fenced(w, args, fence, sizeof fence);
    struct catalog_job row = {.kind = w->kind,
                              .domain = w->domain,
                              .target = w->target,
                              .backup_id = w->backup_id,
                              .state = CATALOG_JOB_RUNNING,
                              .epoch = w->epoch};

    if (!argv || !(v = vk_realloc_array(d->workers, d->n_workers + 1, sizeof *v)))
        return -1;
    d->workers = v;
    w->out_fd = w->err_fd = -1;
    w->started = (int64_t)time(NULL);
    w->t0_ns = vk_now_ns();
    w->own_row = strcmp(w->kind, "copy") == 0 || strcmp(w->kind, "drill") == 0;
    if (worker_spawn(d, w, argv) < 0)
        return -1;
    /* Not reaped before the row is recorded: /proc has it, even if it died. */
    if (vk_proc_start_time(w->pid, &w->pid_start) < 0) {
        vk_debug("%s", vk_error_message());
        w->pid_start = 0;
    }
    row.pid = w->pid;
    row.pid_start = w->pid_start > INT64_MAX ? 0 : (int64_t)w->pid_start;
    row.started = w->started;
    w->job_id = w->own_row ? 0 : catalog_job_insert(d->cat, &row);
    if (w->job_id < 0)
        vk_warn("cannot record the %s job of domain '%s': %s", w->kind, w->domain,
                vk_error_message());
    pthread_mutex_lock(&d->lock);
    d->workers[d->n_workers++] = w;
    pthread_mutex_unlock(&d->lock);
    snprintf(id, sizeof id, "%" PRId64, w->job_id);
    /* copy and drill record their own row: its id is known once adopted */
    vk_info("%s%s%s%s of domain '%s'%s%s%s%s started (pid %d)%s%s", w->job_id > 0 ? "job " : "",
            w->job_id > 0 ? id : "", w->job_id > 0 ? ": " : "", w->kind, w->domain,
            w->level ? " level " : "", w->level ? w->level : "", w->target ? " to target " : "",
            w->target ? w->target : "", (int)w->pid, w->reason ? ": " : "",
            w->reason ? w->reason : "");
    return 0;
}

/* Start W under its domain's lease (claimed here, released on failure). */
static int worker_add(struct daemon *d, struct daemon_worker *w, const char *const *args)
{
    if (daemon_lease_claim(d, w->domain, &w->epoch) < 0)
        return -1;
    if (worker_add_leased(d, w, args) == 0)
        return 0;
    daemon_lease_release(d, w->domain, w->epoch);
    w->epoch = 0;
    return -1;
}

static struct daemon_worker *worker_new(const char *kind, const char *domain, const char *target,
                                        const char *backup_id, const char *level,
                                        const char *reason)
{
    struct daemon_worker *w = vk_calloc(1, sizeof *w);

    if (!w)
        return NULL;
    w->out_fd = w->err_fd = -1;
    if (!(w->kind = vk_strdup(kind)) || !(w->domain = vk_strdup(domain)) ||
        (target && !(w->target = vk_strdup(target))) ||
        (backup_id && !(w->backup_id = vk_strdup(backup_id))) ||
        (level && !(w->level = vk_strdup(level))) || (reason && !(w->reason = vk_strdup(reason)))) {
        daemon_worker_free(w);
        return NULL;
    }
    return w;
}

int daemon_job_start(struct daemon *d, const struct sched_job *job)
{
    const char *level = job->kind == SCHED_FULL ? "full" : "inc";
    struct daemon_worker *w;

    if (job->kind == SCHED_COPY) {
        const char *args[] = {"copy", job->backup_id, "--to", job->target, "--json", NULL};
        w = worker_new("copy", job->domain, job->target, job->backup_id, NULL, job->reason);
        if (w && worker_add(d, w, args) == 0)
            return 0;
    } else {
        const char *args[] = {"backup",  job->domain, "--target", job->target,
                              "--level", level,       "--json",   NULL};
        if (!job->target) {
            vk_error(VK_ERR_INVALID, "the policy of domain '%s' has no target", job->domain);
            return -1;
        }
        w = worker_new("backup", job->domain, job->target, NULL, level, job->reason);
        if (w && worker_add(d, w, args) == 0)
            return 0;
    }
    daemon_worker_free(w);
    return -1;
}

int daemon_job_start_simple(struct daemon *d, const char *kind, const char *domain)
{
    const char *args[] = {kind, domain, "--json", NULL};
    struct daemon_worker *w = worker_new(kind, domain, NULL, NULL, NULL, NULL);

    if (w && worker_add(d, w, args) == 0)
        return 0;
    daemon_worker_free(w);
    return -1;
}

static void err_keep(struct daemon_worker *w, const char *buf, size_t n)
{
    if (n >= sizeof w->err) {
        buf += n - sizeof w->err;
        n = sizeof w->err;
    }
    if (w->err_len + n > sizeof w->err) {
        size_t drop = w->err_len + n - sizeof w->err;
        memmove(w->err, w->err + drop, w->err_len - drop);
        w->err_len -= drop;
    }
    memcpy(w->err + w->err_len, buf, n);
    w->err_len += n;
}

void daemon_job_read(struct daemon_worker *w, int fd)
{
    char buf[8192];
    ssize_t n;

    while ((n = read(fd, buf, sizeof buf)) > 0) {
        if (fd == w->err_fd) {
            err_keep(w, buf, (size_t)n);
            continue;
        }
        if (w->out_len + (size_t)n > DAEMON_OUTPUT_MAX)
            continue;
        char *p = realloc(w->out, w->out_len + (size_t)n + 1);
        if (!p)
            continue;
        w->out = p;
        memcpy(w->out + w->out_len, buf, (size_t)n);
        w->out_len += (size_t)n;
        w->out[w->out_len] = '\0';
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close(fd);
        if (fd == w->out_fd)
            w->out_fd = -1;
        else
            w->err_fd = -1;
    }
}

char *daemon_worker_error(const char *err, size_t len)
{
    static const char *const prefixes[] = {"virtkeep: error: ", "virtkeep: "};
    size_t end = len, start;

    while (end > 0 && (err[end - 1] == '\n' || err[end - 1] == ' ' || err[end - 1] == '\r'))
        end--;
    if (end == 0)
        return NULL;
    start = end;
    while (start > 0 && err[start - 1] != '\n')
        start--;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t pl = strlen(prefixes[i]);
        if (end - start > pl && strncmp(err + start, prefixes[i], pl) == 0) {
            start += pl;
            break;
        }
    }
    return vk_strndup(err + start, end - start);
}

/* The row the worker W inserted itself: same pid, started since W. */
static void adopt_one(struct daemon *d, struct daemon_worker *w)
{
    struct catalog_jobs *jobs = NULL;

    if (catalog_job_list(d->cat, NULL, 0, 50, &jobs) < 0) {
        vk_debug("cannot list jobs: %s", vk_error_message());
        return;
    }
    for (size_t i = 0; i < jobs->count; i++) {
        const struct catalog_job *j = &jobs->items[i];
        if (j->pid != w->pid || j->started < w->started - 1 || strcmp(j->kind, w->kind) != 0)
            continue;
        pthread_mutex_lock(&d->lock);
        w->job_id = j->id;
        pthread_mutex_unlock(&d->lock);
        vk_debug("the %s worker (pid %d) runs job %" PRId64, w->kind, (int)w->pid, j->id);
        break;
    }
    catalog_jobs_free(jobs);
}

void daemon_job_adopt(struct daemon *d)
{
    for (size_t i = 0; i < d->n_workers; i++)
        if (d->workers[i]->own_row && d->workers[i]->job_id == 0)
            adopt_one(d, d->workers[i]);
}
