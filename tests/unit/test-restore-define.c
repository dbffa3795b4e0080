/* Unit tests for the domain XML that restore --define defines
 * (restore_domain_xml, src/restore/restore-define.c): the saved XML comes
 * from a backup target and is not trusted, so every device that reaches
 * host resources is left out and listed, unless keep_host_devices.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "src/restore/restore.h"

/* A domain with every kind of device that reaches the host (marked HOST),
 * and devices that do not (marked GUEST), each with a unique string. */
static const char hostile_xml[] =
    "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
    "  <name>web1</name>\n"
    "  <memory unit='KiB'>65536</memory>\n"
    "  <os><type arch='x86_64'>hvm</type></os>\n"
    "  <devices>\n"
    "    <emulator>/tmp/evil-emulator</emulator>\n"
    /* GUEST: the restored disk, repointed. */
    "    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='/img/web1-vda.qcow2'/><target dev='vda' bus='virtio'/>"
    "<encryption format='luks'><secret type='passphrase' uuid='0000-enc'/></encryption></disk>\n"
    /* HOST: a disk that was not restored (the host's block device). */
    "    <disk type='block' device='disk'><source dev='/dev/sda'/>"
    "<target dev='vdb' bus='virtio'/></disk>\n"
    /* HOST: media from host files. */
    "    <disk type='file' device='cdrom'><source file='/etc/shadow'/>"
    "<target dev='sda' bus='sata'/><readonly/></disk>\n"
    "    <disk type='file' device='floppy'><source file='/root/floppy.img'/>"
    "<target dev='fda' bus='fdc'/></disk>\n"
    "    <filesystem type='mount' accessmode='passthrough'><source dir='/'/>"
    "<target dir='host'/></filesystem>\n"
    "    <hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0000' bus='0x3a' slot='0x00' function='0x0'/></source></hostdev>\n"
    "    <serial type='file'><source path='/var/log/serial-file.log'/><target port='0'/></serial>\n"
    "    <serial type='unix'><source mode='bind' path='/run/serial-unix.sock'/>"
    "<target port='1'/></serial>\n"
    "    <serial type='dev'><source path='/dev/ttyS7'/><target port='2'/></serial>\n"
    "    <serial type='pipe'><source path='/tmp/serial-pipe'/><target port='3'/></serial>\n"
    "    <serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/>"
    "<protocol type='raw'/><target port='4'/></serial>\n"
    "    <serial type='udp'><source mode='connect' host='10.9.9.9' service='4556'/>"
    "<target port='5'/></serial>\n"
    "    <serial type='pty'><target port='6'/><alias name='guest-serial-pty'/></serial>\n"
    "    <console type='file'><source path='/var/log/console-file.log'/>"
    "<target type='serial' port='0'/></console>\n"
    "    <console type='pty'><target type='virtio' port='1'/><alias name='guest-console-pty'/>"
    "</console>\n"
    "    <channel type='unix'><source mode='bind' path='/etc/agent-path.sock'/>"
    "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n"
    "    <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>\n"
    "    <channel type='unix'><source mode='connect' path='/run/other-channel.sock'/>"
    "<target type='virtio' name='org.example.other'/></channel>\n"
    "    <channel type='pty'><target type='virtio' name='org.example.pty'/></channel>\n"
    "    <smartcard mode='host'/>\n"
    "    <redirdev bus='usb' type='tcp'><source mode='connect' host='10.1.1.1' "
    "service='4000'/></redirdev>\n"
    "    <parallel type='file'><source path='/tmp/parallel-file'/><target port='0'/></parallel>\n"
    "    <shmem name='shmem-host'><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>\n"
    "    <tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/>"
    "</backend></tpm>\n"
    "    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>\n"
    "    <input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>\n"
    "    <input type='evdev'><source dev='/dev/input/event2'/></input>\n"
    "    <input type='tablet' bus='usb'/>\n"
    "    <interface type='hostdev'><source><address type='pci' domain='0x0000' bus='0x4b' "
    "slot='0x10' function='0x1'/></source></interface>\n"
    "    <interface type='direct'><source dev='eth-direct0' mode='bridge'/></interface>\n"
    "    <interface type='vhostuser'><source type='unix' path='/run/vhost-user.sock' "
    "mode='client'/><model type='virtio'/></interface>\n"
    "    <interface type='network'><source network='default'/><script path='/etc/evil-ifup'/>"
    "<backend tap='/dev/evil-tun' vhost='/dev/evil-vhost'/><model type='virtio'/></interface>\n"
    "    <memory model='nvdimm'><source><path>/var/nvdimm-host-file</path></source>"
    "<target><size unit='KiB'>524288</size><node>0</node></target></memory>\n"
    "    <lease><lockspace>somearea</lockspace><key>somekey</key>"
    "<target path='/some/lease/path' offset='1024'/></lease>\n"
    "    <audio id='1' type='file' path='/tmp/audio-out.wav'/>\n"
    "    <rng model='virtio'><backend model='random'>/dev/sda9</backend></rng>\n"
    "    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\n"
    "    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>\n"
    "    <video><model type='virtio'/></video>\n"
    "  </devices>\n"
    "  <seclabel type='static' model='dac' relabel='no'><label>0:0</label></seclabel>\n"
    "  <qemu:commandline><qemu:arg value='-chardev'/>"
    "<qemu:arg value='file,id=evil,path=/etc/qemu-cmdline-evil'/></qemu:commandline>\n"
    "</domain>\n";

