/* virtkeep - ranged reads of the s3:// backend, with sequential read-ahead.
 *
 * Every GET costs the server a fixed amount of work (s3rver: ~10 ms of CPU),
 * so reading an object in 8 MiB ranges is much slower than one GET.  When a
 * read of KEY starts where the previous read of KEY ended (or skips forward
 * by at most RA_SKIP: restore skips the frames a newer backup replaced), the
 * read is sequential: a larger window is fetched into a buffer and the
 * following reads are served from it.  The window grows 8 -> 16 -> 32 -> 64
 * MiB (capped by the readahead= option) and never goes past the object's
 * end: a short answer or a 416 marks the end.  A read that is not
 * sequential bypasses the buffer and starts the window over.
 *
 * Memory: RA_SLOTS streams per transport (two objects read side by side,
 * e.g. a restore's full and incremental archives), each with at most one
 * buffer of the window size; a buffer is freed when its stream is reset,
 * when the object's end has been served, and at close.  So a transport
 * holds at most RA_SLOTS * 64 MiB.  A fetch runs without the lock: its slot
 * is marked busy meanwhile, and other readers of that slot read directly.
 *
 * Coherence: a put commit or a delete of KEY through this transport drops
 * KEY's window (s3_ra_forget), and a fetch in flight meanwhile is not kept.
 * A window is not served after RA_MAX_AGE_NS, so a change made elsewhere is
 * not hidden for long.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/s3-int.h"

#define RA_MIN_WINDOW (8u * 1024 * 1024)
#define RA_SKIP (1u * 1024 * 1024)
#define RA_MAX_AGE_NS (30ull * 1000 * 1000 * 1000)

/* One plain ranged GET into BUF: bytes read (short only at the end), 0 at
 * or past the end, -1 on failure (recorded). */
static ssize_t range_fetch(struct s3 *s3, const char *key, uint64_t offset, void *buf, size_t len)
{
    CLEANUP_FREE char *what = vk_asprintf("cannot read '%s'", key);
    struct s3_req r = {.method = "GET", .key = key, .dst = buf, .dst_cap = len};

    if (!what)
        return -1;
    r.range_off = offset;
    r.range_len = len;
    if (s3_perform(s3, &r, what) < 0)
        return -1;
    if (r.status == 416) { /* at or past the end */
        s3_req_clear(&r);
        return 0;
    }
    if (r.status / 100 != 2) {
        s3_fail(s3, &r, what);
        s3_req_clear(&r);
        return -1;
    }
    s3_req_clear(&r);
    return (ssize_t)r.dst_len;
}

/* ------------------------------------------------------------------ */
/* Slots (under ra->lock)                                              */

static void slot_drop_buffer(struct s3_ra_slot *s)
{
    if (s->busy)
        return; /* the fetcher owns it and checks the generation */
    free(s->buf);
    s->buf = NULL;
    s->cap = s->len = 0;
}

static void slot_clear(struct s3_ra_slot *s)
{
    free(s->key);
    s->key = NULL;
    s->len = 0;
    s->eof = false;
    slot_drop_buffer(s);
}

static struct s3_ra_slot *slot_find(struct s3_ra *ra, const char *key)
{
    for (size_t i = 0; i < S3_RA_SLOTS; i++)
        if (ra->slots[i].key && strcmp(ra->slots[i].key, key) == 0)
            return &ra->slots[i];
    return NULL;
}

/* The least recently used slot that no fetch holds, or NULL. */
static struct s3_ra_slot *slot_victim(struct s3_ra *ra)
{
    struct s3_ra_slot *v = NULL;

    for (size_t i = 0; i < S3_RA_SLOTS; i++) {
        struct s3_ra_slot *s = &ra->slots[i];
        if (!s->busy && (!v || s->tick < v->tick))
            v = s;
    }
    return v;
}

/* Start a new stream of KEY in S (S is not busy). */
static int slot_start(struct s3_ra *ra, struct s3_ra_slot *s, const char *key)
{
    if (!s->key || strcmp(s->key, key) != 0) {
        char *k = vk_strdup(key);
        if (!k)
            return -1;
        slot_clear(s);
        s->key = k;
    }
    slot_drop_buffer(s);
    s->eof = false;
    s->win = RA_MIN_WINDOW < ra->max_window ? RA_MIN_WINDOW : ra->max_window;
    return 0;
}

