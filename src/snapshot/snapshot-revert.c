/* virtkeep - revert to an external snapshot (see snapshot.h).
 *
 * libvirt 9.0 refuses to revert external snapshots, so virtkeep does it:
 * the domain is stopped, every image above the snapshot's base (the
 * snapshot's overlay and whatever was stacked on it since) is discarded
 * together with the snapshots taken after it, a fresh overlay at the
 * snapshot's overlay path is created on the base, and the domain starts
 * again.  The bitmaps of virtkeep's checkpoints were in the discarded
 * overlays and no longer describe the disk: those checkpoints go, so the
 * next backup is a full.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/snapshot/snapshot-int.h"
#include "src/snapshot/snapshot.h"

/* Drop the metadata of the snapshots taken after S; their overlays sit
 * above S's base and go with the disk chain, their memory files here. */
static int descendants_drop(struct virt_domain *d, virDomainSnapshotPtr s)
{
    virDomainSnapshotPtr *kids = NULL;
    int n = virDomainSnapshotListAllChildren(s, &kids, VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS);
    int r = n < 0 ? -1 : 0;

    if (n < 0)
        virt_error_libvirt("cannot list the snapshots of domain '%s'", d->name);
    for (int i = 0; i < n; i++) {
        struct snapshot_info info;
        if (r == 0 && snapshot_info_get(d, kids[i], &info) == 0) {
            vk_info("domain '%s': dropping snapshot '%s', taken after the one reverted to", d->name,
                    info.name);
            if (virDomainSnapshotDelete(kids[i], VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY) < 0) {
                virt_error_libvirt("cannot delete snapshot '%s' of domain '%s'", info.name,
                                   d->name);
                r = -1;
            } else {
                r = snapshot_unlink(info.memory_file, "memory state file");
            }
            snapshot_info_clear(&info);
        } else {
            r = -1;
        }
        virDomainSnapshotFree(kids[i]);
    }
    free(kids);
    return r;
}

/* Our checkpoints: metadata now, bitmap names returned for the images. */
static char **checkpoints_drop(struct virt_domain *d)
{
    char **names = virt_checkpoint_list(d, 0);
    size_t n = names ? vk_strv_len(names) : 0;

    while (names && n-- > 0) {
        if (virt_checkpoint_delete(d, names[n], VIRT_CHECKPOINT_METADATA_ONLY) < 0) {
            vk_strv_free(names);
            return NULL;
        }
        vk_info("domain '%s': discarded checkpoint '%s' (the next backup is a full)", d->name,
                names[n]);
    }
    return names;
}

static int bitmaps_drop(const struct snapshot_chain *c, size_t from, char *const *names)
{
    for (size_t i = from; i < c->count; i++) {
        if (strcmp(c->items[i].format, "qcow2") != 0)
            continue;
        for (size_t k = 0; names[k]; k++)
            if (virt_image_bitmap_remove(c->items[i].path, names[k]) < 0)
                return -1;
    }
    return 0;
}

/* Throw away what is above the base of SD and put a fresh overlay on it. */
static int disk_reset(struct virt_domain *d, const struct snapshot_disk *sd, char *const *bitmaps)
{
    CLEANUP_FREE char *top = snapshot_disk_source(d, sd->target, VIRT_XML_INACTIVE);
    struct snapshot_chain c;
    long idx;
    int r = 0;

    if (!top || snapshot_chain_read(top, &c) < 0)
        return -1;
    idx = sd->base ? snapshot_chain_find(&c, sd->base) : -1;
    if (idx < 0) {
        vk_error(VK_ERR_INVALID,
                 "disk '%s' of domain '%s' no longer has the snapshot's base '%s' "
                 "in its backing chain.",
                 sd->target, d->name, sd->base ? sd->base : "(none)");
        snapshot_chain_clear(&c);
        return -1;
    }
    for (long i = 0; r == 0 && i < idx; i++)
        r = snapshot_unlink(c.items[i].path, "discarded overlay");
    r = r < 0 ? -1 : snapshot_unlink(sd->overlay, "discarded overlay");
    if (r == 0)
        r = bitmaps_drop(&c, (size_t)idx, bitmaps);
    if (r == 0) {
        char *create[] = {"create",    "-q",     "-f", "qcow2",
                          "-b",        sd->base, "-F", c.items[idx].format,
                          sd->overlay, NULL};
        CLEANUP_FREE char *what = vk_asprintf("cannot create the overlay '%s'", sd->overlay);
        r = what ? virt_qemu_img(create, NULL, what) : -1;
    }
    if (r == 0)
        r = snapshot_define_source(d, sd->target, sd->overlay, "qcow2");
    snapshot_chain_clear(&c);
    return r;
}