/* Strings of host-reaching devices: none may remain. */
static const char *const host_strings[] = {
    "/tmp/evil-emulator",
    "0000-enc",
    "/dev/sda'",
    "/dev/sda\"",
    "/etc/shadow",
    "/root/floppy.img",
    "<filesystem",
    "<hostdev",
    "bus=\"0x3a\"",
    "serial-file.log",
    "serial-unix.sock",
    "/dev/ttyS7",
    "/tmp/serial-pipe",
    "4555",
    "4556",
    "console-file.log",
    "/etc/agent-path.sock",
    "other-channel.sock",
    "<smartcard",
    "<redirdev",
    "<parallel",
    "<shmem",
    "passthrough",
    "/dev/tpm0",
    "/dev/input/event1",
    "/dev/input/event2",
    "type=\"hostdev\"",
    "eth-direct0",
    "vhost-user.sock",
    "/etc/evil-ifup",
    "/dev/evil-tun",
    "nvdimm-host-file",
    "/some/lease/path",
    "audio-out.wav",
    "/dev/sda9",
    "type=\"static\"",
    "commandline",
    "qemu-cmdline-evil",
};

/* Strings of devices that stay. */
static const char *const guest_strings[] = {
    "<source file=\"/r/vda.qcow2\"/>",
    "guest-serial-pty",
    "guest-console-pty",
    "org.qemu.guest_agent.0",
    "com.redhat.spice.0",
    "org.example.pty",
    "tpm-crb",
    "type=\"tablet\"",
    "<source network=\"default\"/>",
    "/dev/urandom",
    "<graphics type=\"vnc\"",
    "<video>",
    "device=\"cdrom\"", /* the drive stays, empty */
    "device=\"floppy\"",
};

/* What restore_domain_xml lists, in document order. */
static const char *const removed_expected[] = {
    "<disk type='file'> source '/etc/shadow' target 'sda'",
    "<disk type='file'> source '/root/floppy.img' target 'fda'",
    "<seclabel type='static'>",
    "<qemu:commandline>",
    "<filesystem type='mount'> source '/' target 'host'",
    "<hostdev type='pci'>",
    "<serial type='file'> source '/var/log/serial-file.log'",
    "<serial type='unix'> source '/run/serial-unix.sock'",
    "<serial type='dev'> source '/dev/ttyS7'",
    "<serial type='pipe'> source '/tmp/serial-pipe'",
    "<serial type='tcp'> source '0.0.0.0'",
    "<serial type='udp'> source '10.9.9.9'",
    "<console type='file'> source '/var/log/console-file.log'",
    "<channel type='unix'> source '/run/other-channel.sock' target 'org.example.other'",
    "<smartcard>",
    "<redirdev type='tcp'> source '10.1.1.1'",
    "<parallel type='file'> source '/tmp/parallel-file'",
    "<shmem>",
    "<tpm>",
    "<input type='passthrough'>",
    "<input type='evdev'> source '/dev/input/event2'",
    "<interface type='hostdev'>",
    "<interface type='direct'> source 'eth-direct0'",
    "<interface type='vhostuser'> source '/run/vhost-user.sock'",
    "<memory> source '/var/nvdimm-host-file'",
    "<lease> target '/some/lease/path'",
    "<audio type='file'>",
    "<rng>",
};

