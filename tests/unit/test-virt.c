/* Unit tests of the libvirt glue: the disk parser and the XML builders on
 * hand-written XML (read back through libxml2 XPath), domains and
 * checkpoints on test:///default, and qemu-img / qemu-nbd on scratch images
 * (the offline checkpoint sequence runs against a test:///default domain
 * whose disks are real qcow2 files). */
#include <config.h>

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libnbd.h>
#include <libvirt/libvirt.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <pwd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/virt/virt.h"

/* ---------------------------------------------------------------- helpers */

static xmlDocPtr doc_parse(const char *xml)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    return doc;
}

/* string(EXPR) evaluated on DOC, malloc'd. */
static char *xp_str(xmlDocPtr doc, const char *expr)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    CLEANUP_FREE char *full = vk_asprintf("string(%s)", expr);
    xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)full, ctx);
    char *r;

    assert_non_null(o);
    r = strdup(o->stringval ? (const char *)o->stringval : "");
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(ctx);
    return r;
}

static int xp_count(xmlDocPtr doc, const char *expr)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
    int n;

    assert_non_null(o);
    n = o->nodesetval ? o->nodesetval->nodeNr : 0;
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(ctx);
    return n;
}

#define assert_xp(doc, expr, want)                                                                 \
    do {                                                                                           \
        CLEANUP_FREE char *got_ = xp_str((doc), (expr));                                           \
        assert_string_equal(got_, (want));                                                         \
    } while (0)

static bool have_prog(const char *name)
{
    CLEANUP_FREE char *cmd = vk_asprintf("command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static const char *const DOMAIN_XML =
    "<?xml version='1.0'?>\n"
    "<domain type='kvm'>\n"
    "  <name>web &amp; db</name>\n"
    "  <!-- <disk device='disk'><target dev='vdz'/></disk> -->\n"
    "  <devices>\n"
    "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2' discard='unmap'/>\n"
    "      <source file='/var/lib/images/it&apos;s.qcow2'/>\n"
    "      <target dev='vda' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk device='disk' type='block'>\n"
    "      <target bus='sata' dev='sdb'/>\n"
    "      <source dev='/dev/vg/data'/>\n"
    "      <driver type='raw' name='qemu'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='cdrom'>\n"
    "      <driver name='qemu' type='raw'/>\n"
    "      <target dev='sdc' bus='sata'/>\n"
    "      <readonly/>\n"
    "    </disk>\n"
    "    <disk type='file' device='floppy'>\n"
    "      <source file='/tmp/f.img'/><target dev='fda' bus='fdc'/>\n"
    "    </disk>\n"
    "    <disk type='block' device='lun'>\n"
    "      <source dev='/dev/sdx'/><target dev='sdd' bus='scsi'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2'/>\n"
    "      <source file='/var/lib/images/ro.qcow2'/>\n"
    "      <target dev='vdc' bus='virtio'/><readonly/>\n"
    "    </disk>\n"
    "    <disk type='network' device='disk'>\n"
    "      <driver name='qemu' type='raw'/>\n"
    "      <source protocol='nbd' name='exp'><host name='h' port='10809'/></source>\n"
    "      <target dev='vdd' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <source file='/var/lib/images/plain.img'/>\n"
    "      <target dev='vde'/>\n"
    "    </disk>\n"
    "    <interface type='network'><source network='default'/></interface>\n"
    "  </devices>\n"
    "</domain>\n";

/* ---------------------------------------------------------------- disk parser */

static void test_disks_parse(void **state)
{
    struct virt_disk_list l;
    struct virt_disk *d;

    (void)state;
    assert_int_equal(virt_disks_parse(DOMAIN_XML, &l), 0);
    assert_int_equal(l.nr, 8); /* the commented-out vdz is not a disk */
    assert_null(virt_disks_find(&l, "vdz"));

    d = virt_disks_find(&l, "vda");
    assert_non_null(d);
    assert_string_equal(d->bus, "virtio");
    assert_int_equal(d->kind, VIRT_DISK_DISK);
    assert_string_equal(d->source_type, "file");
    assert_string_equal(d->source, "/var/lib/images/it's.qcow2");
    assert_string_equal(d->format, "qcow2");
    assert_int_equal(d->fmt, VIRT_FORMAT_QCOW2);
    assert_false(d->readonly || d->skip || d->full_only);

    d = virt_disks_find(&l, "sdb");
    assert_string_equal(d->bus, "sata");
    assert_string_equal(d->source_type, "block");
    assert_string_equal(d->source, "/dev/vg/data");
    assert_int_equal(d->fmt, VIRT_FORMAT_RAW);
    assert_true(d->full_only);
    assert_false(d->skip);

    d = virt_disks_find(&l, "sdc");
    assert_int_equal(d->kind, VIRT_DISK_CDROM);
    assert_true(d->skip && d->readonly);
    assert_null(d->source);
    assert_string_equal(d->skip_reason, "is a cdrom");

    d = virt_disks_find(&l, "fda");
    assert_int_equal(d->kind, VIRT_DISK_FLOPPY);
    assert_true(d->skip);
    assert_string_equal(d->skip_reason, "is a floppy");

    d = virt_disks_find(&l, "sdd");
    assert_int_equal(d->kind, VIRT_DISK_LUN);
    assert_true(d->skip);
    assert_non_null(strstr(d->skip_reason, "LUN"));

    d = virt_disks_find(&l, "vdc");
    assert_true(d->readonly && d->skip);
    assert_string_equal(d->skip_reason, "is read-only");

    d = virt_disks_find(&l, "vdd");
    assert_string_equal(d->source_type, "network");
    assert_null(d->source);
    assert_false(d->skip);
    assert_true(d->full_only);

    d = virt_disks_find(&l, "vde"); /* no driver type: libvirt's raw */
    assert_null(d->format);
    assert_null(d->bus);
    assert_int_equal(d->fmt, VIRT_FORMAT_RAW);
    assert_true(d->full_only);
    virt_disks_clear(&l);
    assert_int_equal(l.nr, 0);
    assert_null(l.disks);
    virt_disks_clear(NULL);
}

static void expect_parse_error(const char *xml, const char *needle)
{
    struct virt_disk_list l = {.nr = 99};

    vk_error_clear();
    assert_int_equal(virt_disks_parse(xml, &l), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), needle));
    assert_int_equal(l.nr, 0);
    assert_null(l.disks);
}

