/* Unit tests for what only the SQLite catalog file has: real files in a
 * temporary directory, their modes, WAL, empty, damaged and foreign files.
 * Everything a catalog does whatever its backend (records, transactions,
 * concurrency, migrations) is in the contract suite,
 * tests/lib/catalog-contract.c, run on SQLite by test-catalog-sqlite.c. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <sqlite3.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

static char tmpdir[] = "/tmp/test-catalog-XXXXXX";

static char *tmp_path(const char *name)
{
    char *p = vk_asprintf("%s/%s", tmpdir, name);

    assert_non_null(p);
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    vk_error_clear();
    return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Run SQL on a file with plain SQLite, outside the catalog code. */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("raw SQL failed: %s", err);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static char *raw_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    char *out = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
        out = vk_strdup((const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

static unsigned long long parse_num(const char *s)
{
    unsigned long long v;

    assert_non_null(s);
    assert_int_equal(vk_parse_uint(s, UINT32_MAX, &v), 0);
    return v;
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void assert_error(enum vk_error_code code, const char *needle)
{
    assert_int_equal(vk_error_code(), code);
    assert_non_null(vk_error_message());
    if (!strstr(vk_error_message(), needle))
        fail_msg("error '%s' does not contain '%s'", vk_error_message(), needle);
}

static struct catalog *open_new(const char *name)
{
    CLEANUP_FREE char *path = tmp_path(name);
    struct catalog *cat = catalog_open(path, 0);

    if (!cat)
        fail_msg("catalog_open: %s", vk_error_message());
    return cat;
}

/* ---- open, create, permissions, WAL ---------------------------------- */

static void test_create_and_reopen(void **state)
{
    CLEANUP_FREE char *dir = tmp_path("a");
    CLEANUP_FREE char *sub = tmp_path("a/b");
    CLEANUP_FREE char *path = tmp_path("a/b/catalog.db");
    CLEANUP_FREE char *wal = tmp_path("a/b/catalog.db-wal");
    struct catalog_domain *dom;
    struct catalog *cat;
    mode_t old = umask(022);

    (void)state;
    cat = catalog_open(path, 0);
    umask(old);
    assert_non_null(cat);
    assert_string_equal(catalog_path(cat), path);
    assert_int_equal(catalog_schema_version(cat), CATALOG_SCHEMA_VERSION);
    assert_int_equal(mode_of(dir), 0700);
    assert_int_equal(mode_of(sub), 0700);
    assert_int_equal(mode_of(path), 0600);
    assert_int_equal(catalog_domain_set(cat, "web1", "8f4a0c2e-0000-4000-8000-000000000001"), 0);
    /* WAL mode: the write went to the -wal file, which is private too. */
    assert_int_equal(mode_of(wal), 0600);
    catalog_close(cat);

    cat = catalog_open(path, CATALOG_OPEN_EXISTING);
    assert_non_null(cat);
    dom = catalog_domain_get(cat, "web1");
    assert_non_null(dom);
    assert_string_equal(dom->uuid, "8f4a0c2e-0000-4000-8000-000000000001");
    catalog_domain_free(dom);
    catalog_close(cat);
    catalog_close(NULL);
}

static void test_open_existing_missing(void **state)
{
    CLEANUP_FREE char *path = tmp_path("nope/catalog.db");
    CLEANUP_FREE char *dir = tmp_path("nope");
    struct stat st;

    (void)state;
    assert_null(catalog_open(path, CATALOG_OPEN_EXISTING));
    assert_error(VK_ERR_NOT_FOUND, path);
    /* Nothing was created. */
    assert_int_equal(stat(dir, &st), -1);
    assert_null(catalog_open("", 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    /* A directory is not a catalog. */
    assert_null(catalog_open(tmpdir, 0));
    assert_error(VK_ERR_INVALID, "not a regular file");
}

static void test_wal_mode(void **state)
{
    CLEANUP_FREE char *path = tmp_path("wal.db");
    CLEANUP_FREE char *mode = NULL;
    struct catalog *cat = open_new("wal.db");

    (void)state;
    mode = raw_text(path, "PRAGMA journal_mode");
    assert_non_null(mode);
    assert_string_equal(mode, "wal");
    catalog_close(cat);
}

/* ---- migrations ------------------------------------------------------ */

static void assert_has_tables(const char *path)
{
    static const char *const tables[] = {"domains",           "disks", "backups",   "backup_disks",
                                         "archive_locations", "jobs",  "throughput"};

    for (size_t i = 0; i < VK_ARRAY_SIZE(tables); i++) {
        CLEANUP_FREE char *sql = vk_asprintf(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='%s'", tables[i]);
        CLEANUP_FREE char *name = raw_text(path, sql);
        if (!name)
            fail_msg("table %s is missing", tables[i]);
    }
}

static void test_migrate_empty_file(void **state)
{
    CLEANUP_FREE char *path = tmp_path("empty.db");
    CLEANUP_FREE char *version = NULL;
    int fd;
    struct catalog *cat;

    (void)state;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    cat = catalog_open(path, CATALOG_OPEN_EXISTING);
    assert_non_null(cat);
    assert_int_equal(catalog_schema_version(cat), CATALOG_SCHEMA_VERSION);
    catalog_close(cat);
    assert_has_tables(path);
    version = raw_text(path, "PRAGMA user_version");
    assert_int_equal(parse_num(version), CATALOG_SCHEMA_VERSION);
}

/* ---- damaged and foreign files --------------------------------------- */

static void write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(vk_write_all(fd, buf, len), 0);
    assert_int_equal(close(fd), 0);
}

static void test_corrupt_random_bytes(void **state)
{
    CLEANUP_FREE char *path = tmp_path("random.db");
    unsigned char buf[8192], after[8192];
    unsigned int seed = 42;
    int fd;

    (void)state;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)rand_r(&seed);
    write_file(path, buf, sizeof buf);
    assert_null(catalog_open(path, 0));
    assert_error(VK_ERR_CORRUPT, path);
    /* A file that is not ours is never rewritten. */
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(vk_pread_all(fd, after, sizeof after, 0), (ssize_t)sizeof after);
    close(fd);
    assert_memory_equal(buf, after, sizeof buf);

    /* The SQLite magic followed by garbage is no better. */
    memcpy(buf, "SQLite format 3", 16);
    write_file(path, buf, sizeof buf);
    assert_null(catalog_open(path, 0));
    assert_error(VK_ERR_CORRUPT, path);
}

static void fill_catalog(struct catalog *cat, int n)
{
    CLEANUP_FREE char *xml = vk_malloc(2000);

    assert_non_null(xml);
    memset(xml, 'x', 1999);
    xml[1999] = '\0';
    for (int i = 0; i < n; i++) {
        CLEANUP_FREE char *id = vk_asprintf("web1-%04d", i);
        struct catalog_backup b = {.id = id,
                                   .domain = (char *)"web1",
                                   .level = CATALOG_LEVEL_COPY,
                                   .status = CATALOG_STATUS_COMMITTED,
                                   .started = 1000 + i,
                                   .domain_xml = xml};
        assert_int_equal(catalog_backup_insert(cat, &b), 0);
    }
}

static void test_corrupt_truncated(void **state)
{
    CLEANUP_FREE char *path = tmp_path("trunc.db");
    CLEANUP_FREE char *wal = tmp_path("trunc.db-wal");
    struct catalog *cat = open_new("trunc.db");
    struct stat st;

    (void)state;
    fill_catalog(cat, 200);
    catalog_close(cat);
    /* The last close checkpointed the WAL into the main file. */
    assert_int_equal(stat(wal, &st), -1);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 100000);

    assert_int_equal(truncate(path, st.st_size / 2), 0);
    assert_null(catalog_open(path, 0));
    assert_error(VK_ERR_CORRUPT, path);

    assert_int_equal(truncate(path, 50), 0);
    assert_null(catalog_open(path, 0));
    assert_error(VK_ERR_CORRUPT, path);
}

/* A damaged page inside a file of the right size: the integrity check at
 * open catches it, rather than some later query. */
static void test_corrupt_page(void **state)
{
    CLEANUP_FREE char *path = tmp_path("page.db");
    struct catalog *cat = open_new("page.db");
    unsigned char junk[4096];
    unsigned int seed = 7;
    struct stat st;
    int fd;

    (void)state;
    fill_catalog(cat, 200);
    catalog_close(cat);
    assert_int_equal(stat(path, &st), 0);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)rand_r(&seed);
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, sizeof junk, (st.st_size / 2) & ~(off_t)4095),
                     (ssize_t)sizeof junk);
    close(fd);
    assert_null(catalog_open(path, 0));
    assert_error(VK_ERR_CORRUPT, path);
}

