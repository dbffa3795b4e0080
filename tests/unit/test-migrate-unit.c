/* virtkeep - unit tests of the pure parts of migration: option parsing and
 * combinations, flags and typed parameters, the pre-check report, disk path
 * moves, evacuation placement, and the downtime column of the catalog. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/migrate/migrate.h"

static void test_option_values(void **state)
{
    struct migrate_options o = {0};

    (void)state;
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_TO, "qemu+ssh://b/system"), 0);
    assert_string_equal(o.to, "qemu+ssh://b/system");
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_BANDWIDTH, "100"), 0);
    assert_int_equal(o.bandwidth_mib, 100);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_MAX_DOWNTIME, "250"), 0);
    assert_int_equal(o.max_downtime_ms, 250);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_POSTCOPY_AFTER, "30"), 0);
    assert_int_equal(o.postcopy_after, 30);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_POSTCOPY_AFTER, "2m"), 0);
    assert_int_equal(o.postcopy_after, 120);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_PARALLEL_CONNECTIONS, "4"), 0);
    assert_int_equal(o.parallel, 4);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_TIMEOUT, "5"), 0);
    assert_int_equal(o.timeout, 5);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_DEST_DIR, "/srv/images"), 0);
    assert_string_equal(o.dest_dir, "/srv/images");
    assert_false(o.copy_storage);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_COPY_STORAGE, NULL), 0);
    assert_true(o.copy_storage);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_AUTO_CONVERGE, NULL), 0);
    assert_true(o.auto_converge);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_UNSAFE, NULL), 0);
    assert_true(o.unsafe);
}

static void expect_invalid(int opt, const char *arg, const char *needle)
{
    struct migrate_options o = {0};

    vk_error_clear();
    assert_int_equal(cli_migrate_option_set(&o, opt, arg), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), needle));
}

static void test_option_errors(void **state)
{
    struct migrate_options o = {0};

    (void)state;
    expect_invalid(MIGRATE_OPT_BANDWIDTH, "0", "--bandwidth");
    expect_invalid(MIGRATE_OPT_BANDWIDTH, "fast", "'fast'");
    expect_invalid(MIGRATE_OPT_BANDWIDTH, "-5", "--bandwidth");
    expect_invalid(MIGRATE_OPT_MAX_DOWNTIME, "", "--max-downtime");
    expect_invalid(MIGRATE_OPT_PARALLEL_CONNECTIONS, "256", "--parallel-connections");
    expect_invalid(MIGRATE_OPT_POSTCOPY_AFTER, "0", "--postcopy-after");
    expect_invalid(MIGRATE_OPT_TIMEOUT, "soon", "--timeout");
    expect_invalid(MIGRATE_OPT_DEST_DIR, "images", "absolute");
    /* --live and --offline exclude each other, in either order. */
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_LIVE, NULL), 0);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_LIVE, NULL), 0);
    assert_int_equal(cli_migrate_option_set(&o, MIGRATE_OPT_OFFLINE, NULL), -1);
    assert_non_null(strstr(vk_error_message(), "exclude"));
    assert_int_equal(o.mode, MIGRATE_MODE_LIVE);
}

static void test_options_check(void **state)
{
    struct migrate_options o = {.domain = "web1", .to = "qemu+ssh://b/system"};

    (void)state;
    assert_int_equal(migrate_options_check(&o, true), 0);
    assert_int_equal(migrate_options_check(&o, false), 0);
    o.mode = MIGRATE_MODE_LIVE;
    assert_int_equal(migrate_options_check(&o, false), -1);
    assert_non_null(strstr(vk_error_message(), "'web1' is not running"));
    o.mode = MIGRATE_MODE_AUTO;
    o.copy_storage = true;
    assert_int_equal(migrate_options_check(&o, true), 0);
    assert_int_equal(migrate_options_check(&o, false), -1);
    assert_non_null(strstr(vk_error_message(), "--copy-storage"));
    o.copy_storage = false;
    o.dest_dir = "/srv";
    assert_int_equal(migrate_options_check(&o, true), -1);
    assert_non_null(strstr(vk_error_message(), "--dest-dir"));
    o.dest_dir = NULL;
    o.postcopy_after = 10;
    assert_int_equal(migrate_options_check(&o, true), 0);
    o.mode = MIGRATE_MODE_OFFLINE;
    assert_int_equal(migrate_options_check(&o, true), -1);
    assert_non_null(strstr(vk_error_message(), "--postcopy-after"));
    o.mode = MIGRATE_MODE_AUTO;
    o.postcopy_after = 0;
    o.to = NULL;
    assert_int_equal(migrate_options_check(&o, true), -1);
    assert_non_null(strstr(vk_error_message(), "--to"));
}

