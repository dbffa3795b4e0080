/* virtkeep - the archive format: the index parser, the reader by random
 * access and the frame decoder (see format.h).  docs/FORMAT.md is the
 * specification; keep the two in step.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <zstd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "src/format/format-int.h"
#include "src/format/format.h"

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
    return (n + ARCHIVE_BLOCK - 1) / ARCHIVE_BLOCK * ARCHIVE_BLOCK;
}

/* ------------------------------------------------------------ header JSON */

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
    if (archive_header_check(out, VK_ERR_CORRUPT, what) < 0)
        goto fail;
    return 0;
fail:
    archive_header_clear(out);
    return -1;
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
    if (e->size == 0 || e->size > archive_compress_bound(e->length) + ARCHIVE_SEAL_TAG_LEN)
        return "its frame size is impossible";
    if (e->position % ARCHIVE_BLOCK != 0 || e->position < *frames_end + ARCHIVE_BLOCK)
        return "its frame position is misaligned or overlaps the previous member";
    if (index_pos < ARCHIVE_BLOCK || e->position > index_pos - ARCHIVE_BLOCK ||
        e->size > index_pos - ARCHIVE_BLOCK - e->position)
        return "its frame lies beyond the start of the index";
    *frames_end = e->position + round_up_block(e->size);
    return NULL;
}

/* The index of a large disk lists millions of extents, and a json-c tree
 * costs about 1 KiB per extent (an object, its hash table, six keys and
 * values): 2 million extents took 2.4 GB.  So the extents array is never
 * built as a tree.  One scan of the text finds the array values of the top
 * level; the rest (format, version, header, body_sha256: a few hundred
 * bytes) is parsed as a small document with the array cut out; the extent
 * count is checked against what the disk can hold (extents_max) before
 * anything is allocated for it; then each extent is parsed on its own,
 * converted and freed.  Memory: the text plus one struct per extent. */

/* Each extent is parsed inside the root object and the extents array. */
#define EXTENT_JSON_DEPTH 14
/* Beside its extents an index holds the header (strings of at most 255
 * bytes) and a few short values. */
#define INDEX_REST_MAX (64u * 1024)

struct extents_span {
    size_t start, end;     /* [start, end): '[' ... ']' of the first top-level array */
    size_t commas;         /* commas between its elements */
    bool nonempty, closed; /* it has an element; its closing bracket was found */
    unsigned int arrays;   /* array values at the top level */
};

static bool json_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static size_t ws_skip(const char *t, size_t pos, size_t end)
{
    while (pos < end && json_ws(t[pos]))
        pos++;
    return pos;
}

/* Find the array values of the top-level object of T without parsing:
 * brackets are counted outside strings.  A malformed text is left for the
 * parsers to report. */
static void extents_scan(const char *t, size_t len, struct extents_span *sp)
{
    size_t depth = 0;
    bool in_str = false;

    memset(sp, 0, sizeof(*sp));
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        bool inside = sp->arrays == 1 && !sp->closed && depth >= 2;

        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (inside && !json_ws(c) && (depth > 2 || (c != ']' && c != '}')))
            sp->nonempty = true;
        switch (c) {
        case '"':
            in_str = true;
            break;
        case '[':
        case '{':
            if (depth == 1 && c == '[' && sp->arrays++ == 0)
                sp->start = i;
            depth++;
            break;
        case ']':
        case '}':
            if (depth == 0)
                return;
            depth--;
            if (inside && depth == 1) {
                sp->end = i + 1;
                sp->closed = true;
            }
            break;
        case ',':
            if (inside && depth == 2)
                sp->commas++;
            break;
        default:
            break;
        }
    }
}

/* The most extents a disk of this size can have: extents do not overlap,
 * and their boundaries fall on 512-byte sectors (QEMU's block status is
 * never finer) or where a data extent is cut into chunks; 2 more for an
 * unaligned end. */
static uint64_t extents_max(const struct archive_header *h)
{
    return h->virtual_size / 512 + h->virtual_size / h->chunk_size + 2;
}

