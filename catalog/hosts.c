/* virtkeep - catalog: hosts, their heartbeats, and the leases under which
 * they run the jobs of a domain (catalog.h, "hosts and leases"). */
#include <config.h>

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

char *catalog_host_self(void)
{
    const char *env = getenv("VIRTKEEP_HOST");
    char name[HOST_NAME_MAX + 1];

    if (env && *env)
        return vk_strdup(env);
    if (gethostname(name, sizeof name) < 0 || !*name)
        return vk_strdup("localhost");
    name[sizeof name - 1] = '\0';
    return vk_strdup(name);
}

const char *catalog_host_name(const struct catalog *cat)
{
    return cat->host;
}

int catalog_host_register(struct catalog *cat, const char *uri, const char *version,
                          int64_t lease_seconds, int64_t now)
{
    if (catalog_sql_run(cat,
                        "INSERT INTO hosts(name, uri, version, started, heartbeat, lease_seconds) "
                        "VALUES(?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT(name) DO UPDATE SET "
                        "uri = excluded.uri, version = excluded.version, "
                        "started = excluded.started, heartbeat = excluded.heartbeat, "
                        "lease_seconds = excluded.lease_seconds",
                        "tttii", cat->host, uri, version, now, lease_seconds) == -1) {
        vk_error_prefix("cannot register host '%s'", cat->host);
        return -1;
    }
    return 0;
}

int catalog_host_heartbeat(struct catalog *cat, int64_t now)
{
    int n = catalog_sql_run(cat, "UPDATE hosts SET heartbeat = ?2 WHERE name = ?1", "ti", cat->host,
                            now);

    if (n == 0)
        vk_error(VK_ERR_NOT_FOUND, "host '%s' is not registered in catalog '%s'", cat->host,
                 cat->path);
    return n == 1 ? 0 : -1;
}

static void host_clear(void *item)
{
    struct catalog_host *h = item;

    free(h->name);
    free(h->uri);
    free(h->version);
}

void catalog_hosts_free(struct catalog_hosts *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items, host_clear);
    free(list);
}

static int read_host(struct catalog_stmt *stmt, void *item)
{
    struct catalog_host *h = item;
    bool ok = true;

    h->name = catalog_sql_text(stmt, 0, &ok);
    h->uri = catalog_sql_text(stmt, 1, &ok);
    h->version = catalog_sql_text(stmt, 2, &ok);
    h->started = catalog_sql_int(stmt, 3);
    h->heartbeat = catalog_sql_int(stmt, 4);
    h->running_jobs = (unsigned int)catalog_sql_int(stmt, 5);
    h->domains = (unsigned int)catalog_sql_int(stmt, 6);
    h->lease_seconds = catalog_sql_int(stmt, 7);
    return ok ? 0 : -1;
}

