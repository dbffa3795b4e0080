/* virtkeep - external snapshots of libvirt domains.
 *
 *   snapshot-xml.c  snapshot XML (build, parse), domain XML disk rewrite,
 *                   names and overlay paths (no libvirt: unit-tested)
 *   snapshot.c      create, list, delete (block commit, pivot, qemu-img
 *                   commit when shut off) and revert (libvirt 9.0 cannot
 *                   revert external snapshots: a fresh overlay on the
 *                   snapshot's base image)
 *
 * A snapshot NAME of a disk whose image is IMAGE puts the new writes into an
 * overlay IMAGE.NAME (or DIR/basename(IMAGE).NAME) whose backing file is
 * IMAGE, the snapshot's "base".  Checkpoints live on: libvirt moves the
 * bitmaps into the overlay on create and merges them back on commit.
 */
#ifndef VIRTKEEP_SNAPSHOT_H
#define VIRTKEEP_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "src/virt/virt.h"

#define SNAPSHOT_NAME_PREFIX "vk-"

struct snapshot_disk {
    char *target;  /* "vda" */
    char *overlay; /* the overlay the snapshot created */
    char *base;    /* the image below it (the disk's source at snapshot time) */
};

struct snapshot_info {
    char *name;
    char *parent;                /* NULL for a root snapshot */
    char *state;                 /* "running", "shutoff", "disk-snapshot", ... */
    int64_t created;             /* creationTime, seconds */
    char *memory_file;           /* external memory state, or NULL */
    bool current;                /* libvirt's current snapshot */
    bool external;               /* at least one external disk */
    struct snapshot_disk *disks; /* external disks only */
    size_t nr_disks;
};

struct snapshot_list {
    struct snapshot_info *items; /* oldest first */
    size_t count;
};

/* ---------------------------------------------------------------- XML and names */

/* "vk-YYYYmmddTHHMMSS" (UTC) for time T. */
char *snapshot_name_default(int64_t t);
/* A name virtkeep accepts: not empty, at most 128 bytes, no '/', no
 * leading '.' or '-', printable ASCII without white space.  VK_ERR_INVALID. */
int snapshot_name_check(const char *name);
/* IMAGE.NAME, or DIR/basename(IMAGE).NAME when DIR is not NULL. */
char *snapshot_overlay_path(const char *image, const char *dir, const char *name);

#define SNAPSHOT_MEMORY 1u  /* full-system: memory state to MEMORY_FILE */
#define SNAPSHOT_QUIESCE 2u /* freeze the guest file systems (guest agent) */

/* <domainsnapshot>: NAME, <memory snapshot='external' file=MEMORY_FILE/>
 * with SNAPSHOT_MEMORY (else snapshot='no'), one external disk per file or
 * block disk of DISKS that is not read-only and not a cdrom/floppy/lun, with
 * its overlay snapshot_overlay_path(source, DIR, NAME); snapshot='no' for
 * the others.  VK_ERR_INVALID when no disk can have an overlay. */
char *snapshot_xml_build(const char *name, const struct virt_disk_list *disks, const char *dir,
                         const char *memory_file, unsigned int flags);

/* Parse libvirt's snapshot XML (virDomainSnapshotGetXMLDesc).  Each external
 * disk's base comes from the embedded <domain>.  OUT is cleared on failure. */
int snapshot_xml_parse(const char *xml, struct snapshot_info *out);
void snapshot_info_clear(struct snapshot_info *s);
void snapshot_list_clear(struct snapshot_list *l);
const struct snapshot_disk *snapshot_info_disk(const struct snapshot_info *s, const char *target);

/* A copy of DOMAIN_XML where disk TARGET's source is the file PATH, of
 * format FORMAT (NULL: unchanged) and without <backingStore> (libvirt
 * probes it again).  VK_ERR_NOT_FOUND when there is no such disk. */
char *snapshot_domain_xml_set_source(const char *domain_xml, const char *target, const char *path,
                                     const char *format);

/* A copy of snapshot XML where every disk source OLD of the embedded
 * <domain> is NEW (after the overlay OLD was merged into NEW). */
char *snapshot_xml_replace_base(const char *xml, const char *old_path, const char *new_path);

struct json_object *snapshot_info_to_json(const struct snapshot_info *s);

/* ---------------------------------------------------------------- operations */

struct snapshot_create_options {
    const char *name;        /* NULL: snapshot_name_default(now) */
    const char *dir;         /* overlays (and memory file) here; NULL: next to each image */
    const char *memory_file; /* NULL: DIR or the first image's directory + DOMAIN.NAME.mem */
    unsigned int flags;      /* SNAPSHOT_MEMORY, SNAPSHOT_QUIESCE */
};

/* Create an external snapshot.  OUT describes it (as libvirt recorded it).
 * --quiesce without a guest agent is VK_ERR_UNSUPPORTED, --memory on a
 * domain that does not run is VK_ERR_INVALID. */
int snapshot_create(struct virt_domain *d, const struct snapshot_create_options *o,
                    struct snapshot_info *out);

int snapshot_list(struct virt_domain *d, struct snapshot_list *out, unsigned int flags);

/* Merge the overlays of snapshot NAME into their bases (running: block
 * commit, with pivot for the active layer; shut off: qemu-img commit), drop
 * its metadata and remove the overlays and memory file.  Snapshots taken
 * after it are kept, their saved bases now point at the merged image. */
int snapshot_delete(struct virt_domain *d, const char *name, unsigned int flags);

/* Put the disks back as they were when snapshot NAME was taken: stop the
 * domain, discard the overlays above the snapshot's bases (and snapshots
 * taken after it), create a fresh overlay on each base, and start it again
 * if it ran.  Checkpoints of virtkeep are discarded (their bitmaps no longer
 * describe the disk): the next backup is a full.  With SNAPSHOT_MEMORY and a
 * memory file, the domain is restored from it instead of booted. */
#define SNAPSHOT_REVERT_MEMORY 1u
int snapshot_revert(struct virt_domain *d, const char *name, unsigned int flags);

#endif
