/* virtkeep - domain disk list, checkpoint and backup XML (see virt.h).
 *
 * Parsing goes through libxml2 (common/xml.h), never through
 * string matching: a domain XML can hold comments, CDATA, entities and
 * attributes in any order.  Building is plain text with every value escaped.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "common/xml.h"
#include "src/virt/virt.h"

void virt_disks_clear(struct virt_disk_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nr; i++) {
        struct virt_disk *d = &l->disks[i];
        free(d->target);
        free(d->bus);
        free(d->source_type);
        free(d->source);
        free(d->format);
    }
    free(l->disks);
    l->disks = NULL;
    l->nr = 0;
}

const char *virt_disk_kind_name(enum virt_disk_kind kind)
{
    switch (kind) {
    case VIRT_DISK_DISK:
        return "disk";
    case VIRT_DISK_CDROM:
        return "cdrom";
    case VIRT_DISK_FLOPPY:
        return "floppy";
    case VIRT_DISK_LUN:
        return "lun";
    }
    return "unknown";
}

static int kind_parse(xmlNode *n, const char *target, enum virt_disk_kind *kind)
{
    static const enum virt_disk_kind kinds[] = {VIRT_DISK_DISK, VIRT_DISK_CDROM, VIRT_DISK_FLOPPY,
                                                VIRT_DISK_LUN};
    CLEANUP_FREE char *v = NULL;

    *kind = VIRT_DISK_DISK;
    if (vk_xml_attr_get(n, "device", &v) < 0)
        return -1;
    if (!v)
        return 0;
    for (size_t i = 0; i < VK_ARRAY_SIZE(kinds); i++) {
        if (strcmp(v, virt_disk_kind_name(kinds[i])) == 0) {
            *kind = kinds[i];
            return 0;
        }
    }
    vk_error(VK_ERR_INVALID, "disk '%s' has an unknown device kind '%s'.", target, v);
    return -1;
}

/* The path of a file or block source; other source types have none. */
static int source_path(xmlNode *src, const char *type, char **out)
{
    *out = NULL;
    if (strcmp(type, "file") == 0)
        return vk_xml_attr_get(src, "file", out);
    if (strcmp(type, "block") == 0)
        return vk_xml_attr_get(src, "dev", out);
    return 0;
}

static void disk_classify(struct virt_disk *d, bool has_source)
{
    if (d->format && strcmp(d->format, "qcow2") == 0)
        d->fmt = VIRT_FORMAT_QCOW2;
    else if (!d->format || strcmp(d->format, "raw") == 0)
        d->fmt = VIRT_FORMAT_RAW; /* libvirt's default when no type is given */
    d->full_only = d->fmt != VIRT_FORMAT_QCOW2;

    d->skip = true;
    if (d->kind == VIRT_DISK_CDROM)
        d->skip_reason = "is a cdrom";
    else if (d->kind == VIRT_DISK_FLOPPY)
        d->skip_reason = "is a floppy";
    else if (d->kind == VIRT_DISK_LUN)
        d->skip_reason = "is a LUN (SCSI passthrough)";
    else if (!has_source)
        d->skip_reason = "has no source";
    else if (d->readonly)
        d->skip_reason = "is read-only";
    else
        d->skip = false;
}

static int disk_parse(xmlNode *n, struct virt_disk *d)
{
    xmlNode *target = vk_xml_child(n, "target");
    xmlNode *src = vk_xml_child(n, "source");

    if (vk_xml_attr_get(target, "dev", &d->target) < 0)
        return -1;
    if (!d->target) {
        vk_error(VK_ERR_INVALID, "a disk of the domain XML has no target device.");
        return -1;
    }
    if (kind_parse(n, d->target, &d->kind) < 0 || vk_xml_attr_get(target, "bus", &d->bus) < 0 ||
        vk_xml_attr_get(n, "type", &d->source_type) < 0)
        return -1;
    if (!d->source_type && !(d->source_type = vk_strdup("file")))
        return -1;
    if (source_path(src, d->source_type, &d->source) < 0 ||
        vk_xml_attr_get(vk_xml_child(n, "driver"), "type", &d->format) < 0)
        return -1;
    d->readonly = vk_xml_child(n, "readonly") != NULL;
    /* A network or volume disk has a <source> without a local path. */
    disk_classify(d, src && (d->source || strcmp(d->source_type, "network") == 0 ||
                             strcmp(d->source_type, "volume") == 0));
    return 0;
}