static void test_disks_parse_errors(void **state)
{
    (void)state;
    expect_parse_error("<domain><devices><disk>", "cannot parse the domain XML");
    expect_parse_error("", "cannot parse the domain XML");
    expect_parse_error(NULL, "empty");
    expect_parse_error("<domaincheckpoint/>", "not <domain>");
    expect_parse_error("<domain><devices><disk device='disk'><source file='/a'/></disk>"
                       "</devices></domain>",
                       "no target");
    expect_parse_error("<domain><devices><disk><target dev='vda'/></disk>"
                       "<disk><target dev='vda'/></disk></devices></domain>",
                       "two disks named 'vda'");
    expect_parse_error("<domain><devices><disk device='tape'><target dev='st0'/></disk>"
                       "</devices></domain>",
                       "unknown device kind 'tape'");
}

static void test_disks_parse_empty(void **state)
{
    struct virt_disk_list l;

    (void)state;
    assert_int_equal(virt_disks_parse("<domain><name>x</name></domain>", &l), 0);
    assert_int_equal(l.nr, 0);
    virt_disks_clear(&l);
}

static void test_disks_select(void **state)
{
    struct virt_disk_list l;
    char *inc_vda[] = {"vda", NULL}, *exc_vda[] = {"vda", NULL}, *bad[] = {"vdq", NULL};
    char *cd[] = {"sdc", NULL}, *all[] = {"vda", "sdb", "vdd", "vde", NULL};
    char **sel;

    (void)state;
    assert_int_equal(virt_disks_parse(DOMAIN_XML, &l), 0);

    sel = virt_disks_select(&l, "d", NULL, NULL);
    assert_non_null(sel);
    assert_int_equal(vk_strv_len(sel), 4);
    for (size_t i = 0; all[i]; i++)
        assert_string_equal(sel[i], all[i]);
    vk_strv_free(sel);

    sel = virt_disks_select(&l, "d", inc_vda, NULL);
    assert_int_equal(vk_strv_len(sel), 1);
    assert_string_equal(sel[0], "vda");
    vk_strv_free(sel);

    sel = virt_disks_select(&l, "d", NULL, exc_vda);
    assert_int_equal(vk_strv_len(sel), 3);
    assert_false(vk_strv_contains(sel, "vda"));
    vk_strv_free(sel);

    assert_null(virt_disks_select(&l, "d", bad, NULL));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_string_equal(vk_error_message(), "domain 'd' has no disk 'vdq'.");
    assert_null(virt_disks_select(&l, "d", NULL, bad));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);

    assert_null(virt_disks_select(&l, "d", cd, NULL));
    assert_int_equal(vk_error_code(), VK_ERR_UNSUPPORTED);
    assert_non_null(strstr(vk_error_message(), "disk 'sdc' of domain 'd': it is a cdrom"));

    assert_null(virt_disks_select(&l, "d", inc_vda, exc_vda));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    virt_disks_clear(&l);
}

/* ---------------------------------------------------------------- XML builders */

static void test_xml_escape(void **state)
{
    CLEANUP_FREE char *e = virt_xml_escape("a&b<c>d'e\"f");
    CLEANUP_FREE char *plain = virt_xml_escape("virtkeep-1");

    (void)state;
    assert_string_equal(e, "a&amp;b&lt;c&gt;d&apos;e&quot;f");
    assert_string_equal(plain, "virtkeep-1");
}

