/* The catalog contract suite (tests/lib/catalog-contract.c) on the SQLite
 * backend: each test gets a fresh file in a directory that does not exist
 * yet.  What only an SQLite file can show (modes, WAL, damaged files) is in
 * test-catalog.c. */
#include <config.h>

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

#include "common/util.h"
#include "tests/lib/catalog-contract.h"

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

static char tmpdir[] = "/tmp/test-catalog-sqlite-XXXXXX";
static unsigned int made;

static char *lite_fresh(void *opaque)
{
    (void)opaque;
    return vk_asprintf("%s/%u/catalog.db", tmpdir, ++made);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void lite_forget(void *opaque, const char *url)
{
    char *dir = vk_strdup(url);

    (void)opaque;
    if (!dir)
        return;
    *strrchr(dir, '/') = '\0';
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static int lite_raw_exec(void *opaque, const char *url, const char *sql)
{
    char *dir = vk_strdup(url);
    sqlite3 *db = NULL;
    char *err = NULL;
    int rc;

    (void)opaque;
    if (!dir)
        return -1;
    *strrchr(dir, '/') = '\0';
    mkdir(dir, 0700);
    free(dir);
    if (sqlite3_open(url, &db) != SQLITE_OK) {
        print_error("cannot open %s: %s\n", url, sqlite3_errmsg(db));
        sqlite3_close(db);
        return -1;
    }
    rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", url, err);
    sqlite3_free(err);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

int main(void)
{
    struct catalog_fixture fx = {
        .name = "sqlite",
        .fresh = lite_fresh,
        .forget = lite_forget,
        .raw_exec = lite_raw_exec,
        .v1_schema = v1_schema,
        .set_version = "PRAGMA user_version = ",
        .drop_checks = "PRAGMA ignore_check_constraints = ON;",
    };
    int failed;

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    failed = catalog_contract_run("catalog contract: sqlite", &fx);
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? 1 : 0;
}
