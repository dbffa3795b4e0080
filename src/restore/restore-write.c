/* virtkeep - the data path of a restore (restore_writer_*).
 *
 * Three kinds of work overlap: reading each needed frame once from its
 * archive (the calling thread, so that a transport is used from one thread
 * only), decoding and verifying it (a pool of threads, one per online CPU,
 * each with its own zstd context), and writing its pieces through qemu-nbd
 * (the calling thread again, several requests in flight).  The calling
 * thread blocks on neither alone: it polls the NBD socket together with an
 * eventfd that the workers signal.  A ring of slots (a frame buffer and a
 * raw buffer each) bounds the memory.
 *
 * ZERO pieces are not written at all: the image is freshly created, every
 * byte of the merged map is written at most once, and an unallocated qcow2
 * cluster without a backing file reads as zeros (and qemu-img map reports it
 * as zero), which is what a zero cluster would give, without the metadata.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/restore/restore-int.h"

#define RING_BYTES (64u * 1024 * 1024) /* raw chunk buffers, at most */
#define MAX_SLOTS 16
#define MAX_WORKERS 16
#define POLL_MS 200 /* how often a quiet loop looks at the cancel flag */

enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_DECODING, SLOT_DECODED, SLOT_WRITING };

struct slot {
    enum slot_state state; /* under the lock */
    struct reader_archive *a;
    const struct archive_extent *e;
    size_t first, end; /* its pieces: order[first .. end) */
    uint8_t *frame;
    size_t frame_cap;
    uint8_t *raw;
    unsigned int refs;       /* write requests still using raw */
    enum vk_error_code code; /* of a failed decode, 0 if none */
    char *error;
};

struct worker {
    struct restore_writer *w;
    struct archive_decoder *dec;
    pthread_t thread;
    bool started;
};

struct restore_writer {
    const struct reader_map *m;
    const struct reader_layer *layers;
    size_t *order, nr_order;
    struct slot *slots;
    size_t nr_slots;
    struct worker workers[MAX_WORKERS];
    size_t nr_workers;
    pthread_mutex_t lock;
    pthread_cond_t work; /* a slot was queued, or stop */
    bool stop;
    int efd; /* a worker finished a slot */
};

/* ---------------------------------------------------------------- workers */

static struct slot *slot_take(struct restore_writer *w)
{
    for (size_t i = 0; i < w->nr_slots; i++) {
        if (w->slots[i].state == SLOT_QUEUED) {
            w->slots[i].state = SLOT_DECODING;
            return &w->slots[i];
        }
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct restore_writer *w = wk->w;
    const uint64_t one = 1;

    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct slot *s = slot_take(w);
        if (!s) {
            pthread_cond_wait(&w->work, &w->lock);
            continue;
        }
        pthread_mutex_unlock(&w->lock);
        int r = archive_decoder_decode_frame(wk->dec, s->a->reader, s->e, s->frame, s->raw);
        pthread_mutex_lock(&w->lock);
        if (r < 0) {
            const char *msg = vk_error_message();
            s->code = vk_error_code() ? vk_error_code() : VK_ERR_INTERNAL;
            s->error = vk_strdup(msg ? msg : "the chunk cannot be decoded");
        }
        s->state = SLOT_DECODED;
        ssize_t n = write(w->efd, &one, sizeof one); /* cannot fail short of a bug */
        (void)n;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Workers take no signals: the calling thread sees ^C and stops them. */
static int workers_start(struct restore_writer *w)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (size_t)cpus;
    sigset_t all, old;
    int r = 0;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 0; i < n && r == 0; i++) {
        struct worker *wk = &w->workers[i];
        wk->w = w;
        if (!(wk->dec = archive_decoder_new())) {
            r = -1;
            break;
        }
        w->nr_workers++;
        r = pthread_create(&wk->thread, NULL, worker_main, wk);
        if (r != 0)
            vk_error_errno(r, "cannot start a decompression thread for the restore");
        wk->started = r == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r == 0 ? 0 : -1;
}

static void workers_stop(struct restore_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < w->nr_workers; i++) {
        if (w->workers[i].started)
            pthread_join(w->workers[i].thread, NULL);
        archive_decoder_free(w->workers[i].dec);
    }
    w->nr_workers = 0;
}

