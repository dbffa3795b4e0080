/* virtkeep - reading a disk through NBD: the connection and its extent list.
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
#ifndef VIRTKEEP_NBDREAD_H
#define VIRTKEEP_NBDREAD_H

#include <stddef.h>
#include <stdint.h>

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

#endif
