/* Restore and verify against real archives and a real qemu-nbd.
 *
 * The fixture (tests/lib/restore-fixture.c) writes a 3-deep chain (full, inc,
 * inc) of a 64 MiB disk into a file:// target with the archive writer and
 * archive_compressor, records the backups, disks and locations in a
 * catalog (under the target URL, as the backup engine does for a URL
 * target) and stores each manifest beside its archives.  It keeps the
 * expected disk at every point.  Restores are read back with qemu-img
 * convert and compared byte for byte. */
#include <config.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/error.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/restore/restore.h"
#include "tests/lib/restore-fixture.h"
#include "transport/transport.h"

#define MiB (1024ull * 1024)
#define DISK (64 * MiB)
#define DOM "web1"
#define UUID "6f1c3b2a-0d4e-4f5a-9b8c-7d6e5f4a3b2c"

static void fill(uint8_t *p, uint64_t len, unsigned int seed)
{
    for (uint64_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 31u + (unsigned)(i / 64) * 7u + (unsigned)(i % 13));
}

static struct restore_fixture fx;

/* full: data 0-32M except a hole at 24-28M, an allocated zero range at
 *       40-44M, a 1 MiB tail chunk at 60M;
 * inc1: rewrites 4-8M whole and 9-10M (part of the chunk 8-12M);
 * inc2: rewrites 4-8M again, zeroes 16-20M (data in the full), new data
 *       at 48-52M (never allocated before). */
static const struct restore_fixture_extent full_spec[] = {
    {0, 4 * MiB, 0, 1},        {4 * MiB, 4 * MiB, 0, 2},
    {8 * MiB, 4 * MiB, 0, 3},  {12 * MiB, 4 * MiB, 0, 4},
    {16 * MiB, 4 * MiB, 0, 5}, {20 * MiB, 4 * MiB, 0, 6},
    {28 * MiB, 4 * MiB, 0, 7}, {40 * MiB, 4 * MiB, 1, 0},
    {60 * MiB, MiB, 0, 8},     {0, 0, -1, 0},
};
static const struct restore_fixture_extent inc1_spec[] = {
    {4 * MiB, 4 * MiB, 0, 11}, {9 * MiB, MiB, 0, 12}, {0, 0, -1, 0}};
static const struct restore_fixture_extent inc2_spec[] = {{4 * MiB, 4 * MiB, 0, 21},
                                                          {16 * MiB, 4 * MiB, 1, 0},
                                                          {48 * MiB, 4 * MiB, 0, 22},
                                                          {0, 0, -1, 0}};

static int setup(void **state)
{
    static const char tools[] = "command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null";

    (void)state;
    if (restore_fixture_shell("%s", tools) != 0) {
        fprintf(stderr, "SKIP: qemu-nbd or qemu-img is missing\n");
        exit(77);
    }
    fx = (struct restore_fixture){
        .domain = DOM, .uuid = UUID, .disk_size = DISK, .compress_level = 3, .fill = fill};
    restore_fixture_setup(&fx, "restore");
    restore_fixture_backup_add(&fx, "full", NULL, 1795827723, full_spec);
    restore_fixture_backup_add(&fx, "inc", fx.ids[0], 1795827723 + 3600, inc1_spec);
    restore_fixture_backup_add(&fx, "inc", fx.ids[1], 1795827723 + 7200, inc2_spec);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    restore_fixture_teardown(&fx);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static void options_init(struct restore_options *o, const char *dest)
{
    memset(o, 0, sizeof *o);
    o->domain = DOM;
    o->at = INT64_MAX;
    o->dest_dir = dest;
}

/* Read the qcow2 back as raw and compare with EXPECT. */
static void image_check(const char *qcow2, const uint8_t *expect)
{
    char raw[600];
    uint8_t *buf = malloc(DISK);
    int fd;

    snprintf(raw, sizeof raw, "%s.raw", qcow2);
    assert_int_equal(
        restore_fixture_shell("qemu-img convert -f qcow2 -O raw '%s' '%s'", qcow2, raw), 0);
    assert_true((fd = open(raw, O_RDONLY)) >= 0);
    assert_int_equal(vk_pread_all(fd, buf, DISK, 0), (ssize_t)DISK);
    close(fd);
    unlink(raw);
    for (uint64_t off = 0; off < DISK; off += MiB)
        if (memcmp(buf + off, expect + off, MiB) != 0)
            fail_msg("the restored image '%s' differs in the MiB at offset %" PRIu64, qcow2, off);
    free(buf);
}

/* No file in DIR but (maybe) the ones named in ALLOWED. */
static void dir_only(const char *dir, const char *allowed)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (!allowed || strcmp(e->d_name, allowed) != 0)
            fail_msg("unexpected file '%s' in '%s'", e->d_name, dir);
    }
    closedir(d);
}

