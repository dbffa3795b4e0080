/* Sealed archives and manifests (AES-256-GCM, AES key wrap, HMAC) and the
 * keyring file: round trips, every altered region refused, a missing key
 * named, nonces unique, keys never readable by others. */
#include <config.h>
#include <fcntl.h>
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

#include "common/error.h"
#include "src/format/format.h"

#define CHUNK 65536u
#define NCHUNKS 6
#define MARK "PLAINTEXT-MARK-4242"

struct membuf {
    uint8_t *buf;
    size_t len, cap;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
    struct membuf *m = opaque;

    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2;
        m->buf = realloc(m->buf, m->cap);
        assert_non_null(m->buf);
    }
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    return 0;
}

static int mem_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
    const struct membuf *m = opaque;

    if (offset > m->len || len > m->len - offset) {
        vk_error(VK_ERR_IO, "read beyond the end");
        return -1;
    }
    memcpy(buf, m->buf + offset, len);
    return 0;
}

static struct archive_reader *open_mem(struct membuf *m, const struct format_keyring *kr)
{
    struct archive_source src = {.pread = mem_pread, .opaque = m, .size = m->len};
    return archive_reader_open_keyed(&src, "web1/b1/vda.tar", kr, 0);
}

/* Chunk I: the mark repeated, with its index (chunk 2 is a zero extent). */
static void chunk_fill(uint8_t *p, size_t i)
{
    char tmp[80];

    for (size_t o = 0; o < CHUNK; o += 32) {
        snprintf(tmp, sizeof(tmp), "%s-%02zu-%09zu", MARK, i % 100, o % 1000000000);
        memcpy(p + o, tmp, 32);
    }
}

static void sealed_write(struct membuf *out, const struct format_key *key)
{
    struct archive_sink sink = {.write = mem_write, .opaque = out};
    struct archive_header h = {.disk = (char *)"vda",
                               .virtual_size = NCHUNKS * CHUNK,
                               .chunk_size = CHUNK,
                               .backup_id = (char *)"b1",
                               .level = (char *)"full",
                               .created = 1795482000};
    struct archive_compressor *c = archive_compressor_new(1);
    struct archive_writer *w;
    uint8_t *raw = malloc(CHUNK), *zst = malloc(archive_compress_bound(CHUNK)), sha[32];
    size_t zlen;

    memset(out, 0, sizeof(*out));
    w = archive_writer_open_sealed(&sink, &h, key, 0);
    assert_non_null(w);
    for (size_t i = 0; i < NCHUNKS; i++) {
        if (i == 2) {
            assert_int_equal(archive_writer_add_zero(w, i * CHUNK, CHUNK), 0);
            continue;
        }
        chunk_fill(raw, i);
        assert_int_equal(
            archive_compressor_compress(c, raw, CHUNK, zst, archive_compress_bound(CHUNK), &zlen),
            0);
        assert_int_equal(archive_sha256(raw, CHUNK, sha), 0);
        assert_int_equal(archive_writer_add_chunk(w, i * CHUNK, CHUNK, zst, zlen, sha), 0);
    }
    assert_int_equal(archive_writer_finish(w, NULL), 0);
    archive_writer_free(w);
    archive_compressor_free(c);
    free(raw);
    free(zst);
}

static void keyring_one(struct format_keyring *kr, struct format_key *k)
{
    memset(kr, 0, sizeof(*kr));
    assert_int_equal(format_key_generate(k), 0);
    assert_int_equal(format_keyring_add(kr, k, "test"), 0);
}

/* Every chunk reads back through the reader and through a decoder. */
static void read_all(struct archive_reader *r, const struct membuf *m)
{
    struct archive_decoder *d = archive_decoder_new();
    uint8_t *got = malloc(CHUNK), *want = malloc(CHUNK);
    const struct archive_extent *e;
    size_t n;

    e = archive_reader_extents(r, &n);
    assert_int_equal(n, NCHUNKS);
    for (size_t i = 0; i < n; i++) {
        if (i == 2) {
            assert_int_equal(e[i].kind, ARCHIVE_EXTENT_ZERO);
            memset(want, 0, CHUNK);
        } else {
            chunk_fill(want, i);
            assert_int_equal(e[i].size, e[i].size); /* sealed: frame + tag */
        }
        assert_int_equal(archive_reader_read_chunk(r, &e[i], got), 0);
        assert_memory_equal(got, want, CHUNK);
        memset(got, 0xee, CHUNK);
        assert_int_equal(archive_decoder_decode_frame(d, r, &e[i], m->buf + e[i].position, got), 0);
        assert_memory_equal(got, want, CHUNK);
    }
    archive_decoder_free(d);
    free(got);
    free(want);
}

