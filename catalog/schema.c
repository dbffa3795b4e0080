/* virtkeep - catalog schema and its migrations, one description for both
 * backends.
 *
 * Each backend keeps the version and the application id its own way (SQLite:
 * PRAGMA user_version and application_id; PostgreSQL: the table
 * virtkeep_schema) behind schema_read/schema_write.  MIGRATIONS[i] takes a
 * catalog from version i to version i + 1, in one transaction with the
 * version bump, so that a crash leaves the catalog at one version or the
 * next, never between (PostgreSQL's DDL is transactional too).  Steps are
 * only ever appended: a released step never changes.  They are written with
 * SQLite's type names, which the PostgreSQL backend maps (catalog-int.h).
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>

#include "catalog/catalog-int.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

/* Version 1: domains, disks, backups and where their archives live. */
static const char schema_v1[] =
    "CREATE TABLE domains ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  uuid TEXT);"
    "CREATE TABLE disks ("
    "  domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,"
    "  target TEXT NOT NULL,"
    "  format TEXT,"
    "  virtual_size INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (domain_id, target));"
    "CREATE TABLE backups ("
    "  id TEXT PRIMARY KEY,"
    "  domain_id INTEGER NOT NULL REFERENCES domains(id),"
    "  level TEXT NOT NULL CHECK (level IN ('full','inc','diff','copy')),"
    "  checkpoint TEXT,"
    "  parent TEXT," /* not a foreign key: see catalog.h */
    "  status TEXT NOT NULL CHECK (status IN ('running','committed','failed')),"
    "  error TEXT,"
    "  started INTEGER NOT NULL,"
    "  finished INTEGER NOT NULL DEFAULT 0,"
    "  bytes_read INTEGER NOT NULL DEFAULT 0,"
    "  bytes_written INTEGER NOT NULL DEFAULT 0,"
    "  bytes_stored INTEGER NOT NULL DEFAULT 0,"
    "  checkpoint_xml TEXT,"
    "  domain_xml TEXT);"
    "CREATE INDEX backups_domain ON backups(domain_id, started);"
    "CREATE TABLE backup_disks ("
    "  backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,"
    "  target TEXT NOT NULL,"
    "  format TEXT,"
    "  virtual_size INTEGER NOT NULL DEFAULT 0,"
    "  bytes_read INTEGER NOT NULL DEFAULT 0,"
    "  bytes_stored INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (backup_id, target));"
    "CREATE TABLE archive_locations ("
    "  backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,"
    "  disk TEXT,"
    "  target TEXT NOT NULL,"
    "  object_key TEXT NOT NULL,"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  sha256 TEXT,"
    "  created INTEGER NOT NULL,"
    "  UNIQUE (backup_id, target, object_key));"
    "CREATE INDEX archive_locations_target ON archive_locations(target);";

/* Version 2: the pid of a running backup (startup recovery), jobs, and
 * measured throughput for the planner. */
static const char schema_v2[] =
    "ALTER TABLE backups ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX backups_status ON backups(status);"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL CHECK (kind <> ''),"
    "  domain TEXT,"
    "  target TEXT,"
    "  backup_id TEXT,"
    "  state TEXT NOT NULL"
    "    CHECK (state IN ('queued','running','succeeded','failed','cancelled')),"
    "  pid INTEGER NOT NULL DEFAULT 0,"
    "  started INTEGER NOT NULL,"
    "  finished INTEGER NOT NULL DEFAULT 0,"
    "  progress_done INTEGER NOT NULL DEFAULT 0,"
    "  progress_total INTEGER NOT NULL DEFAULT 0,"
    "  estimate_seconds REAL NOT NULL DEFAULT 0,"
    "  elapsed_seconds REAL NOT NULL DEFAULT 0,"
    "  error TEXT);"
    "CREATE INDEX jobs_domain ON jobs(domain, id);"
    "CREATE TABLE throughput ("
    "  id INTEGER PRIMARY KEY,"
    "  target TEXT NOT NULL,"
    "  direction TEXT NOT NULL CHECK (direction IN ('read','write')),"
    "  bytes INTEGER NOT NULL CHECK (bytes >= 0),"
    "  seconds REAL NOT NULL CHECK (seconds > 0),"
    "  measured INTEGER NOT NULL);"
    "CREATE INDEX throughput_target ON throughput(target, direction, measured);";

