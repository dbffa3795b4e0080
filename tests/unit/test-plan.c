/* The restore plan (src/plan.c), the manifest's qcow2 fields (version 2,
 * version 1 still read) and the domain XML rewrite of restore --define.
 *
 * The plan fixture (tests/lib/restore-fixture.c) writes a chain (full, inc,
 * inc) of a 32 MiB disk into a file:// target with the archive writer and
 * records it in a catalog.  It remembers the zstd frame size of every
 * chunk it writes, so the bytes each archive must deliver are computed
 * here by hand from the layout below, independently of reader_merge. */
#include <config.h>

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/error.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/plan/plan.h"
#include "src/restore/restore.h"
#include "tests/lib/restore-fixture.h"
#include "transport/transport.h"

#define MiB (1024ull * 1024)
#define DISK (32 * MiB)
#define DOM "db1"
#define UUID "0f1c3b2a-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
#define T0 1795827723

/* full: data chunks at 0, 4, 8, 12 MiB (4 MiB each), zero 16-20M;
 * inc1: data at 4M (4 MiB) and 9M (1 MiB, inside the full's chunk 8M);
 * inc2: data at 4M again and a new chunk at 20M.
 * Seeds: 17 per backup plus the extent's place in its spec. */
static const struct restore_fixture_extent full_spec[] = {
    {0, 4 * MiB, 0, 0},        {4 * MiB, 4 * MiB, 0, 1},  {8 * MiB, 4 * MiB, 0, 2},
    {12 * MiB, 4 * MiB, 0, 3}, {16 * MiB, 4 * MiB, 1, 4}, {0, 0, -1, 0}};
static const struct restore_fixture_extent inc1_spec[] = {
    {4 * MiB, 4 * MiB, 0, 17}, {9 * MiB, MiB, 0, 18}, {0, 0, -1, 0}};
static const struct restore_fixture_extent inc2_spec[] = {
    {4 * MiB, 4 * MiB, 0, 34}, {20 * MiB, 4 * MiB, 0, 35}, {0, 0, -1, 0}};

/* Not too compressible. */
static void fill(uint8_t *p, uint64_t len, unsigned int seed)
{
    for (uint64_t k = 0; k < len; k++)
        p[k] = (uint8_t)((k * 2654435761u) >> 13) ^ (uint8_t)seed;
}

static struct restore_fixture fx;

static int setup(void **state)
{
    (void)state;
    fx = (struct restore_fixture){
        .domain = DOM, .uuid = UUID, .disk_size = DISK, .compress_level = 1, .fill = fill};
    restore_fixture_setup(&fx, "plan");
    restore_fixture_backup_add(&fx, "full", NULL, T0, full_spec);
    restore_fixture_backup_add(&fx, "inc", fx.ids[0], T0 + 3600, inc1_spec);
    restore_fixture_backup_add(&fx, "inc", fx.ids[1], T0 + 7200, inc2_spec);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    restore_fixture_teardown(&fx);
    return 0;
}

/* ---------------------------------------------------------------- plan */

static void plan_opts(struct plan_options *o, int64_t at)
{
    memset(o, 0, sizeof *o);
    o->domain = DOM;
    o->at = at;
    o->now = T0 + 86400;
}

static const struct plan_archive *archive_of(const struct plan_restore *p, size_t backup)
{
    for (size_t i = 0; i < p->nr_archives; i++)
        if (strcmp(p->archives[i].backup_id, fx.ids[backup]) == 0)
            return &p->archives[i];
    fail_msg("no archive of backup %s in the plan", fx.ids[backup]);
    return NULL;
}

static void archive_expect(const struct plan_restore *p, size_t backup, uint64_t bytes,
                           size_t chunks)
{
    const struct plan_archive *a = archive_of(p, backup);

    assert_int_equal(a->read_bytes, bytes);
    assert_int_equal(a->chunks, chunks);
    assert_string_equal(a->target, fx.url);
    assert_true(a->index_bytes > 0);
}

static uint64_t index_total(const struct plan_restore *p)
{
    uint64_t n = 0;

    for (size_t i = 0; i < p->nr_archives; i++)
        n += p->archives[i].index_bytes;
    return n;
}

