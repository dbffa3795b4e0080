/* virtkeep - the backup data path: NBD extent lists and reads (nbdread) and the
 * read -> compress -> ordered write pipeline.
 */
#ifndef VIRTKEEP_DATAPATH_H
#define VIRTKEEP_DATAPATH_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>

/* ======== reading a disk through NBD: the connection and its extent list.
 *
 * The export is a libvirt pull-mode backup export or a read-only qemu-nbd
 * for a shut-off domain, on a unix socket.  The connection asks for the
 * "base:allocation" meta context and, for an incremental or differential,
 * one dirty-bitmap context ("qemu:dirty-bitmap:backup-vda" in libvirt pull
 * mode, "qemu:dirty-bitmap:NAME" from qemu-nbd --bitmap=NAME).
 *
 * What the extent list holds (nbdread_extents):
 *
 *   Full (no bitmap): a restore starts from a blank disk, so regions that
 *   are unallocated and read as zero (HOLE|ZERO) are not recorded at all.
 *   Regions reported as ZERO but allocated (no HOLE flag) are ZERO extents:
 *   a restore onto an existing image must write zeros there.  Everything
 *   else (no ZERO flag) is DATA and is read.
 *
 *   Incremental/differential (bitmap): clean regions are omitted.  Dirty
 *   regions that now read as zero, allocated or not, are ZERO extents: the
 *   data there was zeroed or discarded since the parent and a restore must
 *   overwrite what the parent holds.  Dirty regions with data are DATA.
 *
 * Adjacent extents of the same kind are merged.  DATA extents are split on
 * a fixed grid of CHUNK_SIZE (multiples of it from offset 0), so that the
 * chunks of different backups of one disk line up; ZERO extents are not
 * split.  The list is in increasing offset order without overlap.
 */

struct nbd_handle;

enum nbdread_kind {
    NBDREAD_DATA = 0,
    NBDREAD_ZERO,
};

struct nbdread_extent {
    uint64_t offset;
    uint64_t length;
    enum nbdread_kind kind;
};

struct nbdread;

/* Connect to EXPORT_NAME (e.g. "vda") on the unix socket SOCKET_PATH.
 * BITMAP_CONTEXT is the full meta context name of the dirty bitmap, or NULL
 * for a full backup.  Fails with VK_ERR_NETWORK when the connection fails
 * and VK_ERR_UNSUPPORTED when the server lacks a requested context. */
struct nbdread *nbdread_open(const char *socket_path, const char *export_name,
                             const char *bitmap_context, unsigned int flags);
void nbdread_close(struct nbdread *r);

/* Virtual size of the export in bytes. */
uint64_t nbdread_size(const struct nbdread *r);
/* "export 'vda' on socket '/run/x.sock'", for messages. */
const char *nbdread_describe(const struct nbdread *r);
/* The libnbd handle, for the read pipeline.  NULL once the handle was
 * given up (nbdread_abandon). */
struct nbd_handle *nbdread_handle(struct nbdread *r);
/* Largest read the server accepts, at most 32 MiB (QEMU's limit). */
uint32_t nbdread_max_read(const struct nbdread *r);
/* Mark the handle unusable: reads were left in flight into buffers that are
 * about to be freed, so nothing may run the handle's state machine again.
 * Later calls fail; nbdread_close still closes it (libnbd then frees the
 * pending commands without completing them). */
void nbdread_abandon(struct nbdread *r);

/* Build the extent list described at the top of this file, looping block
 * status over the whole disk.  CHUNK_SIZE is the grid (0 gives
 * ARCHIVE_CHUNK_SIZE_DEFAULT).  On success *OUT (free() it) holds *NR
 * extents. */
int nbdread_extents(struct nbdread *r, uint64_t chunk_size, unsigned int flags,
                    struct nbdread_extent **out, size_t *nr);

/* ======== the data path of a backup: NBD reads, parallel compression,
 * results in offset order.
 *
 *   reader thread ──aio reads──▶ slot ring ──▶ N workers ──▶ caller's thread
 *   (libnbd aio, poll)            (fixed)       (zero test,     (callbacks in
 *                                               sha256, zstd)   offset order)
 *
 * The extent list (nbdread_extents) is walked chunk by chunk: a DATA extent
 * is cut on the grid of chunk_size, and each chunk takes a slot of a fixed
 * ring (raw buffer + compressed buffer).  The reader thread fills slots with
 * asynchronous reads (several in flight, each at most 32 MiB and at most the
 * server's limit), a worker turns a read slot into either a zero result (the
 * chunk is all zeros: no hash, no compression) or a sha256 plus one zstd
 * frame, and the calling thread hands results to the callbacks in offset
 * order, then gives the slot back.  Chunk data is never copied between
 * stages; memory is max(2 x threads + inflight slots, about 96 MiB of
 * buffers) whatever the disk size: the slack is read-ahead, so that the
 * workers keep both (all) cores busy while the ordered callbacks are held
 * up.
 *
 * The callbacks run on the thread that called pipeline_run.  Consecutive
 * zero results (ZERO extents of the list and all-zero chunks) are merged
 * into one on_zero call when they touch.
 */

