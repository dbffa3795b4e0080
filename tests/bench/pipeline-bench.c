/* virtkeep - pipeline_run alone over an NBD export: wall and CPU time.
 *
 *   pipeline-bench SOCKET EXPORT [LEVEL [THREADS [INFLIGHT [SINK [MAX_READ [NICE]]]]]]
 *
 * SINK is "null" (default: the callbacks only count) or the path of an
 * archive to write through archive_writer (page cache, no fsync), which
 * adds the ordered writer's work to the caller's thread.  MAX_READ is the
 * largest read request (0: the pipeline's default), NICE the workers'
 * worker_nice.  Prints one line of key=value pairs: wall and CPU seconds of
 * this process (the NBD server is measured by the caller) and the
 * pipeline's counters.  Not part of make check: tests/bench/pipeline-bench.sh
 * builds it against a build directory and runs it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/error.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/datapath/datapath.h"

struct bench {
    struct archive_writer *aw;
    int fd;
    uint64_t data, zero;
};

static int sink_write(void *opaque, const void *buf, size_t len)
{
    struct bench *b = opaque;

    if (vk_write_all(b->fd, buf, len) < 0) {
        vk_error_errno(errno, "cannot write the benchmark archive");
        return -1;
    }
    return 0;
}

static int on_data(void *opaque, uint64_t offset, uint64_t length, const void *zst, size_t zstlen,
                   const uint8_t sha256[32])
{
    struct bench *b = opaque;

    b->data += length;
    return b->aw ? archive_writer_add_chunk(b->aw, offset, length, zst, zstlen, sha256) : 0;
}

static int on_zero(void *opaque, uint64_t offset, uint64_t length)
{
    struct bench *b = opaque;

    b->zero += length;
    return b->aw ? archive_writer_add_zero(b->aw, offset, length) : 0;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int open_archive(struct bench *b, const char *path, uint64_t size, struct archive_sink *sk)
{
    struct archive_header hdr = {.disk = (char *)"vda",
                                 .virtual_size = size,
                                 .chunk_size = ARCHIVE_CHUNK_SIZE_DEFAULT,
                                 .backup_id = (char *)"bench",
                                 .level = (char *)"full",
                                 .created = 0};

    b->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (b->fd < 0) {
        perror(path);
        return -1;
    }
    *sk = (struct archive_sink){sink_write, b};
    b->aw = archive_writer_open(sk, &hdr, 0);
    return b->aw ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct pipeline_options o = {0};
    struct pipeline_callbacks cb = {on_data, on_zero, NULL, NULL};
    struct pipeline_stats st;
    struct bench b = {.fd = -1};
    struct archive_sink sk;
    struct nbdread_extent *ext = NULL;
    struct nbdread *r;
    struct rusage ru;
    size_t nr = 0;
    uint64_t t0;
    int rc;

    if (argc < 3) {
        fprintf(stderr,
                "usage: %s SOCKET EXPORT [LEVEL [THREADS [INFLIGHT [SINK [MAX_READ [NICE]]]]]]\n",
                argv[0]);
        return 2;
    }
    o.level = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 1;
    o.threads = argc > 4 ? (unsigned int)strtoul(argv[4], NULL, 10) : 2;
    o.inflight = argc > 5 ? (unsigned int)strtoul(argv[5], NULL, 10) : 0;
    o.max_read = argc > 7 ? (uint32_t)strtoul(argv[7], NULL, 10) : 0;
    o.worker_nice = argc > 8 ? (int)strtol(argv[8], NULL, 10) : 0;
    cb.opaque = &b;
    t0 = vk_now_ns();
    r = nbdread_open(argv[1], argv[2], NULL, 0);
    if (!r || nbdread_extents(r, 0, 0, &ext, &nr) < 0 ||
        (argc > 6 && strcmp(argv[6], "null") != 0 &&
         open_archive(&b, argv[6], nbdread_size(r), &sk) < 0)) {
        fprintf(stderr, "pipeline-bench: %s\n", vk_error_message());
        return 1;
    }
    rc = pipeline_run(r, ext, nr, &o, &cb, &st, 0);
    if (rc == 0 && b.aw && archive_writer_finish(b.aw, NULL) < 0)
        rc = -1;
    if (rc < 0)
        fprintf(stderr, "pipeline-bench: %s\n", vk_error_message());
    getrusage(RUSAGE_SELF, &ru);
    printf("wall_s=%.3f user_s=%.3f sys_s=%.3f read=%" PRIu64 " data=%" PRIu64 " zero=%" PRIu64
           " stored=%" PRIu64 " chunks=%" PRIu64 " zero_chunks=%" PRIu64
           " worker_idle_s=%.3f deliver_wait_s=%.3f\n",
           (double)(vk_now_ns() - t0) / 1e9, tv_s(ru.ru_utime), tv_s(ru.ru_stime), st.read_bytes,
           st.data_bytes, st.zero_bytes, st.stored_bytes, st.chunks, st.zero_chunks,
           (double)st.worker_idle_ns / 1e9, (double)st.deliver_wait_ns / 1e9);
    archive_writer_free(b.aw);
    if (b.fd >= 0)
        close(b.fd);
    free(ext);
    nbdread_close(r);
    return rc < 0 ? 1 : 0;
}
