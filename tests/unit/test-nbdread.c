/* Tests of src/nbdread.c against a real qemu-nbd: the extent lists of full
 * and incremental backups, the block-status loop past 4 GiB, and the errors
 * for a missing server, export or meta context. */
#include <config.h>

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "src/datapath/datapath.h"
#include "tests/lib/nbdtest.h"

static char *topdir;

struct fixture {
    char image[256];
    struct nbdtest_server srv;
    struct nbdread *r;
    struct nbdread_extent *ext;
    size_t n;
};

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;

    nbdread_close(f->r);
    free(f->ext);
    nbdtest_server_stop(&f->srv);
    if (f->image[0])
        unlink(f->image);
    free(f);
    return 0;
}

/* Create DIR/NAME.qcow2 of SIZE with qemu-img OPTS (may be NULL). */
static void image_create(struct fixture *f, const char *name, const char *size, const char *opts)
{
    snprintf(f->image, sizeof(f->image), "%s/%s.qcow2", topdir, name);
    if (opts)
        assert_int_equal(nbdtest_run("qemu-img", "create", "-q", "-f", "qcow2", "-o", opts,
                                     f->image, size, (char *)NULL),
                         0);
    else
        assert_int_equal(
            nbdtest_run("qemu-img", "create", "-q", "-f", "qcow2", f->image, size, (char *)NULL),
            0);
}

static void serve_and_list(struct fixture *f, const char *bitmap, uint64_t chunk)
{
    char ctx[128];

    assert_int_equal(nbdtest_server_start(&f->srv, topdir, "s", f->image, "qcow2", bitmap), 0);
    snprintf(ctx, sizeof(ctx), "qemu:dirty-bitmap:%s", bitmap ? bitmap : "");
    f->r = nbdread_open(f->srv.sock, NBDTEST_EXPORT, bitmap ? ctx : NULL, 0);
    if (!f->r)
        fail_msg("nbdread_open: %s", vk_error_message());
    if (nbdread_extents(f->r, chunk, 0, &f->ext, &f->n) < 0)
        fail_msg("nbdread_extents: %s", vk_error_message());
}

static void relist(struct fixture *f, uint64_t chunk)
{
    free(f->ext);
    f->ext = NULL;
    if (nbdread_extents(f->r, chunk, 0, &f->ext, &f->n) < 0)
        fail_msg("nbdread_extents: %s", vk_error_message());
}

static void expect_extents(const struct fixture *f, const struct nbdread_extent *want, size_t n)
{
    for (size_t i = 0; i < f->n; i++)
        print_message("  got %s %" PRIu64 " +%" PRIu64 "\n",
                      f->ext[i].kind == NBDREAD_DATA ? "data" : "zero", f->ext[i].offset,
                      f->ext[i].length);
    assert_int_equal(f->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(f->ext[i].offset, want[i].offset);
        assert_int_equal(f->ext[i].length, want[i].length);
        assert_int_equal(f->ext[i].kind, want[i].kind);
    }
}

/* Full backup of a sparse image: data is listed and cut on the grid, zero
 * clusters (unallocated, read as zero) are not listed at all, data written
 * as zero bytes is still data (the pipeline finds it is zero). */
static void test_full_sparse(void **state)
{
    struct fixture *f = *state;
    const struct nbdread_extent want4[] = {
        {1 * MiB, 3 * MiB, NBDREAD_DATA},  {20 * MiB, 1 * MiB, NBDREAD_DATA},
        {30 * MiB, 2 * MiB, NBDREAD_DATA}, {32 * MiB, 4 * MiB, NBDREAD_DATA},
        {60 * MiB, 3 * MiB, NBDREAD_DATA},
    };

    image_create(f, "sparse", "64M", NULL);
    assert_int_equal(nbdtest_run("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 3M", "-c",
                                 "write -z 8M 1M", "-c", "write -P 0xcd 16M 1M", "-c",
                                 "write -z 16M 1M", "-c", "write -P 0 20M 1M", "-c",
                                 "write -P 0x11 30M 6M", "-c", "write -P 0x12 60M 1M", "-c",
                                 "write -P 0x13 61M 2M", f->image, (char *)NULL),
                     0);
    serve_and_list(f, NULL, 4 * MiB);
    assert_int_equal(nbdread_size(f->r), 64 * MiB);
    expect_extents(f, want4, VK_ARRAY_SIZE(want4));

    /* The same disk on a 1 MiB grid: every data extent is cut at each MiB. */
    relist(f, 1 * MiB);
    assert_int_equal(f->n, 3 + 1 + 6 + 3);
    for (size_t i = 0; i < f->n; i++) {
        assert_int_equal(f->ext[i].kind, NBDREAD_DATA);
        assert_int_equal(f->ext[i].length, 1 * MiB);
        assert_int_equal(f->ext[i].offset % MiB, 0);
    }
}

/* Allocated regions that read as zero (a metadata-preallocated qcow2) are
 * zero extents, merged with each other, never cut on the grid. */
static void test_full_allocated_zero(void **state)
{
    struct fixture *f = *state;
    const struct nbdread_extent want[] = {
        {0, 1 * MiB, NBDREAD_ZERO},
        {1 * MiB, 1 * MiB, NBDREAD_DATA},
        {2 * MiB, 14 * MiB, NBDREAD_ZERO},
    };

    image_create(f, "prealloc", "16M", "preallocation=metadata");
    assert_int_equal(
        nbdtest_run("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 1M", f->image, (char *)NULL),
        0);
    serve_and_list(f, NULL, 1 * MiB);
    expect_extents(f, want, VK_ARRAY_SIZE(want));
}

