/* virtkeep - external snapshots: shared helpers, create and list
 * (see snapshot.h).  delete lives in snapshot-delete.c, revert in
 * snapshot-revert.c. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/virterror.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/snapshot/snapshot-int.h"
#include "src/snapshot/snapshot.h"

/* ---------------------------------------------------------------- backing chains */

void snapshot_chain_clear(struct snapshot_chain *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->count; i++) {
        free(c->items[i].path);
        free(c->items[i].format);
    }
    free(c->items);
    c->items = NULL;
    c->count = 0;
}

static int chain_fill(json_object *arr, const char *top, struct snapshot_chain *c)
{
    size_t n = json_object_array_length(arr);

    c->items = vk_calloc(n ? n : 1, sizeof(*c->items));
    if (!c->items)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_object *img = json_object_array_get_idx(arr, i), *f, *fmt;
        if (!json_object_object_get_ex(img, "filename", &f) ||
            !json_object_object_get_ex(img, "format", &fmt)) {
            vk_error(VK_ERR_INVALID, "qemu-img info of '%s' lacks a filename or format.", top);
            return -1;
        }
        c->items[i].path = vk_strdup(json_object_get_string(f));
        c->items[i].format = vk_strdup(json_object_get_string(fmt));
        c->count++;
        if (!c->items[i].path || !c->items[i].format)
            return -1;
    }
    return 0;
}

int snapshot_chain_read(const char *top, struct snapshot_chain *out)
{
    char *args[] = {"info", "-U", "--backing-chain", "--output=json", (char *)top, NULL};
    CLEANUP_FREE char *what = vk_asprintf("cannot read the backing chain of '%s'", top);
    CLEANUP_FREE char *json = NULL;
    json_object *arr;
    int r;

    memset(out, 0, sizeof(*out));
    if (!what || virt_qemu_img(args, &json, what) < 0)
        return -1;
    arr = json_tokener_parse(json);
    if (!arr || !json_object_is_type(arr, json_type_array)) {
        json_object_put(arr);
        vk_error(VK_ERR_INVALID, "%s: qemu-img printed no JSON array.", what);
        return -1;
    }
    r = chain_fill(arr, top, out);
    json_object_put(arr);
    if (r < 0)
        snapshot_chain_clear(out);
    return r;
}

bool snapshot_same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    if (!a || !b)
        return false;
    if (strcmp(a, b) == 0)
        return true;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

long snapshot_chain_find(const struct snapshot_chain *c, const char *path)
{
    for (size_t i = 0; i < c->count; i++)
        if (snapshot_same_file(c->items[i].path, path))
            return (long)i;
    return -1;
}

