/* Unit tests for the archive format and the manifest (src/format/).
 *
 * Run with "write-sample ARCHIVE IMAGE" it writes the sample archive and the
 * raw disk image it holds (sparse) instead, for tests/e2e/test-archive-tools.sh.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <json-c/json.h>
#include <zstd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/format/format.h"

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

/* ------------------------------------------------------------ test data */

enum pattern { PAT_ZERO, PAT_RANDOM, PAT_TEXT, PAT_MIXED };

struct sample_extent {
    uint64_t offset, length;
    enum pattern pat;
};

/* Data, zero and mixed extents, a chunk across 4 GiB, a large zero run, a
 * chunk above 4 GiB and a final short chunk that ends the disk. */
static const struct sample_extent sample_big[] = {
    {0, 4 * MiB, PAT_RANDOM},
    {4 * MiB, 4 * MiB, PAT_TEXT},
    {8 * MiB, 8 * MiB, PAT_ZERO},
    {16 * MiB, MiB + 123, PAT_MIXED},
    {4 * GiB - MiB, 2 * MiB, PAT_RANDOM},
    {4 * GiB + MiB, GiB - MiB, PAT_ZERO},
    {5 * GiB, 4 * MiB, PAT_TEXT},
    {5 * GiB + 4 * MiB, 1000, PAT_RANDOM},
};
/* The same shapes on a small disk, for the tools test (cmp reads it all). */
static const struct sample_extent sample_small[] = {
    {0, 4 * MiB, PAT_RANDOM},        {4 * MiB, 4 * MiB, PAT_TEXT},
    {8 * MiB, 8 * MiB, PAT_ZERO},    {16 * MiB, MiB + 123, PAT_MIXED},
    {20 * MiB, 2 * MiB, PAT_RANDOM}, {22 * MiB, 10 * MiB, PAT_ZERO},
    {40 * MiB, 4 * MiB, PAT_TEXT},   {44 * MiB, 1000, PAT_RANDOM},
};
#define SAMPLE_N 8
_Static_assert(VK_ARRAY_SIZE(sample_big) == SAMPLE_N, "sample size");
_Static_assert(VK_ARRAY_SIZE(sample_small) == SAMPLE_N, "sample size");
static const struct sample_extent *sample = sample_big;
static uint64_t sample_vsize = 5 * GiB + 4 * MiB + 1000;

static void fill(uint8_t *buf, size_t len, enum pattern pat, uint64_t seed)
{
    static const char *const words[] = {"virtkeep ", "backup ", "the ", "chunk ", "of ",
                                        "disk ",     "zstd\n",  "tar ", "index ", "qemu "};
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    size_t i = 0;

    while (i < len) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bool text = pat == PAT_TEXT || (pat == PAT_MIXED && (i / 4096) % 2 == 0);
        if (pat == PAT_ZERO) {
            buf[i++] = 0;
        } else if (text) {
            const char *w = words[x % VK_ARRAY_SIZE(words)];
            for (size_t k = 0; w[k] && i < len; k++)
                buf[i++] = (uint8_t)w[k];
        } else {
            for (int k = 0; k < 8 && i < len; k++)
                buf[i++] = (uint8_t)(x >> (8 * k));
        }
    }
}

/* --------------------------------------------------- memory sink/source */

struct membuf {
    uint8_t *buf;
    size_t len, cap;
    const void *watch; /* a payload we expect to see passed through as is */
    size_t watch_len;
    bool watch_seen;
    size_t fail_at; /* fail a write that would grow past this (0 = never) */
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
    struct membuf *m = opaque;

    if (m->fail_at && m->len + len > m->fail_at) {
        vk_error(VK_ERR_NO_SPACE, "cannot write to the memory sink: it is full");
        return -1;
    }
    if (buf == m->watch && len == m->watch_len)
        m->watch_seen = true;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->len + len)
            cap *= 2;
        m->buf = realloc(m->buf, cap);
        assert_non_null(m->buf);
        m->cap = cap;
    }
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    return 0;
}

struct memsrc {
    const uint8_t *buf;
    uint64_t size;
    unsigned int out_of_range; /* requests outside [0, size) */
    uint64_t bytes_read;
};

static int mem_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
    struct memsrc *s = opaque;

    if (offset > s->size || len > s->size - offset) {
        s->out_of_range++;
        vk_error(VK_ERR_IO, "read beyond the end of the memory archive");
        return -1;
    }
    memcpy(buf, s->buf + offset, len);
    s->bytes_read += len;
    return 0;
}

static struct archive_reader *open_mem(struct memsrc *s, const uint8_t *buf, uint64_t size)
{
    struct archive_source src = {.pread = mem_pread, .opaque = s, .size = size};

    s->buf = buf;
    s->size = size;
    s->out_of_range = 0;
    s->bytes_read = 0;
    return archive_reader_open(&src, "web1/b1/vda.tar", 0);
}

static void header_sample(struct archive_header *h)
{
    memset(h, 0, sizeof(*h));
    h->disk = (char *)"vda";
    h->virtual_size = sample_vsize;
    h->chunk_size = ARCHIVE_CHUNK_SIZE_DEFAULT;
    h->backup_id = (char *)"20261128T010000Z-full";
    h->level = (char *)"full";
    h->created = 1795482000;
}

/* The sample archive: what was written, and the frames handed to the writer. */
struct sample_archive {
    struct membuf out;
    uint8_t digest[ARCHIVE_SHA256_LEN];
    uint8_t *frames[SAMPLE_N];
    size_t frame_len[SAMPLE_N];
    uint8_t sha[SAMPLE_N][ARCHIVE_SHA256_LEN];
    bool all_watched;
};

static void sample_write(struct sample_archive *sa)
{
    struct archive_sink sink = {.write = mem_write, .opaque = &sa->out};
    struct archive_compressor *c = archive_compressor_new(3);
    struct archive_header h;
    struct archive_writer *w;

    memset(sa, 0, sizeof(*sa));
    header_sample(&h);
    assert_non_null(c);
    w = archive_writer_open(&sink, &h, 0);
    assert_non_null(w);
    sa->all_watched = true;
    for (size_t i = 0; i < SAMPLE_N; i++) {
        const struct sample_extent *e = &sample[i];
        if (e->pat == PAT_ZERO) {
            assert_int_equal(archive_writer_add_zero(w, e->offset, e->length), 0);
            continue;
        }
        uint8_t *raw = malloc(e->length);
        size_t cap = archive_compress_bound(e->length);
        assert_non_null(raw);
        sa->frames[i] = malloc(cap);
        assert_non_null(sa->frames[i]);
        fill(raw, e->length, e->pat, i);
        assert_false(archive_is_zero(raw, e->length));
        assert_int_equal(archive_sha256(raw, e->length, sa->sha[i]), 0);
        assert_int_equal(
            archive_compressor_compress(c, raw, e->length, sa->frames[i], cap, &sa->frame_len[i]),
            0);
        sa->out.watch = sa->frames[i];
        sa->out.watch_len = sa->frame_len[i];
        sa->out.watch_seen = false;
        assert_int_equal(archive_writer_add_chunk(w, e->offset, e->length, sa->frames[i],
                                                  sa->frame_len[i], sa->sha[i]),
                         0);
        sa->all_watched &= sa->out.watch_seen;
        free(raw);
    }
    sa->out.watch = NULL;
    assert_int_equal(archive_writer_finish(w, sa->digest), 0);
    archive_writer_free(w);
    archive_compressor_free(c);
}

static void sample_free(struct sample_archive *sa)
{
    for (size_t i = 0; i < SAMPLE_N; i++)
        free(sa->frames[i]);
    free(sa->out.buf);
}

static struct sample_archive *shared;

