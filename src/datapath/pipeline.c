/* virtkeep - the data path of a backup: NBD reads, parallel compression,
 * results in offset order.  See pipeline.h for the shape.
 *
 * Chunk number K (counting DATA chunks only) always lives in slot K % nslots.
 * The reader fills slot K only once it is FREE, the caller's thread takes
 * results strictly in K order and frees the slot, so the ring keeps the
 * order and bounds the memory at once.  Workers take read slots in the
 * order the reads complete.
 *
 * Slot life: FREE -(reader issues reads)-> READING -(last read completes,
 * queued for the workers)-> READ -(worker: zero test, or sha256 + zstd)->
 * DONE -(caller: callback)-> FREE.  p->lock guards the states, the queue and
 * the stop flag; the reads themselves and their completion callbacks run on
 * the reader thread only.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/datapath/datapath.h"

#define DEFAULT_INFLIGHT 4
#define MAX_THREADS 256
#define MAX_SLOTS 65536               /* bounds the ring whatever ring_bytes says */
#define POLL_MS 100                   /* how often waits look at the cancel flag */
#define DRAIN_NS (10ull * 1000000000) /* how long to wait for reads left in flight */
#define DEFAULT_PROGRESS_MS 250

enum slot_state { SLOT_FREE, SLOT_READING, SLOT_READ, SLOT_DONE };

struct pipeline;

struct slot {
    struct pipeline *p;
    uint8_t *raw, *zst;
    uint64_t offset, length;
    enum slot_state state;
    unsigned int pending; /* reads in flight, plus one while issuing (reader only) */
    int read_errno;       /* first failed read (reader only) */
    bool zero;
    size_t zstlen;
    uint8_t sha256[ARCHIVE_SHA256_LEN];
};

struct worker {
    struct pipeline *p;
    struct archive_compressor *c;
    pthread_t tid;
    bool started;
};

/* Walks the extent list as a sequence of items: a DATA extent cut on the
 * grid, a ZERO extent whole. */
struct chunk_iter {
    const struct nbdread_extent *v;
    size_t n, i;
    uint64_t pos, grid;
};

struct pipeline {
    struct nbdread *r;
    struct nbd_handle *nbd;
    const struct nbdread_extent *extents;
    size_t nr;
    uint64_t grid, bufsize, ring_bytes;
    uint32_t max_read;
    unsigned int nthreads, inflight, nslots;
    int worker_nice;
    struct slot *slots;
    struct worker *workers;
    const volatile sig_atomic_t *cancel;
    int wakefd; /* eventfd: wakes the reader when a slot is freed or on stop */

    pthread_mutex_t lock;
    pthread_cond_t work_cond; /* workers: a slot is READ, or stop */
    pthread_cond_t done_cond; /* caller: a slot is DONE, or stop */
    unsigned int *queue;      /* READ slots waiting for a worker (ring of nslots) */
    size_t qhead, qlen;
    bool stop;
    enum vk_error_code err_code; /* first error of any thread */
    char *err_msg;
    uint64_t zero_chunks;
    uint64_t worker_idle_ns;

    /* Reader thread only. */
    unsigned int reading; /* slots in READING */
    uint64_t read_bytes;
    bool abandoned;
};

/* ------------------------------------------------------------ iteration */

static bool iter_next(struct chunk_iter *it, uint64_t *off, uint64_t *len, enum nbdread_kind *kind)
{
    const struct nbdread_extent *e;
    uint64_t end;

    while (it->i < it->n && it->v[it->i].length == 0)
        it->i++;
    if (it->i == it->n)
        return false;
    e = &it->v[it->i];
    if (it->pos < e->offset)
        it->pos = e->offset;
    end = e->offset + e->length;
    if (e->kind == NBDREAD_DATA && (it->pos / it->grid + 1) * it->grid < end)
        end = (it->pos / it->grid + 1) * it->grid;
    *off = it->pos;
    *len = end - it->pos;
    *kind = e->kind;
    it->pos = end;
    if (end == e->offset + e->length)
        it->i++;
    return true;
}

static void iter_init(struct chunk_iter *it, const struct pipeline *p)
{
    *it = (struct chunk_iter){.v = p->extents, .n = p->nr, .grid = p->grid};
}

/* Only DATA chunks go through slots. */
static bool iter_next_data(struct chunk_iter *it, uint64_t *off, uint64_t *len)
{
    enum nbdread_kind kind;

    while (iter_next(it, off, len, &kind))
        if (kind == NBDREAD_DATA)
            return true;
    return false;
}

