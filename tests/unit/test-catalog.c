/* Unit tests for the SQLite catalog: real files in a temporary directory.
 * Open, create, migrate, refuse, and every record type's CRUD. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

/* The version 1 schema exactly as virtkeep 0.1 wrote it, frozen here so
 * that the upgrade path is tested against a file made without the code. */
static const char v1_schema[] =
    "CREATE TABLE domains (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uuid TEXT);"
    "CREATE TABLE disks (domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,"
    "  target TEXT NOT NULL, format TEXT, virtual_size INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (domain_id, target));"
    "CREATE TABLE backups (id TEXT PRIMARY KEY,"
    "  domain_id INTEGER NOT NULL REFERENCES domains(id),"
    "  level TEXT NOT NULL CHECK (level IN ('full','inc','diff','copy')),"
    "  checkpoint TEXT, parent TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('running','committed','failed')),"
    "  error TEXT, started INTEGER NOT NULL, finished INTEGER NOT NULL DEFAULT 0,"
    "  bytes_read INTEGER NOT NULL DEFAULT 0, bytes_written INTEGER NOT NULL DEFAULT 0,"
    "  bytes_stored INTEGER NOT NULL DEFAULT 0, checkpoint_xml TEXT, domain_xml TEXT);"
    "CREATE INDEX backups_domain ON backups(domain_id, started);"
    "CREATE TABLE backup_disks ("
    "  backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,"
    "  target TEXT NOT NULL, format TEXT, virtual_size INTEGER NOT NULL DEFAULT 0,"
    "  bytes_read INTEGER NOT NULL DEFAULT 0, bytes_stored INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (backup_id, target));"
    "CREATE TABLE archive_locations ("
    "  backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,"
    "  disk TEXT, target TEXT NOT NULL, object_key TEXT NOT NULL,"
    "  size INTEGER NOT NULL DEFAULT 0, sha256 TEXT, created INTEGER NOT NULL,"
    "  UNIQUE (backup_id, target, object_key));"
    "CREATE INDEX archive_locations_target ON archive_locations(target);"
    "PRAGMA application_id = 1447773012;" /* 0x564b4354 */
    "PRAGMA user_version = 1;";

#define SHA_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define SHA_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

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

static void test_migrate_from_v1(void **state)
{
    CLEANUP_FREE char *path = tmp_path("v1.db");
    struct catalog_backup *b;
    struct catalog_locations *locs = NULL;
    struct catalog_job job = {.kind = (char *)"backup", .domain = (char *)"web1"};
    struct catalog_rate rate;
    struct catalog *cat;
    int64_t id;

    (void)state;
    raw_exec(path, v1_schema);
    raw_exec(path, "INSERT INTO domains(name, uuid) VALUES('web1', 'u-1');"
                   "INSERT INTO backups(id, domain_id, level, checkpoint, status, started, "
                   "finished, bytes_read, domain_xml) VALUES('web1-1', 1, 'full', 'vk-1', "
                   "'committed', 1000, 1010, 4096, '<domain/>');"
                   "INSERT INTO archive_locations(backup_id, disk, target, object_key, size, "
                   "sha256, created) VALUES('web1-1', 'vda', 'local', 'web1/1/vda.tar', 77, "
                   "'" SHA_A "', 1011);");

    cat = catalog_open(path, CATALOG_OPEN_EXISTING);
    if (!cat)
        fail_msg("open v1: %s", vk_error_message());
    assert_int_equal(catalog_schema_version(cat), CATALOG_SCHEMA_VERSION);
    /* The v1 rows survived, and the new column has its default. */
    b = catalog_backup_get(cat, "web1-1");
    assert_non_null(b);
    assert_string_equal(b->domain, "web1");
    assert_int_equal(b->level, CATALOG_LEVEL_FULL);
    assert_int_equal(b->status, CATALOG_STATUS_COMMITTED);
    assert_int_equal(b->bytes_read, 4096);
    assert_string_equal(b->domain_xml, "<domain/>");
    assert_int_equal(b->pid, 0);
    catalog_backup_free(b);
    assert_int_equal(catalog_archive_list(cat, "web1-1", NULL, &locs), 0);
    assert_int_equal(locs->count, 1);
    assert_string_equal(locs->items[0].sha256, SHA_A);
    catalog_locations_free(locs);
    /* The v2 tables work. */
    id = catalog_job_insert(cat, &job);
    assert_true(id > 0);
    assert_int_equal(catalog_throughput_record(cat, "local", CATALOG_DIR_WRITE, 100, 1.0, 5), 0);
    assert_int_equal(catalog_throughput_estimate(cat, "local", CATALOG_DIR_WRITE, &rate), 0);
    assert_int_equal(rate.samples, 1);
    catalog_close(cat);
    assert_has_tables(path);
}

