/* virtkeep - restore --define: recreate a domain from the domain XML saved
 * with the backup, pointing at the restored images.
 *
 * The XML is rewritten with libxml2: every restored disk gets
 * <source file='DIR/DISK.qcow2'/> and a qcow2 driver (no backing chain);
 * disk devices that were not restored are left out (and named in the
 * result), cdrom and floppy media stay as they were.  Live-only state (the
 * domain id, dynamic security labels) is dropped.  With a new name the
 * domain also loses what would collide with the original: its UUID, the
 * MAC addresses of its interfaces (libvirt generates new ones), fixed
 * graphics ports (autoport) and the NVRAM path (libvirt derives a new one
 * from the name); a TPM's state is kept per UUID, so a new UUID gives it
 * its own.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/tree.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xml.h"
#include "src/restore/restore-int.h"
#include "src/virt/virt.h"

static void attr_drop(xmlNode *n, const char *name)
{
    xmlAttr *a = xmlHasProp(n, (const xmlChar *)name);

    if (a)
        xmlRemoveProp(a);
}

static int text_set(xmlNode *parent, const char *name, const char *text)
{
    xmlNode *n = vk_xml_child(parent, name);

    if (!n)
        n = xmlNewChild(parent, NULL, (const xmlChar *)name, NULL);
    if (!n) {
        vk_error(VK_ERR_INTERNAL, "cannot add <%s> to the domain XML", name);
        return -1;
    }
    xmlNodeSetContent(n, NULL);
    xmlNodeAddContent(n, (const xmlChar *)text);
    return 0;
}

static const char *disk_path(const struct restore_define_disk *disks, size_t nr, const char *dev)
{
    for (size_t i = 0; dev && i < nr; i++)
        if (strcmp(disks[i].target, dev) == 0)
            return disks[i].path;
    return NULL;
}

/* Point disk N at PATH: a qcow2 file without a backing chain. */
static int disk_repoint(xmlNode *n, const char *path)
{
    xmlNode *driver = vk_xml_child(n, "driver");
    xmlNode *src;

    vk_xml_remove_children(n, "source");
    vk_xml_remove_children(n, "backingStore");
    xmlSetProp(n, (const xmlChar *)"type", (const xmlChar *)"file");
    src = xmlNewChild(n, NULL, (const xmlChar *)"source", NULL);
    if (!driver)
        driver = xmlNewChild(n, NULL, (const xmlChar *)"driver", NULL);
    if (!src || !driver) {
        vk_error(VK_ERR_INTERNAL, "cannot rewrite a disk of the domain XML");
        return -1;
    }
    xmlSetProp(src, (const xmlChar *)"file", (const xmlChar *)path);
    xmlSetProp(driver, (const xmlChar *)"name", (const xmlChar *)"qemu");
    xmlSetProp(driver, (const xmlChar *)"type", (const xmlChar *)"qcow2");
    return 0;
}

static int disks_rewrite(xmlNode *devices, const struct restore_define_disk *disks, size_t nr,
                         char ***dropped)
{
    xmlNode *c = devices ? devices->children : NULL;

    while (c) {
        xmlNode *next = c->next;
        CLEANUP_FREE char *device = vk_xml_is(c, "disk") ? vk_xml_attr(c, "device") : NULL;
        CLEANUP_FREE char *dev =
            vk_xml_is(c, "disk") ? vk_xml_attr(vk_xml_child(c, "target"), "dev") : NULL;
        const char *path = disk_path(disks, nr, dev);

        if (vk_xml_is(c, "disk") &&
            (!device || strcmp(device, "disk") == 0 || strcmp(device, "lun") == 0)) {
            if (path && disk_repoint(c, path) < 0)
                return -1;
            if (!path) {
                if (vk_strv_add(dropped, dev ? dev : "(no target)") < 0)
                    return -1;
                vk_xml_remove(c);
            }
        }
        c = next;
    }
    return 0;
}

/* What a second domain beside the original must not share. */
static void collisions_drop(xmlNode *root, xmlNode *devices)
{
    vk_xml_remove_children(root, "uuid");
    vk_xml_remove_children(vk_xml_child(root, "os"), "nvram");
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        if (vk_xml_is(c, "interface"))
            vk_xml_remove_children(c, "mac");
        if (vk_xml_is(c, "graphics")) {
            attr_drop(c, "port");
            attr_drop(c, "tlsPort");
            attr_drop(c, "websocket");
            xmlSetProp(c, (const xmlChar *)"autoport", (const xmlChar *)"yes");
        }
    }
}

