/* virtkeep - delete an external snapshot: merge its overlays back into
 * their bases (see snapshot.h).
 *
 * Running domain: the active layer is merged with an active block commit,
 * waited on until it is ready (libvirt reports cur == end only then) and
 * pivoted; an inner layer with a plain block commit.  libvirt merges the
 * checkpoint bitmaps and updates the persistent definition.  Shut-off
 * domain: qemu-img commit, then the layer above is rebased (or the disk
 * points at the base again).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/snapshot/snapshot-int.h"
#include "src/snapshot/snapshot.h"

#define POLL_NS (50 * 1000 * 1000L)
#define JOB_TIMEOUT_S 3600

static void nap(void)
{
    struct timespec ts = {0, POLL_NS};
    nanosleep(&ts, NULL);
}

/* Wait until the block job on TARGET is ready (READY) or gone (!READY). */
static int job_wait(struct virt_domain *d, const char *target, bool ready)
{
    uint64_t deadline = vk_now_ns() + (uint64_t)JOB_TIMEOUT_S * 1000000000u;
    virDomainBlockJobInfo info;
    int r;

    while (vk_now_ns() < deadline) {
        r = virDomainGetBlockJobInfo(d->dom, target, &info, 0);
        if (r < 0) {
            virt_error_libvirt("cannot follow the block job on disk '%s' of domain '%s'", target,
                               d->name);
            return -1;
        }
        if (r == 0 && ready) {
            vk_error(VK_ERR_LIBVIRT,
                     "the block commit of disk '%s' of domain '%s' ended before "
                     "it was ready.",
                     target, d->name);
            return -1;
        }
        if (r == 0 || (ready && info.end > 0 && info.cur == info.end))
            return 0;
        nap();
    }
    vk_error(VK_ERR_LIBVIRT, "the block job on disk '%s' of domain '%s' did not finish in %d s.",
             target, d->name, JOB_TIMEOUT_S);
    return -1;
}

static int commit_active(struct virt_domain *d, const char *target, const char *base,
                         const char *top)
{
    if (virDomainBlockCommit(d->dom, target, base, top, 0, VIR_DOMAIN_BLOCK_COMMIT_ACTIVE) < 0) {
        virt_error_libvirt("cannot merge '%s' into '%s' (disk '%s' of domain '%s')", top, base,
                           target, d->name);
        return -1;
    }
    if (job_wait(d, target, true) < 0) {
        (void)virDomainBlockJobAbort(d->dom, target, 0);
        return -1;
    }
    if (virDomainBlockJobAbort(d->dom, target, VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) < 0) {
        virt_error_libvirt("cannot pivot disk '%s' of domain '%s' to '%s'", target, d->name, base);
        (void)virDomainBlockJobAbort(d->dom, target, 0);
        return -1;
    }
    return job_wait(d, target, false);
}

static int commit_inner(struct virt_domain *d, const char *target, const char *base,
                        const char *top)
{
    if (virDomainBlockCommit(d->dom, target, base, top, 0, 0) < 0) {
        virt_error_libvirt("cannot merge '%s' into '%s' (disk '%s' of domain '%s')", top, base,
                           target, d->name);
        return -1;
    }
    return job_wait(d, target, false);
}

static int commit_offline(struct virt_domain *d, const char *target, const struct snapshot_chain *c,
                          long idx)
{
    const struct snapshot_image *top = &c->items[idx], *base = &c->items[idx + 1];
    char *commit[] = {"commit", "-q", "-d", "-f", top->format, top->path, NULL};
    CLEANUP_FREE char *what = vk_asprintf("cannot merge '%s' into '%s'", top->path, base->path);

    if (!what || virt_qemu_img(commit, NULL, what) < 0)
        return -1;
    if (idx == 0)
        return snapshot_define_source(d, target, base->path, base->format);
    char *rebase[] = {"rebase",     "-u", "-f",       c->items[idx - 1].format, "-F",
                      base->format, "-b", base->path, c->items[idx - 1].path,   NULL};
    return virt_qemu_img(rebase, NULL, what);
}