static int group_setup(void **state)
{
    (void)state;
    shared = calloc(1, sizeof(*shared));
    if (!shared)
        return -1;
    sample_write(shared);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sample_free(shared);
    free(shared);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static void test_sha256_and_zero(void **state)
{
    uint8_t sha[ARCHIVE_SHA256_LEN], back[ARCHIVE_SHA256_LEN];
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    uint8_t buf[4096] = {0};

    (void)state;
    assert_int_equal(archive_sha256("abc", 3, sha), 0);
    archive_sha256_hex(sha, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(archive_sha256_unhex(hex, back), 0);
    assert_memory_equal(sha, back, sizeof(sha));
    assert_int_equal(archive_sha256_unhex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410"
                                          "FF61F20015AD",
                                          back),
                     -1);
    assert_int_equal(archive_sha256_unhex("ba78", back), -1);

    assert_true(archive_is_zero(buf, sizeof(buf)));
    assert_true(archive_is_zero(buf, 0));
    assert_true(archive_is_zero(buf, 17));
    size_t spots[] = {0, 1, 63, 64, 65, 127, 128, 2000, 4095};
    for (size_t i = 0; i < VK_ARRAY_SIZE(spots); i++) {
        buf[spots[i]] = 1;
        assert_false(archive_is_zero(buf, sizeof(buf)));
        assert_true(spots[i] == 0 || archive_is_zero(buf, spots[i]));
        buf[spots[i]] = 0;
    }
    assert_true(archive_level_valid("diff"));
    assert_false(archive_level_valid("auto"));
    assert_false(archive_level_valid(NULL));
}

static void test_compressor(void **state)
{
    size_t len = 3 * MiB + 7, cap = archive_compress_bound(len), zlen = 0;
    uint8_t *raw = malloc(len), *z = malloc(cap);
    struct archive_compressor *c;

    (void)state;
    assert_null(archive_compressor_new(1000));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    c = archive_compressor_new(1);
    assert_non_null(c);
    fill(raw, len, PAT_MIXED, 7);
    /* The context is reused: two compressions give the same frame. */
    for (int round = 0; round < 2; round++) {
        assert_int_equal(archive_compressor_compress(c, raw, len, z, cap, &zlen), 0);
        assert_true(zlen < len);
        uint8_t *back = malloc(len);
        assert_int_equal(ZSTD_getFrameContentSize(z, zlen), len);
        assert_int_equal(ZSTD_decompress(back, len, z, zlen), len);
        assert_memory_equal(back, raw, len);
        free(back);
    }
    /* Too small a destination is an error, not an overflow. */
    assert_int_equal(archive_compressor_compress(c, raw, len, z, 16, &zlen), -1);
    archive_compressor_free(c);
    archive_compressor_free(NULL);
    free(raw);
    free(z);
}

/* ------------------------------------------------------------ round trip */

static void test_roundtrip(void **state)
{
    const struct archive_extent *ex;
    struct memsrc s;
    struct archive_reader *r;
    size_t n;

    (void)state;
    r = open_mem(&s, shared->out.buf, shared->out.len);
    assert_non_null(r);
    /* Two reads from the end: the tail, then the index. */
    assert_true(s.bytes_read < shared->out.len / 10);
    const struct archive_header *h = archive_reader_header(r);
    assert_string_equal(h->disk, "vda");
    assert_string_equal(h->backup_id, "20261128T010000Z-full");
    assert_string_equal(h->level, "full");
    assert_int_equal(h->virtual_size, sample_vsize);
    assert_int_equal(h->chunk_size, 4 * MiB);
    assert_int_equal(h->created, 1795482000);

    ex = archive_reader_extents(r, &n);
    assert_int_equal(n, SAMPLE_N);
    for (size_t i = 0; i < n; i++) {
        const struct sample_extent *e = &sample[i];
        assert_int_equal(ex[i].offset, e->offset);
        assert_int_equal(ex[i].length, e->length);
        assert_int_equal(ex[i].kind,
                         e->pat == PAT_ZERO ? ARCHIVE_EXTENT_ZERO : ARCHIVE_EXTENT_DATA);
        if (e->pat == PAT_ZERO)
            continue;
        uint8_t *got = malloc(e->length), *want = malloc(e->length);
        fill(want, e->length, e->pat, i);
        assert_int_equal(archive_reader_read_chunk(r, &ex[i], got), 0);
        assert_memory_equal(got, want, e->length);
        assert_memory_equal(ex[i].sha256, shared->sha[i], ARCHIVE_SHA256_LEN);
        free(got);
        free(want);
    }
    /* Reading a zero extent gives zeros and reads nothing. */
    uint64_t before = s.bytes_read;
    uint8_t *z = malloc(ex[2].length);
    memset(z, 0xaa, ex[2].length);
    assert_int_equal(archive_reader_read_chunk(r, &ex[2], z), 0);
    assert_true(archive_is_zero(z, ex[2].length));
    assert_int_equal(s.bytes_read, before);
    free(z);
    assert_int_equal(s.out_of_range, 0);
    archive_reader_free(r);
    archive_reader_free(NULL);
}

/* Read ustar header NAME and size at POS - 512, as a plain tar reader would. */
static void check_ustar_header(const uint8_t *hdr, const char *name, uint64_t size)
{
    char field[13] = {0};

    assert_memory_equal(hdr + 257, "ustar", 5);
    assert_string_equal((const char *)hdr, name);
    memcpy(field, hdr + 124, 12);
    assert_int_equal(strtoull(field, NULL, 8), size);
}

static void test_positions_exact(void **state)
{
    const uint8_t *buf = shared->out.buf;
    const struct archive_extent *ex;
    struct archive_reader *r;
    struct memsrc s;
    char name[64];
    size_t n;

    (void)state;
    assert_int_equal(shared->out.len % 512, 0);
    r = open_mem(&s, buf, shared->out.len);
    assert_non_null(r);
    ex = archive_reader_extents(r, &n);
    for (size_t i = 0; i < n; i++) {
        if (ex[i].kind != ARCHIVE_EXTENT_DATA)
            continue;
        /* The frame is byte for byte at its recorded position, and the
         * member header right before it names it. */
        assert_int_equal(ex[i].size, shared->frame_len[i]);
        assert_memory_equal(buf + ex[i].position, shared->frames[i], ex[i].size);
        snprintf(name, sizeof(name), "data/%016" PRIx64 "-%016" PRIx64 ".zst", ex[i].offset,
                 ex[i].length);
        check_ustar_header(buf + ex[i].position - 512, name, ex[i].size);
    }
    /* The payload pointers were handed to the sink as they were: no copy. */
    assert_true(shared->all_watched);
    /* The trailer member sits exactly where FORMAT.md says. */
    size_t end = shared->out.len;
    check_ustar_header(buf + end - 2048, "trailer", ARCHIVE_TRAILER_LEN);
    assert_memory_equal(buf + end - 1536, "VKARCHTR", 8);
    /* Whole-stream digest and the body digest recorded in the index. */
    uint8_t sha[ARCHIVE_SHA256_LEN];
    assert_int_equal(archive_sha256(buf, end, sha), 0);
    assert_memory_equal(sha, shared->digest, sizeof(sha));
    uint64_t index_pos = 0, index_len = 0;
    for (int k = 7; k >= 0; k--) {
        index_pos = index_pos << 8 | buf[end - 1536 + 16 + k];
        index_len = index_len << 8 | buf[end - 1536 + 24 + k];
    }
    check_ustar_header(buf + index_pos - 512, "index.json", index_len);
    assert_int_equal(archive_sha256(buf, index_pos - 512, sha), 0);
    assert_memory_equal(sha, archive_reader_body_sha256(r), sizeof(sha));
    archive_reader_free(r);
}

/* Plain libarchive reads it as an ordinary tar, members in the documented order. */
static void test_plain_tar_listing(void **state)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    const char *expect[SAMPLE_N + 3];
    char names[SAMPLE_N][64];
    size_t k = 0, got = 0;

    (void)state;
    expect[k++] = "header.json";
    for (size_t i = 0; i < SAMPLE_N; i++) {
        if (sample[i].pat == PAT_ZERO)
            continue;
        snprintf(names[i], sizeof(names[i]), "data/%016" PRIx64 "-%016" PRIx64 ".zst",
                 sample[i].offset, sample[i].length);
        expect[k++] = names[i];
    }
    expect[k++] = "index.json";
    expect[k++] = "trailer";
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_memory(a, shared->out.buf, shared->out.len), ARCHIVE_OK);
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        assert_true(got < k);
        assert_string_equal(archive_entry_pathname(e), expect[got]);
        got++;
    }
    assert_int_equal(got, k);
    archive_read_free(a);
}

