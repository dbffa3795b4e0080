/* virtkeep - the archive format: helpers, writer, index and reader.
 * docs/FORMAT.md is the specification; keep the two in step.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "src/format/format.h"

#define BLOCK 512u
#define INDEX_FORMAT_NAME "virtkeep-archive-index"
#define TRAILER_MAGIC "VKARCHTR"
#define TRAILER_NAME "trailer"
/* A name is at most this long; keeps every member in one ustar header. */
#define NAME_MAX_LEN 64

static const char *const levels[] = {"full", "inc", "diff", "copy"};

/* ---------------------------------------------------------------- helpers */

struct archive_compressor {
    ZSTD_CCtx *cctx;
    int level;
};

struct archive_compressor *archive_compressor_new(int level)
{
    struct archive_compressor *c;

    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
        vk_error(VK_ERR_INVALID, "compression level %d is out of range (%d to %d)", level,
                 ZSTD_minCLevel(), ZSTD_maxCLevel());
        return NULL;
    }
    c = vk_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->level = level;
    c->cctx = ZSTD_createCCtx();
    if (!c->cctx) {
        free(c);
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0);
    return c;
}

void archive_compressor_free(struct archive_compressor *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->cctx);
    free(c);
}

size_t archive_compress_bound(size_t rawlen)
{
    return ZSTD_compressBound(rawlen);
}

int archive_compressor_compress(struct archive_compressor *c, const void *raw, size_t rawlen,
                                void *dst, size_t dstcap, size_t *out_len)
{
    size_t r = ZSTD_compress2(c->cctx, dst, dstcap, raw, rawlen);

    if (ZSTD_isError(r)) {
        vk_error(VK_ERR_INTERNAL, "cannot compress a chunk of %zu bytes: %s", rawlen,
                 ZSTD_getErrorName(r));
        return -1;
    }
    *out_len = r;
    return 0;
}

int archive_sha256(const void *buf, size_t len, uint8_t out[ARCHIVE_SHA256_LEN])
{
    unsigned int n = 0;

    if (!EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) || n != ARCHIVE_SHA256_LEN) {
        vk_error(VK_ERR_INTERNAL, "cannot compute a sha256 with libcrypto");
        return -1;
    }
    return 0;
}

bool archive_is_zero(const void *buf, size_t len)
{
    static const uint8_t zeros[64];
    const uint8_t *p = buf;

    /* The first 64 bytes are zero and every byte equals the one 64 before it. */
    if (len <= sizeof(zeros))
        return memcmp(p, zeros, len) == 0;
    return memcmp(p, zeros, sizeof(zeros)) == 0 &&
           memcmp(p, p + sizeof(zeros), len - sizeof(zeros)) == 0;
}

