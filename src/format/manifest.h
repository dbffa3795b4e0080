/* virtkeep - the per-backup manifest (JSON, json-c).
 *
 * One small document per backup, stored on the target beside the archives,
 * so that the catalog can be rebuilt from a target alone.  docs/FORMAT.md
 * describes it.  Strings are owned by the struct: manifest_clear() frees
 * them, so fill it with malloc'd copies (vk_strdup).
 */
#ifndef VIRTKEEP_MANIFEST_H
#define VIRTKEEP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "src/format/archive.h"

#define MANIFEST_FORMAT_NAME "virtkeep-manifest"
/* Version 2 adds each disk's qcow2 cluster size and compat level; version 1
 * manifests are still read (those fields are then 0 and NULL). */
#define MANIFEST_FORMAT_VERSION 2
/* The largest manifest manifest_parse() accepts. */
#define MANIFEST_MAX_SIZE (16u * 1024 * 1024)

struct manifest_disk {
    char *target;          /* "vda" */
    uint64_t virtual_size; /* bytes */
    char *archive_key;     /* key of the archive on the target */
    uint64_t archive_size; /* bytes of the archive object */
    uint8_t archive_sha256[ARCHIVE_SHA256_LEN];
    uint64_t bytes_read;   /* read from the disk */
    uint64_t bytes_stored; /* compressed bytes of data chunks */
    uint64_t cluster_size; /* of the source qcow2 image; 0: unknown or not qcow2 */
    char *compat;          /* its compat level, "0.10" or "1.1"; NULL: unknown */
};

struct manifest {
    char *backup_id;
    char *domain_name;
    char *domain_uuid;     /* 36-character RFC 4122 text form */
    char *level;           /* full, inc, diff, copy */
    char *parent_id;       /* NULL for full and copy */
    char *checkpoint_name; /* NULL for copy */
    char *checkpoint_xml;  /* NULL for copy */
    char *domain_xml;
    int64_t started;  /* seconds since the epoch, UTC */
    int64_t finished; /* seconds since the epoch, UTC */
    struct manifest_disk *disks;
    size_t nr_disks;
};

/* Check every rule manifest_parse() checks (VK_ERR_INVALID). */
int manifest_validate(const struct manifest *m);
/* The JSON text (malloc'd, NUL-terminated), after manifest_validate(). */
char *manifest_to_json(const struct manifest *m, unsigned int flags);
/* Parse and validate LEN bytes; NAME (the key) names the manifest in
 * errors.  Malformed input fails with VK_ERR_CORRUPT, a newer format
 * version with VK_ERR_UNSUPPORTED.  Fills OUT (cleared on failure). */
int manifest_parse(const char *json, size_t len, const char *name, struct manifest *out);
void manifest_clear(struct manifest *m);
/* Append a zeroed disk to M; returns it or NULL. */
struct manifest_disk *manifest_disk_add(struct manifest *m);
/* Fill D's cluster_size and compat from the qcow2 header of the image at
 * PATH; an image that is not qcow2 leaves them 0 and NULL.  -1 when PATH
 * cannot be read. */
int manifest_disk_probe(struct manifest_disk *d, const char *path);

#endif
