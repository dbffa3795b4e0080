/* virtkeep - what the files of src/format/ share and nobody else uses. */
#ifndef VIRTKEEP_FORMAT_INT_H
#define VIRTKEEP_FORMAT_INT_H

#include "common/error.h"
#include "src/format/format.h"

/* The tar block, and the names and magic that docs/FORMAT.md gives. */
#define ARCHIVE_BLOCK 512u
#define ARCHIVE_INDEX_FORMAT_NAME "virtkeep-archive-index"
#define ARCHIVE_TRAILER_MAGIC "VKARCHTR"
#define ARCHIVE_TRAILER_NAME "trailer"

/* Check the fields of HDR: the writer's input (CODE VK_ERR_INVALID) or a
 * header read back (VK_ERR_CORRUPT).  Fails with "WHAT is invalid: why". */
int archive_header_check(const struct archive_header *hdr, enum vk_error_code code,
                         const char *what);

/* ---- sealing (seal.c): the primitives of docs/FORMAT.md, "Sealed archives". */

#include <openssl/evp.h>

#define SEAL_PREFIX_LEN 4
#define SEAL_WRAPPED_LEN 40       /* RFC 3394 wrap of a 32-byte key */
#define SEAL_INDEX_SEQ UINT64_MAX /* the nonce counter of the sealed index */
#define ARCHIVE_TRAILER_SEALED_VERSION 2
#define ARCHIVE_TRAILER_FLAG_SEALED 1u

/* The secrets of one sealed archive. */
struct archive_seal {
    uint8_t key[FORMAT_KEY_LEN]; /* the data key */
    uint8_t prefix[SEAL_PREFIX_LEN];
    uint8_t wrapped[SEAL_WRAPPED_LEN];
    char key_id[FORMAT_KEY_ID_LEN + 1];
};

/* A new data key and prefix for an archive, wrapped by KEK. */
int seal_new(const struct format_key *kek, struct archive_seal *out);
/* Unwrap S->wrapped with KEK into S->key: VK_ERR_CORRUPT naming NAME when
 * the wrap's integrity check fails. */
int seal_unwrap(const struct format_key *kek, struct archive_seal *s, const char *name);
/* The additional data of a frame: le64 offset || le64 length. */
void seal_frame_aad(uint8_t aad[16], uint64_t offset, uint64_t length);
/* AES-256-GCM under S->key with the nonce prefix || le64(SEQ).  Encrypt LEN
 * bytes of IN into OUT (LEN + 16 bytes: ciphertext, then the tag). *CTX is
 * made on first use; free it with EVP_CIPHER_CTX_free. */
int seal_encrypt(EVP_CIPHER_CTX **ctx, const struct archive_seal *s, uint64_t seq,
                 const uint8_t *aad, size_t aadlen, const void *in, size_t len, void *out);
/* Decrypt LEN bytes (ciphertext and tag) of IN into OUT (LEN - 16 bytes):
 * 0, 1 when the tag does not match (nothing recorded), -1 on an error. */
int seal_decrypt(EVP_CIPHER_CTX **ctx, const struct archive_seal *s, uint64_t seq,
                 const uint8_t *aad, size_t aadlen, const void *in, size_t len, void *out);
/* HMAC-SHA256 of LEN bytes under the manifest key derived from KEK. */
int seal_manifest_mac(const struct format_key *kek, const void *buf, size_t len,
                      uint8_t out[ARCHIVE_SHA256_LEN]);

#endif
