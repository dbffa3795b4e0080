/* copy_run between file:// targets: a full and an inc written with the
 * archive writer (the full larger than COPY_BLOCK, so that it streams in
 * several blocks), recorded in a catalog on the target "main"; copied to
 * "dst" (order, bytes, locations, throughput), copied again (a no-op),
 * found on "dst" unrecorded (hashed and recorded, not copied), copied from
 * a corrupt source (refused, nothing left) and around it (the next copy),
 * and the usage errors. */
#include <config.h>

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

#include "catalog/catalog.h"
#include "common/error.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/conf/conf.h"
#include "src/lifecycle/lifecycle.h"
#include "transport/transport.h"

#define MiB (1024ull * 1024)
#define DOM "web1"

static struct {
    char dir[64];
    char *catalog;
    struct catalog *cat;
    struct config *cfg;
    char *ids[2];
} fx;

static char *path_in(const char *target, const char *key)
{
    return vk_asprintf("%s/%s/%s", fx.dir, target, key);
}

static struct transport *target(const char *name)
{
    char *url = vk_asprintf("file://%s/%s", fx.dir, name);
    struct transport *t = transport_open(name, url, NULL);

    free(url);
    assert_non_null(t);
    return t;
}

struct put_sink {
    struct transport_writer *w;
};

static int sink_write(void *opaque, const void *buf, size_t len)
{
    return transport_writer_write(((struct put_sink *)opaque)->w, buf, len);
}

static void location_add(const char *id, const char *disk, const char *key, uint64_t size,
                         const uint8_t sha[ARCHIVE_SHA256_LEN])
{
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    struct catalog_location loc = {.backup_id = (char *)id,
                                   .disk = (char *)disk,
                                   .target = (char *)"main",
                                   .key = (char *)key,
                                   .size = size,
                                   .sha256 = hex};

    archive_sha256_hex(sha, hex);
    assert_int_equal(catalog_archive_add_location(fx.cat, &loc), 0);
}

/* An archive of CHUNKS incompressible 1 MiB chunks, on main. */
static void archive_add(struct transport *t, const char *id, unsigned int chunks)
{
    char *key = vk_asprintf("%s/%s/vda.tar", DOM, id);
    struct put_sink ps = {.w = transport_put_begin(t, key, 0)};
    struct archive_sink sink = {.write = sink_write, .opaque = &ps};
    struct archive_header h = {.disk = (char *)"vda",
                               .virtual_size = 64 * MiB,
                               .chunk_size = MiB,
                               .backup_id = (char *)id,
                               .level = (char *)"full",
                               .created = 1795827723};
    struct archive_compressor *comp = archive_compressor_new(1);
    size_t cap = archive_compress_bound(MiB), zlen;
    uint8_t *raw = malloc(MiB), *zst = malloc(cap), sha[ARCHIVE_SHA256_LEN];
    uint64_t x = 88172645463325252ull ^ chunks;
    struct archive_writer *w;
    struct archive_writer_stats st;

    assert_non_null(ps.w);
    assert_non_null((w = archive_writer_open(&sink, &h, 0)));
    for (unsigned int c = 0; c < chunks; c++) {
        for (size_t i = 0; i < MiB; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            raw[i] = (uint8_t)x;
        }
        assert_int_equal(archive_sha256(raw, MiB, sha), 0);
        assert_int_equal(archive_compressor_compress(comp, raw, MiB, zst, cap, &zlen), 0);
        assert_int_equal(archive_writer_add_chunk(w, c * MiB, MiB, zst, zlen, sha), 0);
    }
    assert_int_equal(archive_writer_finish(w, sha), 0);
    archive_writer_stats(w, &st);
    archive_writer_free(w);
    assert_int_equal(transport_writer_commit(ps.w), 0);
    location_add(id, "vda", key, st.archive_bytes, sha);
    archive_compressor_free(comp);
    free(raw);
    free(zst);
    free(key);
}

