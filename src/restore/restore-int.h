/* virtkeep - what the restore and verify files share (not for callers). */
#ifndef VIRTKEEP_RESTORE_INT_H
#define VIRTKEEP_RESTORE_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/format/archive.h"
#include "src/restore/restore.h"

struct catalog;
struct catalog_backup_disks;
struct catalog_backups;
struct catalog_location;
struct config;
struct transport;

/* ---------------------------------------------------------------- sources */

/* The targets opened so far, by name (a configured target) or URL. */
struct restore_targets;

/* FROM (a target name or URL, may be NULL) replaces every recorded location. */
struct restore_targets *restore_targets_new(const struct config *cfg, const char *from);
void restore_targets_free(struct restore_targets *ts);
/* Open (once) the target a location names: a [target NAME] of the
 * configuration, else NAME itself when it is a URL. */
struct transport *restore_targets_get(struct restore_targets *ts, const char *name);
/* Each target opened so far and the bytes read from it. */
size_t restore_targets_count(const struct restore_targets *ts);
const char *restore_targets_name(const struct restore_targets *ts, size_t i, uint64_t *bytes_read);

/* One archive (one disk of one backup) opened for reading. */
struct restore_archive {
    char *backup_id;
    char *disk;
    char *target; /* the target name it is read from */
    char *key;
    uint64_t size;
    struct transport *t; /* borrowed from the restore_targets */
    struct archive_reader *reader;
    uint64_t bytes_fetched; /* every byte read through the source */
};

/* Open the archive of DISK of BACKUP_ID from one of its recorded locations
 * (the fastest target first), or from the --from target.  Checks the
 * object's size against the catalog and the header against the backup and
 * disk.  Errors name the backup, the disk and the key. */
struct restore_archive *restore_archive_open(struct catalog *cat, struct restore_targets *ts,
                                             const char *domain, const char *backup_id,
                                             const char *disk);
/* Open the archive at LOC (verify: one copy). */
struct restore_archive *restore_archive_open_at(struct restore_targets *ts,
                                                const struct catalog_location *loc,
                                                const char *target_name);
void restore_archive_free(struct restore_archive *a);
/* Read one chunk into OUT (its raw length); a failure names the backup,
 * disk and chunk. */
int restore_archive_read_chunk(struct restore_archive *a, const struct archive_extent *e,
                               void *out);
/* Read the zstd frame of data chunk E (E->size bytes) into FRAME, without
 * decoding it (archive_decoder_decode does that, on any thread); a failure
 * names the backup, disk and chunk. */
int restore_archive_read_frame(struct restore_archive *a, const struct archive_extent *e,
                               void *frame);

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
struct restore_writer *restore_writer_new(const struct restore_map *m,
                                          const struct restore_layer *layers);
/* Free W after the image it wrote to is closed or aborted: requests in
 * flight point into its buffers. */
void restore_writer_free(struct restore_writer *w);
int restore_writer_run(struct restore_writer *w, struct restore_image *img,
                       struct restore_archive **a, const struct restore_options *o,
                       struct restore_disk_result *res);
/* Finish: wait, flush, disconnect, stop qemu-nbd, fsync the file. */
int restore_image_close(struct restore_image *img);
/* Stop everything without finishing (the caller removes the file). */
void restore_image_abort(struct restore_image *img);

/* ---------------------------------------------------------------- chain */

/* The chain of BACKUP_ID, or of the newest committed backup of DOMAIN at
 * or before AT; never empty. */
int restore_chain_find(struct catalog *cat, const char *domain, const char *backup_id, int64_t at,
                       struct catalog_backups **chain);
/* The disks of backup TIP named in DISKS (every one when NULL); an unknown
 * name is VK_ERR_NOT_FOUND. */
int restore_disks_select(struct catalog *cat, char *const *disks, const char *tip,
                         struct catalog_backup_disks **out);

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

/* The cluster size and compat level of DISK in the manifest of BACKUP_ID
 * (read from the target of its recorded location): 0 and NULL when the
 * manifest has none (version 1, raw source) or cannot be read. */
void restore_source_qcow2(struct catalog *cat, struct restore_targets *ts, const char *backup_id,
                          const char *disk, uint64_t *cluster_size, char **compat);

#endif