void archive_sha256_hex(const uint8_t sha[ARCHIVE_SHA256_LEN], char out[ARCHIVE_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < ARCHIVE_SHA256_LEN; i++) {
        out[2 * i] = digits[sha[i] >> 4];
        out[2 * i + 1] = digits[sha[i] & 0xf];
    }
    out[ARCHIVE_SHA256_HEX_LEN] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int archive_sha256_unhex(const char *hex, uint8_t out[ARCHIVE_SHA256_LEN])
{
    if (strlen(hex) != ARCHIVE_SHA256_HEX_LEN)
        return -1;
    for (size_t i = 0; i < ARCHIVE_SHA256_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool archive_level_valid(const char *level)
{
    for (size_t i = 0; level && i < VK_ARRAY_SIZE(levels); i++)
        if (strcmp(level, levels[i]) == 0)
            return true;
    return false;
}

void archive_header_clear(struct archive_header *hdr)
{
    free(hdr->disk);
    free(hdr->backup_id);
    free(hdr->level);
    memset(hdr, 0, sizeof(*hdr));
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t round_up_block(uint64_t n)
{
    return (n + BLOCK - 1) / BLOCK * BLOCK;
}

/* ------------------------------------------------------------ header JSON */

static int header_check(const struct archive_header *hdr, enum vk_error_code code, const char *what)
{
    const char *why = NULL;

    if (!hdr->disk || !*hdr->disk || strlen(hdr->disk) > 255)
        why = "the disk name is empty or longer than 255 bytes";
    else if (!hdr->backup_id || !*hdr->backup_id || strlen(hdr->backup_id) > 255)
        why = "the backup id is empty or longer than 255 bytes";
    else if (!archive_level_valid(hdr->level))
        why = "the level is not one of full, inc, diff, copy";
    else if (hdr->chunk_size == 0 || hdr->chunk_size > ARCHIVE_CHUNK_SIZE_MAX)
        why = "the chunk size is not between 1 byte and 64 MiB";
    else if (hdr->virtual_size > INT64_MAX)
        why = "the virtual size is too large";
    else if (hdr->created < 0)
        why = "the creation time is negative";
    if (why) {
        vk_error(code, "%s is invalid: %s", what, why);
        return -1;
    }
    return 0;
}

static struct json_object *header_to_json(const struct archive_header *hdr)
{
    struct json_object *o = json_object_new_object();

    if (!o)
        return NULL;
    json_object_object_add(o, "format", json_object_new_string(ARCHIVE_FORMAT_NAME));
    json_object_object_add(o, "version", json_object_new_int(ARCHIVE_FORMAT_VERSION));
    json_object_object_add(o, "disk", json_object_new_string(hdr->disk));
    json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)hdr->virtual_size));
    json_object_object_add(o, "chunk_size", json_object_new_int64((int64_t)hdr->chunk_size));
    json_object_object_add(o, "backup_id", json_object_new_string(hdr->backup_id));
    json_object_object_add(o, "level", json_object_new_string(hdr->level));
    json_object_object_add(o, "created", json_object_new_int64(hdr->created));
    return o;
}

static int header_from_json(struct json_object *o, const char *what, struct archive_header *out)
{
    static const char *const keys[] = {"format",       "version",    "disk",
                                       "virtual_size", "chunk_size", "backup_id",
                                       "level",        "created",    NULL};
    uint64_t v;

    memset(out, 0, sizeof(*out));
    if (vk_json_check_object(o, keys, what) < 0 ||
        vk_json_check_format(o, ARCHIVE_FORMAT_NAME, ARCHIVE_FORMAT_VERSION, what) < 0 ||
        vk_json_get_str(o, "disk", false, what, &out->disk) < 0 ||
        vk_json_get_str(o, "backup_id", false, what, &out->backup_id) < 0 ||
        vk_json_get_str(o, "level", false, what, &out->level) < 0 ||
        vk_json_get_u64(o, "virtual_size", what, &out->virtual_size) < 0 ||
        vk_json_get_u64(o, "chunk_size", what, &out->chunk_size) < 0 ||
        vk_json_get_u64(o, "created", what, &v) < 0)
        goto fail;
    out->created = (int64_t)v;
    if (header_check(out, VK_ERR_CORRUPT, what) < 0)
        goto fail;
    return 0;
fail:
    archive_header_clear(out);
    return -1;
}

/* ----------------------------------------------------------------- writer */

struct archive_writer {
    struct archive *a;
    struct archive_sink sink;
    struct archive_header hdr;
    EVP_MD_CTX *md;
    uint64_t pos; /* bytes through the sink */
    bool failed, sink_failed, finished;
    bool discard; /* closing an abandoned writer: send nothing more */
    struct archive_extent *extents;
    size_t nr, cap;
    uint64_t next_offset; /* end of the last extent */
    struct archive_writer_stats st;
};

static la_ssize_t sink_cb(struct archive *a, void *opaque, const void *buf, size_t len)
{
    struct archive_writer *w = opaque;

    (void)a;
    if (w->discard)
        return -1;
    if (w->sink.write(w->sink.opaque, buf, len) < 0) {
        w->sink_failed = true;
        return -1;
    }
    if (!EVP_DigestUpdate(w->md, buf, len)) {
        vk_error(VK_ERR_INTERNAL, "cannot update the sha256 of the archive of disk '%s'",
                 w->hdr.disk);
        w->sink_failed = true;
        return -1;
    }
    w->pos += len;
    return (la_ssize_t)len;
}

/* Record a libarchive failure, unless the sink already recorded its own. */
static int writer_fail(struct archive_writer *w, const char *doing)
{
    w->failed = true;
    if (!w->sink_failed)
        vk_error(VK_ERR_IO, "cannot write the archive of disk '%s': %s: %s", w->hdr.disk, doing,
                 archive_error_string(w->a) ? archive_error_string(w->a) : "unknown error");
    return -1;
}

/* Write one member; on return *DATA_POS is where its data starts. */
static int write_member(struct archive_writer *w, const char *name, const void *data, size_t len,
                        uint64_t *data_pos)
{
    struct archive_entry *e = archive_entry_new();
    const uint8_t *p = data;
    int r;

    if (!e) {
        w->failed = true;
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, w->hdr.created, 0);
    r = archive_write_header(w->a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return writer_fail(w, "writing a member header");
    if (data_pos)
        *data_pos = w->pos;
    while (len > 0) {
        la_ssize_t n = archive_write_data(w->a, p, len);
        if (n <= 0)
            return writer_fail(w, "writing member data");
        p += n;
        len -= (size_t)n;
    }
    /* Write the padding now, so that the stream digest covers whole members. */
    if (archive_write_finish_entry(w->a) != ARCHIVE_OK)
        return writer_fail(w, "finishing a member");
    return 0;
}

static int writer_setup(struct archive_writer *w)
{
    w->md = EVP_MD_CTX_new();
    w->a = archive_write_new();
    if (!w->md || !w->a || !EVP_DigestInit_ex(w->md, EVP_sha256(), NULL)) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    /* Unblocked output: every byte goes straight to sink_cb, so positions
     * are exact and payloads are not copied into a block buffer. */
    if (archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(w->a, 0) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
        archive_write_open(w->a, w, NULL, sink_cb, NULL) != ARCHIVE_OK)
        return writer_fail(w, "opening");
    return 0;
}

static int header_copy(const struct archive_header *src, struct archive_header *dst)
{
    *dst = *src;
    dst->disk = vk_strdup(src->disk);
    dst->backup_id = vk_strdup(src->backup_id);
    dst->level = vk_strdup(src->level);
    return dst->disk && dst->backup_id && dst->level ? 0 : -1;
}

struct archive_writer *archive_writer_open(const struct archive_sink *sink,
                                           const struct archive_header *hdr, unsigned int flags)
{
    struct archive_writer *w;
    struct json_object *j;
    const char *s;
    int r;

    if (flags != 0) {
        vk_error(VK_ERR_INVALID, "archive_writer_open: unknown flags 0x%x", flags);
        return NULL;
    }
    if (header_check(hdr, VK_ERR_INVALID, "the archive header") < 0) {
        vk_error_prefix("cannot open an archive writer");
        return NULL;
    }
    w = vk_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->sink = *sink;
    if (header_copy(hdr, &w->hdr) < 0 || writer_setup(w) < 0)
        goto fail;
    j = header_to_json(hdr);
    s = j ? json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN) : NULL;
    r = s ? write_member(w, "header.json", s, strlen(s), NULL) : -1;
    if (!s)
        vk_error(VK_ERR_INTERNAL, "out of memory");
    json_object_put(j);
    if (r < 0)
        goto fail;
    return w;
fail:
    archive_writer_free(w);
    return NULL;
}

static int writer_usable(struct archive_writer *w)
{
    if (w->failed || w->finished) {
        vk_error(VK_ERR_INVALID, "the archive writer of disk '%s' is %s", w->hdr.disk,
                 w->finished ? "finished" : "in a failed state");
        return -1;
    }
    return 0;
}

/* Check and append an extent (position and size filled in later). */
static struct archive_extent *extent_append(struct archive_writer *w, uint64_t offset,
                                            uint64_t length, enum archive_extent_kind kind)
{
    const char *why = NULL;
    struct archive_extent *e;

    if (length == 0)
        why = "it is empty";
    else if (offset < w->next_offset)
        why = "it starts before the end of the previous extent";
    else if (offset > w->hdr.virtual_size || length > w->hdr.virtual_size - offset)
        why = "it ends beyond the virtual size";
    else if (kind == ARCHIVE_EXTENT_DATA && length > w->hdr.chunk_size)
        why = "it is larger than the chunk size";
    if (why) {
        w->failed = true;
        vk_error(VK_ERR_INVALID,
                 "cannot add the extent at offset %" PRIu64 " (%" PRIu64
                 " bytes) to the archive of disk '%s': %s",
                 offset, length, w->hdr.disk, why);
        return NULL;
    }
    if (w->nr == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        e = vk_realloc_array(w->extents, cap, sizeof(*e));
        if (!e) {
            w->failed = true;
            return NULL;
        }
        w->extents = e;
        w->cap = cap;
    }
    e = &w->extents[w->nr];
    memset(e, 0, sizeof(*e));
    e->offset = offset;
    e->length = length;
    e->kind = kind;
    return e;
}

int archive_writer_add_chunk(struct archive_writer *w, uint64_t offset, uint64_t length,
                             const void *zst, size_t zstlen,
                             const uint8_t sha256[ARCHIVE_SHA256_LEN])
{
    char name[NAME_MAX_LEN];
    unsigned long long fcs;
    struct archive_extent *e;

    if (writer_usable(w) < 0 || !(e = extent_append(w, offset, length, ARCHIVE_EXTENT_DATA)))
        return -1;
    fcs = zstlen ? ZSTD_getFrameContentSize(zst, zstlen) : ZSTD_CONTENTSIZE_ERROR;
    if (fcs == ZSTD_CONTENTSIZE_ERROR || (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != length)) {
        w->failed = true;
        vk_error(VK_ERR_INVALID,
                 "cannot add the chunk at offset %" PRIu64 " to the archive of disk '%s': "
                 "it is not a zstd frame of %" PRIu64 " bytes",
                 offset, w->hdr.disk, length);
        return -1;
    }
    snprintf(name, sizeof(name), "data/%016" PRIx64 "-%016" PRIx64 ".zst", offset, length);
    if (write_member(w, name, zst, zstlen, &e->position) < 0)
        return -1;
    memcpy(e->sha256, sha256, ARCHIVE_SHA256_LEN);
    e->size = zstlen;
    w->nr++;
    w->next_offset = offset + length;
    w->st.data_bytes += length;
    w->st.stored_bytes += zstlen;
    vk_debug_data("archive '%s': chunk %s at position %" PRIu64, w->hdr.disk, name, e->position);
    return 0;
}

int archive_writer_add_zero(struct archive_writer *w, uint64_t offset, uint64_t length)
{
    if (writer_usable(w) < 0 || !extent_append(w, offset, length, ARCHIVE_EXTENT_ZERO))
        return -1;
    w->nr++;
    w->next_offset = offset + length;
    w->st.zero_bytes += length;
    return 0;
}

static void index_write_extent(FILE *fp, const struct archive_extent *e, bool last)
{
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];

    fprintf(fp, "{\"offset\":%" PRIu64 ",\"length\":%" PRIu64, e->offset, e->length);
    if (e->kind == ARCHIVE_EXTENT_DATA) {
        archive_sha256_hex(e->sha256, hex);
        fprintf(fp,
                ",\"kind\":\"data\",\"sha256\":\"%s\",\"position\":%" PRIu64 ",\"size\":%" PRIu64
                "}",
                hex, e->position, e->size);
    } else {
        fputs(",\"kind\":\"zero\"}", fp);
    }
    fputs(last ? "\n" : ",\n", fp);
}