/* ------------------------------------------------------------ stopping */

static void wake_reader(struct pipeline *p)
{
    uint64_t one = 1;

    /* A full counter (impossible here) or EAGAIN still leaves it readable. */
    if (write(p->wakefd, &one, sizeof(one)) < 0)
        return;
}

static void stop_locked(struct pipeline *p)
{
    p->stop = true;
    pthread_cond_broadcast(&p->work_cond);
    pthread_cond_broadcast(&p->done_cond);
}

/* Keep the error just recorded on this thread if it is the first, and stop
 * every stage. */
static void fail(struct pipeline *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->err_code == VK_ERR_NONE) {
        const char *msg = vk_error_message();

        p->err_code = vk_error_code() != VK_ERR_NONE ? vk_error_code() : VK_ERR_INTERNAL;
        p->err_msg = strdup(msg ? msg : "the backup pipeline failed");
    }
    stop_locked(p);
    pthread_mutex_unlock(&p->lock);
    wake_reader(p);
}

static bool stopped(struct pipeline *p)
{
    bool s;

    pthread_mutex_lock(&p->lock);
    s = p->stop;
    pthread_mutex_unlock(&p->lock);
    return s;
}

/* ------------------------------------------------------------ reader */

static void slot_read_complete(struct pipeline *p, struct slot *s)
{
    p->reading--;
    if (s->read_errno) {
        char buf[128];

        vk_error(VK_ERR_NETWORK, "cannot read %" PRIu64 " bytes at offset %" PRIu64 " of %s: %s",
                 s->length, s->offset, nbdread_describe(p->r),
                 strerror_r(s->read_errno, buf, sizeof(buf)));
        fail(p);
        return;
    }
    p->read_bytes += s->length;
    pthread_mutex_lock(&p->lock);
    s->state = SLOT_READ;
    p->queue[(p->qhead + p->qlen++) % p->nslots] = (unsigned int)(s - p->slots);
    pthread_cond_signal(&p->work_cond);
    pthread_mutex_unlock(&p->lock);
}

/* libnbd completion callback: runs on the reader thread, inside notify. */
static int read_done(void *opaque, int *error)
{
    struct slot *s = opaque;

    if (*error && !s->read_errno)
        s->read_errno = *error;
    if (--s->pending == 0)
        slot_read_complete(s->p, s);
    return 1; /* retire the command */
}

/* Start the reads of one chunk into slot S. */
static int slot_issue(struct pipeline *p, struct slot *s, uint64_t off, uint64_t len)
{
    int ret = 0;

    s->offset = off;
    s->length = len;
    s->read_errno = 0;
    s->pending = 1; /* held while issuing, so a fast completion cannot finish the slot */
    pthread_mutex_lock(&p->lock);
    s->state = SLOT_READING;
    pthread_mutex_unlock(&p->lock);
    p->reading++;
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < p->max_read ? (size_t)(len - done) : p->max_read;
        nbd_completion_callback cb = {.callback = read_done, .user_data = s};

        s->pending++;
        if (nbd_aio_pread(p->nbd, s->raw + done, n, off + done, cb, 0) == -1) {
            s->pending--;
            vk_error(VK_ERR_NETWORK,
                     "cannot start a read of %zu bytes at offset %" PRIu64 " of %s: %s", n,
                     off + done, nbdread_describe(p->r), nbd_get_error());
            ret = -1;
            break;
        }
        done += n;
    }
    if (ret < 0) {
        fail(p);
        if (!s->read_errno)
            s->read_errno = EIO;
    }
    if (--s->pending == 0) {
        if (ret < 0)
            p->reading--; /* already failed: no second message */
        else
            slot_read_complete(p, s);
    }
    return ret;
}

static int connection_error(struct pipeline *p, const char *what)
{
    vk_error(VK_ERR_NETWORK, "the NBD connection to %s failed while %s: %s", nbdread_describe(p->r),
             what, nbd_get_error() ? nbd_get_error() : "the server closed it");
    fail(p);
    return -1;
}

