/* virtkeep - snapshot XML, domain XML disk rewrite, names (see snapshot.h).
 *
 * Parsing and rewriting go through libxml2, never string matching; building
 * is plain text with every value escaped (virt_xml_escape).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "common/xml.h"
#include "src/snapshot/snapshot.h"

#define NAME_MAX_LEN 128

/* Element text, trimmed (malloc'd); NULL when N is NULL. */
static char *text(xmlNode *n)
{
    char *r = vk_xml_text(n);

    return r ? vk_trim(r) : NULL;
}

/* The path of a disk's <source>: file= or dev=. */
static char *source_of(xmlNode *disk)
{
    xmlNode *src = vk_xml_child(disk, "source");
    char *p = vk_xml_attr(src, "file");

    return p ? p : vk_xml_attr(src, "dev");
}

static bool prop_eq(xmlNode *n, const char *name, const char *value)
{
    CLEANUP_FREE char *v = vk_xml_attr(n, name);
    return v && value && strcmp(v, value) == 0;
}

/* ---------------------------------------------------------------- names */

char *snapshot_name_default(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[32];

    if (!gmtime_r(&tt, &tm) || !strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm)) {
        vk_error(VK_ERR_INTERNAL, "cannot format the time %" PRId64 ".", t);
        return NULL;
    }
    return vk_asprintf(SNAPSHOT_NAME_PREFIX "%s", buf);
}

int snapshot_name_check(const char *name)
{
    size_t len = name ? strlen(name) : 0;

    if (len == 0 || len > NAME_MAX_LEN || name[0] == '.' || name[0] == '-') {
        vk_error(VK_ERR_INVALID,
                 "invalid snapshot name '%s': it must have 1 to %d characters and not start "
                 "with '.' or '-'.",
                 name ? name : "", NAME_MAX_LEN);
        return -1;
    }
    for (const char *p = name; *p; p++) {
        if (*p <= ' ' || *p > '~' || *p == '/') {
            vk_error(VK_ERR_INVALID,
                     "invalid snapshot name '%s': only printable ASCII without spaces or '/'.",
                     name);
            return -1;
        }
    }
    return 0;
}

char *snapshot_overlay_path(const char *image, const char *dir, const char *name)
{
    CLEANUP_FREE char *copy = NULL;

    if (!dir)
        return vk_asprintf("%s.%s", image, name);
    copy = vk_strdup(image);
    if (!copy)
        return NULL;
    return vk_asprintf("%s/%s.%s", dir, basename(copy), name);
}

/* ---------------------------------------------------------------- build */

static bool disk_takes_overlay(const struct virt_disk *d)
{
    return d->kind == VIRT_DISK_DISK && !d->readonly && d->source &&
           (strcmp(d->source_type, "file") == 0 || strcmp(d->source_type, "block") == 0);
}

static int add_esc(FILE *fp, const char *pre, const char *value, const char *post)
{
    CLEANUP_FREE char *esc = virt_xml_escape(value);

    if (!esc)
        return -1;
    return fprintf(fp, "%s%s%s", pre, esc, post) < 0 ? -1 : 0;
}

static int disk_add(FILE *fp, const struct virt_disk *d, const char *dir, const char *name,
                    size_t *n)
{
    CLEANUP_FREE char *overlay = NULL;

    if (add_esc(fp, "    <disk name='", d->target, "'") < 0)
        return -1;
    if (!disk_takes_overlay(d))
        return fputs(" snapshot='no'/>\n", fp) < 0 ? -1 : 0;
    overlay = snapshot_overlay_path(d->source, dir, name);
    if (!overlay)
        return -1;
    (*n)++;
    if (fputs(" snapshot='external' type='file'>\n      <driver type='qcow2'/>\n", fp) < 0 ||
        add_esc(fp, "      <source file='", overlay, "'/>\n    </disk>\n") < 0)
        return -1;
    return 0;
}