/* The index JSON; BODY is the sha256 of every byte written so far. */
static char *index_build(struct archive_writer *w, const uint8_t body[ARCHIVE_SHA256_LEN],
                         size_t *len)
{
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    struct json_object *hj = header_to_json(&w->hdr);
    char *buf = NULL;
    FILE *fp;

    fp = hj ? open_memstream(&buf, len) : NULL;
    if (!fp) {
        json_object_put(hj);
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    archive_sha256_hex(body, hex);
    fprintf(fp, "{\"format\":\"%s\",\"version\":%d,\n\"header\":%s,\n\"body_sha256\":\"%s\",\n",
            INDEX_FORMAT_NAME, ARCHIVE_FORMAT_VERSION,
            json_object_to_json_string_ext(hj, JSON_C_TO_STRING_PLAIN), hex);
    fputs("\"extents\":[\n", fp);
    for (size_t i = 0; i < w->nr; i++)
        index_write_extent(fp, &w->extents[i], i + 1 == w->nr);
    fputs("]}\n", fp);
    json_object_put(hj);
    if (fclose(fp) != 0 || !buf) {
        free(buf);
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    return buf;
}

static void trailer_build(uint8_t rec[ARCHIVE_TRAILER_LEN], uint64_t index_pos, uint64_t index_len,
                          uint64_t nr_extents, const uint8_t index_sha[ARCHIVE_SHA256_LEN])
{
    memset(rec, 0, ARCHIVE_TRAILER_LEN);
    memcpy(rec, TRAILER_MAGIC, 8);
    put_le32(rec + 8, ARCHIVE_FORMAT_VERSION);
    put_le32(rec + 12, 0);
    put_le64(rec + 16, index_pos);
    put_le64(rec + 24, index_len);
    put_le64(rec + 32, nr_extents);
    memcpy(rec + 40, index_sha, ARCHIVE_SHA256_LEN);
}

static int stream_digest(struct archive_writer *w, uint8_t out[ARCHIVE_SHA256_LEN])
{
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    int ok = copy && EVP_MD_CTX_copy_ex(copy, w->md) && EVP_DigestFinal_ex(copy, out, NULL);

    EVP_MD_CTX_free(copy);
    if (!ok) {
        vk_error(VK_ERR_INTERNAL, "cannot compute the sha256 of the archive of disk '%s'",
                 w->hdr.disk);
        return -1;
    }
    return 0;
}

static int write_index_and_trailer(struct archive_writer *w)
{
    uint8_t body[ARCHIVE_SHA256_LEN], isha[ARCHIVE_SHA256_LEN], rec[ARCHIVE_TRAILER_LEN];
    CLEANUP_FREE char *index = NULL;
    uint64_t index_pos, trailer_pos;
    size_t len = 0;

    if (stream_digest(w, body) < 0 || !(index = index_build(w, body, &len)) ||
        archive_sha256(index, len, isha) < 0 ||
        write_member(w, "index.json", index, len, &index_pos) < 0)
        return -1;
    trailer_build(rec, index_pos, len, w->nr, isha);
    if (archive_sha256(rec, ARCHIVE_TRAILER_LEN - ARCHIVE_SHA256_LEN,
                       rec + ARCHIVE_TRAILER_LEN - ARCHIVE_SHA256_LEN) < 0 ||
        write_member(w, TRAILER_NAME, rec, sizeof(rec), &trailer_pos) < 0)
        return -1;
    if (archive_write_close(w->a) != ARCHIVE_OK)
        return writer_fail(w, "closing");
    /* The layout promised in FORMAT.md: trailer data, its padding, two zero blocks. */
    if (trailer_pos + ARCHIVE_TAIL_LEN - BLOCK != w->pos || w->pos % BLOCK != 0) {
        w->failed = true;
        vk_error(VK_ERR_INTERNAL,
                 "the archive of disk '%s' does not end as documented (trailer at %" PRIu64
                 ", size %" PRIu64 ")",
                 w->hdr.disk, trailer_pos, w->pos);
        return -1;
    }
    return 0;
}

int archive_writer_finish(struct archive_writer *w, uint8_t out_digest[ARCHIVE_SHA256_LEN])
{
    uint8_t digest[ARCHIVE_SHA256_LEN];

    if (writer_usable(w) < 0)
        return -1;
    if (write_index_and_trailer(w) < 0) {
        w->failed = true;
        return -1;
    }
    w->finished = true;
    if (stream_digest(w, digest) < 0)
        return -1;
    if (out_digest)
        memcpy(out_digest, digest, sizeof(digest));
    return 0;
}

void archive_writer_stats(const struct archive_writer *w, struct archive_writer_stats *st)
{
    *st = w->st;
    st->archive_bytes = w->pos;
    st->nr_extents = w->nr;
}

void archive_writer_free(struct archive_writer *w)
{
    if (!w)
        return;
    if (w->a) {
        /* libarchive frees its output state only on close, which it skips
         * after a fatal error: close explicitly, sending nothing. */
        w->discard = true;
        if (!w->finished)
            archive_write_close(w->a);
        archive_write_free(w->a);
    }
    EVP_MD_CTX_free(w->md);
    archive_header_clear(&w->hdr);
    free(w->extents);
    free(w);
}

/* ------------------------------------------------------------------ index */

static int extent_kind_parse(struct json_object *o, const char *what,
                             enum archive_extent_kind *kind)
{
    CLEANUP_FREE char *k = NULL;

    if (vk_json_get_str(o, "kind", false, what, &k) < 0)
        return -1;
    if (strcmp(k, "data") == 0)
        *kind = ARCHIVE_EXTENT_DATA;
    else if (strcmp(k, "zero") == 0)
        *kind = ARCHIVE_EXTENT_ZERO;
    else {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: kind '%s' is neither data nor zero", what, k);
        return -1;
    }
    return 0;
}

static int extent_parse_data(struct json_object *o, const char *what, struct archive_extent *e)
{
    static const char *const keys[] = {"offset",   "length", "kind", "sha256",
                                       "position", "size",   NULL};
    CLEANUP_FREE char *sha = NULL;

    if (vk_json_check_object(o, keys, what) < 0 ||
        vk_json_get_str(o, "sha256", false, what, &sha) < 0 ||
        vk_json_get_u64(o, "position", what, &e->position) < 0 ||
        vk_json_get_u64(o, "size", what, &e->size) < 0)
        return -1;
    if (archive_sha256_unhex(sha, e->sha256) < 0) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: sha256 is not 64 lower-case hex digits", what);
        return -1;
    }
    return 0;
}

static int extent_parse(struct json_object *o, const char *what, struct archive_extent *e)
{
    static const char *const zero_keys[] = {"offset", "length", "kind", NULL};

    memset(e, 0, sizeof(*e));
    if (vk_json_get_u64(o, "offset", what, &e->offset) < 0 ||
        vk_json_get_u64(o, "length", what, &e->length) < 0 || extent_kind_parse(o, what, &e->kind))
        return -1;
    if (e->kind == ARCHIVE_EXTENT_ZERO)
        return vk_json_check_object(o, zero_keys, what);
    return extent_parse_data(o, what, e);
}

/* Bounds that make the extent list safe to use: sorted, no overlap, inside
 * the disk, frames inside the tar before the index and not overlapping. */
static const char *extent_check(const struct archive_extent *e, const struct archive_header *h,
                                uint64_t prev_end, uint64_t *frames_end, uint64_t index_pos)
{
    if (e->length == 0)
        return "it is empty";
    if (e->offset < prev_end)
        return "it is out of order or overlaps the previous extent";
    if (e->offset > h->virtual_size || e->length > h->virtual_size - e->offset)
        return "it ends beyond the virtual size";
    if (e->kind == ARCHIVE_EXTENT_ZERO)
        return NULL;
    if (e->length > h->chunk_size)
        return "it is larger than the chunk size";
    if (e->size == 0 || e->size > archive_compress_bound(e->length))
        return "its frame size is impossible";
    if (e->position % BLOCK != 0 || e->position < *frames_end + BLOCK)
        return "its frame position is misaligned or overlaps the previous member";
    if (index_pos < BLOCK || e->position > index_pos - BLOCK ||
        e->size > index_pos - BLOCK - e->position)
        return "its frame lies beyond the start of the index";
    *frames_end = e->position + round_up_block(e->size);
    return NULL;
}

static int extents_parse(struct json_object *arr, uint64_t index_pos, const char *name,
                         struct archive_index *out)
{
    size_t n = json_object_array_length(arr);
    uint64_t prev_end = 0, frames_end = 2 * BLOCK; /* header.json ends at least here */
    char what[320];

    out->extents = vk_calloc(n, sizeof(*out->extents));
    if (!out->extents)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct archive_extent *e = &out->extents[i];
        const char *why;

        snprintf(what, sizeof(what), "extent %zu in the index of archive '%s'", i, name);
        if (extent_parse(json_object_array_get_idx(arr, i), what, e) < 0)
            return -1;
        why = extent_check(e, &out->header, prev_end, &frames_end, index_pos);
        if (why) {
            vk_error(VK_ERR_CORRUPT, "%s is corrupt: %s", what, why);
            return -1;
        }
        prev_end = e->offset + e->length;
        out->nr_extents++;
    }
    return 0;
}