/* Can S serve a read at OFF from its window? */
static bool slot_hit(const struct s3_ra_slot *s, uint64_t off)
{
    if (s->busy || !s->buf || s->len == 0 || off < s->off)
        return false;
    if (vk_now_ns() - s->when > RA_MAX_AGE_NS)
        return false;
    return off - s->off < s->len || (s->eof && off - s->off == s->len);
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */

/* Serve from S's window (slot_hit is true).  Sets *EOF when the object
 * ends within what was served. */
static size_t serve(struct s3_ra_slot *s, uint64_t off, char *dst, size_t len, bool *eof)
{
    size_t avail = s->len - (size_t)(off - s->off), n = len < avail ? len : avail;

    memcpy(dst, s->buf + (off - s->off), n);
    s->next = off + n;
    *eof = s->eof && n == avail;
    if (*eof) /* the object has been read to its end: give the memory back */
        slot_drop_buffer(s);
    return n;
}

/* Fetch WANT bytes at OFF into S's buffer (S is busy, the lock released
 * around the GET), then copy the first LEN to DST. */
static ssize_t fetch_window(struct s3 *s3, struct s3_ra_slot *s, const char *key, uint64_t off,
                            char *dst, size_t len, size_t want, bool *eof)
{
    struct s3_ra *ra = &s3->ra;
    uint64_t gen = ra->gen;
    char *buf = s->cap >= want ? s->buf : NULL;
    ssize_t r;
    size_t n;

    if (!buf) {
        free(s->buf);
        s->buf = NULL;
        s->cap = 0;
        if (!(buf = vk_malloc(want)))
            return -1;
    }
    s->buf = NULL;
    s->len = 0;
    s->busy = true;
    pthread_mutex_unlock(&ra->lock);
    r = range_fetch(s3, key, off, buf, want);
    pthread_mutex_lock(&ra->lock);
    s->busy = false;
    s->buf = buf;
    s->cap = want;
    if (r < 0) {
        slot_drop_buffer(s);
        return -1;
    }
    n = (size_t)r < len ? (size_t)r : len;
    memcpy(dst, buf, n);
    *eof = (size_t)r < want && n == (size_t)r;
    if (gen != ra->gen || !s->key || strcmp(s->key, key) != 0 || *eof) {
        slot_drop_buffer(s); /* invalidated meanwhile, or nothing left to serve */
        return (ssize_t)n;
    }
    s->off = off;
    s->len = (size_t)r;
    s->eof = (size_t)r < want;
    s->next = off + n;
    s->when = vk_now_ns();
    return (ssize_t)n;
}

/* Read directly into DST; S (if any) only records where the read ends. */
static ssize_t read_direct(struct s3 *s3, struct s3_ra_slot *s, const char *key, uint64_t off,
                           char *dst, size_t len, bool *eof)
{
    struct s3_ra *ra = &s3->ra;
    ssize_t r;

    if (s)
        s->next = off + len;
    pthread_mutex_unlock(&ra->lock);
    r = range_fetch(s3, key, off, dst, len);
    pthread_mutex_lock(&ra->lock);
    *eof = r >= 0 && (size_t)r < len;
    return r;
}

/* One step of a read: from the window, by fetching a window, or directly. */
static ssize_t ra_step(struct s3 *s3, const char *key, uint64_t off, char *dst, size_t len,
                       bool *eof)
{
    struct s3_ra *ra = &s3->ra;
    struct s3_ra_slot *s = slot_find(ra, key);
    size_t want;
    bool seq;

    if (s && slot_hit(s, off)) {
        s->tick = ++ra->ticks;
        return (ssize_t)serve(s, off, dst, len, eof);
    }
    seq = s && !s->busy && off >= s->next && off - s->next <= RA_SKIP;
    if (!s)
        s = slot_victim(ra);
    if (!s || s->busy)
        return read_direct(s3, NULL, key, off, dst, len, eof);
    s->tick = ++ra->ticks;
    if (!seq) {
        if (slot_start(ra, s, key) < 0)
            return -1;
        return read_direct(s3, s, key, off, dst, len, eof);
    }
    want = s->win;
    s->win = s->win * 2 < ra->max_window ? s->win * 2 : ra->max_window;
    if (want <= len) {
        slot_drop_buffer(s);
        return read_direct(s3, s, key, off, dst, len, eof);
    }
    return fetch_window(s3, s, key, off, dst, len, want, eof);
}

ssize_t s3_ra_read(struct s3 *s3, const char *key, uint64_t offset, void *buf, size_t len)
{
    struct s3_ra *ra = &s3->ra;
    size_t done = 0;

    if (ra->max_window == 0)
        return range_fetch(s3, key, offset, buf, len);
    pthread_mutex_lock(&ra->lock);
    while (done < len) {
        bool eof = false;
        ssize_t r = ra_step(s3, key, offset + done, (char *)buf + done, len - done, &eof);
        if (r < 0) {
            pthread_mutex_unlock(&ra->lock);
            return -1;
        }
        done += (size_t)r;
        if (eof || r == 0)
            break;
    }
    pthread_mutex_unlock(&ra->lock);
    return (ssize_t)done;
}

void s3_ra_forget(struct s3 *s3, const char *key)
{
    struct s3_ra *ra = &s3->ra;
    struct s3_ra_slot *s;

    pthread_mutex_lock(&ra->lock);
    ra->gen++;
    if ((s = slot_find(ra, key)) != NULL)
        slot_clear(s);
    pthread_mutex_unlock(&ra->lock);
}

void s3_ra_init(struct s3_ra *ra, size_t max_window)
{
    memset(ra, 0, sizeof *ra);
    pthread_mutex_init(&ra->lock, NULL);
    ra->max_window = max_window;
}

void s3_ra_free(struct s3_ra *ra)
{
    for (size_t i = 0; i < S3_RA_SLOTS; i++)
        slot_clear(&ra->slots[i]);
    pthread_mutex_destroy(&ra->lock);
}
