/* Unit tests of src/snapshot-xml.c (names, overlay paths, snapshot XML
 * build and parse, domain XML rewrite) and of snapshot_list /
 * snapshot_delete's lookup against libvirt's test:///default driver. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "src/snapshot/snapshot.h"
#include "src/virt/virt.h"

static const char domain_xml[] =
    "<domain type='kvm'><name>web1</name><devices>"
    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='/img/web1-vda.qcow2'/>"
    "<backingStore type='file'><format type='qcow2'/><source file='/img/old.qcow2'/>"
    "<backingStore/></backingStore><target dev='vda' bus='virtio'/></disk>"
    "<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
    "<source dev='/dev/vg/data'/><target dev='vdb' bus='virtio'/></disk>"
    "<disk type='file' device='cdrom'><source file='/iso/x.iso'/>"
    "<target dev='sda' bus='sata'/><readonly/></disk>"
    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='/img/ro.qcow2'/><target dev='vdc' bus='virtio'/><readonly/></disk>"
    "</devices></domain>";

/* What libvirt answers for virDomainSnapshotGetXMLDesc of a disk-only
 * snapshot "s1" taken on top of snapshot "s0" (trimmed). */
static const char libvirt_snapshot_xml[] =
    "<domainsnapshot>\n"
    "  <name>s1</name>\n"
    "  <state>disk-snapshot</state>\n"
    "  <parent>\n    <name>s0</name>\n  </parent>\n"
    "  <creationTime>1764291723</creationTime>\n"
    "  <memory snapshot='no'/>\n"
    "  <disks>\n"
    "    <disk name='vda' snapshot='external' type='file'>\n"
    "      <driver type='qcow2'/>\n"
    "      <source file='/img/web1-vda.qcow2.s0.s1'/>\n"
    "    </disk>\n"
    "    <disk name='sda' snapshot='no'/>\n"
    "  </disks>\n"
    "  <domain type='kvm'>\n"
    "    <name>web1</name>\n"
    "    <devices>\n"
    "      <disk type='file' device='disk'>\n"
    "        <driver name='qemu' type='qcow2'/>\n"
    "        <source file='/img/web1-vda.qcow2.s0'/>\n"
    "        <target dev='vda' bus='virtio'/>\n"
    "      </disk>\n"
    "      <disk type='file' device='cdrom'>\n"
    "        <source file='/iso/x.iso'/><target dev='sda' bus='sata'/>\n"
    "      </disk>\n"
    "    </devices>\n"
    "  </domain>\n"
    "</domainsnapshot>\n";

static void test_name_default(void **state)
{
    char *n = snapshot_name_default(1764291723); /* 2025-11-28T01:02:03Z */

    (void)state;
    assert_string_equal(n, "vk-20251128T010203");
    assert_int_equal(snapshot_name_check(n), 0);
    free(n);
}

static void test_name_check(void **state)
{
    static const char *bad[] = {"", ".hidden", "-opt", "a/b", "a b", "tab\there", "\xc3\xa9"};
    char longname[200];

    (void)state;
    assert_int_equal(snapshot_name_check("before-upgrade_1.2"), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vk_error_clear();
        assert_int_equal(snapshot_name_check(bad[i]), -1);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    }
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(snapshot_name_check(longname), -1);
    longname[128] = '\0';
    assert_int_equal(snapshot_name_check(longname), 0);
}

static void test_overlay_path(void **state)
{
    char *a = snapshot_overlay_path("/img/web1-vda.qcow2", NULL, "s1");
    char *b = snapshot_overlay_path("/img/web1-vda.qcow2", "/fast", "s1");

    (void)state;
    assert_string_equal(a, "/img/web1-vda.qcow2.s1");
    assert_string_equal(b, "/fast/web1-vda.qcow2.s1");
    free(a);
    free(b);
}

static void disks_load(struct virt_disk_list *l)
{
    assert_int_equal(virt_disks_parse(domain_xml, l), 0);
    assert_int_equal(l->nr, 4);
}

