/* virtkeep - reading a disk through NBD: the connection and its extent list.
 *
 * See nbdread.h for what the extent list holds and why.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/datapath/datapath.h"

/* QEMU serves at most 32 MiB per read request. */
#define NBDREAD_MAX_READ (32u << 20)
/* Block status carries a 32-bit length: ask for at most 4 GiB - 1 MiB per
 * call (QEMU may answer less; the loop goes on where the answer ended). */
#define BLOCK_STATUS_MAX ((UINT64_C(1) << 32) - (UINT64_C(1) << 20))
/* Dirty-bitmap contexts: bit 0 = dirty. */
#define NBDREAD_STATE_DIRTY 1u

struct nbdread {
    struct nbd_handle *nbd;
    char *desc;   /* "export 'vda' on socket '/x'" */
    char *bitmap; /* dirty-bitmap context, or NULL */
    uint64_t size;
    uint32_t max_read;
    bool abandoned;
};

static int check_context(struct nbdread *r, const char *ctx)
{
    int ok = nbd_can_meta_context(r->nbd, ctx);

    if (ok == -1) {
        vk_error(VK_ERR_NETWORK, "cannot query the meta contexts of %s: %s", r->desc,
                 nbd_get_error());
        return -1;
    }
    if (ok == 0) {
        vk_error(VK_ERR_UNSUPPORTED, "the NBD server of %s does not offer the meta context '%s'",
                 r->desc, ctx);
        return -1;
    }
    return 0;
}

