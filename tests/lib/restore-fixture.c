/* The restore fixture shared by unit tests: see restore-fixture.h. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "common/util.h"
#include "src/format/format.h"
#include "tests/lib/restore-fixture.h"
#include "transport/transport.h"

/* The creation time written in every archive header. */
#define CREATED 1795827723

int restore_fixture_shell(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

void restore_fixture_setup(struct restore_fixture *fx, const char *name)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

    snprintf(fx->dir, sizeof fx->dir, "%s/vk-%s-XXXXXX", tmp, name);
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->target_dir, sizeof fx->target_dir, "%s/target", fx->dir);
    snprintf(fx->url, sizeof fx->url, "file://%s", fx->target_dir);
    snprintf(fx->catalog, sizeof fx->catalog, "%s/catalog.db", fx->dir);
    assert_int_equal(mkdir(fx->target_dir, 0700), 0);
    assert_non_null((fx->cat = catalog_open(fx->catalog, 0)));
    assert_non_null((fx->t = transport_open(NULL, fx->url, NULL)));
    assert_non_null((fx->comp = archive_compressor_new(fx->compress_level)));
    assert_non_null((fx->disk = calloc(1, fx->disk_size)));
}

void restore_fixture_teardown(struct restore_fixture *fx)
{
    for (size_t i = 0; i < fx->nr; i++) {
        free(fx->points[i]);
        free(fx->ids[i]);
    }
    free(fx->disk);
    archive_compressor_free(fx->comp);
    transport_close(fx->t);
    catalog_close(fx->cat);
    if (!getenv("VIRTKEEP_TEST_KEEP"))
        restore_fixture_shell("rm -rf '%s'", fx->dir);
}

static int sink_write(void *opaque, const void *buf, size_t len)
{
    return transport_writer_write(opaque, buf, len);
}

/* Write one data extent S of the current backup into W. */
static void chunk_add(struct restore_fixture *fx, struct archive_writer *w,
                      const struct restore_fixture_extent *s, uint64_t *frame)
{
    size_t cap = archive_compress_bound(s->length), zlen;
    uint8_t sha[ARCHIVE_SHA256_LEN], *zst = malloc(cap), *data = fx->disk + s->offset;

    assert_non_null(zst);
    fx->fill(data, s->length, s->seed);
    assert_int_equal(archive_sha256(data, s->length, sha), 0);
    assert_int_equal(archive_compressor_compress(fx->comp, data, s->length, zst, cap, &zlen), 0);
    assert_int_equal(archive_writer_add_chunk(w, s->offset, s->length, zst, zlen, sha), 0);
    *frame = zlen;
    free(zst);
}

/* Write the archive of one backup from SPEC, applying it to fx->disk. */
static void archive_put(struct restore_fixture *fx, const char *id, const char *level,
                        const struct restore_fixture_extent *spec, struct manifest_disk *md)
{
    char *key = vk_asprintf("%s/%s/vda.tar", fx->domain, id);
    struct transport_writer *tw = transport_put_begin(fx->t, key, 0);
    struct archive_sink sink = {.write = sink_write, .opaque = tw};
    struct archive_header h = {.disk = (char *)"vda",
                               .virtual_size = fx->disk_size,
                               .chunk_size = ARCHIVE_CHUNK_SIZE_DEFAULT,
                               .backup_id = (char *)id,
                               .level = (char *)level,
                               .created = CREATED};
    struct archive_writer *w;
    struct archive_writer_stats st;
    uint8_t digest[ARCHIVE_SHA256_LEN];

    assert_non_null(tw);
    assert_non_null((w = archive_writer_open(&sink, &h, 0)));
    for (size_t i = 0; spec[i].kind != RESTORE_FIXTURE_END; i++) {
        assert_true(i < RESTORE_FIXTURE_EXTENTS);
        if (spec[i].kind == RESTORE_FIXTURE_DATA) {
            chunk_add(fx, w, &spec[i], &fx->frame[fx->nr][i]);
            continue;
        }
        assert_int_equal(archive_writer_add_zero(w, spec[i].offset, spec[i].length), 0);
        memset(fx->disk + spec[i].offset, 0, spec[i].length);
    }
    assert_int_equal(archive_writer_finish(w, digest), 0);
    archive_writer_stats(w, &st);
    archive_writer_free(w);
    assert_int_equal(transport_writer_commit(tw), 0);
    md->target = strdup("vda");
    md->virtual_size = fx->disk_size;
    md->archive_key = key;
    md->archive_size = st.archive_bytes;
    memcpy(md->archive_sha256, digest, sizeof digest);
    md->bytes_read = st.data_bytes;
    md->bytes_stored = st.stored_bytes;
}