/* 96 MiB: 12 slots of 4 MiB chunks. */
#define PIPELINE_RING_BYTES_DEFAULT (96ull << 20)

struct pipeline_callbacks {
    /* One data chunk: LENGTH raw bytes at OFFSET, compressed into the zstd
     * frame ZST of ZSTLEN bytes, with the sha256 of the raw bytes.  ZST is
     * valid only during the call.  Return 0, or -1 with the error recorded
     * to stop the run (pipeline_run then fails with that error). */
    int (*on_data)(void *opaque, uint64_t offset, uint64_t length, const void *zst, size_t zstlen,
                   const uint8_t sha256[32]);
    /* A region that reads as zeros. Same return convention. */
    int (*on_zero)(void *opaque, uint64_t offset, uint64_t length);
    /* Optional.  DONE of TOTAL bytes of DATA extents are through (read and
     * delivered).  Called at most every progress_interval_ms and once at
     * the end of a successful run. */
    void (*on_progress)(void *opaque, uint64_t done, uint64_t total);
    void *opaque;
};

/* Zero fields take the defaults. */
struct pipeline_options {
    unsigned int threads;  /* compression workers; 0 = online CPUs */
    unsigned int inflight; /* chunks being read at once; 0 = 4 */
    uint64_t chunk_size;   /* the grid; 0 = ARCHIVE_CHUNK_SIZE_DEFAULT */
    uint32_t max_read;     /* largest read request; 0 = the server's limit (<= 32 MiB) */
    int level;             /* zstd level; 0 = zstd's default */
    unsigned int progress_interval_ms; /* 0 = 250 */
    /* Bytes of chunk buffers (raw + compressed) the ring may grow to for
     * read-ahead; the ring never has fewer than 2 x threads + inflight
     * slots.  0 = PIPELINE_RING_BYTES_DEFAULT. */
    uint64_t ring_bytes;
    /* Added to the compression workers' nice value (Linux: per thread), so
     * that the reader, the NBD server and the ordered callbacks, which
     * feed the workers and need little CPU, are never kept waiting by
     * them.  0 = leave the priority alone. */
    int worker_nice;
    /* Set (from a signal handler, say) to stop the run promptly with
     * VK_ERR_INTERRUPTED.  May be NULL. */
    const volatile sig_atomic_t *cancel;
};

struct pipeline_stats {
    uint64_t read_bytes;   /* read from the export */
    uint64_t data_bytes;   /* raw bytes delivered through on_data */
    uint64_t zero_bytes;   /* bytes delivered through on_zero */
    uint64_t stored_bytes; /* compressed bytes delivered through on_data */
    uint64_t chunks;       /* on_data calls */
    uint64_t zero_chunks;  /* chunks read that were all zeros */
    uint64_t wall_ns;
    /* Where the time went, for tuning: nanoseconds the workers (summed)
     * waited with no chunk to process (after the last one too), and the
     * calling thread waited for the next chunk in order. */
    uint64_t worker_idle_ns;
    uint64_t deliver_wait_ns;
};

/* Run the extent list EXTENTS (NR of them, in increasing offset order)
 * against the export of R.  Returns 0, or -1 with the first error recorded
 * on the calling thread: a failed read (VK_ERR_NETWORK, naming the export),
 * a callback's own error, or VK_ERR_INTERRUPTED.  Whatever happens, every
 * thread is joined and every buffer freed before it returns.  If reads had
 * to be left in flight (a server that stopped answering), R is abandoned
 * (nbdread_abandon) and must only be closed.  STATS (may be NULL) is filled
 * in either case. */
int pipeline_run(struct nbdread *r, const struct nbdread_extent *extents, size_t nr,
                 const struct pipeline_options *opts, const struct pipeline_callbacks *cb,
                 struct pipeline_stats *stats, unsigned int flags);

#endif
