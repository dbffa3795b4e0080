/* Tests of src/pipeline.c against a real qemu-nbd: every chunk comes back
 * in order, decompresses to the exact bytes of the disk with the right
 * sha256, all-zero chunks become zero extents; a failing callback, a
 * cancellation and a dying server stop the run cleanly (the -san twin
 * checks for leaks). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zstd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "src/datapath/datapath.h"
#include "tests/lib/nbdtest.h"

#define DISK_SIZE (40 * MiB)

static char *topdir;
static char image[300];
static uint8_t *ref; /* the disk's bytes */

struct record {
    bool zero;
    uint64_t offset, length;
    void *zst;
    size_t zstlen;
    uint8_t sha256[32];
};

struct collect {
    struct record *v;
    size_t n, cap;
    uint64_t last_done, total;
    unsigned int progress_calls;
    bool progress_backwards;
    /* Misbehaviour on demand. */
    size_t fail_data_at, fail_zero_at; /* 1-based call numbers; 0 = never */
    size_t cancel_at, kill_at;         /* on the Nth on_data call */
    size_t stall_at;                   /* sleep stall_ms first on the Nth on_data call */
    unsigned int stall_ms;
    size_t data_calls, zero_calls;
    volatile sig_atomic_t cancel;
    struct nbdtest_server *srv;
};

struct fixture {
    struct nbdtest_server srv;
    struct nbdread *r;
    struct nbdread_extent *ext;
    size_t n;
    struct collect c;
};

static struct record *record_add(struct collect *c)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->v = realloc(c->v, c->cap * sizeof(*c->v));
        assert_non_null(c->v);
    }
    memset(&c->v[c->n], 0, sizeof(c->v[0]));
    return &c->v[c->n++];
}

static int on_data(void *opaque, uint64_t offset, uint64_t length, const void *zst, size_t zstlen,
                   const uint8_t sha256[32])
{
    struct collect *c = opaque;
    struct record *rec;

    c->data_calls++;
    if (c->data_calls == c->fail_data_at) {
        vk_error(VK_ERR_NO_SPACE, "target 'test' is full");
        return -1;
    }
    if (c->data_calls == c->stall_at)
        usleep(c->stall_ms * 1000u);
    if (c->data_calls == c->cancel_at)
        c->cancel = 1;
    if (c->data_calls == c->kill_at)
        nbdtest_server_stop_sig(c->srv, SIGKILL);
    rec = record_add(c);
    rec->offset = offset;
    rec->length = length;
    rec->zst = malloc(zstlen);
    assert_non_null(rec->zst);
    memcpy(rec->zst, zst, zstlen);
    rec->zstlen = zstlen;
    memcpy(rec->sha256, sha256, 32);
    return 0;
}

static int on_zero(void *opaque, uint64_t offset, uint64_t length)
{
    struct collect *c = opaque;
    struct record *rec;

    c->zero_calls++;
    if (c->zero_calls == c->fail_zero_at) {
        vk_error(VK_ERR_IO, "cannot record a zero extent in the test");
        return -1;
    }
    rec = record_add(c);
    rec->zero = true;
    rec->offset = offset;
    rec->length = length;
    return 0;
}

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct collect *c = opaque;

    if (done < c->last_done || done > total)
        c->progress_backwards = true;
    c->last_done = done;
    c->total = total;
    c->progress_calls++;
}

/* ------------------------------------------------------------ the disk */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill_random(uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i < len; i += 8) {
        uint64_t v = rng();

        memcpy(ref + off + i, &v, len - i < 8 ? len - i : 8);
    }
}

static void fill_text(uint64_t off, uint64_t len)
{
    static const char *const words[] = {"backup ", "chunk ",  "virtual ", "disk ",
                                        "qemu ",   "extent ", "zstd ",    "\n"};

    for (uint64_t i = 0; i < len;) {
        const char *w = words[rng() % VK_ARRAY_SIZE(words)];
        size_t n = strlen(w);

        if (n > len - i)
            n = len - i;
        memcpy(ref + off + i, w, n);
        i += n;
    }
}

/* A 40 MiB disk: random, text-like, a pattern, an unaligned tail, holes,
 * and two regions written as real zero bytes (allocated in the qcow2, so
 * block status calls them data). */
