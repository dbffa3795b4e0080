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
 *
 * The saved XML comes from a backup target and is not trusted: a forged
 * manifest must not give the restored domain the host's files, devices or
 * sockets.  Unless KEEP_HOST_DEVICES, devices that reach host resources are
 * left out and listed (host_reach): file system passthrough, host devices,
 * char devices with a host-side source (files, sockets, pipes, devices),
 * channels other than the guest agent's and SPICE's, smartcards, USB
 * redirection, parallel ports, shared memory, TPM passthrough, evdev and
 * passthrough input, memory backed by host files, leases, pstore, audio to
 * files, odd RNG backends, interfaces other than network/bridge/user,
 * qemu:commandline and the rest of the qemu namespace, and static or
 * disabled security labels; cdrom and floppy media lose their source (the
 * drive stays, empty).  The guest agent channel keeps its socket, at the
 * path libvirt chooses; <emulator>, interface scripts and tap/vhost
 * backends go silently (libvirt's defaults replace them).
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

/* Point disk N at PATH: a qcow2 file without a backing chain (nor a
 * mirror, an encryption secret or network credentials). */
static int disk_repoint(xmlNode *n, const char *path)
{
    static const char *const gone[] = {"source", "backingStore", "mirror", "encryption", "auth"};
    xmlNode *driver = vk_xml_child(n, "driver");
    xmlNode *src;

    for (size_t i = 0; i < VK_ARRAY_SIZE(gone); i++)
        vk_xml_remove_children(n, gone[i]);
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

static char *describe(const xmlNode *n);

/* A cdrom or floppy keeps its drive, not the host file in it. */
static int media_eject(xmlNode *n, const char *device, const char *dev, char ***removed)
{
    CLEANUP_FREE char *what = NULL;

    if (!vk_xml_child(n, "source"))
        return 0;
    what = describe(n);
    if (!what || vk_strv_add(removed, what) < 0)
        return -1;
    vk_xml_remove_children(n, "source");
    vk_xml_remove_children(n, "backingStore");
    vk_debug("%s %s: its medium is left out of the definition", device, dev ? dev : "?");
    return 0;
}

static int disks_rewrite(xmlNode *devices, const struct restore_define_options *o, char ***dropped,
                         char ***removed)
{
    const struct restore_define_disk *disks = o->disks;
    size_t nr = o->nr_disks;
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
        } else if (vk_xml_is(c, "disk") && !o->keep_host_devices &&
                   media_eject(c, device, dev, removed) < 0) {
            return -1;
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

/* ------------------------------------------------------------ host reach */

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
#define GUEST_AGENT "org.qemu.guest_agent.0"

static bool attr_in(const xmlNode *n, const char *name, const char *dflt, const char *const *values)
{
    CLEANUP_FREE char *v = vk_xml_attr(n, name);
    const char *x = v ? v : dflt;

    for (size_t i = 0; x && values[i]; i++)
        if (strcmp(x, values[i]) == 0)
            return true;
    return false;
}

/* "<filesystem type='mount'> source '/' target 'host'" */
static char *describe(const xmlNode *n)
{
    static const char *const src_attrs[] = {"dir",  "file", "dev",     "path",   "socket",
                                            "host", "name", "network", "bridge", NULL};
    static const char *const tgt_attrs[] = {"dir", "dev", "name", "path", NULL};
    CLEANUP_FREE char *type = vk_xml_attr(n, "type"), *src = NULL, *tgt = NULL;
    xmlNode *s = vk_xml_child(n, "source"), *t = vk_xml_child(n, "target");
    const char *prefix = n->ns && n->ns->prefix ? (const char *)n->ns->prefix : NULL;

    for (size_t i = 0; s && !src && src_attrs[i]; i++)
        src = vk_xml_attr(s, src_attrs[i]);
    if (!src && vk_xml_child(s, "path")) /* <memory><source><path> */
        src = vk_xml_text(vk_xml_child(s, "path"));
    for (size_t i = 0; t && !tgt && tgt_attrs[i]; i++)
        tgt = vk_xml_attr(t, tgt_attrs[i]);
    return vk_asprintf("<%s%s%s%s%s%s>%s%s%s%s%s%s", prefix ? prefix : "", prefix ? ":" : "",
                       (const char *)n->name, type ? " type='" : "", type ? type : "",
                       type ? "'" : "", src ? " source '" : "", src ? src : "", src ? "'" : "",
                       tgt ? " target '" : "", tgt ? tgt : "", tgt ? "'" : "");
}

/* Char device types whose host side is QEMU's own (a pty, a SPICE or D-Bus
 * channel, nothing): no host file, socket or device named in the XML. */
static const char *const chr_safe[] = {"pty",       "null", "vc",           "spicevmc",
                                       "spiceport", "dbus", "qemu-vdagent", NULL};

static bool agent_channel(const xmlNode *n)
{
    static const char *const agent[] = {GUEST_AGENT, NULL};
    static const char *const virtio[] = {"virtio", NULL};
    static const char *const unix_[] = {"unix", NULL};
    xmlNode *t = vk_xml_child(n, "target");

    return attr_in(n, "type", NULL, unix_) && attr_in(t, "type", NULL, virtio) &&
           attr_in(t, "name", NULL, agent);
}

static bool rng_local(const xmlNode *n)
{
    static const char *const models[] = {"random", NULL};
    static const char *const builtin[] = {"builtin", NULL};
    xmlNode *b = vk_xml_child(n, "backend");
    CLEANUP_FREE char *path = NULL;

    if (attr_in(b, "model", NULL, builtin))
        return true;
    if (!attr_in(b, "model", NULL, models))
        return false;
    path = vk_xml_text(b);
    return path &&
           (!*path || strcmp(path, "/dev/urandom") == 0 || strcmp(path, "/dev/random") == 0);
}

/* Whether device N (a child of <devices>) reaches host resources beyond
 * the restored images. */
static bool host_reach(const xmlNode *n)
{
    static const char *const always[] = {"filesystem", "hostdev",  "smartcard",
                                         "redirdev",   "parallel", "shmem",
                                         "lease",      "pstore",   NULL};
    static const char *const nets[] = {"network", "bridge", "user", NULL};
    static const char *const inputs[] = {"passthrough", "evdev", NULL};
    static const char *const tpm_ok[] = {"emulator", NULL};
    static const char *const audio_file[] = {"file", NULL};

    for (size_t i = 0; always[i]; i++)
        if (vk_xml_is(n, always[i]))
            return true;
    if (vk_xml_is(n, "serial") || vk_xml_is(n, "console"))
        return !attr_in(n, "type", "pty", chr_safe);
    if (vk_xml_is(n, "channel"))
        return !attr_in(n, "type", "pty", chr_safe) && !agent_channel(n);
    if (vk_xml_is(n, "tpm"))
        return !attr_in(vk_xml_child(n, "backend"), "type", NULL, tpm_ok);
    if (vk_xml_is(n, "input"))
        return attr_in(n, "type", NULL, inputs);
    if (vk_xml_is(n, "interface"))
        return !attr_in(n, "type", NULL, nets);
    if (vk_xml_is(n, "memory")) {
        xmlNode *src = vk_xml_child(n, "source");
        return vk_xml_child(src, "path") != NULL;
    }
    if (vk_xml_is(n, "audio"))
        return attr_in(n, "type", NULL, audio_file);
    if (vk_xml_is(n, "rng"))
        return !rng_local(n);
    return false;
}

/* What stays of a device that may: the guest agent's socket at a path
 * libvirt chooses, interfaces without host scripts or tap/vhost paths. */
static int device_trim(xmlNode *n)
{
    if (vk_xml_is(n, "channel") && agent_channel(n)) {
        xmlNode *src;
        vk_xml_remove_children(n, "source");
        src = xmlNewChild(n, NULL, (const xmlChar *)"source", NULL);
        if (!src) {
            vk_error(VK_ERR_INTERNAL, "cannot rewrite the guest agent channel of the domain XML");
            return -1;
        }
        xmlSetProp(src, (const xmlChar *)"mode", (const xmlChar *)"bind");
    }
    if (vk_xml_is(n, "interface")) {
        vk_xml_remove_children(n, "script");
        vk_xml_remove_children(n, "downscript");
        vk_xml_remove_children(n, "backend");
    }
    return 0;
}

static int removed_add(char ***removed, xmlNode *n)
{
    CLEANUP_FREE char *what = describe(n);

    if (!what || vk_strv_add(removed, what) < 0)
        return -1;
    vk_xml_remove(n);
    return 0;
}

/* Leave out what reaches the host (see the top of this file). */
static int host_devices_drop(xmlNode *root, xmlNode *devices, char ***removed)
{
    xmlNode *c = root->children;

    while (c) {
        xmlNode *next = c->next;
        bool qemu = c->type == XML_ELEMENT_NODE && c->ns && c->ns->href &&
                    strcmp((const char *)c->ns->href, QEMU_NS) == 0;
        CLEANUP_FREE char *type = vk_xml_is(c, "seclabel") ? vk_xml_attr(c, "type") : NULL;

        if ((qemu || (type && strcmp(type, "dynamic") != 0)) && removed_add(removed, c) < 0)
            return -1;
        c = next;
    }
    c = devices ? devices->children : NULL;
    while (c) {
        xmlNode *next = c->next;

        if (vk_xml_is(c, "emulator"))
            vk_xml_remove(c);
        else if (host_reach(c) ? removed_add(removed, c) < 0 : device_trim(c) < 0)
            return -1;
        c = next;
    }
    return 0;
}

static int xml_edit(xmlDocPtr doc, const struct restore_define_options *o, char ***dropped,
                    char ***removed)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *devices = vk_xml_child(root, "devices");

    if (!vk_xml_is(root, "domain")) {
        vk_error(VK_ERR_INVALID, "the saved domain XML has no <domain> root element");
        return -1;
    }
    live_state_drop(root);
    if (disks_rewrite(devices, o, dropped, removed) < 0)
        return -1;
    if (!o->keep_host_devices && host_devices_drop(root, devices, removed) < 0)
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
                         char ***removed, unsigned int flags)
{
    CLEANUP_XMLDOC xmlDoc *doc = NULL;
    char **gone = NULL;
    char *out = NULL;

    *dropped = NULL;
    if (removed)
        *removed = NULL;
    if (flags != 0 || !xml) {
        vk_error(VK_ERR_INVALID, "restore_domain_xml: no XML or unknown flags");
        return NULL;
    }
    doc = vk_xml_parse_str(xml, VK_ERR_CORRUPT, "saved domain XML");
    if (doc && xml_edit(doc, o, dropped, &gone) == 0)
        out = vk_xml_dump(doc, true, "domain XML");
    if (!out) {
        vk_strv_free(*dropped);
        *dropped = NULL;
    }
    if (out && removed)
        *removed = gone;
    else
        vk_strv_free(gone);
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