static int disks_collect(xmlNode *devices, struct virt_disk_list *out)
{
    size_t n = 0;

    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next)
        n += vk_xml_is(c, "disk");
    out->disks = vk_calloc(n, sizeof(*out->disks));
    if (!out->disks)
        return -1;
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        if (!vk_xml_is(c, "disk"))
            continue;
        out->nr++;
        if (disk_parse(c, &out->disks[out->nr - 1]) < 0)
            return -1;
        if (virt_disks_find(out, out->disks[out->nr - 1].target) != &out->disks[out->nr - 1]) {
            vk_error(VK_ERR_INVALID, "the domain XML has two disks named '%s'.",
                     out->disks[out->nr - 1].target);
            return -1;
        }
    }
    return 0;
}

int virt_disks_parse(const char *domain_xml, struct virt_disk_list *out)
{
    CLEANUP_XMLDOC xmlDoc *doc = NULL;
    xmlNode *root;
    int r = -1;

    out->disks = NULL;
    out->nr = 0;
    doc = vk_xml_parse_str(domain_xml, VK_ERR_INVALID, "domain XML");
    if (!doc)
        return -1;
    root = xmlDocGetRootElement(doc);
    if (!vk_xml_is(root, "domain"))
        vk_error(VK_ERR_INVALID,
                 "cannot parse the domain XML: the root element is <%s>, "
                 "not <domain>.",
                 (const char *)root->name);
    else
        r = disks_collect(vk_xml_child(root, "devices"), out);
    if (r < 0)
        virt_disks_clear(out);
    return r;
}

struct virt_disk *virt_disks_find(const struct virt_disk_list *l, const char *target)
{
    for (size_t i = 0; l && target && i < l->nr; i++)
        if (l->disks[i].target && strcmp(l->disks[i].target, target) == 0)
            return &l->disks[i];
    return NULL;
}

static int names_check(const struct virt_disk_list *l, const char *domain, char *const *names,
                       bool including)
{
    for (size_t i = 0; names && names[i]; i++) {
        const struct virt_disk *d = virt_disks_find(l, names[i]);
        if (!d) {
            vk_error(VK_ERR_NOT_FOUND, "domain '%s' has no disk '%s'.", domain, names[i]);
            return -1;
        }
        if (including && d->skip) {
            vk_error(VK_ERR_UNSUPPORTED, "cannot back up disk '%s' of domain '%s': it %s.",
                     names[i], domain, d->skip_reason);
            return -1;
        }
    }
    return 0;
}

char **virt_disks_select(const struct virt_disk_list *l, const char *domain, char *const *include,
                         char *const *exclude)
{
    CLEANUP_STRV char **sel = NULL;
    size_t n = 0;

    if (names_check(l, domain, include, true) < 0 || names_check(l, domain, exclude, false) < 0)
        return NULL;
    sel = vk_calloc(l->nr + 1, sizeof(*sel));
    if (!sel)
        return NULL;
    for (size_t i = 0; i < l->nr; i++) {
        const struct virt_disk *d = &l->disks[i];
        if (d->skip || (include && !vk_strv_contains(include, d->target)) ||
            vk_strv_contains(exclude, d->target))
            continue;
        sel[n] = vk_strdup(d->target);
        if (!sel[n++])
            return NULL;
    }
    if (n == 0) {
        vk_error(VK_ERR_INVALID, "domain '%s' has no disk left to back up.", domain);
        return NULL;
    }
    return VK_STEAL(sel);
}

char *virt_xml_escape(const char *s)
{
    size_t len = 0;
    char *r, *p;

    for (const char *c = s; *c; c++)
        len += strchr("&<>'\"", *c) ? 6 : 1;
    r = vk_malloc(len + 1);
    if (!r)
        return NULL;
    p = r;
    for (const char *c = s; *c; c++) {
        const char *e = *c == '&'    ? "&amp;"
                        : *c == '<'  ? "&lt;"
                        : *c == '>'  ? "&gt;"
                        : *c == '\'' ? "&apos;"
                        : *c == '"'  ? "&quot;"
                                     : NULL;
        if (e) {
            memcpy(p, e, strlen(e));
            p += strlen(e);
        } else {
            *p++ = *c;
        }
    }
    *p = '\0';
    return r;
}

/* A text buffer that fails once and stays failed. */
struct xbuf {
    char *data;
    size_t len;
    FILE *fp;
    bool failed;
};

static int xbuf_open(struct xbuf *b)
{
    memset(b, 0, sizeof(*b));
    b->fp = open_memstream(&b->data, &b->len);
    if (!b->fp) {
        vk_error_errno(errno, "cannot build an XML document");
        return -1;
    }
    return 0;
}