int catalog_host_list(struct catalog *cat, struct catalog_hosts **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_hosts *list;

    *out = NULL;
    stmt = catalog_sql_prepare(
        cat,
        "SELECT h.name, h.uri, h.version, h.started, h.heartbeat, "
        "(SELECT count(*) FROM jobs j WHERE j.host = h.name AND j.state = 'running'), "
        "(SELECT count(*) FROM domains d WHERE d.host = h.name), h.lease_seconds "
        "FROM hosts h ORDER BY h.name",
        NULL);
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list || catalog_sql_list(cat, stmt, sizeof *list->items, read_host, host_clear,
                                  (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}

bool catalog_host_lost(const struct catalog_host *h, int64_t now)
{
    return now - h->heartbeat > h->lease_seconds;
}

/* ---- reaping the rows of a lost host -------------------------------------- */

static char *lost_why(const char *lost, int64_t heartbeat, const char *by)
{
    char when[32] = "never";
    time_t t = (time_t)heartbeat;
    struct tm tm;

    if (heartbeat && gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return vk_asprintf("host '%s' stopped heartbeating (last heard from %s) and its lease "
                       "expired: marked failed by host '%s'",
                       lost, when, by);
}

/* Fail every row of host NAME and free its leases, in one transaction. */
static int reap_one(struct catalog *cat, const char *name, int64_t heartbeat, int64_t now,
                    unsigned int *marked)
{
    static const char *const updates[] = {
        "UPDATE jobs SET state = 'failed', error = ?2, finished = ?3 "
        "WHERE host = ?1 AND state IN ('queued', 'running')",
        "UPDATE backups SET status = 'failed', error = ?2, finished = ?3 "
        "WHERE host = ?1 AND status = 'running'",
        "UPDATE drills SET state = 'failed', error = ?2, finished = ?3 "
        "WHERE host = ?1 AND state = 'running'",
    };
    CLEANUP_FREE char *why = lost_why(name, heartbeat, cat->host);
    int n;

    if (!why || catalog_begin(cat) == -1)
        return -1;
    for (size_t i = 0; i < VK_ARRAY_SIZE(updates); i++) {
        if ((n = catalog_sql_run(cat, updates[i], "tti", name, why, now)) == -1)
            goto fail;
        *marked += (unsigned int)n;
    }
    if (catalog_sql_run(cat, "UPDATE leases SET host = NULL, expires = 0 WHERE host = ?1", "t",
                        name) == -1 ||
        catalog_commit(cat) == -1)
        goto fail;
    return 0;
fail:
    catalog_rollback(cat);
    vk_error_prefix("cannot fail the jobs of lost host '%s'", name);
    return -1;
}

int catalog_host_reap(struct catalog *cat, int64_t now, int64_t ttl, unsigned int *marked)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    CLEANUP_STRV char **names = NULL;
    CLEANUP_FREE int64_t *beats = NULL;
    unsigned int count = 0;
    size_t n = 0;
    int r;

    stmt = catalog_sql_prepare(
        cat,
        "SELECT h.name, h.heartbeat FROM hosts h WHERE h.name <> ?1 "
        "AND h.heartbeat < ?2 - (CASE WHEN h.lease_seconds > ?4 THEN h.lease_seconds ELSE ?4 END) "
        "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.host = h.name AND l.expires >= ?3) "
        "AND (EXISTS (SELECT 1 FROM leases l WHERE l.host = h.name) "
        "OR EXISTS (SELECT 1 FROM jobs j WHERE j.host = h.name "
        "AND j.state IN ('queued', 'running')) "
        "OR EXISTS (SELECT 1 FROM backups b WHERE b.host = h.name AND b.status = 'running') "
        "OR EXISTS (SELECT 1 FROM drills d WHERE d.host = h.name AND d.state = 'running')) "
        "ORDER BY h.name",
        "tiii", cat->host, now, now, ttl);
    if (!stmt)
        return -1;
    while ((r = catalog_sql_step(cat, stmt)) == 1) {
        char **v = vk_realloc_array(names, n + 2, sizeof *v);
        int64_t *b = v ? vk_realloc_array(beats, n + 1, sizeof *b) : NULL;

        if (v)
            names = v;
        if (!b || !(names[n] = vk_strdup(catalog_sql_column(stmt, 0))))
            return -1;
        beats = b;
        beats[n] = catalog_sql_int(stmt, 1);
        names[++n] = NULL;
    }
    catalog_sql_finalize(&stmt);
    for (size_t i = 0; r == 0 && i < n; i++) {
        unsigned int one = 0;

        if (reap_one(cat, names[i], beats[i], now, &one) == -1)
            return -1;
        if (one)
            vk_info("host '%s' stopped heartbeating: marked %u of its row(s) failed", names[i],
                    one);
        count += one;
    }
    if (marked)
        *marked = count;
    return r == 0 ? 0 : -1;
}

/* ---- leases ---------------------------------------------------------------- */

void catalog_lease_clear(struct catalog_lease *lease)
{
    free(lease->domain);
    free(lease->host);
    memset(lease, 0, sizeof *lease);
}

static bool lease_free_at(const char *host, int64_t expires, int64_t now)
{
    return !host || expires < now;
}

/* Inside the claim's transaction: the lease row, locked, or 0 rows when
 * another claimer holds its lock (SKIP LOCKED). */
static int claim_locked(struct catalog *cat, const char *domain, int64_t now, int64_t ttl,
                        int64_t *epoch)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    int r;

    stmt = catalog_sql_prepare(cat,
                               "SELECT host, expires FROM leases WHERE domain = ?1 "
                               "FOR UPDATE SKIP LOCKED",
                               "t", domain);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return -1;
    if (r == 0 || !lease_free_at(catalog_sql_column(stmt, 0), catalog_sql_int(stmt, 1), now))
        return 0;
    catalog_sql_finalize(&stmt);
    stmt = catalog_sql_prepare(cat,
                               "UPDATE leases SET host = ?2, epoch = epoch + 1, expires = ?3 "
                               "WHERE domain = ?1 RETURNING epoch",
                               "tti", domain, cat->host, now + ttl);
    if (!stmt || catalog_sql_step(cat, stmt) != 1)
        return -1;
    *epoch = catalog_sql_int(stmt, 0);
    catalog_sql_finalize(&stmt);
    if (catalog_sql_run(cat, "UPDATE domains SET host = ?2 WHERE name = ?1", "tt", domain,
                        cat->host) == -1)
        return -1;
    return 1;
}

int catalog_lease_claim(struct catalog *cat, const char *domain, int64_t now, int64_t ttl,
                        int64_t *epoch)
{
    int r;

    if (!domain || !*domain || ttl <= 0) {
        vk_error(VK_ERR_INVALID, "a lease needs a domain and a positive duration");
        return -1;
    }
    if (catalog_domain_ensure(cat, domain) == -1 ||
        catalog_sql_run(cat,
                        "INSERT INTO leases(domain, epoch, expires) VALUES(?1, 0, 0) "
                        "ON CONFLICT(domain) DO NOTHING",
                        "t", domain) == -1 ||
        catalog_begin_rows(cat) == -1)
        goto fail;
    r = claim_locked(cat, domain, now, ttl, epoch);
    if (r == 1 && catalog_commit(cat) == 0)
        return 1;
    catalog_rollback(cat);
    if (r == 0)
        return 0;
fail:
    vk_error_prefix("cannot claim the lease of domain '%s' for host '%s'", domain, cat->host);
    return -1;
}

int catalog_lease_renew(struct catalog *cat, const char *domain, int64_t epoch, int64_t now,
                        int64_t ttl)
{
    int n = catalog_sql_run(cat,
                            "UPDATE leases SET expires = ?4 WHERE domain = ?1 AND host = ?2 "
                            "AND epoch = ?3 AND expires >= ?5",
                            "ttiii", domain, cat->host, epoch, now + ttl, now);

    if (n == -1)
        vk_error_prefix("cannot renew the lease of domain '%s'", domain);
    return n == -1 ? -1 : n > 0;
}

int catalog_lease_release(struct catalog *cat, const char *domain, int64_t epoch)
{
    if (catalog_sql_run(cat,
                        "UPDATE leases SET host = NULL, expires = 0 "
                        "WHERE domain = ?1 AND host = ?2 AND epoch = ?3",
                        "tti", domain, cat->host, epoch) == -1) {
        vk_error_prefix("cannot release the lease of domain '%s'", domain);
        return -1;
    }
    return 0;
}

int catalog_lease_release_all(struct catalog *cat)
{
    if (catalog_sql_run(cat, "UPDATE leases SET host = NULL, expires = 0 WHERE host = ?1", "t",
                        cat->host) == -1) {
        vk_error_prefix("cannot release the leases of host '%s'", cat->host);
        return -1;
    }
    return 0;
}

int catalog_lease_get(struct catalog *cat, const char *domain, struct catalog_lease *out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    bool ok = true;
    int r;

    memset(out, 0, sizeof *out);
    stmt = catalog_sql_prepare(cat, "SELECT host, epoch, expires FROM leases WHERE domain = ?1",
                               "t", domain);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return -1;
    out->domain = vk_strdup(domain);
    if (r == 1) {
        out->host = catalog_sql_text(stmt, 0, &ok);
        out->epoch = catalog_sql_int(stmt, 1);
        out->expires = catalog_sql_int(stmt, 2);
    }
    if (!ok || !out->domain) {
        catalog_lease_clear(out);
        return -1;
    }
    return 0;
}

int catalog_fence_set(struct catalog *cat, const char *domain, int64_t epoch)
{
    char *copy = vk_strdup(domain);

    if (!copy)
        return -1;
    free(cat->fence_domain);
    cat->fence_domain = copy;
    cat->fence_epoch = epoch;
    return 0;
}

int catalog_lease_fence(struct catalog *cat, const char *domain, int64_t epoch, int64_t now)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    const char *holder;
    int r;

    stmt = catalog_sql_prepare(
        cat, "SELECT host, epoch, expires FROM leases WHERE domain = ?1 FOR UPDATE", "t", domain);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return -1;
    holder = r == 1 ? catalog_sql_column(stmt, 0) : NULL;
    if (holder && strcmp(holder, cat->host) == 0 && catalog_sql_int(stmt, 1) == epoch &&
        catalog_sql_int(stmt, 2) >= now)
        return 0;
    vk_error(VK_ERR_BUSY,
             "host '%s' lost the lease of domain '%s' (epoch %" PRId64 "; now %s%s%s, epoch "
             "%" PRId64 "): this work cannot commit; the lease holder runs the next backup",
             cat->host, domain, epoch, holder ? "held by host '" : "free", holder ? holder : "",
             holder ? "'" : "", r == 1 ? catalog_sql_int(stmt, 1) : 0);
    return -1;
}