static int index_from_json(struct json_object *root, uint64_t index_pos, const char *name,
                           const char *what, struct archive_index *out)
{
    static const char *const keys[] = {"format",      "version", "header",
                                       "body_sha256", "extents", NULL};
    CLEANUP_FREE char *body = NULL;
    struct json_object *hj, *arr;
    char hwhat[300];

    snprintf(hwhat, sizeof(hwhat), "the header in the index of archive '%s'", name);
    if (vk_json_check_object(root, keys, what) < 0 ||
        vk_json_check_format(root, INDEX_FORMAT_NAME, ARCHIVE_FORMAT_VERSION, what) < 0 ||
        vk_json_get_typed(root, "header", json_type_object, what, &hj) < 0 ||
        header_from_json(hj, hwhat, &out->header) < 0 ||
        vk_json_get_str(root, "body_sha256", false, what, &body) < 0 ||
        vk_json_get_typed(root, "extents", json_type_array, what, &arr) < 0)
        return -1;
    if (archive_sha256_unhex(body, out->body_sha256) < 0) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: body_sha256 is not 64 lower-case hex digits",
                 what);
        return -1;
    }
    return extents_parse(arr, index_pos, name, out);
}

int archive_index_parse(const char *json, size_t len, uint64_t index_pos, const char *name,
                        struct archive_index *out)
{
    struct json_object *root;
    char what[300];
    int r;