static int connect_handle(struct nbdread *r, const char *socket_path, const char *export_name)
{
    if (nbd_set_export_name(r->nbd, export_name) == -1 ||
        nbd_add_meta_context(r->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
        (r->bitmap && nbd_add_meta_context(r->nbd, r->bitmap) == -1) ||
        /* The pipeline reads into its own buffers: no need to clear them first. */
        nbd_set_pread_initialize(r->nbd, false) == -1) {
        vk_error(VK_ERR_INTERNAL, "cannot set up the NBD handle for %s: %s", r->desc,
                 nbd_get_error());
        return -1;
    }
    if (nbd_connect_unix(r->nbd, socket_path) == -1) {
        vk_error(VK_ERR_NETWORK, "cannot connect to %s: %s", r->desc, nbd_get_error());
        return -1;
    }
    return 0;
}

static int query_sizes(struct nbdread *r)
{
    int64_t size = nbd_get_size(r->nbd);
    int64_t max = nbd_get_block_size(r->nbd, LIBNBD_SIZE_MAXIMUM);

    if (size < 0) {
        vk_error(VK_ERR_NETWORK, "cannot get the size of %s: %s", r->desc, nbd_get_error());
        return -1;
    }
    r->size = (uint64_t)size;
    r->max_read = NBDREAD_MAX_READ;
    if (max > 0 && (uint64_t)max < r->max_read)
        r->max_read = (uint32_t)max;
    return 0;
}

struct nbdread *nbdread_open(const char *socket_path, const char *export_name,
                             const char *bitmap_context, unsigned int flags)
{
    struct nbdread *r;

    (void)flags;
    r = vk_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->desc = vk_asprintf("export '%s' on socket '%s'", export_name, socket_path);
    r->bitmap = bitmap_context ? vk_strdup(bitmap_context) : NULL;
    if (!r->desc || (bitmap_context && !r->bitmap))
        goto fail;
    r->nbd = nbd_create();
    if (!r->nbd) {
        vk_error(VK_ERR_INTERNAL, "cannot create an NBD handle for %s: %s", r->desc,
                 nbd_get_error());
        goto fail;
    }
    if (connect_handle(r, socket_path, export_name) < 0 ||
        check_context(r, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
        (r->bitmap && check_context(r, r->bitmap) < 0) || query_sizes(r) < 0)
        goto fail;
    vk_debug("connected to %s: %" PRIu64 " bytes, bitmap %s", r->desc, r->size,
             r->bitmap ? r->bitmap : "none");
    return r;

fail:
    nbdread_close(r);
    return NULL;
}

void nbdread_close(struct nbdread *r)
{
    if (!r)
        return;
    if (r->nbd)
        nbd_close(r->nbd);
    free(r->desc);
    free(r->bitmap);
    free(r);
}

uint64_t nbdread_size(const struct nbdread *r)
{
    return r->size;
}

const char *nbdread_describe(const struct nbdread *r)
{
    return r->desc;
}

struct nbd_handle *nbdread_handle(struct nbdread *r)
{
    return r->abandoned ? NULL : r->nbd;
}

uint32_t nbdread_max_read(const struct nbdread *r)
{
    return r->max_read;
}

void nbdread_abandon(struct nbdread *r)
{
    r->abandoned = true;
}

/* ------------------------------------------------------------ extent list */

/* One block-status run as the server sent it. */
struct bs_run {
    uint64_t length;
    uint32_t flags;
};

struct bs_runs {
    struct bs_run *v;
    size_t n, cap;
    uint64_t total;
};

/* One block-status answer: the runs of each context. */
struct bs_answer {
    const char *bitmap;
    struct bs_runs alloc, dirty;
};

struct ext_list {
    struct nbdread_extent *v;
    size_t n, cap;
    uint64_t grid;
};

static int runs_push(struct bs_runs *runs, uint64_t length, uint32_t flags)
{
    if (runs->n == runs->cap) {
        size_t cap = runs->cap ? 2 * runs->cap : 64;
        struct bs_run *v = vk_realloc_array(runs->v, cap, sizeof(*v));

        if (!v)
            return -1;
        runs->v = v;
        runs->cap = cap;
    }
    runs->v[runs->n].length = length;
    runs->v[runs->n].flags = flags;
    runs->n++;
    runs->total += length;
    return 0;
}

static int extent_cb(void *opaque, const char *context, uint64_t offset, uint32_t *entries,
                     size_t nr_entries, int *error)
{
    struct bs_answer *ans = opaque;
    struct bs_runs *runs;

    (void)offset;
    if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0)
        runs = &ans->alloc;
    else if (ans->bitmap && strcmp(context, ans->bitmap) == 0)
        runs = &ans->dirty;
    else
        return 0;
    for (size_t i = 0; i + 1 < nr_entries; i += 2) {
        if (entries[i] != 0 && runs_push(runs, entries[i], entries[i + 1]) < 0) {
            *error = ENOMEM;
            return -1;
        }
    }
    return 0;
}

static struct nbdread_extent *ext_last(struct ext_list *l)
{
    return l->n ? &l->v[l->n - 1] : NULL;
}

static int ext_push(struct ext_list *l, uint64_t offset, uint64_t length, enum nbdread_kind kind)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct nbdread_extent *v = vk_realloc_array(l->v, cap, sizeof(*v));

        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].offset = offset;
    l->v[l->n].length = length;
    l->v[l->n].kind = kind;
    l->n++;
    return 0;
}

/* Append [offset, offset+length) of KIND: merge with the last extent when
 * contiguous and of the same kind, but never let a DATA extent cross a
 * multiple of the grid. */
static int ext_append(struct ext_list *l, uint64_t offset, uint64_t length, enum nbdread_kind kind)
{
    while (length > 0) {
        struct nbdread_extent *last = ext_last(l);
        uint64_t piece = length;

        if (kind == NBDREAD_DATA) {
            uint64_t cell_end = (offset / l->grid + 1) * l->grid;

            if (cell_end - offset < piece)
                piece = cell_end - offset;
        }
        if (last && last->kind == kind && last->offset + last->length == offset &&
            (kind == NBDREAD_ZERO || last->offset / l->grid == offset / l->grid))
            last->length += piece;
        else if (ext_push(l, offset, piece, kind) < 0)
            return -1;
        offset += piece;
        length -= piece;
    }
    return 0;
}