/* Dynamic security labels and the domain id belong to the running domain. */
static void live_state_drop(xmlNode *root)
{
    xmlNode *c = root->children;

    attr_drop(root, "id");
    while (c) {
        xmlNode *next = c->next;
        CLEANUP_FREE char *type = vk_xml_is(c, "seclabel") ? vk_xml_attr(c, "type") : NULL;
        if (type && strcmp(type, "dynamic") == 0)
            vk_xml_remove(c);
        c = next;
    }
}

static int xml_edit(xmlDocPtr doc, const struct restore_define_options *o, char ***dropped)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *devices = vk_xml_child(root, "devices");

    if (!vk_xml_is(root, "domain")) {
        vk_error(VK_ERR_INVALID, "the saved domain XML has no <domain> root element");
        return -1;
    }
    live_state_drop(root);
    if (disks_rewrite(devices, o->disks, o->nr_disks, dropped) < 0)
        return -1;
    if (o->new_name && (text_set(root, "name", o->new_name) < 0))
        return -1;
    if (o->new_name)
        collisions_drop(root, devices);
    if (o->uuid && text_set(root, "uuid", o->uuid) < 0)
        return -1;
    return 0;
}

char *restore_domain_xml(const char *xml, const struct restore_define_options *o, char ***dropped,
                         unsigned int flags)
{
    CLEANUP_XMLDOC xmlDoc *doc = NULL;
    char *out = NULL;

    *dropped = NULL;
    if (flags != 0 || !xml) {
        vk_error(VK_ERR_INVALID, "restore_domain_xml: no XML or unknown flags");
        return NULL;
    }
    doc = vk_xml_parse_str(xml, VK_ERR_CORRUPT, "saved domain XML");
    if (doc && xml_edit(doc, o, dropped) == 0)
        out = vk_xml_dump(doc, true, "domain XML");
    if (!out) {
        vk_strv_free(*dropped);
        *dropped = NULL;
    }
    return out;
}

/* ---------------------------------------------------------------- libvirt */

struct restore_definer {
    struct virt_conn *conn;
    char *name;
    char *uuid; /* of the existing domain replaced with --force, or NULL */
};

static const char *lv_message(void)
{
    const char *m = virGetLastErrorMessage();
    return m && *m ? m : "unknown libvirt error";
}

struct restore_definer *restore_definer_open(const char *uri, const char *name, bool force)
{
    struct restore_definer *d = vk_calloc(1, sizeof *d);
    struct virt_domain *old;
    enum virt_domain_state st;
    bool ok = false;

    if (!d || !(d->name = vk_strdup(name)) || !(d->conn = virt_conn_open(uri, 0)))
        goto fail;
    old = virt_domain_lookup(d->conn, name);
    if (!old && vk_error_code() != VK_ERR_NOT_FOUND)
        goto fail;
    if (!old)
        return d;
    if (!force) {
        vk_error(VK_ERR_INVALID,
                 "domain '%s' is already defined on %s: give --name NEW to restore beside it, "
                 "or --force to replace its definition",
                 name, d->conn->uri);
    } else if (virt_domain_get_state(old, &st) < 0) {
        /* recorded */
    } else if (st != VIRT_DOMAIN_SHUTOFF) {
        vk_error(VK_ERR_INVALID,
                 "domain '%s' on %s is %s: shut it down before replacing its definition", name,
                 d->conn->uri, virt_domain_state_name(st));
    } else {
        ok = (d->uuid = vk_strdup(old->uuid)) != NULL;
    }
    virt_domain_free(old);
    if (ok)
        return d;
fail:
    restore_definer_free(d);
    return NULL;
}

void restore_definer_free(struct restore_definer *d)
{
    if (!d)
        return;
    virt_conn_close(d->conn);
    free(d->name);
    free(d->uuid);
    free(d);
}

const char *restore_definer_uuid(const struct restore_definer *d)
{
    return d->uuid;
}

int restore_definer_define(struct restore_definer *d, const char *xml, bool start)
{
    virDomainPtr dom = virDomainDefineXML(d->conn->conn, xml);
    int r = 0;

    if (!dom) {
        vk_error(VK_ERR_LIBVIRT, "cannot define domain '%s' on %s: %s", d->name, d->conn->uri,
                 lv_message());
        return -1;
    }
    vk_info("defined domain '%s' on %s", d->name, d->conn->uri);
    if (start && virDomainCreate(dom) < 0) {
        vk_error(VK_ERR_LIBVIRT, "domain '%s' was defined but cannot start on %s: %s", d->name,
                 d->conn->uri, lv_message());
        r = -1;
    }
    virDomainFree(dom);
    return r;
}