static int body_write(FILE *fp, const char *name, const struct virt_disk_list *disks,
                      const char *dir, const char *memory_file, unsigned int flags, size_t *n)
{
    if (fputs("<domainsnapshot>\n", fp) < 0 || add_esc(fp, "  <name>", name, "</name>\n") < 0)
        return -1;
    if (flags & SNAPSHOT_MEMORY) {
        if (add_esc(fp, "  <memory snapshot='external' file='", memory_file, "'/>\n") < 0)
            return -1;
    } else if (fputs("  <memory snapshot='no'/>\n", fp) < 0) {
        return -1;
    }
    if (fputs("  <disks>\n", fp) < 0)
        return -1;
    for (size_t i = 0; i < disks->nr; i++)
        if (disk_add(fp, &disks->disks[i], dir, name, n) < 0)
            return -1;
    return fputs("  </disks>\n</domainsnapshot>\n", fp) < 0 ? -1 : 0;
}

char *snapshot_xml_build(const char *name, const struct virt_disk_list *disks, const char *dir,
                         const char *memory_file, unsigned int flags)
{
    char *data = NULL;
    size_t len = 0, n = 0;
    FILE *fp;
    int r;

    if ((flags & SNAPSHOT_MEMORY) && !memory_file) {
        vk_error(VK_ERR_INVALID, "a memory snapshot '%s' needs a memory file.", name);
        return NULL;
    }
    fp = open_memstream(&data, &len);
    if (!fp) {
        vk_error_errno(errno, "cannot build the XML of snapshot '%s'", name);
        return NULL;
    }
    r = body_write(fp, name, disks, dir, memory_file, flags, &n);
    if (fclose(fp) != 0 || r < 0) {
        free(data);
        vk_error(VK_ERR_INTERNAL, "cannot build the XML of snapshot '%s': out of memory.", name);
        return NULL;
    }
    if (n == 0) {
        free(data);
        vk_error(VK_ERR_INVALID,
                 "cannot create snapshot '%s': no disk can have an overlay (only writable "
                 "file or block disks can).",
                 name);
        return NULL;
    }
    return data;
}

/* ---------------------------------------------------------------- parse */

void snapshot_info_clear(struct snapshot_info *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nr_disks; i++) {
        free(s->disks[i].target);
        free(s->disks[i].overlay);
        free(s->disks[i].base);
    }
    free(s->disks);
    free(s->name);
    free(s->parent);
    free(s->state);
    free(s->memory_file);
    memset(s, 0, sizeof(*s));
}

void snapshot_list_clear(struct snapshot_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        snapshot_info_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

const struct snapshot_disk *snapshot_info_disk(const struct snapshot_info *s, const char *target)
{
    for (size_t i = 0; i < s->nr_disks; i++)
        if (strcmp(s->disks[i].target, target) == 0)
            return &s->disks[i];
    return NULL;
}

/* The <disk> of DEVICES whose <target dev=TARGET>. */
static xmlNode *domain_disk_find(xmlNode *devices, const char *target)
{
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next)
        if (vk_xml_is(c, "disk") && prop_eq(vk_xml_child(c, "target"), "dev", target))
            return c;
    return NULL;
}

static int disk_parse(xmlNode *n, xmlNode *devices, struct snapshot_info *s)
{
    struct snapshot_disk *d;
    struct snapshot_disk *grown;

    if (!prop_eq(n, "snapshot", "external"))
        return 0;
    grown = vk_realloc_array(s->disks, s->nr_disks + 1, sizeof(*s->disks));
    if (!grown)
        return -1;
    s->disks = grown;
    d = &s->disks[s->nr_disks++];
    memset(d, 0, sizeof(*d));
    d->target = vk_xml_attr(n, "name");
    d->overlay = source_of(n);
    if (!d->target || !d->overlay) {
        vk_error(VK_ERR_INVALID, "snapshot '%s' has an external disk without name or source.",
                 s->name);
        return -1;
    }
    d->base = source_of(domain_disk_find(devices, d->target));
    s->external = true;
    return 0;
}

static int info_fill(xmlNode *root, struct snapshot_info *s)
{
    xmlNode *mem = vk_xml_child(root, "memory");
    xmlNode *devices = vk_xml_child(vk_xml_child(root, "domain"), "devices");
    CLEANUP_FREE char *created = text(vk_xml_child(root, "creationTime"));
    unsigned long long t = 0;

    s->name = text(vk_xml_child(root, "name"));
    if (!s->name) {
        vk_error(VK_ERR_INVALID, "cannot parse the snapshot XML: it has no name.");
        return -1;
    }
    s->parent = text(vk_xml_child(vk_xml_child(root, "parent"), "name"));
    s->state = text(vk_xml_child(root, "state"));
    if (created && vk_parse_uint(created, INT64_MAX, &t) == 0)
        s->created = (int64_t)t;
    if (prop_eq(mem, "snapshot", "external"))
        s->memory_file = vk_xml_attr(mem, "file");
    for (xmlNode *c = vk_xml_child(root, "disks") ? vk_xml_child(root, "disks")->children : NULL; c;
         c = c->next)
        if (vk_xml_is(c, "disk") && disk_parse(c, devices, s) < 0)
            return -1;
    return 0;
}