/* Latest point: each byte from the newest backup holding it, each chunk once. */
static void test_plan_chain_bytes(void **state)
{
    struct plan_options o;
    struct plan_restore p;

    (void)state;
    plan_opts(&o, INT64_MAX);
    assert_int_equal(plan_restore(fx.cat, &o, &p, 0), 0);
    assert_int_equal(vk_strv_len(p.chain), 3);
    assert_string_equal(p.backup_id, fx.ids[2]);
    assert_int_equal(p.nr_archives, 3);
    /* full: chunks 0, 8 (for 8-9 and 10-12), 12; not 4 (rewritten) */
    archive_expect(&p, 0, fx.frame[0][0] + fx.frame[0][2] + fx.frame[0][3], 3);
    /* inc1: only 9M; its 4M chunk is overridden by inc2 */
    archive_expect(&p, 1, fx.frame[1][1], 1);
    archive_expect(&p, 2, fx.frame[2][0] + fx.frame[2][1], 2);
    assert_int_equal(p.disk_bytes, 20 * MiB);
    assert_int_equal(p.virtual_bytes, DISK);
    assert_int_equal(p.nr_targets, 1);
    uint64_t frames = fx.frame[0][0] + fx.frame[0][2] + fx.frame[0][3] + fx.frame[1][1] +
                      fx.frame[2][0] + fx.frame[2][1];
    assert_int_equal(p.targets[0].bytes, frames + index_total(&p));
    assert_int_equal(p.read_bytes, p.targets[0].bytes);
    /* RPO with no --at: now - the backup's time */
    assert_int_equal(p.at, T0 + 86400);
    assert_int_equal(p.rpo_seconds, 86400 - 7200);
    plan_restore_clear(&p);
}