static int disk_build(void)
{
    char raw[300];
    FILE *fp;

    ref = calloc(1, DISK_SIZE);
    if (!ref)
        return -1;
    fill_random(0, 3 * MiB);
    fill_text(3 * MiB, MiB + MiB / 2);
    memset(ref + 8 * MiB, 0x5a, MiB);
    fill_random(16 * MiB, 5 * MiB);
    fill_text(21 * MiB, 5 * MiB);
    fill_text(30 * MiB, 100 * 1000);
    snprintf(raw, sizeof(raw), "%s/disk.raw", topdir);
    snprintf(image, sizeof(image), "%s/disk.qcow2", topdir);
    fp = fopen(raw, "w");
    if (!fp || fwrite(ref, 1, DISK_SIZE, fp) != DISK_SIZE || fclose(fp) != 0)
        return -1;
    if (nbdtest_run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, image, (char *)NULL) <
            0 ||
        nbdtest_run("qemu-io", "-f", "qcow2", "-c", "write -P 0 6M 1M", "-c", "write -P 0 36M 4M",
                    image, (char *)NULL) < 0)
        return -1;
    unlink(raw);
    return 0;
}

/* ------------------------------------------------------------ fixture */

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f || nbdtest_server_start(&f->srv, topdir, "p", image, "qcow2", NULL) < 0) {
        free(f);
        return -1;
    }
    f->c.srv = &f->srv;
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < f->c.n; i++)
        free(f->c.v[i].zst);
    free(f->c.v);
    free(f->ext);
    nbdread_close(f->r);
    nbdtest_server_stop(&f->srv);
    free(f);
    return 0;
}

static void open_and_list(struct fixture *f, uint64_t chunk)
{
    f->r = nbdread_open(f->srv.sock, NBDTEST_EXPORT, NULL, 0);
    if (!f->r)
        fail_msg("nbdread_open: %s", vk_error_message());
    if (nbdread_extents(f->r, chunk, 0, &f->ext, &f->n) < 0)
        fail_msg("nbdread_extents: %s", vk_error_message());
}

static int run(struct fixture *f, const struct pipeline_options *o, struct pipeline_stats *st)
{
    const struct pipeline_callbacks cb = {on_data, on_zero, on_progress, &f->c};

    vk_error_clear();
    return pipeline_run(f->r, f->ext, f->n, o, &cb, st, 0);
}

/* ------------------------------------------------------------ checks */

static bool ref_is_zero(uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (ref[off + i])
            return false;
    return true;
}

/* Is all of [off, off+len) listed as DATA in the extent list? */
static bool listed_as_data(const struct fixture *f, uint64_t off, uint64_t len)
{
    uint64_t end = off + len;

    for (size_t i = 0; i < f->n && off < end; i++) {
        const struct nbdread_extent *e = &f->ext[i];

        if (e->kind == NBDREAD_DATA && e->offset <= off && off < e->offset + e->length)
            off = e->offset + e->length;
    }
    return off >= end;
}

static void check_data_record(const struct record *rec, uint64_t chunk)
{
    uint8_t *buf = malloc(rec->length);
    uint8_t sha[32];
    size_t n;

    assert_non_null(buf);
    assert_true(rec->length <= chunk);
    /* Never across the grid. */
    assert_int_equal(rec->offset / chunk, (rec->offset + rec->length - 1) / chunk);
    assert_int_equal(ZSTD_getFrameContentSize(rec->zst, rec->zstlen), rec->length);
    n = ZSTD_decompress(buf, rec->length, rec->zst, rec->zstlen);
    assert_false(ZSTD_isError(n));
    assert_int_equal(n, rec->length);
    assert_memory_equal(buf, ref + rec->offset, rec->length);
    SHA256(ref + rec->offset, rec->length, sha);
    assert_memory_equal(sha, rec->sha256, 32);
    assert_false(ref_is_zero(rec->offset, rec->length));
    free(buf);
}