int snapshot_xml_parse(const char *xml, struct snapshot_info *out)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse_str(xml, VK_ERR_INVALID, "snapshot XML");
    xmlNode *root;
    int r;

    memset(out, 0, sizeof(*out));
    if (!doc)
        return -1;
    root = xmlDocGetRootElement(doc);
    if (!vk_xml_is(root, "domainsnapshot")) {
        vk_error(VK_ERR_INVALID,
                 "cannot parse the snapshot XML: the root is not <domainsnapshot>.");
        r = -1;
    } else {
        r = info_fill(root, out);
    }
    if (r < 0)
        snapshot_info_clear(out);
    return r;
}

/* ---------------------------------------------------------------- rewrite */

static void disk_source_set(xmlNode *disk, const char *path, const char *format)
{
    xmlNode *src = vk_xml_child(disk, "source"), *drv = vk_xml_child(disk, "driver");

    xmlSetProp(disk, (const xmlChar *)"type", (const xmlChar *)"file");
    if (!src)
        src = xmlNewChild(disk, NULL, (const xmlChar *)"source", NULL);
    xmlUnsetProp(src, (const xmlChar *)"dev");
    xmlSetProp(src, (const xmlChar *)"file", (const xmlChar *)path);
    vk_xml_remove_children(disk, "backingStore");
    if (format && drv)
        xmlSetProp(drv, (const xmlChar *)"type", (const xmlChar *)format);
}

char *snapshot_domain_xml_set_source(const char *domain_xml, const char *target, const char *path,
                                     const char *format)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse_str(domain_xml, VK_ERR_INVALID, "domain XML");
    xmlNode *disk;

    if (!doc)
        return NULL;
    disk = domain_disk_find(vk_xml_child(xmlDocGetRootElement(doc), "devices"), target);
    if (!disk) {
        vk_error(VK_ERR_NOT_FOUND, "the domain XML has no disk '%s'.", target);
        return NULL;
    }
    disk_source_set(disk, path, format);
    return vk_xml_dump(doc, false, "domain XML");
}

char *snapshot_xml_replace_base(const char *xml, const char *old_path, const char *new_path)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse_str(xml, VK_ERR_INVALID, "snapshot XML");
    xmlNode *devices;

    if (!doc)
        return NULL;
    devices = vk_xml_child(vk_xml_child(xmlDocGetRootElement(doc), "domain"), "devices");
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        CLEANUP_FREE char *src = vk_xml_is(c, "disk") ? source_of(c) : NULL;
        if (src && strcmp(src, old_path) == 0)
            disk_source_set(c, new_path, NULL);
    }
    return vk_xml_dump(doc, false, "snapshot XML");
}

/* ---------------------------------------------------------------- JSON */

struct json_object *snapshot_info_to_json(const struct snapshot_info *s)
{
    struct json_object *o = json_object_new_object(), *a = json_object_new_array();

    json_object_object_add(o, "name", vk_json_string_or_null(s->name));
    json_object_object_add(o, "parent", vk_json_string_or_null(s->parent));
    json_object_object_add(o, "state", vk_json_string_or_null(s->state));
    json_object_object_add(o, "created", json_object_new_int64(s->created));
    json_object_object_add(o, "current", json_object_new_boolean(s->current));
    json_object_object_add(o, "external", json_object_new_boolean(s->external));
    json_object_object_add(o, "memory_file", vk_json_string_or_null(s->memory_file));
    for (size_t i = 0; i < s->nr_disks; i++) {
        struct json_object *d = json_object_new_object();
        json_object_object_add(d, "disk", vk_json_string_or_null(s->disks[i].target));
        json_object_object_add(d, "overlay", vk_json_string_or_null(s->disks[i].overlay));
        json_object_object_add(d, "base", vk_json_string_or_null(s->disks[i].base));
        json_object_array_add(a, d);
    }
    json_object_object_add(o, "disks", a);
    return o;
}