/* ---------------------------------------------------------------- setup */

/* The largest chunk the map needs. */
static uint64_t chunk_max(const struct reader_map *m, const struct reader_layer *layers)
{
    uint64_t max = 0;

    for (size_t i = 0; i < m->nr; i++) {
        const struct reader_piece *p = &m->pieces[i];
        if (p->kind == READER_PIECE_DATA && layers[p->layer].extents[p->extent].length > max)
            max = layers[p->layer].extents[p->extent].length;
    }
    return max;
}

static int slots_new(struct restore_writer *w)
{
    uint64_t size = chunk_max(w->m, w->layers);
    /* RING_BYTES of raw buffers; frames (allocated as they come) add at
     * most as much again.  Measured on the benchmark disk, 16 slots of
     * 4 MiB restore ~10% faster than 7 (the decoders rarely wait). */
    size_t n = size ? RING_BYTES / size : 1;

    n = n < 2 ? 2 : n > MAX_SLOTS ? MAX_SLOTS : n;
    w->slots = vk_calloc(n, sizeof *w->slots);
    if (!w->slots)
        return -1;
    w->nr_slots = n;
    for (size_t i = 0; size && i < n; i++)
        if (!(w->slots[i].raw = vk_malloc(size)))
            return -1;
    return 0;
}

void restore_writer_free(struct restore_writer *w)
{
    if (!w)
        return;
    workers_stop(w);
    for (size_t i = 0; w->slots && i < w->nr_slots; i++) {
        free(w->slots[i].frame);
        free(w->slots[i].raw);
        free(w->slots[i].error);
    }
    free(w->slots);
    free(w->order);
    if (w->efd >= 0)
        close(w->efd);
    pthread_cond_destroy(&w->work);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

struct restore_writer *restore_writer_new(const struct reader_map *m,
                                          const struct reader_layer *layers)
{
    struct restore_writer *w = vk_calloc(1, sizeof *w);

    if (!w)
        return NULL;
    w->m = m;
    w->layers = layers;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work, NULL);
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->efd < 0) {
        vk_error_errno(errno, "cannot create an eventfd for the restore");
        goto fail;
    }
    if (reader_map_read_order(m, layers, &w->order, &w->nr_order) < 0 || slots_new(w) < 0 ||
        workers_start(w) < 0)
        goto fail;
    return w;
fail:
    restore_writer_free(w);
    return NULL;
}

/* ---------------------------------------------------------------- the loop */

static enum slot_state state_get(struct restore_writer *w, struct slot *s)
{
    pthread_mutex_lock(&w->lock);
    enum slot_state st = s->state;
    pthread_mutex_unlock(&w->lock);
    return st;
}

static void state_set(struct restore_writer *w, struct slot *s, enum slot_state st)
{
    pthread_mutex_lock(&w->lock);
    s->state = st;
    if (st == SLOT_QUEUED)
        pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->lock);
}

static bool same_chunk(const struct reader_piece *p, const struct reader_piece *q)
{
    return p->layer == q->layer && p->extent == q->extent;
}

/* Read the next chunk's frame into S and queue it for a worker. */
static int slot_fill(struct restore_writer *w, struct reader_archive **a, struct slot *s,
                     size_t *next)
{
    const struct reader_piece *p = &w->m->pieces[w->order[*next]];
    const struct archive_extent *e = &w->layers[p->layer].extents[p->extent];

    s->a = a[p->layer];
    s->e = e;
    s->first = *next;
    while (*next < w->nr_order && same_chunk(&w->m->pieces[w->order[*next]], p))
        (*next)++;
    s->end = *next;
    if (e->size > s->frame_cap) {
        free(s->frame);
        s->frame_cap = 0;
        if (!(s->frame = vk_malloc(e->size)))
            return -1;
        s->frame_cap = e->size;
    }
    if (reader_archive_read_frame(s->a, e, s->frame) < 0)
        return -1;
    state_set(w, s, SLOT_QUEUED);
    return 0;
}