/* ------------------------------------------------------ writer rejections */

static struct archive_writer *small_writer(struct membuf *out)
{
    struct archive_sink sink = {.write = mem_write, .opaque = out};
    struct archive_header h;

    header_sample(&h);
    h.virtual_size = 1 * MiB;
    h.chunk_size = 64 * 1024;
    return archive_writer_open(&sink, &h, 0);
}

/* A real frame of LEN text bytes, with its sha256. */
static uint8_t *small_frame(size_t len, size_t *zlen, uint8_t sha[ARCHIVE_SHA256_LEN])
{
    struct archive_compressor *c = archive_compressor_new(1);
    size_t cap = archive_compress_bound(len);
    uint8_t *raw = malloc(len), *z = malloc(cap);

    fill(raw, len, PAT_TEXT, len);
    assert_int_equal(archive_sha256(raw, len, sha), 0);
    assert_int_equal(archive_compressor_compress(c, raw, len, z, cap, zlen), 0);
    archive_compressor_free(c);
    free(raw);
    return z;
}

static void expect_writer_error(int r, const char *fragment)
{
    assert_int_equal(r, -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), fragment));
}

static void test_writer_rejects(void **state)
{
    struct {
        uint64_t prev_off, prev_len, off, len;
        const char *why;
    } bad[] = {
        {0, 0, 0, 0, "empty"},
        {0, 8192, 4096, 4096, "before the end of the previous"},
        {8192, 4096, 0, 4096, "before the end of the previous"},
        {0, 0, MiB - 4096, 8192, "beyond the virtual size"},
        {0, 0, UINT64_MAX - 10, 4096, "beyond the virtual size"},
        {0, 0, 0, 65 * 1024, "larger than the chunk size"},
    };
    uint8_t sha[ARCHIVE_SHA256_LEN];
    size_t zlen;
    uint8_t *z = small_frame(4096, &zlen, sha);

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(bad); i++) {
        struct membuf out = {0};
        struct archive_writer *w = small_writer(&out);
        assert_non_null(w);
        if (bad[i].prev_len)
            assert_int_equal(archive_writer_add_zero(w, bad[i].prev_off, bad[i].prev_len), 0);
        expect_writer_error(archive_writer_add_chunk(w, bad[i].off, bad[i].len, z, zlen, sha),
                            bad[i].why);
        /* Failures are sticky. */
        expect_writer_error(archive_writer_add_zero(w, 900 * 1024, 4096), "failed state");
        expect_writer_error(archive_writer_finish(w, NULL), "failed state");
        archive_writer_free(w);
        free(out.buf);
    }

    /* A payload that is not a zstd frame of the stated length. */
    struct membuf out = {0};
    struct archive_writer *w = small_writer(&out);
    expect_writer_error(archive_writer_add_chunk(w, 0, 4096, "not zstd", 8, sha), "zstd frame");
    archive_writer_free(w);
    w = small_writer(&out);
    expect_writer_error(archive_writer_add_chunk(w, 0, 4095, z, zlen, sha), "zstd frame");
    archive_writer_free(w);
    w = small_writer(&out);
    assert_int_equal(archive_writer_add_chunk(w, 0, 4096, z, zlen, sha), 0);
    assert_int_equal(archive_writer_finish(w, NULL), 0);
    expect_writer_error(archive_writer_add_zero(w, 8192, 4096), "finished");
    archive_writer_free(w);
    free(out.buf);
    free(z);
}

static void test_writer_bad_header(void **state)
{
    struct membuf out = {0};
    struct archive_sink sink = {.write = mem_write, .opaque = &out};
    struct archive_header h;

    (void)state;
    header_sample(&h);
    h.level = (char *)"auto";
    assert_null(archive_writer_open(&sink, &h, 0));
    assert_non_null(strstr(vk_error_message(), "level"));
    header_sample(&h);
    h.chunk_size = 0;
    assert_null(archive_writer_open(&sink, &h, 0));
    header_sample(&h);
    h.chunk_size = ARCHIVE_CHUNK_SIZE_MAX + 1;
    assert_null(archive_writer_open(&sink, &h, 0));
    header_sample(&h);
    h.disk = (char *)"";
    assert_null(archive_writer_open(&sink, &h, 0));
    header_sample(&h);
    assert_null(archive_writer_open(&sink, &h, 1));
    assert_int_equal(out.len, 0);
    free(out.buf);
}

/* Write a small archive into a sink that fills up at LIMIT bytes. */
static int write_limited(size_t limit, const uint8_t *z, size_t zlen, const uint8_t *sha,
                         size_t *size)
{
    struct membuf out = {.fail_at = limit};
    struct archive_sink sink = {.write = mem_write, .opaque = &out};
    struct archive_header h;
    struct archive_writer *w;
    int r = -1;

    header_sample(&h);
    w = archive_writer_open(&sink, &h, 0);
    if (w && archive_writer_add_chunk(w, 0, 60000, z, zlen, sha) == 0 &&
        archive_writer_add_zero(w, 60000, 4096) == 0)
        r = archive_writer_finish(w, NULL);
    archive_writer_free(w);
    free(out.buf);
    *size = out.len;
    return r;
}

/* A sink error (the target is full) reaches the caller as the sink said it. */
static void test_writer_sink_full(void **state)
{
    uint8_t sha[ARCHIVE_SHA256_LEN];
    size_t zlen, size, partial;
    uint8_t *z = small_frame(60000, &zlen, sha);

    (void)state;
    assert_int_equal(write_limited(0, z, zlen, sha, &size), 0);
    assert_int_equal(size % 512, 0);
    for (size_t limit = 1; limit < size; limit += limit < 4096 ? 1 : 509) {
        assert_int_equal(write_limited(limit, z, zlen, sha, &partial), -1);
        assert_int_equal(vk_error_code(), VK_ERR_NO_SPACE);
        assert_non_null(strstr(vk_error_message(), "memory sink"));
        assert_true(partial <= limit);
    }
    assert_int_equal(write_limited(size, z, zlen, sha, &partial), 0);
    assert_int_equal(partial, size);
    free(z);
}

/* ------------------------------------------------------------ corruption */

static uint8_t *sample_copy(void)
{
    uint8_t *copy = malloc(shared->out.len);

    assert_non_null(copy);
    memcpy(copy, shared->out.buf, shared->out.len);
    return copy;
}

static void expect_open_corrupt(const uint8_t *buf, uint64_t size, const char *fragment)
{
    struct memsrc s;
    struct archive_reader *r = open_mem(&s, buf, size);

    assert_null(r);
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    assert_non_null(strstr(vk_error_message(), "archive 'web1/b1/vda.tar'"));
    if (fragment)
        assert_non_null(strstr(vk_error_message(), fragment));
    assert_int_equal(s.out_of_range, 0);
}

/* Flip bytes of one frame: the read fails naming the archive and the chunk's
 * offset; the other chunks still read. */
static void flip_frame_bytes(size_t which, size_t step)
{
    uint8_t *buf = sample_copy(), *out = malloc(sample[which].length);
    uint8_t *want = malloc(sample[which].length);
    size_t tried = 0, continue_ok = 0;
    const struct archive_extent *ex;
    struct archive_reader *r;
    struct memsrc s;
    char offset_text[64];
    size_t n;

    fill(want, sample[which].length, sample[which].pat, which);
    r = open_mem(&s, buf, shared->out.len);
    assert_non_null(r);
    ex = archive_reader_extents(r, &n);
    snprintf(offset_text, sizeof(offset_text), "offset %" PRIu64, ex[which].offset);
    for (size_t i = 0; i < ex[which].size; i += step) {
        buf[ex[which].position + i] ^= 0x55;
        /* A flip in redundant entropy-coded bits may decode to the same
         * data: then the sha256 passed on the original bytes, which is
         * fine.  Anything else must fail, naming the archive and offset. */
        if (archive_reader_read_chunk(r, &ex[which], out) == 0) {
            assert_memory_equal(out, want, ex[which].length);
            continue_ok++;
        } else {
            assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
            assert_non_null(strstr(vk_error_message(), "web1/b1/vda.tar"));
            assert_non_null(strstr(vk_error_message(), offset_text));
        }
        tried++;
        buf[ex[which].position + i] ^= 0x55;
    }
    /* Restored, it reads again; its neighbour was never affected. */
    assert_true(continue_ok * 100 <= tried);
    assert_int_equal(archive_reader_read_chunk(r, &ex[which], out), 0);
    assert_memory_equal(out, want, ex[which].length);
    archive_reader_free(r);
    free(want);
    free(out);
    free(buf);
}