static bool list_has(char **list, const char *prefix)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strncmp(list[i], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

static void test_host_devices_dropped(void **state)
{
    struct restore_define_disk disks[] = {{"vda", "/r/vda.qcow2"}};
    struct restore_define_options o = {.disks = disks, .nr_disks = 1};
    char **dropped = NULL, **removed = NULL;
    char *xml;

    (void)state;
    xml = restore_domain_xml(hostile_xml, &o, &dropped, &removed, 0);
    if (!xml)
        fail_msg("restore_domain_xml: %s", vk_error_message());
    for (size_t i = 0; i < VK_ARRAY_SIZE(host_strings); i++)
        if (strstr(xml, host_strings[i]))
            fail_msg("'%s' is still in the domain XML:\n%s", host_strings[i], xml);
    for (size_t i = 0; i < VK_ARRAY_SIZE(guest_strings); i++)
        if (!strstr(xml, guest_strings[i]))
            fail_msg("'%s' is missing from the domain XML:\n%s", guest_strings[i], xml);
    /* The guest agent keeps its socket, at a path libvirt chooses. */
    assert_non_null(strstr(xml, "name=\"org.qemu.guest_agent.0\"/><source mode=\"bind\"/>"));
    assert_int_equal(vk_strv_len(dropped), 1);
    assert_string_equal(dropped[0], "vdb");
    for (size_t i = 0; i < VK_ARRAY_SIZE(removed_expected); i++)
        if (!list_has(removed, removed_expected[i]))
            fail_msg("'%s' is not listed as removed", removed_expected[i]);
    assert_int_equal(vk_strv_len(removed), VK_ARRAY_SIZE(removed_expected));
    vk_strv_free(dropped);
    vk_strv_free(removed);
    free(xml);
}

static void test_keep_host_devices(void **state)
{
    struct restore_define_disk disks[] = {{"vda", "/r/vda.qcow2"}};
    struct restore_define_options o = {.disks = disks, .nr_disks = 1, .keep_host_devices = true};
    char **dropped = NULL, **removed = NULL;
    char *xml;

    (void)state;
    xml = restore_domain_xml(hostile_xml, &o, &dropped, &removed, 0);
    if (!xml)
        fail_msg("restore_domain_xml: %s", vk_error_message());
    assert_null(removed);
    for (size_t i = 0; i < VK_ARRAY_SIZE(host_strings); i++) {
        /* Still not kept: the disk that was not restored and the restored
         * disk's encryption secret (its image is a new, plain qcow2). */
        bool gone = strcmp(host_strings[i], "/dev/sda'") == 0 ||
                    strcmp(host_strings[i], "/dev/sda\"") == 0 ||
                    strcmp(host_strings[i], "0000-enc") == 0;
        if (!gone && !strstr(xml, host_strings[i]))
            fail_msg("'%s' was not kept:\n%s", host_strings[i], xml);
    }
    assert_non_null(strstr(xml, "<source dir=\"/\"/>"));
    assert_int_equal(vk_strv_len(dropped), 1);
    vk_strv_free(dropped);
    free(xml);
}

/* A domain with nothing that reaches the host lists nothing; REMOVED may
 * be NULL. */
static void test_plain_domain(void **state)
{
    static const char plain[] =
        "<domain type='kvm'><name>a</name><devices>"
        "<disk type='file' device='disk'><source file='/x.qcow2'/><target dev='vda'/></disk>"
        "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>"
        "<serial type='pty'/><console type='pty'/><interface type='user'/>"
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        "</devices><seclabel type='dynamic' model='selinux'/></domain>";
    struct restore_define_disk disks[] = {{"vda", "/r/vda.qcow2"}};
    struct restore_define_options o = {.disks = disks, .nr_disks = 1};
    char **dropped = NULL, **removed = NULL;
    char *xml;

    (void)state;
    assert_non_null((xml = restore_domain_xml(plain, &o, &dropped, &removed, 0)));
    assert_null(dropped);
    assert_null(removed);
    assert_non_null(strstr(xml, "<interface type=\"user\"/>"));
    free(xml);
    assert_non_null((xml = restore_domain_xml(hostile_xml, &o, &dropped, NULL, 0)));
    assert_null(strstr(xml, "<filesystem"));
    vk_strv_free(dropped);
    free(xml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_devices_dropped),
        cmocka_unit_test(test_keep_host_devices),
        cmocka_unit_test(test_plain_domain),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
