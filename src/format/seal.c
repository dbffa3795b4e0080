/* virtkeep - the sealing primitives of the archive format (OpenSSL EVP):
 * data keys wrapped by a key-encryption key (RFC 3394 AES key wrap),
 * frames and indexes sealed with AES-256-GCM, manifests authenticated with
 * HMAC-SHA256.  docs/FORMAT.md ("Sealed archives") is the specification.
 */
#include <config.h>

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/error.h"
#include "src/format/format-int.h"
#include "src/format/format.h"

#define NONCE_LEN 12
#define MANIFEST_MAC_LABEL "virtkeep-manifest-mac"

static int crypto_fail(const char *what)
{
    vk_error(VK_ERR_INTERNAL, "cannot %s with libcrypto", what);
    return -1;
}

/* RFC 3394 key wrap (ENC 1) or unwrap (0) of the 32-byte data key. */
static int key_wrap(const struct format_key *kek, int enc, const uint8_t *in, size_t inlen,
                    uint8_t *out, int *outlen)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, ok;

    if (!ctx)
        return -1;
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    ok = EVP_CipherInit_ex(ctx, EVP_aes_256_wrap(), NULL, kek->kek, NULL, enc) &&
         EVP_CipherUpdate(ctx, out, &n, in, (int)inlen) > 0 &&
         EVP_CipherFinal_ex(ctx, out + n, &fin) > 0;
    EVP_CIPHER_CTX_free(ctx);
    *outlen = n + fin;
    return ok ? 0 : -1;
}

int seal_new(const struct format_key *kek, struct archive_seal *out)
{
    int n = 0;

    memset(out, 0, sizeof(*out));
    if (RAND_bytes(out->key, sizeof(out->key)) != 1 ||
        RAND_bytes(out->prefix, sizeof(out->prefix)) != 1)
        return crypto_fail("draw a random data key");
    if (key_wrap(kek, 1, out->key, sizeof(out->key), out->wrapped, &n) < 0 || n != SEAL_WRAPPED_LEN)
        return crypto_fail("wrap a data key");
    memcpy(out->key_id, kek->id, sizeof(out->key_id));
    return 0;
}

int seal_unwrap(const struct format_key *kek, struct archive_seal *s, const char *name)
{
    uint8_t key[SEAL_WRAPPED_LEN];
    int n = 0;

    if (key_wrap(kek, 0, s->wrapped, SEAL_WRAPPED_LEN, key, &n) < 0 || n != FORMAT_KEY_LEN) {
        OPENSSL_cleanse(key, sizeof(key));
        vk_error(VK_ERR_CORRUPT,
                 "archive '%s' is corrupt: its data key does not unwrap with key '%s' (the "
                 "trailer was altered)",
                 name, kek->id);
        return -1;
    }
    memcpy(s->key, key, FORMAT_KEY_LEN);
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

void seal_frame_aad(uint8_t aad[16], uint64_t offset, uint64_t length)
{
    for (int i = 0; i < 8; i++) {
        aad[i] = (uint8_t)(offset >> (8 * i));
        aad[8 + i] = (uint8_t)(length >> (8 * i));
    }
}

static void nonce_make(uint8_t nonce[NONCE_LEN], const struct archive_seal *s, uint64_t seq)
{
    memcpy(nonce, s->prefix, SEAL_PREFIX_LEN);
    for (int i = 0; i < 8; i++)
        nonce[SEAL_PREFIX_LEN + i] = (uint8_t)(seq >> (8 * i));
}

static int gcm_init(EVP_CIPHER_CTX **ctx, const struct archive_seal *s, uint64_t seq, int enc,
                    const uint8_t *aad, size_t aadlen)
{
    uint8_t nonce[NONCE_LEN];
    int n = 0;

    if (!*ctx && !(*ctx = EVP_CIPHER_CTX_new()))
        return -1;
    nonce_make(nonce, s, seq);
    /* 12 bytes is GCM's default IV length. */
    if (!EVP_CipherInit_ex(*ctx, EVP_aes_256_gcm(), NULL, s->key, nonce, enc))
        return -1;
    if (aadlen && !EVP_CipherUpdate(*ctx, NULL, &n, aad, (int)aadlen))
        return -1;
    return 0;
}

int seal_encrypt(EVP_CIPHER_CTX **ctx, const struct archive_seal *s, uint64_t seq,
                 const uint8_t *aad, size_t aadlen, const void *in, size_t len, void *out)
{
    uint8_t *o = out;
    int n = 0, fin = 0;

    if (len > INT32_MAX || gcm_init(ctx, s, seq, 1, aad, aadlen) < 0 ||
        !EVP_CipherUpdate(*ctx, o, &n, in, (int)len) || !EVP_CipherFinal_ex(*ctx, o + n, &fin) ||
        (size_t)(n + fin) != len ||
        !EVP_CIPHER_CTX_ctrl(*ctx, EVP_CTRL_GCM_GET_TAG, ARCHIVE_SEAL_TAG_LEN, o + len))
        return crypto_fail("seal a frame with AES-256-GCM");
    return 0;
}

int seal_decrypt(EVP_CIPHER_CTX **ctx, const struct archive_seal *s, uint64_t seq,
                 const uint8_t *aad, size_t aadlen, const void *in, size_t len, void *out)
{
    const uint8_t *i = in;
    uint8_t tag[ARCHIVE_SEAL_TAG_LEN];
    size_t clen;
    int n = 0, fin = 0;

    if (len < ARCHIVE_SEAL_TAG_LEN)
        return 1;
    clen = len - ARCHIVE_SEAL_TAG_LEN;
    memcpy(tag, i + clen, sizeof(tag));
    if (clen > INT32_MAX || gcm_init(ctx, s, seq, 0, aad, aadlen) < 0 ||
        !EVP_CipherUpdate(*ctx, out, &n, i, (int)clen) ||
        !EVP_CIPHER_CTX_ctrl(*ctx, EVP_CTRL_GCM_SET_TAG, ARCHIVE_SEAL_TAG_LEN, tag))
        return crypto_fail("open a frame with AES-256-GCM");
    if (EVP_CipherFinal_ex(*ctx, (uint8_t *)out + n, &fin) <= 0)
        return 1;
    return 0;
}

int seal_manifest_mac(const struct format_key *kek, const void *buf, size_t len,
                      uint8_t out[ARCHIVE_SHA256_LEN])
{
    uint8_t mk[ARCHIVE_SHA256_LEN];
    unsigned int n = 0, m = 0;
    int ok;

    ok = HMAC(EVP_sha256(), kek->kek, FORMAT_KEY_LEN, (const uint8_t *)MANIFEST_MAC_LABEL,
              strlen(MANIFEST_MAC_LABEL), mk, &n) &&
         n == sizeof(mk) && HMAC(EVP_sha256(), mk, sizeof(mk), buf, len, out, &m) &&
         m == ARCHIVE_SHA256_LEN;
    OPENSSL_cleanse(mk, sizeof(mk));
    return ok ? 0 : crypto_fail("compute an HMAC-SHA256");
}