static void test_corrupt_frame(void **state)
{
    (void)state;
    flip_frame_bytes(7, 1);    /* the final 1000-byte chunk: every byte */
    flip_frame_bytes(1, 4099); /* a compressed text chunk: ~170 spots */
    flip_frame_bytes(6, 4111); /* above 4 GiB */
}

static void test_corrupt_sha_message(void **state)
{
    uint8_t *buf = sample_copy(), *out = malloc(4 * MiB);
    const struct archive_extent *ex;
    struct archive_reader *r;
    struct memsrc s;
    size_t n;

    (void)state;
    r = open_mem(&s, buf, shared->out.len);
    ex = archive_reader_extents(r, &n);
    /* The last byte of a raw frame of random data is literal data. */
    buf[ex[7].position + ex[7].size - 1] ^= 1;
    assert_int_equal(archive_reader_read_chunk(r, &ex[7], out), -1);
    assert_non_null(strstr(vk_error_message(), "fails its sha256 check"));
    assert_non_null(strstr(vk_error_message(), "0x140400000"));
    /* An extent that is not the reader's own is refused. */
    struct archive_extent fake = ex[0];
    assert_int_equal(archive_reader_read_chunk(r, &fake, out), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    archive_reader_free(r);
    free(out);
    free(buf);
}

static void trailer_fields(const uint8_t *buf, size_t len, uint64_t *pos, uint64_t *ilen)
{
    const uint8_t *rec = buf + len - 1536;

    *pos = *ilen = 0;
    for (int k = 7; k >= 0; k--) {
        *pos = *pos << 8 | rec[16 + k];
        *ilen = *ilen << 8 | rec[24 + k];
    }
}

/* archive_decoder: several threads, each with its own decoder, decode the
 * frames of one archive buffer at once and get the right bytes; a damaged
 * frame fails on its thread, naming the archive and the chunk. */
struct decode_job {
    const struct archive_extent *ex;
    size_t n;
    const uint8_t *buf; /* the archive */
    int failures;
};

static void *decode_all(void *arg)
{
    struct decode_job *j = arg;
    struct archive_decoder *d = archive_decoder_new();

    for (size_t i = 0; d && i < j->n; i++) {
        const struct archive_extent *e = &j->ex[i];
        if (e->kind == ARCHIVE_EXTENT_ZERO && e->length > 8 * MiB)
            continue;
        uint8_t *got = malloc(e->length), *want = malloc(e->length);
        memset(got, 0xaa, e->length);
        if (e->kind == ARCHIVE_EXTENT_ZERO)
            memset(want, 0, e->length);
        else
            fill(want, e->length, sample[i].pat, i);
        if (archive_decoder_decode(d, "web1/b1/vda.tar", e, j->buf + e->position, got) < 0 ||
            memcmp(got, want, e->length) != 0)
            j->failures++;
        free(got);
        free(want);
    }
    bool ok = d != NULL;
    archive_decoder_free(d);
    return ok ? NULL : arg;
}

static void test_decoder_threads(void **state)
{
    struct decode_job jobs[4];
    pthread_t th[4];
    const struct archive_extent *ex;
    struct memsrc s;
    struct archive_reader *r;
    uint8_t *bad = sample_copy(), *out;
    struct archive_decoder *d;
    char offset_text[64];
    size_t n;
    void *ret;

    (void)state;
    r = open_mem(&s, shared->out.buf, shared->out.len);
    assert_non_null(r);
    ex = archive_reader_extents(r, &n);
    for (size_t t = 0; t < 4; t++) {
        jobs[t] = (struct decode_job){.ex = ex, .n = n, .buf = shared->out.buf};
        assert_int_equal(pthread_create(&th[t], NULL, decode_all, &jobs[t]), 0);
    }
    for (size_t t = 0; t < 4; t++) {
        assert_int_equal(pthread_join(th[t], &ret), 0);
        assert_null(ret);
        assert_int_equal(jobs[t].failures, 0);
    }
    /* One flipped byte in the middle of frame 1. */
    bad[ex[1].position + ex[1].size / 2] ^= 0x55;
    assert_non_null((d = archive_decoder_new()));
    out = malloc(ex[1].length);
    assert_int_equal(
        archive_decoder_decode(d, "web1/b1/vda.tar", &ex[1], bad + ex[1].position, out), -1);
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    snprintf(offset_text, sizeof(offset_text), "offset %" PRIu64, ex[1].offset);
    assert_non_null(strstr(vk_error_message(), "archive 'web1/b1/vda.tar'"));
    assert_non_null(strstr(vk_error_message(), offset_text));
    /* The decoder is still usable after a failure. */
    assert_int_equal(
        archive_decoder_decode(d, "web1/b1/vda.tar", &ex[1], shared->out.buf + ex[1].position, out),
        0);
    uint8_t sha[ARCHIVE_SHA256_LEN];
    assert_int_equal(archive_sha256(out, ex[1].length, sha), 0);
    assert_memory_equal(sha, ex[1].sha256, ARCHIVE_SHA256_LEN);
    archive_decoder_free(d);
    archive_decoder_free(NULL);
    archive_reader_free(r);
    free(out);
    free(bad);
}

static void test_corrupt_index(void **state)
{
    uint8_t *buf = sample_copy();
    uint64_t pos, ilen;

    (void)state;
    trailer_fields(buf, shared->out.len, &pos, &ilen);
    for (uint64_t i = 0; i < ilen; i += 7) {
        buf[pos + i] ^= 0x20;
        expect_open_corrupt(buf, shared->out.len, "the index fails its sha256 check");
        buf[pos + i] ^= 0x20;
    }
    free(buf);
}

static void test_corrupt_tail(void **state)
{
    uint8_t *buf = sample_copy();
    size_t len = shared->out.len;

    (void)state;
    /* Every byte of the trailer header, record, padding and end blocks. */
    for (size_t i = len - 2048; i < len; i++) {
        buf[i] ^= 0x01;
        expect_open_corrupt(buf, len, NULL);
        buf[i] ^= 0x01;
        buf[i] ^= 0xff;
        expect_open_corrupt(buf, len, NULL);
        buf[i] ^= 0xff;
    }
    free(buf);
}

static void test_truncated(void **state)
{
    size_t len = shared->out.len;

    (void)state;
    for (size_t size = 0; size < len; size += size < 8192 ? 1 : 512)
        expect_open_corrupt(shared->out.buf, size, NULL);
    expect_open_corrupt(shared->out.buf, len - 1, "truncated");
    expect_open_corrupt(shared->out.buf, len - 512, NULL);
    expect_open_corrupt(shared->out.buf, len - 1024, NULL);
    /* The index member deleted (the tail moved up over it) is caught too. */
    uint8_t *buf = sample_copy();
    uint64_t pos, ilen;
    trailer_fields(buf, len, &pos, &ilen);
    memmove(buf + pos - 512, buf + len - 2048, 2048);
    expect_open_corrupt(buf, pos - 512 + 2048, "outside the archive");
    free(buf);
}

/* Rewrite the trailer's index and self sha256 after editing the index, as a
 * forger would: the structural checks must still catch the damage. */
static void reseal(uint8_t *buf, size_t len)
{
    uint8_t *rec = buf + len - 1536;
    uint64_t pos, ilen;

    trailer_fields(buf, len, &pos, &ilen);
    assert_int_equal(archive_sha256(buf + pos, ilen, rec + 40), 0);
    assert_int_equal(archive_sha256(rec, 72, rec + 72), 0);
}

static void edit_index(uint8_t *buf, size_t len, const char *from, const char *to)
{
    uint64_t pos, ilen;
    char *text;

    trailer_fields(buf, len, &pos, &ilen);
    text = strndup((const char *)buf + pos, ilen);
    char *hit = strstr(text, from);
    assert_non_null(hit);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(buf + pos + (size_t)(hit - text), to, strlen(to));
    free(text);
    reseal(buf, len);
}

static void test_forged_index(void **state)
{
    static const struct {
        const char *from, *to, *why;
    } edits[] = {
        {"\"length\":4194304,", "\"length\":4194305,", "larger than the chunk size"},
        {"{\"offset\":4194304,", "{\"offset\":4194303,", "overlaps the previous"},
        {"\"kind\":\"zero\"", "\"kind\":\"zer0\"", "neither data nor zero"},
        {"\"version\":1", "\"version\":2", "format version 2"},
        {"\"level\":\"full\"", "\"level\":\"fu11\"", "level"},
        {"\"offset\":5368709120", "\"offset\":5368709121", "overlaps the previous"},
        {"{\"offset\":0,", "{\"offset\":1,", "overlaps the previous"},
        {"\"size\":", "\"sizf\":", "unknown key"},
        {"\"position\":1536", "\"position\":1024", "frame position"},
        {"\"position\":1536", "\"position\":1537", "frame position"},
    };
    size_t len = shared->out.len;

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(edits); i++) {
        uint8_t *buf = sample_copy();
        struct memsrc s;
        edit_index(buf, len, edits[i].from, edits[i].to);
        assert_null(open_mem(&s, buf, len));
        assert_non_null(strstr(vk_error_message(), edits[i].why));
        assert_true(vk_error_code() == VK_ERR_CORRUPT || vk_error_code() == VK_ERR_UNSUPPORTED);
        free(buf);
    }
    /* A resealed index with a wrong sha256 opens, and the read catches it. */
    uint8_t *buf = sample_copy(), *out = malloc(4 * MiB);
    struct archive_reader *r;
    struct memsrc s;
    size_t n;
    char sha_hex[ARCHIVE_SHA256_HEX_LEN + 1], bad_hex[ARCHIVE_SHA256_HEX_LEN + 1];
    archive_sha256_hex(shared->sha[1], sha_hex);
    memcpy(bad_hex, sha_hex, sizeof(bad_hex));
    bad_hex[10] = bad_hex[10] == '0' ? '1' : '0';
    edit_index(buf, len, sha_hex, bad_hex);
    r = open_mem(&s, buf, len);
    assert_non_null(r);
    const struct archive_extent *ex = archive_reader_extents(r, &n);
    assert_int_equal(archive_reader_read_chunk(r, &ex[1], out), -1);
    assert_non_null(strstr(vk_error_message(), "offset 4194304 (0x400000"));
    assert_non_null(strstr(vk_error_message(), "sha256"));
    archive_reader_free(r);
    free(out);
    free(buf);
}

