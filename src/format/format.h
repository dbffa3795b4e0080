/* virtkeep - the backup format: archives (pax tar of zstd chunk frames with an index
 * and a trailer), their codec and manifests.  docs/FORMAT.md is the
 * specification.  Files: archive-write.c (the writer), archive-read.c (the
 * index, the reader and the decoder), codec.c (zstd, sha256, zero
 * detection), manifest.c.
 */
#ifndef VIRTKEEP_FORMAT_H
#define VIRTKEEP_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ======== the archive format: one pax tar per disk per backup.
 *
 * docs/FORMAT.md describes every byte.  In short: "header.json", then one
 * member per data chunk holding one zstd frame ("data/OOOOOOOOOOOOOOOO-
 * LLLLLLLLLLLLLLLL.zst", hex offset and length), then "index.json" (every
 * extent with its sha256 and the position of its frame in the tar), then a
 * fixed-size "trailer" member that locates the index, then the tar
 * end-of-archive blocks.  A reader finds the index with two ranged reads
 * from the end and reads any chunk with one more.
 *
 * The writer takes chunks already compressed and hashed (a compression pool
 * does that work in parallel, with the helpers below) and never copies a
 * payload: the pointer goes to libarchive and from there to the sink.
 *
 * Writers and readers are not thread-safe: use one per thread.
 */

#define ARCHIVE_FORMAT_NAME "virtkeep-archive"
#define ARCHIVE_FORMAT_VERSION 1
#define ARCHIVE_SHA256_LEN 32
#define ARCHIVE_SHA256_HEX_LEN 64
/* Default and largest raw size of a data chunk. */
#define ARCHIVE_CHUNK_SIZE_DEFAULT (4u * 1024 * 1024)
#define ARCHIVE_CHUNK_SIZE_MAX (64u * 1024 * 1024)
/* The trailer record and where it sits: see docs/FORMAT.md. */
#define ARCHIVE_TRAILER_LEN 104
#define ARCHIVE_TRAILER_SEALED_LEN 256 /* version 2: a sealed archive */
#define ARCHIVE_TAIL_LEN 2048          /* trailer header + trailer block + 2 zero blocks */

/* Where the archive bytes go.  write returns 0 after taking all LEN bytes,
 * or -1 with the error recorded (common/error.h). */
struct archive_sink {
    int (*write)(void *opaque, const void *buf, size_t len);
    void *opaque;
};

/* Random access to a stored archive of SIZE bytes.  pread reads exactly LEN
 * bytes at OFFSET and returns 0, or -1 with the error recorded.  The reader
 * only asks for ranges inside [0, size). */
struct archive_source {
    int (*pread)(void *opaque, void *buf, size_t len, uint64_t offset);
    void *opaque;
    uint64_t size;
};

/* What header.json says (the index carries a copy). */
struct archive_header {
    char *disk;            /* disk target name, e.g. "vda" */
    uint64_t virtual_size; /* bytes */
    uint64_t chunk_size;   /* largest raw chunk, 1 .. ARCHIVE_CHUNK_SIZE_MAX */
    char *backup_id;
    char *level;     /* "full", "inc", "diff" or "copy" */
    int64_t created; /* seconds since the epoch, UTC */
};

enum archive_extent_kind {
    ARCHIVE_EXTENT_DATA = 0,
    ARCHIVE_EXTENT_ZERO,
};

struct archive_extent {
    uint64_t offset; /* in the disk */
    uint64_t length; /* raw bytes */
    enum archive_extent_kind kind;
    uint8_t sha256[ARCHIVE_SHA256_LEN]; /* of the raw data (data only) */
    uint64_t position;                  /* of the frame in the tar (data only) */
    uint64_t size; /* of the frame (data only; a sealed frame's tag included) */
    uint64_t seq;  /* ordinal among the data extents: a sealed frame's nonce counter */
};

/* Is LEVEL one of the archive levels? */
bool archive_level_valid(const char *level);

/* ======== the codec (codec.c): zstd frames, sha256, zero detection.
 *
 * The compression pool (src/datapath/pipeline.c) compresses and hashes
 * chunks with these before the writer takes them; restore and verify hash
 * with them.  Thread-safe, but a compressor belongs to one thread.
 */
struct archive_compressor;
struct archive_compressor *archive_compressor_new(int level);
void archive_compressor_free(struct archive_compressor *c);
/* Room a frame of RAWLEN bytes may need. */
size_t archive_compress_bound(size_t rawlen);
/* Compress RAW into one zstd frame (with its content size) in DST. */
int archive_compressor_compress(struct archive_compressor *c, const void *raw, size_t rawlen,
                                void *dst, size_t dstcap, size_t *out_len);
