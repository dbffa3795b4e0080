/* virtkeep - the catalog contract suite (see catalog-contract.h).
 *
 * Every test gets a fresh catalog location from the fixture and uses only
 * catalog.h to check what callers rely on, whatever the backend: records,
 * lists and their order, constraints and their errors, transactions,
 * several connections and processes, migrations, and what happens to a
 * writer that dies or loses its connection in the middle of a transaction.
 */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "tests/lib/catalog-contract.h"

#define SHA_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define SHA_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

struct ctx {
    struct catalog_fixture *fx;
    char *url;
};

static int ctx_setup(void **state)
{
    struct ctx *c = vk_calloc(1, sizeof *c);

    if (!c)
        return -1;
    c->fx = *state;
    c->url = c->fx->fresh(c->fx->opaque);
    if (!c->url) {
        print_error("cannot make a fresh %s catalog: %s\n", c->fx->name,
                    vk_error_message() ? vk_error_message() : "(no message)");
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int ctx_teardown(void **state)
{
    struct ctx *c = *state;

    vk_error_clear();
    c->fx->forget(c->fx->opaque, c->url);
    free(c->url);
    free(c);
    return 0;
}

static const char *url_of(void **state)
{
    return ((struct ctx *)*state)->url;
}

static struct catalog_fixture *fx_of(void **state)
{
    return ((struct ctx *)*state)->fx;
}

static void raw_exec(void **state, const char *sql)
{
    struct ctx *c = *state;

    if (c->fx->raw_exec(c->fx->opaque, c->url, sql) == -1)
        fail_msg("raw SQL failed on the %s catalog: %s", c->fx->name, sql);
}

static void assert_error(enum vk_error_code code, const char *needle)
{
    if (vk_error_code() != code)
        fail_msg("error code %d, expected %d: %s", (int)vk_error_code(), (int)code,
                 vk_error_message() ? vk_error_message() : "(no message)");
    assert_non_null(vk_error_message());
    if (!strstr(vk_error_message(), needle))
        fail_msg("error '%s' does not contain '%s'", vk_error_message(), needle);
}

static struct catalog *open_new(void **state)
{
    struct catalog *cat = catalog_open(url_of(state), 0);

    if (!cat)
        fail_msg("catalog_open: %s", vk_error_message());
    return cat;
}

static void insert_backup(struct catalog *cat, const char *id, const char *domain,
                          enum catalog_level level, const char *parent, int64_t started)
{
    struct catalog_backup b = {
        .id = (char *)id,
        .domain = (char *)domain,
        .level = level,
        .status = CATALOG_STATUS_RUNNING,
        .checkpoint = level == CATALOG_LEVEL_COPY ? NULL : (char *)"vk-cp",
        .parent = (char *)parent,
        .started = started,
    };

    if (catalog_backup_insert(cat, &b) == -1)
        fail_msg("insert %s: %s", id, vk_error_message());
}

static bool has_backup(struct catalog *cat, const char *id)
{
    struct catalog_backup *b = catalog_backup_get(cat, id);

    if (!b && vk_error_code() != VK_ERR_NOT_FOUND)
        fail_msg("get %s: %s", id, vk_error_message());
    catalog_backup_free(b);
    return b != NULL;
}

/* ---- open, migrations ------------------------------------------------- */

static void test_create_and_reopen(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_domain *dom;

    assert_string_equal(catalog_path(cat), url_of(state));
    assert_int_equal(catalog_schema_version(cat), CATALOG_SCHEMA_VERSION);
    assert_int_equal(catalog_domain_set(cat, "web1", "8f4a0c2e-0000-4000-8000-000000000001"), 0);
    catalog_close(cat);
    cat = catalog_open(url_of(state), CATALOG_OPEN_EXISTING);
    if (!cat)
        fail_msg("reopen: %s", vk_error_message());
    assert_int_equal(catalog_schema_version(cat), CATALOG_SCHEMA_VERSION);
    dom = catalog_domain_get(cat, "web1");
    assert_non_null(dom);
    assert_string_equal(dom->uuid, "8f4a0c2e-0000-4000-8000-000000000001");
    catalog_domain_free(dom);
    catalog_close(cat);
}

/* A version 1 catalog, made by the frozen SQL of that version, with rows:
 * opening it migrates it step by step to the current version, keeps the
 * rows, and gives the new columns their defaults. */
static void test_migrate_from_v1(void **state)
{
    struct catalog_backup *b;
    struct catalog_locations *locs = NULL;
    struct catalog_job job = {.kind = (char *)"backup", .domain = (char *)"web1"};
    struct catalog_drill drill = {.domain = (char *)"web1", .state = CATALOG_DRILL_RUNNING};
    struct catalog_rate rate;
    struct catalog *cat;
    int64_t id;

    raw_exec(state, fx_of(state)->v1_schema);
    raw_exec(state, "INSERT INTO domains(name, uuid) VALUES('web1', 'u-1');"
                    "INSERT INTO backups(id, domain_id, level, checkpoint, status, started, "
                    "finished, bytes_read, domain_xml) VALUES('web1-1', 1, 'full', 'vk-1', "
                    "'committed', 1000, 1010, 4096, '<domain/>');"
                    "INSERT INTO archive_locations(backup_id, disk, target, object_key, size, "
                    "sha256, created) VALUES('web1-1', 'vda', 'local', 'web1/1/vda.tar', 77, "
                    "'" SHA_A "', 1011);");

    cat = catalog_open(url_of(state), CATALOG_OPEN_EXISTING);
    if (!cat)
        fail_msg("open v1: %s", vk_error_message());
    assert_int_equal(catalog_schema_version(cat), CATALOG_SCHEMA_VERSION);
    b = catalog_backup_get(cat, "web1-1");
    assert_non_null(b);
    assert_string_equal(b->domain, "web1");
    assert_int_equal(b->level, CATALOG_LEVEL_FULL);
    assert_int_equal(b->status, CATALOG_STATUS_COMMITTED);
    assert_int_equal(b->bytes_read, 4096);
    assert_string_equal(b->domain_xml, "<domain/>");
    assert_int_equal(b->pid, 0);       /* v2 column, default */
    assert_int_equal(b->pid_start, 0); /* v6 column, default */
    catalog_backup_free(b);
    assert_int_equal(catalog_archive_list(cat, "web1-1", NULL, &locs), 0);
    assert_int_equal(locs->count, 1);
    assert_string_equal(locs->items[0].sha256, SHA_A);
    catalog_locations_free(locs);
    /* The tables of later versions work, with ids the catalog assigns. */
    id = catalog_job_insert(cat, &job);
    assert_true(id > 0);
    assert_true(catalog_job_insert(cat, &job) > id);
    assert_int_equal(catalog_job_set_downtime(cat, id, 12), 0);
    assert_true(catalog_drill_insert(cat, &drill) > 0);
    assert_int_equal(catalog_prune_mark(cat, "web1-1", "test"), 0);
    assert_int_equal(catalog_throughput_record(cat, "local", CATALOG_DIR_WRITE, 100, 1.0, 5), 0);
    assert_int_equal(catalog_throughput_estimate(cat, "local", CATALOG_DIR_WRITE, &rate), 0);
    assert_int_equal(rate.samples, 1);
    /* A new domain gets an id after the v1 row's. */
    insert_backup(cat, "db1-1", "db1", CATALOG_LEVEL_FULL, NULL, 2000);
    catalog_close(cat);
    /* Migrated once: reopening changes nothing. */
    cat = catalog_open(url_of(state), CATALOG_OPEN_EXISTING);
    assert_non_null(cat);
    assert_true(has_backup(cat, "web1-1") && has_backup(cat, "db1-1"));
    catalog_close(cat);
}

static void test_newer_version_refused(void **state)
{
    CLEANUP_FREE char *bump =
        vk_asprintf("%s%d", fx_of(state)->set_version, CATALOG_SCHEMA_VERSION + 1);
    struct catalog *cat;

    catalog_close(open_new(state));
    raw_exec(state, bump);
    assert_null(catalog_open(url_of(state), 0));
    assert_error(VK_ERR_UNSUPPORTED, "newer");
    assert_non_null(strstr(vk_error_message(), url_of(state)));
    /* Left alone: putting the version back makes it usable again. */
    free(bump);
    bump = vk_asprintf("%s%d", fx_of(state)->set_version, CATALOG_SCHEMA_VERSION);
    raw_exec(state, bump);
    cat = catalog_open(url_of(state), CATALOG_OPEN_EXISTING);
    assert_non_null(cat);
    catalog_close(cat);
}

/* A database that holds something else is not taken over. */
static void test_foreign_database_refused(void **state)
{
    raw_exec(state, "CREATE TABLE somebody_elses (x INTEGER);");
    assert_null(catalog_open(url_of(state), 0));
    assert_error(VK_ERR_CORRUPT, "not a virtkeep catalog");
}

/* ---- records ---------------------------------------------------------- */

static void test_domains_and_disks(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_domains *doms = NULL;
    struct catalog_disks *disks = NULL;
    struct catalog_domain *dom;
    struct catalog_disk vda = {(char *)"web1", (char *)"vda", (char *)"qcow2", 1u << 30};
    struct catalog_disk vdb = {(char *)"web1", (char *)"vdb", (char *)"raw", 4096};

    assert_int_equal(catalog_domain_set(cat, "web1", "u-1"), 0);
    assert_int_equal(catalog_domain_set(cat, "db1", NULL), 0);
    /* A NULL uuid keeps the known one; a new one replaces it. */
    assert_int_equal(catalog_domain_set(cat, "web1", NULL), 0);
    dom = catalog_domain_get(cat, "web1");
    assert_string_equal(dom->uuid, "u-1");
    catalog_domain_free(dom);
    assert_int_equal(catalog_domain_set(cat, "web1", "u-2"), 0);
    dom = catalog_domain_get(cat, "web1");
    assert_string_equal(dom->uuid, "u-2");
    catalog_domain_free(dom);
    assert_null(catalog_domain_get(cat, "ghost"));
    assert_error(VK_ERR_NOT_FOUND, "'ghost'");
    assert_int_equal(catalog_domain_set(cat, "", NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);

    assert_int_equal(catalog_domain_list(cat, &doms), 0);
    assert_int_equal(doms->count, 2);
    assert_string_equal(doms->items[0].name, "db1");
    assert_null(doms->items[0].uuid);
    assert_string_equal(doms->items[1].name, "web1");
    catalog_domains_free(doms);

    assert_int_equal(catalog_disk_set(cat, &vdb), 0);
    assert_int_equal(catalog_disk_set(cat, &vda), 0);
    vda.virtual_size = 2u << 30;
    assert_int_equal(catalog_disk_set(cat, &vda), 0);
    vda.domain = (char *)"new1"; /* creates the domain */
    assert_int_equal(catalog_disk_set(cat, &vda), 0);
    assert_int_equal(catalog_disk_list(cat, "web1", &disks), 0);
    assert_int_equal(disks->count, 2);
    assert_string_equal(disks->items[0].target, "vda");
    assert_string_equal(disks->items[0].format, "qcow2");
    assert_int_equal(disks->items[0].virtual_size, 2u << 30);
    assert_string_equal(disks->items[1].target, "vdb");
    assert_int_equal(disks->items[1].virtual_size, 4096);
    catalog_disks_free(disks);
    assert_int_equal(catalog_disk_list(cat, "new1", &disks), 0);
    assert_int_equal(disks->count, 1);
    catalog_disks_free(disks);
    catalog_domains_free(NULL);
    catalog_disks_free(NULL);
    catalog_domain_free(NULL);
    catalog_close(cat);
}

static void test_backup_crud(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_backups *list = NULL;
    struct catalog_backup *b;
    struct catalog_backup upd = {.id = (char *)"web1-2",
                                 .bytes_read = 10,
                                 .bytes_written = 20,
                                 .bytes_stored = 5,
                                 .checkpoint_xml = (char *)"<domaincheckpoint/>"};
    struct catalog_backup full = {.id = (char *)"web1-1",
                                  .domain = (char *)"web1",
                                  .level = CATALOG_LEVEL_FULL,
                                  .status = CATALOG_STATUS_RUNNING,
                                  .checkpoint = (char *)"vk-1",
                                  .started = 100,
                                  .domain_xml = (char *)"<domain><name>web1</name></domain>"};

    assert_int_equal(catalog_backup_insert(cat, &full), 0);
    assert_int_equal(catalog_backup_insert(cat, &full), -1);
    assert_error(VK_ERR_INVALID, "'web1-1' already exists");
    full.level = CATALOG_LEVEL_AUTO;
    full.id = (char *)"web1-x";
    assert_int_equal(catalog_backup_insert(cat, &full), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);

    b = catalog_backup_get(cat, "web1-1");
    assert_non_null(b);
    assert_string_equal(b->id, "web1-1");
    assert_string_equal(b->domain, "web1");
    assert_int_equal(b->level, CATALOG_LEVEL_FULL);
    assert_int_equal(b->status, CATALOG_STATUS_RUNNING);
    assert_string_equal(b->checkpoint, "vk-1");
    assert_null(b->parent);
    assert_int_equal(b->started, 100);
    assert_int_equal(b->finished, 0);
    assert_int_equal(b->pid, getpid());
    assert_string_equal(b->domain_xml, "<domain><name>web1</name></domain>");
    assert_null(b->checkpoint_xml);
    catalog_backup_free(b);

    assert_int_equal(catalog_backup_set_status(cat, "web1-1", CATALOG_STATUS_COMMITTED, NULL), 0);
    b = catalog_backup_get(cat, "web1-1");
    assert_int_equal(b->status, CATALOG_STATUS_COMMITTED);
    assert_true(b->finished >= 100);
    catalog_backup_free(b);
    /* Final states are final. */
    assert_int_equal(catalog_backup_set_status(cat, "web1-1", CATALOG_STATUS_FAILED, "x"), -1);
    assert_error(VK_ERR_INVALID, "already committed");
    assert_int_equal(catalog_backup_set_status(cat, "ghost", CATALOG_STATUS_FAILED, "x"), -1);
    assert_error(VK_ERR_NOT_FOUND, "'ghost'");
    assert_int_equal(catalog_backup_set_status(cat, "web1-1", CATALOG_STATUS_RUNNING, NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);

    insert_backup(cat, "web1-2", "web1", CATALOG_LEVEL_INC, "web1-1", 200);
    insert_backup(cat, "db1-1", "db1", CATALOG_LEVEL_FULL, NULL, 150);
    assert_int_equal(catalog_backup_update(cat, &upd), 0);
    assert_int_equal(catalog_backup_set_status(cat, "web1-2", CATALOG_STATUS_FAILED, "disk full"),
                     0);
    b = catalog_backup_get(cat, "web1-2");
    assert_int_equal(b->status, CATALOG_STATUS_FAILED);
    assert_string_equal(b->error, "disk full");
    assert_string_equal(b->parent, "web1-1");
    assert_string_equal(b->checkpoint, "vk-cp"); /* kept: update passed NULL */
    assert_string_equal(b->checkpoint_xml, "<domaincheckpoint/>");
    assert_int_equal(b->bytes_read, 10);
    assert_int_equal(b->bytes_written, 20);
    assert_int_equal(b->bytes_stored, 5);
    catalog_backup_free(b);
    upd.id = (char *)"ghost";
    assert_int_equal(catalog_backup_update(cat, &upd), -1);
    assert_error(VK_ERR_NOT_FOUND, "'ghost'");
    assert_null(catalog_backup_get(cat, "ghost"));
    assert_error(VK_ERR_NOT_FOUND, "'ghost'");

    /* Lists: oldest first, filtered by domain and status, XML on request. */
    assert_int_equal(catalog_backup_list(cat, NULL, 0, &list), 0);
    assert_int_equal(list->count, 3);
    assert_string_equal(list->items[0].id, "web1-1");
    assert_string_equal(list->items[1].id, "db1-1");
    assert_string_equal(list->items[2].id, "web1-2");
    assert_null(list->items[0].domain_xml);
    catalog_backups_free(list);
    assert_int_equal(catalog_backup_list(cat, "web1", CATALOG_LIST_WITH_XML, &list), 0);
    assert_int_equal(list->count, 2);
    assert_string_equal(list->items[0].domain_xml, "<domain><name>web1</name></domain>");
    catalog_backups_free(list);
    assert_int_equal(catalog_backup_list(cat, "web1", CATALOG_LIST_COMMITTED, &list), 0);
    assert_int_equal(list->count, 1);
    assert_string_equal(list->items[0].id, "web1-1");
    catalog_backups_free(list);
    assert_int_equal(catalog_backup_list(cat, "ghost", 0, &list), 0);
    assert_int_equal(list->count, 0);
    catalog_backups_free(list);

    /* A parent cannot go before its child. */
    assert_int_equal(catalog_backup_delete(cat, "web1-1", 0), -1);
    assert_error(VK_ERR_INVALID, "'web1-2' depends on it");
    assert_int_equal(catalog_backup_delete(cat, "web1-2", 0), 0);
    assert_int_equal(catalog_backup_delete(cat, "web1-1", 0), 0);
    assert_int_equal(catalog_backup_delete(cat, "web1-1", 0), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    catalog_backup_free(NULL);
    catalog_backups_free(NULL);
    catalog_close(cat);
}

static void test_backup_disks_and_locations(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_backup_disks *disks = NULL;
    struct catalog_locations *locs = NULL;
    struct catalog_backup_disk vda = {(char *)"web1-1", (char *)"vda", (char *)"qcow2",
                                      1u << 30,         1000,          400};
    struct catalog_location loc = {.backup_id = (char *)"web1-1",
                                   .disk = (char *)"vda",
                                   .target = (char *)"local",
                                   .key = (char *)"web1/web1-1/vda.tar",
                                   .size = 400,
                                   .sha256 = (char *)SHA_A,
                                   .created = 500};

    insert_backup(cat, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
    assert_int_equal(catalog_backup_disk_add(cat, &vda), 0);
    vda.bytes_stored = 450;
    assert_int_equal(catalog_backup_disk_add(cat, &vda), 0);
    vda.target = (char *)"vdb";
    assert_int_equal(catalog_backup_disk_add(cat, &vda), 0);
    vda.backup_id = (char *)"ghost";
    assert_int_equal(catalog_backup_disk_add(cat, &vda), -1);
    assert_error(VK_ERR_NOT_FOUND, "'ghost'");
    assert_int_equal(catalog_backup_disk_list(cat, "web1-1", &disks), 0);
    assert_int_equal(disks->count, 2);
    assert_string_equal(disks->items[0].target, "vda");
    assert_int_equal(disks->items[0].bytes_read, 1000);
    assert_int_equal(disks->items[0].bytes_stored, 450);
    assert_int_equal(disks->items[0].virtual_size, 1u << 30);
    catalog_backup_disks_free(disks);

    /* Copies on two targets plus a manifest. */
    assert_int_equal(catalog_archive_add_location(cat, &loc), 0);
    loc.target = (char *)"offsite";
    loc.size = 401; /* replaced below */
    assert_int_equal(catalog_archive_add_location(cat, &loc), 0);
    loc.size = 400;
    assert_int_equal(catalog_archive_add_location(cat, &loc), 0);
    loc.disk = NULL;
    loc.key = (char *)"web1/web1-1/manifest.json";
    loc.sha256 = (char *)SHA_B;
    loc.size = 99;
    assert_int_equal(catalog_archive_add_location(cat, &loc), 0);
    loc.sha256 = (char *)"ABC";
    assert_int_equal(catalog_archive_add_location(cat, &loc), -1);
    assert_error(VK_ERR_INVALID, "sha256");
    loc.sha256 = NULL;
    loc.backup_id = (char *)"ghost";
    assert_int_equal(catalog_archive_add_location(cat, &loc), -1);
    assert_error(VK_ERR_NOT_FOUND, "'ghost'");

    assert_int_equal(catalog_archive_list(cat, "web1-1", NULL, &locs), 0);
    assert_int_equal(locs->count, 3);
    assert_null(locs->items[0].disk); /* the manifest sorts first */
    assert_string_equal(locs->items[0].sha256, SHA_B);
    assert_string_equal(locs->items[1].target, "local");
    assert_string_equal(locs->items[2].target, "offsite");
    assert_int_equal(locs->items[2].size, 400);
    assert_int_equal(locs->items[2].created, 500);
    assert_string_equal(locs->items[2].key, "web1/web1-1/vda.tar");
    catalog_locations_free(locs);
    assert_int_equal(catalog_archive_list(cat, NULL, "offsite", &locs), 0);
    assert_int_equal(locs->count, 2);
    catalog_locations_free(locs);

    assert_int_equal(
        catalog_archive_remove_location(cat, "web1-1", "offsite", "web1/web1-1/vda.tar"), 0);
    assert_int_equal(
        catalog_archive_remove_location(cat, "web1-1", "offsite", "web1/web1-1/vda.tar"), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_int_equal(catalog_archive_list(cat, NULL, "offsite", &locs), 0);
    assert_int_equal(locs->count, 1);
    catalog_locations_free(locs);

    /* Deleting the backup deletes its disks and locations. */
    assert_int_equal(catalog_backup_delete(cat, "web1-1", 0), 0);
    assert_int_equal(catalog_archive_list(cat, NULL, NULL, &locs), 0);
    assert_int_equal(locs->count, 0);
    catalog_locations_free(locs);
    assert_int_equal(catalog_backup_disk_list(cat, "web1-1", &disks), 0);
    assert_int_equal(disks->count, 0);
    catalog_backup_disks_free(disks);
    catalog_locations_free(NULL);
    catalog_backup_disks_free(NULL);
    catalog_close(cat);
}

static void test_jobs(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_jobs *jobs = NULL;
    struct catalog_job *job;
    struct catalog_job in = {.kind = (char *)"restore",
                             .domain = (char *)"web1",
                             .target = (char *)"offsite",
                             .backup_id = (char *)"web1-1",
                             .state = CATALOG_JOB_RUNNING,
                             .started = 1000,
                             .estimate_seconds = 12.5};
    int64_t a, b, c;

    a = catalog_job_insert(cat, &in);
    in.kind = (char *)"backup";
    b = catalog_job_insert(cat, &in);
    in.domain = (char *)"db1";
    in.state = CATALOG_JOB_QUEUED;
    c = catalog_job_insert(cat, &in);
    assert_true(a > 0 && b > a && c > b);
    in.kind = NULL;
    assert_int_equal(catalog_job_insert(cat, &in), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);

    assert_int_equal(catalog_job_set_progress(cat, a, 300, 1000), 0);
    assert_int_equal(catalog_job_finish(cat, a, CATALOG_JOB_SUCCEEDED, NULL, 11.25), 0);
    assert_int_equal(catalog_job_finish(cat, b, CATALOG_JOB_RUNNING, NULL, 1), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_int_equal(catalog_job_finish(cat, b, CATALOG_JOB_FAILED, "target unreachable", 2), 0);
    assert_int_equal(catalog_job_set_state(cat, c, CATALOG_JOB_RUNNING), 0);
    assert_int_equal(catalog_job_set_progress(cat, 999, 1, 2), -1);
    assert_error(VK_ERR_NOT_FOUND, "job 999");

    job = catalog_job_get(cat, a);
    assert_non_null(job);
    assert_int_equal(job->id, a);
    assert_string_equal(job->kind, "restore");
    assert_string_equal(job->domain, "web1");
    assert_string_equal(job->target, "offsite");
    assert_string_equal(job->backup_id, "web1-1");
    assert_int_equal(job->state, CATALOG_JOB_SUCCEEDED);
    assert_int_equal(job->pid, getpid());
    assert_int_equal(job->started, 1000);
    assert_true(job->finished >= 1000);
    assert_int_equal(job->progress_done, 300);
    assert_int_equal(job->progress_total, 1000);
    assert_true(job->estimate_seconds == 12.5);
    assert_true(job->elapsed_seconds == 11.25);
    assert_null(job->error);
    catalog_job_free(job);
    job = catalog_job_get(cat, b);
    assert_string_equal(job->error, "target unreachable");
    catalog_job_free(job);
    assert_null(catalog_job_get(cat, 999));

    /* Newest first; filters. */
    assert_int_equal(catalog_job_list(cat, NULL, 0, 0, &jobs), 0);
    assert_int_equal(jobs->count, 3);
    assert_int_equal(jobs->items[0].id, c);
    assert_int_equal(jobs->items[2].id, a);
    catalog_jobs_free(jobs);
    assert_int_equal(catalog_job_list(cat, "web1", 0, 1, &jobs), 0);
    assert_int_equal(jobs->count, 1);
    assert_int_equal(jobs->items[0].id, b);
    catalog_jobs_free(jobs);
    assert_int_equal(catalog_job_list(cat, NULL, CATALOG_JOB_LIST_ACTIVE, 0, &jobs), 0);
    assert_int_equal(jobs->count, 1);
    assert_int_equal(jobs->items[0].id, c);
    assert_int_equal(jobs->items[0].state, CATALOG_JOB_RUNNING);
    catalog_jobs_free(jobs);
    catalog_jobs_free(NULL);
    catalog_job_free(NULL);
    catalog_close(cat);
}

static void test_throughput(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_rate rate;

    assert_int_equal(catalog_throughput_estimate(cat, "offsite", CATALOG_DIR_READ, &rate), 0);
    assert_int_equal(rate.samples, 0);
    assert_true(rate.bytes_per_second == 0);

    /* 300 MB in 3 s and 100 MB in 2 s: weighted, 400 MB / 5 s. */
    assert_int_equal(
        catalog_throughput_record(cat, "offsite", CATALOG_DIR_READ, 300000000, 3.0, 100), 0);
    assert_int_equal(
        catalog_throughput_record(cat, "offsite", CATALOG_DIR_READ, 100000000, 2.0, 200), 0);
    assert_int_equal(catalog_throughput_record(cat, "offsite", CATALOG_DIR_WRITE, 1, 1.0, 300), 0);
    assert_int_equal(catalog_throughput_record(cat, "local", CATALOG_DIR_READ, 7, 1.0, 300), 0);
    assert_int_equal(catalog_throughput_estimate(cat, "offsite", CATALOG_DIR_READ, &rate), 0);
    assert_int_equal(rate.samples, 2);
    assert_true(rate.bytes_per_second > 79999999 && rate.bytes_per_second < 80000001);
    assert_int_equal(rate.last_measured, 200);

    /* Only the ten newest samples count. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(
            catalog_throughput_record(cat, "offsite", CATALOG_DIR_READ, 1000, 1.0, 1000 + i), 0);
    assert_int_equal(catalog_throughput_estimate(cat, "offsite", CATALOG_DIR_READ, &rate), 0);
    assert_int_equal(rate.samples, 10);
    assert_true(rate.bytes_per_second == 1000);
    assert_int_equal(rate.last_measured, 1009);

    assert_int_equal(catalog_throughput_record(cat, "offsite", CATALOG_DIR_READ, 1, 0, 1), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_int_equal(catalog_throughput_record(cat, "", CATALOG_DIR_READ, 1, 1, 1), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    catalog_close(cat);
}

/* Drills: ids, finishing once, and lists filtered by domain, by one whole
 * name of the comma-separated targets, and by outcome, newest first. */
static void test_drills(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_drill d = {.domain = (char *)"web1",
                              .backup_id = (char *)"web1-1",
                              .targets = (char *)"local,offsite",
                              .state = CATALOG_DRILL_RUNNING,
                              .started = 100,
                              .estimate_seconds = 2.5,
                              .estimate_source = (char *)"guess"};
    struct catalog_drills *list = NULL;
    struct catalog_drill *got;
    int64_t a, b, c;

    a = catalog_drill_insert(cat, &d);
    d.targets = (char *)"offsite2";
    d.started = 200;
    b = catalog_drill_insert(cat, &d);
    d.domain = (char *)"db1";
    d.targets = NULL;
    d.started = 300;
    c = catalog_drill_insert(cat, &d);
    assert_true(a > 0 && b > a && c > b);
    assert_int_equal(catalog_drill_finish(cat, a, CATALOG_DRILL_OK, 1.75, 1000, 2000, NULL), 0);
    assert_int_equal(catalog_drill_finish(cat, a, CATALOG_DRILL_FAILED, 1, 1, 1, "x"), -1);
    assert_error(VK_ERR_INVALID, "already ok");
    assert_int_equal(catalog_drill_finish(cat, b, CATALOG_DRILL_FAILED, 0.5, 1, 1, "boom"), 0);
    got = catalog_drill_get(cat, a);
    assert_non_null(got);
    assert_int_equal(got->state, CATALOG_DRILL_OK);
    assert_true(got->actual_seconds == 1.75);
    assert_true(got->estimate_seconds == 2.5);
    assert_int_equal(got->bytes_read, 1000);
    assert_int_equal(got->disk_bytes, 2000);
    assert_string_equal(got->targets, "local,offsite");
    assert_string_equal(got->estimate_source, "guess");
    catalog_drill_free(got);
    assert_null(catalog_drill_get(cat, 999));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);

    assert_int_equal(catalog_drill_list(cat, NULL, NULL, 0, 0, &list), 0);
    assert_int_equal(list->count, 3);
    assert_int_equal(list->items[0].id, c);
    catalog_drills_free(list);
    /* "offsite" is a whole name of drill a only, not a prefix of b's. */
    assert_int_equal(catalog_drill_list(cat, NULL, "offsite", 0, 0, &list), 0);
    assert_int_equal(list->count, 1);
    assert_int_equal(list->items[0].id, a);
    catalog_drills_free(list);
    assert_int_equal(catalog_drill_list(cat, "web1", NULL, CATALOG_DRILL_LIST_OK, 0, &list), 0);
    assert_int_equal(list->count, 1);
    catalog_drills_free(list);
    assert_int_equal(catalog_drill_list(cat, "web1", NULL, 0, 1, &list), 0);
    assert_int_equal(list->count, 1);
    assert_int_equal(list->items[0].id, b);
    catalog_drills_free(list);
    catalog_close(cat);
}

/* A pid that certainly belongs to no process: a reaped child's. */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return pid;
}

static void test_fail_orphans(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_backup b = {.domain = (char *)"web1",
                               .level = CATALOG_LEVEL_FULL,
                               .status = CATALOG_STATUS_RUNNING,
                               .started = 100};
    struct catalog_job job = {.kind = (char *)"backup", .state = CATALOG_JOB_RUNNING};
    struct catalog_backup *got;
    struct catalog_job *gotjob;
    pid_t dead = dead_pid();
    CLEANUP_FREE char *needle = vk_asprintf("pid %d", (int)dead);
    unsigned int marked = 99;
    int64_t dead_job, live_job;

    b.id = (char *)"dead-running";
    b.pid = dead;
    assert_int_equal(catalog_backup_insert(cat, &b), 0);
    b.id = (char *)"dead-committed";
    b.status = CATALOG_STATUS_COMMITTED;
    assert_int_equal(catalog_backup_insert(cat, &b), 0);
    b.id = (char *)"live-running";
    b.status = CATALOG_STATUS_RUNNING;
    b.pid = 0; /* this process */
    assert_int_equal(catalog_backup_insert(cat, &b), 0);
    job.pid = dead;
    dead_job = catalog_job_insert(cat, &job);
    job.pid = 0;
    live_job = catalog_job_insert(cat, &job);

    assert_int_equal(catalog_backup_fail_orphans(cat, 0, &marked), 0);
    assert_int_equal(marked, 1);
    got = catalog_backup_get(cat, "dead-running");
    assert_int_equal(got->status, CATALOG_STATUS_FAILED);
    assert_non_null(strstr(got->error, needle));
    assert_true(got->finished > 0);
    catalog_backup_free(got);
    got = catalog_backup_get(cat, "live-running");
    assert_int_equal(got->status, CATALOG_STATUS_RUNNING);
    catalog_backup_free(got);
    got = catalog_backup_get(cat, "dead-committed");
    assert_int_equal(got->status, CATALOG_STATUS_COMMITTED);
    catalog_backup_free(got);
    /* A second pass finds nothing more. */
    assert_int_equal(catalog_backup_fail_orphans(cat, 0, &marked), 0);
    assert_int_equal(marked, 0);

    assert_int_equal(catalog_job_fail_orphans(cat, 0, &marked), 0);
    assert_int_equal(marked, 1);
    gotjob = catalog_job_get(cat, dead_job);
    assert_int_equal(gotjob->state, CATALOG_JOB_FAILED);
    assert_non_null(strstr(gotjob->error, needle));
    catalog_job_free(gotjob);
    gotjob = catalog_job_get(cat, live_job);
    assert_int_equal(gotjob->state, CATALOG_JOB_RUNNING);
    catalog_job_free(gotjob);
    catalog_close(cat);
}

/* The owner of a row is its pid and the process's start time: a live
 * process with the row's pid that started at another time (the pid was
 * reused) does not own it, and the row is an orphan.  A row with the right
 * start time, or none recorded (older catalogs), belongs to the process. */
static void test_fail_orphans_pid_reused(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_backup b = {.domain = (char *)"web1",
                               .level = CATALOG_LEVEL_FULL,
                               .status = CATALOG_STATUS_RUNNING,
                               .started = 100,
                               .pid = getpid()};
    struct catalog_job job = {.kind = (char *)"backup", .state = CATALOG_JOB_RUNNING};
    struct catalog_drill drill = {.domain = (char *)"web1", .state = CATALOG_DRILL_RUNNING};
    struct catalog_backup *got;
    struct catalog_job *gotjob;
    struct catalog_drill *gotdrill;
    unsigned int marked = 99;
    int64_t self_start, reused_job, own_job, reused_drill;

    b.id = (char *)"own";
    assert_int_equal(catalog_backup_insert(cat, &b), 0);
    got = catalog_backup_get(cat, "own");
    self_start = got->pid_start;
    assert_true(self_start > 0); /* read from /proc at insert */
    catalog_backup_free(got);
    b.id = (char *)"reused";
    b.pid_start = self_start + 1;
    assert_int_equal(catalog_backup_insert(cat, &b), 0);
    b.id = (char *)"explicit";
    b.pid_start = self_start;
    assert_int_equal(catalog_backup_insert(cat, &b), 0);
    job.pid = getpid();
    job.pid_start = self_start - 1;
    reused_job = catalog_job_insert(cat, &job);
    job.pid_start = 0;
    own_job = catalog_job_insert(cat, &job);
    drill.pid = getpid();
    drill.pid_start = self_start + 100;
    reused_drill = catalog_drill_insert(cat, &drill);
    assert_true(reused_job > 0 && own_job > 0 && reused_drill > 0);

    assert_int_equal(catalog_backup_fail_orphans(cat, 0, &marked), 0);
    assert_int_equal(marked, 1);
    got = catalog_backup_get(cat, "reused");
    assert_int_equal(got->status, CATALOG_STATUS_FAILED);
    assert_non_null(strstr(got->error, CATALOG_ORPHAN_ERROR));
    catalog_backup_free(got);
    got = catalog_backup_get(cat, "own");
    assert_int_equal(got->status, CATALOG_STATUS_RUNNING);
    catalog_backup_free(got);
    got = catalog_backup_get(cat, "explicit");
    assert_int_equal(got->status, CATALOG_STATUS_RUNNING);
    assert_int_equal(got->pid_start, self_start);
    catalog_backup_free(got);

    assert_int_equal(catalog_job_fail_orphans(cat, 0, &marked), 0);
    assert_int_equal(marked, 1);
    gotjob = catalog_job_get(cat, reused_job);
    assert_int_equal(gotjob->state, CATALOG_JOB_FAILED);
    catalog_job_free(gotjob);
    gotjob = catalog_job_get(cat, own_job);
    assert_int_equal(gotjob->state, CATALOG_JOB_RUNNING);
    assert_int_equal(gotjob->pid_start, self_start);
    catalog_job_free(gotjob);

    assert_int_equal(catalog_drill_fail_orphans(cat, 0, &marked), 0);
    assert_int_equal(marked, 1);
    gotdrill = catalog_drill_get(cat, reused_drill);
    assert_int_equal(gotdrill->state, CATALOG_DRILL_FAILED);
    catalog_drill_free(gotdrill);
    catalog_close(cat);
}

/* A row that cannot be read (a state no version writes) fails the whole
 * list, after good rows were read: nothing is returned and, under the
 * sanitizers, nothing leaks. */
static void test_list_unreadable_row(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_backups no_backups, *backups = &no_backups;
    struct catalog_jobs no_jobs, *jobs = &no_jobs;
    struct catalog_job job = {.kind = (char *)"backup", .state = CATALOG_JOB_RUNNING};
    CLEANUP_FREE char *sql = vk_asprintf("%s UPDATE backups SET status = 'lost' WHERE id = "
                                         "'web1-3'; UPDATE jobs SET state = 'lost' WHERE id = 1;",
                                         fx_of(state)->drop_checks);

    assert_non_null(sql);
    insert_backup(cat, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
    insert_backup(cat, "web1-2", "web1", CATALOG_LEVEL_INC, "web1-1", 200);
    insert_backup(cat, "web1-3", "web1", CATALOG_LEVEL_INC, "web1-2", 300);
    for (int i = 0; i < 3; i++)
        assert_true(catalog_job_insert(cat, &job) > 0);
    raw_exec(state, sql);

    /* Oldest first: web1-3 is the last row. */
    assert_int_equal(catalog_backup_list(cat, NULL, 0, &backups), -1);
    assert_null(backups);
    assert_error(VK_ERR_INVALID, "'lost'");
    /* Newest first: job 1 is the last row; without it the list reads. */
    assert_int_equal(catalog_job_list(cat, NULL, 0, 0, &jobs), -1);
    assert_null(jobs);
    assert_error(VK_ERR_INVALID, "'lost'");
    assert_int_equal(catalog_job_list(cat, NULL, 0, 2, &jobs), 0);
    assert_int_equal(jobs->count, 2);
    assert_int_equal(jobs->items[1].id, 2);
    catalog_jobs_free(jobs);
    catalog_close(cat);
}

static void test_transactions(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_backup *b;

    assert_int_equal(catalog_begin(cat), 0);
    insert_backup(cat, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
    catalog_rollback(cat);
    assert_null(catalog_backup_get(cat, "web1-1"));
    assert_null(catalog_domain_get(cat, "web1"));

    assert_int_equal(catalog_begin(cat), 0);
    insert_backup(cat, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
    assert_int_equal(catalog_commit(cat), 0);
    b = catalog_backup_get(cat, "web1-1");
    assert_non_null(b);
    catalog_backup_free(b);
    /* Rolling back with no transaction open is harmless. */
    catalog_rollback(cat);
    catalog_close(cat);
}

/* Two connections (as two processes would have) see each other's commits. */
static void test_two_connections(void **state)
{
    const char *path = url_of(state);
    struct catalog *a = catalog_open(path, 0);
    struct catalog *b = catalog_open(path, CATALOG_OPEN_EXISTING);
    struct catalog_backup *got;

    assert_non_null(a);
    assert_non_null(b);
    insert_backup(a, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
    got = catalog_backup_get(b, "web1-1");
    assert_non_null(got);
    catalog_backup_free(got);
    assert_int_equal(catalog_begin(a), 0);
    insert_backup(a, "web1-2", "web1", CATALOG_LEVEL_INC, "web1-1", 200);
    /* Uncommitted rows are invisible to the other connection. */
    assert_null(catalog_backup_get(b, "web1-2"));
    assert_int_equal(catalog_commit(a), 0);
    got = catalog_backup_get(b, "web1-2");
    assert_non_null(got);
    catalog_backup_free(got);
    catalog_close(a);
    catalog_close(b);
}

/* Several processes opening a fresh catalog at once: each migration step is
 * applied exactly once, and every opener succeeds. */
static void test_concurrent_first_open(void **state)
{
    const char *path = url_of(state);
    struct catalog_backups *list = NULL;
    struct catalog *cat;
    pid_t kids[4];
    int status;

    for (size_t i = 0; i < VK_ARRAY_SIZE(kids); i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            char id[32];
            struct catalog *mine = catalog_open(path, 0);
            struct catalog_backup b = {.id = id,
                                       .domain = (char *)"web1",
                                       .level = CATALOG_LEVEL_COPY,
                                       .status = CATALOG_STATUS_COMMITTED,
                                       .started = 100};

            snprintf(id, sizeof id, "web1-%zu", i);
            if (!mine || catalog_backup_insert(mine, &b) == -1) {
                fprintf(stderr, "child %zu: %s\n", i, vk_error_message());
                _exit(1);
            }
            catalog_close(mine);
            _exit(0);
        }
    }
    for (size_t i = 0; i < VK_ARRAY_SIZE(kids); i++) {
        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    cat = catalog_open(path, CATALOG_OPEN_EXISTING);
    assert_non_null(cat);
    assert_int_equal(catalog_schema_version(cat), CATALOG_SCHEMA_VERSION);
    assert_int_equal(catalog_backup_list(cat, NULL, 0, &list), 0);
    assert_int_equal(list->count, VK_ARRAY_SIZE(kids));
    catalog_backups_free(list);
    catalog_close(cat);
}

/* ---- concurrency and failures ----------------------------------------- */

#define WRITERS 4
#define WRITES 15

/* Several processes write at once, each through its own connection: plain
 * inserts (every row arrives, every job id is distinct) and read-modify-
 * write transactions on one shared row (no update is lost: catalog_begin
 * takes the catalog's write lock). */
static void test_concurrent_writers(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_job shared = {.kind = (char *)"counter", .state = CATALOG_JOB_RUNNING};
    struct catalog_jobs *jobs = NULL;
    struct catalog_backups *list = NULL;
    struct catalog_job *got;
    pid_t kids[WRITERS];
    int64_t counter;
    int status;

    counter = catalog_job_insert(cat, &shared);
    assert_true(counter > 0);
    for (size_t k = 0; k < WRITERS; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            struct catalog *mine = catalog_open(url_of(state), CATALOG_OPEN_EXISTING);
            struct catalog_job job = {.kind = (char *)"backup", .state = CATALOG_JOB_QUEUED};
            char id[64], dom[32];

            snprintf(dom, sizeof dom, "writer%zu", k);
            job.domain = dom;
            for (int i = 0; mine && i < WRITES; i++) {
                struct catalog_backup b = {.id = id,
                                           .domain = dom,
                                           .level = CATALOG_LEVEL_COPY,
                                           .status = CATALOG_STATUS_COMMITTED,
                                           .started = 100 + i};
                struct catalog_job *j = NULL;

                snprintf(id, sizeof id, "%s-%d", dom, i);
                if (catalog_backup_insert(mine, &b) == -1 || catalog_job_insert(mine, &job) <= 0)
                    goto fail;
                if (catalog_begin(mine) == -1)
                    goto fail;
                j = catalog_job_get(mine, counter);
                if (!j || catalog_job_set_progress(mine, counter, j->progress_done + 1, 0) == -1 ||
                    catalog_commit(mine) == -1) {
                    catalog_job_free(j);
                    catalog_rollback(mine);
                    goto fail;
                }
                catalog_job_free(j);
            }
            if (!mine)
                goto fail;
            catalog_close(mine);
            _exit(0);
        fail:
            fprintf(stderr, "writer %zu: %s\n", k, vk_error_message());
            _exit(1);
        }
    }
    for (size_t k = 0; k < WRITERS; k++) {
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    got = catalog_job_get(cat, counter);
    assert_non_null(got);
    assert_int_equal(got->progress_done, WRITERS * WRITES);
    catalog_job_free(got);
    assert_int_equal(catalog_backup_list(cat, NULL, 0, &list), 0);
    assert_int_equal(list->count, WRITERS * WRITES);
    catalog_backups_free(list);
    assert_int_equal(catalog_job_list(cat, NULL, 0, 0, &jobs), 0);
    assert_int_equal(jobs->count, WRITERS * WRITES + 1);
    for (size_t i = 1; i < jobs->count; i++)
        assert_true(jobs->items[i].id < jobs->items[i - 1].id);
    catalog_jobs_free(jobs);
    catalog_close(cat);
}

/* A writer killed in the middle of a transaction: nothing it wrote is
 * visible, its write lock goes with it, and the same transaction retried
 * by another writer commits. */
static void test_writer_killed_mid_transaction(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_domains *doms = NULL;
    int pipefd[2];
    char byte;
    pid_t kid;
    int status;

    assert_int_equal(pipe(pipefd), 0);
    kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        struct catalog *mine = catalog_open(url_of(state), CATALOG_OPEN_EXISTING);

        close(pipefd[0]);
        if (!mine || catalog_begin(mine) == -1)
            _exit(1);
        insert_backup(mine, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
        if (write(pipefd[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &byte, 1), 1);
    close(pipefd[0]);
    assert_int_equal(kill(kid, SIGKILL), 0);
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFSIGNALED(status));

    assert_false(has_backup(cat, "web1-1"));
    assert_int_equal(catalog_domain_list(cat, &doms), 0);
    assert_int_equal(doms->count, 0);
    catalog_domains_free(doms);
    /* The retry: the lock is free, the transaction commits. */
    assert_int_equal(catalog_begin(cat), 0);
    insert_backup(cat, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
    assert_int_equal(catalog_commit(cat), 0);
    assert_true(has_backup(cat, "web1-1"));
    catalog_close(cat);
}

static void drop(void **state)
{
    if (fx_of(state)->drop_connections(fx_of(state)->opaque, url_of(state)) == -1)
        fail_msg("cannot drop the connections of the %s catalog", fx_of(state)->name);
}

/* One transaction of the test below: two backups of web1.  Returns 0, or
 * -1 with the error of the step that failed (the transaction rolled back). */
static int two_backups(struct catalog *cat, void **state, bool drop_before_second,
                       bool drop_before_commit)
{
    struct catalog_backup b = {.domain = (char *)"web1",
                               .level = CATALOG_LEVEL_COPY,
                               .status = CATALOG_STATUS_COMMITTED,
                               .started = 100};

    if (catalog_begin(cat) == -1)
        return -1;
    b.id = (char *)"web1-1";
    if (catalog_backup_insert(cat, &b) == -1)
        goto fail;
    if (drop_before_second)
        drop(state);
    b.id = (char *)"web1-2";
    if (catalog_backup_insert(cat, &b) == -1)
        goto fail;
    if (drop_before_commit)
        drop(state);
    if (catalog_commit(cat) == -1)
        goto fail;
    return 0;
fail:
    catalog_rollback(cat);
    return -1;
}

/* The server ends the connection (pg_terminate_backend, as a restart or a
 * network failure would):
 *  - between statements, outside a transaction: the next read, and the
 *    next write the server refused, are retried on a new connection;
 *  - in the middle of a transaction: the statement fails with a clear
 *    error, the transaction is lost as a whole (so is every statement
 *    until the rollback), and the caller's retry of the transaction
 *    commits it, exactly once. */
static void test_connection_dropped_then_retry(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_domain *dom;
    struct catalog_backups *list = NULL;
    struct catalog_backup extra = {.id = (char *)"web1-9",
                                   .domain = (char *)"web1",
                                   .level = CATALOG_LEVEL_COPY,
                                   .status = CATALOG_STATUS_COMMITTED,
                                   .started = 100};

    assert_int_equal(catalog_domain_set(cat, "web1", "u-1"), 0);
    drop(state);
    dom = catalog_domain_get(cat, "web1");
    if (!dom)
        fail_msg("read after a dropped connection: %s", vk_error_message());
    catalog_domain_free(dom);
    drop(state);
    if (catalog_domain_set(cat, "web1", "u-2") == -1)
        fail_msg("write after a dropped connection: %s", vk_error_message());

    /* Dropped between two statements of a transaction. */
    assert_int_equal(two_backups(cat, state, true, false), -1);
    assert_error(VK_ERR_NETWORK, "in the middle of a transaction");
    assert_false(has_backup(cat, "web1-1"));
    /* Dropped before COMMIT. */
    assert_int_equal(two_backups(cat, state, false, true), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_false(has_backup(cat, "web1-1"));
    /* A statement after the loss fails until the rollback. */
    assert_int_equal(catalog_begin(cat), 0);
    drop(state);
    assert_int_equal(catalog_backup_insert(cat, &extra), -1);
    assert_error(VK_ERR_NETWORK, "in the middle of a transaction");
    assert_null(catalog_domain_get(cat, "web1"));
    assert_error(VK_ERR_NETWORK, "roll it back and retry");
    catalog_rollback(cat);
    /* The retry. */
    if (two_backups(cat, state, false, false) == -1)
        fail_msg("retry: %s", vk_error_message());
    assert_int_equal(catalog_backup_list(cat, "web1", 0, &list), 0);
    assert_int_equal(list->count, 2);
    assert_string_equal(list->items[0].id, "web1-1");
    assert_string_equal(list->items[1].id, "web1-2");
    catalog_backups_free(list);
    dom = catalog_domain_get(cat, "web1");
    assert_non_null(dom);
    assert_string_equal(dom->uuid, "u-2");
    catalog_domain_free(dom);
    catalog_close(cat);
}

/* ---- hosts and leases ------------------------------------------------- */

/* A catalog handle of host HOST (as virtkeepd's workers get theirs). */
static struct catalog *open_as(void **state, const char *host)
{
    struct catalog *cat;

    setenv("VIRTKEEP_HOST", host, 1);
    cat = catalog_open(url_of(state), 0);
    unsetenv("VIRTKEEP_HOST");
    if (!cat)
        fail_msg("catalog_open as host %s: %s", host, vk_error_message());
    assert_string_equal(catalog_host_name(cat), host);
    return cat;
}

static void test_hosts_register(void **state)
{
    struct catalog *a = open_as(state, "alpha"), *b = open_as(state, "beta");
    struct catalog_job job = {
        .kind = (char *)"backup", .domain = (char *)"web1", .state = CATALOG_JOB_RUNNING};
    struct catalog_hosts *hosts = NULL;
    struct catalog_domain *dom;
    int64_t epoch = 0, now = (int64_t)time(NULL);

    assert_int_equal(catalog_host_heartbeat(a, now), -1);
    assert_error(VK_ERR_NOT_FOUND, "host 'alpha'");
    assert_int_equal(catalog_host_register(a, "qemu:///system", "1.0", 30, now - 5), 0);
    assert_int_equal(catalog_host_register(b, NULL, "1.1", 30, now - 5), 0);
    assert_int_equal(catalog_host_heartbeat(a, now), 0);
    assert_int_equal(catalog_lease_claim(a, "web1", now, 60, &epoch), 1);
    assert_true(catalog_job_insert(a, &job) > 0);
    assert_int_equal(catalog_host_list(b, &hosts), 0);
    assert_int_equal(hosts->count, 2);
    assert_string_equal(hosts->items[0].name, "alpha");
    assert_string_equal(hosts->items[0].uri, "qemu:///system");
    assert_string_equal(hosts->items[0].version, "1.0");
    assert_int_equal(hosts->items[0].heartbeat, now);
    assert_int_equal(hosts->items[0].started, now - 5);
    assert_int_equal(hosts->items[0].running_jobs, 1);
    assert_int_equal(hosts->items[0].domains, 1);
    assert_int_equal(hosts->items[0].lease_seconds, 30);
    assert_false(catalog_host_lost(&hosts->items[0], now + 30));
    assert_true(catalog_host_lost(&hosts->items[0], now + 31));
    assert_null(hosts->items[1].uri);
    assert_int_equal(hosts->items[1].running_jobs, 0);
    catalog_hosts_free(hosts);
    dom = catalog_domain_get(b, "web1");
    assert_non_null(dom);
    assert_string_equal(dom->host, "alpha");
    catalog_domain_free(dom);
    catalog_close(a);
    catalog_close(b);
}

#define CLAIMERS 4
#define CLAIM_DOMAINS 3
#define CLAIM_ROUNDS 25

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One claimer process: claim, check the lease stays ours a moment, record
 * the claim (epoch and the interval it was held, in microseconds) as a
 * job row, release.  Exits 0, or 1 with the error on stderr. */
static void __attribute__((noreturn)) claimer(void **state, size_t k)
{
    char host[32], dom[32];
    struct catalog *mine;

    snprintf(host, sizeof host, "claimer%zu", k);
    setenv("VIRTKEEP_HOST", host, 1);
    if (!(mine = catalog_open(url_of(state), CATALOG_OPEN_EXISTING)))
        goto fail;
    for (int i = 0; i < CLAIM_ROUNDS * CLAIM_DOMAINS; i++) {
        struct catalog_lease l;
        struct catalog_job row = {
            .kind = (char *)"claim", .domain = dom, .state = CATALOG_JOB_SUCCEEDED};
        int64_t epoch = 0, t0;
        int r;

        snprintf(dom, sizeof dom, "claimed%d", (int)((i + k) % CLAIM_DOMAINS));
        if ((r = catalog_lease_claim(mine, dom, (int64_t)time(NULL), 60, &epoch)) == -1)
            goto fail;
        if (r == 0)
            continue;
        t0 = now_us();
        usleep(2000);
        if (catalog_lease_get(mine, dom, &l) == -1)
            goto fail;
        r = l.host && strcmp(l.host, host) == 0 && l.epoch == epoch;
        catalog_lease_clear(&l);
        if (!r) {
            fprintf(stderr, "claimer %zu: lease of %s changed under it\n", k, dom);
            _exit(1);
        }
        row.epoch = epoch;
        row.progress_done = (uint64_t)t0;
        row.progress_total = (uint64_t)now_us();
        if (catalog_job_insert(mine, &row) <= 0 || catalog_lease_release(mine, dom, epoch) == -1)
            goto fail;
    }
    catalog_close(mine);
    _exit(0);
fail:
    fprintf(stderr, "claimer %zu: %s\n", k, vk_error_message());
    _exit(1);
}

/* Claims of one domain: distinct epochs, and held intervals that never
 * overlap. */
static size_t check_claims(const struct catalog_jobs *jobs, const char *dom)
{
    size_t n = 0;

    for (size_t i = 0; i < jobs->count; i++) {
        const struct catalog_job *a = &jobs->items[i];
        if (strcmp(a->kind, "claim") != 0 || strcmp(a->domain, dom) != 0)
            continue;
        n++;
        assert_true(a->epoch > 0);
        for (size_t j = i + 1; j < jobs->count; j++) {
            const struct catalog_job *b = &jobs->items[j];
            if (strcmp(b->kind, "claim") != 0 || strcmp(b->domain, dom) != 0)
                continue;
            if (a->epoch == b->epoch)
                fail_msg("domain %s: epoch %lld claimed twice", dom, (long long)a->epoch);
            if (a->progress_done < b->progress_total && b->progress_done < a->progress_total)
                fail_msg("domain %s: claims by %s and %s overlap", dom, a->host, b->host);
        }
    }
    return n;
}

/* Several processes claim the same few domains at once: at any moment at
 * most one holds a domain, and every claim has its own epoch. */
static void test_lease_claim_exclusive(void **state)
{
    struct catalog *cat = open_new(state);
    struct catalog_jobs *jobs = NULL;
    pid_t kids[CLAIMERS];
    size_t total = 0;
    int status;

    for (size_t k = 0; k < CLAIMERS; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0)
            claimer(state, k);
    }
    for (size_t k = 0; k < CLAIMERS; k++) {
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(catalog_job_list(cat, NULL, 0, 0, &jobs), 0);
    for (int d = 0; d < CLAIM_DOMAINS; d++) {
        char dom[32];
        struct catalog_lease l;
        size_t n;

        snprintf(dom, sizeof dom, "claimed%d", d);
        n = check_claims(jobs, dom);
        assert_true(n > 0);
        assert_int_equal(catalog_lease_get(cat, dom, &l), 0);
        assert_int_equal(l.epoch, (int64_t)n); /* every claim bumped it once */
        assert_null(l.host);
        catalog_lease_clear(&l);
        total += n;
    }
    print_message("%s: %zu claims of %d domains by %d processes, none overlapping\n",
                  fx_of(state)->name, total, CLAIM_DOMAINS, CLAIMERS);
    catalog_jobs_free(jobs);
    catalog_close(cat);
}

/* Host alpha claims a domain and stops heartbeating: its lease holds until
 * it expires; then beta marks alpha's running rows failed (and only then),
 * takes the lease over with a new epoch, and alpha can no longer renew. */
static void test_lease_expiry_takeover(void **state)
{
    struct catalog *a = open_as(state, "alpha"), *b = open_as(state, "beta");
    int64_t t0 = (int64_t)time(NULL), e1 = 0, e2 = 0;
    struct catalog_job job = {
        .kind = (char *)"backup", .domain = (char *)"web1", .state = CATALOG_JOB_RUNNING};
    struct catalog_backup bk = {.id = (char *)"web1-1",
                                .domain = (char *)"web1",
                                .level = CATALOG_LEVEL_COPY,
                                .status = CATALOG_STATUS_RUNNING,
                                .started = t0};
    struct catalog_backup *got;
    struct catalog_job *j;
    unsigned int marked = 99;
    int64_t id;

    assert_int_equal(catalog_host_register(a, NULL, "1", 30, t0), 0);
    assert_int_equal(catalog_host_register(b, NULL, "1", 30, t0), 0);
    assert_int_equal(catalog_lease_claim(a, "web1", t0, 30, &e1), 1);
    assert_int_equal(catalog_lease_claim(a, "web1", t0, 30, &e2), 0); /* one job per domain */
    job.epoch = e1;
    job.pid = bk.pid = dead_pid(); /* a pid means nothing to another host */
    assert_true((id = catalog_job_insert(a, &job)) > 0);
    assert_int_equal(catalog_backup_insert(a, &bk), 0);
    assert_int_equal(catalog_backup_fail_orphans(b, 0, &marked), 0);
    assert_int_equal(marked, 0);
    assert_int_equal(catalog_job_fail_orphans(b, 0, &marked), 0);
    assert_int_equal(marked, 0);

    /* alpha is silent; its lease is still valid at t0 + 20 */
    assert_int_equal(catalog_host_heartbeat(b, t0 + 20), 0);
    assert_int_equal(catalog_lease_claim(b, "web1", t0 + 20, 30, &e2), 0);
    assert_int_equal(catalog_host_reap(b, t0 + 20, 30, &marked), 0);
    assert_int_equal(marked, 0);
    assert_int_equal(catalog_lease_renew(a, "web1", e1, t0 + 25, 30), 0 + 1);
    /* renewed until t0 + 55: alpha stops heartbeating at t0 */
    assert_int_equal(catalog_host_reap(b, t0 + 50, 30, &marked), 0);
    assert_int_equal(marked, 0);
    assert_int_equal(catalog_host_reap(b, t0 + 60, 30, &marked), 0);
    assert_int_equal(marked, 2);
    j = catalog_job_get(b, id);
    assert_non_null(j);
    assert_int_equal(j->state, CATALOG_JOB_FAILED);
    assert_string_equal(j->host, "alpha");
    assert_non_null(strstr(j->error, "host 'alpha' stopped heartbeating"));
    assert_non_null(strstr(j->error, "by host 'beta'"));
    catalog_job_free(j);
    got = catalog_backup_get(b, "web1-1");
    assert_non_null(got);
    assert_int_equal(got->status, CATALOG_STATUS_FAILED);
    catalog_backup_free(got);
    assert_int_equal(catalog_host_reap(b, t0 + 61, 30, &marked), 0);
    assert_int_equal(marked, 0);

    assert_int_equal(catalog_lease_claim(b, "web1", t0 + 60, 30, &e2), 1);
    assert_int_equal(e2, e1 + 1);
    assert_int_equal(catalog_lease_renew(a, "web1", e1, t0 + 60, 30), 0);
    assert_int_equal(catalog_lease_renew(b, "web1", e2, t0 + 70, 30), 1);
    catalog_close(a);
    catalog_close(b);
}

/* A worker commits under its lease; once the lease was taken over, the
 * same worker's commit is refused and the backup stays uncommitted. */
static void test_lease_fencing(void **state)
{
    struct catalog *a = open_as(state, "alpha"), *b = open_as(state, "beta");
    int64_t now = (int64_t)time(NULL), e1 = 0, e2 = 0;
    struct catalog_backup *got;

    assert_int_equal(catalog_lease_claim(a, "web1", now, 60, &e1), 1);
    assert_int_equal(catalog_fence_set(a, "web1", e1), 0);
    insert_backup(a, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, now);
    assert_int_equal(catalog_backup_set_status(a, "web1-1", CATALOG_STATUS_COMMITTED, NULL), 0);

    /* alpha's lease expires (at now + 60) and beta claims it */
    assert_int_equal(catalog_lease_claim(b, "web1", now + 61, 60, &e2), 1);
    assert_int_equal(e2, e1 + 1);
    insert_backup(a, "web1-2", "web1", CATALOG_LEVEL_INC, "web1-1", now + 1);
    assert_int_equal(catalog_backup_set_status(a, "web1-2", CATALOG_STATUS_COMMITTED, NULL), -1);
    assert_error(VK_ERR_BUSY, "host 'alpha' lost the lease of domain 'web1'");
    assert_non_null(strstr(vk_error_message(), "held by host 'beta'"));
    got = catalog_backup_get(b, "web1-2");
    assert_non_null(got);
    assert_int_equal(got->status, CATALOG_STATUS_RUNNING);
    catalog_backup_free(got);
    /* failing is always allowed */
    assert_int_equal(catalog_backup_set_status(a, "web1-2", CATALOG_STATUS_FAILED, "fenced"), 0);

    /* a released lease fences too: the epoch is gone */
    assert_int_equal(catalog_lease_release(b, "web1", e2), 0);
    assert_int_equal(catalog_fence_set(b, "web1", e2), 0);
    insert_backup(b, "web1-3", "web1", CATALOG_LEVEL_INC, "web1-1", now + 2);
    assert_int_equal(catalog_backup_set_status(b, "web1-3", CATALOG_STATUS_COMMITTED, NULL), -1);
    assert_error(VK_ERR_BUSY, "now free");
    catalog_close(a);
    catalog_close(b);
}

/* A domain is one UUID across hosts; its moves are recorded and its host
 * follows them. */
static void test_domain_moves(void **state)
{
    struct catalog *a = open_as(state, "alpha");
    struct catalog_move m = {.domain = (char *)"web1",
                             .uuid = (char *)"u-1",
                             .from_host = (char *)"alpha",
                             .to_host = (char *)"beta",
                             .kind = (char *)"migrate",
                             .moved = 100};
    struct catalog_moves *moves = NULL;
    struct catalog_domain *dom;
    char *name;

    struct catalog *b = open_as(state, "beta");
    int64_t epoch;

    assert_int_equal(catalog_domain_check_uuid(a, "web1", "u-1"), 0); /* unknown name */
    assert_int_equal(catalog_domain_set(a, "web1", "u-1"), 0);
    assert_int_equal(catalog_domain_check_uuid(a, "web1", "u-2"), 0);   /* no host known */
    assert_int_equal(catalog_lease_claim(b, "web1", 10, 5, &epoch), 1); /* now on beta */
    assert_int_equal(catalog_domain_check_uuid(b, "web1", "u-2"), 0);   /* defined again */
    assert_int_equal(catalog_domain_check_uuid(a, "web1", "U-1"), 0);   /* case */
    assert_int_equal(catalog_domain_check_uuid(a, "web1", NULL), 0);
    assert_int_equal(catalog_domain_check_uuid(a, "web1", "u-2"), -1);
    assert_error(VK_ERR_INVALID, "domain 'web1' (UUID u-2) is not the domain 'web1'");
    assert_non_null(strstr(vk_error_message(), "last on host 'beta'"));
    assert_non_null(strstr(vk_error_message(), "rename one of them"));
    catalog_close(b);

    assert_int_equal(catalog_host_register(a, "qemu+unix:///session?socket=/a", "1", 30, 50), 0);
    name = catalog_host_by_uri(a, "qemu+unix:///session?socket=/a");
    assert_non_null(name);
    assert_string_equal(name, "alpha");
    free(name);
    assert_null(catalog_host_by_uri(a, "qemu:///nowhere"));
    assert_error(VK_ERR_NOT_FOUND, "qemu:///nowhere");

    assert_int_equal(catalog_move_record(a, &m), 0);
    m.from_host = (char *)"beta", m.to_host = (char *)"gamma", m.kind = (char *)"evacuate";
    m.moved = 200;
    assert_int_equal(catalog_move_record(a, &m), 0);
    m.domain = (char *)"db1", m.moved = 150;
    assert_int_equal(catalog_move_record(a, &m), 0);
    assert_int_equal(catalog_move_list(a, "web1", &moves), 0);
    assert_int_equal(moves->count, 2);
    assert_string_equal(moves->items[0].to_host, "beta");
    assert_string_equal(moves->items[1].kind, "evacuate");
    assert_string_equal(moves->items[1].uuid, "u-1");
    assert_int_equal(moves->items[1].moved, 200);
    catalog_moves_free(moves);
    assert_int_equal(catalog_move_list(a, NULL, &moves), 0);
    assert_int_equal(moves->count, 3);
    assert_string_equal(moves->items[1].domain, "db1");
    catalog_moves_free(moves);
    dom = catalog_domain_get(a, "web1");
    assert_non_null(dom);
    assert_string_equal(dom->host, "gamma");
    catalog_domain_free(dom);
    m.to_host = NULL;
    assert_int_equal(catalog_move_record(a, &m), -1);
    assert_error(VK_ERR_INVALID, "destination host");
    catalog_close(a);
}

/* ---- catalog migrate: one catalog into another ------------------------ */

/* A single-host SQLite catalog with a bit of everything. */
static struct catalog *import_source(const char *path)
{
    struct catalog *src = catalog_open(path, 0);
    struct catalog_disk vda = {(char *)"web1", (char *)"vda", (char *)"qcow2", 1u << 30};
    struct catalog_backup_disk bd = {(char *)"web1-1", (char *)"vda", (char *)"qcow2",
                                     1u << 30,         1000,          400};
    struct catalog_location loc = {.backup_id = (char *)"web1-1",
                                   .disk = (char *)"vda",
                                   .target = (char *)"local",
                                   .key = (char *)"web1/1/vda.tar",
                                   .size = 400,
                                   .sha256 = (char *)SHA_A,
                                   .created = 500};
    struct catalog_job job = {.kind = (char *)"backup",
                              .domain = (char *)"web1",
                              .state = CATALOG_JOB_SUCCEEDED,
                              .started = 100,
                              .pid = 7};
    struct catalog_job global = {.kind = (char *)"prune",
                                 .state = CATALOG_JOB_FAILED,
                                 .started = 101,
                                 .pid = 8,
                                 .error = (char *)"x"};
    struct catalog_drill drill = {.domain = (char *)"web1",
                                  .backup_id = (char *)"web1-1",
                                  .state = CATALOG_DRILL_OK,
                                  .started = 300,
                                  .pid = 9,
                                  .actual_seconds = 2.5,
                                  .estimate_seconds = 3};

    assert_non_null(src);
    assert_int_equal(catalog_domain_set(src, "web1", "uuid-web1"), 0);
    assert_int_equal(catalog_disk_set(src, &vda), 0);
    insert_backup(src, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
    insert_backup(src, "web1-2", "web1", CATALOG_LEVEL_INC, "web1-1", 200);
    insert_backup(src, "web1-3", "web1", CATALOG_LEVEL_INC, "web1-2", 250);
    insert_backup(src, "db1-1", "db1", CATALOG_LEVEL_COPY, NULL, 150);
    assert_int_equal(catalog_backup_set_status(src, "web1-1", CATALOG_STATUS_COMMITTED, NULL), 0);
    assert_int_equal(catalog_backup_set_status(src, "web1-2", CATALOG_STATUS_COMMITTED, NULL), 0);
    assert_int_equal(catalog_backup_set_status(src, "web1-3", CATALOG_STATUS_FAILED, "boom"), 0);
    assert_int_equal(catalog_backup_disk_add(src, &bd), 0);
    assert_int_equal(catalog_archive_add_location(src, &loc), 0);
    assert_int_equal(catalog_prune_mark(src, "web1-3", "retention"), 0);
    assert_true(catalog_job_insert(src, &job) > 0);
    assert_true(catalog_job_insert(src, &global) > 0);
    assert_true(catalog_drill_insert(src, &drill) > 0);
    assert_int_equal(catalog_throughput_record(src, "local", CATALOG_DIR_WRITE, 1000, 0.5, 50), 0);
    return src;
}

static void assert_same_backups(struct catalog *a, struct catalog *b)
{
    struct catalog_backups *x = NULL, *y = NULL;

    assert_int_equal(catalog_backup_list(a, NULL, CATALOG_LIST_WITH_XML, &x), 0);
    assert_int_equal(catalog_backup_list(b, NULL, CATALOG_LIST_WITH_XML, &y), 0);
    assert_int_equal(x->count, y->count);
    for (size_t i = 0; i < x->count; i++) {
        assert_string_equal(x->items[i].id, y->items[i].id);
        assert_string_equal(x->items[i].domain, y->items[i].domain);
        assert_int_equal(x->items[i].status, y->items[i].status);
        assert_int_equal(x->items[i].level, y->items[i].level);
        assert_int_equal(x->items[i].finished, y->items[i].finished);
        if (x->items[i].parent)
            assert_string_equal(x->items[i].parent, y->items[i].parent);
        else
            assert_null(y->items[i].parent);
    }
    catalog_backups_free(x);
    catalog_backups_free(y);
}

static void test_import(void **state)
{
    char dir[] = "/tmp/vk-import-XXXXXX", path[64];
    struct catalog_import_result res;
    struct catalog *src, *dst = open_new(state);
    struct catalog_locations *locs = NULL;
    struct catalog_jobs *jobs = NULL;
    struct catalog_drills *drills = NULL;
    struct catalog_domain *dom;
    struct catalog_rate rate;
    CLEANUP_STRV char **marks = NULL;
    size_t added;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/src.db", dir);
    src = import_source(path);
    /* the destination already has a backup of its own, which stays */
    insert_backup(dst, "other-1", "other", CATALOG_LEVEL_COPY, NULL, 10);
    assert_int_equal(catalog_import(dst, src, &res), 0);
    added = res.added;
    assert_int_equal(added, 14); /* 2 domains, 1 disk, 4 backups, 1 + 1 + 1 + 2 + 1 + 1 */
    assert_int_equal(res.known, 0);
    catalog_import_result_clear(&res);
    assert_true(has_backup(dst, "other-1"));
    assert_int_equal(catalog_backup_delete(dst, "other-1", 0), 0);
    assert_same_backups(src, dst);
    dom = catalog_domain_get(dst, "web1");
    assert_non_null(dom);
    assert_string_equal(dom->uuid, "uuid-web1");
    catalog_domain_free(dom);
    assert_int_equal(catalog_archive_list(dst, NULL, NULL, &locs), 0);
    assert_int_equal(locs->count, 1);
    assert_string_equal(locs->items[0].sha256, SHA_A);
    catalog_locations_free(locs);
    assert_int_equal(catalog_job_list(dst, NULL, 0, 0, &jobs), 0);
    assert_int_equal(jobs->count, 2);
    catalog_jobs_free(jobs);
    assert_int_equal(catalog_drill_list(dst, "web1", NULL, CATALOG_DRILL_LIST_OK, 0, &drills), 0);
    assert_int_equal(drills->count, 1);
    assert_true(drills->items[0].actual_seconds == 2.5);
    catalog_drills_free(drills);
    assert_int_equal(catalog_prune_list(dst, NULL, &marks), 0);
    assert_string_equal(marks[0], "web1-3");
    assert_int_equal(catalog_throughput_estimate(dst, "local", CATALOG_DIR_WRITE, &rate), 0);
    assert_int_equal(rate.samples, 1);
    assert_true(rate.bytes_per_second == 2000);

    /* again: nothing new */
    assert_int_equal(catalog_import(dst, src, &res), 0);
    assert_int_equal(res.added, 0);
    assert_int_equal(res.known, added);
    catalog_import_result_clear(&res);

    /* a conflicting row: refused as a whole, each conflict named */
    insert_backup(src, "new-1", "new", CATALOG_LEVEL_COPY, NULL, 400);
    insert_backup(dst, "web1-4", "web1", CATALOG_LEVEL_FULL, NULL, 500);
    insert_backup(src, "web1-4", "web1", CATALOG_LEVEL_COPY, NULL, 500);
    assert_int_equal(catalog_import(dst, src, &res), -1);
    assert_error(VK_ERR_INVALID, "backups 'web1-4': column 3 is 'full' in the destination but "
                                 "'copy' in the source");
    assert_non_null(strstr(vk_error_message(), "nothing was copied"));
    assert_int_equal(vk_strv_len(res.conflicts), 1);
    catalog_import_result_clear(&res);
    assert_false(has_backup(dst, "new-1"));

    catalog_close(src);
    catalog_close(dst);
    unlink(path);
    snprintf(path, sizeof path, "%s/src.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/src.db-shm", dir);
    unlink(path);
    rmdir(dir);
}

int catalog_contract_run(const char *suite_name, struct catalog_fixture *fx)
{
#define T(f) cmocka_unit_test_prestate_setup_teardown(f, ctx_setup, ctx_teardown, fx)
    const struct CMUnitTest tests[] = {
        T(test_create_and_reopen),
        T(test_migrate_from_v1),
        T(test_newer_version_refused),
        T(test_foreign_database_refused),
        T(test_domains_and_disks),
        T(test_backup_crud),
        T(test_backup_disks_and_locations),
        T(test_jobs),
        T(test_throughput),
        T(test_drills),
        T(test_fail_orphans),
        T(test_fail_orphans_pid_reused),
        T(test_list_unreadable_row),
        T(test_transactions),
        T(test_two_connections),
        T(test_concurrent_first_open),
        T(test_concurrent_writers),
        T(test_writer_killed_mid_transaction),
        T(test_connection_dropped_then_retry),
        T(test_hosts_register),
        T(test_lease_claim_exclusive),
        T(test_lease_expiry_takeover),
        T(test_lease_fencing),
        T(test_domain_moves),
        T(test_import),
    };
#undef T
    struct CMUnitTest run[VK_ARRAY_SIZE(tests)];
    size_t n = 0;

    /* Only a backend with connections can lose one; SQLite's writer that
     * goes away is the killed process above. */
    for (size_t i = 0; i < VK_ARRAY_SIZE(tests); i++) {
        if (tests[i].test_func == test_connection_dropped_then_retry && !fx->drop_connections)
            continue;
        run[n++] = tests[i];
    }
    return _cmocka_run_group_tests(suite_name, run, n, NULL, NULL);
}