/* Mark S as libvirt's current snapshot again (for `snapshot list`). */
static void current_set(struct virt_domain *d, virDomainSnapshotPtr s)
{
    CLEANUP_FREE char *xml = virDomainSnapshotGetXMLDesc(s, 0);
    virDomainSnapshotPtr n = NULL;

    if (xml)
        n = virDomainSnapshotCreateXML(
            d->dom, xml, VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE | VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT);
    if (!n)
        vk_debug("cannot mark snapshot '%s' current", virDomainSnapshotGetName(s));
    else
        virDomainSnapshotFree(n);
}

/* Restore the memory state with the disks on their fresh overlays. */
static int memory_restore(struct virt_domain *d, const struct snapshot_info *info)
{
    CLEANUP_FREE char *xml = virDomainSaveImageGetXMLDesc(d->conn->conn, info->memory_file, 0);

    if (!xml) {
        virt_error_libvirt("cannot read the memory state file '%s'", info->memory_file);
        return -1;
    }
    for (size_t i = 0; i < info->nr_disks; i++) {
        char *n = snapshot_domain_xml_set_source(xml, info->disks[i].target, info->disks[i].overlay,
                                                 "qcow2");
        if (!n)
            return -1;
        free(xml);
        xml = n;
    }
    if (virDomainRestoreFlags(d->conn->conn, info->memory_file, xml, 0) < 0) {
        virt_error_libvirt("cannot restore domain '%s' from '%s'", d->name, info->memory_file);
        return -1;
    }
    return 0;
}

static int revert_check(struct virt_domain *d, const struct snapshot_info *info, unsigned int flags)
{
    int persistent = virt_domain_is_persistent(d);

    if (persistent < 0)
        return -1;
    if (!persistent) {
        vk_error(VK_ERR_INVALID,
                 "cannot revert transient domain '%s': it has no persistent "
                 "definition to point at the snapshot.",
                 d->name);
        return -1;
    }
    if (!info->external || info->nr_disks == 0) {
        vk_error(VK_ERR_UNSUPPORTED,
                 "snapshot '%s' of domain '%s' has no external disk: "
                 "virtkeep reverts external snapshots only.",
                 info->name, d->name);
        return -1;
    }
    if ((flags & SNAPSHOT_REVERT_MEMORY) && !info->memory_file) {
        vk_error(VK_ERR_INVALID, "snapshot '%s' of domain '%s' has no memory state.", info->name,
                 d->name);
        return -1;
    }
    return 0;
}

static int revert_disks(struct virt_domain *d, virDomainSnapshotPtr s,
                        const struct snapshot_info *info)
{
    CLEANUP_STRV char **bitmaps = NULL;

    if (descendants_drop(d, s) < 0)
        return -1;
    bitmaps = checkpoints_drop(d);
    if (!bitmaps)
        return -1;
    for (size_t i = 0; i < info->nr_disks; i++)
        if (disk_reset(d, &info->disks[i], bitmaps) < 0)
            return -1;
    current_set(d, s);
    return 0;
}

int snapshot_revert(struct virt_domain *d, const char *name, unsigned int flags)
{
    struct snapshot_info info;
    virDomainSnapshotPtr s = snapshot_lookup(d, name, &info);
    bool active = false;
    int r = -1;

    if (!s)
        return -1;
    if (revert_check(d, &info, flags) < 0 || snapshot_domain_active(d, &active) < 0)
        goto out;
    if (active && virDomainDestroy(d->dom) < 0) {
        virt_error_libvirt("cannot stop domain '%s'", d->name);
        goto out;
    }
    if (revert_disks(d, s, &info) < 0)
        goto out;
    if (flags & SNAPSHOT_REVERT_MEMORY)
        r = memory_restore(d, &info);
    else if (active && virDomainCreate(d->dom) < 0)
        virt_error_libvirt("cannot start domain '%s' again", d->name);
    else
        r = 0;
out:
    if (r < 0)
        vk_error_prefix("cannot revert domain '%s' to snapshot '%s'", d->name, name);
    virDomainSnapshotFree(s);
    snapshot_info_clear(&info);
    return r;
}