    memset(out, 0, sizeof(*out));
    snprintf(what, sizeof(what), "the index of archive '%s'", name);
    root = vk_json_parse(json, len, what);
    if (!root)
        return -1;
    r = index_from_json(root, index_pos, name, what, out);
    json_object_put(root);
    if (r < 0)
        archive_index_clear(out);
    return r;
}

void archive_index_clear(struct archive_index *idx)
{
    archive_header_clear(&idx->header);
    free(idx->extents);
    memset(idx, 0, sizeof(*idx));
}

/* ----------------------------------------------------------------- reader */

struct archive_reader {
    struct archive_source src;
    char *name;
    struct archive_index idx;
    ZSTD_DCtx *dctx;
    uint8_t *frame; /* scratch for one frame */
    size_t frame_cap;
};

static int corrupt(const struct archive_reader *r, const char *why)
{
    vk_error(VK_ERR_CORRUPT, "archive '%s' is corrupt: %s", r->name, why);
    return -1;
}

static uint64_t octal_field(const uint8_t *p, size_t n, bool *ok)
{
    uint64_t v = 0;
    size_t i = 0;

    while (i < n && p[i] == ' ')
        i++;
    if (i == n || p[i] < '0' || p[i] > '7')
        *ok = false;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v << 3 | (uint64_t)(p[i] - '0');
    for (; i < n; i++)
        if (p[i] != ' ' && p[i] != '\0')
            *ok = false;
    return v;
}