/* Merge the overlay of one disk; *MERGED tells whether it was in the chain. */
static int disk_merge(struct virt_domain *d, const struct snapshot_disk *sd, bool active,
                      bool *merged)
{
    CLEANUP_FREE char *top = snapshot_disk_source(d, sd->target, active ? 0 : VIRT_XML_INACTIVE);
    struct snapshot_chain c;
    long idx;
    int r;

    *merged = false;
    if (!top || snapshot_chain_read(top, &c) < 0)
        return -1;
    idx = snapshot_chain_find(&c, sd->overlay);
    if (idx < 0 || (size_t)idx + 1 >= c.count) {
        vk_warn("domain '%s': disk '%s' no longer uses overlay '%s': nothing to merge", d->name,
                sd->target, sd->overlay);
        snapshot_chain_clear(&c);
        return 0;
    }
    vk_info("domain '%s': merging '%s' into '%s'", d->name, c.items[idx].path,
            c.items[idx + 1].path);
    if (!active)
        r = commit_offline(d, sd->target, &c, idx);
    else if (idx == 0)
        r = commit_active(d, sd->target, c.items[1].path, c.items[0].path);
    else
        r = commit_inner(d, sd->target, c.items[idx + 1].path, c.items[idx].path);
    snapshot_chain_clear(&c);
    *merged = r == 0;
    return r;
}

/* The direct children of the deleted snapshot saved OVERLAY as their disk
 * source: it is BASE now. */
static int children_rebase(struct virt_domain *d, virDomainSnapshotPtr *kids, int n,
                           const struct snapshot_disk *sd)
{
    for (int i = 0; i < n; i++) {
        CLEANUP_FREE char *xml = virDomainSnapshotGetXMLDesc(kids[i], 0);
        CLEANUP_FREE char *nxml =
            xml ? snapshot_xml_replace_base(xml, sd->overlay, sd->base) : NULL;
        virDomainSnapshotPtr s;

        if (!nxml)
            return -1;
        s = virDomainSnapshotCreateXML(d->dom, nxml, VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
        if (!s) {
            virt_error_libvirt("cannot update snapshot '%s' of domain '%s'",
                               virDomainSnapshotGetName(kids[i]), d->name);
            return -1;
        }
        virDomainSnapshotFree(s);
    }
    return 0;
}

static int metadata_drop(struct virt_domain *d, virDomainSnapshotPtr s,
                         const struct snapshot_info *info)
{
    virDomainSnapshotPtr *kids = NULL;
    int n = virDomainSnapshotListAllChildren(s, &kids, 0), r = 0;

    if (n < 0) {
        virt_error_libvirt("cannot list the children of snapshot '%s'", info->name);
        return -1;
    }
    if (virDomainSnapshotDelete(s, VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY) < 0) {
        virt_error_libvirt("cannot delete snapshot '%s' of domain '%s'", info->name, d->name);
        r = -1;
    }
    for (size_t i = 0; r == 0 && i < info->nr_disks; i++)
        if (info->disks[i].base)
            r = children_rebase(d, kids, n, &info->disks[i]);
    for (int i = 0; i < n; i++)
        virDomainSnapshotFree(kids[i]);
    free(kids);
    return r;
}

int snapshot_delete(struct virt_domain *d, const char *name, unsigned int flags)
{
    struct snapshot_info info;
    virDomainSnapshotPtr s = snapshot_lookup(d, name, &info);
    bool active, merged;
    int r = 0;

    (void)flags;
    if (!s)
        return -1;
    if (!info.external) {
        /* An internal snapshot: libvirt deletes those itself. */
        if (virDomainSnapshotDelete(s, 0) < 0) {
            virt_error_libvirt("cannot delete snapshot '%s' of domain '%s'", name, d->name);
            r = -1;
        }
        goto out;
    }
    if (snapshot_domain_active(d, &active) < 0) {
        r = -1;
        goto out;
    }
    for (size_t i = 0; r == 0 && i < info.nr_disks; i++) {
        r = disk_merge(d, &info.disks[i], active, &merged);
        if (r == 0 && merged)
            r = snapshot_unlink(info.disks[i].overlay, "merged overlay");
    }
    if (r == 0)
        r = metadata_drop(d, s, &info);
    if (r == 0)
        r = snapshot_unlink(info.memory_file, "memory state file");
    if (r < 0)
        vk_error_prefix("cannot delete snapshot '%s' of domain '%s'", name, d->name);
out:
    virDomainSnapshotFree(s);
    snapshot_info_clear(&info);
    return r;
}