static void test_build_disk_only(void **state)
{
    struct virt_disk_list l;
    struct snapshot_info info;
    char *xml;

    (void)state;
    disks_load(&l);
    xml = snapshot_xml_build("s'1", &l, NULL, NULL, 0);
    assert_non_null(xml);
    assert_non_null(strstr(xml, "<name>s&apos;1</name>"));
    assert_non_null(strstr(xml, "<memory snapshot='no'/>"));
    assert_non_null(strstr(xml, "<disk name='sda' snapshot='no'/>"));
    assert_non_null(strstr(xml, "<disk name='vdc' snapshot='no'/>"));
    /* Parsed back: exactly the writable file and block disks are external. */
    assert_int_equal(snapshot_xml_parse(xml, &info), 0);
    assert_string_equal(info.name, "s'1");
    assert_null(info.memory_file);
    assert_true(info.external);
    assert_int_equal(info.nr_disks, 2);
    assert_string_equal(info.disks[0].target, "vda");
    assert_string_equal(info.disks[0].overlay, "/img/web1-vda.qcow2.s'1");
    assert_null(info.disks[0].base); /* no <domain> in a request */
    assert_string_equal(info.disks[1].target, "vdb");
    assert_string_equal(info.disks[1].overlay, "/dev/vg/data.s'1");
    snapshot_info_clear(&info);
    free(xml);
    virt_disks_clear(&l);
}

static void test_build_memory(void **state)
{
    struct virt_disk_list l;
    struct snapshot_info info;
    char *xml;

    (void)state;
    disks_load(&l);
    assert_null(snapshot_xml_build("m", &l, "/fast", NULL, SNAPSHOT_MEMORY));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    xml = snapshot_xml_build("m", &l, "/fast", "/fast/web1.m.mem", SNAPSHOT_MEMORY);
    assert_non_null(xml);
    assert_int_equal(snapshot_xml_parse(xml, &info), 0);
    assert_string_equal(info.memory_file, "/fast/web1.m.mem");
    assert_string_equal(info.disks[0].overlay, "/fast/web1-vda.qcow2.m");
    snapshot_info_clear(&info);
    free(xml);
    virt_disks_clear(&l);
}

static void test_build_no_disk(void **state)
{
    struct virt_disk_list l = {0};

    (void)state;
    assert_int_equal(virt_disks_parse("<domain><devices><disk type='file' device='cdrom'>"
                                      "<target dev='sda'/></disk></devices></domain>",
                                      &l),
                     0);
    assert_null(snapshot_xml_build("x", &l, NULL, NULL, 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "no disk can have an overlay"));
    virt_disks_clear(&l);
}

static void test_parse_libvirt(void **state)
{
    struct snapshot_info info;
    const struct snapshot_disk *d;

    (void)state;
    assert_int_equal(snapshot_xml_parse(libvirt_snapshot_xml, &info), 0);
    assert_string_equal(info.name, "s1");
    assert_string_equal(info.parent, "s0");
    assert_string_equal(info.state, "disk-snapshot");
    assert_int_equal(info.created, 1764291723);
    assert_null(info.memory_file);
    assert_int_equal(info.nr_disks, 1);
    d = snapshot_info_disk(&info, "vda");
    assert_non_null(d);
    assert_string_equal(d->overlay, "/img/web1-vda.qcow2.s0.s1");
    assert_string_equal(d->base, "/img/web1-vda.qcow2.s0");
    assert_null(snapshot_info_disk(&info, "sda"));
    snapshot_info_clear(&info);
}