static void backup_add(struct transport *t, const char *level, const char *parent, int64_t when,
                       unsigned int chunks, size_t n)
{
    char *id = catalog_backup_id_make(DOM, when);
    char *mkey = vk_asprintf("%s/%s/manifest.json", DOM, id);
    char *json = vk_asprintf("{\"backup\": \"%s\"}", id);
    uint8_t sha[ARCHIVE_SHA256_LEN];
    struct catalog_backup b = {.id = id,
                               .domain = (char *)DOM,
                               .status = CATALOG_STATUS_RUNNING,
                               .parent = (char *)parent,
                               .started = when,
                               .domain_xml = (char *)"<domain/>"};
    struct catalog_backup_disk bd = {
        .backup_id = id, .target = (char *)"vda", .format = (char *)"qcow2"};

    assert_int_equal(catalog_level_parse(level, &b.level), 0);
    assert_int_equal(catalog_backup_insert(fx.cat, &b), 0);
    assert_int_equal(catalog_backup_disk_add(fx.cat, &bd), 0);
    archive_add(t, id, chunks);
    assert_int_equal(transport_put(t, mkey, json, strlen(json)), 0);
    assert_int_equal(archive_sha256(json, strlen(json), sha), 0);
    location_add(id, NULL, mkey, strlen(json), sha);
    assert_int_equal(catalog_backup_set_status(fx.cat, id, CATALOG_STATUS_COMMITTED, NULL), 0);
    fx.ids[n] = id;
    free(mkey);
    free(json);
}

static int setup(void **state)
{
    char *conf;
    struct transport *t;

    (void)state;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/test-copy-unit.XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    for (size_t i = 0; i < 3; i++) {
        char *d = vk_asprintf("%s/%s", fx.dir, (const char *[]){"main", "dst", "dst2"}[i]);
        assert_int_equal(mkdir(d, 0700), 0);
        free(d);
    }
    conf = vk_asprintf("[target main]\nurl = file://%s/main\n[target dst]\nurl = file://%s/dst\n"
                       "[target dst2]\nurl = file://%s/dst2\n",
                       fx.dir, fx.dir, fx.dir);
    fx.cfg = config_parse_buffer("test.conf", conf, strlen(conf), CONFIG_NO_FILE_CHECKS);
    free(conf);
    assert_non_null(fx.cfg);
    fx.catalog = vk_asprintf("%s/catalog.db", fx.dir);
    assert_non_null((fx.cat = catalog_open(fx.catalog, 0)));
    t = target("main");
    backup_add(t, "full", NULL, 1795827700, 10, 0); /* > COPY_BLOCK */
    backup_add(t, "inc", fx.ids[0], 1795827800, 2, 1);
    transport_close(t);
    return 0;
}

static int teardown(void **state)
{
    char *cmd = vk_asprintf("rm -rf '%s'", fx.dir);

    (void)state;
    catalog_close(fx.cat);
    config_free(fx.cfg);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(fx.catalog);
    free(fx.ids[0]);
    free(fx.ids[1]);
    return 0;
}

static int copy(const char *what, const char *to, const char *from, struct copy_result *res)
{
    struct copy_options o = {.what = what, .to = to, .from = from, .config = fx.cfg};

    return copy_run(fx.cat, &o, 0, res);
}

static void assert_same_file(const char *a, const char *b)
{
    char *cmd = vk_asprintf("cmp -s '%s' '%s'", a, b);

    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static const struct catalog_location *loc_find(const struct catalog_locations *l, const char *t,
                                               const char *disk)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].target, t) == 0 &&
            ((!disk && !l->items[i].disk) ||
             (disk && l->items[i].disk && strcmp(l->items[i].disk, disk) == 0)))
            return &l->items[i];
    return NULL;
}