/* Version 3: the measured downtime of a migration job (milliseconds,
 * -1 when not measured). */
static const char schema_v3[] =
    "ALTER TABLE jobs ADD COLUMN downtime_ms INTEGER NOT NULL DEFAULT -1;";

/* Version 4: prune intents.  A backup that a prune is about to delete is
 * marked here first (one transaction for the whole set), so that a prune
 * killed while deleting objects is finished by the next one.  The mark goes
 * away with the backup row. */
static const char schema_v4[] =
    "CREATE TABLE prune_intents ("
    "  backup_id TEXT PRIMARY KEY REFERENCES backups(id) ON DELETE CASCADE,"
    "  reason TEXT,"
    "  marked INTEGER NOT NULL);";

/* Version 5: DR drills (src/drill.h).  One row per drill: the backup it
 * restored, the targets it read (comma-separated names), the estimate made
 * before it started and where that estimate came from, the measured restore
 * time and bytes read, and whether the restored images verified.  The
 * restore estimator learns from the successful rows (src/plan.h). */
static const char schema_v5[] =
    "CREATE TABLE drills ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER NOT NULL DEFAULT 0,"
    "  domain TEXT NOT NULL CHECK (domain <> ''),"
    "  backup_id TEXT,"
    "  targets TEXT,"
    "  state TEXT NOT NULL CHECK (state IN ('running','ok','failed','cancelled')),"
    "  pid INTEGER NOT NULL DEFAULT 0,"
    "  started INTEGER NOT NULL,"
    "  finished INTEGER NOT NULL DEFAULT 0,"
    "  estimate_seconds REAL NOT NULL DEFAULT 0,"
    "  estimate_source TEXT,"
    "  actual_seconds REAL NOT NULL DEFAULT 0,"
    "  bytes_read INTEGER NOT NULL DEFAULT 0 CHECK (bytes_read >= 0),"
    "  disk_bytes INTEGER NOT NULL DEFAULT 0 CHECK (disk_bytes >= 0),"
    "  error TEXT);"
    "CREATE INDEX drills_domain ON drills(domain, started);";

/* Version 6: the start time of the process that runs a backup, a job or
 * a drill (field 22 of /proc/PID/stat, common/proc.h), next to its pid: a
 * pid alone does not name a process once it has been reused.  0: unknown
 * (rows of older versions). */
static const char schema_v6[] =
    "ALTER TABLE backups ADD COLUMN pid_start INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN pid_start INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE drills ADD COLUMN pid_start INTEGER NOT NULL DEFAULT 0;";

/* Version 7: several hosts on one catalog (catalog.h, "Hosts and
 * leases").  hosts: each virtkeepd's host, its libvirt URI, version and
 * heartbeat.  leases: who may run jobs of a domain now, until when, and the
 * fencing token (epoch) of that claim.  The host of each job, backup and
 * drill row (orphans are only judged by their own host), and the epoch a
 * job ran under; the host a domain last ran on; moves: migrations and
 * evacuations between hosts. */
