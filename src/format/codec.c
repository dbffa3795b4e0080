/* virtkeep - the codec helpers of the archive format: zstd frames, sha256
 * (OpenSSL libcrypto) and zero detection (see format.h).  The compression
 * pool and the restore decoders call them from many threads: none keeps
 * state beyond the compressor it is given.
 */
#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "common/error.h"
#include "common/util.h"
#include "src/format/format.h"

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