/* Is [OFF, OFF+LEN) reported as zero without data by qemu-img map? */
static bool map_is_zero(const char *qcow2, uint64_t off, uint64_t len)
{
    char cmd[600];
    FILE *p;
    char *text = calloc(1, 1 << 20);
    size_t n;
    bool ok = true, covered = false;

    snprintf(cmd, sizeof cmd, "qemu-img map --output=json '%s'", qcow2);
    assert_non_null((p = popen(cmd, "r")));
    n = fread(text, 1, (1 << 20) - 1, p);
    pclose(p);
    text[n] = '\0';
    struct json_object *arr = json_tokener_parse(text);
    assert_non_null(arr);
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *r = json_object_array_get_idx(arr, i), *v;
        uint64_t s, l;
        json_object_object_get_ex(r, "start", &v);
        s = (uint64_t)json_object_get_int64(v);
        json_object_object_get_ex(r, "length", &v);
        l = (uint64_t)json_object_get_int64(v);
        if (s + l <= off || s >= off + len)
            continue;
        covered = true;
        json_object_object_get_ex(r, "zero", &v);
        ok = ok && json_object_get_boolean(v);
        json_object_object_get_ex(r, "data", &v);
        ok = ok && !json_object_get_boolean(v);
    }
    json_object_put(arr);
    free(text);
    return ok && covered;
}

static char *dest_new(const char *name)
{
    return vk_asprintf("%s/%s", fx.dir, name);
}

/* ---------------------------------------------------------------- tests */

static uint64_t frame_size_of(size_t backup, uint64_t chunk_offset);

/* Every point of the chain restores to exactly the disk at that point. */
static void test_every_point(void **state)
{
    (void)state;
    for (size_t i = 0; i < fx.nr; i++) {
        char name[32];
        struct restore_options o;
        struct restore_result res;
        snprintf(name, sizeof name, "point%zu", i);
        char *dest = dest_new(name), *img = vk_asprintf("%s/vda.qcow2", dest);
        options_init(&o, dest);
        o.backup_id = fx.ids[i];
        if (restore_run(fx.cat, &o, &res, 0) < 0)
            fail_msg("restore of '%s' failed: %s", fx.ids[i], vk_error_message());
        assert_int_equal(vk_strv_len(res.chain), i + 1);
        assert_string_equal(res.chain[i], fx.ids[i]);
        assert_int_equal(res.nr_disks, 1);
        assert_string_equal(res.disks[0].path, img);
        image_check(img, fx.points[i]);
        dir_only(dest, "vda.qcow2");
        restore_result_clear(&res);
        free(dest);
        free(img);
    }
}

