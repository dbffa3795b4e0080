/* virtkeep - what the snapshot*.c files share and nobody else uses. */
#ifndef VIRTKEEP_SNAPSHOT_INT_H
#define VIRTKEEP_SNAPSHOT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <libvirt/libvirt.h>

#include "src/snapshot/snapshot.h"
#include "src/virt/virt.h"

/* One image of a backing chain, as qemu-img info --backing-chain sees it. */
struct snapshot_image {
    char *path;
    char *format;
};

struct snapshot_chain {
    struct snapshot_image *items; /* the top (active) image first */
    size_t count;
};

int snapshot_chain_read(const char *top, struct snapshot_chain *out);
void snapshot_chain_clear(struct snapshot_chain *c);
/* Index of PATH in C (same file), or -1. */
long snapshot_chain_find(const struct snapshot_chain *c, const char *path);
bool snapshot_same_file(const char *a, const char *b);

/* Snapshot NAME of D and its parsed XML. */
virDomainSnapshotPtr snapshot_lookup(struct virt_domain *d, const char *name,
                                     struct snapshot_info *info);
int snapshot_info_get(struct virt_domain *d, virDomainSnapshotPtr s, struct snapshot_info *info);
/* Whether the domain has a QEMU process (running or paused). */
int snapshot_domain_active(struct virt_domain *d, bool *active);
/* Point disk TARGET of the persistent definition at PATH (FORMAT). */
int snapshot_define_source(struct virt_domain *d, const char *target, const char *path,
                           const char *format);
/* The persistent source of disk TARGET (malloc'd). */
char *snapshot_disk_source(struct virt_domain *d, const char *target, unsigned int xml_flags);
/* unlink PATH; a missing file is fine. */
int snapshot_unlink(const char *path, const char *what);

#endif