/* ----------------------------------------------------------- index parse */

#define IDX_HEAD                                                                                   \
    "{\"format\":\"virtkeep-archive-index\",\"version\":1,\"header\":{\"format\":"                 \
    "\"virtkeep-archive\",\"version\":1,\"disk\":\"vda\",\"virtual_size\":1048576,"                \
    "\"chunk_size\":65536,\"backup_id\":\"b1\",\"level\":\"inc\",\"created\":5},"                  \
    "\"body_sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\","
#define SHA_ABC "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""
#define DATA_AT(off, pos)                                                                          \
    "{\"offset\":" #off ",\"length\":4096,\"kind\":\"data\",\"sha256\":" SHA_ABC                   \
    ",\"position\":" #pos ",\"size\":100}"

static void test_index_parse(void **state)
{
    static const struct {
        const char *json, *why;
    } bad[] = {
        {IDX_HEAD "\"extents\":[]} x", "is corrupt"},
        {IDX_HEAD "\"extents\":[]", "ends early"},
        {"[1]", "not a JSON object"},
        {IDX_HEAD "\"extents\":{}}", "'extents' is not an array"},
        {IDX_HEAD "\"extents\":[{\"offset\":-1,\"length\":1,\"kind\":\"zero\"}]}", "out of range"},
        {IDX_HEAD "\"extents\":[{\"offset\":1.5,\"length\":1,\"kind\":\"zero\"}]}",
         "not an integer"},
        {IDX_HEAD "\"extents\":[{\"offset\":18446744073709551615,\"length\":1,\"kind\":\"zero\"}]}",
         "out of range"},
        {IDX_HEAD "\"extents\":[{\"offset\":0,\"length\":1}]}", "'kind' is missing"},
        {IDX_HEAD "\"extents\":[{\"offset\":0,\"length\":1,\"kind\":\"zero\",\"size\":1}]}",
         "unknown key"},
        {IDX_HEAD "\"extents\":[{\"offset\":0,\"length\":0,\"kind\":\"zero\"}]}", "empty"},
        {IDX_HEAD "\"extents\":[{\"offset\":1048000,\"length\":4096,\"kind\":\"zero\"}]}",
         "beyond the virtual size"},
        {IDX_HEAD "\"extents\":[" DATA_AT(0, 1536) "," DATA_AT(4096, 1536) "]}", "frame position"},
        {IDX_HEAD "\"extents\":[" DATA_AT(0, 1536) "," DATA_AT(4096, 2048) "]}", "frame position"},
        {IDX_HEAD "\"extents\":[" DATA_AT(0, 1536) "," DATA_AT(4096, 2560) "]}", NULL},
        {IDX_HEAD "\"extents\":[" DATA_AT(0, 1048064) "]}", "beyond the start of the index"},
        {IDX_HEAD "\"extents\":[" DATA_AT(4096, 1536) "," DATA_AT(0, 2560) "]}", "out of order"},
        {IDX_HEAD "\"extents\":[{\"offset\":0,\"length\":4096,\"kind\":\"data\",\"sha256\":"
                  "\"abc\",\"position\":1536,\"size\":100}]}",
         "sha256 is not"},
        {IDX_HEAD "\"extents\":[{\"offset\":0,\"length\":4096,\"kind\":\"data\",\"sha256\":" SHA_ABC
                  ",\"position\":1536,\"size\":0}]}",
         "frame size"},
        {IDX_HEAD "\"extents\":[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]}", "nesting"},
        {"{\"format\":\"virtkeep-archive-index\",\"version\":1,\"header\":{},\"extents\":[]}",
         "missing"},
        {"{\"format\":\"virtkeep-manifest\",\"version\":1}", "not 'virtkeep-archive-index'"},
        {"{\"format\":\"virtkeep-archive-index\",\"version\":1,\"header\":{\"format\":\"virtkeep-"
         "archive\",\"version\":1,\"disk\":\"v\\u0000da\",\"virtual_size\":1,\"chunk_size\":1,"
         "\"backup_id\":\"b\",\"level\":\"full\",\"created\":1}}",
         "NUL byte"},
    };
    struct archive_index idx;

    (void)state;
    const char *good = IDX_HEAD "\"extents\":[" DATA_AT(0, 1536) ",{\"offset\":8192,\"length\":"
                                                                 "999999,\"kind\":\"zero\"}]}";
    assert_int_equal(archive_index_parse(good, strlen(good), 1048576, "k", &idx), 0);
    assert_int_equal(idx.nr_extents, 2);
    assert_int_equal(idx.extents[1].kind, ARCHIVE_EXTENT_ZERO);
    assert_string_equal(idx.header.level, "inc");
    archive_index_clear(&idx);
    for (size_t i = 0; i < VK_ARRAY_SIZE(bad); i++) {
        int r = archive_index_parse(bad[i].json, strlen(bad[i].json), 1048576, "k", &idx);
        if (!bad[i].why) {
            assert_int_equal(r, 0);
            archive_index_clear(&idx);
            continue;
        }
        if (r == 0 || !strstr(vk_error_message(), bad[i].why))
            fail_msg("case %zu: got '%s'", i, r == 0 ? "success" : vk_error_message());
        assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
        assert_null(idx.extents);
    }
    /* Every prefix of a valid index fails cleanly. */
    for (size_t n = 0; n < strlen(good); n++) {
        assert_int_equal(archive_index_parse(good, n, 1048576, "k", &idx), -1);
        assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    }
}