/* SHA-256 through OpenSSL libcrypto. */
int archive_sha256(const void *buf, size_t len, uint8_t out[ARCHIVE_SHA256_LEN]);
bool archive_is_zero(const void *buf, size_t len);
/* Lower-case hex (OUT has room for 65 bytes) and strict parsing back. */
void archive_sha256_hex(const uint8_t sha[ARCHIVE_SHA256_LEN],
                        char out[ARCHIVE_SHA256_HEX_LEN + 1]);
int archive_sha256_unhex(const char *hex, uint8_t out[ARCHIVE_SHA256_LEN]);

/* ======== keys and sealing (keyring.c, seal.c): docs/FORMAT.md, "Sealed archives".
 *
 * A key-encryption key (KEK) is 32 random bytes; its id is the first 16 hex
 * digits of sha256("virtkeep-key-id" || KEK), so that an id names a key
 * without revealing it.  Each sealed archive has its own random data key,
 * wrapped by the KEK (RFC 3394 AES key wrap) into the trailer; each frame
 * is sealed with AES-256-GCM under the data key with the nonce
 * prefix (4 random bytes of the archive) || le64(frame ordinal), so that no
 * nonce repeats under a key by construction.  A sealed manifest carries an
 * HMAC-SHA256 under a key derived from the KEK.
 *
 * A keyring file (mode 0600) holds one key per line:
 *   ID HEX64 active|retired CREATED
 * ("#" starts a comment).  VIRTKEEP_KEY (64 hex digits) adds one key.
 * Losing every copy of a key makes what it sealed unreadable.
 */
#define FORMAT_KEY_LEN 32
#define FORMAT_KEY_ID_LEN 16
#define FORMAT_KEY_ENV "VIRTKEEP_KEY"
#define ARCHIVE_SEAL_TAG_LEN 16
#define ARCHIVE_SEAL_ALGORITHM "aes-256-gcm"

struct format_key {
    char id[FORMAT_KEY_ID_LEN + 1];
    uint8_t kek[FORMAT_KEY_LEN];
    bool retired;
    int64_t created; /* seconds since the epoch; 0: unknown (from the environment) */
    char *source;    /* the file or variable it came from */
};

struct format_keyring {
    struct format_key *keys;
    size_t nr;
};

/* The id of KEK. */
void format_key_id(const uint8_t kek[FORMAT_KEY_LEN], char out[FORMAT_KEY_ID_LEN + 1]);
/* A new random key created now. */
int format_key_generate(struct format_key *out);
/* Append the keys of the keyring file PATH (refused when group or others
 * can access it).  A missing file is VK_ERR_NOT_FOUND. */
int format_keyring_load(struct format_keyring *kr, const char *path);
/* Append the key in the environment variable VAR (64 hex digits), if set. */
int format_keyring_load_env(struct format_keyring *kr, const char *var);
/* Write KR to PATH atomically, mode 0600. */
int format_keyring_save(const struct format_keyring *kr, const char *path);
/* Append a copy of KEY (unless its id is there already). */
int format_keyring_add(struct format_keyring *kr, const struct format_key *key, const char *source);
const struct format_key *format_keyring_find(const struct format_keyring *kr, const char *id);
/* The newest key not retired, or NULL. */
const struct format_key *format_keyring_active(const struct format_keyring *kr);
/* Wipe and free the keys. */
void format_keyring_clear(struct format_keyring *kr);
/* The paper backup of KEY: lines of hex and a checksum (malloc'd). */
char *format_key_export(const struct format_key *key);

/* ======== writing (archive-write.c) and reading (archive-read.c) archives. */

/* Writing.  Extents must come in increasing offset order without overlap;
 * gaps are regions this backup does not hold.  Any failure is sticky: the
 * writer refuses further calls and the caller aborts the transport put. */
struct archive_writer;
struct archive_writer_stats {
    uint64_t archive_bytes; /* written to the sink so far */
    uint64_t data_bytes;    /* raw bytes of data extents */
    uint64_t zero_bytes;    /* bytes of zero extents */
    uint64_t stored_bytes;  /* compressed bytes of data extents */
    size_t nr_extents;
};

struct archive_writer *archive_writer_open(const struct archive_sink *sink,
                                           const struct archive_header *hdr, unsigned int flags);
/* The same, sealed under KEY (NULL: not sealed): a new data key and nonce
 * prefix for this archive, frames and index sealed with AES-256-GCM. */
struct archive_writer *archive_writer_open_sealed(const struct archive_sink *sink,
                                                  const struct archive_header *hdr,
                                                  const struct format_key *key, unsigned int flags);
/* Add one data chunk: LENGTH raw bytes at OFFSET, compressed into the zstd
 * frame ZST of ZSTLEN bytes, with the sha256 of the raw bytes.  ZST is
 * passed on, not copied; it may be freed when this returns. */