/* Point in time: between inc1 and inc2 gives inc1; before the full, none. */
static void test_at_time(void **state)
{
    char *dest = dest_new("at"), *img = vk_asprintf("%s/vda.qcow2", dest);
    struct restore_options o;
    struct restore_result res;

    (void)state;
    options_init(&o, dest);
    assert_int_equal(reader_time_parse("2026-11-28T04:00:00+01:00", 0, &o.at), 0);
    assert_int_equal(restore_run(fx.cat, &o, &res, 0), 0);
    assert_string_equal(res.chain[vk_strv_len(res.chain) - 1], fx.ids[1]);
    image_check(img, fx.points[1]);
    restore_result_clear(&res);
    o.at = 1795827723 - 1;
    o.force = true;
    assert_int_equal(restore_run(fx.cat, &o, &res, 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    restore_result_clear(&res);
    free(dest);
    free(img);
}

/* Zero ranges come out as zero clusters, holes stay holes, each chunk is
 * fetched once, and the statistics add up against the fixture. */
static void test_zero_clusters_and_counts(void **state)
{
    char *dest = dest_new("latest"), *img = vk_asprintf("%s/vda.qcow2", dest);
    struct restore_options o;
    struct restore_result res;
    struct catalog_job *job;
    struct catalog_rate rate;

    (void)state;
    options_init(&o, dest);
    assert_int_equal(restore_run(fx.cat, &o, &res, 0), 0);
    image_check(img, fx.points[2]);
    assert_true(map_is_zero(img, 16 * MiB, 4 * MiB)); /* zeroed by inc2 over full data */
    assert_true(map_is_zero(img, 40 * MiB, 4 * MiB)); /* zero extent of the full */
    assert_true(map_is_zero(img, 24 * MiB, 4 * MiB)); /* never held: a hole */
    assert_false(map_is_zero(img, 48 * MiB, 4 * MiB));

    const struct restore_disk_result *d = &res.disks[0];
    /* Data written: everything the chain holds as data at the newest point:
     * full 0-24M, 28-32M, 60-61M minus 16-20M (zeroed), plus 48-52M. */
    assert_int_equal(d->bytes_written, 24 * MiB + 4 * MiB + MiB - 4 * MiB + 4 * MiB);
    assert_int_equal(d->zero_bytes, 8 * MiB);
    /* Chunks: full 0-4, 8-12 (part of it), 12-16, 20-24, 28-32, 60;
     * inc1 9-10; inc2 4-8, 48-52.  The 4-8M chunks of full and inc1 and the
     * 16-20M chunk of the full are never read. */
    assert_int_equal(d->nr_chunks, 9);
    assert_int_equal(d->raw_bytes, 5 * 4 * MiB + MiB + MiB + 2 * 4 * MiB);
    assert_int_equal(d->frame_bytes, d->map.chunk_frame_bytes);
    assert_int_equal(d->raw_bytes, d->map.chunk_raw_bytes);
    assert_true(d->raw_bytes > d->bytes_written); /* 8-12M is read whole */
    restore_result_clear(&res);

    /* The job and the read throughput are in the catalog. */
    job = catalog_job_get(fx.cat, 1);
    assert_non_null(job);
    assert_string_equal(job->kind, "restore");
    assert_int_equal(job->state, CATALOG_JOB_SUCCEEDED);
    catalog_job_free(job);
    assert_int_equal(catalog_throughput_estimate(fx.cat, fx.url, CATALOG_DIR_READ, &rate), 0);
    assert_true(rate.samples >= 1);

    /* An existing destination is refused, and replaced with --force. */
    assert_int_equal(restore_run(fx.cat, &o, &res, 0), -1);
    assert_non_null(strstr(vk_error_message(), "--force"));
    restore_result_clear(&res);
    o.force = true;
    assert_int_equal(restore_run(fx.cat, &o, &res, 0), 0);
    image_check(img, fx.points[2]);
    restore_result_clear(&res);
    free(dest);
    free(img);
}

/* Each block read once: three more incs rewrite the same chunks; the frame
 * bytes fetched are those of the newest copies alone. */
static void test_read_once(void **state)
{
    static const struct restore_fixture_extent same[] = {
        {4 * MiB, 4 * MiB, 0, 31}, {8 * MiB, 4 * MiB, 0, 32}, {0, 0, -1, 0}};
    char *dest = dest_new("once");
    struct restore_options o;
    struct restore_result res;
    uint64_t want;

    (void)state;
    /* A separate domain's chain would need its own fixture; rewrite on top. */
    for (int k = 0; k < 3; k++)
        restore_fixture_backup_add(&fx, "inc", fx.ids[fx.nr - 1], 1795827723 + 10800 + 3600 * k,
                                   same);
    /* What must be fetched: the newest copy of every chunk, from the tar
     * headers of the archives, not from the merge. */
    want = frame_size_of(fx.nr - 1, 4 * MiB) + frame_size_of(fx.nr - 1, 8 * MiB) +
           frame_size_of(2, 48 * MiB);
    for (uint64_t off = 0; off < 32 * MiB; off += 4 * MiB)
        if (off != 4 * MiB && off != 8 * MiB && off != 16 * MiB && off != 24 * MiB)
            want += frame_size_of(0, off);
    want += frame_size_of(0, 60 * MiB);
    options_init(&o, dest);
    assert_int_equal(restore_run(fx.cat, &o, &res, 0), 0);
    image_check(res.disks[0].path, fx.points[fx.nr - 1]);
    /* The chunks at 4-8M and 8-12M come from the newest inc only; the rest
     * as before (full 0-4, 12-16, 20-24, 28-32, 60; inc2 48-52). */
    assert_int_equal(res.disks[0].nr_chunks, 2 + 6);
    assert_int_equal(res.disks[0].frame_bytes, res.disks[0].map.chunk_frame_bytes);
    assert_int_equal(res.disks[0].frame_bytes, want);
    assert_int_equal(res.disks[0].raw_bytes, res.disks[0].bytes_written);
    restore_result_clear(&res);
    free(dest);
}

/* Flip one byte in a frame of POS in archive KEY (a file in the target). */
static void byte_flip(const char *key, uint64_t pos)
{
    char path[700];
    uint8_t b;
    int fd;

    snprintf(path, sizeof path, "%s/%s", fx.target_dir, key);
    assert_true((fd = open(path, O_RDWR)) >= 0);
    assert_int_equal(pread(fd, &b, 1, (off_t)pos), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)pos), 1);
    close(fd);
}