/* Wait up to POLL_MS for the socket or the wake-up fd, and let libnbd move. */
static int poll_once(struct pipeline *p)
{
    int fd = nbd_aio_get_fd(p->nbd);
    unsigned int dir = nbd_aio_get_direction(p->nbd);
    struct pollfd fds[2] = {{.fd = fd}, {.fd = p->wakefd, .events = POLLIN}};
    int n;

    if (fd == -1 || nbd_aio_is_dead(p->nbd) || nbd_aio_is_closed(p->nbd))
        return connection_error(p, "reading");
    fds[0].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
                    (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
    n = poll(fds, 2, POLL_MS);
    if (n < 0 && errno != EINTR) {
        vk_error_errno(errno, "cannot poll the NBD connection to %s", nbdread_describe(p->r));
        fail(p);
        return -1;
    }
    if (n <= 0)
        return 0;
    if (fds[1].revents & POLLIN) {
        uint64_t v;

        if (read(p->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            return 0;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read(p->nbd) == -1)
        return connection_error(p, "reading");
    if ((fds[0].revents & POLLOUT) && nbd_aio_notify_write(p->nbd) == -1)
        return connection_error(p, "sending a request");
    return 0;
}

/* Start reads while there is a FREE slot and room in flight. */
static int issue_more(struct pipeline *p, struct chunk_iter *it, uint64_t *k, bool *more)
{
    while (*more && p->reading < p->inflight) {
        struct slot *s = &p->slots[*k % p->nslots];
        struct chunk_iter peek = *it;
        uint64_t off, len;
        bool free_slot;

        if (!iter_next_data(&peek, &off, &len)) {
            *more = false;
            break;
        }
        pthread_mutex_lock(&p->lock);
        free_slot = s->state == SLOT_FREE && !p->stop;
        pthread_mutex_unlock(&p->lock);
        if (!free_slot)
            break;
        *it = peek;
        (*k)++;
        if (slot_issue(p, s, off, len) < 0)
            return -1;
    }
    return 0;
}

/* After a stop, let the reads in flight finish so that no buffer is freed
 * under them; give the handle up if they do not. */
static void reader_drain(struct pipeline *p)
{
    uint64_t deadline = vk_now_ns() + DRAIN_NS;

    while (p->reading > 0 && vk_now_ns() < deadline && !nbd_aio_is_dead(p->nbd) &&
           !nbd_aio_is_closed(p->nbd)) {
        if (poll_once(p) < 0)
            break;
    }
    if (p->reading > 0) {
        vk_debug("%u reads of %s left in flight: giving the connection up", p->reading,
                 nbdread_describe(p->r));
        p->abandoned = true;
        nbdread_abandon(p->r);
    }
}

static void *reader_main(void *arg)
{
    struct pipeline *p = arg;
    struct chunk_iter it;
    uint64_t k = 0;
    bool more = true;

    iter_init(&it, p);
    while (!stopped(p)) {
        if (issue_more(p, &it, &k, &more) < 0)
            break;
        if (!more && p->reading == 0)
            break; /* everything is read */
        if (poll_once(p) < 0)
            break;
    }
    reader_drain(p);
    return NULL;
}

/* ------------------------------------------------------------ workers */

static int slot_process(struct worker *w, struct slot *s)
{
    size_t len = (size_t)s->length;

    s->zero = archive_is_zero(s->raw, len);
    if (s->zero)
        return 0;
    if (archive_sha256(s->raw, len, s->sha256) < 0 ||
        archive_compressor_compress(w->c, s->raw, len, s->zst, archive_compress_bound(len),
                                    &s->zstlen) < 0) {
        vk_error_prefix("chunk at offset %" PRIu64 " of %s", s->offset, nbdread_describe(w->p->r));
        return -1;
    }
    return 0;
}

static void worker_renice(const struct pipeline *p)
{
    pid_t tid = gettid();
    int cur;

    errno = 0;
    cur = getpriority(PRIO_PROCESS, (id_t)tid);
    if ((cur == -1 && errno) || setpriority(PRIO_PROCESS, (id_t)tid, cur + p->worker_nice) < 0)
        vk_debug("cannot change the priority of a compression thread for %s: %s",
                 nbdread_describe(p->r), strerror(errno));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pipeline *p = w->p;

    if (p->worker_nice)
        worker_renice(p);

    for (;;) {
        struct slot *s;
        uint64_t t0 = 0;

        pthread_mutex_lock(&p->lock);
        if (!p->stop && p->qlen == 0)
            t0 = vk_now_ns();
        while (!p->stop && p->qlen == 0)
            pthread_cond_wait(&p->work_cond, &p->lock);
        if (t0)
            p->worker_idle_ns += vk_now_ns() - t0;
        if (p->stop) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        s = &p->slots[p->queue[p->qhead]];
        p->qhead = (p->qhead + 1) % p->nslots;
        p->qlen--;
        pthread_mutex_unlock(&p->lock);

        if (slot_process(w, s) < 0) {
            fail(p);
            return NULL;
        }
        pthread_mutex_lock(&p->lock);
        s->state = SLOT_DONE;
        p->zero_chunks += s->zero;
        pthread_cond_broadcast(&p->done_cond);
        pthread_mutex_unlock(&p->lock);
    }
}

/* ------------------------------------------------------------ delivery */

struct delivery {
    const struct pipeline_callbacks *cb;
    struct pipeline_stats *st;
    uint64_t zoff, zlen; /* zero region not yet delivered */
    uint64_t done, total, last_progress_ns, progress_ns;
};

static int zero_flush(struct delivery *d)
{
    uint64_t len = d->zlen;

    if (len == 0)
        return 0;
    d->zlen = 0;
    if (d->cb->on_zero(d->cb->opaque, d->zoff, len) < 0)
        return -1;
    d->st->zero_bytes += len;
    return 0;
}

static int zero_add(struct delivery *d, uint64_t off, uint64_t len)
{
    if (d->zlen && d->zoff + d->zlen == off) {
        d->zlen += len;
        return 0;
    }
    if (zero_flush(d) < 0)
        return -1;
    d->zoff = off;
    d->zlen = len;
    return 0;
}

static int check_cancel(struct pipeline *p)
{
    if (p->cancel && *p->cancel) {
        vk_error(VK_ERR_INTERRUPTED, "the backup of %s was interrupted", nbdread_describe(p->r));
        return -1;
    }
    return 0;
}

/* Wait for slot S to be DONE; false on stop or cancel. */
static bool slot_wait(struct pipeline *p, struct slot *s, uint64_t *waited_ns)
{
    uint64_t t0 = 0;
    bool ok;

    pthread_mutex_lock(&p->lock);
    if (!p->stop && s->state != SLOT_DONE)
        t0 = vk_now_ns();
    while (!p->stop && s->state != SLOT_DONE) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->done_cond, &p->lock, &ts);
        if (p->cancel && *p->cancel)
            break;
    }
    ok = !p->stop && s->state == SLOT_DONE;
    pthread_mutex_unlock(&p->lock);
    if (t0)
        *waited_ns += vk_now_ns() - t0;
    return ok;
}

static int deliver_slot(struct pipeline *p, struct delivery *d, struct slot *s)
{
    if (s->zero) {
        if (zero_add(d, s->offset, s->length) < 0)
            return -1;
    } else {
        if (zero_flush(d) < 0 ||
            d->cb->on_data(d->cb->opaque, s->offset, s->length, s->zst, s->zstlen, s->sha256) < 0)
            return -1;
        d->st->data_bytes += s->length;
        d->st->stored_bytes += s->zstlen;
        d->st->chunks++;
    }
    d->done += s->length;
    pthread_mutex_lock(&p->lock);
    s->state = SLOT_FREE;
    pthread_mutex_unlock(&p->lock);
    wake_reader(p);
    return 0;
}

static void progress(struct delivery *d, bool final)
{
    uint64_t now;

    if (!d->cb->on_progress)
        return;
    now = vk_now_ns();
    if (!final && now - d->last_progress_ns < d->progress_ns)
        return;
    d->last_progress_ns = now;
    d->cb->on_progress(d->cb->opaque, d->done, d->total);
}

/* Hand every item to the callbacks in order.  Returns 0, or -1 after fail(). */
static int deliver_all(struct pipeline *p, struct delivery *d)
{
    struct chunk_iter it;
    uint64_t off, len, k = 0;
    enum nbdread_kind kind;

    iter_init(&it, p);
    while (iter_next(&it, &off, &len, &kind)) {
        struct slot *s = &p->slots[k % p->nslots];

        if (check_cancel(p) < 0)
            goto failed;
        if (kind == NBDREAD_ZERO) {
            if (zero_add(d, off, len) < 0)
                goto failed;
            continue;
        }
        if (!slot_wait(p, s, &d->st->deliver_wait_ns)) {
            if (check_cancel(p) < 0)
                goto failed;
            return -1; /* another stage failed */
        }
        if (s->offset != off || s->length != len) {
            vk_error(VK_ERR_INTERNAL, "the pipeline of %s lost the order of its chunks",
                     nbdread_describe(p->r));
            goto failed;
        }
        if (deliver_slot(p, d, s) < 0)
            goto failed;
        k++;
        progress(d, false);
    }
    if (zero_flush(d) < 0)
        goto failed;
    progress(d, true);
    return 0;

failed:
    fail(p);
    return -1;
}

/* ------------------------------------------------------------ set-up */

static int check_extents(const struct pipeline *p)
{
    uint64_t end = 0, size = nbdread_size(p->r);

    for (size_t i = 0; i < p->nr; i++) {
        const struct nbdread_extent *e = &p->extents[i];

        if (e->offset < end || e->length > size || e->offset > size - e->length ||
            (e->kind != NBDREAD_DATA && e->kind != NBDREAD_ZERO)) {
            vk_error(VK_ERR_INVALID,
                     "extent %zu (offset %" PRIu64 ", length %" PRIu64
                     ") of %s is out of order or beyond the end of the disk",
                     i, e->offset, e->length, nbdread_describe(p->r));
            return -1;
        }
        end = e->offset + e->length;
    }
    return 0;
}

static int options_apply(struct pipeline *p, const struct pipeline_options *o)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    p->nthreads = o->threads ? o->threads : (cpus > 0 ? (unsigned int)cpus : 1);
    if (p->nthreads > MAX_THREADS)
        p->nthreads = MAX_THREADS;
    p->inflight = o->inflight ? o->inflight : DEFAULT_INFLIGHT;
    p->grid = o->chunk_size ? o->chunk_size : ARCHIVE_CHUNK_SIZE_DEFAULT;
    p->max_read = nbdread_max_read(p->r);
    if (o->max_read && o->max_read < p->max_read)
        p->max_read = o->max_read;
    p->cancel = o->cancel;
    p->ring_bytes = o->ring_bytes ? o->ring_bytes : PIPELINE_RING_BYTES_DEFAULT;
    p->worker_nice = o->worker_nice;
    if (p->grid > ARCHIVE_CHUNK_SIZE_MAX || p->inflight > 1024) {
        vk_error(VK_ERR_INVALID,
                 "the chunk size %" PRIu64 " or %u reads in flight are out of range for %s",
                 p->grid, p->inflight, nbdread_describe(p->r));
        return -1;
    }
    return 0;
}

