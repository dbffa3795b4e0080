/* virtkeep - smoke test: read a disk through a libvirt pull-mode backup export.
 *
 * Usage: smoke-nbd SOCKET EXPORT PATTERN OFFSET LEN ZERO_OFFSET
 *
 * Connects with libnbd to the unix SOCKET, export EXPORT, and checks that
 * [OFFSET, OFFSET+LEN) reads as the byte PATTERN, that LEN bytes at
 * ZERO_OFFSET (never written) read as zeros, and that base:allocation block
 * status reports the written region as data and the unwritten one as zero.
 * test-smoke-libvirt.sh sets the domain and the backup up.
 */
#include <config.h>

#include <inttypes.h>
#include <libnbd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"

/* QEMU serves at most 32 MiB per read request. */
#define MAX_READ (32u << 20)

struct extent_check {
    uint64_t data_off, data_len; /* must be reported as data */
    uint64_t zero_off, zero_len; /* must be reported as zero */
    uint64_t data_seen, zero_seen, covered;
};

static int check_extents(void *opaque, const char *metacontext, uint64_t offset, uint32_t *entries,
                         size_t nr_entries, int *error)
{
    struct extent_check *c = opaque;
    size_t i;

    (void)error;
    if (strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
        return 0;
    for (i = 0; i + 1 < nr_entries; i += 2) {
        uint64_t len = entries[i], end = offset + len, lo, hi;
        uint32_t flags = entries[i + 1];

        lo = offset > c->data_off ? offset : c->data_off;
        hi = end < c->data_off + c->data_len ? end : c->data_off + c->data_len;
        if (lo < hi && (flags & (LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO)) == 0)
            c->data_seen += hi - lo;
        lo = offset > c->zero_off ? offset : c->zero_off;
        hi = end < c->zero_off + c->zero_len ? end : c->zero_off + c->zero_len;
        if (lo < hi && (flags & LIBNBD_STATE_ZERO) != 0)
            c->zero_seen += hi - lo;
        offset = end;
    }
    c->covered = offset;
    return 0;
}

/* Read [off, off+len) and check that every byte equals want. */
static int check_region(struct nbd_handle *nbd, uint64_t off, uint64_t len, unsigned char want)
{
    CLEANUP_FREE unsigned char *buf = vk_malloc(MAX_READ);
    uint64_t done = 0;
    size_t i;

    if (buf == NULL)
        return -1;
    while (done < len) {
        size_t n = len - done < MAX_READ ? (size_t)(len - done) : MAX_READ;

        if (nbd_pread(nbd, buf, n, off + done, 0) == -1) {
            fprintf(stderr, "smoke-nbd: cannot read %zu bytes at %" PRIu64 ": %s\n", n, off + done,
                    nbd_get_error());
            return -1;
        }
        for (i = 0; i < n; i++) {
            if (buf[i] != want) {
                fprintf(stderr, "smoke-nbd: byte at %" PRIu64 " is 0x%02x, expected 0x%02x\n",
                        off + done + i, buf[i], want);
                return -1;
            }
        }
        done += n;
    }
    return 0;
}

static int check_block_status(struct nbd_handle *nbd, struct extent_check *c, uint64_t size)
{
    uint64_t off = 0;

    if (nbd_can_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) != 1) {
        fprintf(stderr, "smoke-nbd: the export does not offer base:allocation\n");
        return -1;
    }
    /* The server may answer for less than asked: loop to the end. */
    while (off < size) {
        uint64_t len = size - off < (1ull << 30) ? size - off : (1ull << 30);

        c->covered = off;
        if (nbd_block_status(nbd, len, off,
                             (nbd_extent_callback){.callback = check_extents, .user_data = c},
                             0) == -1) {
            fprintf(stderr, "smoke-nbd: block status at %" PRIu64 " failed: %s\n", off,
                    nbd_get_error());
            return -1;
        }
        if (c->covered <= off) {
            fprintf(stderr, "smoke-nbd: block status at %" PRIu64 " made no progress\n", off);
            return -1;
        }
        off = c->covered;
    }
    if (c->data_seen != c->data_len) {
        fprintf(stderr, "smoke-nbd: %" PRIu64 " of %" PRIu64 " written bytes reported as data\n",
                c->data_seen, c->data_len);
        return -1;
    }
    if (c->zero_seen != c->zero_len) {
        fprintf(stderr, "smoke-nbd: %" PRIu64 " of %" PRIu64 " unwritten bytes reported as zero\n",
                c->zero_seen, c->zero_len);
        return -1;
    }
    return 0;
}

static int parse_u64(const char *s, const char *what, uint64_t *out)
{
    unsigned long long v;

    if (vk_parse_uint(s, UINT64_MAX, &v) == -1) {
        fprintf(stderr, "smoke-nbd: %s '%s' is not a number\n", what, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int run(struct nbd_handle *nbd, char **argv)
{
    struct extent_check c = {0};
    uint64_t pattern;
    int64_t size;

    if (parse_u64(argv[3], "pattern", &pattern) == -1 || pattern > 255 ||
        parse_u64(argv[4], "offset", &c.data_off) == -1 ||
        parse_u64(argv[5], "length", &c.data_len) == -1 ||
        parse_u64(argv[6], "zero offset", &c.zero_off) == -1)
        return -1;
    c.zero_len = c.data_len;
    if (nbd_set_export_name(nbd, argv[2]) == -1 ||
        nbd_add_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
        nbd_connect_unix(nbd, argv[1]) == -1) {
        fprintf(stderr, "smoke-nbd: cannot connect to export '%s' on '%s': %s\n", argv[2], argv[1],
                nbd_get_error());
        return -1;
    }
    size = nbd_get_size(nbd);
    if (size < 0 || (uint64_t)size < c.data_off + c.data_len ||
        (uint64_t)size < c.zero_off + c.zero_len) {
        fprintf(stderr, "smoke-nbd: export '%s' has size %" PRId64 ", too small\n", argv[2], size);
        return -1;
    }
    if (check_region(nbd, c.data_off, c.data_len, (unsigned char)pattern) == -1 ||
        check_region(nbd, c.zero_off, c.zero_len, 0) == -1 ||
        check_block_status(nbd, &c, (uint64_t)size) == -1)
        return -1;
    printf("smoke-nbd: export '%s' (%" PRId64 " bytes): pattern 0x%02x at %" PRIu64 "+%" PRIu64
           ", zeros at %" PRIu64 ", block status ok\n",
           argv[2], size, (unsigned)pattern, c.data_off, c.data_len, c.zero_off);
    return 0;
}

int main(int argc, char **argv)
{
    struct nbd_handle *nbd;
    int r;

    if (argc != 7) {
        fprintf(stderr, "usage: smoke-nbd SOCKET EXPORT PATTERN OFFSET LEN ZERO_OFFSET\n");
        return 2;
    }
    nbd = nbd_create();
    if (nbd == NULL) {
        fprintf(stderr, "smoke-nbd: %s\n", nbd_get_error());
        return 1;
    }
    r = run(nbd, argv);
    if (r == 0 && nbd_shutdown(nbd, 0) == -1) {
        fprintf(stderr, "smoke-nbd: shutdown failed: %s\n", nbd_get_error());
        r = -1;
    }
    nbd_close(nbd);
    return r == 0 ? 0 : 1;
}