static void test_sealed_roundtrip(void **state)
{
    struct format_keyring kr;
    struct format_key k;
    struct membuf m;
    struct archive_reader *r;

    (void)state;
    keyring_one(&kr, &k);
    sealed_write(&m, &k);
    /* No plaintext anywhere: neither the data nor the index's digests. */
    assert_null(memmem(m.buf, m.len, MARK, strlen(MARK)));
    assert_null(memmem(m.buf, m.len, "\"extents\"", 9));
    assert_non_null(memmem(m.buf, m.len, k.id, FORMAT_KEY_ID_LEN)); /* the id, in the trailer */
    assert_null(memmem(m.buf, m.len, k.kek, FORMAT_KEY_LEN));
    r = open_mem(&m, &kr);
    assert_non_null(r);
    assert_string_equal(archive_reader_key_id(r), k.id);
    read_all(r, &m);
    archive_reader_free(r);
    format_keyring_clear(&kr);
    free(m.buf);
}

static void test_sealed_wrong_key(void **state)
{
    struct format_keyring kr, other;
    struct format_key k, k2;
    struct membuf m;

    (void)state;
    keyring_one(&kr, &k);
    keyring_one(&other, &k2);
    sealed_write(&m, &k);
    assert_null(open_mem(&m, NULL));
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_non_null(strstr(vk_error_message(), k.id));
    assert_non_null(strstr(vk_error_message(), "web1/b1/vda.tar"));
    assert_null(open_mem(&m, &other));
    assert_non_null(strstr(vk_error_message(), k.id));
    /* A key with the right id but other bytes cannot exist: the id is its digest. */
    memcpy(other.keys[0].id, k.id, sizeof(k.id));
    assert_null(open_mem(&m, &other));
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    format_keyring_clear(&kr);
    format_keyring_clear(&other);
    free(m.buf);
}

/* Flip one byte at every 97th position: the open or some chunk read fails,
 * or the byte was tar padding or a member header the reader does not use
 * (those only verify catches, by the archive's sha256). */
static void test_sealed_flips(void **state)
{
    struct format_keyring kr;
    struct format_key k;
    struct membuf m;
    uint8_t *raw = malloc(CHUNK);
    size_t refused = 0, tried = 0;

    (void)state;
    keyring_one(&kr, &k);
    sealed_write(&m, &k);
    for (size_t pos = 0; pos < m.len; pos += 97) {
        struct archive_reader *r;
        const struct archive_extent *e;
        bool failed = false, in_frame = false;
        size_t n;

        m.buf[pos] ^= 0x01;
        tried++;
        r = open_mem(&m, &kr);
        if (!r) {
            failed = true;
        } else {
            e = archive_reader_extents(r, &n);
            for (size_t i = 0; i < n; i++) {
                if (e[i].kind == ARCHIVE_EXTENT_DATA && pos >= e[i].position &&
                    pos < e[i].position + e[i].size)
                    in_frame = true;
                if (archive_reader_read_chunk(r, &e[i], raw) < 0) {
                    failed = true;
                    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
                    assert_non_null(strstr(vk_error_message(), "web1/b1/vda.tar"));
                }
            }
            assert_true(!in_frame || failed);
            archive_reader_free(r);
        }
        refused += failed;
        m.buf[pos] ^= 0x01;
    }
    assert_true(refused > tried / 2);
    format_keyring_clear(&kr);
    free(m.buf);
    free(raw);
}

static void test_sealed_nonces(void **state)
{
    struct format_keyring kr;
    struct format_key k;
    struct membuf a, b;

    (void)state;
    keyring_one(&kr, &k);
    sealed_write(&a, &k);
    sealed_write(&b, &k);
    /* Same key, same data: new data key and prefix, so other bytes. */
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.buf + a.len - 2048, b.buf + b.len - 2048, 512 + 256);
    assert_memory_not_equal(a.buf + 1536, b.buf + 1536, 64);
    format_keyring_clear(&kr);
    free(a.buf);
    free(b.buf);
}

static void manifest_sample(struct manifest *m, const char *key_id)
{
    memset(m, 0, sizeof(*m));
    m->backup_id = strdup("b2");
    m->domain_name = strdup("web1");
    m->domain_uuid = strdup("6f1c3b52-2b4e-4a51-9d0e-3c2b1a0f9e8d");
    m->level = strdup("inc");
    m->parent_id = strdup("b1");
    m->has_parent_manifest_sha256 = true;
    memset(m->parent_manifest_sha256, 0xab, ARCHIVE_SHA256_LEN);
    m->checkpoint_name = strdup("virtkeep-b2");
    m->checkpoint_xml = strdup("<domaincheckpoint/>");
    m->domain_xml = strdup("<domain><name>web1 \"hmac-sha256:x\"</name></domain>");
    m->started = 1795482000;
    m->finished = 1795482042;
    m->key_id = key_id ? strdup(key_id) : NULL;
    struct manifest_disk *d = manifest_disk_add(m);
    d->target = strdup("vda");
    d->virtual_size = 1 << 30;
    d->archive_key = strdup("web1/b2/vda.tar");
    d->archive_size = 123456;
    d->bytes_stored = 1000;
}