static int extents_malformed(const char *what)
{
    vk_error(VK_ERR_CORRUPT, "%s is corrupt: its extents are not a well-formed JSON array", what);
    return -1;
}

/* Where the array element at T[POS] ends: the ',' or ']' after it at its
 * own level, or END. */
static size_t element_end(const char *t, size_t pos, size_t end)
{
    size_t depth = 0;
    bool in_str = false;

    for (; pos < end; pos++) {
        char c = t[pos];
        if (in_str) {
            if (c == '\\')
                pos++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            if (depth == 0)
                return pos;
            depth--;
        } else if (c == ',' && depth == 0) {
            return pos;
        }
    }
    return end;
}

/* Parse one extent at T[*POS] (the text ends at END) into E; *POS moves
 * past it.  json-c's strict mode wants the value alone: it is cut out. */
static int extent_next(struct json_tokener *tok, const char *t, size_t *pos, size_t end,
                       const char *what, const char *ewhat, struct archive_extent *e)
{
    size_t stop = element_end(t, *pos, end), n = stop - *pos;
    struct json_object *o;
    int r;

    while (n > 0 && json_ws(t[*pos + n - 1]))
        n--;
    json_tokener_reset(tok);
    o = json_tokener_parse_ex(tok, t + *pos, (int)n);
    if (o && json_tokener_get_parse_end(tok) != n) {
        json_object_put(o);
        o = NULL;
    }
    if (!o) {
        enum json_tokener_error err = json_tokener_get_error(tok);
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: %s", what,
                 err == json_tokener_continue ? "the JSON text ends early"
                                              : json_tokener_error_desc(err));
        return -1;
    }
    *pos = stop;
    if (!json_object_is_type(o, json_type_object)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: it is not a JSON object", ewhat);
        r = -1;
    } else {
        r = extent_parse(o, ewhat, e);
    }
    json_object_put(o);
    return r;
}

static int extents_parse(const char *t, const struct extents_span *sp, uint64_t index_pos,
                         const char *name, const char *what, struct archive_index *out)
{
    size_t n = sp->nonempty ? sp->commas + 1 : 0, pos = ws_skip(t, sp->start + 1, sp->end);
    uint64_t prev_end = 0, frames_end = 2 * ARCHIVE_BLOCK; /* header.json ends at least here */
    uint64_t max = extents_max(&out->header), nr_data = 0;
    struct json_tokener *tok;
    char ewhat[320];
    int r = -1;

    if (n > max) {
        vk_error(VK_ERR_CORRUPT,
                 "%s is corrupt: it lists %zu extents, more than a disk of %" PRIu64
                 " bytes can hold (%" PRIu64 " at most)",
                 what, n, out->header.virtual_size, max);
        return -1;
    }
    if (n && !(out->extents = vk_calloc(n, sizeof(*out->extents))))
        return -1;
    if (!(tok = json_tokener_new_ex(EXTENT_JSON_DEPTH))) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    while (pos < sp->end - 1) {
        struct archive_extent *e = &out->extents[out->nr_extents];
        const char *why;

        if (out->nr_extents == n) {
            extents_malformed(what);
            goto out;
        }
        snprintf(ewhat, sizeof(ewhat), "extent %zu in the index of archive '%s'", out->nr_extents,
                 name);
        if (extent_next(tok, t, &pos, sp->end, what, ewhat, e) < 0)
            goto out;
        why = extent_check(e, &out->header, prev_end, &frames_end, index_pos);
        if (why) {
            vk_error(VK_ERR_CORRUPT, "%s is corrupt: %s", ewhat, why);
            goto out;
        }
        prev_end = e->offset + e->length;
        if (e->kind == ARCHIVE_EXTENT_DATA)
            e->seq = nr_data++;
        out->nr_extents++;
        pos = ws_skip(t, pos, sp->end);
        if (pos < sp->end - 1 && t[pos] == ',')
            pos = ws_skip(t, pos + 1, sp->end);
        else if (pos == sp->end - 1)
            break;
        if (pos >= sp->end - 1) { /* nothing, or nothing but a comma, before the ']' */
            extents_malformed(what);
            goto out;
        }
    }
    if (t[sp->end - 1] != ']' || out->nr_extents != n) {
        extents_malformed(what);
        goto out;
    }
    r = 0;
out:
    json_tokener_free(tok);
    return r;
}