static void test_plan_at_time(void **state)
{
    struct plan_options o;
    struct plan_restore p;

    (void)state;
    plan_opts(&o, T0 + 3600 + 1800);
    assert_int_equal(plan_restore(fx.cat, &o, &p, 0), 0);
    assert_string_equal(p.backup_id, fx.ids[1]);
    assert_int_equal(vk_strv_len(p.chain), 2);
    assert_int_equal(p.rpo_seconds, 1800);
    archive_expect(&p, 0, fx.frame[0][0] + fx.frame[0][2] + fx.frame[0][3], 3);
    archive_expect(&p, 1, fx.frame[1][0] + fx.frame[1][1], 2);
    assert_int_equal(p.disk_bytes, 16 * MiB);
    plan_restore_clear(&p);

    plan_opts(&o, INT64_MAX);
    o.backup_id = fx.ids[0];
    assert_int_equal(plan_restore(fx.cat, &o, &p, 0), 0);
    assert_int_equal(vk_strv_len(p.chain), 1);
    archive_expect(&p, 0, fx.frame[0][0] + fx.frame[0][1] + fx.frame[0][2] + fx.frame[0][3], 4);
    assert_int_equal(p.rpo_seconds, 86400);
    plan_restore_clear(&p);

    plan_opts(&o, T0 - 1);
    assert_int_equal(plan_restore(fx.cat, &o, &p, 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_null(p.chain);
}

/* No history: the documented default rate, marked as a guess.  Measured
 * read samples replace it; write samples do not count. */
static void test_plan_estimate(void **state)
{
    struct plan_options o;
    struct plan_restore p;
    double want;

    (void)state;
    plan_opts(&o, INT64_MAX);
    assert_int_equal(plan_restore(fx.cat, &o, &p, 0), 0);
    assert_true(p.guess);
    assert_true(p.targets[0].guess);
    assert_int_equal(p.targets[0].samples, 0);
    assert_true(p.targets[0].rate == READER_DEFAULT_READ_RATE);
    want = (double)p.read_bytes / READER_DEFAULT_READ_RATE;
    assert_true(p.estimate_seconds > want * 0.999999 && p.estimate_seconds < want * 1.000001);
    plan_restore_clear(&p);

    assert_int_equal(
        catalog_throughput_record(fx.cat, fx.url, CATALOG_DIR_WRITE, 900 * MiB, 1.0, 0), 0);
    assert_int_equal(plan_restore(fx.cat, &o, &p, 0), 0);
    assert_true(p.guess);
    plan_restore_clear(&p);

    assert_int_equal(catalog_throughput_record(fx.cat, fx.url, CATALOG_DIR_READ, 100 * MiB, 2.0, 0),
                     0);
    assert_int_equal(catalog_throughput_record(fx.cat, fx.url, CATALOG_DIR_READ, 50 * MiB, 2.0, 0),
                     0);
    assert_int_equal(plan_restore(fx.cat, &o, &p, 0), 0);
    assert_false(p.guess);
    assert_false(p.targets[0].guess);
    assert_int_equal(p.targets[0].samples, 2);
    want = (double)p.read_bytes / (150.0 * MiB / 4.0); /* total bytes over total time */
    assert_true(p.estimate_seconds > want * 0.999999 && p.estimate_seconds < want * 1.000001);
    plan_restore_clear(&p);
}

/* restore_run records the planner's estimate in its job, beside the
 * measured duration. */
static void test_restore_records_estimate(void **state)
{
    struct plan_options o;
    struct plan_restore p;
    struct restore_options ro = {.domain = DOM, .at = INT64_MAX};
    struct restore_result res;
    struct catalog_job *job;
    char dest[400];

    (void)state;
    if (restore_fixture_shell("command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null") !=
        0) {
        fprintf(stderr, "SKIP: qemu-nbd or qemu-img is missing\n");
        skip();
    }
    plan_opts(&o, INT64_MAX);
    assert_int_equal(plan_restore(fx.cat, &o, &p, 0), 0);
    snprintf(dest, sizeof dest, "%s/restore", fx.dir);
    ro.dest_dir = dest;
    assert_int_equal(restore_run(fx.cat, &ro, &res, 0), 0);
    assert_true(res.estimate_seconds > 0);
    assert_true(res.estimate_seconds == p.estimate_seconds);
    assert_non_null((job = catalog_job_get(fx.cat, res.job_id)));
    assert_true(job->estimate_seconds == p.estimate_seconds);
    assert_true(job->elapsed_seconds > 0);
    assert_int_equal(job->state, CATALOG_JOB_SUCCEEDED);
    catalog_job_free(job);
    restore_result_clear(&res);
    plan_restore_clear(&p);
}

/* ---------------------------------------------------------------- manifest v1/v2 */

static char *manifest_sample_json(uint64_t cluster, const char *compat)
{
    struct manifest m = {0};
    struct manifest_disk *d;
    char *json;

    m.backup_id = strdup("db1-20261128T010000Z");
    m.domain_name = strdup("db1");
    m.domain_uuid = strdup(UUID);
    m.level = strdup("full");
    m.checkpoint_name = strdup("virtkeep-x");
    m.checkpoint_xml = strdup("<domaincheckpoint/>");
    m.domain_xml = strdup("<domain/>");
    m.started = 10;
    m.finished = 20;
    d = manifest_disk_add(&m);
    d->target = strdup("vda");
    d->virtual_size = MiB;
    d->archive_key = strdup("db1/db1-20261128T010000Z/vda.tar");
    d->archive_size = 4096;
    d->cluster_size = cluster;
    d->compat = compat ? strdup(compat) : NULL;
    json = manifest_to_json(&m, 0);
    manifest_clear(&m);
    return json;
}

static void test_manifest_qcow2_fields(void **state)
{
    char *json = manifest_sample_json(131072, "0.10");
    struct manifest m;

    (void)state;
    assert_non_null(json);
    assert_non_null(strstr(json, "\"version\": 3"));
    assert_int_equal(manifest_parse(json, strlen(json), "k", &m), 0);
    assert_int_equal(m.disks[0].cluster_size, 131072);
    assert_string_equal(m.disks[0].compat, "0.10");
    manifest_clear(&m);
    free(json);

    json = manifest_sample_json(0, NULL); /* raw source: both null */
    assert_non_null(strstr(json, "\"cluster_size\": null"));
    assert_int_equal(manifest_parse(json, strlen(json), "k", &m), 0);
    assert_int_equal(m.disks[0].cluster_size, 0);
    assert_null(m.disks[0].compat);
    manifest_clear(&m);
    free(json);

    assert_null(manifest_sample_json(65535, "1.1"));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "cluster size"));
    assert_null(manifest_sample_json(65536, "2"));
    assert_non_null(strstr(vk_error_message(), "compat"));
}

/* A version-1 manifest (no qcow2 keys) is still read; version 1 with the
 * version-2 keys is not, nor version 2 without them. */