/* ------------------------------------------------------- index memory */

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define HUGE_EXTENTS 2000000

/* A genuine archive (written by the writer) whose index lists 2 million
 * 1-byte zero extents, 32 bytes apart: about 80 MB of index JSON. */
static void huge_index_write(struct membuf *out, uint64_t vsize)
{
    struct archive_sink sink = {.write = mem_write, .opaque = out};
    uint8_t digest[ARCHIVE_SHA256_LEN];
    struct archive_header h;
    struct archive_writer *w;

    memset(out, 0, sizeof(*out));
    header_sample(&h);
    h.virtual_size = vsize;
    assert_non_null((w = archive_writer_open(&sink, &h, 0)));
    for (uint64_t i = 0; i < HUGE_EXTENTS; i++)
        assert_int_equal(archive_writer_add_zero(w, i * 32, 1), 0);
    assert_int_equal(archive_writer_finish(w, digest), 0);
    archive_writer_free(w);
}

static long maxrss_kib(void)
{
    struct rusage ru;

    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *fp = fopen("/proc/self/statm", "r");

    assert_non_null(fp);
    assert_int_equal(fscanf(fp, "%ld %ld", &pages, &resident), 2);
    fclose(fp);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Start the peak RSS (ru_maxrss, VmHWM) over from the current RSS. */
static void maxrss_reset(void)
{
    FILE *fp = fopen("/proc/self/clear_refs", "w");

    assert_non_null(fp);
    fputs("5", fp);
    fclose(fp);
}

/* The peak RSS growth of opening OUT, in MiB (0 under ASan, whose shadow
 * memory and quarantine make it meaningless). */
static long open_rss_mib(struct membuf *out, struct archive_reader **r, double *seconds)
{
    long before = (maxrss_reset(), rss_kib());
    double t0 = now_s();
    struct memsrc s;

    *r = open_mem(&s, out->buf, out->len);
    *seconds = now_s() - t0;
    long grown = (maxrss_kib() - before) / 1024;
#ifdef UNDER_ASAN
    grown = 0;
#endif
    return grown;
}

/* 2 million extents cannot lie on a 64 MiB disk (at most 131090 can): the
 * open fails fast, names the archive, and never builds the extent list. */
static void test_index_too_many_extents(void **state)
{
    struct archive_reader *r;
    struct membuf out;
    double secs;
    long mib;

    (void)state;
    huge_index_write(&out, 64 * MiB);
    mib = open_rss_mib(&out, &r, &secs);
    print_message("refused in %.2f s, +%ld MiB peak RSS\n", secs, mib);
    if (r)
        fail_msg("an index of %d extents on a 64 MiB disk was accepted (+%ld MiB RSS)",
                 HUGE_EXTENTS, mib);
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    assert_non_null(strstr(vk_error_message(), "archive 'web1/b1/vda.tar'"));
    assert_non_null(strstr(vk_error_message(), "2000000 extents"));
    assert_non_null(strstr(vk_error_message(), "131090 at most"));
    /* The index text itself (80 MB) is read; nothing proportional to the
     * extents beyond it. */
    if (mib > 160)
        fail_msg("refusing the index took %ld MiB of RSS", mib);
    if (secs > 10)
        fail_msg("refusing the index took %.1f s", secs);
    free(out.buf);
}

/* The same 2 million extents on a 1 TiB disk are valid: they are read
 * without a JSON tree per extent (that took 2.4 GB): the index text and
 * one struct per extent. */
static void test_index_many_extents_memory(void **state)
{
    struct archive_reader *r;
    struct membuf out;
    const struct archive_extent *e;
    size_t n;
    double secs;
    long mib;

    (void)state;
    huge_index_write(&out, 1024 * GiB);
    mib = open_rss_mib(&out, &r, &secs);
    print_message("opened in %.2f s, +%ld MiB peak RSS\n", secs, mib);
    if (!r)
        fail_msg("cannot open: %s", vk_error_message());
    e = archive_reader_extents(r, &n);
    assert_int_equal(n, HUGE_EXTENTS);
    assert_int_equal(e[HUGE_EXTENTS - 1].offset, (uint64_t)(HUGE_EXTENTS - 1) * 32);
    assert_int_equal(e[HUGE_EXTENTS - 1].kind, ARCHIVE_EXTENT_ZERO);
    archive_reader_free(r);
    if (mib > 400)
        fail_msg("opening an index of %d extents took %ld MiB of RSS", HUGE_EXTENTS, mib);
    free(out.buf);
}

/* -------------------------------------------------------------- manifest */

static void manifest_sample(struct manifest *m, const char *level)
{
    bool inc = strcmp(level, "inc") == 0 || strcmp(level, "diff") == 0;
    bool copy = strcmp(level, "copy") == 0;

    memset(m, 0, sizeof(*m));
    m->backup_id = strdup("20261128T010000Z");
    m->domain_name = strdup("web1");
    m->domain_uuid = strdup("6f1c3b52-2b4e-4a51-9d0e-3c2b1a0f9e8d");
    m->level = strdup(level);
    m->parent_id = inc ? strdup("20261127T010000Z") : NULL;
    m->has_parent_manifest_sha256 = inc;
    for (int k = 0; inc && k < ARCHIVE_SHA256_LEN; k++)
        m->parent_manifest_sha256[k] = (uint8_t)(0xa0 + k);
    m->checkpoint_name = copy ? NULL : strdup("virtkeep-20261128T010000Z");
    m->checkpoint_xml =
        copy ? NULL : strdup("<domaincheckpoint><name>x</name>\n\"q\"/</domaincheckpoint>");
    m->domain_xml = strdup("<domain type='kvm'><name>web1</name></domain>");
    m->started = 1795482000;
    m->finished = 1795482042;
    for (int i = 0; i < 2; i++) {
        struct manifest_disk *d = manifest_disk_add(m);
        d->target = strdup(i ? "vdb" : "vda");
        d->virtual_size = (i + 1) * 64 * GiB;
        d->archive_key =
            strdup(i ? "web1/20261128T010000Z/vdb.tar" : "web1/20261128T010000Z/vda.tar");
        d->archive_size = 123456789 + i;
        for (int k = 0; k < ARCHIVE_SHA256_LEN; k++)
            d->archive_sha256[k] = (uint8_t)(k * 7 + i);
        d->bytes_read = 1500 * MiB;
        d->bytes_stored = 100000000;
    }
}

static void manifest_equal(const struct manifest *a, const struct manifest *b)
{
    assert_string_equal(a->backup_id, b->backup_id);
    assert_string_equal(a->domain_name, b->domain_name);
    assert_string_equal(a->domain_uuid, b->domain_uuid);
    assert_string_equal(a->level, b->level);
    assert_string_equal(a->domain_xml, b->domain_xml);
    assert_true((a->parent_id == NULL) == (b->parent_id == NULL));
    if (a->parent_id)
        assert_string_equal(a->parent_id, b->parent_id);
    assert_int_equal(a->has_parent_manifest_sha256, b->has_parent_manifest_sha256);
    if (a->has_parent_manifest_sha256)
        assert_memory_equal(a->parent_manifest_sha256, b->parent_manifest_sha256,
                            ARCHIVE_SHA256_LEN);
    assert_true((a->checkpoint_name == NULL) == (b->checkpoint_name == NULL));
    if (a->checkpoint_name) {
        assert_string_equal(a->checkpoint_name, b->checkpoint_name);
        assert_string_equal(a->checkpoint_xml, b->checkpoint_xml);
    }
    assert_int_equal(a->started, b->started);
    assert_int_equal(a->finished, b->finished);
    assert_int_equal(a->nr_disks, b->nr_disks);
    for (size_t i = 0; i < a->nr_disks; i++) {
        const struct manifest_disk *x = &a->disks[i], *y = &b->disks[i];
        assert_string_equal(x->target, y->target);
        assert_string_equal(x->archive_key, y->archive_key);
        assert_int_equal(x->virtual_size, y->virtual_size);
        assert_int_equal(x->archive_size, y->archive_size);
        assert_int_equal(x->bytes_read, y->bytes_read);
        assert_int_equal(x->bytes_stored, y->bytes_stored);
        assert_memory_equal(x->archive_sha256, y->archive_sha256, ARCHIVE_SHA256_LEN);
    }
}

static void test_manifest_roundtrip(void **state)
{
    static const char *const lv[] = {"full", "inc", "diff", "copy"};

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(lv); i++) {
        struct manifest m, back;
        manifest_sample(&m, lv[i]);
        char *json = manifest_to_json(&m, 0);
        assert_non_null(json);
        assert_int_equal(manifest_parse(json, strlen(json), "web1/x/manifest.json", &back), 0);
        manifest_equal(&m, &back);
        /* Parsing and building again gives the same text. */
        char *again = manifest_to_json(&back, 0);
        assert_string_equal(json, again);
        free(again);
        free(json);
        manifest_clear(&back);
        manifest_clear(&m);
    }
}