/* The union of what was delivered is the union of what was listed. */
static void check_coverage(const struct fixture *f)
{
    size_t i = 0, j = 0;

    while (i < f->n || j < f->c.n) {
        uint64_t a0, a1, b0, b1;

        assert_true(i < f->n && j < f->c.n);
        a0 = f->ext[i].offset;
        a1 = a0 + f->ext[i].length;
        for (i++; i < f->n && f->ext[i].offset == a1; i++)
            a1 += f->ext[i].length;
        b0 = f->c.v[j].offset;
        b1 = b0 + f->c.v[j].length;
        for (j++; j < f->c.n && f->c.v[j].offset == b1; j++)
            b1 += f->c.v[j].length;
        assert_int_equal(a0, b0);
        assert_int_equal(a1, b1);
    }
}

static void check_run(const struct fixture *f, const struct pipeline_stats *st, uint64_t chunk)
{
    uint64_t data = 0, zero = 0, stored = 0, listed = 0, chunks = 0;

    for (size_t i = 0; i < f->n; i++)
        if (f->ext[i].kind == NBDREAD_DATA)
            listed += f->ext[i].length;
    for (size_t i = 0; i < f->c.n; i++) {
        const struct record *rec = &f->c.v[i];

        assert_true(rec->length > 0);
        if (i > 0) {
            const struct record *prev = &f->c.v[i - 1];

            /* In order, no overlap, and touching zero results merged. */
            assert_true(rec->offset >= prev->offset + prev->length);
            assert_false(rec->zero && prev->zero && rec->offset == prev->offset + prev->length);
        }
        if (rec->zero) {
            assert_true(ref_is_zero(rec->offset, rec->length));
            zero += rec->length;
        } else {
            check_data_record(rec, chunk);
            data += rec->length;
            stored += rec->zstlen;
            chunks++;
        }
    }
    check_coverage(f);
    assert_int_equal(st->data_bytes, data);
    assert_int_equal(st->zero_bytes, zero);
    assert_int_equal(st->stored_bytes, stored);
    assert_int_equal(st->chunks, chunks);
    assert_int_equal(st->read_bytes, listed);
    assert_false(f->c.progress_backwards);
    assert_true(f->c.progress_calls >= 1);
    assert_int_equal(f->c.last_done, listed);
    assert_int_equal(f->c.total, listed);
}

/* The regions written as zero bytes are listed as data and come back as
 * one merged zero extent each. */
static void check_zero_regions(const struct fixture *f)
{
    static const uint64_t regions[][2] = {{6 * MiB, 1 * MiB}, {36 * MiB, 4 * MiB}};

    for (size_t k = 0; k < VK_ARRAY_SIZE(regions); k++) {
        bool found = false;

        assert_true(listed_as_data(f, regions[k][0], regions[k][1]));
        for (size_t i = 0; i < f->c.n; i++)
            if (f->c.v[i].zero && f->c.v[i].offset <= regions[k][0] &&
                regions[k][0] + regions[k][1] <= f->c.v[i].offset + f->c.v[i].length)
                found = true;
        assert_true(found);
    }
}

static void run_and_check(void **state, const struct pipeline_options *o, uint64_t chunk)
{
    struct fixture *f = *state;
    struct pipeline_stats st;

    open_and_list(f, chunk);
    if (run(f, o, &st) < 0)
        fail_msg("pipeline_run: %s", vk_error_message());
    check_run(f, &st, chunk);
    check_zero_regions(f);
    assert_int_equal(st.zero_chunks, chunk == MiB ? 5 : 2);
    assert_true(st.stored_bytes < st.data_bytes);
}

static void test_one_thread(void **state)
{
    const struct pipeline_options o = {.threads = 1, .inflight = 1, .chunk_size = MiB};

    run_and_check(state, &o, MiB);
}

/* Several workers, reads split below the chunk size (4 reads per chunk). */
static void test_threads_split_reads(void **state)
{
    const struct pipeline_options o = {
        .threads = 3, .inflight = 4, .chunk_size = MiB, .max_read = 256 * 1024, .level = 1};

    run_and_check(state, &o, MiB);
}

static void test_defaults(void **state)
{
    run_and_check(state, NULL, 4 * MiB);
}