static void test_foreign_sqlite_file(void **state)
{
    CLEANUP_FREE char *path = tmp_path("foreign.db");

    (void)state;
    raw_exec(path, "CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES('la');");
    assert_null(catalog_open(path, 0));
    assert_error(VK_ERR_CORRUPT, "not a virtkeep catalog");
    assert_non_null(strstr(vk_error_message(), path));
}

/* ---- records --------------------------------------------------------- */

static void test_names(void **state)
{
    enum catalog_level level;
    enum catalog_status status;
    enum catalog_job_state js;

    (void)state;
    for (int i = CATALOG_LEVEL_FULL; i <= CATALOG_LEVEL_AUTO; i++) {
        assert_int_equal(catalog_level_parse(catalog_level_name(i), &level), 0);
        assert_int_equal(level, i);
    }
    for (int i = CATALOG_STATUS_RUNNING; i <= CATALOG_STATUS_FAILED; i++) {
        assert_int_equal(catalog_status_parse(catalog_status_name(i), &status), 0);
        assert_int_equal(status, i);
    }
    for (int i = CATALOG_JOB_QUEUED; i <= CATALOG_JOB_CANCELLED; i++) {
        assert_int_equal(catalog_job_state_parse(catalog_job_state_name(i), &js), 0);
        assert_int_equal(js, i);
    }
    assert_string_equal(catalog_level_name(CATALOG_LEVEL_DIFF), "diff");
    assert_string_equal(catalog_direction_name(CATALOG_DIR_READ), "read");
    assert_int_equal(catalog_level_parse("incremental", &level), -1);
    assert_error(VK_ERR_INVALID, "'incremental'");
}

static void test_backup_id_make(void **state)
{
    CLEANUP_FREE char *id = catalog_backup_id_make("web1", 1795914123);
    CLEANUP_FREE char *later = catalog_backup_id_make("web1", 1795914124);

    (void)state;
    assert_string_equal(id, "web1-20261129T010203Z");
    assert_true(strcmp(id, later) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_existing_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_random_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_sqlite_file, setup, teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_backup_id_make),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
