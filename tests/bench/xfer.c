/* virtkeep - benchmark driver: move bytes through transport.h, timed.
 *
 *   xfer [OPTIONS] put URL KEY FILE|-      stream FILE (or stdin, size unknown) to KEY
 *   xfer [OPTIONS] get URL KEY FILE        read KEY whole into FILE (/dev/null works)
 *   xfer [OPTIONS] stat URL KEY            print the size of KEY
 *   xfer [OPTIONS] delete URL KEY
 *
 * Options:
 *   --block SIZE        bytes per write / ranged read (default 8M, as `virtkeep copy`)
 *   --progress SIZE     every SIZE bytes, print "progress bytes=N rss_kib=R hwm_kib=H" on
 *                       stderr (the process's resident set then, and its peak so far)
 *   --key-file F --known-hosts F --user U             ssh:// credentials
 *   --access-key ID --secret-file F --region R        s3:// credentials
 *
 * On success put and get print one line on stdout:
 *   op=put bytes=N seconds=S mib_per_s=X peak_rss_kib=K
 * (seconds from the open of the target to the commit or the last read; the
 * peak from getrusage).  Exit status 0, or 1 with the error on stderr, 2 for
 * usage errors.  Built by `make bench` (tests/bench/remote.sh); not a test.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"
#include "transport/transport.h"

struct xfer_opts {
    struct transport_options topts;
    size_t block;
    uint64_t progress; /* 0: none */
};

static void usage(void)
{
    fprintf(stderr, "usage: xfer [--block SIZE] [--progress SIZE] [--key-file F] "
                    "[--known-hosts F] [--user U] [--access-key ID] [--secret-file F] "
                    "[--region R]\n"
                    "            put URL KEY FILE|- | get URL KEY FILE | stat URL KEY | "
                    "delete URL KEY\n");
    exit(2);
}

