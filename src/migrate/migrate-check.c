/* virtkeep - migration pre-checks: everything is checked and reported
 * together before anything moves.
 *
 * reachable  the destination connection opened
 * cpu        virConnectCompareHypervisorCPU on the destination with the CPU
 *            the guest sees (see cpu_xml_pick)
 * memory     the destination's free memory against the domain's memory
 * storage    one check per disk: shared storage must be visible at the same
 *            path; with --copy-storage the destination image must exist or
 *            be creatable (room, directory), and is created if missing
 * name/uuid  no domain of that name or UUID on the destination
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/tree.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"
#include "common/xml.h"
#include "src/migrate/migrate.h"
#include "src/virt/virt.h"

/* ---------------------------------------------------------------- report */

const char *migrate_check_status_name(enum migrate_check_status status)
{
    switch (status) {
    case MIGRATE_CHECK_PASS:
        return "pass";
    case MIGRATE_CHECK_FAIL:
        return "fail";
    case MIGRATE_CHECK_SKIP:
        return "skip";
    }
    return "unknown";
}

int migrate_report_add(struct migrate_report *r, const char *name, enum migrate_check_status status,
                       const char *fmt, ...)
{
    struct migrate_check *items, *c;
    va_list ap;

    items = vk_realloc_array(r->items, r->nr + 1, sizeof(*items));
    if (!items)
        return -1;
    r->items = items;
    c = &items[r->nr];
    c->status = status;
    c->name = vk_strdup(name);
    va_start(ap, fmt);
    if (vasprintf(&c->detail, fmt, ap) < 0)
        c->detail = NULL;
    va_end(ap);
    if (!c->name || !c->detail) {
        free(c->name);
        free(c->detail);
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    r->nr++;
    if (status == MIGRATE_CHECK_FAIL)
        r->failed++;
    return 0;
}

int migrate_report_created(struct migrate_report *r, const char *path)
{
    size_t n = vk_strv_len(r->created);
    char **v = vk_realloc_array(r->created, n + 2, sizeof(char *));

    if (!v)
        return -1;
    r->created = v;
    v[n] = vk_strdup(path);
    v[n + 1] = NULL;
    return v[n] ? 0 : -1;
}

void migrate_report_remove_created(struct migrate_report *r)
{
    for (size_t i = 0; r->created && r->created[i]; i++)
        if (unlink(r->created[i]) < 0 && errno != ENOENT)
            vk_warn("cannot remove image '%s' created for the migration: %s", r->created[i],
                    strerror(errno));
    vk_strv_free(r->created);
    r->created = NULL;
}

char *migrate_report_failures(const struct migrate_report *r)
{
    char *out = NULL, *next;

    for (size_t i = 0; i < r->nr; i++) {
        if (r->items[i].status != MIGRATE_CHECK_FAIL)
            continue;
        next = out ? vk_asprintf("%s, %s", out, r->items[i].name) : vk_strdup(r->items[i].name);
        free(out);
        if (!next)
            return NULL;
        out = next;
    }
    return out;
}

char *migrate_report_describe(const struct migrate_report *r)
{
    char *out = NULL, *next;

    for (size_t i = 0; i < r->nr; i++) {
        const struct migrate_check *c = &r->items[i];
        if (c->status != MIGRATE_CHECK_FAIL)
            continue;
        next = out ? vk_asprintf("%s; %s: %s", out, c->name, c->detail)
                   : vk_asprintf("%s: %s", c->name, c->detail);
        free(out);
        if (!next)
            return NULL;
        out = next;
    }
    return out;
}

void migrate_report_clear(struct migrate_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nr; i++) {
        free(r->items[i].name);
        free(r->items[i].detail);
    }
    free(r->items);
    vk_strv_free(r->created);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------- pure helpers */

bool migrate_memory_fits(uint64_t free_bytes, uint64_t need_bytes)
{
    return need_bytes <= free_bytes;
}

char *migrate_dest_path(const char *source, const char *dest_dir)
{
    const char *base;
    size_t len;

    if (!dest_dir)
        return vk_strdup(source);
    base = strrchr(source, '/');
    base = base ? base + 1 : source;
    len = strlen(dest_dir);
    while (len > 1 && dest_dir[len - 1] == '/')
        len--;
    return vk_asprintf("%.*s/%s", (int)len, dest_dir, base);
}

/* ---------------------------------------------------------------- XML */

static int move_one_source(xmlNode *src, const char *dest_dir)
{
    CLEANUP_FREE char *file = NULL;
    CLEANUP_FREE char *dst = NULL;

    if (vk_xml_attr_get(src, "file", &file) < 0)
        return -1;
    if (!file)
        return 0;
    dst = migrate_dest_path(file, dest_dir);
    if (!dst || !xmlSetProp(src, BAD_CAST "file", BAD_CAST dst)) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    return 0;
}

char *migrate_xml_move_disks(const char *xml, const char *dest_dir)
{
    CLEANUP_XMLDOC xmlDoc *doc = NULL;
    CLEANUP_FREE xmlNode **sources = NULL;
    int n;

    if (!dest_dir)
        return vk_strdup(xml);
    if (!(doc = vk_xml_parse_str(xml, VK_ERR_INVALID, "domain XML")))
        return NULL;
    n = vk_xml_xpath_nodes(doc, "/domain/devices/disk[@device='disk' or not(@device)]/source",
                           &sources);
    for (int i = 0; i < n; i++)
        if (move_one_source(sources[i], dest_dir) < 0)
            return NULL;
    return n < 0 ? NULL : vk_xml_dump(doc, false, "domain XML");
}

/* ---------------------------------------------------------------- checks */

/* Say what a libvirt failure was, in a check's detail. */
static const char *lv_message(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

/* The CPU XML that stands for what the guest sees, and why.  DOC is the
 * live XML of a running domain: libvirt writes there the CPU QEMU really
 * gave the guest (model and adjusted features), which the migratable XML
 * leaves out.
 * - host-passthrough: the guest sees the source host's CPU, so the source
 *   host CPU (from its capabilities) is compared;
 * - host-model without an expanded <model> (a shut-off domain): the
 *   source host's CPU too, the model QEMU would derive from it;
 * - custom (and a running host-model domain, whose live XML carries the
 *   expanded model): the domain's own <cpu>;
 * - no <cpu> at all, or a model with check='none' (how libvirt records
 *   the default model of a shut-off domain): QEMU fits the model to
 *   whichever host starts it and libvirt verifies nothing, so there is
 *   nothing to compare (NULL, with *WHY saying so).  Once running, the
 *   live XML says check='full' with the real features, and is compared. */
static char *cpu_xml_pick(xmlDoc *doc, virConnectPtr sconn, char **why)
{
    CLEANUP_FREE char *mode = vk_xml_xpath_string(doc, "string(/domain/cpu/@mode)");
    CLEANUP_FREE char *model = vk_xml_xpath_string(doc, "string(/domain/cpu/model)");
    CLEANUP_FREE char *check = vk_xml_xpath_string(doc, "string(/domain/cpu/@check)");
    CLEANUP_FREE char *caps = NULL;
    CLEANUP_XMLDOC xmlDoc *cdoc = NULL;

    if (mode &&
        (strcmp(mode, "host-passthrough") == 0 || (strcmp(mode, "host-model") == 0 && !model))) {
        *why = vk_asprintf("%s: the source host's CPU was compared", mode);
        caps = virConnectGetCapabilities(sconn);
        if (!caps || !(cdoc = vk_xml_parse_str(caps, VK_ERR_INVALID, "capabilities XML")))
            return NULL;
        return vk_xml_node_dump(cdoc, vk_xml_xpath_first(cdoc, "/capabilities/host/cpu"));
    }
    if (model && check && strcmp(check, "none") == 0) {
        *why = vk_asprintf("CPU model '%s' with check='none': QEMU fits it to the host that "
                           "starts the domain, nothing to compare",
                           model);
        return NULL;
    }
    if (model) {
        *why = vk_asprintf("CPU model '%s' with the features the guest runs with", model);
        return vk_xml_node_dump(doc, vk_xml_xpath_first(doc, "/domain/cpu"));
    }
    *why = vk_strdup("no <cpu> element: QEMU fits its default model to the host that starts the "
                     "domain, nothing to compare");
    return NULL;
}

static int check_cpu(struct migrate_report *r, virDomainPtr dom, virConnectPtr dconn)
{
    CLEANUP_FREE char *live = virDomainGetXMLDesc(dom, 0);
    CLEANUP_XMLDOC xmlDoc *doc = live ? vk_xml_parse_str(live, VK_ERR_INVALID, "domain XML") : NULL;
    CLEANUP_FREE char *arch = NULL;
    CLEANUP_FREE char *machine = NULL;
    CLEANUP_FREE char *virttype = NULL;
    CLEANUP_FREE char *why = NULL;
    CLEANUP_FREE char *cpu = NULL;
    int cmp;

    if (!doc)
        return migrate_report_add(r, "cpu", MIGRATE_CHECK_FAIL,
                                  "cannot read the domain's CPU definition: %s",
                                  live ? vk_error_message() : lv_message());
    arch = vk_xml_xpath_string(doc, "string(/domain/os/type/@arch)");
    machine = vk_xml_xpath_string(doc, "string(/domain/os/type/@machine)");
    virttype = vk_xml_xpath_string(doc, "string(/domain/@type)");
    cpu = cpu_xml_pick(doc, virDomainGetConnect(dom), &why);
    if (!cpu)
        return migrate_report_add(r, "cpu", why ? MIGRATE_CHECK_PASS : MIGRATE_CHECK_FAIL, "%s.",
                                  why ? why : "cannot read the source host's CPU");
    cmp = virConnectCompareHypervisorCPU(dconn, NULL, arch, machine, virttype, cpu, 0);
    if (cmp == VIR_CPU_COMPARE_ERROR)
        return migrate_report_add(r, "cpu", MIGRATE_CHECK_FAIL,
                                  "the destination cannot compare the CPU (%s): %s", why,
                                  lv_message());
    if (cmp == VIR_CPU_COMPARE_INCOMPATIBLE)
        return migrate_report_add(r, "cpu", MIGRATE_CHECK_FAIL,
                                  "the destination's hypervisor cannot provide the CPU (%s).", why);
    return migrate_report_add(r, "cpu", MIGRATE_CHECK_PASS, "compatible (%s).", why);
}

static int check_memory(struct migrate_report *r, virDomainPtr dom, virConnectPtr dconn)
{
    virDomainInfo info;
    unsigned long long free_bytes;
    char need_s[32], free_s[32];

    if (virDomainGetInfo(dom, &info) < 0)
        return migrate_report_add(r, "memory", MIGRATE_CHECK_FAIL,
                                  "cannot read the domain's memory: %s", lv_message());
    r->domain_bytes = (uint64_t)info.maxMem * 1024;
    free_bytes = virNodeGetFreeMemory(dconn);
    if (free_bytes == 0)
        return migrate_report_add(r, "memory", MIGRATE_CHECK_FAIL,
                                  "cannot read the destination's free memory: %s", lv_message());
    r->dest_free_bytes = free_bytes;
    vk_size_format(r->domain_bytes, need_s, sizeof(need_s));
    vk_size_format(free_bytes, free_s, sizeof(free_s));
    if (!migrate_memory_fits(free_bytes, r->domain_bytes))
        return migrate_report_add(r, "memory", MIGRATE_CHECK_FAIL,
                                  "the domain needs %s but the destination has only %s free.",
                                  need_s, free_s);
    return migrate_report_add(r, "memory", MIGRATE_CHECK_PASS,
                              "the domain needs %s, the destination has %s free.", need_s, free_s);
}

static int check_collision(struct migrate_report *r, virDomainPtr dom, virConnectPtr dconn)
{
    const char *name = virDomainGetName(dom);
    unsigned char uuid[VIR_UUID_BUFLEN];
    char uuid_s[VIR_UUID_STRING_BUFLEN] = "";
    virDomainPtr other;
    int ret;

    other = virDomainLookupByName(dconn, name);
    if (other) {
        virDomainFree(other);
        ret = migrate_report_add(r, "name", MIGRATE_CHECK_FAIL,
                                 "a domain named '%s' already exists on the destination.", name);
    } else
        ret = migrate_report_add(r, "name", MIGRATE_CHECK_PASS,
                                 "no domain named '%s' on the destination.", name);
    if (ret < 0 || virDomainGetUUID(dom, uuid) < 0 || virDomainGetUUIDString(dom, uuid_s) < 0)
        return -1;
    other = virDomainLookupByUUID(dconn, uuid);
    if (other) {
        ret = migrate_report_add(r, "uuid", MIGRATE_CHECK_FAIL,
                                 "UUID %s is already used by domain '%s' on the destination.",
                                 uuid_s, virDomainGetName(other));
        virDomainFree(other);
        return ret;
    }
    return migrate_report_add(r, "uuid", MIGRATE_CHECK_PASS,
                              "UUID %s is not used on the destination.", uuid_s);
}

/* ---------------------------------------------------------------- storage */

struct storage_ctx {
    const struct migrate_options *o;
    virDomainPtr dom;
    virConnectPtr dconn;
    unsigned int flags;
    bool local;     /* the destination runs on this machine */
    bool uid_known; /* dest_uid is the destination daemon's user */
    uid_t dest_uid;
    uint64_t planned; /* bytes the created images will take, so far */
};

/* Whether a libvirt URI names this machine: no host part, or localhost. */
static bool uri_is_local(const char *uri)
{
    const char *p = uri ? strstr(uri, "://") : NULL;
    size_t n;

    if (!p)
        return true;
    p += 3;
    n = strcspn(p, "/?");
    return n == 0 || (n == 9 && strncmp(p, "localhost", 9) == 0) ||
           (n == 9 && strncmp(p, "127.0.0.1", 9) == 0);
}

/* A session daemon reached through ?socket=PATH runs as the socket's owner:
 * that user must be able to read the shared images. */
static bool uri_socket_owner(const char *uri, uid_t *uid)
{
    const char *p = uri ? strstr(uri, "socket=") : NULL;
    CLEANUP_FREE char *path = NULL;
    struct stat st;

    if (!p)
        return false;
    p += 7;
    path = vk_strndup(p, strcspn(p, "&"));
    if (!path || stat(path, &st) < 0)
        return false;
    *uid = st.st_uid;
    return true;
}

/* Whether UID may read the file (mode bits of the file only; root may). */
static bool readable_by(const struct stat *st, uid_t uid)
{
    if (uid == 0)
        return true;
    if (st->st_uid == uid)
        return st->st_mode & S_IRUSR;
    return st->st_mode & (S_IRGRP | S_IROTH);
}

static int storage_shared(struct storage_ctx *sc, struct migrate_report *r, const char *name,
                          const char *path)
{
    virStorageVolPtr vol = virStorageVolLookupByPath(sc->dconn, path);
    struct stat st;

    if (vol) {
        virStorageVolFree(vol);
        return migrate_report_add(r, name, MIGRATE_CHECK_PASS,
                                  "'%s' is a storage volume on the destination.", path);
    }
    if (!sc->local)
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL,
                                  "'%s' is in no storage pool of the destination: shared storage "
                                  "must be visible there at the same path.",
                                  path);
    if (stat(path, &st) < 0)
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL, "'%s' does not exist: %s.", path,
                                  strerror(errno));
    if (sc->uid_known && !readable_by(&st, sc->dest_uid))
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL,
                                  "'%s' is not readable by the destination's user (uid %u).", path,
                                  (unsigned int)sc->dest_uid);
    return migrate_report_add(r, name, MIGRATE_CHECK_PASS,
                              "'%s' is visible to the destination (same machine).", path);
}