/* ---- domains across hosts ------------------------------------------------ */

int catalog_domain_check_uuid(struct catalog *cat, const char *name, const char *uuid)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    const char *known;
    int r;

    if (!uuid || !*uuid)
        return 0;
    stmt = catalog_sql_prepare(cat, "SELECT uuid, host FROM domains WHERE name = ?1", "t", name);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return -1;
    known = r == 1 ? catalog_sql_column(stmt, 0) : NULL;
    /* On its own host, a VM defined again under its name continues (its
     * chain is checked against the bitmaps anyway). */
    if (!known || strcasecmp(known, uuid) == 0 || !catalog_sql_column(stmt, 1) ||
        strcmp(catalog_sql_column(stmt, 1), cat->host) == 0)
        return 0;
    vk_error(VK_ERR_INVALID,
             "domain '%s' (UUID %s) is not the domain '%s' of catalog '%s' (UUID %s, last on "
             "host '%s'): two VMs of one name cannot share a backup chain; rename one of them",
             name, uuid, name, cat->path, known, catalog_sql_column(stmt, 1));
    return -1;
}

static void move_clear(void *item)
{
    struct catalog_move *m = item;

    free(m->domain);
    free(m->uuid);
    free(m->from_host);
    free(m->to_host);
    free(m->kind);
}