static void test_checkpoint_xml_build(void **state)
{
    struct virt_disk_list l;
    char *sel[] = {"vda", "sdb", NULL};
    CLEANUP_FREE char *xml = NULL, *xml2 = NULL, *name = NULL;
    xmlDocPtr doc;

    (void)state;
    assert_int_equal(virt_disks_parse(DOMAIN_XML, &l), 0);
    xml = virt_checkpoint_xml_build("virtkeep-a&'b", "virtkeep-p<", 1700000000, &l, sel,
                                    VIRT_XML_BITMAP_NAMES);
    assert_non_null(xml);
    doc = doc_parse(xml);
    assert_xp(doc, "/domaincheckpoint/name", "virtkeep-a&'b");
    assert_xp(doc, "/domaincheckpoint/parent/name", "virtkeep-p<");
    assert_xp(doc, "/domaincheckpoint/creationTime", "1700000000");
    assert_int_equal(xp_count(doc, "/domaincheckpoint/disks/disk"), 8);
    assert_xp(doc, "/domaincheckpoint/disks/disk[@name='vda']/@checkpoint", "bitmap");
    assert_xp(doc, "/domaincheckpoint/disks/disk[@name='vda']/@bitmap", "virtkeep-a&'b");
    /* selected but raw: no bitmap possible */
    assert_xp(doc, "/domaincheckpoint/disks/disk[@name='sdb']/@checkpoint", "no");
    assert_int_equal(xp_count(doc, "/domaincheckpoint/disks/disk[@checkpoint='bitmap']"), 1);
    assert_int_equal(xp_count(doc, "/domaincheckpoint/disks/disk[@bitmap]"), 1);
    xmlFreeDoc(doc);

    name = virt_checkpoint_xml_get_name(xml);
    assert_string_equal(name, "virtkeep-a&'b");
    assert_int_equal(virt_checkpoint_xml_get_creation_time(xml), 1700000000);

    /* Fresh checkpoint: no parent, no time, no bitmap names. */
    xml2 = virt_checkpoint_xml_build("virtkeep-b", NULL, 0, &l, sel, 0);
    doc = doc_parse(xml2);
    assert_int_equal(xp_count(doc, "/domaincheckpoint/parent"), 0);
    assert_int_equal(xp_count(doc, "/domaincheckpoint/creationTime"), 0);
    assert_int_equal(xp_count(doc, "//disk[@bitmap]"), 0);
    assert_xp(doc, "//disk[@name='vda']/@checkpoint", "bitmap");
    xmlFreeDoc(doc);
    assert_int_equal(virt_checkpoint_xml_get_creation_time(xml2), -1);
    assert_null(virt_checkpoint_xml_get_name("<domain/>"));
    virt_disks_clear(&l);
}

static void test_backup_xml_build(void **state)
{
    struct virt_disk_list l;
    char *sel[] = {"vda", "sdb", "sdc", NULL};
    CLEANUP_FREE char *full = NULL, *inc = NULL;
    xmlDocPtr doc;

    (void)state;
    assert_int_equal(virt_disks_parse(DOMAIN_XML, &l), 0);
    full = virt_backup_xml_build("/run/vk-1/backup.sock", "/run/vk-1", NULL, &l, sel, 0);
    assert_non_null(full);
    doc = doc_parse(full);
    assert_xp(doc, "/domainbackup/@mode", "pull");
    assert_int_equal(xp_count(doc, "/domainbackup/incremental"), 0);
    assert_xp(doc, "/domainbackup/server/@transport", "unix");
    assert_xp(doc, "/domainbackup/server/@socket", "/run/vk-1/backup.sock");
    assert_int_equal(xp_count(doc, "/domainbackup/disks/disk"), 8);
    assert_xp(doc, "//disk[@name='vda']/@backup", "yes");
    assert_xp(doc, "//disk[@name='vda']/@type", "file");
    assert_xp(doc, "//disk[@name='vda']/scratch/@file", "/run/vk-1/vda.scratch");
    assert_xp(doc, "//disk[@name='sdb']/scratch/@file", "/run/vk-1/sdb.scratch");
    assert_int_equal(xp_count(doc, "//disk[@backupmode]"), 0);
    /* a skipped disk stays out even when selected */
    assert_xp(doc, "//disk[@name='sdc']/@backup", "no");
    assert_xp(doc, "//disk[@name='vde']/@backup", "no");
    assert_int_equal(xp_count(doc, "//disk[@backup='yes']"), 2);
    assert_int_equal(xp_count(doc, "//disk[@backup='no']/scratch"), 0);
    xmlFreeDoc(doc);

    inc = virt_backup_xml_build("/r/s'ock", "/r", "virtkeep-1", &l, sel, 0);
    doc = doc_parse(inc);
    assert_xp(doc, "/domainbackup/incremental", "virtkeep-1");
    assert_xp(doc, "/domainbackup/server/@socket", "/r/s'ock");
    assert_int_equal(xp_count(doc, "//disk[@name='vda'][@backupmode]"), 0);
    assert_xp(doc, "//disk[@name='sdb']/@backupmode", "full");
    xmlFreeDoc(doc);
    virt_disks_clear(&l);
}

/* ---------------------------------------------------------------- names and failures */

static void test_checkpoint_names(void **state)
{
    CLEANUP_FREE char *a = virt_checkpoint_name_new();
    CLEANUP_FREE char *b = virt_checkpoint_name_new();
    CLEANUP_FREE char *ctx = virt_pull_bitmap_context("vdb");

    (void)state;
    assert_true(virt_checkpoint_is_ours("virtkeep-1"));
    assert_false(virt_checkpoint_is_ours("virtkeep-"));
    assert_false(virt_checkpoint_is_ours("virtkeep"));
    assert_false(virt_checkpoint_is_ours("other-virtkeep-1"));
    assert_false(virt_checkpoint_is_ours(NULL));
    assert_true(virt_checkpoint_is_ours(a));
    assert_int_equal(strlen(a), strlen("virtkeep-20240101T000000Z-abcd"));
    assert_string_not_equal(a, b);
    assert_string_equal(ctx, "qemu:dirty-bitmap:backup-vdb");
}

