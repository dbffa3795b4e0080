/* virtkeep - checkpoints (see virt.h): listing, creating, redefining and
 * deleting ours through libvirt, and the chain hygiene around them: checking
 * that a checkpoint can serve an incremental, discarding a broken one with
 * its bitmaps, and creating one for a shut-off domain with qemu-img.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/virt/virt-int.h"
#include "src/virt/virt.h"

/* ---------------------------------------------------------------- checkpoints */

bool virt_checkpoint_is_ours(const char *name)
{
    return name && strncmp(name, VIRT_CHECKPOINT_PREFIX, strlen(VIRT_CHECKPOINT_PREFIX)) == 0 &&
           name[strlen(VIRT_CHECKPOINT_PREFIX)] != '\0';
}

char *virt_checkpoint_name_new(void)
{
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    unsigned int rnd = 0;

    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (unsigned int)vk_now_ns();
    if (!gmtime_r(&now, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0) {
        vk_error(VK_ERR_INTERNAL, "cannot format the current time.");
        return NULL;
    }
    return vk_asprintf("%s%s-%04x", VIRT_CHECKPOINT_PREFIX, stamp, rnd & 0xffff);
}

static void checkpoints_free(virDomainCheckpointPtr *cps, int n)
{
    for (int i = 0; cps && i < n; i++)
        virDomainCheckpointFree(cps[i]);
    free(cps);
}

char **virt_checkpoint_list(struct virt_domain *d, unsigned int flags)
{
    virDomainCheckpointPtr *cps = NULL;
    CLEANUP_STRV char **names = NULL;
    size_t k = 0;
    int n;

    n = virDomainListAllCheckpoints(d->dom, &cps, VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL);
    if (n < 0) {
        virt_error_libvirt("cannot list the checkpoints of domain '%s'", d->name);
        return NULL;
    }
    names = vk_calloc((size_t)n + 1, sizeof(*names));
    for (int i = 0; names && i < n; i++) {
        const char *name = virDomainCheckpointGetName(cps[i]);
        if (!name || (!(flags & VIRT_CHECKPOINT_LIST_ALL) && !virt_checkpoint_is_ours(name)))
            continue;
        names[k] = vk_strdup(name);
        if (!names[k++]) {
            checkpoints_free(cps, n);
            return NULL;
        }
    }
    checkpoints_free(cps, n);
    return names ? VK_STEAL(names) : NULL;
}

/* Look up checkpoint NAME; NULL with VK_ERR_NOT_FOUND when it is absent. */
static virDomainCheckpointPtr checkpoint_get(struct virt_domain *d, const char *name)
{
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(d->dom, name, 0);

    if (!cp) {
        virt_error_libvirt("cannot find checkpoint '%s' of domain '%s'", name, d->name);
        if (vk_error_code() == VK_ERR_NOT_FOUND)
            virt_failure_set(VIRT_FAIL_CHECKPOINT_MISSING);
    }
    return cp;
}

int virt_checkpoint_exists(struct virt_domain *d, const char *name)
{
    virDomainCheckpointPtr cp = checkpoint_get(d, name);

    if (cp) {
        virDomainCheckpointFree(cp);
        return 1;
    }
    if (vk_error_code() != VK_ERR_NOT_FOUND)
        return -1;
    vk_error_clear();
    virt_failure_set(VIRT_FAIL_NONE);
    return 0;
}

char *virt_checkpoint_get_xml(struct virt_domain *d, const char *name)
{
    virDomainCheckpointPtr cp = checkpoint_get(d, name);
    char *xml, *r;

    if (!cp)
        return NULL;
    xml = virDomainCheckpointGetXMLDesc(cp, 0);
    if (!xml)
        virt_error_libvirt("cannot get the XML of checkpoint '%s' of domain '%s'", name, d->name);
    virDomainCheckpointFree(cp);
    r = xml ? vk_strdup(xml) : NULL;
    free(xml);
    return r;
}

char *virt_checkpoint_current(struct virt_domain *d)
{
    CLEANUP_STRV char **names = virt_checkpoint_list(d, 0);
    char *best = NULL;
    int64_t best_time = -1;

    if (!names)
        return NULL;
    /* Topological order puts parents first; the newest creation time wins,
     * and among equal times the later one in that order. */
    for (size_t i = 0; names[i]; i++) {
        CLEANUP_FREE char *xml = virt_checkpoint_get_xml(d, names[i]);
        int64_t t = xml ? virt_checkpoint_xml_get_creation_time(xml) : -1;
        if (!xml)
            return NULL;
        if (t >= best_time) {
            best_time = t;
            best = names[i];
        }
    }
    if (!best) {
        vk_error(VK_ERR_NOT_FOUND, "domain '%s' has no virtkeep checkpoint.", d->name);
        return NULL;
    }
    return vk_strdup(best);
}

static int checkpoint_create_xml(struct virt_domain *d, const char *xml, unsigned int lvflags,
                                 const char *verb)
{
    CLEANUP_FREE char *name = virt_checkpoint_xml_get_name(xml);
    virDomainCheckpointPtr cp;

    if (!name)
        return -1;
    if (!virt_checkpoint_is_ours(name)) {
        vk_error(VK_ERR_INVALID,
                 "cannot %s checkpoint '%s' of domain '%s': its name does not "
                 "start with '" VIRT_CHECKPOINT_PREFIX "'.",
                 verb, name, d->name);
        return -1;
    }
    cp = virDomainCheckpointCreateXML(d->dom, xml, lvflags);
    if (!cp) {
        virt_error_libvirt("cannot %s checkpoint '%s' of domain '%s'", verb, name, d->name);
        return -1;
    }
    virDomainCheckpointFree(cp);
    return 0;
}

int virt_checkpoint_create(struct virt_domain *d, const char *xml, unsigned int flags)
{
    (void)flags;
    virt_failure_set(VIRT_FAIL_NONE);
    return checkpoint_create_xml(d, xml, 0, "create");
}

int virt_checkpoint_redefine(struct virt_domain *d, const char *xml, unsigned int flags)
{
    unsigned int lvflags = VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE;

    virt_failure_set(VIRT_FAIL_NONE);
    if (flags & VIRT_CHECKPOINT_VALIDATE)
        lvflags |= VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE;
    return checkpoint_create_xml(d, xml, lvflags, "redefine");
}

int virt_checkpoint_delete(struct virt_domain *d, const char *name, unsigned int flags)
{
    virDomainCheckpointPtr cp;
    int r;

    virt_failure_set(VIRT_FAIL_NONE);
    if (!virt_checkpoint_is_ours(name)) {
        vk_error(VK_ERR_INVALID,
                 "refusing to delete checkpoint '%s' of domain '%s': it does "
                 "not belong to virtkeep.",
                 name, d->name);
        return -1;
    }
    cp = checkpoint_get(d, name);
    if (!cp) {
        if (vk_error_code() != VK_ERR_NOT_FOUND)
            return -1;
        vk_error_clear();
        virt_failure_set(VIRT_FAIL_NONE);
        return 0;
    }
    r = virDomainCheckpointDelete(
        cp, flags & VIRT_CHECKPOINT_METADATA_ONLY ? VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY : 0);
    if (r < 0)
        virt_error_libvirt("cannot delete checkpoint '%s' of domain '%s'", name, d->name);
    virDomainCheckpointFree(cp);
    return r < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- chain hygiene */

/* Whether disk D of DISKS takes part in a bitmap checkpoint. */
static bool disk_has_bitmap(const struct virt_disk *d, char *const *selected)
{
    return !d->skip && !d->full_only && vk_strv_contains(selected, d->target);
}

static int domain_is_shutoff(struct virt_domain *d, bool *shutoff)
{
    enum virt_domain_state st;

    if (virt_domain_get_state(d, &st) < 0)
        return -1;
    *shutoff = st == VIRT_DOMAIN_SHUTOFF;
    return 0;
}

/* Shut-off domain: each bitmap NAME must be in its image and not in-use. */
static int check_offline(struct virt_domain *d, const char *name,
                         const struct virt_disk_list *disks, char *const *selected)
{
    for (size_t i = 0; i < disks->nr; i++) {
        const struct virt_disk *disk = &disks->disks[i];
        enum virt_bitmap_state st;

        if (!disk_has_bitmap(disk, selected) || !disk->source)
            continue;
        if (virt_image_bitmap_state(disk->source, name, &st) < 0)
            return -1;
        if (st == VIRT_BITMAP_OK)
            continue;
        virt_failure_set(st == VIRT_BITMAP_ABSENT ? VIRT_FAIL_CHECKPOINT_MISSING
                                                  : VIRT_FAIL_CHECKPOINT_INCONSISTENT);
        vk_error(VK_ERR_LIBVIRT,
                 "checkpoint '%s' of domain '%s' cannot be used: disk '%s' (%s) %s.", name, d->name,
                 disk->target, disk->source,
                 st == VIRT_BITMAP_ABSENT ? "has no such bitmap"
                                          : "has the bitmap left in-use by a QEMU that crashed");
        return -1;
    }
    return 0;
}

int virt_checkpoint_check(struct virt_domain *d, const char *name,
                          const struct virt_disk_list *disks, char *const *selected,
                          unsigned int flags)
{
    CLEANUP_FREE char *xml = NULL;
    bool shutoff;

    (void)flags;
    xml = virt_checkpoint_get_xml(d, name);
    if (!xml || domain_is_shutoff(d, &shutoff) < 0)
        return -1;
    if (shutoff)
        return check_offline(d, name, disks, selected);
    /* Redefining a checkpoint as it is, with validation, makes libvirt look
     * at the live bitmaps: in-use or missing ones fail with error 109. */
    if (virt_checkpoint_redefine(d, xml, VIRT_CHECKPOINT_VALIDATE) < 0) {
        vk_error_prefix("checkpoint '%s' of domain '%s' cannot be used", name, d->name);
        return -1;
    }
    return 0;
}

/* The qcow2 format nodes of a running domain that hold bitmap NAME. */
static json_object *monitor_nodes(struct virt_domain *d)
{
    const char *cmd = "{\"execute\":\"query-named-block-nodes\",\"arguments\":{\"flat\":true}}";
    char *reply = NULL;
    json_object *j;

    if (virDomainQemuMonitorCommand(d->dom, cmd, &reply, 0) < 0) {
        virt_error_libvirt("cannot list the block nodes of domain '%s'", d->name);
        return NULL;
    }
    j = json_tokener_parse(reply);
    free(reply);
    if (!j)
        vk_error(VK_ERR_LIBVIRT, "cannot parse the block nodes of domain '%s'.", d->name);
    return j;
}

static bool node_has_bitmap(json_object *node, const char *name)
{
    json_object *bitmaps, *bname;

    if (!json_object_object_get_ex(node, "dirty-bitmaps", &bitmaps))
        return false;
    for (size_t i = 0; i < json_object_array_length(bitmaps); i++) {
        json_object *b = json_object_array_get_idx(bitmaps, i);
        if (json_object_object_get_ex(b, "name", &bname) &&
            strcmp(json_object_get_string(bname), name) == 0)
            return true;
    }
    return false;
}

static int monitor_bitmap_remove(struct virt_domain *d, const char *node, const char *name)
{
    CLEANUP_FREE char *cmd = NULL;
    json_object *args = json_object_new_object();
    char *reply = NULL;
    int r;

    if (!args)
        return -1;
    json_object_object_add(args, "node", json_object_new_string(node));
    json_object_object_add(args, "name", json_object_new_string(name));
    cmd = vk_asprintf("{\"execute\":\"block-dirty-bitmap-remove\",\"arguments\":%s}",
                      json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN));
    json_object_put(args);
    if (!cmd)
        return -1;
    r = virDomainQemuMonitorCommand(d->dom, cmd, &reply, 0);
    free(reply);
    if (r < 0)
        virt_error_libvirt("cannot remove bitmap '%s' from node '%s' of domain '%s'", name, node,
                           d->name);
    return r < 0 ? -1 : 0;
}

/* Running domain: remove bitmap NAME from every node that still has it. */
static int discard_running(struct virt_domain *d, const char *name)
{
    json_object *nodes, *ret, *nn;
    int r = 0;

    nodes = monitor_nodes(d);
    if (!nodes)
        return -1;
    if (!json_object_object_get_ex(nodes, "return", &ret) ||
        !json_object_is_type(ret, json_type_array)) {
        json_object_put(nodes);
        vk_error(VK_ERR_LIBVIRT, "unexpected block node list from domain '%s'.", d->name);
        return -1;
    }
    for (size_t i = 0; r == 0 && i < json_object_array_length(ret); i++) {
        json_object *node = json_object_array_get_idx(ret, i);
        if (node_has_bitmap(node, name) && json_object_object_get_ex(node, "node-name", &nn))
            r = monitor_bitmap_remove(d, json_object_get_string(nn), name);
    }
    json_object_put(nodes);
    return r;
}

static int discard_offline(const char *name, const struct virt_disk_list *disks,
                           char *const *selected)
{
    for (size_t i = 0; i < disks->nr; i++) {
        const struct virt_disk *disk = &disks->disks[i];
        if (disk->fmt == VIRT_FORMAT_QCOW2 && disk->source && !disk->skip &&
            (!selected || vk_strv_contains(selected, disk->target)) &&
            virt_image_bitmap_remove(disk->source, name) < 0)
            return -1;
    }
    return 0;
}

int virt_checkpoint_discard(struct virt_domain *d, const char *name,
                            const struct virt_disk_list *disks, char *const *selected,
                            unsigned int flags)
{
    enum virt_failure why = virt_last_failure();
    bool shutoff;
    int r;

    (void)flags;
    if (virt_checkpoint_delete(d, name, VIRT_CHECKPOINT_METADATA_ONLY) < 0 ||
        domain_is_shutoff(d, &shutoff) < 0)
        return -1;
    r = shutoff ? discard_offline(name, disks, selected) : discard_running(d, name);
    if (r == 0) {
        vk_debug("discarded checkpoint '%s' of domain '%s' and its bitmaps", name, d->name);
        virt_failure_set(why); /* the reason for the full stays visible */
    }
    return r;
}

static int bitmaps_add(const char *name, const struct virt_disk_list *disks, char *const *selected,
                       size_t *added)
{
    for (*added = 0; *added < disks->nr; (*added)++) {
        const struct virt_disk *disk = &disks->disks[*added];
        if (disk_has_bitmap(disk, selected) && virt_image_bitmap_add(disk->source, name) < 0)
            return -1;
    }
    return 0;
}

static void bitmaps_undo(const char *name, const struct virt_disk_list *disks,
                         char *const *selected, size_t added)
{
    for (size_t i = 0; i < added; i++) {
        const struct virt_disk *disk = &disks->disks[i];
        if (disk_has_bitmap(disk, selected))
            (void)virt_image_bitmap_remove(disk->source, name);
    }
}

static int offline_precheck(struct virt_domain *d, const struct virt_disk_list *disks,
                            char *const *selected)
{
    bool shutoff;

    if (domain_is_shutoff(d, &shutoff) < 0)
        return -1;
    if (!shutoff) {
        vk_error(VK_ERR_INVALID,
                 "cannot add bitmaps to the images of domain '%s': it is not "
                 "shut off.",
                 d->name);
        return -1;
    }
    for (size_t i = 0; i < disks->nr; i++) {
        if (disk_has_bitmap(&disks->disks[i], selected) && !disks->disks[i].source) {
            vk_error(VK_ERR_UNSUPPORTED,
                     "cannot add a bitmap to disk '%s' of domain '%s': "
                     "it has no local image.",
                     disks->disks[i].target, d->name);
            return -1;
        }
    }
    return 0;
}

char *virt_checkpoint_create_offline(struct virt_domain *d, const char *name, const char *parent,
                                     const struct virt_disk_list *disks, char *const *selected,
                                     unsigned int flags)
{
    CLEANUP_FREE char *xml = NULL;
    size_t added = 0;

    (void)flags;
    virt_failure_set(VIRT_FAIL_NONE);
    if (!virt_checkpoint_is_ours(name)) {
        vk_error(VK_ERR_INVALID,
                 "cannot create checkpoint '%s' of domain '%s': its name does "
                 "not start with '" VIRT_CHECKPOINT_PREFIX "'.",
                 name, d->name);
        return NULL;
    }
    if (offline_precheck(d, disks, selected) < 0)
        return NULL;
    xml = virt_checkpoint_xml_build(name, parent, (int64_t)time(NULL), disks, selected,
                                    VIRT_XML_BITMAP_NAMES);
    if (!xml)
        return NULL;
    if (bitmaps_add(name, disks, selected, &added) < 0 || virt_checkpoint_redefine(d, xml, 0) < 0) {
        /* Keep the first error: the undo may record its own. */
        CLEANUP_FREE char *msg = vk_strdup(vk_error_message());
        enum vk_error_code code = vk_error_code();
        enum virt_failure why = virt_last_failure();

        bitmaps_undo(name, disks, selected, added);
        vk_error(code, "%s", msg ? msg : "cannot create an offline checkpoint.");
        virt_failure_set(why);
        return NULL;
    }
    return VK_STEAL(xml);
}