void catalog_moves_free(struct catalog_moves *list)
{
    if (list)
        catalog_array_free(list->items, list->count, sizeof *list->items, move_clear);
    free(list);
}

int catalog_move_record(struct catalog *cat, const struct catalog_move *m)
{
    int64_t when = m->moved ? m->moved : (int64_t)time(NULL);

    if (!m->domain || !*m->domain || !m->to_host || !*m->to_host || !m->kind) {
        vk_error(VK_ERR_INVALID, "a move needs a domain, a destination host and a kind");
        return -1;
    }
    if (catalog_begin(cat) == -1)
        goto fail;
    if (catalog_domain_ensure(cat, m->domain) == -1 ||
        catalog_sql_run(cat,
                        "INSERT INTO moves(domain, uuid, from_host, to_host, kind, moved) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                        "ttttti", m->domain, m->uuid, m->from_host, m->to_host, m->kind,
                        when) == -1 ||
        catalog_sql_run(cat, "UPDATE domains SET host = ?2 WHERE name = ?1", "tt", m->domain,
                        m->to_host) == -1 ||
        catalog_commit(cat) == -1) {
        catalog_rollback(cat);
        goto fail;
    }
    return 0;
fail:
    vk_error_prefix("cannot record the move of domain '%s' to host '%s'", m->domain, m->to_host);
    return -1;
}

static int read_move(struct catalog_stmt *stmt, void *item)
{
    struct catalog_move *m = item;
    bool ok = true;

    m->domain = catalog_sql_text(stmt, 0, &ok);
    m->uuid = catalog_sql_text(stmt, 1, &ok);
    m->from_host = catalog_sql_text(stmt, 2, &ok);
    m->to_host = catalog_sql_text(stmt, 3, &ok);
    m->kind = catalog_sql_text(stmt, 4, &ok);
    m->moved = catalog_sql_int(stmt, 5);
    return ok ? 0 : -1;
}

int catalog_move_list(struct catalog *cat, const char *domain, struct catalog_moves **out)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    struct catalog_moves *list;

    *out = NULL;
    stmt = catalog_sql_prepare(cat,
                               "SELECT domain, uuid, from_host, to_host, kind, moved FROM moves "
                               "WHERE ?1 IS NULL OR domain = ?1 ORDER BY moved, id",
                               "t", domain);
    list = stmt ? vk_calloc(1, sizeof *list) : NULL;
    if (!list || catalog_sql_list(cat, stmt, sizeof *list->items, read_move, move_clear,
                                  (void **)&list->items, &list->count) == -1) {
        free(list);
        return -1;
    }
    *out = list;
    return 0;
}

char *catalog_host_by_uri(struct catalog *cat, const char *uri)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    int r;

    stmt = catalog_sql_prepare(cat, "SELECT name FROM hosts WHERE uri = ?1 ORDER BY heartbeat DESC",
                               "t", uri);
    if (!stmt || (r = catalog_sql_step(cat, stmt)) == -1)
        return NULL;
    if (r == 0) {
        vk_error(VK_ERR_NOT_FOUND, "no host with libvirt URI '%s' is registered in catalog '%s'",
                 uri, cat->path);
        return NULL;
    }
    return vk_strdup(catalog_sql_column(stmt, 0));
}
