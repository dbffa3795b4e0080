/* libFuzzer target: the archive reader and the index parser.
 *
 * The first input byte picks a mode:
 *   0  the rest is a whole archive, read by random access from memory;
 *   1  the rest is an index.json text for archive_index_parse();
 *   2  the rest is a list of edits (3 bytes: 16-bit position, XOR mask)
 *      applied to a valid seed archive, which is then read;
 *   3  the same edits confined to the seed's index, after which the index
 *      sha256 and the trailer are recomputed (a forged index), so that the
 *      structural checks and the chunk reads are reached.
 * Whatever the input, the reader must fail cleanly or read chunks that pass
 * their sha256 check; it never reads outside the object.
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/format/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
    uint8_t *buf;
    size_t len, cap;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
    struct mem *m = opaque;

    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2;
        m->buf = realloc(m->buf, m->cap);
        if (!m->buf)
            abort();
    }
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    return 0;
}

static int mem_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
    const struct mem *m = opaque;

    if (offset > m->len || len > m->len - offset)
        abort(); /* the reader must bound every read by the object size */
    memcpy(buf, m->buf + offset, len);
    return 0;
}

static struct mem seed;

static void seed_add(struct archive_writer *w, struct archive_compressor *c, uint64_t off,
                     size_t len, int pat)
{
    static uint8_t raw[65536], z[70000];
    uint8_t sha[ARCHIVE_SHA256_LEN];
    size_t zlen;

    for (size_t i = 0; i < len; i++)
        raw[i] = pat ? (uint8_t)(i * 2654435761u >> 13) : (uint8_t)("virtkeep "[i % 9]);
    if (archive_sha256(raw, len, sha) < 0 ||
        archive_compressor_compress(c, raw, len, z, sizeof(z), &zlen) < 0 ||
        archive_writer_add_chunk(w, off, len, z, zlen, sha) < 0)
        abort();
}

static void seed_build(void)
{
    struct archive_sink sink = {.write = mem_write, .opaque = &seed};
    struct archive_header h = {.disk = (char *)"vda",
                               .virtual_size = 1 << 20,
                               .chunk_size = 65536,
                               .backup_id = (char *)"b1",
                               .level = (char *)"inc",
                               .created = 1};
    struct archive_compressor *c = archive_compressor_new(1);
    struct archive_writer *w = archive_writer_open(&sink, &h, 0);

    if (!c || !w)
        abort();
    seed_add(w, c, 0, 65536, 0);
    seed_add(w, c, 65536, 3000, 1);
    if (archive_writer_add_zero(w, 131072, 65536) < 0)
        abort();
    seed_add(w, c, (1 << 20) - 100, 100, 0);
    if (archive_writer_finish(w, NULL) < 0)
        abort();
    archive_writer_free(w);
    archive_compressor_free(c);
}

static void read_all(struct mem *m)
{
    struct archive_source src = {.pread = mem_pread, .opaque = m, .size = m->len};
    struct archive_reader *r = archive_reader_open(&src, "fuzz", 0);
    const struct archive_extent *ex;
    size_t n;

    if (!r)
        return;
    ex = archive_reader_extents(r, &n);
    for (size_t i = 0; i < n; i++) {
        if (ex[i].kind != ARCHIVE_EXTENT_DATA || ex[i].length > 4 * 1024 * 1024)
            continue;
        uint8_t *out = malloc(ex[i].length);
        if (!out)
            abort();
        archive_reader_read_chunk(r, &ex[i], out);
        free(out);
    }
    archive_reader_free(r);
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

static void patched(const uint8_t *edits, size_t n, int forge)
{
    struct mem m = {.len = seed.len, .cap = seed.len};
    uint8_t *rec = NULL;
    uint64_t pos = 0, len = seed.len;

    m.buf = malloc(seed.len);
    if (!m.buf)
        abort();
    memcpy(m.buf, seed.buf, seed.len);
    if (forge) {
        rec = m.buf + m.len - 1536;
        pos = le64(rec + 16);
        len = le64(rec + 24);
    }
    for (size_t i = 0; i + 3 <= n; i += 3)
        m.buf[pos + (edits[i] | (size_t)edits[i + 1] << 8) % len] ^= edits[i + 2];
    if (forge) {
        archive_sha256(m.buf + pos, len, rec + 40);
        archive_sha256(rec, 72, rec + 72);
    } else if (n % 3) {
        m.len -= edits[n - 1] * 8u % m.len; /* a truncation */
    }
    read_all(&m);
    free(m.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct archive_index idx;
    struct mem m;

    if (!seed.buf)
        seed_build();
    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0:
        m.buf = (uint8_t *)data + 1;
        m.len = m.cap = size - 1;
        read_all(&m);
        break;
    case 1:
        if (archive_index_parse((const char *)data + 1, size - 1, 1 << 20, "fuzz", &idx) == 0)
            archive_index_clear(&idx);
        break;
    default:
        patched(data + 1, size - 1, data[0] % 4 == 3);
        break;
    }
    return 0;
}