static void test_flags(void **state)
{
    struct migrate_options o = {.to = "x"};
    unsigned long base = VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;

    (void)state;
    assert_int_equal(migrate_flags(&o, true), base | VIR_MIGRATE_LIVE);
    assert_int_equal(migrate_flags(&o, false), base | VIR_MIGRATE_OFFLINE);
    o.mode = MIGRATE_MODE_OFFLINE;
    assert_int_equal(migrate_flags(&o, true), base);
    o.mode = MIGRATE_MODE_LIVE;
    o.copy_storage = o.unsafe = o.auto_converge = true;
    o.postcopy_after = 5;
    o.parallel = 1;
    assert_int_equal(migrate_flags(&o, true), base | VIR_MIGRATE_LIVE |
                                                  VIR_MIGRATE_NON_SHARED_DISK | VIR_MIGRATE_UNSAFE |
                                                  VIR_MIGRATE_AUTO_CONVERGE | VIR_MIGRATE_POSTCOPY);
    o.parallel = 3;
    assert_true(migrate_flags(&o, true) & VIR_MIGRATE_PARALLEL);
}

static void test_params(void **state)
{
    struct migrate_options o = {
        .to = "x", .migrate_uri = "tcp://127.0.0.1", .bandwidth_mib = 7, .parallel = 3};
    virTypedParameterPtr p = NULL;
    const char *s = NULL;
    unsigned long long bw = 0;
    int n = 0, par = 0;

    (void)state;
    assert_int_equal(migrate_params_build(&o, "<domain/>", NULL, &p, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(virTypedParamsGetString(p, n, VIR_MIGRATE_PARAM_URI, &s), 1);
    assert_string_equal(s, "tcp://127.0.0.1");
    assert_int_equal(virTypedParamsGetString(p, n, VIR_MIGRATE_PARAM_DEST_XML, &s), 1);
    assert_string_equal(s, "<domain/>");
    assert_int_equal(virTypedParamsGetString(p, n, VIR_MIGRATE_PARAM_PERSIST_XML, &s), 0);
    assert_int_equal(virTypedParamsGetULLong(p, n, VIR_MIGRATE_PARAM_BANDWIDTH, &bw), 1);
    assert_int_equal(bw, 7);
    assert_int_equal(virTypedParamsGetInt(p, n, VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS, &par), 1);
    assert_int_equal(par, 3);
    virTypedParamsFree(p, n);
    o = (struct migrate_options){.to = "x"};
    assert_int_equal(migrate_params_build(&o, NULL, NULL, &p, &n), 0);
    assert_int_equal(n, 0);
    virTypedParamsFree(p, n);
}

static void test_report(void **state)
{
    struct migrate_report r = {0};
    CLEANUP_FREE char *f1 = NULL;
    CLEANUP_FREE char *f2 = NULL;
    CLEANUP_FREE char *d1 = NULL;

    (void)state;
    assert_int_equal(migrate_report_add(&r, "reachable", MIGRATE_CHECK_PASS, "ok."), 0);
    assert_null(migrate_report_failures(&r));
    assert_null(migrate_report_describe(&r));
    assert_int_equal(migrate_report_add(&r, "memory", MIGRATE_CHECK_FAIL, "needs %d MiB.", 64), 0);
    assert_int_equal(migrate_report_add(&r, "cpu", MIGRATE_CHECK_SKIP, "not checked."), 0);
    assert_int_equal(
        migrate_report_add(&r, "storage vda", MIGRATE_CHECK_FAIL, "'%s' missing.", "/x.qcow2"), 0);
    assert_int_equal(r.nr, 4);
    assert_int_equal(r.failed, 2);
    assert_string_equal(r.items[1].detail, "needs 64 MiB.");
    assert_string_equal(r.items[3].detail, "'/x.qcow2' missing.");
    assert_string_equal(migrate_check_status_name(r.items[2].status), "skip");
    f1 = migrate_report_failures(&r);
    assert_string_equal(f1, "memory, storage vda");
    d1 = migrate_report_describe(&r);
    assert_string_equal(d1, "memory: needs 64 MiB.; storage vda: '/x.qcow2' missing.");
    migrate_report_clear(&r);
    assert_int_equal(r.nr, 0);
    assert_int_equal(r.failed, 0);
    assert_null(r.items);
    assert_int_equal(migrate_report_add(&r, "name", MIGRATE_CHECK_FAIL, "taken."), 0);
    f2 = migrate_report_failures(&r);
    assert_string_equal(f2, "name");
    migrate_report_clear(&r);
    migrate_report_clear(NULL);
}

static void test_memory_and_paths(void **state)
{
    CLEANUP_FREE char *a = migrate_dest_path("/var/lib/img/web1-vda.qcow2", "/srv/dst/");
    CLEANUP_FREE char *b = migrate_dest_path("/var/lib/img/web1-vda.qcow2", NULL);
    CLEANUP_FREE char *c = migrate_dest_path("rel.img", "/d");

    (void)state;
    assert_true(migrate_memory_fits(128, 128));
    assert_true(migrate_memory_fits(1ull << 40, 64ull << 20));
    assert_false(migrate_memory_fits(127, 128));
    assert_string_equal(a, "/srv/dst/web1-vda.qcow2");
    assert_string_equal(b, "/var/lib/img/web1-vda.qcow2");
    assert_string_equal(c, "/d/rel.img");
}

static void test_xml_move(void **state)
{
    const char *xml = "<domain type='kvm'><name>w</name><devices>"
                      "<disk type='file' device='disk'><source file='/a/w-vda.qcow2'/>"
                      "<target dev='vda'/></disk>"
                      "<disk type='file' device='cdrom'><source file='/iso/x.iso'/>"
                      "<target dev='sda'/></disk>"
                      "<disk type='file'><source file='/b/w-vdb.raw'/><target dev='vdb'/></disk>"
                      "</devices></domain>";
    CLEANUP_FREE char *moved = migrate_xml_move_disks(xml, "/new");
    CLEANUP_FREE char *same = migrate_xml_move_disks(xml, NULL);

    (void)state;
    assert_non_null(moved);
    assert_non_null(strstr(moved, "file=\"/new/w-vda.qcow2\""));
    assert_non_null(strstr(moved, "file=\"/new/w-vdb.raw\""));
    assert_non_null(strstr(moved, "file=\"/iso/x.iso\"")); /* a cdrom stays */
    assert_null(strstr(moved, "/a/w-vda.qcow2"));
    assert_string_equal(same, xml);
    assert_null(migrate_xml_move_disks("<domain", "/new"));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
}

static void test_place(void **state)
{
    struct evacuate_dest d[3] = {{"a", 1000}, {"b", 3000}, {"c", 3000}};
    bool all[3] = {true, true, true}, not_b[3] = {true, false, true}, none[3] = {false};

    (void)state;
    /* The most free memory wins; on a tie, the first. */
    assert_int_equal(evacuate_place(d, 3, all, 500), 1);
    assert_int_equal(d[1].free_bytes, 2500);
    /* What was placed counts: c now has the most. */
    assert_int_equal(evacuate_place(d, 3, all, 500), 2);
    assert_int_equal(d[2].free_bytes, 2500);
    /* A destination that fails the domain's pre-checks is never chosen. */
    assert_int_equal(evacuate_place(d, 3, not_b, 2000), 2);
    assert_int_equal(d[2].free_bytes, 500);
    assert_int_equal(evacuate_place(d, 3, not_b, 2000), -1);
    assert_int_equal(evacuate_place(d, 3, none, 1), -1);
    assert_int_equal(d[0].free_bytes, 1000);
    assert_int_equal(d[1].free_bytes, 2500);
    assert_int_equal(evacuate_place(d, 3, all, 2500), 1);
    assert_int_equal(d[1].free_bytes, 0);
    assert_int_equal(evacuate_place(d, 0, all, 1), -1);
}

static void test_catalog_downtime(void **state)
{
    char path[] = "/tmp/vk-migrate-unit-XXXXXX";
    CLEANUP_FREE char *db = NULL;
    struct catalog_job job = {
        .kind = (char *)"migrate", .domain = (char *)"w", .state = CATALOG_JOB_RUNNING};
    struct catalog *cat;
    struct catalog_job *got;
    int64_t id;

    (void)state;
    assert_non_null(mkdtemp(path));
    db = vk_asprintf("%s/catalog.db", path);
    cat = catalog_open(db, 0);
    assert_non_null(cat);
    id = catalog_job_insert(cat, &job);
    assert_true(id > 0);
    got = catalog_job_get(cat, id);
    assert_non_null(got);
    assert_int_equal(got->downtime_ms, -1);
    catalog_job_free(got);
    assert_int_equal(catalog_job_set_downtime(cat, id, 42), 0);
    assert_int_equal(catalog_job_set_downtime(cat, id, -3), -1);
    assert_int_equal(catalog_job_set_downtime(cat, id + 100, 1), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    got = catalog_job_get(cat, id);
    assert_non_null(got);
    assert_int_equal(got->downtime_ms, 42);
    assert_string_equal(got->kind, "migrate");
    catalog_job_free(got);
    catalog_close(cat);
    CLEANUP_FREE char *cmd = vk_asprintf("rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_values),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_options_check),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_memory_and_paths),
        cmocka_unit_test(test_xml_move),
        cmocka_unit_test(test_place),
        cmocka_unit_test(test_catalog_downtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