/* Create DST for --copy-storage, owned like its directory (the destination
 * daemon's user owns the directory its images go to). */
static int image_create(const char *dst, const char *format, uint64_t size)
{
    CLEANUP_FREE char *copy = vk_strdup(dst);
    struct stat st;

    if (!copy || virt_image_create(dst, format, size) < 0)
        return -1;
    if (geteuid() == 0 && stat(dirname(copy), &st) == 0 && chown(dst, st.st_uid, st.st_gid) < 0) {
        vk_error_errno(errno, "cannot give image '%s' to the destination's user", dst);
        return -1;
    }
    return 0;
}

static int storage_room(struct storage_ctx *sc, const char *dst, uint64_t need, uint64_t *avail)
{
    CLEANUP_FREE char *copy = vk_strdup(dst);
    struct statvfs vfs;

    if (!copy || statvfs(dirname(copy), &vfs) < 0)
        return -1;
    *avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    sc->planned += need;
    return 0;
}

static int storage_copy(struct storage_ctx *sc, struct migrate_report *r, const char *name,
                        const struct virt_disk *d)
{
    CLEANUP_FREE char *dst = migrate_dest_path(d->source, sc->o->dest_dir);
    const char *fmt = d->format ? d->format : "raw";
    virStorageVolPtr vol;
    virDomainBlockInfo bi;
    uint64_t avail = 0;
    char need_s[32], avail_s[32];

    if (!dst)
        return -1;
    if ((vol = virStorageVolLookupByPath(sc->dconn, dst))) {
        virStorageVolFree(vol);
        return migrate_report_add(r, name, MIGRATE_CHECK_PASS,
                                  "destination image '%s' is pre-created (storage volume).", dst);
    }
    if (!sc->local)
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL,
                                  "destination image '%s' does not exist on the remote "
                                  "destination: create it there first.",
                                  dst);
    if (strcmp(dst, d->source) == 0)
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL,
                                  "--copy-storage to the same machine would copy '%s' onto "
                                  "itself: give --dest-dir.",
                                  dst);
    if (access(dst, F_OK) == 0)
        return migrate_report_add(r, name, MIGRATE_CHECK_PASS,
                                  "destination image '%s' is pre-created.", dst);
    if (virDomainGetBlockInfo(sc->dom, d->target, &bi, 0) < 0)
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL,
                                  "cannot read the size of disk '%s': %s", d->target, lv_message());
    if (storage_room(sc, dst, bi.physical, &avail) < 0)
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL,
                                  "cannot create '%s': its directory is not usable: %s.", dst,
                                  strerror(errno));
    vk_size_format(sc->planned, need_s, sizeof(need_s));
    vk_size_format(avail, avail_s, sizeof(avail_s));
    if (sc->planned > avail)
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL,
                                  "no room for '%s': %s needed, %s available.", dst, need_s,
                                  avail_s);
    if (sc->flags & MIGRATE_DRY_RUN)
        return migrate_report_add(r, name, MIGRATE_CHECK_PASS,
                                  "'%s' will be created (%s, %llu bytes); %s needed, %s free.", dst,
                                  fmt, bi.capacity, need_s, avail_s);
    if (image_create(dst, fmt, bi.capacity) < 0)
        return migrate_report_add(r, name, MIGRATE_CHECK_FAIL, "%s", vk_error_message());
    if (migrate_report_created(r, dst) < 0)
        return -1;
    return migrate_report_add(r, name, MIGRATE_CHECK_PASS,
                              "created '%s' with qemu-img (%s, %llu bytes).", dst, fmt,
                              bi.capacity);
}