static void test_manifest_sealed(void **state)
{
    struct format_keyring kr, other;
    struct format_key k, k2;
    struct manifest m, got;
    char *json;
    size_t len;

    (void)state;
    keyring_one(&kr, &k);
    keyring_one(&other, &k2);
    manifest_sample(&m, k.id);
    json = manifest_to_json_sealed(&m, &k);
    assert_non_null(json);
    len = strlen(json);
    assert_non_null(strstr(json, "\"version\": 4"));
    assert_non_null(strstr(json, k.id));
    assert_int_equal(manifest_parse(json, len, "web1/b2/manifest.json", &got), 0);
    assert_string_equal(got.key_id, k.id);
    assert_int_equal(manifest_authenticate(json, len, "web1/b2/manifest.json", &got, &kr), 0);
    /* Without the key: the key id is named. */
    assert_int_equal(manifest_authenticate(json, len, "web1/b2/manifest.json", &got, &other), -1);
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_non_null(strstr(vk_error_message(), k.id));
    manifest_clear(&got);
    /* Any changed byte that still parses fails the tag; the parent link too. */
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        json[i] = c == '0' ? '1' : c == 'a' ? 'b' : c;
        if (json[i] != c && manifest_parse(json, len, "m", &got) == 0) {
            assert_int_equal(manifest_authenticate(json, len, "m", &got, &kr), -1);
            /* An altered key id names a key that is not there. */
            if (vk_error_code() == VK_ERR_AUTH)
                assert_non_null(strstr(vk_error_message(), got.key_id));
            else
                assert_non_null(
                    strstr(vk_error_message(), "manifest 'm' fails its authentication"));
            manifest_clear(&got);
        }
        json[i] = c;
    }
    free(json);
    /* A plain manifest stays version 3 and needs no key. */
    free(m.key_id);
    m.key_id = NULL;
    json = manifest_to_json(&m, 0);
    assert_non_null(strstr(json, "\"version\": 3"));
    assert_int_equal(manifest_parse(json, strlen(json), "m", &got), 0);
    assert_int_equal(manifest_authenticate(json, strlen(json), "m", &got, NULL), 0);
    manifest_clear(&got);
    free(json);
    manifest_clear(&m);
    format_keyring_clear(&kr);
    format_keyring_clear(&other);
}

static void test_keyring_file(void **state)
{
    char dir[] = "/tmp/test-seal-XXXXXX", path[64];
    struct format_keyring kr = {0}, back = {0};
    struct format_key a, b;
    struct stat st;
    char *paper;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/keyring", dir);
    assert_int_equal(format_key_generate(&a), 0);
    assert_int_equal(format_key_generate(&b), 0);
    a.retired = true;
    b.created = a.created + 1;
    assert_int_equal(format_keyring_add(&kr, &a, NULL), 0);
    assert_int_equal(format_keyring_add(&kr, &b, NULL), 0);
    assert_int_equal(format_keyring_save(&kr, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(format_keyring_load(&back, path), 0);
    assert_int_equal(back.nr, 2);
    assert_true(format_keyring_find(&back, a.id)->retired);
    assert_string_equal(format_keyring_active(&back)->id, b.id);
    format_keyring_clear(&back);
    /* Readable by others: refused. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(format_keyring_load(&back, path), -1);
    assert_non_null(strstr(vk_error_message(), "chmod 600"));
    /* The environment variable. */
    paper = format_key_export(&b);
    assert_non_null(strstr(paper, b.id));
    assert_non_null(strstr(paper, "checksum"));
    free(paper);
    setenv("TEST_SEAL_KEY", "00zz", 1);
    assert_int_equal(format_keyring_load_env(&back, "TEST_SEAL_KEY"), -1);
    unsetenv("TEST_SEAL_KEY");
    assert_int_equal(format_keyring_load_env(&back, "TEST_SEAL_KEY"), 0);
    assert_int_equal(back.nr, 0);
    unlink(path);
    rmdir(dir);
    format_keyring_clear(&kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sealed_roundtrip), cmocka_unit_test(test_sealed_wrong_key),
        cmocka_unit_test(test_sealed_flips),     cmocka_unit_test(test_sealed_nonces),
        cmocka_unit_test(test_manifest_sealed),  cmocka_unit_test(test_keyring_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