static void test_parse_bad(void **state)
{
    struct snapshot_info info;

    (void)state;
    assert_int_equal(snapshot_xml_parse("<domainsnapshot><name>x", &info), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_int_equal(snapshot_xml_parse("<domain><name>x</name></domain>", &info), -1);
    assert_int_equal(snapshot_xml_parse("<domainsnapshot><state>x</state></domainsnapshot>", &info),
                     -1);
    assert_int_equal(snapshot_xml_parse("<domainsnapshot><name>x</name><disks><disk "
                                        "snapshot='external' name='vda'/></disks>"
                                        "</domainsnapshot>",
                                        &info),
                     -1);
    assert_null(info.name); /* cleared on failure */
}

static void test_set_source(void **state)
{
    struct virt_disk_list l = {0};
    char *x;

    (void)state;
    x = snapshot_domain_xml_set_source(domain_xml, "vda", "/img/web1-vda.qcow2.s1", "qcow2");
    assert_non_null(x);
    assert_null(strstr(x, "backingStore"));
    assert_int_equal(virt_disks_parse(x, &l), 0);
    assert_string_equal(virt_disks_find(&l, "vda")->source, "/img/web1-vda.qcow2.s1");
    assert_string_equal(virt_disks_find(&l, "vdb")->source, "/dev/vg/data");
    virt_disks_clear(&l);
    free(x);
    /* A block disk becomes a file disk. */
    x = snapshot_domain_xml_set_source(domain_xml, "vdb", "/img/data.s1", "qcow2");
    assert_int_equal(virt_disks_parse(x, &l), 0);
    assert_string_equal(virt_disks_find(&l, "vdb")->source_type, "file");
    assert_string_equal(virt_disks_find(&l, "vdb")->source, "/img/data.s1");
    assert_string_equal(virt_disks_find(&l, "vdb")->format, "qcow2");
    virt_disks_clear(&l);
    free(x);
    assert_null(snapshot_domain_xml_set_source(domain_xml, "vdz", "/x", NULL));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
}

static void test_replace_base(void **state)
{
    struct snapshot_info info;
    char *x;

    (void)state;
    x = snapshot_xml_replace_base(libvirt_snapshot_xml, "/img/web1-vda.qcow2.s0",
                                  "/img/web1-vda.qcow2");
    assert_non_null(x);
    assert_int_equal(snapshot_xml_parse(x, &info), 0);
    assert_string_equal(info.disks[0].base, "/img/web1-vda.qcow2");
    assert_string_equal(info.disks[0].overlay, "/img/web1-vda.qcow2.s0.s1");
    assert_string_equal(info.parent, "s0");
    snapshot_info_clear(&info);
    free(x);
}

static void test_json(void **state)
{
    struct snapshot_info info;
    struct json_object *j, *v;

    (void)state;
    assert_int_equal(snapshot_xml_parse(libvirt_snapshot_xml, &info), 0);
    j = snapshot_info_to_json(&info);
    assert_true(json_object_object_get_ex(j, "name", &v));
    assert_string_equal(json_object_get_string(v), "s1");
    assert_true(json_object_object_get_ex(j, "disks", &v));
    assert_int_equal(json_object_array_length(v), 1);
    v = json_object_array_get_idx(v, 0);
    assert_true(json_object_object_get_ex(v, "base", &v));
    assert_string_equal(json_object_get_string(v), "/img/web1-vda.qcow2.s0");
    json_object_put(j);
    snapshot_info_clear(&info);
}

/* test:///default: list what libvirt holds, oldest first; unknown names
 * are VK_ERR_NOT_FOUND. */
static void test_libvirt_list(void **state)
{
    struct virt_conn *c = virt_conn_open("test:///default", 0);
    struct virt_domain *d;
    struct snapshot_list l;
    virDomainSnapshotPtr s;

    (void)state;
    if (!c)
        skip();
    d = virt_domain_lookup(c, "test");
    assert_non_null(d);
    s = virDomainSnapshotCreateXML(d->dom, "<domainsnapshot><name>b</name></domainsnapshot>", 0);
    assert_non_null(s);
    virDomainSnapshotFree(s);
    s = virDomainSnapshotCreateXML(d->dom, "<domainsnapshot><name>a</name></domainsnapshot>", 0);
    assert_non_null(s);
    virDomainSnapshotFree(s);
    assert_int_equal(snapshot_list(d, &l, 0), 0);
    assert_int_equal(l.count, 2);
    /* Oldest first; the same second sorts by name. */
    assert_true(l.items[0].created <= l.items[1].created);
    assert_true(l.items[0].created > 0);
    if (l.items[0].created == l.items[1].created)
        assert_string_equal(l.items[0].name, "a");
    else
        assert_string_equal(l.items[0].name, "b");
    /* "a", the last one taken, is libvirt's current snapshot. */
    for (size_t i = 0; i < l.count; i++)
        assert_int_equal(l.items[i].current, strcmp(l.items[i].name, "a") == 0);
    assert_false(l.items[0].external);
    snapshot_list_clear(&l);
    assert_int_equal(snapshot_delete(d, "nope", 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_int_equal(snapshot_revert(d, "nope", 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    /* A snapshot without external disks cannot be reverted by virtkeep. */
    assert_int_equal(snapshot_revert(d, "a", 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_UNSUPPORTED);
    virt_domain_free(d);
    virt_conn_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_default),  cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_overlay_path),  cmocka_unit_test(test_build_disk_only),
        cmocka_unit_test(test_build_memory),  cmocka_unit_test(test_build_no_disk),
        cmocka_unit_test(test_parse_libvirt), cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_set_source),    cmocka_unit_test(test_replace_base),
        cmocka_unit_test(test_json),          cmocka_unit_test(test_libvirt_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