static char *json_edit(const char *json, int version, bool drop_keys)
{
    struct json_object *o = json_tokener_parse(json), *disk;
    char *out;

    assert_non_null(o);
    json_object_object_add(o, "version", json_object_new_int(version));
    if (version < 3) /* version 3 added the parent's manifest digest */
        json_object_object_del(o, "parent_manifest_sha256");
    disk = json_object_array_get_idx(json_object_object_get(o, "disks"), 0);
    if (drop_keys) {
        json_object_object_del(disk, "cluster_size");
        json_object_object_del(disk, "compat");
    }
    out = vk_strdup(json_object_to_json_string(o));
    json_object_put(o);
    return out;
}

static void test_manifest_v1(void **state)
{
    char *json = manifest_sample_json(65536, "1.1"), *edited;
    struct manifest m;

    (void)state;
    edited = json_edit(json, 1, true);
    assert_int_equal(manifest_parse(edited, strlen(edited), "k", &m), 0);
    assert_int_equal(m.disks[0].cluster_size, 0);
    assert_null(m.disks[0].compat);
    manifest_clear(&m);
    free(edited);

    edited = json_edit(json, 1, false);
    assert_int_equal(manifest_parse(edited, strlen(edited), "k", &m), -1);
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    assert_non_null(strstr(vk_error_message(), "cluster_size"));
    free(edited);

    edited = json_edit(json, 2, true);
    assert_int_equal(manifest_parse(edited, strlen(edited), "k", &m), -1);
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    free(edited);

    edited = json_edit(json, 2, false); /* version 2 is still read */
    assert_int_equal(manifest_parse(edited, strlen(edited), "k", &m), 0);
    assert_int_equal(m.disks[0].cluster_size, 65536);
    manifest_clear(&m);
    free(edited);

    edited = json_edit(json, 5, false); /* 4 is a sealed manifest; 5 is unknown */
    assert_int_equal(manifest_parse(edited, strlen(edited), "k", &m), -1);
    assert_int_equal(vk_error_code(), VK_ERR_UNSUPPORTED);
    free(edited);
    free(json);
}

static void test_manifest_probe(void **state)
{
    struct manifest_disk d;
    char img[400];

    (void)state;
    if (restore_fixture_shell("command -v qemu-img >/dev/null") != 0)
        skip();
    memset(&d, 0, sizeof d);
    snprintf(img, sizeof img, "%s/probe.qcow2", fx.dir);
    assert_int_equal(
        restore_fixture_shell(
            "qemu-img create -q -f qcow2 -o cluster_size=256k,compat=0.10 '%s' 1M", img),
        0);
    assert_int_equal(manifest_disk_probe(&d, img), 0);
    assert_int_equal(d.cluster_size, 256 * 1024);
    assert_string_equal(d.compat, "0.10");
    free(d.compat);
    memset(&d, 0, sizeof d);
    assert_int_equal(restore_fixture_shell("qemu-img create -q -f raw '%s' 1M", img), 0);
    assert_int_equal(manifest_disk_probe(&d, img), 0);
    assert_int_equal(d.cluster_size, 0);
    assert_null(d.compat);
    snprintf(img, sizeof img, "%s/missing.qcow2", fx.dir);
    assert_int_equal(manifest_disk_probe(&d, img), -1);
    assert_non_null(strstr(vk_error_message(), "missing.qcow2"));
}

/* ---------------------------------------------------------------- define XML */

static const char saved_xml[] =
    "<domain type='kvm' id='7'>\n"
    "  <name>web1</name>\n"
    "  <uuid>6f1c3b2a-0d4e-4f5a-9b8c-7d6e5f4a3b2c</uuid>\n"
    "  <os><type arch='x86_64'>hvm</type>"
    "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>"
    "<nvram>/var/lib/libvirt/qemu/nvram/web1_VARS.fd</nvram></os>\n"
    "  <devices>\n"
    "    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='/img/web1-vda.qcow2' index='2'/><backingStore type='file' index='3'>"
    "<source file='/img/base.qcow2'/></backingStore><target dev='vda' bus='virtio'/></disk>\n"
    "    <disk type='block' device='disk'><driver name='qemu' type='raw'/>"
    "<source dev='/dev/sdz'/><target dev='vdb' bus='virtio'/></disk>\n"
    "    <disk type='file' device='cdrom'><source file='/iso/x.iso'/>"
    "<target dev='sda' bus='sata'/><readonly/></disk>\n"
    "    <interface type='network'><mac address='52:54:00:aa:bb:cc'/>"
    "<source network='default'/></interface>\n"
    "    <graphics type='vnc' port='5901' autoport='no' listen='127.0.0.1'/>\n"
    "  </devices>\n"
    "  <seclabel type='dynamic' model='dac' relabel='yes'><label>+64055:+64055</label></seclabel>\n"
    "</domain>\n";