/* The disk read again through the same connection gives the same answer. */
static void test_twice_same_handle(void **state)
{
    struct fixture *f = *state;
    const struct pipeline_options o = {.threads = 2, .chunk_size = MiB};
    struct pipeline_stats st1, st2;
    size_t first;

    open_and_list(f, MiB);
    assert_int_equal(run(f, &o, &st1), 0);
    first = f->c.n;
    assert_int_equal(run(f, &o, &st2), 0);
    assert_int_equal(f->c.n, 2 * first);
    for (size_t i = 0; i < first; i++) {
        assert_int_equal(f->c.v[i].offset, f->c.v[first + i].offset);
        assert_int_equal(f->c.v[i].zero, f->c.v[first + i].zero);
        assert_memory_equal(f->c.v[i].sha256, f->c.v[first + i].sha256, 32);
    }
    assert_int_equal(st1.stored_bytes, st2.stored_bytes);
}

static void test_data_callback_fails(void **state)
{
    struct fixture *f = *state;
    const struct pipeline_options o = {.threads = 2, .chunk_size = MiB};
    struct pipeline_stats st;

    open_and_list(f, MiB);
    f->c.fail_data_at = 3;
    assert_int_equal(run(f, &o, &st), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NO_SPACE);
    assert_string_equal(vk_error_message(), "target 'test' is full");
    /* Nothing after the failing call. */
    assert_int_equal(f->c.data_calls, 3);
    assert_int_equal(st.chunks, 2);
    assert_int_equal(f->c.n, f->c.zero_calls + 2);
}