static void test_failure_classify(void **state)
{
    (void)state;
    assert_int_equal(virt_failure_classify(109, "checkpoint inconsistent: x"),
                     VIRT_FAIL_CHECKPOINT_INCONSISTENT);
    assert_int_equal(virt_failure_classify(1, "internal error: unable to execute QEMU command "
                                              "'transaction': Bitmap already exists: virtkeep-1"),
                     VIRT_FAIL_BITMAP_EXISTS);
    assert_int_equal(virt_failure_classify(0, "qemu-img: Operation add on bitmap virtkeep-x "
                                              "failed: Bitmap already exists: virtkeep-x"),
                     VIRT_FAIL_BITMAP_EXISTS);
    assert_int_equal(virt_failure_classify(103, "Domain checkpoint not found"),
                     VIRT_FAIL_CHECKPOINT_MISSING);
    assert_int_equal(virt_failure_classify(86, "Guest agent is not responding"),
                     VIRT_FAIL_NO_AGENT);
    assert_int_equal(virt_failure_classify(67, "argument unsupported: QEMU guest agent is not "
                                               "configured"),
                     VIRT_FAIL_NO_AGENT);
    assert_int_equal(virt_failure_classify(1, "internal error: something else"), VIRT_FAIL_OTHER);
    assert_int_equal(virt_failure_classify(1, NULL), VIRT_FAIL_OTHER);
}

/* ---------------------------------------------------------------- test:///default */

struct tdom {
    struct virt_conn *c;
    struct virt_domain *d;
    char dir[64];
    char *img[2];
};

static void tdom_define(struct tdom *t, const char *name, bool with_images)
{
    CLEANUP_FREE char *xml = NULL;
    virDomainPtr dom;

    t->c = virt_conn_open("test:///default", 0);
    assert_non_null(t->c);
    snprintf(t->dir, sizeof(t->dir), "/tmp/test-virt.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    for (int i = 0; i < 2; i++) {
        t->img[i] = vk_asprintf("%s/vd%c.qcow2", t->dir, 'a' + i);
        if (with_images) {
            CLEANUP_FREE char *cmd = vk_asprintf("qemu-img create -q -f qcow2 '%s' 64M", t->img[i]);
            assert_int_equal(system(cmd), 0);
        }
    }
    xml = vk_asprintf("<domain type='test'><name>%s</name><memory>1024</memory>"
                      "<os><type>hvm</type></os><devices>"
                      "<disk type='file' device='disk'><driver type='qcow2'/>"
                      "<source file='%s'/><target dev='vda' bus='virtio'/></disk>"
                      "<disk type='file' device='disk'><driver type='qcow2'/>"
                      "<source file='%s'/><target dev='vdb' bus='virtio'/></disk>"
                      "</devices></domain>",
                      name, t->img[0], t->img[1]);
    dom = virDomainDefineXML(t->c->conn, xml);
    assert_non_null(dom);
    /* test:///default refuses checkpoints of inactive domains, even REDEFINE */
    assert_int_equal(virDomainCreate(dom), 0);
    virDomainFree(dom);
    t->d = virt_domain_lookup(t->c, name);
    assert_non_null(t->d);
}

static void tdom_undefine(struct tdom *t)
{
    CLEANUP_FREE char *cmd = vk_asprintf("rm -rf '%s'", t->dir);

    virDomainDestroy(t->d->dom);
    virDomainUndefineFlags(t->d->dom, VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA);
    virt_domain_free(t->d);
    virt_conn_close(t->c);
    assert_int_equal(system(cmd), 0);
    free(t->img[0]);
    free(t->img[1]);
}

static void test_domain_lookup(void **state)
{
    struct virt_conn *c = virt_conn_open("test:///default", 0);
    struct virt_domain *d, *by_uuid;
    enum virt_domain_state st;
    struct virt_disk_list l;
    CLEANUP_FREE char *xml = NULL, *inactive = NULL;

    (void)state;
    assert_non_null(c);
    assert_string_equal(c->uri, "test:///default");
    assert_false(virt_conn_is_system(c));
    d = virt_domain_lookup(c, "test");
    assert_non_null(d);
    assert_string_equal(d->name, "test");
    assert_int_equal(strlen(d->uuid), 36);
    by_uuid = virt_domain_lookup(c, d->uuid);
    assert_non_null(by_uuid);
    assert_string_equal(by_uuid->name, "test");
    virt_domain_free(by_uuid);

    assert_int_equal(virt_domain_get_state(d, &st), 0);
    assert_int_equal(st, VIRT_DOMAIN_RUNNING);
    assert_string_equal(virt_domain_state_name(st), "running");
    assert_int_equal(virt_domain_is_persistent(d), 1);

    xml = virt_domain_get_xml(d, 0);
    inactive = virt_domain_get_xml(d, VIRT_XML_INACTIVE);
    assert_non_null(strstr(xml, "id='1'"));
    assert_null(strstr(inactive, "id='1'"));
    assert_int_equal(virt_disks_parse(xml, &l), 0);
    assert_int_equal(l.nr, 1);
    assert_string_equal(l.disks[0].source, "/guest/diskimage1");
    virt_disks_clear(&l);
    virt_domain_free(d);

    vk_error_clear();
    assert_null(virt_domain_lookup(c, "nope"));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_string_equal(vk_error_message(), "domain 'nope' not found on test:///default.");
    assert_null(virt_domain_lookup(c, "00000000-0000-0000-0000-000000000000"));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    virt_conn_close(c);
    virt_conn_close(NULL);
    virt_domain_free(NULL);

    assert_null(virt_conn_open("nosuchdriver:///x", 0));
    assert_int_not_equal(vk_error_code(), VK_ERR_NONE);
    assert_non_null(strstr(vk_error_message(), "cannot connect to libvirt at 'nosuchdriver:///x'"));
}

