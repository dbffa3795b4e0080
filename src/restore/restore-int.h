/* virtkeep - what the restore and verify files share (not for callers). */
#ifndef VIRTKEEP_RESTORE_INT_H
#define VIRTKEEP_RESTORE_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/format/format.h"
#include "src/reader/reader.h"
#include "src/restore/restore.h"

/* ---------------------------------------------------------------- image */

struct restore_image;

/* Create a qcow2 image at PATH (replacing what is there) of SIZE bytes and
 * serve it writable with qemu-nbd on a socket in a private directory. */
struct restore_image *restore_image_open(const char *path, uint64_t size, uint64_t cluster_size,
                                         const char *compat, unsigned int in_flight,
                                         const volatile sig_atomic_t *cancel);
/* Queue writes (split into requests of at most 32 MiB).  BUF must stay
 * valid until *REFS, incremented per request, drops back to zero. */
int restore_image_write(struct restore_image *img, const void *buf, uint64_t len, uint64_t offset,
                        unsigned int *refs);
/* Run the connection until *REFS is zero (or every request is done when
 * REFS is NULL). */
int restore_image_wait(struct restore_image *img, const unsigned int *refs);
/* Run the connection for up to TIMEOUT ms (poll(2) semantics) or until FD
 * (-1: none) is readable: 1 when FD is readable, 0 otherwise, -1 when a
 * request failed or the connection broke. */
int restore_image_poll(struct restore_image *img, int fd, int timeout);

/* ---------------------------------------------------------------- data */

/* The data path of one image: the DATA pieces of M (merged from LAYERS,
 * whose archives are A) written to IMG.  One thread reads each needed
 * frame once, a pool of threads (one per online CPU, each with its own
 * zstd context) decodes and verifies them, and the writes go out with
 * several requests in flight; a ring of buffers bounds the memory.  ZERO
 * pieces are not written: the image is fresh and reads as zeros.  Fills
 * the counters of RES. */
struct restore_writer;
struct restore_writer *restore_writer_new(const struct reader_map *m,
                                          const struct reader_layer *layers);
/* Free W after the image it wrote to is closed or aborted: requests in
 * flight point into its buffers. */
void restore_writer_free(struct restore_writer *w);
int restore_writer_run(struct restore_writer *w, struct restore_image *img,
                       struct reader_archive **a, const struct restore_options *o,
                       struct restore_disk_result *res);
/* Finish: wait, flush, disconnect, stop qemu-nbd, fsync the file. */
int restore_image_close(struct restore_image *img);
/* Stop everything without finishing (the caller removes the file). */
void restore_image_abort(struct restore_image *img);

/* ---------------------------------------------------------------- define */

/* A libvirt connection checked for defining domain NAME: an existing
 * domain of that name is refused (VK_ERR_INVALID) unless FORCE, and even
 * then while it runs.  With FORCE over a shut-off domain, its UUID is kept
 * (restore_definer_uuid). */
struct restore_definer;
struct restore_definer *restore_definer_open(const char *uri, const char *name, bool force);
void restore_definer_free(struct restore_definer *d);
const char *restore_definer_uuid(const struct restore_definer *d);
/* Define XML persistently, then start it when START. */
int restore_definer_define(struct restore_definer *d, const char *xml, bool start);

#endif