static int check_storage(struct storage_ctx *sc, struct migrate_report *r, const char *xml)
{
    struct virt_disk_list disks = {0};
    int ret = 0;

    if (virt_disks_parse(xml, &disks) < 0)
        return -1;
    for (size_t i = 0; i < disks.nr && ret == 0; i++) {
        const struct virt_disk *d = &disks.disks[i];
        CLEANUP_FREE char *name = vk_asprintf("storage %s", d->target);

        if (!name) {
            ret = -1;
            break;
        }
        if (!d->source || d->kind == VIRT_DISK_CDROM || d->kind == VIRT_DISK_FLOPPY)
            continue;
        if (strcmp(d->source_type, "file") != 0 && strcmp(d->source_type, "block") != 0)
            ret =
                migrate_report_add(r, name, MIGRATE_CHECK_PASS,
                                   "%s disk: nothing to check on the destination.", d->source_type);
        else if (sc->o->copy_storage && !d->readonly)
            ret = storage_copy(sc, r, name, d);
        else
            ret = storage_shared(sc, r, name, d->source);
    }
    virt_disks_clear(&disks);
    return ret;
}

/* ---------------------------------------------------------------- all checks */

static int skip_all(struct migrate_report *r, const char *why, unsigned int flags)
{
    static const char *const names[] = {"cpu", "memory", "storage", "name", "uuid"};

    for (size_t i = 0; i < VK_ARRAY_SIZE(names); i++)
        if (((flags & MIGRATE_PLANNED) && (i == 0 || i == 2)))
            continue;
        else if (migrate_report_add(r, names[i], MIGRATE_CHECK_SKIP, "not checked: %s", why) < 0)
            return -1;
    return 0;
}