static void redefine_at(struct tdom *t, const char *name, const char *parent, int64_t when)
{
    struct virt_disk_list l;
    char *sel[] = {"vda", "vdb", NULL};
    CLEANUP_FREE char *dx = virt_domain_get_xml(t->d, VIRT_XML_INACTIVE);
    CLEANUP_FREE char *xml = NULL;

    assert_int_equal(virt_disks_parse(dx, &l), 0);
    xml = virt_checkpoint_xml_build(name, parent, when, &l, sel, VIRT_XML_BITMAP_NAMES);
    assert_int_equal(virt_checkpoint_redefine(t->d, xml, 0), 0);
    virt_disks_clear(&l);
}

static void test_checkpoints(void **state)
{
    struct tdom t;
    virDomainCheckpointPtr foreign;
    char **names;
    CLEANUP_FREE char *cur = NULL, *saved = NULL, *cur2 = NULL;

    (void)state;
    tdom_define(&t, "vk-cp", false);
    redefine_at(&t, "virtkeep-1", NULL, 1000);
    redefine_at(&t, "virtkeep-2", "virtkeep-1", 2000);
    foreign = virDomainCheckpointCreateXML(
        t.d->dom, "<domaincheckpoint><name>foreign</name></domaincheckpoint>", 0);
    assert_non_null(foreign);
    virDomainCheckpointFree(foreign);

    names = virt_checkpoint_list(t.d, 0);
    assert_int_equal(vk_strv_len(names), 2);
    assert_string_equal(names[0], "virtkeep-1");
    assert_string_equal(names[1], "virtkeep-2");
    vk_strv_free(names);
    names = virt_checkpoint_list(t.d, VIRT_CHECKPOINT_LIST_ALL);
    assert_int_equal(vk_strv_len(names), 3);
    assert_true(vk_strv_contains(names, "foreign"));
    vk_strv_free(names);

    cur = virt_checkpoint_current(t.d);
    assert_string_equal(cur, "virtkeep-2");
    assert_int_equal(virt_checkpoint_exists(t.d, "virtkeep-2"), 1);
    assert_int_equal(virt_checkpoint_exists(t.d, "virtkeep-9"), 0);
    assert_int_equal(vk_error_code(), VK_ERR_NONE);

    /* a foreign checkpoint is never deleted */
    assert_int_equal(virt_checkpoint_delete(t.d, "foreign", 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "checkpoint 'foreign' of domain 'vk-cp'"));
    assert_int_equal(virt_checkpoint_exists(t.d, "foreign"), 1);
    /* nor created under a foreign name */
    assert_int_equal(
        virt_checkpoint_create(t.d, "<domaincheckpoint><name>mine</name></domaincheckpoint>", 0),
        -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);

    /* delete metadata, then redefine from the saved XML */
    saved = virt_checkpoint_get_xml(t.d, "virtkeep-2");
    assert_non_null(saved);
    assert_int_equal(virt_checkpoint_xml_get_creation_time(saved), 2000);
    assert_int_equal(virt_checkpoint_delete(t.d, "virtkeep-2", VIRT_CHECKPOINT_METADATA_ONLY), 0);
    assert_int_equal(virt_checkpoint_exists(t.d, "virtkeep-2"), 0);
    assert_int_equal(virt_checkpoint_delete(t.d, "virtkeep-2", 0), 0); /* already gone */
    assert_null(virt_checkpoint_get_xml(t.d, "virtkeep-2"));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_int_equal(virt_last_failure(), VIRT_FAIL_CHECKPOINT_MISSING);
    assert_true(virt_error_needs_full());
    assert_int_equal(virt_checkpoint_redefine(t.d, saved, 0), 0);
    cur2 = virt_checkpoint_current(t.d);
    assert_string_equal(cur2, "virtkeep-2");

    /* test:///default has no backup jobs: a clear libvirt error */
    assert_int_equal(virt_backup_begin(t.d, "<domainbackup/>", NULL, 0), -1);
    assert_non_null(strstr(vk_error_message(), "cannot begin the backup of domain 'vk-cp': "));
    tdom_undefine(&t);
}

/* ---------------------------------------------------------------- images, qemu-nbd */