/* Is a region with these flags recorded, and as what?  Returns -1 to omit. */
static int classify(bool incremental, uint32_t alloc_flags, uint32_t dirty_flags)
{
    if (incremental && !(dirty_flags & NBDREAD_STATE_DIRTY))
        return -1;
    if (!(alloc_flags & LIBNBD_STATE_ZERO))
        return NBDREAD_DATA;
    if (!incremental && (alloc_flags & LIBNBD_STATE_HOLE))
        return -1;
    return NBDREAD_ZERO;
}

/* Walk one answer from OFFSET up to END, intersecting both contexts. */
static int answer_walk(struct ext_list *l, const struct bs_answer *ans, uint64_t offset,
                       uint64_t end)
{
    size_t i = 0, j = 0;
    uint64_t a_end = offset + ans->alloc.v[0].length;
    uint64_t d_end = ans->bitmap ? offset + ans->dirty.v[0].length : end;

    while (offset < end) {
        uint64_t piece_end = a_end < d_end ? a_end : d_end;
        int kind;

        if (piece_end > end)
            piece_end = end;
        kind = classify(ans->bitmap != NULL, ans->alloc.v[i].flags,
                        ans->bitmap ? ans->dirty.v[j].flags : 0);
        if (kind >= 0 && ext_append(l, offset, piece_end - offset, kind) < 0)
            return -1;
        offset = piece_end;
        if (offset == a_end && ++i < ans->alloc.n)
            a_end += ans->alloc.v[i].length;
        if (ans->bitmap && offset == d_end && ++j < ans->dirty.n)
            d_end += ans->dirty.v[j].length;
    }
    return 0;
}

/* One block-status call at OFFSET; returns where its answer ends. */
static int64_t block_status_step(struct nbdread *r, struct ext_list *l, struct bs_answer *ans,
                                 uint64_t offset)
{
    uint64_t count = r->size - offset, end;

    if (count > BLOCK_STATUS_MAX)
        count = BLOCK_STATUS_MAX;
    ans->alloc.n = ans->dirty.n = 0;
    ans->alloc.total = ans->dirty.total = 0;
    if (nbd_block_status(r->nbd, count, offset,
                         (nbd_extent_callback){.callback = extent_cb, .user_data = ans}, 0) == -1) {
        vk_error(VK_ERR_NETWORK, "cannot get the block status of %s at offset %" PRIu64 ": %s",
                 r->desc, offset, nbd_get_error());
        return -1;
    }
    end = offset + ans->alloc.total;
    if (ans->bitmap && offset + ans->dirty.total < end)
        end = offset + ans->dirty.total;
    if (end > r->size)
        end = r->size;
    if (ans->alloc.n == 0 || (ans->bitmap && ans->dirty.n == 0) || end <= offset) {
        vk_error(VK_ERR_NETWORK,
                 "the NBD server of %s answered block status at offset %" PRIu64
                 " without an extent for every context",
                 r->desc, offset);
        return -1;
    }
    if (answer_walk(l, ans, offset, end) < 0)
        return -1;
    return (int64_t)end;
}

int nbdread_extents(struct nbdread *r, uint64_t chunk_size, unsigned int flags,
                    struct nbdread_extent **out, size_t *nr)
{
    struct ext_list l = {.grid = chunk_size ? chunk_size : ARCHIVE_CHUNK_SIZE_DEFAULT};
    struct bs_answer ans = {.bitmap = r->bitmap};
    uint64_t offset = 0;
    unsigned int calls = 0;
    int ret = -1;

    (void)flags;
    if (r->abandoned) {
        vk_error(VK_ERR_INTERNAL, "the NBD connection to %s was abandoned after a failed read",
                 r->desc);
        return -1;
    }
    while (offset < r->size) {
        int64_t end = block_status_step(r, &l, &ans, offset);

        if (end < 0)
            goto out;
        offset = (uint64_t)end;
        calls++;
    }
    vk_debug("%s: %zu extents from %u block status calls", r->desc, l.n, calls);
    *out = VK_STEAL(l.v);
    *nr = l.n;
    ret = 0;
out:
    free(l.v);
    free(ans.alloc.v);
    free(ans.dirty.v);
    return ret;
}