/* The index text without its extents array (replaced with []), for the
 * small tree of the rest. */
static char *index_rest(const char *json, size_t len, const struct extents_span *sp,
                        size_t *rest_len)
{
    size_t head = sp->arrays ? sp->start : len, tail = sp->closed ? len - sp->end : 0;
    char *rest;

    if (!(rest = vk_malloc(head + tail + 3)))
        return NULL;
    memcpy(rest, json, head);
    *rest_len = head;
    if (sp->arrays) {
        memcpy(rest + head, "[]", 2);
        *rest_len += 2;
    }
    memcpy(rest + *rest_len, json + len - tail, tail);
    *rest_len += tail;
    rest[*rest_len] = '\0';
    return rest;
}

static int index_from_json(struct json_object *root, const char *name, const char *what,
                           struct archive_index *out)
{
    static const char *const keys[] = {"format",      "version", "header",
                                       "body_sha256", "extents", NULL};
    CLEANUP_FREE char *body = NULL;
    struct json_object *hj, *arr;
    char hwhat[300];

    snprintf(hwhat, sizeof(hwhat), "the header in the index of archive '%s'", name);
    if (vk_json_check_object(root, keys, what) < 0 ||
        vk_json_check_format(root, ARCHIVE_INDEX_FORMAT_NAME, ARCHIVE_FORMAT_VERSION, what) < 0 ||
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
    return 0;
}

int archive_index_parse(const char *json, size_t len, uint64_t index_pos, const char *name,
                        struct archive_index *out)
{
    CLEANUP_FREE char *rest = NULL;
    struct extents_span sp;
    struct json_object *root;
    size_t rest_len = 0;
    char what[300];
    int r;

    memset(out, 0, sizeof(*out));
    snprintf(what, sizeof(what), "the index of archive '%s'", name);
    if (len > INT32_MAX) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: it is too large", what);
        return -1;
    }
    extents_scan(json, len, &sp);
    if (sp.arrays > 1) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: it has more than one list of extents", what);
        return -1;
    }
    if ((sp.arrays ? sp.start : len) + (sp.closed ? len - sp.end : 0) > INDEX_REST_MAX) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: it holds too much beside its extents", what);
        return -1;
    }
    if (!(rest = index_rest(json, len, &sp, &rest_len)) ||
        !(root = vk_json_parse(rest, rest_len, what)))
        return -1;
    r = index_from_json(root, name, what, out);
    json_object_put(root); /* the small tree goes before the extents come */
    if (r == 0)
        r = extents_parse(json, &sp, index_pos, name, what, out);
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
    bool sealed;
    struct archive_seal seal;
    EVP_CIPHER_CTX *cctx;
    uint8_t *plain; /* scratch for one unsealed frame */
    size_t plain_cap;
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

/* The ustar header of the trailer member: name, size, magic, checksum.
 * *LEN gets the size of the record (version 1 or 2). */