static char *tmpdir_new(void)
{
    char *dir = strdup("/tmp/test-virt-run.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *dir)
{
    CLEANUP_FREE char *cmd = vk_asprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_rundir(void **state)
{
    CLEANUP_FREE char *parent = tmpdir_new();
    CLEANUP_FREE char *dir = NULL, *f = NULL, *sub = NULL;
    struct stat st;
    FILE *fp;

    (void)state;
    dir = virt_rundir_create(parent, VIRT_RUNDIR_NO_CHOWN);
    assert_non_null(dir);
    assert_int_equal(strncmp(dir, parent, strlen(parent)), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    f = vk_asprintf("%s/vda.scratch", dir);
    fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(virt_rundir_remove(dir), 0);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(virt_rundir_remove(dir), 0); /* gone already */
    free(dir);

    /* a directory inside is not ours: refused, and the files stay */
    dir = virt_rundir_create(parent, VIRT_RUNDIR_NO_CHOWN);
    sub = vk_asprintf("%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(virt_rundir_remove(dir), -1);
    assert_non_null(strstr(vk_error_message(), "cannot remove 'sub' from run directory"));
    assert_int_equal(stat(sub, &st), 0);
    free(dir);

    /* as root, the directory goes to QEMU's user */
    if (getuid() == 0 && getpwnam("libvirt-qemu")) {
        dir = virt_rundir_create(parent, 0);
        assert_non_null(dir);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_uid, getpwnam("libvirt-qemu")->pw_uid);
        assert_int_equal(virt_rundir_remove(dir), 0);
    }
    rm_rf(parent);
}

/* A run directory is named after its process (vk-PID-XXXXXX); recovery
 * removes those whose process is gone, with what QEMU left in them, and
 * nothing else. */
static void test_rundir_stale(void **state)
{
    CLEANUP_FREE char *parent = tmpdir_new();
    CLEANUP_FREE char *mine = NULL, *alive = NULL, *other = NULL, *link = NULL;
    CLEANUP_FREE char *old_empty = NULL, *old_full = NULL, *new_empty = NULL, *f = NULL;
    char dead[512] = "", want[64];
    struct timeval old[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    unsigned int n = 99;
    int fds[2], status;
    struct stat st;
    pid_t pid;
    FILE *fp;

    (void)state;
    /* Ours: named after this process, kept. */
    mine = virt_rundir_create(parent, VIRT_RUNDIR_NO_CHOWN);
    assert_non_null(mine);
    snprintf(want, sizeof want, "/vk-%ld-", (long)getpid());
    assert_non_null(strstr(mine, want));
    /* A process killed with kill -9 while its backup ran: socket and
     * scratch file left in its directory. */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *d = virt_rundir_create(parent, VIRT_RUNDIR_NO_CHOWN);
        char *s = d ? vk_asprintf("%s/vda.scratch", d) : NULL;
        FILE *c = s ? fopen(s, "w") : NULL;
        if (!c || write(fds[1], d, strlen(d)) < 0)
            _exit(1);
        fclose(c);
        close(fds[1]);
        pause();
        _exit(0);
    }
    close(fds[1]);
    assert_true(read(fds[0], dead, sizeof dead - 1) > 0);
    close(fds[0]);
    /* While it runs, its directory is kept. */
    assert_int_equal(virt_rundir_clean_stale(parent, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(stat(dead, &st), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);

    /* Others: a live process (pid 1), a symbolic link, a name not ours,
     * and directories of versions before the pid in the name (vk-XXXXXX):
     * only an empty one older than an hour is removed. */
    alive = vk_asprintf("%s/vk-1-AbCd12", parent);
    assert_int_equal(mkdir(alive, 0750), 0);
    link = vk_asprintf("%s/vk-999999999-zzzzzz", parent);
    assert_int_equal(symlink(dead, link), 0);
    other = vk_asprintf("%s/web1.lock", parent);
    fp = fopen(other, "w");
    assert_non_null(fp);
    fclose(fp);
    old_empty = vk_asprintf("%s/vk-Old1ab", parent);
    old_full = vk_asprintf("%s/vk-Old2ab", parent);
    new_empty = vk_asprintf("%s/vk-New3ab", parent);
    assert_int_equal(mkdir(old_empty, 0750), 0);
    assert_int_equal(mkdir(old_full, 0750), 0);
    assert_int_equal(mkdir(new_empty, 0750), 0);
    f = vk_asprintf("%s/backup.sock", old_full);
    fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(utimes(old_empty, old), 0);
    assert_int_equal(utimes(old_full, old), 0);

    assert_int_equal(virt_rundir_clean_stale(parent, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(lstat(dead, &st), -1); /* the dead process's, with its file */
    assert_int_equal(lstat(old_empty, &st), -1);
    assert_int_equal(stat(mine, &st), 0);
    assert_int_equal(stat(alive, &st), 0);
    assert_int_equal(lstat(link, &st), 0);
    assert_int_equal(stat(other, &st), 0);
    assert_int_equal(stat(old_full, &st), 0);
    assert_int_equal(stat(new_empty, &st), 0);
    /* Nothing more to do; a parent that does not exist is not an error. */
    assert_int_equal(virt_rundir_clean_stale(parent, &n), 0);
    assert_int_equal(n, 0);
    free(f);
    f = vk_asprintf("%s/none", parent);
    assert_int_equal(virt_rundir_clean_stale(f, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(virt_rundir_remove(mine), 0);
    rm_rf(parent);
}

/* virt_rundir_create(NULL) as a user other than root: under BASE/virtkeep,
 * made 0700.  In a child (CHILD): exit 0 if so, else 1. */
static void user_rundir_check(const char *base, bool child)
{
    CLEANUP_FREE char *parent = vk_asprintf("%s/virtkeep", base);
    CLEANUP_FREE char *prefix = vk_asprintf("%s/vk-%ld-", parent, (long)getpid());
    char *dir = virt_rundir_create(NULL, VIRT_RUNDIR_NO_CHOWN);
    struct stat st;
    bool ok = dir && strncmp(dir, prefix, strlen(prefix)) == 0 && stat(parent, &st) == 0 &&
              (st.st_mode & 07777) == 0700 && st.st_uid == geteuid() &&
              virt_rundir_remove(dir) == 0;

    if (!ok)
        fprintf(stderr, "run directory '%s' (want '%s...'): %s\n", dir ? dir : "(none)", prefix,
                dir ? "wrong place or mode" : vk_error_message());
    free(dir);
    if (child)
        _exit(ok ? 0 : 1);
    assert_true(ok);
}

/* setenv, or unsetenv for NULL. */
static void env_set(const char *name, const char *value)
{
    assert_int_equal(value ? setenv(name, value, 1) : unsetenv(name), 0);
}

/* Where run directories go: /var/lib/virtkeep/run for root; for any other
 * user $XDG_RUNTIME_DIR/virtkeep, else $XDG_CACHE_HOME/virtkeep/run, else
 * $HOME/.cache/virtkeep/run (as the configuration and catalog defaults). */
static void test_rundir_default(void **state)
{
    static const char *const vars[] = {"XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "HOME"};
    static const struct {
        uid_t uid;
        const char *run, *cache, *home, *want;
    } cases[] = {
        {0, "/run/user/0", "/root/.cache", "/root", "/var/lib/virtkeep/run"},
        {0, NULL, NULL, NULL, "/var/lib/virtkeep/run"},
        {1000, "/run/user/1000", "/home/u/.c", "/home/u", "/run/user/1000/virtkeep"},
        {1000, NULL, "/home/u/.c", "/home/u", "/home/u/.c/virtkeep/run"},
        {1000, NULL, NULL, "/home/u", "/home/u/.cache/virtkeep/run"},
        {1000, "", "", "/home/u", "/home/u/.cache/virtkeep/run"},
        {1000, "run", "cache", "/home/u", "/home/u/.cache/virtkeep/run"},
        {1000, NULL, NULL, NULL, NULL},
        {1000, NULL, NULL, "home", NULL},
    };
    char *saved[3];

    (void)state;
    for (size_t i = 0; i < 3; i++)
        saved[i] = getenv(vars[i]) ? strdup(getenv(vars[i])) : NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CLEANUP_FREE char *got = NULL;
        env_set("XDG_RUNTIME_DIR", cases[i].run);
        env_set("XDG_CACHE_HOME", cases[i].cache);
        env_set("HOME", cases[i].home);
        vk_error_clear();
        got = virt_rundir_default(cases[i].uid);
        if (!cases[i].want) {
            assert_null(got);
            assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
            assert_non_null(strstr(vk_error_message(), "XDG_RUNTIME_DIR"));
            continue;
        }
        if (!got)
            fail_msg("case %zu: %s", i, vk_error_message());
        assert_string_equal(got, cases[i].want);
    }

    /* Not root: the default parent is made (0700) under $XDG_RUNTIME_DIR
     * and the run directory in it.  As root, in a child that becomes
     * "nobody". */
    {
        CLEANUP_FREE char *base = tmpdir_new();
        struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : NULL;
        pid_t pid = 0;
        int status;

        if (pw)
            assert_int_equal(chown(base, pw->pw_uid, pw->pw_gid), 0);
        if (geteuid() != 0 || (pw && (pid = fork()) == 0)) {
            if (pid == 0 && pw && (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0))
                _exit(2);
            env_set("XDG_RUNTIME_DIR", base);
            user_rundir_check(base, geteuid() != 0 && pw);
        }
        if (pid > 0) {
            assert_int_equal(waitpid(pid, &status, 0), pid);
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
        }
        rm_rf(base);
    }
    for (size_t i = 0; i < 3; i++) {
        env_set(vars[i], saved[i]);
        free(saved[i]);
    }
}

static void test_qemu_user(void **state)
{
    CLEANUP_FREE char *dir = tmpdir_new();
    CLEANUP_FREE char *conf = vk_asprintf("%s/qemu.conf", dir);
    CLEANUP_FREE char *u1 = NULL, *u2 = NULL, *u3 = NULL;
    FILE *fp;

    (void)state;
    fp = fopen(conf, "w");
    fputs("# user = \"commented\"\n  user  =  \"+107\"  \ngroup = \"kvm\"\n", fp);
    fclose(fp);
    u1 = virt_qemu_user(conf);
    assert_string_equal(u1, "+107");

    fp = fopen(conf, "w");
    fputs("#user = \"commented\"\nusers = \"no\"\n", fp);
    fclose(fp);
    u2 = virt_qemu_user(conf);
    if (getpwnam("libvirt-qemu"))
        assert_string_equal(u2, "libvirt-qemu");
    else if (getpwnam("qemu"))
        assert_string_equal(u2, "qemu");
    else
        assert_null(u2);
    u3 = virt_qemu_user("/nonexistent/qemu.conf");
    assert_true((u2 == NULL && u3 == NULL) || strcmp(u2, u3) == 0);
    rm_rf(dir);
}

static int bitmap_state(const char *img, const char *name)
{
    enum virt_bitmap_state st = 99;
    assert_int_equal(virt_image_bitmap_state(img, name, &st), 0);
    return (int)st;
}

/* Leave bitmap NAME in-use, as a QEMU killed while the image was open does. */
static void crash_with_image_open(const char *img)
{
    CLEANUP_FREE char *cmd = vk_asprintf("qemu-io -f qcow2 -c 'sigraise 9' '%s' 2>/dev/null", img);
    (void)system(cmd);
}

static void test_image_bitmaps(void **state)
{
    CLEANUP_FREE char *dir = NULL, *img = NULL, *cmd = NULL;

    (void)state;
    if (!have_prog("qemu-img") || !have_prog("qemu-io"))
        skip();
    dir = tmpdir_new();
    img = vk_asprintf("%s/a.qcow2", dir);
    cmd = vk_asprintf("qemu-img create -q -f qcow2 '%s' 64M", img);
    assert_int_equal(system(cmd), 0);

    assert_int_equal(bitmap_state(img, "virtkeep-x"), VIRT_BITMAP_ABSENT);
    assert_int_equal(virt_image_bitmap_add(img, "virtkeep-x"), 0);
    assert_int_equal(bitmap_state(img, "virtkeep-x"), VIRT_BITMAP_OK);
    assert_int_equal(bitmap_state(img, "virtkeep-y"), VIRT_BITMAP_ABSENT);
    assert_int_equal(virt_image_bitmap_add(img, "virtkeep-x"), -1);
    assert_int_equal(virt_last_failure(), VIRT_FAIL_BITMAP_EXISTS);
    assert_true(virt_error_needs_full());
    assert_non_null(strstr(vk_error_message(), "cannot add bitmap 'virtkeep-x' to image"));
    assert_non_null(strstr(vk_error_message(), "Bitmap already exists"));

    crash_with_image_open(img);
    assert_int_equal(bitmap_state(img, "virtkeep-x"), VIRT_BITMAP_IN_USE);

    assert_int_equal(virt_image_bitmap_remove(img, "virtkeep-x"), 0);
    assert_int_equal(bitmap_state(img, "virtkeep-x"), VIRT_BITMAP_ABSENT);
    assert_int_equal(virt_image_bitmap_remove(img, "virtkeep-x"), 0);

    assert_int_equal(virt_image_bitmap_add("/nonexistent.qcow2", "virtkeep-x"), -1);
    assert_int_equal(
        virt_image_bitmap_state("/nonexistent.qcow2", "virtkeep-x", &(enum virt_bitmap_state){0}),
        -1);
    assert_non_null(strstr(vk_error_message(), "/nonexistent.qcow2"));
    rm_rf(dir);
}

/* The offline sequence needs a shut-off domain, which test:///default cannot
 * checkpoint: here only its refusals (nothing touched); tests/e2e/test-virt-e2e.sh
 * runs the sequence against qemu:///system. */
static void test_checkpoint_offline_refused(void **state)
{
    struct tdom t;
    struct virt_disk_list l;
    char *sel[] = {"vda", "vdb", NULL};
    CLEANUP_FREE char *dx = NULL;

    (void)state;
    if (!have_prog("qemu-img"))
        skip();
    tdom_define(&t, "vk-offline", true);
    dx = virt_domain_get_xml(t.d, VIRT_XML_INACTIVE);
    assert_int_equal(virt_disks_parse(dx, &l), 0);

    assert_null(virt_checkpoint_create_offline(t.d, "virtkeep-off1", NULL, &l, sel, 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_string_equal(vk_error_message(), "cannot add bitmaps to the images of domain "
                                            "'vk-offline': it is not shut off.");
    assert_int_equal(bitmap_state(t.img[0], "virtkeep-off1"), VIRT_BITMAP_ABSENT);
    assert_null(virt_checkpoint_create_offline(t.d, "other", NULL, &l, sel, 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "does not start with 'virtkeep-'"));
    assert_int_equal(virt_checkpoint_exists(t.d, "virtkeep-off1"), 0);
    assert_int_equal(virt_checkpoint_exists(t.d, "other"), 0);
    virt_disks_clear(&l);
    tdom_undefine(&t);
}

static void test_nbd(void **state)
{
    CLEANUP_FREE char *dir = NULL, *img = NULL, *cmd = NULL, *sock = NULL;
    struct virt_disk disk = {.target = "vdb", .fmt = VIRT_FORMAT_QCOW2};
    struct virt_nbd *n;
    struct nbd_handle *h;
    struct stat st;
    pid_t pid;

    (void)state;
    if (!have_prog("qemu-img") || !have_prog("qemu-nbd"))
        skip();
    dir = tmpdir_new();
    img = vk_asprintf("%s/b.qcow2", dir);
    cmd = vk_asprintf("qemu-img create -q -f qcow2 '%s' 32M", img);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(virt_image_bitmap_add(img, "virtkeep-n"), 0);
    disk.source = img;

    n = virt_nbd_start(&disk, dir, "virtkeep-n", 0);
    assert_non_null(n);
    assert_string_equal(n->export_name, "vdb");
    assert_string_equal(n->bitmap_context, "qemu:dirty-bitmap:virtkeep-n");
    h = nbd_create();
    assert_non_null(h);
    assert_int_equal(nbd_set_export_name(h, "vdb"), 0);
    assert_int_equal(nbd_add_meta_context(h, n->bitmap_context), 0);
    assert_int_equal(nbd_connect_unix(h, n->socket), 0);
    assert_int_equal(nbd_get_size(h), 32 << 20);
    assert_int_equal(nbd_is_read_only(h), 1);
    assert_int_equal(nbd_can_meta_context(h, n->bitmap_context), 1);
    nbd_close(h);

    sock = strdup(n->socket);
    pid = n->pid;
    assert_int_equal(virt_nbd_stop(n), 0);
    assert_int_equal(kill(pid, 0), -1); /* reaped: no zombie left */
    assert_int_equal(stat(sock, &st), -1);

    /* a bitmap that does not exist: qemu-nbd's own message */
    assert_null(virt_nbd_start(&disk, dir, "virtkeep-none", 0));
    assert_non_null(strstr(vk_error_message(), "qemu-nbd for disk 'vdb'"));
    assert_int_equal(virt_nbd_stop(NULL), 0);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disks_parse),
        cmocka_unit_test(test_disks_parse_errors),
        cmocka_unit_test(test_disks_parse_empty),
        cmocka_unit_test(test_disks_select),
        cmocka_unit_test(test_xml_escape),
        cmocka_unit_test(test_checkpoint_xml_build),
        cmocka_unit_test(test_backup_xml_build),
        cmocka_unit_test(test_checkpoint_names),
        cmocka_unit_test(test_failure_classify),
        cmocka_unit_test(test_domain_lookup),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_rundir),
        cmocka_unit_test(test_rundir_stale),
        cmocka_unit_test(test_rundir_default),
        cmocka_unit_test(test_qemu_user),
        cmocka_unit_test(test_image_bitmaps),
        cmocka_unit_test(test_checkpoint_offline_refused),
        cmocka_unit_test(test_nbd),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