/* Size the ring: no more slots than chunks, no bigger buffers than the
 * largest chunk (a small incremental needs little). */
static void ring_size(struct pipeline *p, uint64_t *total)
{
    struct chunk_iter it;
    uint64_t off, len, nchunks = 0, want;

    p->bufsize = 0;
    *total = 0;
    iter_init(&it, p);
    while (iter_next_data(&it, &off, &len)) {
        nchunks++;
        *total += len;
        if (len > p->bufsize)
            p->bufsize = len;
    }
    want = 2 * p->nthreads + p->inflight;
    /* Slack beyond the minimum is read-ahead: it keeps the workers busy
     * while the ordered callbacks are held up (page-cache write
     * throttling, a slow network put) or the server answers late. */
    if (p->bufsize && p->ring_bytes / (2 * p->bufsize) > want)
        want = p->ring_bytes / (2 * p->bufsize);
    if (want > MAX_SLOTS)
        want = MAX_SLOTS;
    if (nchunks < want)
        want = nchunks ? nchunks : 1;
    p->nslots = (unsigned int)want;
    if (p->inflight > p->nslots)
        p->inflight = p->nslots;
}

static int ring_alloc(struct pipeline *p)
{
    p->slots = vk_calloc(p->nslots, sizeof(*p->slots));
    p->queue = vk_calloc(p->nslots, sizeof(*p->queue));
    if (!p->slots || !p->queue)
        return -1;
    for (unsigned int i = 0; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];

        s->p = p;
        s->raw = vk_malloc(p->bufsize ? p->bufsize : 1);
        s->zst = vk_malloc(archive_compress_bound(p->bufsize));
        if (!s->raw || !s->zst)
            return -1;
    }
    return 0;
}