static bool trailer_header_ok(const uint8_t *h, uint64_t *len)
{
    uint64_t sum = 0, want;
    bool ok = true;

    for (size_t i = 0; i < ARCHIVE_BLOCK; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    want = octal_field(h + 148, 8, &ok);
    if (!ok || want != sum ||
        memcmp(h + 257,
               "ustar\0"
               "00",
               8) != 0 ||
        h[156] != '0')
        return false;
    if (memcmp(h, ARCHIVE_TRAILER_NAME, sizeof(ARCHIVE_TRAILER_NAME)) != 0 || h[345] != '\0')
        return false;
    *len = octal_field(h + 124, 12, &ok);
    return (*len == ARCHIVE_TRAILER_LEN || *len == ARCHIVE_TRAILER_SEALED_LEN) && ok;
}

struct trailer {
    uint64_t index_pos, index_len, nr_extents;
    uint8_t index_sha[ARCHIVE_SHA256_LEN];
    bool sealed;
    struct archive_seal seal; /* prefix, wrapped key and key id (sealed) */
};

/* Version 1: flags 0, 104 bytes.  Version 2: the sealed flag, 256 bytes. */
static const char *trailer_version_check(const uint8_t *rec, uint64_t len, struct trailer *t)
{
    uint32_t version = get_le32(rec + 8), flags = get_le32(rec + 12);

    t->sealed = version == ARCHIVE_TRAILER_SEALED_VERSION;
    if (!(version == ARCHIVE_FORMAT_VERSION && flags == 0 && len == ARCHIVE_TRAILER_LEN) &&
        !(t->sealed && flags == ARCHIVE_TRAILER_FLAG_SEALED && len == ARCHIVE_TRAILER_SEALED_LEN))
        return "the trailer has an unsupported format version or flags";
    if (!t->sealed)
        return NULL;
    if (get_le32(rec + 72) != 1)
        return "the trailer names an unknown sealing algorithm";
    if (!archive_is_zero(rec + 136, 88))
        return "the reserved bytes of the trailer are not zero";
    memcpy(t->seal.prefix, rec + 76, SEAL_PREFIX_LEN);
    memcpy(t->seal.wrapped, rec + 80, SEAL_WRAPPED_LEN);
    memcpy(t->seal.key_id, rec + 120, FORMAT_KEY_ID_LEN);
    for (size_t i = 0; i < FORMAT_KEY_ID_LEN; i++)
        if (!strchr("0123456789abcdef", t->seal.key_id[i]) || !t->seal.key_id[i])
            return "the key id in the trailer is not 16 hex digits";
    return NULL;
}

static const char *trailer_parse(const uint8_t *tail, uint64_t size, struct trailer *t)
{
    const uint8_t *rec = tail + ARCHIVE_BLOCK;
    uint8_t sha[ARCHIVE_SHA256_LEN];
    uint64_t len = 0;
    const char *why;

    memset(t, 0, sizeof(*t));
    if (!trailer_header_ok(tail, &len))
        return "the trailer member header is missing or damaged";
    if (!archive_is_zero(rec + len, ARCHIVE_TAIL_LEN - ARCHIVE_BLOCK - len))
        return "the end-of-archive blocks are not zero";
    if (memcmp(rec, ARCHIVE_TRAILER_MAGIC, 8) != 0)
        return "the trailer magic is wrong";
    if (archive_sha256(rec, len - ARCHIVE_SHA256_LEN, sha) < 0 ||
        memcmp(sha, rec + len - ARCHIVE_SHA256_LEN, sizeof(sha)) != 0)
        return "the trailer fails its sha256 check";
    if ((why = trailer_version_check(rec, len, t)))
        return why;
    t->index_pos = get_le64(rec + 16);
    t->index_len = get_le64(rec + 24);
    t->nr_extents = get_le64(rec + 32);
    memcpy(t->index_sha, rec + 40, ARCHIVE_SHA256_LEN);
    if (t->index_len == 0 || t->index_pos % ARCHIVE_BLOCK != 0 ||
        t->index_pos < 3 * ARCHIVE_BLOCK || t->index_pos > size - ARCHIVE_TAIL_LEN ||
        t->index_len > size - ARCHIVE_TAIL_LEN - t->index_pos)
        return "the trailer places the index outside the archive";
    if (t->nr_extents > t->index_len / 16)
        return "the trailer gives an impossible extent count";
    return NULL;
}

/* The key of a sealed archive: unwrap its data key, unseal the index in
 * place (*LEN shrinks by the tag). */
static int index_unseal(struct archive_reader *r, const struct format_keyring *keys,
                        struct trailer *t, char *index, uint64_t *len)
{
    const struct format_key *k = format_keyring_find(keys, t->seal.key_id);
    int rc;

    if (!k) {
        vk_error(VK_ERR_AUTH,
                 "archive '%s' is sealed with key '%s', which is not in the keyring: add the "
                 "keyring file that holds it (encryption_key_file =) or put the key in %s; "
                 "without it the archive cannot be read",
                 r->name, t->seal.key_id, FORMAT_KEY_ENV);
        return -1;
    }
    r->seal = t->seal;
    if (seal_unwrap(k, &r->seal, r->name) < 0)
        return -1;
    rc = seal_decrypt(&r->cctx, &r->seal, SEAL_INDEX_SEQ, NULL, 0, index, (size_t)*len, index);
    if (rc > 0)
        return corrupt(r, "the sealed index fails its authentication (AES-256-GCM tag)");
    if (rc < 0)
        return -1;
    *len -= ARCHIVE_SEAL_TAG_LEN;
    r->sealed = true;
    return 0;
}

static int reader_load_index(struct archive_reader *r, const struct format_keyring *keys)
{
    uint8_t tail[ARCHIVE_TAIL_LEN], sha[ARCHIVE_SHA256_LEN];
    CLEANUP_FREE char *index = NULL;
    struct trailer t;
    const char *why;
    uint64_t size = r->src.size;

    if (size < 4 * ARCHIVE_BLOCK + ARCHIVE_TAIL_LEN || size % ARCHIVE_BLOCK != 0)
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
    if (t.sealed && index_unseal(r, keys, &t, index, &t.index_len) < 0)
        return -1;
    if (archive_index_parse(index, (size_t)t.index_len, t.index_pos, r->name, &r->idx) < 0)
        return -1;
    if (r->idx.nr_extents != t.nr_extents)
        return corrupt(r, "the index and the trailer disagree on the number of extents");
    return 0;
}

struct archive_reader *archive_reader_open(const struct archive_source *src, const char *name,
                                           unsigned int flags)
{
    return archive_reader_open_keyed(src, name, NULL, flags);
}

struct archive_reader *archive_reader_open_keyed(const struct archive_source *src, const char *name,
                                                 const struct format_keyring *keys,
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
    if (reader_load_index(r, keys) < 0)
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

const char *archive_reader_key_id(const struct archive_reader *r)
{
    return r->sealed ? r->seal.key_id : NULL;
}

const uint8_t *archive_reader_body_sha256(const struct archive_reader *r)
{
    return r->idx.body_sha256;
}

/* SEALED: the member is a sealed frame (its name ends in .zst.sealed). */
static int chunk_corrupt(const char *name, const struct archive_extent *e, bool sealed,
                         const char *why)
{
    vk_error(VK_ERR_CORRUPT,
             "archive '%s' is corrupt: the chunk at offset %" PRIu64 " (0x%" PRIx64 ", member "
             "data/%016" PRIx64 "-%016" PRIx64 ".zst%s) %s",
             name, e->offset, e->offset, e->offset, e->length, sealed ? ".sealed" : "", why);
    return -1;
}

static int buffer_reserve(uint8_t **buf, size_t *cap, size_t size)
{
    uint8_t *p;

    if (size <= *cap)
        return 0;
    p = vk_malloc(size);
    if (!p)
        return -1;
    free(*buf);
    *buf = p;
    *cap = size;
    return 0;
}

/* Unseal the frame of E (E->size bytes at FRAME) of the archive sealed
 * with S into *PLAIN (grown as needed): the frame without its tag. */
static int frame_unseal(EVP_CIPHER_CTX **ctx, const struct archive_seal *s, const char *name,
                        const struct archive_extent *e, const void *frame, uint8_t **plain,
                        size_t *cap)
{
    uint8_t aad[16];
    int rc;

    if (e->size <= ARCHIVE_SEAL_TAG_LEN)
        return chunk_corrupt(name, e, true, "is too short to be a sealed frame");
    if (buffer_reserve(plain, cap, e->size) < 0)
        return -1;
    seal_frame_aad(aad, e->offset, e->length);
    rc = seal_decrypt(ctx, s, e->seq, aad, sizeof(aad), frame, e->size, *plain);
    if (rc > 0)
        return chunk_corrupt(name, e, true,
                             "fails its authentication (AES-256-GCM tag): it was altered");
    return rc;
}

static int chunk_decode(ZSTD_DCtx *dctx, const char *name, const struct archive_extent *e,
                        bool sealed, const void *frame, size_t size, void *out)
{
    uint8_t sha[ARCHIVE_SHA256_LEN];
    unsigned long long fcs = ZSTD_getFrameContentSize(frame, size);
    size_t n;

    if (fcs == ZSTD_CONTENTSIZE_ERROR)
        return chunk_corrupt(name, e, sealed, "is not a zstd frame");
    if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != e->length)
        return chunk_corrupt(name, e, sealed, "holds a frame of the wrong size");
    if (ZSTD_findFrameCompressedSize(frame, size) != size)
        return chunk_corrupt(name, e, sealed, "is not exactly one zstd frame");
    n = ZSTD_decompressDCtx(dctx, out, e->length, frame, size);
    if (ZSTD_isError(n) || n != e->length)
        return chunk_corrupt(name, e, sealed, "cannot be decompressed");
    if (archive_sha256(out, e->length, sha) < 0)
        return -1;
    if (memcmp(sha, e->sha256, sizeof(sha)) != 0)
        return chunk_corrupt(name, e, sealed, "fails its sha256 check");
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
    if (buffer_reserve(&r->frame, &r->frame_cap, e->size) < 0 ||
        r->src.pread(r->src.opaque, r->frame, e->size, e->position) < 0)
        return -1;
    if (!r->sealed)
        return chunk_decode(r->dctx, r->name, e, false, r->frame, e->size, out_raw);
    if (frame_unseal(&r->cctx, &r->seal, r->name, e, r->frame, &r->plain, &r->plain_cap) < 0)
        return -1;
    return chunk_decode(r->dctx, r->name, e, true, r->plain, e->size - ARCHIVE_SEAL_TAG_LEN,
                        out_raw);
}

void archive_reader_free(struct archive_reader *r)
{
    if (!r)
        return;
    archive_index_clear(&r->idx);
    ZSTD_freeDCtx(r->dctx);
    EVP_CIPHER_CTX_free(r->cctx);
    OPENSSL_cleanse(&r->seal, sizeof(r->seal));
    free(r->plain);
    free(r->frame);
    free(r->name);
    free(r);
}

/* ---------------------------------------------------------------- decoder */

struct archive_decoder {
    ZSTD_DCtx *dctx;
    EVP_CIPHER_CTX *cctx;
    uint8_t *plain;
    size_t plain_cap;
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
    EVP_CIPHER_CTX_free(d->cctx);
    free(d->plain);
    free(d);
}

int archive_decoder_decode(struct archive_decoder *d, const char *name,
                           const struct archive_extent *e, const void *frame, void *out_raw)
{
    if (e->kind == ARCHIVE_EXTENT_ZERO) {
        memset(out_raw, 0, e->length);
        return 0;
    }
    return chunk_decode(d->dctx, name ? name : "(unnamed)", e, false, frame, e->size, out_raw);
}

int archive_decoder_decode_frame(struct archive_decoder *d, const struct archive_reader *r,
                                 const struct archive_extent *e, const void *frame, void *out_raw)
{
    if (e->kind == ARCHIVE_EXTENT_ZERO || !r->sealed)
        return archive_decoder_decode(d, r->name, e, frame, out_raw);
    if (frame_unseal(&d->cctx, &r->seal, r->name, e, frame, &d->plain, &d->plain_cap) < 0)
        return -1;
    return chunk_decode(d->dctx, r->name, e, true, d->plain, e->size - ARCHIVE_SEAL_TAG_LEN,
                        out_raw);
}
