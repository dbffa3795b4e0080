/* virtkeep - move one file through a transport, timed (tests/bench/ssh-bench.sh).
 *
 *   ssh-bench put URL KEY FILE [BLOCK]   upload FILE as KEY, BLOCK bytes per write
 *   ssh-bench get URL KEY OUT [BLOCK]    download KEY into OUT, BLOCK bytes per read
 *
 * Options come from the environment: VK_SSH_KEY (key_file) and
 * VK_SSH_KNOWN_HOSTS (known_hosts).  BLOCK defaults to 256 KiB, about the
 * size of the archive writer's chunk members.  Prints one line:
 * "bytes=N seconds=S commit_seconds=C" (C: the put's commit, which sends
 * what is still in flight, syncs the file on the server, closes and
 * renames it; 0 for a get).  Exit status 0 on success, 1 on failure.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/transport.h"

#define DEFAULT_BLOCK (256u * 1024)

static uint64_t commit_ns; /* how long the put's commit took (sync, close, rename) */

static int bench_put(struct transport *t, const char *key, int fd, char *buf, size_t block,
                     uint64_t *bytes)
{
    uint64_t t0;
    int r;

    struct transport_writer *w = transport_put_begin(t, key, 0);
    ssize_t n;

    if (!w)
        return -1;
    while ((n = read(fd, buf, block)) > 0) {
        if (transport_writer_write(w, buf, (size_t)n) < 0) {
            transport_writer_abort(w);
            return -1;
        }
        *bytes += (uint64_t)n;
    }
    if (n < 0) {
        vk_error_errno(errno, "cannot read the input file");
        transport_writer_abort(w);
        return -1;
    }
    t0 = vk_now_ns();
    r = transport_writer_commit(w);
    commit_ns = vk_now_ns() - t0;
    return r;
}

static int bench_get(struct transport *t, const char *key, int fd, char *buf, size_t block,
                     uint64_t *bytes)
{
    ssize_t n;

    while ((n = transport_get_range(t, key, *bytes, buf, block)) > 0) {
        if (vk_write_all(fd, buf, (size_t)n) < 0)
            return -1;
        *bytes += (uint64_t)n;
    }
    return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct transport_options o = {.key_file = getenv("VK_SSH_KEY"),
                                  .known_hosts = getenv("VK_SSH_KNOWN_HOSTS")};
    unsigned long long block = DEFAULT_BLOCK;
    CLEANUP_FREE char *buf = NULL;
    CLEANUP_CLOSE int fd = -1;
    struct transport *t;
    uint64_t bytes = 0, t0;
    bool put;
    int r;

    if (argc < 5 || (strcmp(argv[1], "put") != 0 && strcmp(argv[1], "get") != 0) ||
        (argc > 5 && vk_parse_uint(argv[5], 1ULL << 30, &block) < 0) || block == 0) {
        fprintf(stderr, "usage: ssh-bench put|get URL KEY FILE [BLOCK]\n");
        return 2;
    }
    vk_log_init("ssh-bench"); /* VIRTKEEP_DEBUG=1 shows the negotiated cipher and MAC */
    put = strcmp(argv[1], "put") == 0;
    fd = put ? open(argv[4], O_RDONLY | O_CLOEXEC)
             : open(argv[4], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(argv[4]);
        return 1;
    }
    if (!(buf = vk_malloc(block)) || !(t = transport_open("bench", argv[2], &o))) {
        fprintf(stderr, "ssh-bench: %s\n", vk_error_message());
        return 1;
    }
    t0 = vk_now_ns();
    r = put ? bench_put(t, argv[3], fd, buf, block, &bytes)
            : bench_get(t, argv[3], fd, buf, block, &bytes);
    if (r == 0)
        printf("bytes=%" PRIu64 " seconds=%.3f commit_seconds=%.3f\n", bytes,
               (double)(vk_now_ns() - t0) / 1e9, (double)commit_ns / 1e9);
    else
        fprintf(stderr, "ssh-bench: %s\n", vk_error_message());
    transport_close(t);
    return r == 0 ? 0 : 1;
}