static int workers_create(struct pipeline *p, int level)
{
    p->workers = vk_calloc(p->nthreads, sizeof(*p->workers));
    if (!p->workers)
        return -1;
    for (unsigned int i = 0; i < p->nthreads; i++) {
        p->workers[i].p = p;
        p->workers[i].c = archive_compressor_new(level);
        if (!p->workers[i].c)
            return -1;
    }
    return 0;
}

static int sync_init(struct pipeline *p)
{
    pthread_condattr_t attr;

    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wakefd < 0) {
        vk_error_errno(errno, "cannot create an eventfd for the pipeline of %s",
                       nbdread_describe(p->r));
        return -1;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&p->work_cond, NULL);
    return 0;
}

static void pipeline_free(struct pipeline *p)
{
    if (p->workers)
        for (unsigned int i = 0; i < p->nthreads; i++)
            archive_compressor_free(p->workers[i].c);
    free(p->workers);
    if (p->slots)
        for (unsigned int i = 0; i < p->nslots; i++) {
            free(p->slots[i].raw);
            free(p->slots[i].zst);
        }
    free(p->slots);
    free(p->queue);
    free(p->err_msg);
    if (p->wakefd >= 0) {
        close(p->wakefd);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->work_cond);
        pthread_cond_destroy(&p->done_cond);
    }
}