static const char schema_v7[] = "CREATE TABLE hosts ("
                                "  name TEXT PRIMARY KEY CHECK (name <> ''),"
                                "  uri TEXT,"
                                "  version TEXT,"
                                "  started INTEGER NOT NULL DEFAULT 0,"
                                "  heartbeat INTEGER NOT NULL DEFAULT 0,"
                                "  lease_seconds INTEGER NOT NULL DEFAULT 0);"
                                "CREATE TABLE leases ("
                                "  domain TEXT PRIMARY KEY CHECK (domain <> ''),"
                                "  host TEXT,"
                                "  epoch INTEGER NOT NULL DEFAULT 0,"
                                "  expires INTEGER NOT NULL DEFAULT 0);"
                                "CREATE INDEX leases_host ON leases(host);"
                                "ALTER TABLE jobs ADD COLUMN host TEXT;"
                                "ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
                                "ALTER TABLE backups ADD COLUMN host TEXT;"
                                "ALTER TABLE drills ADD COLUMN host TEXT;"
                                "ALTER TABLE domains ADD COLUMN host TEXT;"
                                "CREATE INDEX jobs_host ON jobs(host, state);"
                                "CREATE INDEX backups_host ON backups(host, status);"
                                "CREATE TABLE moves ("
                                "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                "  domain TEXT NOT NULL,"
                                "  uuid TEXT,"
                                "  from_host TEXT,"
                                "  to_host TEXT NOT NULL,"
                                "  kind TEXT NOT NULL,"
                                "  moved INTEGER NOT NULL);"
                                "CREATE INDEX moves_domain ON moves(domain, moved);";

static const char *const migrations[] = {
    schema_v1, schema_v2, schema_v3, schema_v4, schema_v5, schema_v6, schema_v7,
};

_Static_assert(VK_ARRAY_SIZE(migrations) == CATALOG_SCHEMA_VERSION,
               "one migration step per schema version");

/* Refuse databases that are not ours, and catalogs from the future. */
static int check_identity(struct catalog *cat, const struct catalog_schema_state *st)
{
    if (st->app_id != CATALOG_APPLICATION_ID &&
        (st->app_id != 0 || st->version != 0 || st->objects != 0)) {
        vk_error(VK_ERR_CORRUPT, "catalog '%s' is %s database but not a virtkeep catalog",
                 cat->path, cat->be == &catalog_backend_pg ? "a PostgreSQL" : "an SQLite");
        return -1;
    }
    if (st->version > CATALOG_SCHEMA_VERSION) {
        vk_error(VK_ERR_UNSUPPORTED,
                 "catalog '%s' has schema version %lld, newer than this virtkeep supports (%d): "
                 "upgrade virtkeep",
                 cat->path, (long long)st->version, CATALOG_SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

static int apply_step(struct catalog *cat, int64_t version)
{
    if (cat->be->exec_schema(cat, migrations[version]) == -1) {
        vk_error_prefix("cannot upgrade to schema version %lld", (long long)version + 1);
        return -1;
    }
    return cat->be->schema_write(cat, version + 1);
}

/* One transaction per step.  The state is read again under the write
 * lock: another process may have migrated the file meanwhile. */
static int migrate_one(struct catalog *cat, int64_t *version)
{
    struct catalog_schema_state st;

    if (catalog_begin(cat) == -1)
        return -1;
    if (cat->be->schema_read(cat, &st) == -1 || check_identity(cat, &st) == -1)
        goto fail;
    *version = st.version;
    if (*version < CATALOG_SCHEMA_VERSION) {
        if (apply_step(cat, *version) == -1)
            goto fail;
        vk_debug("catalog '%s' upgraded to schema version %lld", cat->path,
                 (long long)*version + 1);
        (*version)++;
    }
    if (catalog_commit(cat) == -1)
        goto fail;
    return 0;
fail:
    catalog_rollback(cat);
    return -1;
}

int catalog_schema_migrate(struct catalog *cat)
{
    struct catalog_schema_state st;
    int64_t version;

    if (cat->be->schema_read(cat, &st) == -1 || check_identity(cat, &st) == -1)
        return -1;
    version = st.version;
    while (version < CATALOG_SCHEMA_VERSION) {
        if (migrate_one(cat, &version) == -1)
            return -1;
    }
    return 0;
}