static void test_newer_version_refused(void **state)
{
    CLEANUP_FREE char *path = tmp_path("future.db");
    CLEANUP_FREE char *bump = vk_asprintf("PRAGMA user_version = %d", CATALOG_SCHEMA_VERSION + 1);
    CLEANUP_FREE char *version = NULL;

    (void)state;
    catalog_close(open_new("future.db"));
    raw_exec(path, bump);
    assert_null(catalog_open(path, 0));
    assert_error(VK_ERR_UNSUPPORTED, path);
    assert_non_null(strstr(vk_error_message(), "newer"));
    /* The file was left alone. */
    version = raw_text(path, "PRAGMA user_version");
    assert_int_equal(parse_num(version), CATALOG_SCHEMA_VERSION + 1);
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

static void test_domains_and_disks(void **state)
{
    struct catalog *cat = open_new("dom.db");
    struct catalog_domains *doms = NULL;
    struct catalog_disks *disks = NULL;
    struct catalog_domain *dom;
    struct catalog_disk vda = {(char *)"web1", (char *)"vda", (char *)"qcow2", 1u << 30};
    struct catalog_disk vdb = {(char *)"web1", (char *)"vdb", (char *)"raw", 4096};

    (void)state;
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
    struct catalog *cat = open_new("backups.db");
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

    (void)state;
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
    struct catalog *cat = open_new("locations.db");
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

    (void)state;
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
    struct catalog *cat = open_new("jobs.db");
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

    (void)state;
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
    struct catalog *cat = open_new("rate.db");
    struct catalog_rate rate;

    (void)state;
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
    struct catalog *cat = open_new("orphans.db");
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

    (void)state;
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
    struct catalog *cat = open_new("reused.db");
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

    (void)state;
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
    CLEANUP_FREE char *path = tmp_path("unreadable.db");
    struct catalog *cat = open_new("unreadable.db");
    struct catalog_backups no_backups, *backups = &no_backups;
    struct catalog_jobs no_jobs, *jobs = &no_jobs;
    struct catalog_job job = {.kind = (char *)"backup", .state = CATALOG_JOB_RUNNING};

    (void)state;
    insert_backup(cat, "web1-1", "web1", CATALOG_LEVEL_FULL, NULL, 100);
    insert_backup(cat, "web1-2", "web1", CATALOG_LEVEL_INC, "web1-1", 200);
    insert_backup(cat, "web1-3", "web1", CATALOG_LEVEL_INC, "web1-2", 300);
    for (int i = 0; i < 3; i++)
        assert_true(catalog_job_insert(cat, &job) > 0);
    raw_exec(path, "PRAGMA ignore_check_constraints = ON;"
                   "UPDATE backups SET status = 'lost' WHERE id = 'web1-3';"
                   "UPDATE jobs SET state = 'lost' WHERE id = 1;");

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
    struct catalog *cat = open_new("tx.db");
    struct catalog_backup *b;

    (void)state;
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
    CLEANUP_FREE char *path = tmp_path("shared.db");
    struct catalog *a = catalog_open(path, 0);
    struct catalog *b = catalog_open(path, CATALOG_OPEN_EXISTING);
    struct catalog_backup *got;

    (void)state;
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

/* Several processes opening a fresh file at once: each migration step is
 * applied exactly once, and every opener succeeds. */
static void test_concurrent_first_open(void **state)
{
    CLEANUP_FREE char *path = tmp_path("race/catalog.db");
    struct catalog_backups *list = NULL;
    struct catalog *cat;
    pid_t kids[4];
    int status;

    (void)state;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_existing_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_random_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_sqlite_file, setup, teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_backup_id_make),
        cmocka_unit_test_setup_teardown(test_domains_and_disks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_disks_and_locations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_orphans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_orphans_pid_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_unreadable_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