/* Start the reader and the workers; on failure, whatever started is left
 * for threads_join after a stop. */
static int threads_start(struct pipeline *p, pthread_t *reader, bool *reader_started)
{
    int err;

    for (unsigned int i = 0; i < p->nthreads; i++) {
        err = pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]);
        if (err) {
            vk_error_errno(err, "cannot start a compression thread for %s", nbdread_describe(p->r));
            return -1;
        }
        p->workers[i].started = true;
    }
    err = pthread_create(reader, NULL, reader_main, p);
    if (err) {
        vk_error_errno(err, "cannot start the reader thread for %s", nbdread_describe(p->r));
        return -1;
    }
    *reader_started = true;
    return 0;
}

static void threads_join(struct pipeline *p, pthread_t reader, bool reader_started)
{
    pthread_mutex_lock(&p->lock);
    stop_locked(p);
    pthread_mutex_unlock(&p->lock);
    wake_reader(p);
    if (reader_started)
        pthread_join(reader, NULL);
    for (unsigned int i = 0; i < p->nthreads; i++)
        if (p->workers[i].started)
            pthread_join(p->workers[i].tid, NULL);
}

static int run_threads(struct pipeline *p, struct delivery *d)
{
    pthread_t reader;
    bool reader_started = false;
    int ret;

    ret = threads_start(p, &reader, &reader_started);
    if (ret < 0)
        fail(p);
    else
        ret = deliver_all(p, d);
    threads_join(p, reader, reader_started);
    if (p->err_code != VK_ERR_NONE) {
        /* Re-record the first error, whichever thread it happened on. */
        vk_error(p->err_code, "%s", p->err_msg ? p->err_msg : "the backup pipeline failed");
        ret = -1;
    }
    return ret;
}

int pipeline_run(struct nbdread *r, const struct nbdread_extent *extents, size_t nr,
                 const struct pipeline_options *opts, const struct pipeline_callbacks *cb,
                 struct pipeline_stats *stats, unsigned int flags)
{
    static const struct pipeline_options defaults;
    struct pipeline p = {
        .r = r, .nbd = nbdread_handle(r), .extents = extents, .nr = nr, .wakefd = -1};
    struct pipeline_stats st = {0};
    struct delivery d = {.cb = cb, .st = &st};
    uint64_t t0 = vk_now_ns();
    int ret = -1;

    (void)flags;
    if (!opts)
        opts = &defaults;
    d.progress_ns =
        (opts->progress_interval_ms ? opts->progress_interval_ms : DEFAULT_PROGRESS_MS) *
        UINT64_C(1000000);
    if (!p.nbd) {
        vk_error(VK_ERR_INTERNAL, "the NBD connection to %s was abandoned after a failed read",
                 nbdread_describe(r));
        goto out;
    }
    if (options_apply(&p, opts) < 0 || check_extents(&p) < 0)
        goto out;
    ring_size(&p, &d.total);
    if (ring_alloc(&p) < 0 || workers_create(&p, opts->level) < 0 || sync_init(&p) < 0)
        goto out;
    vk_debug("pipeline for %s: %u workers, %u slots of %" PRIu64 " bytes, %u reads in flight",
             nbdread_describe(r), p.nthreads, p.nslots, p.bufsize, p.inflight);
    ret = run_threads(&p, &d);

out:
    st.read_bytes = p.read_bytes;
    st.zero_chunks = p.zero_chunks;
    st.worker_idle_ns = p.worker_idle_ns;
    st.wall_ns = vk_now_ns() - t0;
    vk_debug("pipeline for %s: %.3f s, workers idle %.3f s (summed), delivery waited %.3f s",
             nbdread_describe(r), (double)st.wall_ns / 1e9, (double)st.worker_idle_ns / 1e9,
             (double)st.deliver_wait_ns / 1e9);
    if (stats)
        *stats = st;
    pipeline_free(&p);
    return ret;
}