/* Append "FMT" where each %s argument is escaped first. */
static void xbuf_add(struct xbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xbuf_add(struct xbuf *b, const char *fmt, ...)
{
    va_list ap;

    if (b->failed)
        return;
    va_start(ap, fmt);
    if (vfprintf(b->fp, fmt, ap) < 0)
        b->failed = true;
    va_end(ap);
}

static void xbuf_add_esc(struct xbuf *b, const char *pre, const char *value, const char *post)
{
    CLEANUP_FREE char *esc = virt_xml_escape(value);

    if (!esc)
        b->failed = true;
    else
        xbuf_add(b, "%s%s%s", pre, esc, post);
}

static char *xbuf_finish(struct xbuf *b)
{
    if (fclose(b->fp) != 0)
        b->failed = true;
    if (b->failed) {
        free(b->data);
        vk_error(VK_ERR_INTERNAL, "cannot build an XML document: out of memory.");
        return NULL;
    }
    return b->data;
}

char *virt_checkpoint_xml_build(const char *name, const char *parent, int64_t creation_time,
                                const struct virt_disk_list *disks, char *const *selected,
                                unsigned int flags)
{
    struct xbuf b;

    if (xbuf_open(&b) < 0)
        return NULL;
    xbuf_add(&b, "<domaincheckpoint>\n");
    xbuf_add_esc(&b, "  <name>", name, "</name>\n");
    if (parent)
        xbuf_add_esc(&b, "  <parent>\n    <name>", parent, "</name>\n  </parent>\n");
    if (creation_time > 0)
        xbuf_add(&b, "  <creationTime>%" PRId64 "</creationTime>\n", creation_time);
    xbuf_add(&b, "  <disks>\n");
    for (size_t i = 0; i < disks->nr; i++) {
        const struct virt_disk *d = &disks->disks[i];
        bool bitmap = !d->skip && !d->full_only && vk_strv_contains(selected, d->target);

        xbuf_add_esc(&b, "    <disk name='", d->target, "'");
        if (!bitmap)
            xbuf_add(&b, " checkpoint='no'/>\n");
        else if (flags & VIRT_XML_BITMAP_NAMES)
            xbuf_add_esc(&b, " checkpoint='bitmap' bitmap='", name, "'/>\n");
        else
            xbuf_add(&b, " checkpoint='bitmap'/>\n");
    }
    xbuf_add(&b, "  </disks>\n</domaincheckpoint>\n");
    return xbuf_finish(&b);
}

static void backup_disk_add(struct xbuf *b, const struct virt_disk *d, const char *rundir,
                            const char *incremental, bool selected)
{
    xbuf_add_esc(b, "    <disk name='", d->target, "'");
    if (!selected) {
        xbuf_add(b, " backup='no'/>\n");
        return;
    }
    /* A disk without a bitmap (raw) is read in full even in an incremental. */
    xbuf_add(b, " backup='yes' type='file'%s>\n",
             incremental && d->full_only ? " backupmode='full'" : "");
    xbuf_add_esc(b, "      <scratch file='", rundir, "/");
    xbuf_add_esc(b, "", d->target, ".scratch'/>\n");
    xbuf_add(b, "    </disk>\n");
}

char *virt_backup_xml_build(const char *socket, const char *rundir, const char *incremental,
                            const struct virt_disk_list *disks, char *const *selected,
                            unsigned int flags)
{
    struct xbuf b;

    (void)flags;
    if (xbuf_open(&b) < 0)
        return NULL;
    xbuf_add(&b, "<domainbackup mode='pull'>\n");
    if (incremental)
        xbuf_add_esc(&b, "  <incremental>", incremental, "</incremental>\n");
    xbuf_add_esc(&b, "  <server transport='unix' socket='", socket, "'/>\n");
    xbuf_add(&b, "  <disks>\n");
    for (size_t i = 0; i < disks->nr; i++) {
        const struct virt_disk *d = &disks->disks[i];
        backup_disk_add(&b, d, rundir, incremental,
                        !d->skip && vk_strv_contains(selected, d->target));
    }
    xbuf_add(&b, "  </disks>\n</domainbackup>\n");
    return xbuf_finish(&b);
}

/* The text of /domaincheckpoint/ELEMENT, or NULL (error recorded). */
static char *checkpoint_xml_text(const char *xml, const char *element)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse_str(xml, VK_ERR_INVALID, "checkpoint XML");
    xmlNode *n;

    if (!doc)
        return NULL;
    n = vk_xml_child(vk_xml_root(doc, "domaincheckpoint"), element);
    if (!n) {
        vk_error(VK_ERR_INVALID, "the checkpoint XML has no <%s>.", element);
        return NULL;
    }
    return vk_xml_text(n);
}

char *virt_checkpoint_xml_get_name(const char *xml)
{
    return checkpoint_xml_text(xml, "name");
}

int64_t virt_checkpoint_xml_get_creation_time(const char *xml)
{
    CLEANUP_FREE char *text = checkpoint_xml_text(xml, "creationTime");
    unsigned long long t;

    if (!text || vk_parse_uint(vk_trim(text), INT64_MAX, &t) < 0)
        return -1;
    return (int64_t)t;
}