int snapshot_unlink(const char *path, const char *what)
{
    if (path && unlink(path) < 0 && errno != ENOENT) {
        vk_error_errno(errno, "cannot remove the %s '%s'", what, path);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- domains */

int snapshot_domain_active(struct virt_domain *d, bool *active)
{
    int r = virDomainIsActive(d->dom);

    if (r < 0) {
        virt_error_libvirt("cannot get the state of domain '%s'", d->name);
        return -1;
    }
    *active = r == 1;
    return 0;
}

char *snapshot_disk_source(struct virt_domain *d, const char *target, unsigned int xml_flags)
{
    CLEANUP_FREE char *xml = virt_domain_get_xml(d, xml_flags);
    struct virt_disk_list disks = {0};
    struct virt_disk *disk;
    char *r = NULL;

    if (!xml || virt_disks_parse(xml, &disks) < 0)
        return NULL;
    disk = virt_disks_find(&disks, target);
    if (!disk || !disk->source)
        vk_error(VK_ERR_NOT_FOUND, "domain '%s' has no disk '%s' with a source.", d->name, target);
    else
        r = vk_strdup(disk->source);
    virt_disks_clear(&disks);
    return r;
}

int snapshot_define_source(struct virt_domain *d, const char *target, const char *path,
                           const char *format)
{
    CLEANUP_FREE char *xml = virt_domain_get_xml(d, VIRT_XML_INACTIVE);
    CLEANUP_FREE char *nxml = NULL;
    virDomainPtr dom;

    if (!xml)
        return -1;
    nxml = snapshot_domain_xml_set_source(xml, target, path, format);
    if (!nxml)
        return -1;
    dom = virDomainDefineXML(d->conn->conn, nxml);
    if (!dom) {
        virt_error_libvirt("cannot point disk '%s' of domain '%s' at '%s'", target, d->name, path);
        return -1;
    }
    virDomainFree(dom);
    vk_debug("disk '%s' of domain '%s' now uses '%s'", target, d->name, path);
    return 0;
}

int snapshot_info_get(struct virt_domain *d, virDomainSnapshotPtr s, struct snapshot_info *info)
{
    CLEANUP_FREE char *xml = virDomainSnapshotGetXMLDesc(s, 0);
    const char *name = virDomainSnapshotGetName(s);

    if (!xml) {
        virt_error_libvirt("cannot get the XML of snapshot '%s' of domain '%s'", name, d->name);
        return -1;
    }
    if (snapshot_xml_parse(xml, info) < 0) {
        vk_error_prefix("snapshot '%s' of domain '%s'", name, d->name);
        return -1;
    }
    info->current = virDomainSnapshotIsCurrent(s, 0) == 1;
    return 0;
}

virDomainSnapshotPtr snapshot_lookup(struct virt_domain *d, const char *name,
                                     struct snapshot_info *info)
{
    virDomainSnapshotPtr s = virDomainSnapshotLookupByName(d->dom, name, 0);

    if (!s) {
        virErrorPtr e = virGetLastError();
        if (!e || e->code == VIR_ERR_NO_DOMAIN_SNAPSHOT)
            vk_error(VK_ERR_NOT_FOUND, "domain '%s' has no snapshot '%s'.", d->name, name);
        else
            virt_error_libvirt("cannot look up snapshot '%s' of domain '%s'", name, d->name);
        return NULL;
    }
    if (info && snapshot_info_get(d, s, info) < 0) {
        virDomainSnapshotFree(s);
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- create */

static char *memory_file_default(struct virt_domain *d, const struct snapshot_create_options *o,
                                 const char *name, const struct snapshot_info *plan)
{
    CLEANUP_FREE char *first = NULL;
    char *slash;

    if (o->memory_file)
        return vk_strdup(o->memory_file);
    if (o->dir)
        return vk_asprintf("%s/%s.%s.mem", o->dir, d->name, name);
    first = vk_strdup(plan->disks[0].overlay);
    if (!first)
        return NULL;
    slash = strrchr(first, '/');
    if (slash)
        *slash = '\0';
    return vk_asprintf("%s/%s.%s.mem", slash ? first : ".", d->name, name);
}

/* The snapshot XML, after checking that no overlay or memory file exists. */
static char *create_xml(struct virt_domain *d, const struct snapshot_create_options *o,
                        const char *name, const struct virt_disk_list *disks)
{
    CLEANUP_FREE char *plain = snapshot_xml_build(name, disks, o->dir, NULL, 0);
    CLEANUP_FREE char *mem = NULL;
    struct snapshot_info plan;

    if (!plain || snapshot_xml_parse(plain, &plan) < 0)
        return NULL;
    for (size_t i = 0; i < plan.nr_disks; i++) {
        if (access(plan.disks[i].overlay, F_OK) == 0) {
            vk_error(VK_ERR_INVALID,
                     "cannot create snapshot '%s' of domain '%s': the overlay '%s'"
                     " of disk '%s' already exists.",
                     name, d->name, plan.disks[i].overlay, plan.disks[i].target);
            snapshot_info_clear(&plan);
            return NULL;
        }
    }
    if (!(o->flags & SNAPSHOT_MEMORY)) {
        snapshot_info_clear(&plan);
        return VK_STEAL(plain);
    }
    mem = memory_file_default(d, o, name, &plan);
    snapshot_info_clear(&plan);
    if (mem && access(mem, F_OK) == 0) {
        vk_error(VK_ERR_INVALID,
                 "cannot create snapshot '%s' of domain '%s': the memory file "
                 "'%s' already exists.",
                 name, d->name, mem);
        return NULL;
    }
    return mem ? snapshot_xml_build(name, disks, o->dir, mem, SNAPSHOT_MEMORY) : NULL;
}

static int create_check(struct virt_domain *d, const struct snapshot_create_options *o,
                        const char *name)
{
    virDomainSnapshotPtr s;
    bool active;

    if (snapshot_name_check(name) < 0 || snapshot_domain_active(d, &active) < 0)
        return -1;
    if ((o->flags & SNAPSHOT_MEMORY) && !active) {
        vk_error(VK_ERR_INVALID,
                 "cannot take a memory snapshot of domain '%s': it is not "
                 "running.",
                 d->name);
        return -1;
    }
    if ((o->flags & SNAPSHOT_QUIESCE) && !active) {
        vk_error(VK_ERR_INVALID, "cannot quiesce domain '%s': it is not running.", d->name);
        return -1;
    }
    s = virDomainSnapshotLookupByName(d->dom, name, 0);
    if (s) {
        virDomainSnapshotFree(s);
        vk_error(VK_ERR_INVALID, "domain '%s' already has a snapshot '%s'.", d->name, name);
        return -1;
    }
    return 0;
}

static void create_error(struct virt_domain *d, const char *name, unsigned int flags)
{
    virErrorPtr e = virGetLastError();
    const char *msg = e && e->message ? e->message : "";

    if ((flags & SNAPSHOT_QUIESCE) &&
        virt_failure_classify(e ? e->code : 0, msg) == VIRT_FAIL_NO_AGENT) {
        vk_error(VK_ERR_UNSUPPORTED,
                 "cannot quiesce domain '%s' for snapshot '%s': the domain has no responding "
                 "guest agent (%s); retry without --quiesce.",
                 d->name, name, msg);
        return;
    }
    virt_error_libvirt("cannot create snapshot '%s' of domain '%s'", name, d->name);
}

int snapshot_create(struct virt_domain *d, const struct snapshot_create_options *o,
                    struct snapshot_info *out)
{
    CLEANUP_FREE char *name = o->name ? vk_strdup(o->name) : snapshot_name_default(time(NULL));
    CLEANUP_FREE char *dxml = NULL, *sxml = NULL;
    struct virt_disk_list disks = {0};
    unsigned int lvflags = VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
    virDomainSnapshotPtr s;
    int r;

    memset(out, 0, sizeof(*out));
    if (!name || create_check(d, o, name) < 0)
        return -1;
    dxml = virt_domain_get_xml(d, 0);
    if (!dxml || virt_disks_parse(dxml, &disks) < 0)
        return -1;
    sxml = create_xml(d, o, name, &disks);
    virt_disks_clear(&disks);
    if (!sxml)
        return -1;
    if (!(o->flags & SNAPSHOT_MEMORY))
        lvflags |= VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY;
    if (o->flags & SNAPSHOT_QUIESCE)
        lvflags |= VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE;
    vk_debug("creating snapshot of domain '%s':\n%s", d->name, sxml);
    s = virDomainSnapshotCreateXML(d->dom, sxml, lvflags);
    if (!s) {
        create_error(d, name, o->flags);
        return -1;
    }
    r = snapshot_info_get(d, s, out);
    virDomainSnapshotFree(s);
    return r;
}

/* ---------------------------------------------------------------- list */

static int info_cmp(const void *a, const void *b)
{
    const struct snapshot_info *x = a, *y = b;

    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->name, y->name);
}

int snapshot_list(struct virt_domain *d, struct snapshot_list *out, unsigned int flags)
{
    virDomainSnapshotPtr *snaps = NULL;
    int n = virDomainListAllSnapshots(d->dom, &snaps, 0), r = 0;

    (void)flags;
    memset(out, 0, sizeof(*out));
    if (n < 0) {
        virt_error_libvirt("cannot list the snapshots of domain '%s'", d->name);
        return -1;
    }
    out->items = vk_calloc(n ? (size_t)n : 1, sizeof(*out->items));
    for (int i = 0; i < n; i++) {
        if (r == 0 && out->items && snapshot_info_get(d, snaps[i], &out->items[i]) == 0)
            out->count++;
        else
            r = -1;
        virDomainSnapshotFree(snaps[i]);
    }
    free(snaps);
    if (r < 0 || !out->items) {
        snapshot_list_clear(out);
        return -1;
    }
    qsort(out->items, out->count, sizeof(*out->items), info_cmp);
    return 0;
}
