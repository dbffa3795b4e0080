/* virtkeep - what the restore and verify files share (not for callers). */
#ifndef VIRTKEEP_RESTORE_INT_H
#define VIRTKEEP_RESTORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/archive.h"
#include "src/restore.h"

struct catalog;
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

/* ---------------------------------------------------------------- image */

struct restore_image;

/* Create a qcow2 image at PATH (replacing what is there) of SIZE bytes and
 * serve it writable with qemu-nbd on a socket in a private directory. */
struct restore_image *restore_image_open(const char *path, uint64_t size, uint64_t cluster_size,
                                         const char *compat, unsigned int in_flight);
/* Queue writes (split into requests of at most 32 MiB).  BUF must stay
 * valid until *REFS, incremented per request, drops back to zero. */
int restore_image_write(struct restore_image *img, const void *buf, uint64_t len, uint64_t offset,
                        unsigned int *refs);
int restore_image_zero(struct restore_image *img, uint64_t len, uint64_t offset);
/* Run the connection until *REFS is zero (or every request is done when
 * REFS is NULL). */
int restore_image_wait(struct restore_image *img, const unsigned int *refs);
/* Finish: wait, flush, disconnect, stop qemu-nbd, fsync the file. */
int restore_image_close(struct restore_image *img);
/* Stop everything without finishing (the caller removes the file). */
void restore_image_abort(struct restore_image *img);

#endif