static void test_define_xml_same_name(void **state)
{
    struct restore_define_disk disks[] = {{"vda", "/restore/vda.qcow2"}};
    struct restore_define_options o = {.disks = disks, .nr_disks = 1};
    char **dropped = NULL;
    char *xml;

    (void)state;
    assert_non_null((xml = restore_domain_xml(saved_xml, &o, &dropped, NULL, 0)));
    assert_non_null(strstr(xml, "<name>web1</name>"));
    assert_non_null(strstr(xml, "<uuid>6f1c3b2a-0d4e-4f5a-9b8c-7d6e5f4a3b2c</uuid>"));
    assert_non_null(strstr(xml, "<source file=\"/restore/vda.qcow2\"/>"));
    assert_null(strstr(xml, "web1-vda.qcow2"));
    assert_null(strstr(xml, "backingStore"));
    assert_null(strstr(xml, "/dev/sdz")); /* vdb not restored: left out */
    assert_int_equal(vk_strv_len(dropped), 1);
    assert_string_equal(dropped[0], "vdb");
    assert_null(strstr(xml, "/iso/x.iso")); /* the cdrom stays, its medium does not */
    assert_non_null(strstr(xml, "device=\"cdrom\""));
    assert_non_null(strstr(xml, "52:54:00:aa:bb:cc"));
    assert_null(strstr(xml, "id=\"7\""));
    assert_null(strstr(xml, "seclabel"));
    vk_strv_free(dropped);
    free(xml);

    /* --force over an existing domain: its UUID. */
    o.uuid = "11111111-2222-3333-4444-555555555555";
    assert_non_null((xml = restore_domain_xml(saved_xml, &o, &dropped, NULL, 0)));
    assert_non_null(strstr(xml, "<uuid>11111111-2222-3333-4444-555555555555</uuid>"));
    vk_strv_free(dropped);
    free(xml);
}

static void test_define_xml_new_name(void **state)
{
    struct restore_define_disk disks[] = {{"vda", "/r/vda.qcow2"}, {"vdb", "/r/vdb.qcow2"}};
    struct restore_define_options o = {.disks = disks, .nr_disks = 2, .new_name = "web1-clone"};
    char **dropped = NULL;
    char *xml;

    (void)state;
    assert_non_null((xml = restore_domain_xml(saved_xml, &o, &dropped, NULL, 0)));
    assert_null(dropped);
    assert_non_null(strstr(xml, "<name>web1-clone</name>"));
    assert_null(strstr(xml, "<name>web1</name>"));
    assert_null(strstr(xml, "<uuid>"));
    assert_null(strstr(xml, "<mac"));
    assert_null(strstr(xml, "5901"));
    assert_non_null(strstr(xml, "autoport=\"yes\""));
    assert_null(strstr(xml, "<nvram"));
    assert_non_null(strstr(xml, "OVMF_CODE.fd")); /* the loader stays */
    /* vdb was a block device: now a qcow2 file. */
    assert_non_null(strstr(xml, "<source file=\"/r/vdb.qcow2\"/>"));
    assert_null(strstr(xml, "type=\"raw\""));
    assert_null(strstr(xml, "type=\"block\""));
    free(xml);

    assert_null(restore_domain_xml("<domain><name>x</name>", &o, &dropped, NULL, 0));
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    assert_null(restore_domain_xml("<network/>", &o, &dropped, NULL, 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_null(dropped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_chain_bytes),
        cmocka_unit_test(test_plan_at_time),
        cmocka_unit_test(test_plan_estimate),
        cmocka_unit_test(test_restore_records_estimate),
        cmocka_unit_test(test_manifest_qcow2_fields),
        cmocka_unit_test(test_manifest_v1),
        cmocka_unit_test(test_manifest_probe),
        cmocka_unit_test(test_define_xml_same_name),
        cmocka_unit_test(test_define_xml_new_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