/* Where the frame of the chunk at CHUNK_OFFSET starts in archive KEY, and
 * its size, from the tar member headers (independent of the reader). */
static uint64_t frame_find(const char *key, uint64_t chunk_offset, uint64_t *frame_size)
{
    char path[700], name[64];
    struct stat st;
    uint64_t pos = 0;
    uint8_t *buf;
    int fd;

    snprintf(path, sizeof path, "%s/%s", fx.target_dir, key);
    snprintf(name, sizeof name, "data/%016" PRIx64 "-", chunk_offset);
    assert_int_equal(stat(path, &st), 0);
    assert_non_null((buf = malloc((size_t)st.st_size)));
    assert_true((fd = open(path, O_RDONLY)) >= 0);
    assert_int_equal(vk_pread_all(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    for (uint64_t p = 0; p + 512 <= (uint64_t)st.st_size && buf[p];) {
        uint64_t size = strtoull((char *)buf + p + 124, NULL, 8);
        if (buf[p + 156] == 'x') { /* pax extended header: skip it */
            p += 512 + (size + 511) / 512 * 512;
            continue;
        }
        if (strncmp((char *)buf + p, name, strlen(name)) == 0) {
            pos = p + 512;
            *frame_size = size;
            break;
        }
        p += 512 + (size + 511) / 512 * 512;
    }
    free(buf);
    assert_true(pos > 0);
    return pos;
}

static uint64_t frame_size_of(size_t backup, uint64_t chunk_offset)
{
    char *key = vk_asprintf("%s/%s/vda.tar", DOM, fx.ids[backup]);
    uint64_t size = 0;

    frame_find(key, chunk_offset, &size);
    free(key);
    return size;
}

static uint64_t frame_position(const char *key, uint64_t chunk_offset)
{
    uint64_t size;
    uint64_t pos = frame_find(key, chunk_offset, &size);

    return pos + size / 2;
}

static void restore_fails(const char *dest, const char *from, const char *must1, const char *must2)
{
    struct restore_options o;
    struct restore_result res;

    options_init(&o, dest);
    o.from = from;
    assert_int_equal(restore_run(fx.cat, &o, &res, 0), -1);
    if (!strstr(vk_error_message(), must1) || !strstr(vk_error_message(), must2))
        fail_msg("the error '%s' does not name '%s' and '%s'", vk_error_message(), must1, must2);
    restore_result_clear(&res);
    dir_only(dest, NULL); /* nothing under the final name, no temporary */
}

static void verify_fails(const char *what, unsigned int flags, const char *must1, const char *must2)
{
    struct verify_options vo = {.what = what};
    struct verify_result vr;
    bool named = false;

    assert_int_equal(verify_run(fx.cat, &vo, flags, &vr), 0);
    assert_true(vr.failed >= 1);
    for (size_t i = 0; i < vr.nr; i++)
        if (!vr.items[i].ok && strstr(vr.items[i].error, must1) && strstr(vr.items[i].error, must2))
            named = true;
    if (!named)
        fail_msg("no verify error names '%s' and '%s'", must1, must2);
    verify_result_clear(&vr);
}

static void verify_ok(const char *what, unsigned int flags)
{
    struct verify_options vo = {.what = what};
    struct verify_result vr;

    assert_int_equal(verify_run(fx.cat, &vo, flags, &vr), 0);
    for (size_t i = 0; i < vr.nr; i++)
        if (!vr.items[i].ok)
            fail_msg("verify failed: %s", vr.items[i].error);
    assert_int_equal(vr.failed, 0);
    /* A manifest and an archive per backup. */
    assert_int_equal(vr.nr, strcmp(what, DOM) == 0 ? 2 * fx.nr : 2);
    verify_result_clear(&vr);
}

static void test_corrupt_chunk(void **state)
{
    char *key = vk_asprintf("%s/%s/vda.tar", DOM, fx.ids[0]);
    char *dest = dest_new("corrupt");
    uint64_t pos = frame_position(key, 12 * MiB);

    (void)state;
    verify_ok(DOM, 0);
    byte_flip(key, pos);
    restore_fails(dest, NULL, fx.ids[0], "chunk at offset 12582912");
    verify_fails(fx.ids[0], 0, fx.ids[0], "offset 12582912");
    verify_fails(DOM, 0, "vda", "sha256");
    /* --quick does not read chunks: it still passes. */
    verify_ok(fx.ids[0], VERIFY_QUICK);
    byte_flip(key, pos);
    verify_ok(DOM, 0);
    free(key);
    free(dest);
}

static void test_truncated(void **state)
{
    char *key = vk_asprintf("%s/%s/vda.tar", DOM, fx.ids[1]);
    char *dest = dest_new("truncated");
    char path[700], save[720];

    (void)state;
    snprintf(path, sizeof path, "%s/%s", fx.target_dir, key);
    snprintf(save, sizeof save, "%s/saved.tar", fx.dir);
    assert_int_equal(
        restore_fixture_shell("cp '%s' '%s' && truncate -s -1536 '%s'", path, save, path), 0);
    restore_fails(dest, NULL, fx.ids[1], "truncated");
    verify_fails(fx.ids[1], VERIFY_QUICK, fx.ids[1], "truncated");
    /* Read from the URL directly (no size from the catalog): the structure
     * check catches it. */
    restore_fails(dest, fx.url, fx.ids[1], "corrupt");
    assert_int_equal(restore_fixture_shell("cp '%s' '%s'", save, path), 0);
    free(key);
    free(dest);
}

static void test_index_deleted(void **state)
{
    char *key = vk_asprintf("%s/%s/vda.tar", DOM, fx.ids[2]);
    char *dest = dest_new("noindex");
    char path[700], save[720];

    (void)state;
    snprintf(path, sizeof path, "%s/%s", fx.target_dir, key);
    snprintf(save, sizeof save, "%s/saved.tar", fx.dir);
    assert_int_equal(
        restore_fixture_shell("cp '%s' '%s' && tar --delete -f '%s' index.json", path, save, path),
        0);
    restore_fails(dest, fx.url, fx.ids[2], "corrupt");
    verify_fails(fx.ids[2], VERIFY_QUICK, fx.ids[2], "vda");
    assert_int_equal(restore_fixture_shell("cp '%s' '%s'", save, path), 0);
    verify_ok(fx.ids[2], 0);
    free(key);
    free(dest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_point),
        cmocka_unit_test(test_at_time),
        cmocka_unit_test(test_zero_clusters_and_counts),
        cmocka_unit_test(test_corrupt_chunk),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_index_deleted),
        cmocka_unit_test(test_read_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