static void test_zero_callback_fails(void **state)
{
    struct fixture *f = *state;
    const struct pipeline_options o = {.threads = 2, .chunk_size = MiB};
    size_t data_calls;

    open_and_list(f, MiB);
    f->c.fail_zero_at = 1;
    assert_int_equal(run(f, &o, NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_IO);
    assert_string_equal(vk_error_message(), "cannot record a zero extent in the test");
    assert_int_equal(f->c.zero_calls, 1);
    /* The first zero result is the written zeros at 6 MiB: everything
     * before it (and nothing after) went through on_data. */
    data_calls = f->c.data_calls;
    for (size_t i = 0; i < f->c.n; i++)
        assert_true(f->c.v[i].offset < 6 * MiB);
    assert_int_equal(f->c.n, data_calls);
}

static void test_cancel_midway(void **state)
{
    struct fixture *f = *state;
    struct pipeline_options o = {.threads = 2, .chunk_size = MiB};

    open_and_list(f, MiB);
    o.cancel = &f->c.cancel;
    f->c.cancel_at = 2;
    assert_int_equal(run(f, &o, NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INTERRUPTED);
    assert_non_null(strstr(vk_error_message(), "interrupted"));
    assert_int_equal(f->c.data_calls, 2);
    assert_int_equal(f->c.zero_calls, 0);
}

static void test_cancel_before(void **state)
{
    struct fixture *f = *state;
    struct pipeline_options o = {.threads = 2, .chunk_size = MiB};

    open_and_list(f, MiB);
    f->c.cancel = 1;
    o.cancel = &f->c.cancel;
    assert_int_equal(run(f, &o, NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INTERRUPTED);
    assert_int_equal(f->c.data_calls + f->c.zero_calls, 0);
}

/* qemu-nbd killed while the run goes on: a clear error naming the export,
 * promptly (alarm() in main catches a hang).  The smallest ring, so that
 * reads are still to come when it dies. */
static void test_server_dies(void **state)
{
    struct fixture *f = *state;
    const struct pipeline_options o = {
        .threads = 1, .inflight = 2, .chunk_size = MiB, .ring_bytes = 1};
    uint64_t t0;

    open_and_list(f, MiB);
    f->c.kill_at = 1;
    t0 = vk_now_ns();
    assert_int_equal(run(f, &o, NULL), -1);
    assert_true(vk_now_ns() - t0 < 20ull * 1000000000);
    print_message("  error: %s\n", vk_error_message());
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(vk_error_message(), "export 'vda'"));
    assert_non_null(strstr(vk_error_message(), f->srv.sock));
    assert_true(f->c.data_calls < 10);
}

/* The ordered callback stalls for a second on its first chunk, then the
 * server dies.  The default ring (96 MiB) holds the whole 40 MiB disk: the
 * reader and the workers went on during the stall, so every chunk is
 * already read and the run succeeds, and the idle workers show in the
 * stats.  The smallest ring (2 x threads + inflight slots) still needs the
 * server after the stall and fails. */
static void test_readahead_during_stall(void **state)
{
    struct fixture *f = *state;
    struct pipeline_options o = {.threads = 2, .inflight = 4, .chunk_size = MiB};
    struct pipeline_stats st;

    open_and_list(f, MiB);
    assert_true(f->n > 2 * o.threads + o.inflight);
    f->c.stall_at = f->c.kill_at = 1;
    f->c.stall_ms = 1000;
    if (run(f, &o, &st) < 0)
        fail_msg("pipeline_run: %s", vk_error_message());
    check_run(f, &st, MiB);
    assert_true(st.worker_idle_ns >= 200ull * 1000000);
    assert_true(st.worker_idle_ns <= o.threads * st.wall_ns);
    assert_true(st.deliver_wait_ns < st.wall_ns);
}

static void test_small_ring_needs_server(void **state)
{
    struct fixture *f = *state;
    struct pipeline_options o = {.threads = 2, .inflight = 4, .chunk_size = MiB, .ring_bytes = 1};

    open_and_list(f, MiB);
    f->c.stall_at = f->c.kill_at = 1;
    f->c.stall_ms = 1000;
    assert_int_equal(run(f, &o, NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_true(f->c.data_calls < f->n);
}

/* Workers at a lower priority: same results, and only the workers are
 * reniced (the calling thread keeps its priority). */
static void test_worker_nice(void **state)
{
    const struct pipeline_options o = {.threads = 2, .chunk_size = MiB, .worker_nice = 5};
    int before, after;

    errno = 0;
    before = getpriority(PRIO_PROCESS, (id_t)gettid());
    assert_int_equal(errno, 0);
    run_and_check(state, &o, MiB);
    after = getpriority(PRIO_PROCESS, (id_t)gettid());
    assert_int_equal(after, before);
    assert_int_equal(getpriority(PRIO_PROCESS, 0), before);
}

static void test_bad_lists(void **state)
{
    struct fixture *f = *state;
    const struct nbdread_extent unordered[] = {
        {4 * MiB, MiB, NBDREAD_DATA},
        {2 * MiB, MiB, NBDREAD_DATA},
    };
    const struct nbdread_extent beyond[] = {{DISK_SIZE - MiB, 2 * MiB, NBDREAD_DATA}};
    const struct nbdread_extent zeros[] = {{0, MiB, NBDREAD_ZERO}, {MiB, MiB, NBDREAD_ZERO}};
    const struct pipeline_callbacks cb = {on_data, on_zero, NULL, &f->c};
    struct pipeline_stats st;

    open_and_list(f, MiB);
    assert_int_equal(pipeline_run(f->r, unordered, 2, NULL, &cb, NULL, 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_int_equal(pipeline_run(f->r, beyond, 1, NULL, &cb, NULL, 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_int_equal(f->c.n, 0);

    /* Nothing to read: no read at all, one merged zero extent. */
    assert_int_equal(pipeline_run(f->r, zeros, 2, NULL, &cb, &st, 0), 0);
    assert_int_equal(f->c.n, 1);
    assert_true(f->c.v[0].zero);
    assert_int_equal(f->c.v[0].offset, 0);
    assert_int_equal(f->c.v[0].length, 2 * MiB);
    assert_int_equal(st.read_bytes, 0);
    assert_int_equal(pipeline_run(f->r, NULL, 0, NULL, &cb, &st, 0), 0);
    assert_int_equal(f->c.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_thread, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_threads_split_reads, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_defaults, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_twice_same_handle, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_data_callback_fails, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_zero_callback_fails, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_midway, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_server_dies, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_readahead_during_stall, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_small_ring_needs_server, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_worker_nice, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_lists, fixture_setup, fixture_teardown),
    };
    int ret = 1;

    if (!nbdtest_have_tools()) {
        fprintf(stderr, "test-pipeline: qemu-img, qemu-io or qemu-nbd missing: skipped\n");
        return 77;
    }
    topdir = nbdtest_dir_create();
    if (!topdir)
        return 1;
    alarm(300); /* a hang is a failure */
    if (disk_build() == 0)
        ret = cmocka_run_group_tests(tests, NULL, NULL);
    else
        fprintf(stderr, "test-pipeline: cannot build the test disk\n");
    free(ref);
    nbdtest_dir_remove(topdir);
    return ret;
}