/* A 6 GiB disk: block status answers at most 4 GiB per call, so the data
 * beyond 4 GiB is only found if the loop goes on to the end. */
static void test_full_beyond_4g(void **state)
{
    struct fixture *f = *state;
    const uint64_t G = 1024 * MiB;
    const struct nbdread_extent want[] = {
        {0, 64 * 1024, NBDREAD_DATA},
        {5 * G, 64 * 1024, NBDREAD_DATA},
        {6 * G - 3 * MiB, 1 * MiB, NBDREAD_DATA},
        {6 * G - 64 * 1024, 64 * 1024, NBDREAD_DATA},
    };

    image_create(f, "big", "6G", NULL);
    assert_int_equal(nbdtest_run("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", "-c",
                                 "write -P 0x5b 5G 64k", "-c", "write -P 0x5c 6141M 1M", "-c",
                                 "write -P 0x5d 6291392k 64k", f->image, (char *)NULL),
                     0);
    serve_and_list(f, NULL, 4 * MiB);
    assert_int_equal(nbdread_size(f->r), 6 * G);
    expect_extents(f, want, VK_ARRAY_SIZE(want));
}

/* Incremental with a persistent bitmap: only dirty regions come back; the
 * dirty ones that now read as zero (write -z, discard) are zero extents. */
static void test_incremental(void **state)
{
    struct fixture *f = *state;
    const struct nbdread_extent want[] = {
        {1 * MiB, 1 * MiB, NBDREAD_DATA},    {4 * MiB, 1 * MiB, NBDREAD_ZERO},
        {6 * MiB, 1 * MiB, NBDREAD_ZERO},    {9 * MiB, 2 * MiB, NBDREAD_ZERO},
        {20 * MiB, 64 * 1024, NBDREAD_DATA}, {40 * MiB - 64 * 1024, 64 * 1024, NBDREAD_DATA},
        {40 * MiB, 64 * 1024, NBDREAD_DATA},
    };

    image_create(f, "inc", "64M", NULL);
    assert_int_equal(nbdtest_run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 8M", "-c",
                                 "write -P 0x11 10M 1M", f->image, (char *)NULL),
                     0);
    assert_int_equal(nbdtest_run("qemu-img", "bitmap", "--add", f->image, "bm0", (char *)NULL), 0);
    /* 9M..10M was a hole and is zeroed again; 10M..11M held data and is
     * discarded: both dirty, both zero, merged into one zero extent. */
    assert_int_equal(nbdtest_run("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 1M", "-c",
                                 "write -z 4M 1M", "-c", "discard 6M 1M", "-c", "write -z 9M 1M",
                                 "-c", "discard 10M 1M", "-c", "write -P 0x33 20M 64k", "-c",
                                 "write -P 0x44 40896k 128k", f->image, (char *)NULL),
                     0);
    serve_and_list(f, "bm0", 4 * MiB);
    expect_extents(f, want, VK_ARRAY_SIZE(want));
}

/* The server lacks the dirty bitmap: the error names socket, export and
 * context. */
static void test_missing_bitmap(void **state)
{
    struct fixture *f = *state;
    const char *msg;

    image_create(f, "nobm", "16M", NULL);
    assert_int_equal(nbdtest_server_start(&f->srv, topdir, "s", f->image, "qcow2", NULL), 0);
    vk_error_clear();
    f->r = nbdread_open(f->srv.sock, NBDTEST_EXPORT, "qemu:dirty-bitmap:backup-vda", 0);
    assert_null(f->r);
    assert_int_equal(vk_error_code(), VK_ERR_UNSUPPORTED);
    msg = vk_error_message();
    assert_non_null(strstr(msg, "qemu:dirty-bitmap:backup-vda"));
    assert_non_null(strstr(msg, "export 'vda'"));
    assert_non_null(strstr(msg, f->srv.sock));
}

static void test_connect_errors(void **state)
{
    struct fixture *f = *state;
    char path[300];

    snprintf(path, sizeof(path), "%s/nothing-here.sock", topdir);
    vk_error_clear();
    assert_null(nbdread_open(path, "vda", NULL, 0));
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(vk_error_message(), path));

    image_create(f, "wrongexp", "16M", NULL);
    assert_int_equal(nbdtest_server_start(&f->srv, topdir, "s", f->image, "qcow2", NULL), 0);
    vk_error_clear();
    assert_null(nbdread_open(f->srv.sock, "vdz", NULL, 0));
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(vk_error_message(), "export 'vdz'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_sparse, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_full_allocated_zero, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_full_beyond_4g, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_incremental, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_missing_bitmap, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connect_errors, fixture_setup, fixture_teardown),
    };
    int ret;

    if (!nbdtest_have_tools()) {
        fprintf(stderr, "test-nbdread: qemu-img, qemu-io or qemu-nbd missing: skipped\n");
        return 77;
    }
    topdir = nbdtest_dir_create();
    if (!topdir)
        return 1;
    alarm(300); /* a hang is a failure */
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    nbdtest_dir_remove(topdir);
    return ret;
}