/* The ustar header of the trailer member: name, size, magic, checksum. */
static bool trailer_header_ok(const uint8_t *h)
{
    uint64_t sum = 0, want;
    bool ok = true;

    for (size_t i = 0; i < BLOCK; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    want = octal_field(h + 148, 8, &ok);
    if (!ok || want != sum ||
        memcmp(h + 257,
               "ustar\0"
               "00",
               8) != 0 ||
        h[156] != '0')
        return false;
    if (memcmp(h, TRAILER_NAME, sizeof(TRAILER_NAME)) != 0 || h[345] != '\0')
        return false;
    return octal_field(h + 124, 12, &ok) == ARCHIVE_TRAILER_LEN && ok;
}

struct trailer {
    uint64_t index_pos, index_len, nr_extents;
    uint8_t index_sha[ARCHIVE_SHA256_LEN];
};

static const char *trailer_parse(const uint8_t *tail, uint64_t size, struct trailer *t)
{
    const uint8_t *rec = tail + BLOCK;
    uint8_t sha[ARCHIVE_SHA256_LEN];

    if (!trailer_header_ok(tail))
        return "the trailer member header is missing or damaged";
    if (!archive_is_zero(rec + ARCHIVE_TRAILER_LEN, ARCHIVE_TAIL_LEN - BLOCK - ARCHIVE_TRAILER_LEN))
        return "the end-of-archive blocks are not zero";
    if (memcmp(rec, TRAILER_MAGIC, 8) != 0)
        return "the trailer magic is wrong";
    if (get_le32(rec + 8) != ARCHIVE_FORMAT_VERSION || get_le32(rec + 12) != 0)
        return "the trailer has an unsupported format version or flags";
    if (archive_sha256(rec, ARCHIVE_TRAILER_LEN - ARCHIVE_SHA256_LEN, sha) < 0 ||
        memcmp(sha, rec + ARCHIVE_TRAILER_LEN - ARCHIVE_SHA256_LEN, sizeof(sha)) != 0)
        return "the trailer fails its sha256 check";
    t->index_pos = get_le64(rec + 16);
    t->index_len = get_le64(rec + 24);
    t->nr_extents = get_le64(rec + 32);
    memcpy(t->index_sha, rec + 40, ARCHIVE_SHA256_LEN);
    if (t->index_len == 0 || t->index_pos % BLOCK != 0 || t->index_pos < 3 * BLOCK ||
        t->index_pos > size - ARCHIVE_TAIL_LEN ||
        t->index_len > size - ARCHIVE_TAIL_LEN - t->index_pos)
        return "the trailer places the index outside the archive";
    if (t->nr_extents > t->index_len / 16)
        return "the trailer gives an impossible extent count";
    return NULL;
}

static int reader_load_index(struct archive_reader *r)
{
    uint8_t tail[ARCHIVE_TAIL_LEN], sha[ARCHIVE_SHA256_LEN];
    CLEANUP_FREE char *index = NULL;
    struct trailer t;
    const char *why;
    uint64_t size = r->src.size;

    if (size < 4 * BLOCK + ARCHIVE_TAIL_LEN || size % BLOCK != 0)
        return corrupt(r, "it is truncated (its size is not a whole number of tar blocks "
                          "or is too small)");
    if (r->src.pread(r->src.opaque, tail, sizeof(tail), size - ARCHIVE_TAIL_LEN) < 0)
        return -1;
    if ((why = trailer_parse(tail, size, &t)))
        return corrupt(r, why);
    index = vk_malloc((size_t)t.index_len);
    if (!index || r->src.pread(r->src.opaque, index, (size_t)t.index_len, t.index_pos) < 0)
        return -1;
    if (archive_sha256(index, (size_t)t.index_len, sha) < 0)
        return -1;
    if (memcmp(sha, t.index_sha, sizeof(sha)) != 0)
        return corrupt(r, "the index fails its sha256 check");
    if (archive_index_parse(index, (size_t)t.index_len, t.index_pos, r->name, &r->idx) < 0)
        return -1;
    if (r->idx.nr_extents != t.nr_extents)
        return corrupt(r, "the index and the trailer disagree on the number of extents");
    return 0;
}

struct archive_reader *archive_reader_open(const struct archive_source *src, const char *name,
                                           unsigned int flags)
{
    struct archive_reader *r;

    if (flags != 0) {
        vk_error(VK_ERR_INVALID, "archive_reader_open: unknown flags 0x%x", flags);
        return NULL;
    }
    r = vk_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->src = *src;
    r->name = vk_strdup(name ? name : "(unnamed)");
    r->dctx = ZSTD_createDCtx();
    if (!r->name || !r->dctx) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    if (reader_load_index(r) < 0)
        goto fail;
    return r;
fail:
    archive_reader_free(r);
    return NULL;
}

const struct archive_header *archive_reader_header(const struct archive_reader *r)
{
    return &r->idx.header;
}

const struct archive_extent *archive_reader_extents(const struct archive_reader *r, size_t *n)
{
    *n = r->idx.nr_extents;
    return r->idx.extents;
}

const uint8_t *archive_reader_body_sha256(const struct archive_reader *r)
{
    return r->idx.body_sha256;
}

static int chunk_corrupt(const char *name, const struct archive_extent *e, const char *why)
{
    vk_error(VK_ERR_CORRUPT,
             "archive '%s' is corrupt: the chunk at offset %" PRIu64 " (0x%" PRIx64 ", member "
             "data/%016" PRIx64 "-%016" PRIx64 ".zst) %s",
             name, e->offset, e->offset, e->offset, e->length, why);
    return -1;
}

static int frame_buffer(struct archive_reader *r, size_t size)
{
    uint8_t *p;

    if (size <= r->frame_cap)
        return 0;
    p = vk_malloc(size);
    if (!p)
        return -1;
    free(r->frame);
    r->frame = p;
    r->frame_cap = size;
    return 0;
}

static int chunk_decode(ZSTD_DCtx *dctx, const char *name, const struct archive_extent *e,
                        const void *frame, void *out)
{
    uint8_t sha[ARCHIVE_SHA256_LEN];
    unsigned long long fcs = ZSTD_getFrameContentSize(frame, e->size);
    size_t n;

    if (fcs == ZSTD_CONTENTSIZE_ERROR)
        return chunk_corrupt(name, e, "is not a zstd frame");
    if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != e->length)
        return chunk_corrupt(name, e, "holds a frame of the wrong size");
    if (ZSTD_findFrameCompressedSize(frame, e->size) != e->size)
        return chunk_corrupt(name, e, "is not exactly one zstd frame");
    n = ZSTD_decompressDCtx(dctx, out, e->length, frame, e->size);
    if (ZSTD_isError(n) || n != e->length)
        return chunk_corrupt(name, e, "cannot be decompressed");
    if (archive_sha256(out, e->length, sha) < 0)
        return -1;
    if (memcmp(sha, e->sha256, sizeof(sha)) != 0)
        return chunk_corrupt(name, e, "fails its sha256 check");
    return 0;
}

