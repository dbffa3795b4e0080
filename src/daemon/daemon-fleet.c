/* virtkeep - virtkeepd among several hosts on one catalog: its host row
 * and heartbeat, the lease it claims for each domain it runs a job of, the
 * renewals, and the rows of hosts that stopped heartbeating. */
#include <config.h>

#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog.h"
#include "common/error.h"
#include "common/log.h"
#include "src/daemon/daemon.h"
#include "src/virt/virt.h"

int64_t daemon_lease_ttl(const struct daemon *d)
{
    int64_t ttl = (int64_t)d->tick * DAEMON_LEASE_TICKS;

    return ttl < DAEMON_LEASE_MIN ? DAEMON_LEASE_MIN : ttl;
}

int daemon_fleet_start(struct daemon *d, int64_t now)
{
    /* A daemon that starts again owns no job: the leases of its previous
     * run go, and the next claim's epoch fences any worker left over. */
    if (catalog_lease_release_all(d->cat) < 0 ||
        catalog_host_register(d->cat, d->connect_uri, PACKAGE_VERSION, daemon_lease_ttl(d), now) <
            0)
        return -1;
    vk_info("host '%s' registered in catalog '%s' (leases of %" PRId64 "s)",
            catalog_host_name(d->cat), d->catalog_path, daemon_lease_ttl(d));
    return 0;
}

int daemon_lease_claim(struct daemon *d, const char *domain, int64_t *epoch)
{
    struct catalog_lease l;
    int64_t now = (int64_t)time(NULL);
    int r = catalog_lease_claim(d->cat, domain, now, daemon_lease_ttl(d), epoch);

    if (r != 0)
        return r == 1 ? 0 : -1;
    if (catalog_lease_get(d->cat, domain, &l) < 0)
        return -1;
    vk_error(VK_ERR_BUSY,
             "domain '%s' is leased by host '%s' for %" PRId64 "s more: its jobs run there", domain,
             l.host ? l.host : "(being claimed)", l.expires > now ? l.expires - now : 0);
    catalog_lease_clear(&l);
    return -1;
}

void daemon_lease_release(struct daemon *d, const char *domain, int64_t epoch)
{
    if (epoch > 0 && catalog_lease_release(d->cat, domain, epoch) < 0)
        vk_warn("%s (it expires by itself)", vk_error_message());
}

/* A worker whose lease was lost cannot commit (its epoch fences it): stop
 * it rather than let it work for nothing. */
static void renew_one(struct daemon *d, struct daemon_worker *w, int64_t now)
{
    int r = catalog_lease_renew(d->cat, w->domain, w->epoch, now, daemon_lease_ttl(d));

    if (r == 1)
        return;
    if (r < 0) {
        vk_warn("%s: retrying at the next tick", vk_error_message());
        return;
    }
    vk_log_error("host '%s' lost the lease of domain '%s' (epoch %" PRId64
                 "): stopping its %s worker (pid %d); the lease holder runs its jobs",
                 catalog_host_name(d->cat), w->domain, w->epoch, w->kind, (int)w->pid);
    w->epoch = 0;
    if (!w->exited)
        kill(w->pid, SIGTERM);
}

void daemon_fleet_tick(struct daemon *d, int64_t now)
{
    unsigned int marked = 0;

    if (catalog_host_heartbeat(d->cat, now) < 0 &&
        (vk_error_code() != VK_ERR_NOT_FOUND ||
         catalog_host_register(d->cat, d->connect_uri, PACKAGE_VERSION, daemon_lease_ttl(d), now) <
             0))
        vk_warn("cannot heartbeat: %s", vk_error_message());
    for (size_t i = 0; i < d->n_workers; i++)
        if (d->workers[i]->epoch > 0)
            renew_one(d, d->workers[i], now);
    if (catalog_host_reap(d->cat, now, daemon_lease_ttl(d), &marked) < 0)
        vk_warn("cannot check for lost hosts: %s", vk_error_message());
    else if (marked)
        vk_info("marked %u job(s), backup(s) and drill(s) of lost hosts failed", marked);
}

/* Another host that heartbeats? */
static bool others_alive(struct daemon *d, int64_t now)
{
    struct catalog_hosts *hosts = NULL;
    bool alive = false;

    if (catalog_host_list(d->cat, &hosts) < 0)
        return false;
    for (size_t i = 0; i < hosts->count; i++)
        if (strcmp(hosts->items[i].name, catalog_host_name(d->cat)) != 0 &&
            !catalog_host_lost(&hosts->items[i], now))
            alive = true;
    catalog_hosts_free(hosts);
    return alive;
}

void daemon_fleet_view_init(struct daemon *d, struct daemon_fleet_view *v, int64_t now)
{
    v->now = now;
    v->others_alive = others_alive(d, now);
    v->conn = NULL;
    v->conn_failed = false;
    vk_error_clear();
}

void daemon_fleet_view_clear(struct daemon_fleet_view *v)
{
    virt_conn_close(v->conn);
    v->conn = NULL;
}

/* Is NAME missing from this host's libvirt (one connection per pass)? */
static bool missing_here(struct daemon *d, struct daemon_fleet_view *v, const char *name)
{
    struct virt_domain *vd;
    bool missing;

    if (!v->conn && !v->conn_failed && !(v->conn = virt_conn_open(d->connect_uri, 0)))
        v->conn_failed = true;
    if (!v->conn)
        return false;
    vd = virt_domain_lookup(v->conn, name);
    missing = !vd && vk_error_code() == VK_ERR_NOT_FOUND;
    virt_domain_free(vd);
    return missing;
}

bool daemon_domain_elsewhere(struct daemon *d, struct daemon_fleet_view *v, const char *name)
{
    struct catalog_domain *dom = catalog_domain_get(d->cat, name);
    bool other = dom && dom->host && strcmp(dom->host, catalog_host_name(d->cat)) != 0;
    bool elsewhere = (other || v->others_alive) && missing_here(d, v, name);

    if (elsewhere)
        vk_debug("domain '%s' does not run on host '%s'%s%s%s: its jobs run where it is", name,
                 catalog_host_name(d->cat), other ? " (last seen on host '" : "",
                 other ? dom->host : "", other ? "')" : "");
    catalog_domain_free(dom);
    vk_error_clear();
    return elsewhere;
}