int archive_writer_add_chunk(struct archive_writer *w, uint64_t offset, uint64_t length,
                             const void *zst, size_t zstlen,
                             const uint8_t sha256[ARCHIVE_SHA256_LEN]);
int archive_writer_add_zero(struct archive_writer *w, uint64_t offset, uint64_t length);
/* Write the index, the trailer and the end of the archive.  OUT_DIGEST (may
 * be NULL) receives the sha256 of every byte written to the sink. */
int archive_writer_finish(struct archive_writer *w, uint8_t out_digest[ARCHIVE_SHA256_LEN]);
void archive_writer_stats(const struct archive_writer *w, struct archive_writer_stats *st);
void archive_writer_free(struct archive_writer *w);

/* Reading by random access.  NAME is how errors name the archive (its key).
 * Open validates the trailer, the index's sha256 and every extent. */
struct archive_reader;
struct archive_reader *archive_reader_open(const struct archive_source *src, const char *name,
                                           unsigned int flags);
/* The same with the keys of KEYS (may be NULL) for a sealed archive.  A
 * sealed archive whose key is not in KEYS fails at once with
 * VK_ERR_AUTH, naming the key id. */
struct archive_reader *archive_reader_open_keyed(const struct archive_source *src, const char *name,
                                                 const struct format_keyring *keys,
                                                 unsigned int flags);
/* The id of the key that seals the archive, or NULL when it is not sealed. */
const char *archive_reader_key_id(const struct archive_reader *r);
const struct archive_header *archive_reader_header(const struct archive_reader *r);
const struct archive_extent *archive_reader_extents(const struct archive_reader *r, size_t *n);
/* The sha256 of the archive bytes before the index member (from the index). */
const uint8_t *archive_reader_body_sha256(const struct archive_reader *r);
/* Read EXTENT (one of archive_reader_extents) into OUT_RAW, which holds
 * extent->length bytes: one ranged read, zstd, sha256 check.  Zero extents
 * fill OUT_RAW with zeros.  A mismatch fails with VK_ERR_CORRUPT. */
int archive_reader_read_chunk(struct archive_reader *r, const struct archive_extent *extent,
                              void *out_raw);
void archive_reader_free(struct archive_reader *r);

/* Decoding frames the caller has read (EXTENT->size bytes at
 * EXTENT->position), so that a pool of threads can decode and verify while
 * one thread reads: one decoder (its own zstd context) per thread; the
 * decoder holds no other state.  Decode FRAME into OUT_RAW (EXTENT->length
 * bytes) and check its sha256, with the same checks and errors as
 * archive_reader_read_chunk (NAME names the archive).  Zero extents fill
 * OUT_RAW with zeros and ignore FRAME. */
struct archive_decoder;
struct archive_decoder *archive_decoder_new(void);
void archive_decoder_free(struct archive_decoder *d);
int archive_decoder_decode(struct archive_decoder *d, const char *name,
                           const struct archive_extent *e, const void *frame, void *out_raw);
/* The same for a frame of R's archive, sealed or not (R is only read:
 * several threads may decode frames of one reader, each with its decoder). */
int archive_decoder_decode_frame(struct archive_decoder *d, const struct archive_reader *r,
                                 const struct archive_extent *e, const void *frame, void *out_raw);

/* The index parser alone (what archive_reader_open uses once the trailer and
 * the index sha256 are checked); INDEX_POS bounds the frame positions.  For
 * tests and fuzzing.  Returns 0 or -1 (VK_ERR_CORRUPT). */
struct archive_index {
    struct archive_header header;
    struct archive_extent *extents;
    size_t nr_extents;
    uint8_t body_sha256[ARCHIVE_SHA256_LEN];
};
int archive_index_parse(const char *json, size_t len, uint64_t index_pos, const char *name,
                        struct archive_index *out);
void archive_index_clear(struct archive_index *idx);
void archive_header_clear(struct archive_header *hdr);

/* ======== object keys on a target (docs/FORMAT.md, "Object keys").
 *
 * A backup's objects are DOMAIN/BACKUP_ID/DISK.tar and
 * DOMAIN/BACKUP_ID/manifest.json, each component encoded: '%', '/',
 * control characters, a leading '.' and the '.' of ".vk-tmp-" become %XX
 * (upper-case hex); every other byte is kept.  So a name libvirt allows
 * (".hidden-vm", "..", "a/b") is never a hidden entry, never "." or "..",
 * never leaves the target directory, and decodes back to itself; a plain
 * name ("web1") is its own encoding.
 */

/* The encoded component of NAME (malloc'd); an empty name is VK_ERR_INVALID. */
char *format_name_encode(const char *name);
/* The name of an encoded COMPONENT (malloc'd); anything format_name_encode()
 * would not have written is VK_ERR_CORRUPT. */