int archive_reader_read_chunk(struct archive_reader *r, const struct archive_extent *e,
                              void *out_raw)
{
    if (e < r->idx.extents || e >= r->idx.extents + r->idx.nr_extents) {
        vk_error(VK_ERR_INVALID, "the extent given for archive '%s' is not one of its own",
                 r->name);
        return -1;
    }
    if (e->kind == ARCHIVE_EXTENT_ZERO) {
        memset(out_raw, 0, e->length);
        return 0;
    }
    if (frame_buffer(r, e->size) < 0 ||
        r->src.pread(r->src.opaque, r->frame, e->size, e->position) < 0)
        return -1;
    return chunk_decode(r->dctx, r->name, e, r->frame, out_raw);
}

void archive_reader_free(struct archive_reader *r)
{
    if (!r)
        return;
    archive_index_clear(&r->idx);
    ZSTD_freeDCtx(r->dctx);
    free(r->frame);
    free(r->name);
    free(r);
}

/* ---------------------------------------------------------------- decoder */

struct archive_decoder {
    ZSTD_DCtx *dctx;
};

struct archive_decoder *archive_decoder_new(void)
{
    struct archive_decoder *d = vk_calloc(1, sizeof(*d));

    if (d && !(d->dctx = ZSTD_createDCtx())) {
        vk_error(VK_ERR_INTERNAL, "cannot create a zstd decompression context: out of memory");
        free(d);
        return NULL;
    }
    return d;
}

void archive_decoder_free(struct archive_decoder *d)
{
    if (!d)
        return;
    ZSTD_freeDCtx(d->dctx);
    free(d);
}

int archive_decoder_decode(struct archive_decoder *d, const char *name,
                           const struct archive_extent *e, const void *frame, void *out_raw)
{
    if (e->kind == ARCHIVE_EXTENT_ZERO) {
        memset(out_raw, 0, e->length);
        return 0;
    }
    return chunk_decode(d->dctx, name ? name : "(unnamed)", e, frame, out_raw);
}