static void test_manifest_build_invalid(void **state)
{
    struct manifest m;

    (void)state;
    manifest_sample(&m, "inc");
    free(m.parent_id);
    m.parent_id = NULL;
    assert_null(manifest_to_json(&m, 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "parent"));
    manifest_clear(&m);

    manifest_sample(&m, "full");
    free(m.disks[1].target);
    m.disks[1].target = strdup("vda");
    assert_null(manifest_to_json(&m, 0));
    assert_non_null(strstr(vk_error_message(), "twice"));
    manifest_clear(&m);

    manifest_sample(&m, "full");
    m.finished = m.started - 1;
    assert_int_equal(manifest_validate(&m), -1);
    manifest_clear(&m);

    manifest_sample(&m, "copy");
    m.checkpoint_name = strdup("cp");
    assert_int_equal(manifest_validate(&m), -1);
    manifest_clear(&m);
}

/* Apply EDIT to the JSON tree of a valid manifest and parse the result. */
static int parse_edited(const char *valid, void (*edit)(struct json_object *, const char *),
                        const char *arg, struct manifest *out)
{
    struct json_object *root = json_tokener_parse(valid);
    const char *text;
    int r;

    assert_non_null(root);
    edit(root, arg);
    text = json_object_to_json_string(root);
    r = manifest_parse(text, strlen(text), "web1/x/manifest.json", out);
    json_object_put(root);
    return r;
}

static struct json_object *walk(struct json_object *root, const char **key)
{
    const char *dot = strchr(*key, '.');
    static char first[64];

    if (!dot)
        return root;
    snprintf(first, sizeof(first), "%.*s", (int)(dot - *key), *key);
    *key = dot + 1;
    if (strcmp(first, "disks") == 0)
        return json_object_array_get_idx(json_object_object_get(root, "disks"), 0);
    return json_object_object_get(root, first);
}

static void edit_delete(struct json_object *root, const char *key)
{
    struct json_object *o = walk(root, &key);
    json_object_object_del(o, key);
}

static void edit_wrong_type(struct json_object *root, const char *key)
{
    struct json_object *o = walk(root, &key), *v = json_object_object_get(o, key);
    json_object_object_add(o, key,
                           json_object_is_type(v, json_type_string) ? json_object_new_int(1)
                                                                    : json_object_new_string("1"));
}

static void edit_set(struct json_object *root, const char *spec)
{
    char key[64];
    const char *eq = strchr(spec, '='), *k = key;
    snprintf(key, sizeof(key), "%.*s", (int)(eq - spec), spec);
    struct json_object *o = walk(root, &k);
    json_object_object_add(o, k, json_tokener_parse(eq + 1));
}

static void test_manifest_malformed(void **state)
{
    static const char *const keys[] = {"format",
                                       "version",
                                       "backup_id",
                                       "level",
                                       "parent_id",
                                       "parent_manifest_sha256",
                                       "domain",
                                       "checkpoint",
                                       "started",
                                       "finished",
                                       "disks",
                                       "domain.name",
                                       "domain.uuid",
                                       "domain.xml",
                                       "checkpoint.name",
                                       "checkpoint.xml",
                                       "disks.target",
                                       "disks.virtual_size",
                                       "disks.archive_key",
                                       "disks.archive_size",
                                       "disks.archive_sha256",
                                       "disks.bytes_read",
                                       "disks.bytes_stored"};
    static const struct {
        const char *spec, *why;
    } sets[] = {
        {"version=5", "format version 5"},
        {"parent_manifest_sha256=null", "null for a backup with a parent"},
        {"parent_manifest_sha256=\"00\"", "parent_manifest_sha256 is not 64"},
        {"parent_manifest_sha256=\"AA\"", "parent_manifest_sha256 is not 64"},
        {"domain.xml=\"<domain>\\u00e9</domain>\"", "__valid__"},
        {"format=\"virtkeep-archive\"", "format"},
        {"extra=1", "unknown key 'extra'"},
        {"domain.uuid=\"6f1c3b52-2b4e-4a51-9d0e-3c2b1a0f9e8\"", "UUID"},
        {"disks.archive_sha256=\"00\"", "archive_sha256"},
        {"parent_id=null", "parent"},
        {"level=\"auto\"", "level"},
        {"started=-5", "out of range"},
        {"finished=1.5", "not an integer"},
        {"disks=[]", "no disks"},
        {"disks.bytes_stored=999999999999", "stored"},
        {"backup_id=\"a/b\"", "backup id"},
        {"checkpoint=null", "checkpoint"},
        {"domain=[]", "not an object"},
    };
    struct manifest m, out;
    char *valid;

    (void)state;
    manifest_sample(&m, "inc");
    valid = manifest_to_json(&m, 0);
    manifest_clear(&m);
    for (size_t i = 0; i < VK_ARRAY_SIZE(keys); i++) {
        assert_int_equal(parse_edited(valid, edit_delete, keys[i], &out), -1);
        assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
        assert_non_null(strstr(vk_error_message(), "manifest 'web1/x/manifest.json' is corrupt"));
        assert_null(out.backup_id);
        if (strcmp(keys[i], "checkpoint") == 0 || strcmp(keys[i], "domain") == 0 ||
            strcmp(keys[i], "disks") == 0)
            continue;
        assert_int_equal(parse_edited(valid, edit_wrong_type, keys[i], &out), -1);
    }
    for (size_t i = 0; i < VK_ARRAY_SIZE(sets); i++) {
        int r = parse_edited(valid, edit_set, sets[i].spec, &out);
        if (strcmp(sets[i].why, "__valid__") == 0) { /* UTF-8 that is valid passes */
            if (r < 0)
                fail_msg("case '%s': %s", sets[i].spec, vk_error_message());
            manifest_clear(&out);
            continue;
        }
        if (r == 0 || !strstr(vk_error_message(), sets[i].why))
            fail_msg("case '%s': got '%s'", sets[i].spec, r == 0 ? "success" : vk_error_message());
    }
    /* Every prefix of a valid manifest fails cleanly. */
    assert_int_equal(valid[strlen(valid) - 1], '\n');
    for (size_t n = 0; n < strlen(valid) - 1; n++)
        assert_int_equal(manifest_parse(valid, n, "m", &out), -1);
    /* Garbage, huge input and a lone scalar. */
    assert_int_equal(manifest_parse("\"x\"", 3, "m", &out), -1);
    assert_int_equal(manifest_parse("{}", 2, "m", &out), -1);
    assert_int_equal(manifest_parse(valid, MANIFEST_MAX_SIZE + 1, "m", &out), -1);
    assert_non_null(strstr(vk_error_message(), "larger than"));
    assert_int_equal(manifest_parse(valid, strlen(valid), "m", &out), 0);
    manifest_clear(&out);
    free(valid);
}

/* The parent's manifest digest (version 3): written for inc and diff, null
 * for full and copy, required to build a child, and the text a version-2
 * reader would refuse (a new key) comes with a new version. */