char *format_name_decode(const char *component);
/* "ENC(DOMAIN)/ENC(BACKUP_ID)/ENC(FILE)", e.g. FILE "vda.tar" (malloc'd). */
char *format_object_key(const char *domain, const char *backup_id, const char *file);

/* ======== the per-backup manifest (JSON, json-c).
 *
 * One small document per backup, stored on the target beside the archives,
 * so that the catalog can be rebuilt from a target alone.  docs/FORMAT.md
 * describes it.  Strings are owned by the struct: manifest_clear() frees
 * them, so fill it with malloc'd copies (vk_strdup).
 */

#define MANIFEST_FORMAT_NAME "virtkeep-manifest"
/* Version 2 adds each disk's qcow2 cluster size and compat level; version 3
 * the sha256 of the parent's manifest (the chain becomes a hash chain).
 * Versions 1 and 2 are still read (those fields are then 0, NULL and
 * has_parent_manifest_sha256 false: the link cannot be checked). */
#define MANIFEST_FORMAT_VERSION 4
/* Version 4 is written only for sealed manifests (key_id set): "encryption"
 * and "auth" (an HMAC-SHA256 of the text); others are written as version 3. */
#define MANIFEST_PLAIN_VERSION 3
/* The largest manifest manifest_parse() accepts. */
#define MANIFEST_MAX_SIZE (16u * 1024 * 1024)

struct manifest_disk {
    char *target;          /* "vda" */
    uint64_t virtual_size; /* bytes */
    char *archive_key;     /* key of the archive on the target */
    uint64_t archive_size; /* bytes of the archive object */
    uint8_t archive_sha256[ARCHIVE_SHA256_LEN];
    uint64_t bytes_read;   /* read from the disk */
    uint64_t bytes_stored; /* compressed bytes of data chunks */
    uint64_t cluster_size; /* of the source qcow2 image; 0: unknown or not qcow2 */
    char *compat;          /* its compat level, "0.10" or "1.1"; NULL: unknown */
};

struct manifest {
    char *backup_id;
    char *domain_name;
    char *domain_uuid; /* 36-character RFC 4122 text form */
    char *level;       /* full, inc, diff, copy */
    char *parent_id;   /* NULL for full and copy */
    /* The id of the key that authenticates the manifest and seals its
     * archives (version 4), or NULL: not sealed. */
    char *key_id;
    /* The sha256 of the parent's manifest object, as stored on the target
     * (version 3; set exactly when parent_id is).  False in the manifests
     * of versions 1 and 2, which do not record it. */
    bool has_parent_manifest_sha256;
    uint8_t parent_manifest_sha256[ARCHIVE_SHA256_LEN];
    int version;           /* the format version parsed (manifest_parse); ignored when building */
    char *checkpoint_name; /* NULL for copy */
    char *checkpoint_xml;  /* NULL for copy */
    char *domain_xml;
    int64_t started;  /* seconds since the epoch, UTC */
    int64_t finished; /* seconds since the epoch, UTC */
    struct manifest_disk *disks;
    size_t nr_disks;
};

/* Check every rule manifest_parse() checks (VK_ERR_INVALID). */
int manifest_validate(const struct manifest *m);
/* The JSON text (malloc'd, NUL-terminated), after manifest_validate(). */
char *manifest_to_json(const struct manifest *m, unsigned int flags);
/* The JSON text of a sealed manifest (M->key_id is KEY's id), with its
 * HMAC under a key derived from KEY. */
char *manifest_to_json_sealed(const struct manifest *m, const struct format_key *key);
/* Check the HMAC of the sealed manifest JSON (LEN bytes, parsed into M) with
 * the key of KEYS that M->key_id names: VK_ERR_AUTH naming the key when it
 * is not there, VK_ERR_CORRUPT naming the manifest when the tag fails.  0
 * for a manifest that is not sealed. */
int manifest_authenticate(const char *json, size_t len, const char *name, const struct manifest *m,
                          const struct format_keyring *keys);
/* Parse and validate LEN bytes; NAME (the key) names the manifest in
 * errors.  Malformed input fails with VK_ERR_CORRUPT, a newer format
 * version with VK_ERR_UNSUPPORTED.  Fills OUT (cleared on failure). */
int manifest_parse(const char *json, size_t len, const char *name, struct manifest *out);
void manifest_clear(struct manifest *m);
/* Is LEN bytes at S valid UTF-8 (no overlong forms, no surrogates)? */
bool manifest_utf8_valid(const char *s, size_t len);
/* Append a zeroed disk to M; returns it or NULL. */
struct manifest_disk *manifest_disk_add(struct manifest *m);
/* Fill D's cluster_size and compat from the qcow2 header of the image at
 * PATH; an image that is not qcow2 leaves them 0 and NULL.  -1 when PATH
 * cannot be read. */
int manifest_disk_probe(struct manifest_disk *d, const char *path);

#endif