/* Queue the writes of a decoded slot's pieces. */
static int slot_write(struct restore_writer *w, struct restore_image *img, struct slot *s,
                      struct restore_disk_result *res)
{
    if (s->code) {
        vk_error(s->code, "%s", s->error ? s->error : "the chunk cannot be decoded");
        vk_error_prefix("backup '%s', disk '%s', chunk at offset %" PRIu64, s->a->backup_id,
                        s->a->disk, s->e->offset);
        return -1;
    }
    res->nr_chunks++;
    res->frame_bytes += s->e->size;
    res->raw_bytes += s->e->length;
    state_set(w, s, SLOT_WRITING);
    for (size_t i = s->first; i < s->end; i++) {
        const struct reader_piece *q = &w->m->pieces[w->order[i]];
        if (restore_image_write(img, s->raw + q->extent_offset, q->length, q->offset, &s->refs) < 0)
            return -1;
        res->bytes_written += q->length;
    }
    return 0;
}

/* One pass over the ring: retire written slots, write decoded ones, fill
 * free ones.  Returns how many slots moved on, and *BUSY whether any is
 * still in use. */
static int ring_step(struct restore_writer *w, struct restore_image *img, struct reader_archive **a,
                     size_t *next, struct restore_disk_result *res, bool *busy)
{
    int moved = 0;

    *busy = false;
    for (size_t i = 0; i < w->nr_slots; i++) {
        struct slot *s = &w->slots[i];
        enum slot_state st = state_get(w, s);

        if (st == SLOT_WRITING && s->refs == 0) {
            state_set(w, s, st = SLOT_FREE);
            moved++;
        }
        if (st == SLOT_DECODED) {
            if (slot_write(w, img, s, res) < 0)
                return -1;
            st = SLOT_WRITING;
            moved++;
        }
        if (st == SLOT_FREE && *next < w->nr_order) {
            if (slot_fill(w, a, s, next) < 0)
                return -1;
            st = SLOT_QUEUED;
            moved++;
        }
        *busy = *busy || st != SLOT_FREE;
    }
    return moved;
}

static int interrupted(const struct restore_options *o, const char *disk)
{
    vk_error(VK_ERR_INTERRUPTED, "the restore of disk '%s' of domain '%s' was interrupted", disk,
             o->domain);
    return -1;
}

int restore_writer_run(struct restore_writer *w, struct restore_image *img,
                       struct reader_archive **a, const struct restore_options *o,
                       struct restore_disk_result *res)
{
    size_t next = 0;
    bool busy;

    res->zero_bytes = w->m->zero_bytes;
    for (;;) {
        uint64_t count;
        int moved, r;

        if (o->cancel && *o->cancel)
            return interrupted(o, res->target);
        if ((moved = ring_step(w, img, a, &next, res, &busy)) < 0)
            return -1;
        if (!busy && next == w->nr_order)
            break;
        /* After progress, only push the connection along; otherwise wait
         * for a reply, room on the socket or a decoded chunk. */
        r = restore_image_poll(img, w->efd, moved ? 0 : POLL_MS);
        if (r < 0)
            return -1;
        if (r == 1 && read(w->efd, &count, sizeof count) < 0 && errno != EAGAIN) {
            vk_error_errno(errno, "cannot read the eventfd of the restore");
            return -1;
        }
    }
    vk_debug("disk '%s': %zu chunks decoded by %zu threads through %zu buffers", res->target,
             res->nr_chunks, w->nr_workers, w->nr_slots);
    return 0;
}