static void test_copy_domain(void **state)
{
    struct copy_result res;
    struct catalog_rate rate;

    (void)state;
    assert_int_equal(copy(DOM, "dst", NULL, &res), 0);
    assert_int_equal(res.nr, 4);
    assert_int_equal(res.objects_copied, 4);
    assert_int_equal(res.backups_copied, 2);
    /* Oldest first; each manifest after its archive; all from main. */
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(res.items[i].backup_id, fx.ids[i / 2]);
        assert_true(res.items[i].copied);
        assert_string_equal(res.items[i].source, "main");
        if (i % 2)
            assert_null(res.items[i].disk);
        else
            assert_string_equal(res.items[i].disk, "vda");
    }
    assert_true(res.items[0].size > COPY_BLOCK);
    for (size_t i = 0; i < 4; i++) {
        char *a = path_in("main", res.items[i].key), *b = path_in("dst", res.items[i].key);
        assert_same_file(a, b);
        free(a);
        free(b);
    }
    for (size_t n = 0; n < 2; n++) {
        struct catalog_locations *l;
        assert_int_equal(catalog_archive_list(fx.cat, fx.ids[n], NULL, &l), 0);
        assert_int_equal(l->count, 4);
        for (const char *d = "vda";; d = NULL) {
            const struct catalog_location *m = loc_find(l, "main", d), *c = loc_find(l, "dst", d);
            assert_non_null(m);
            assert_non_null(c);
            assert_string_equal(m->key, c->key);
            assert_string_equal(m->sha256, c->sha256);
            assert_int_equal(m->size, c->size);
            if (!d)
                break;
        }
        catalog_locations_free(l);
    }
    assert_int_equal(catalog_throughput_estimate(fx.cat, "main", CATALOG_DIR_READ, &rate), 0);
    assert_int_equal(rate.samples, 2);
    assert_int_equal(catalog_throughput_estimate(fx.cat, "dst", CATALOG_DIR_WRITE, &rate), 0);
    assert_int_equal(rate.samples, 2);
    assert_true(res.job_id > 0);
    copy_result_clear(&res);

    /* Again: nothing to do. */
    assert_int_equal(copy(DOM, "dst", NULL, &res), 0);
    assert_int_equal(res.objects_copied, 0);
    assert_int_equal(res.backups_skipped, 2);
    for (size_t i = 0; i < res.nr; i++)
        assert_false(res.items[i].copied);
    copy_result_clear(&res);
}

static void test_copy_unrecorded(void **state)
{
    struct catalog_locations *l;
    struct copy_result res;
    char *key = vk_asprintf("%s/%s/vda.tar", DOM, fx.ids[0]);

    (void)state;
    /* On dst but not recorded: hashed, recorded, not copied. */
    assert_int_equal(catalog_archive_remove_location(fx.cat, fx.ids[0], "dst", key), 0);
    assert_int_equal(copy(fx.ids[0], "dst", NULL, &res), 0);
    assert_int_equal(res.objects_copied, 0);
    assert_int_equal(res.backups_skipped, 1);
    copy_result_clear(&res);
    assert_int_equal(catalog_archive_list(fx.cat, fx.ids[0], "dst", &l), 0);
    assert_int_equal(l->count, 2);
    catalog_locations_free(l);
    free(key);
}

static void flip(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    int c;

    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    c = fgetc(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    fputc(c ^ 0x5a, f);
    assert_int_equal(fclose(f), 0);
}

static void test_copy_corrupt_source(void **state)
{
    struct copy_result res;
    char *key = vk_asprintf("%s/%s/vda.tar", DOM, fx.ids[0]);
    char *src = path_in("main", key), *dst = path_in("dst2", key), *good = path_in("dst", key);
    const char *msg;
    struct stat st;

    (void)state;
    flip(src, 5 * (long)MiB);
    assert_int_equal(copy(fx.ids[0], "dst2", "main", &res), -1);
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    msg = vk_error_message();
    assert_non_null(strstr(msg, fx.ids[0]));
    assert_non_null(strstr(msg, "disk 'vda'"));
    assert_non_null(strstr(msg, "from target 'main' to target 'dst2'"));
    assert_non_null(strstr(msg, "sha256"));
    assert_int_equal(res.objects_copied, 0);
    copy_result_clear(&res);
    assert_int_equal(stat(dst, &st), -1);

    /* Without --from, the corrupt copy gives way to the good one on dst. */
    assert_int_equal(copy(fx.ids[0], "dst2", NULL, &res), 0);
    assert_int_equal(res.objects_copied, 2);
    assert_string_equal(res.items[0].source, "dst");
    copy_result_clear(&res);
    assert_same_file(good, dst);
    flip(src, 5 * (long)MiB);
    free(key);
    free(src);
    free(dst);
    free(good);
}

static void test_copy_errors(void **state)
{
    struct copy_result res;

    (void)state;
    assert_int_equal(copy(DOM, "nowhere", NULL, &res), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_non_null(strstr(vk_error_message(), "nowhere"));
    copy_result_clear(&res);
    assert_int_equal(copy("web9", "dst", NULL, &res), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_non_null(strstr(vk_error_message(), "web9"));
    copy_result_clear(&res);
    assert_int_equal(copy(DOM, "dst", "dst", &res), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    copy_result_clear(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_domain),
        cmocka_unit_test(test_copy_unrecorded),
        cmocka_unit_test(test_copy_corrupt_source),
        cmocka_unit_test(test_copy_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
