/* virtkeep - storage volumes (see virt.h): a local file sent into a volume
 * with a sparse stream (virStorageVolUpload), and a volume read back the
 * same way (virStorageVolDownload), both hashed on the way (sha256, holes
 * counted as zeros) so that the caller can compare the two.  Works on any
 * libvirt URI: the bytes go through the connection, not through a shared
 * file system.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <openssl/evp.h>

#include "common/error.h"
#include "src/virt/virt.h"

static const char zeros[64 * 1024];

struct hashed {
    EVP_MD_CTX *md;
    uint64_t bytes;
};

static int hash_zeros(struct hashed *h, long long len)
{
    for (long long left = len; left > 0;) {
        size_t n = left < (long long)sizeof(zeros) ? (size_t)left : sizeof(zeros);
        if (EVP_DigestUpdate(h->md, zeros, n) != 1)
            return -1;
        left -= (long long)n;
    }
    h->bytes += (uint64_t)len;
    return 0;
}

/* ---------------------------------------------------------------- upload */

struct src_file {
    int fd;
    uint64_t size;
    struct hashed h;
};

static int src_read(virStreamPtr st, char *data, size_t nbytes, void *opaque)
{
    struct src_file *f = opaque;
    ssize_t n;

    (void)st;
    do
        n = read(f->fd, data, nbytes);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        if (EVP_DigestUpdate(f->h.md, data, (size_t)n) != 1)
            return -1;
        f->h.bytes += (uint64_t)n;
    }
    return (int)n;
}

/* Where we are: in data or in a hole, and for how long (libvirt wants 0
 * and 0 at the end of the file). */
static int src_hole(virStreamPtr st, int *in_data, long long *length, void *opaque)
{
    struct src_file *f = opaque;
    off_t cur = lseek(f->fd, 0, SEEK_CUR), data, hole;

    (void)st;
    if (cur < 0)
        return -1;
    if ((uint64_t)cur >= f->size) {
        *in_data = 0;
        *length = 0;
        return 0;
    }
    data = lseek(f->fd, cur, SEEK_DATA);
    if (data < 0 && errno != ENXIO)
        return -1;
    if (data < 0 || data > cur) {
        *in_data = 0;
        *length = (data < 0 ? (off_t)f->size : data) - cur;
    } else {
        hole = lseek(f->fd, cur, SEEK_HOLE);
        if (hole < 0)
            return -1;
        *in_data = 1;
        *length = hole - cur;
    }
    return lseek(f->fd, cur, SEEK_SET) < 0 ? -1 : 0;
}

static int src_skip(virStreamPtr st, long long length, void *opaque)
{
    struct src_file *f = opaque;

    (void)st;
    if (lseek(f->fd, length, SEEK_CUR) < 0)
        return -1;
    return hash_zeros(&f->h, length);
}

static int stream_send(struct virt_conn *c, virStorageVolPtr vol, struct src_file *f,
                       const char *what)
{
    virStreamPtr st = virStreamNew(c->conn, 0);
    int r = -1;

    if (!st) {
        virt_error_libvirt("cannot open a stream to '%s'", c->uri);
        return -1;
    }
    if (virStorageVolUpload(vol, st, 0, f->size, VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0 ||
        virStreamSparseSendAll(st, src_read, src_hole, src_skip, f) < 0 || virStreamFinish(st) < 0)
        virt_error_libvirt("cannot upload %s", what);
    else
        r = 0;
    if (r < 0)
        virStreamAbort(st);
    virStreamFree(st);
    return r;
}

int virt_storage_vol_upload(struct virt_conn *c, virStorageVolPtr vol, int fd, uint64_t size,
                            const char *what, uint8_t sha256[VIRT_SHA256_LEN])
{
    struct src_file f = {.fd = fd, .size = size};
    unsigned int len = 0;
    int r = -1;

    f.h.md = EVP_MD_CTX_new();
    if (!f.h.md || EVP_DigestInit_ex(f.h.md, EVP_sha256(), NULL) != 1)
        vk_error(VK_ERR_INTERNAL, "cannot compute sha256");
    else if (stream_send(c, vol, &f, what) == 0) {
        if (f.h.bytes != size || EVP_DigestFinal_ex(f.h.md, sha256, &len) != 1 ||
            len != VIRT_SHA256_LEN)
            vk_error(VK_ERR_IO, "the upload of %s sent %" PRIu64 " of %" PRIu64 " bytes.", what,
                     f.h.bytes, size);
        else
            r = 0;
    }
    EVP_MD_CTX_free(f.h.md);
    return r;
}

/* ---------------------------------------------------------------- download */

static int sink_data(virStreamPtr st, const char *data, size_t nbytes, void *opaque)
{
    struct hashed *h = opaque;

    (void)st;
    if (EVP_DigestUpdate(h->md, data, nbytes) != 1)
        return -1;
    h->bytes += nbytes;
    return (int)nbytes;
}

static int sink_hole(virStreamPtr st, long long length, void *opaque)
{
    (void)st;
    return hash_zeros(opaque, length);
}

int virt_storage_vol_sha256(struct virt_conn *c, virStorageVolPtr vol, uint64_t size,
                            const char *what, uint8_t sha256[VIRT_SHA256_LEN], uint64_t *bytes)
{
    virStreamPtr st = virStreamNew(c->conn, 0);
    struct hashed h = {.md = EVP_MD_CTX_new()};
    unsigned int len = 0;
    int r = -1;

    if (!st || !h.md || EVP_DigestInit_ex(h.md, EVP_sha256(), NULL) != 1)
        vk_error(VK_ERR_INTERNAL, "cannot set up the read-back of %s.", what);
    else if (virStorageVolDownload(vol, st, 0, size, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0 ||
             virStreamSparseRecvAll(st, sink_data, sink_hole, &h) < 0 || virStreamFinish(st) < 0)
        virt_error_libvirt("cannot read %s back", what);
    else if (EVP_DigestFinal_ex(h.md, sha256, &len) != 1 || len != VIRT_SHA256_LEN)
        vk_error(VK_ERR_INTERNAL, "cannot compute the sha256 of %s.", what);
    else
        r = 0;
    *bytes = h.bytes;
    if (st && r < 0)
        virStreamAbort(st);
    if (st)
        virStreamFree(st);
    EVP_MD_CTX_free(h.md);
    return r;
}
