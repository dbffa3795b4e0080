/* virtkeep - test helpers: qcow2 images built with qemu-img/qemu-io, served
 * by a qemu-nbd that the test starts and stops itself.  Shared by
 * test-nbdread.c and test-pipeline.c. */
#ifndef VIRTKEEP_TEST_NBDTEST_H
#define VIRTKEEP_TEST_NBDTEST_H

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NBDTEST_UNUSED __attribute__((unused))
#define NBDTEST_EXPORT "vda"
#define MiB (UINT64_C(1) << 20)

struct nbdtest_server {
    pid_t pid;
    char sock[108];
};

static NBDTEST_UNUSED bool nbdtest_have(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");

        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

static NBDTEST_UNUSED bool nbdtest_have_tools(void)
{
    return nbdtest_have("qemu-img") && nbdtest_have("qemu-io") && nbdtest_have("qemu-nbd");
}

static NBDTEST_UNUSED pid_t nbdtest_spawn(char *const argv[])
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);

        if (fd >= 0)
            dup2(fd, STDOUT_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Run ARGV (NULL-terminated) and return 0 when it exits with status 0. */
static NBDTEST_UNUSED int nbdtest_runv(char *const argv[])
{
    pid_t pid = nbdtest_spawn(argv);
    int status;

    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "nbdtest: '%s' failed (status 0x%x)\n", argv[0], status);
        return -1;
    }
    return 0;
}

/* nbdtest_run("qemu-img", "create", ..., NULL) */
static NBDTEST_UNUSED int nbdtest_run(const char *prog, ...)
{
    char *argv[32];
    size_t n = 0;
    va_list ap;

    argv[n++] = (char *)prog;
    va_start(ap, prog);
    while (n < 31 && (argv[n] = va_arg(ap, char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    return nbdtest_runv(argv);
}

/* A fresh directory under $TMPDIR (or /tmp); free() the result. */
static NBDTEST_UNUSED char *nbdtest_dir_create(void)
{
    const char *tmp = getenv("TMPDIR");
    char buf[256];

    snprintf(buf, sizeof(buf), "%s/vk-nbdtest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(buf) ? strdup(buf) : NULL;
}

static NBDTEST_UNUSED void nbdtest_dir_remove(char *dir)
{
    if (dir)
        nbdtest_run("rm", "-rf", dir, (char *)NULL);
    free(dir);
}

/* A full handshake (a bare connect makes qemu-nbd complain on stderr). */
static NBDTEST_UNUSED bool nbdtest_socket_ready(const char *path)
{
    struct nbd_handle *nbd = nbd_create();
    bool ok;

    if (!nbd)
        return false;
    ok = nbd_set_export_name(nbd, NBDTEST_EXPORT) == 0 && nbd_connect_unix(nbd, path) == 0;
    if (ok)
        nbd_shutdown(nbd, 0);
    nbd_close(nbd);
    return ok;
}

/* Serve IMAGE (format FMT) read-only as export "vda" on DIR/NAME.sock,
 * with the dirty bitmap BITMAP when not NULL.  Waits until it listens. */
static NBDTEST_UNUSED int nbdtest_server_start(struct nbdtest_server *srv, const char *dir,
                                               const char *name, const char *image, const char *fmt,
                                               const char *bitmap)
{
    char sockarg[160], fmtarg[64], bmarg[128];
    char *argv[] = {"qemu-nbd",
                    sockarg,
                    fmtarg,
                    "--read-only",
                    "--persistent",
                    "--shared=8",
                    "--export-name=" NBDTEST_EXPORT,
                    (char *)image,
                    NULL,
                    NULL};
    int status;

    snprintf(srv->sock, sizeof(srv->sock), "%s/%s.sock", dir, name);
    snprintf(sockarg, sizeof(sockarg), "--socket=%s", srv->sock);
    snprintf(fmtarg, sizeof(fmtarg), "--format=%s", fmt);
    if (bitmap) {
        snprintf(bmarg, sizeof(bmarg), "--bitmap=%s", bitmap);
        argv[7] = bmarg;
        argv[8] = (char *)image;
    }
    unlink(srv->sock);
    srv->pid = nbdtest_spawn(argv);
    if (srv->pid < 0)
        return -1;
    for (int i = 0; i < 1000; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};

        if (nbdtest_socket_ready(srv->sock))
            return 0;
        if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
            fprintf(stderr, "nbdtest: qemu-nbd for %s exited early\n", image);
            srv->pid = 0;
            return -1;
        }
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "nbdtest: qemu-nbd for %s did not start listening\n", image);
    return -1;
}

static NBDTEST_UNUSED void nbdtest_server_stop_sig(struct nbdtest_server *srv, int sig)
{
    if (srv->pid > 0) {
        kill(srv->pid, sig);
        waitpid(srv->pid, NULL, 0);
        unlink(srv->sock);
    }
    srv->pid = 0;
}

static NBDTEST_UNUSED void nbdtest_server_stop(struct nbdtest_server *srv)
{
    nbdtest_server_stop_sig(srv, SIGTERM);
}

#endif