static void location_add(struct restore_fixture *fx, const char *id, const char *disk,
                         const char *key, uint64_t size, const uint8_t sha[ARCHIVE_SHA256_LEN])
{
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    struct catalog_location loc = {.backup_id = (char *)id,
                                   .disk = (char *)disk,
                                   .target = fx->url,
                                   .key = (char *)key,
                                   .size = size,
                                   .sha256 = hex};

    archive_sha256_hex(sha, hex);
    assert_int_equal(catalog_archive_add_location(fx->cat, &loc), 0);
}

static void manifest_init(struct restore_fixture *fx, struct manifest *m, const char *id,
                          const char *level, const char *parent, int64_t started)
{
    memset(m, 0, sizeof *m);
    m->backup_id = strdup(id);
    m->domain_name = strdup(fx->domain);
    m->domain_uuid = strdup(fx->uuid);
    m->level = strdup(level);
    m->parent_id = parent ? strdup(parent) : NULL;
    if (parent) { /* the hash chain: the digest of the parent's manifest as stored */
        char *pkey = vk_asprintf("%s/%s/manifest.json", fx->domain, parent);
        void *buf = NULL;
        size_t len = 0;
        assert_int_equal(transport_get_all(fx->t, pkey, MANIFEST_MAX_SIZE, &buf, &len), 0);
        assert_int_equal(archive_sha256(buf, len, m->parent_manifest_sha256), 0);
        m->has_parent_manifest_sha256 = true;
        free(buf);
        free(pkey);
    }
    m->checkpoint_name = vk_asprintf("virtkeep-%s", id);
    m->checkpoint_xml = strdup("<domaincheckpoint/>");
    m->domain_xml = vk_asprintf("<domain type='kvm'><name>%s</name></domain>", fx->domain);
    m->started = started;
    m->finished = started + 5;
}

/* The catalog rows of a backup, recorded as the engine does: running,
 * then its disk and locations, then committed. */
static void catalog_add(struct restore_fixture *fx, const struct manifest *m, const char *mkey,
                        const char *json)
{
    const struct manifest_disk *md = &m->disks[0];
    uint8_t sha[ARCHIVE_SHA256_LEN];
    struct catalog_backup b = {.id = m->backup_id,
                               .domain = m->domain_name,
                               .status = CATALOG_STATUS_RUNNING,
                               .checkpoint = m->checkpoint_name,
                               .parent = m->parent_id,
                               .started = m->started,
                               .domain_xml = m->domain_xml};
    struct catalog_backup_disk bd = {.backup_id = m->backup_id,
                                     .target = (char *)"vda",
                                     .format = (char *)"qcow2",
                                     .virtual_size = fx->disk_size};

    assert_int_equal(catalog_level_parse(m->level, &b.level), 0);
    assert_int_equal(catalog_backup_insert(fx->cat, &b), 0);
    assert_int_equal(catalog_backup_disk_add(fx->cat, &bd), 0);
    location_add(fx, m->backup_id, "vda", md->archive_key, md->archive_size, md->archive_sha256);
    assert_int_equal(archive_sha256(json, strlen(json), sha), 0);
    location_add(fx, m->backup_id, NULL, mkey, strlen(json), sha);
    assert_int_equal(
        catalog_backup_set_status(fx->cat, m->backup_id, CATALOG_STATUS_COMMITTED, NULL), 0);
}

void restore_fixture_backup_add(struct restore_fixture *fx, const char *level, const char *parent,
                                int64_t started, const struct restore_fixture_extent *spec)
{
    char *id = catalog_backup_id_make(fx->domain, started);
    char *mkey = vk_asprintf("%s/%s/manifest.json", fx->domain, id);
    struct manifest m;
    struct manifest_disk *md;
    char *json;

    assert_true(fx->nr < RESTORE_FIXTURE_BACKUPS);
    manifest_init(fx, &m, id, level, parent, started);
    assert_non_null((md = manifest_disk_add(&m)));
    archive_put(fx, id, level, spec, md);
    assert_non_null((json = manifest_to_json(&m, 0)));
    assert_int_equal(transport_put(fx->t, mkey, json, strlen(json)), 0);
    catalog_add(fx, &m, mkey, json);
    assert_non_null((fx->points[fx->nr] = malloc(fx->disk_size)));
    memcpy(fx->points[fx->nr], fx->disk, fx->disk_size);
    fx->ids[fx->nr++] = id;
    manifest_clear(&m);
    free(json);
    free(mkey);
}