static void test_manifest_parent_link(void **state)
{
    struct manifest m, back;
    char *json;

    (void)state;
    manifest_sample(&m, "inc");
    json = manifest_to_json(&m, 0);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"version\": 3"));
    assert_non_null(strstr(json,
                           "\"parent_manifest_sha256\": "
                           "\"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\""));
    assert_int_equal(manifest_parse(json, strlen(json), "web1/x/manifest.json", &back), 0);
    assert_int_equal(back.version, 3);
    assert_true(back.has_parent_manifest_sha256);
    assert_memory_equal(back.parent_manifest_sha256, m.parent_manifest_sha256, ARCHIVE_SHA256_LEN);
    manifest_clear(&back);
    free(json);

    /* A child without the record cannot be written. */
    m.has_parent_manifest_sha256 = false;
    assert_null(manifest_to_json(&m, 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "parent's manifest"));
    manifest_clear(&m);

    /* A full: null, and a digest without a parent is refused. */
    manifest_sample(&m, "full");
    json = manifest_to_json(&m, 0);
    assert_non_null(strstr(json, "\"parent_manifest_sha256\": null"));
    assert_int_equal(manifest_parse(json, strlen(json), "k", &back), 0);
    assert_false(back.has_parent_manifest_sha256);
    manifest_clear(&back);
    free(json);
    m.has_parent_manifest_sha256 = true;
    assert_int_equal(manifest_validate(&m), -1);
    manifest_clear(&m);
}

/* Versions 1 and 2 (no parent_manifest_sha256) are still read: the link is
 * then unknown, not broken.  A version-2 text with the new key is not. */
static void test_manifest_parent_link_old(void **state)
{
    struct manifest m, back;
    struct json_object *root;
    const char *text;
    char *json;

    (void)state;
    manifest_sample(&m, "inc");
    json = manifest_to_json(&m, 0);
    manifest_clear(&m);
    root = json_tokener_parse(json);
    json_object_object_add(root, "version", json_object_new_int(2));
    text = json_object_to_json_string(root);
    assert_int_equal(manifest_parse(text, strlen(text), "k", &back), -1);
    assert_non_null(strstr(vk_error_message(), "parent_manifest_sha256"));
    json_object_object_del(root, "parent_manifest_sha256");
    text = json_object_to_json_string(root);
    assert_int_equal(manifest_parse(text, strlen(text), "k", &back), 0);
    assert_int_equal(back.version, 2);
    assert_false(back.has_parent_manifest_sha256);
    assert_string_equal(back.parent_id, "20261127T010000Z");
    manifest_clear(&back);
    json_object_put(root);
    /* A version-3 text without the key is corrupt. */
    root = json_tokener_parse(json);
    json_object_object_del(root, "parent_manifest_sha256");
    text = json_object_to_json_string(root);
    assert_int_equal(manifest_parse(text, strlen(text), "k", &back), -1);
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    assert_non_null(strstr(vk_error_message(), "'parent_manifest_sha256' is missing"));
    json_object_put(root);
    free(json);
}

/* Invalid UTF-8 in the domain or checkpoint XML is corrupt. */
static void test_manifest_xml_utf8(void **state)
{
    static const char *const bad[] = {"<d>\xff</d>",
                                      "<d>\xc3</d>",
                                      "<d>\xc0\xaf</d>",
                                      "<d>\xed\xa0\x80</d>",
                                      "<d>\xf4\x90\x80\x80</d>",
                                      "<d>\x80</d>"};
    static const char *const good[] = {"<d>\xc3\xa9</d>", "<d>\xe2\x82\xac</d>",
                                       "<d>\xf0\x9f\x98\x80</d>"};
    struct manifest m;

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(bad); i++) {
        assert_false(manifest_utf8_valid(bad[i], strlen(bad[i])));
        manifest_sample(&m, "full");
        free(m.domain_xml);
        m.domain_xml = strdup(bad[i]);
        assert_int_equal(manifest_validate(&m), -1);
        assert_non_null(strstr(vk_error_message(), "domain XML is not valid UTF-8"));
        manifest_clear(&m);
    }
    for (size_t i = 0; i < VK_ARRAY_SIZE(good); i++)
        assert_true(manifest_utf8_valid(good[i], strlen(good[i])));
    manifest_sample(&m, "full");
    free(m.checkpoint_xml);
    m.checkpoint_xml = strdup("<c>\xfe</c>");
    assert_int_equal(manifest_validate(&m), -1);
    assert_non_null(strstr(vk_error_message(), "checkpoint XML is not valid UTF-8"));
    manifest_clear(&m);
    /* Through the parser: the JSON text carries the raw bytes. */
    {
        const char *text = "{\"format\": \"virtkeep-manifest\", \"version\": 3, "
                           "\"backup_id\": \"b\", \"level\": \"copy\", \"parent_id\": null, "
                           "\"parent_manifest_sha256\": null, \"domain\": {\"name\": \"d\", "
                           "\"uuid\": \"6f1c3b52-2b4e-4a51-9d0e-3c2b1a0f9e8d\", "
                           "\"xml\": \"<domain>\xff</domain>\"}, \"checkpoint\": null, "
                           "\"started\": 1, \"finished\": 2, \"disks\": [{\"target\": \"vda\", "
                           "\"virtual_size\": 1, \"archive_key\": \"d/b/vda.tar\", "
                           "\"archive_size\": 1, \"archive_sha256\": "
                           "\"0000000000000000000000000000000000000000000000000000000000000000\", "
                           "\"bytes_read\": 1, \"bytes_stored\": 0, \"cluster_size\": null, "
                           "\"compat\": null}]}";
        assert_int_equal(manifest_parse(text, strlen(text), "k", &m), -1);
        assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
        assert_non_null(strstr(vk_error_message(), "not valid UTF-8"));
    }
}

/* ---------------------------------------------------------------- sample */

/* Write the sample archive and the raw image it holds, for the tools test. */
static int write_sample_files(const char *archive_path, const char *image_path)
{
    struct sample_archive sa;
    int afd, ifd, r = 0;

    sample_write(&sa);
    afd = open(archive_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ifd = open(image_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (afd < 0 || ifd < 0 || vk_write_all(afd, sa.out.buf, sa.out.len) < 0 ||
        ftruncate(ifd, (off_t)sample_vsize) < 0) {
        perror("write-sample");
        r = 1;
    }
    for (size_t i = 0; r == 0 && i < SAMPLE_N; i++) {
        if (sample[i].pat == PAT_ZERO)
            continue;
        uint8_t *raw = malloc(sample[i].length);
        fill(raw, sample[i].length, sample[i].pat, i);
        if (pwrite(ifd, raw, sample[i].length, (off_t)sample[i].offset) !=
            (ssize_t)sample[i].length) {
            perror("write-sample: image");
            r = 1;
        }
        free(raw);
    }
    if ((afd >= 0 && close(afd) < 0) || (ifd >= 0 && close(ifd) < 0))
        r = 1;
    sample_free(&sa);
    return r;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_and_zero),
        cmocka_unit_test(test_compressor),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_decoder_threads),
        cmocka_unit_test(test_positions_exact),
        cmocka_unit_test(test_plain_tar_listing),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_writer_bad_header),
        cmocka_unit_test(test_writer_sink_full),
        cmocka_unit_test(test_corrupt_frame),
        cmocka_unit_test(test_corrupt_sha_message),
        cmocka_unit_test(test_corrupt_index),
        cmocka_unit_test(test_corrupt_tail),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_forged_index),
        cmocka_unit_test(test_index_parse),
        cmocka_unit_test(test_index_too_many_extents),
        cmocka_unit_test(test_index_many_extents_memory),
        cmocka_unit_test(test_manifest_roundtrip),
        cmocka_unit_test(test_manifest_build_invalid),
        cmocka_unit_test(test_manifest_malformed),
        cmocka_unit_test(test_manifest_parent_link),
        cmocka_unit_test(test_manifest_parent_link_old),
        cmocka_unit_test(test_manifest_xml_utf8),
    };

    if (argc == 4 && strcmp(argv[1], "write-sample") == 0) {
        sample = sample_small;
        sample_vsize = 44 * MiB + 1000;
        return write_sample_files(argv[2], argv[3]);
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