static long peak_rss_kib(void)
{
    struct rusage ru;

    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

/* VmRSS and VmHWM from /proc/self/status, in KiB (-1 when unknown). */
static void rss_now(long *rss, long *hwm)
{
    CLEANUP_FCLOSE FILE *fp = fopen("/proc/self/status", "re");
    char line[256];

    *rss = *hwm = -1;
    while (fp && fgets(line, sizeof line, fp)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = strtol(line + 6, NULL, 10);
    }
}

/* Print a progress line each time BYTES crosses a multiple of the step. */
static void progress(const struct xfer_opts *o, uint64_t before, uint64_t bytes)
{
    long rss, hwm;

    if (!o->progress || before / o->progress == bytes / o->progress)
        return;
    rss_now(&rss, &hwm);
    fprintf(stderr, "progress bytes=%" PRIu64 " rss_kib=%ld hwm_kib=%ld\n", bytes, rss, hwm);
}

static void report(const char *op, uint64_t bytes, uint64_t t0)
{
    double secs = (double)(vk_now_ns() - t0) / 1e9;

    printf("op=%s bytes=%" PRIu64 " seconds=%.3f mib_per_s=%.1f peak_rss_kib=%ld\n", op, bytes,
           secs, secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0, peak_rss_kib());
}

/* Read up to LEN bytes (less only at the end of the input). */
static ssize_t read_full(int fd, char *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = read(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int do_put(struct transport *t, const char *key, const char *file, const struct xfer_opts *o,
                  uint64_t t0)
{
    CLEANUP_CLOSE int fd = strcmp(file, "-") == 0 ? dup(0) : open(file, O_RDONLY | O_CLOEXEC);
    CLEANUP_FREE char *buf = vk_malloc(o->block);
    struct transport_writer *w;
    uint64_t bytes = 0;
    ssize_t n;

    if (fd < 0) {
        vk_error_errno(errno, "cannot open the input '%s'", file);
        return -1;
    }
    if (!buf || !(w = transport_put_begin(t, key, 0)))
        return -1;
    while ((n = read_full(fd, buf, o->block)) > 0) {
        if (transport_writer_write(w, buf, (size_t)n) < 0) {
            transport_writer_abort(w);
            return -1;
        }
        progress(o, bytes, bytes + (uint64_t)n);
        bytes += (uint64_t)n;
    }
    if (n < 0) {
        vk_error_errno(errno, "cannot read the input '%s'", file);
        transport_writer_abort(w);
        return -1;
    }
    if (transport_writer_commit(w) < 0)
        return -1;
    report("put", bytes, t0);
    return 0;
}

static int do_get(struct transport *t, const char *key, const char *file, const struct xfer_opts *o,
                  uint64_t t0)
{
    CLEANUP_CLOSE int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CLEANUP_FREE char *buf = vk_malloc(o->block);
    struct transport_stat st;
    uint64_t off = 0;

    if (fd < 0) {
        vk_error_errno(errno, "cannot open the output '%s'", file);
        return -1;
    }
    if (!buf || transport_stat(t, key, &st) < 0)
        return -1;
    while (off < st.size) {
        size_t want = st.size - off < o->block ? (size_t)(st.size - off) : o->block;
        ssize_t n = transport_get_range(t, key, off, buf, want);
        if (n < 0)
            return -1;
        if (n == 0) {
            vk_error(VK_ERR_CORRUPT, "'%s' ends at %" PRIu64 ", before its size %" PRIu64, key, off,
                     st.size);
            return -1;
        }
        if (vk_write_all(fd, buf, (size_t)n) < 0)
            return -1;
        progress(o, off, off + (uint64_t)n);
        off += (uint64_t)n;
    }
    report("get", off, t0);
    return 0;
}

static int run(const char *op, const char *url, const char *key, const char *file,
               const struct xfer_opts *o)
{
    uint64_t t0 = vk_now_ns();
    struct transport *t = transport_open(NULL, url, &o->topts);
    struct transport_stat st;
    int r = -1;

    if (!t)
        return -1;
    if (strcmp(op, "put") == 0 && file)
        r = do_put(t, key, file, o, t0);
    else if (strcmp(op, "get") == 0 && file)
        r = do_get(t, key, file, o, t0);
    else if (strcmp(op, "stat") == 0 && !file && (r = transport_stat(t, key, &st)) == 0)
        printf("%" PRIu64 "\n", st.size);
    else if (strcmp(op, "delete") == 0 && !file)
        r = transport_delete(t, key);
    else
        usage();
    transport_close(t);
    return r;
}

static uint64_t size_arg(const char *name, const char *v)
{
    uint64_t n;

    if (vk_size_parse(v, &n) < 0 || n == 0 || n > (1ull << 30)) {
        fprintf(stderr, "xfer: %s '%s' is not a size from 1 byte to 1 GiB\n", name, v);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"block", required_argument, NULL, 'b'},
                                             {"progress", required_argument, NULL, 'p'},
                                             {"key-file", required_argument, NULL, 'k'},
                                             {"known-hosts", required_argument, NULL, 'K'},
                                             {"user", required_argument, NULL, 'u'},
                                             {"access-key", required_argument, NULL, 'a'},
                                             {"secret-file", required_argument, NULL, 's'},
                                             {"region", required_argument, NULL, 'r'},
                                             {NULL, 0, NULL, 0}};
    struct xfer_opts o = {.block = 8u << 20};
    int c;

    vk_log_init("xfer");
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o.block = (size_t)size_arg("--block", optarg);
            break;
        case 'p':
            o.progress = size_arg("--progress", optarg);
            break;
        case 'k':
            o.topts.key_file = optarg;
            break;
        case 'K':
            o.topts.known_hosts = optarg;
            break;
        case 'u':
            o.topts.user = optarg;
            break;
        case 'a':
            o.topts.access_key_id = optarg;
            break;
        case 's':
            o.topts.secret_key_file = optarg;
            break;
        case 'r':
            o.topts.region = optarg;
            break;
        default:
            usage();
        }
    }
    if (argc - optind < 3 || argc - optind > 4)
        usage();
    if (run(argv[optind], argv[optind + 1], argv[optind + 2],
            argc - optind == 4 ? argv[optind + 3] : NULL, &o) < 0) {
        fprintf(stderr, "xfer: %s\n", vk_error_message() ? vk_error_message() : "failed");
        return 1;
    }
    return 0;
}
