/* virtkeep - the archive format: the header and the writer (see format.h).
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
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/format/format-int.h"
#include "src/format/format.h"

/* A name is at most this long; keeps every member in one ustar header. */
#define NAME_MAX_LEN 64

static const char *const levels[] = {"full", "inc", "diff", "copy"};

/* ----------------------------------------------------------------- header */

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

int archive_header_check(const struct archive_header *hdr, enum vk_error_code code,
                         const char *what)
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

/* ----------------------------------------------------------------- writer */

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
    /* Sealed archives: the data key, the cipher context, a frame buffer. */
    bool sealed;
    struct archive_seal seal;
    EVP_CIPHER_CTX *cctx;
    uint8_t *sbuf;
    size_t sbuf_cap;
    uint64_t nr_data;
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
    return archive_writer_open_sealed(sink, hdr, NULL, flags);
}

struct archive_writer *archive_writer_open_sealed(const struct archive_sink *sink,
                                                  const struct archive_header *hdr,
                                                  const struct format_key *key, unsigned int flags)
{
    struct archive_writer *w;
    struct json_object *j;
    const char *s;
    int r;

    if (flags != 0) {
        vk_error(VK_ERR_INVALID, "archive_writer_open: unknown flags 0x%x", flags);
        return NULL;
    }
    if (archive_header_check(hdr, VK_ERR_INVALID, "the archive header") < 0) {
        vk_error_prefix("cannot open an archive writer");
        return NULL;
    }
    w = vk_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->sink = *sink;
    w->sealed = key != NULL;
    if (header_copy(hdr, &w->hdr) < 0 || writer_setup(w) < 0 ||
        (key && seal_new(key, &w->seal) < 0))
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

static int sbuf_reserve(struct archive_writer *w, size_t need)
{
    uint8_t *p;

    if (need <= w->sbuf_cap)
        return 0;
    if (!(p = vk_malloc(need))) {
        w->failed = true;
        return -1;
    }
    free(w->sbuf);
    w->sbuf = p;
    w->sbuf_cap = need;
    return 0;
}

/* Seal the frame *DATA (*LEN bytes) of the chunk at OFFSET into the
 * writer's buffer; *DATA and *LEN then describe the sealed frame. */
static int frame_seal(struct archive_writer *w, uint64_t offset, uint64_t length, const void **data,
                      size_t *len)
{
    uint8_t aad[16];

    seal_frame_aad(aad, offset, length);
    if (sbuf_reserve(w, *len + ARCHIVE_SEAL_TAG_LEN) < 0 ||
        seal_encrypt(&w->cctx, &w->seal, w->nr_data, aad, sizeof(aad), *data, *len, w->sbuf) < 0) {
        w->failed = true;
        vk_error_prefix("cannot seal the chunk at offset %" PRIu64 " of disk '%s'", offset,
                        w->hdr.disk);
        return -1;
    }
    *data = w->sbuf;
    *len += ARCHIVE_SEAL_TAG_LEN;
    return 0;
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
    snprintf(name, sizeof(name), "data/%016" PRIx64 "-%016" PRIx64 ".zst%s", offset, length,
             w->sealed ? ".sealed" : "");
    if (w->sealed && frame_seal(w, offset, length, &zst, &zstlen) < 0)
        return -1;
    if (write_member(w, name, zst, zstlen, &e->position) < 0)
        return -1;
    memcpy(e->sha256, sha256, ARCHIVE_SHA256_LEN);
    e->size = zstlen;
    e->seq = w->nr_data++;
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
            ARCHIVE_INDEX_FORMAT_NAME, ARCHIVE_FORMAT_VERSION,
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
    memcpy(rec, ARCHIVE_TRAILER_MAGIC, 8);
    put_le32(rec + 8, ARCHIVE_FORMAT_VERSION);
    put_le32(rec + 12, 0);
    put_le64(rec + 16, index_pos);
    put_le64(rec + 24, index_len);
    put_le64(rec + 32, nr_extents);
    memcpy(rec + 40, index_sha, ARCHIVE_SHA256_LEN);
}

/* Version 2, sealed: the trailer of version 1, then the sealing fields. */
static void trailer_seal(uint8_t rec[ARCHIVE_TRAILER_SEALED_LEN], const struct archive_seal *s)
{
    put_le32(rec + 8, ARCHIVE_TRAILER_SEALED_VERSION);
    put_le32(rec + 12, ARCHIVE_TRAILER_FLAG_SEALED);
    put_le32(rec + 72, 1); /* algorithm 1: AES-256-GCM frames, RFC 3394 key wrap */
    memcpy(rec + 76, s->prefix, SEAL_PREFIX_LEN);
    memcpy(rec + 80, s->wrapped, SEAL_WRAPPED_LEN);
    memcpy(rec + 120, s->key_id, FORMAT_KEY_ID_LEN);
}

/* The index member's bytes: the JSON, sealed when the archive is. */
static int index_seal(struct archive_writer *w, char **index, size_t *len)
{
    char *sealed;

    if (!w->sealed)
        return 0;
    if (!(sealed = vk_malloc(*len + ARCHIVE_SEAL_TAG_LEN)) ||
        seal_encrypt(&w->cctx, &w->seal, SEAL_INDEX_SEQ, NULL, 0, *index, *len, sealed) < 0) {
        free(sealed);
        return -1;
    }
    free(*index);
    *index = sealed;
    *len += ARCHIVE_SEAL_TAG_LEN;
    return 0;
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
    uint8_t body[ARCHIVE_SHA256_LEN], isha[ARCHIVE_SHA256_LEN], rec[ARCHIVE_TRAILER_SEALED_LEN];
    size_t rlen = w->sealed ? ARCHIVE_TRAILER_SEALED_LEN : ARCHIVE_TRAILER_LEN;
    CLEANUP_FREE char *index = NULL;
    uint64_t index_pos, trailer_pos;
    size_t len = 0;

    if (stream_digest(w, body) < 0 || !(index = index_build(w, body, &len)) ||
        index_seal(w, &index, &len) < 0 || archive_sha256(index, len, isha) < 0 ||
        write_member(w, w->sealed ? "index.json.sealed" : "index.json", index, len, &index_pos) < 0)
        return -1;
    memset(rec, 0, sizeof(rec));
    trailer_build(rec, index_pos, len, w->nr, isha);
    if (w->sealed)
        trailer_seal(rec, &w->seal);
    if (archive_sha256(rec, rlen - ARCHIVE_SHA256_LEN, rec + rlen - ARCHIVE_SHA256_LEN) < 0 ||
        write_member(w, ARCHIVE_TRAILER_NAME, rec, rlen, &trailer_pos) < 0)
        return -1;
    if (archive_write_close(w->a) != ARCHIVE_OK)
        return writer_fail(w, "closing");
    /* The layout promised in FORMAT.md: trailer data, its padding, two zero blocks. */
    if (trailer_pos + ARCHIVE_TAIL_LEN - ARCHIVE_BLOCK != w->pos || w->pos % ARCHIVE_BLOCK != 0) {
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
    EVP_CIPHER_CTX_free(w->cctx);
    OPENSSL_cleanse(&w->seal, sizeof(w->seal));
    free(w->sbuf);
    archive_header_clear(&w->hdr);
    free(w->extents);
    free(w);
}