int migrate_check_run(virDomainPtr dom, virConnectPtr dconn, const char *connect_error,
                      const struct migrate_options *o, unsigned int flags, struct migrate_report *r,
                      char **dest_xml)
{
    struct storage_ctx sc = {.o = o, .dom = dom, .dconn = dconn, .flags = flags};
    CLEANUP_FREE char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_MIGRATABLE);

    if (!xml) {
        virt_error_libvirt("cannot read the XML of domain '%s'", virDomainGetName(dom));
        return -1;
    }
    if (!dconn) {
        if (migrate_report_add(r, "reachable", MIGRATE_CHECK_FAIL, "%s",
                               connect_error ? connect_error : "cannot connect.") < 0)
            return -1;
        return skip_all(r, "the destination is unreachable.", flags);
    }
    if (migrate_report_add(r, "reachable", MIGRATE_CHECK_PASS, "connected to '%s'.", o->to) < 0)
        return -1;
    /* A planned move copies the disks through backups and boots the guest
     * afresh: no CPU compatibility, no storage paths to share. */
    if (flags & MIGRATE_PLANNED)
        return check_memory(r, dom, dconn) < 0 || check_collision(r, dom, dconn) < 0 ? -1 : 0;
    sc.local = uri_is_local(o->to);
    sc.uid_known = uri_socket_owner(o->to, &sc.dest_uid);
    if (check_cpu(r, dom, dconn) < 0 || check_memory(r, dom, dconn) < 0 ||
        check_storage(&sc, r, xml) < 0 || check_collision(r, dom, dconn) < 0)
        return -1;
    if (dest_xml &&
        !(*dest_xml = migrate_xml_move_disks(xml, o->copy_storage ? o->dest_dir : NULL)))
        return -1;
    return 0;
}
