/* virtkeep - the libvirt calls (see virt.h): connection, domains, pull-mode
 * backup jobs, guest file-system freeze.  Checkpoints are in virt-checkpoint.c.
 *
 * Every libvirt failure is recorded once, here, through virt_error_libvirt()
 * (virt-error.c): a sentence naming the domain (and checkpoint or disk)
 * followed by libvirt's own message.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/virt/virt-int.h"
#include "src/virt/virt.h"

/* ---------------------------------------------------------------- connection */

struct virt_conn *virt_conn_open(const char *uri, unsigned int flags)
{
    struct virt_conn *c;
    char *real;

    (void)flags;
    virt_error_init();
    virt_failure_set(VIRT_FAIL_NONE);
    c = vk_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->conn = virConnectOpen(uri);
    if (!c->conn) {
        virt_error_libvirt("cannot connect to libvirt at '%s'", uri ? uri : "(default URI)");
        free(c);
        return NULL;
    }
    real = virConnectGetURI(c->conn);
    c->uri = vk_strdup(real ? real : (uri ? uri : ""));
    free(real);
    if (!c->uri) {
        virt_conn_close(c);
        return NULL;
    }
    return c;
}

void virt_conn_close(struct virt_conn *c)
{
    if (!c)
        return;
    if (c->conn)
        virConnectClose(c->conn);
    free(c->uri);
    free(c);
}

bool virt_conn_is_system(const struct virt_conn *c)
{
    return c && c->uri && strncmp(c->uri, "qemu", 4) == 0 && strstr(c->uri, "/system");
}

bool virt_conn_is_alive(const struct virt_conn *c)
{
    return c && c->conn && virConnectIsAlive(c->conn) == 1;
}

/* ---------------------------------------------------------------- domains */

static virDomainPtr lookup(struct virt_conn *c, const char *key)
{
    virDomainPtr dom = virDomainLookupByName(c->conn, key);
    size_t len = strlen(key);

    /* A key that has the length of a UUID may be one. */
    if (!dom && len >= VIR_UUID_STRING_BUFLEN - 5 && len < VIR_UUID_STRING_BUFLEN)
        dom = virDomainLookupByUUIDString(c->conn, key);
    return dom;
}

struct virt_domain *virt_domain_lookup(struct virt_conn *c, const char *name_or_uuid)
{
    struct virt_domain *d;
    const char *name;

    virt_failure_set(VIRT_FAIL_NONE);
    d = vk_calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->conn = c;
    d->dom = lookup(c, name_or_uuid);
    if (!d->dom) {
        virErrorPtr e = virGetLastError();
        if (!e || e->code == VIR_ERR_NO_DOMAIN || e->code == VIR_ERR_INVALID_ARG) {
            virt_failure_set(VIRT_FAIL_OTHER);
            vk_error(VK_ERR_NOT_FOUND, "domain '%s' not found on %s.", name_or_uuid, c->uri);
        } else {
            virt_error_libvirt("cannot look up domain '%s' on %s", name_or_uuid, c->uri);
        }
        free(d);
        return NULL;
    }
    name = virDomainGetName(d->dom);
    d->name = vk_strdup(name ? name : name_or_uuid);
    if (!d->name || virDomainGetUUIDString(d->dom, d->uuid) < 0) {
        if (d->name)
            virt_error_libvirt("cannot get the UUID of domain '%s'", d->name);
        virt_domain_free(d);
        return NULL;
    }
    return d;
}

void virt_domain_free(struct virt_domain *d)
{
    if (!d)
        return;
    if (d->dom)
        virDomainFree(d->dom);
    free(d->name);
    free(d);
}

int virt_domain_get_state(struct virt_domain *d, enum virt_domain_state *state)
{
    int st, reason;

    if (virDomainGetState(d->dom, &st, &reason, 0) < 0) {
        virt_error_libvirt("cannot get the state of domain '%s'", d->name);
        return -1;
    }
    switch (st) {
    case VIR_DOMAIN_RUNNING:
        *state = VIRT_DOMAIN_RUNNING;
        break;
    case VIR_DOMAIN_PAUSED:
        *state = VIRT_DOMAIN_PAUSED;
        break;
    case VIR_DOMAIN_SHUTOFF:
        *state = VIRT_DOMAIN_SHUTOFF;
        break;
    default:
        *state = VIRT_DOMAIN_OTHER;
    }
    return 0;
}

const char *virt_domain_state_name(enum virt_domain_state state)
{
    switch (state) {
    case VIRT_DOMAIN_RUNNING:
        return "running";
    case VIRT_DOMAIN_PAUSED:
        return "paused";
    case VIRT_DOMAIN_SHUTOFF:
        return "shut off";
    case VIRT_DOMAIN_OTHER:
        break;
    }
    return "other";
}

int virt_domain_is_persistent(struct virt_domain *d)
{
    int r = virDomainIsPersistent(d->dom);

    if (r < 0)
        virt_error_libvirt("cannot tell whether domain '%s' is persistent", d->name);
    return r;
}

char *virt_domain_get_xml(struct virt_domain *d, unsigned int flags)
{
    char *xml =
        virDomainGetXMLDesc(d->dom, flags & VIRT_XML_INACTIVE ? VIR_DOMAIN_XML_INACTIVE : 0);
    char *r;

    if (!xml) {
        virt_error_libvirt("cannot get the XML of domain '%s'", d->name);
        return NULL;
    }
    /* Hand out memory from our allocator's point of view (free()). */
    r = vk_strdup(xml);
    free(xml);
    return r;
}

/* ---------------------------------------------------------------- pull-mode backup */

int virt_backup_begin(struct virt_domain *d, const char *backup_xml, const char *checkpoint_xml,
                      unsigned int flags)
{
    (void)flags;
    virt_failure_set(VIRT_FAIL_NONE);
    if (virDomainBackupBegin(d->dom, backup_xml, checkpoint_xml, 0) < 0) {
        virt_error_libvirt("cannot begin the backup of domain '%s'", d->name);
        return -1;
    }
    return 0;
}

char *virt_backup_get_xml(struct virt_domain *d)
{
    char *xml = virDomainBackupGetXMLDesc(d->dom, 0);
    char *r;

    if (!xml) {
        virt_error_libvirt("cannot get the backup job XML of domain '%s'", d->name);
        return NULL;
    }
    r = vk_strdup(xml);
    free(xml);
    return r;
}

int virt_backup_is_active(struct virt_domain *d)
{
    virTypedParameterPtr params = NULL;
    int nparams = 0, type = VIR_DOMAIN_JOB_NONE, op = 0;

    if (virDomainGetJobStats(d->dom, &type, &params, &nparams, 0) < 0) {
        virt_error_libvirt("cannot get the job of domain '%s'", d->name);
        return -1;
    }
    if (virTypedParamsGetInt(params, nparams, VIR_DOMAIN_JOB_OPERATION, &op) <= 0)
        op = VIR_DOMAIN_JOB_OPERATION_BACKUP; /* unknown: assume the worst */
    virTypedParamsFree(params, nparams);
    return type != VIR_DOMAIN_JOB_NONE && op == VIR_DOMAIN_JOB_OPERATION_BACKUP;
}

/* While a virDomainBackupBegin is still in flight in libvirtd (its client
 * may be dead already), the domain has a backup job without backup data and
 * the job stats fail with an internal error.  Its checkpoint exists then,
 * and libvirt lets a checkpoint delete run beside the begin (a backup job
 * admits modify jobs): the begin's rollback then frees the checkpoint a
 * second time and libvirtd 9.0 crashes.  Wait until the begin is over. */
int virt_backup_settle(struct virt_domain *d, unsigned int timeout_ms)
{
    uint64_t deadline = vk_now_ns() + (uint64_t)timeout_ms * 1000000;
    bool seen = false;
    int active;

    for (;;) {
        virErrorPtr e;
        /* An active job is believed on its second sight: the begin sets its
         * data just before its last monitor commands. */
        if ((active = virt_backup_is_active(d)) == 0 || (active == 1 && seen))
            return active;
        if (active == 1) {
            seen = true;
            usleep(300000);
            continue;
        }
        e = virGetLastError();
        /* While the begin waits on QEMU's monitor, the job stats wait for
         * the domain's job, and time out. */
        if (!e || (e->code != VIR_ERR_INTERNAL_ERROR && e->code != VIR_ERR_OPERATION_TIMEOUT))
            return -1;
        if (vk_now_ns() >= deadline) {
            vk_error_prefix("the backup job of domain '%s' is still starting after %u ms", d->name,
                            timeout_ms);
            return -1;
        }
        usleep(100000);
    }
}

int virt_backup_abort(struct virt_domain *d, unsigned int timeout_ms)
{
    uint64_t deadline = vk_now_ns() + (uint64_t)timeout_ms * 1000000;
    int active = virt_backup_settle(d, timeout_ms);

    if (active <= 0)
        return active;
    if (virDomainAbortJob(d->dom) < 0 && virt_backup_is_active(d) != 0) {
        virt_error_libvirt("cannot abort the backup job of domain '%s'", d->name);
        return -1;
    }
    while ((active = virt_backup_is_active(d)) > 0) {
        if (vk_now_ns() >= deadline) {
            vk_error(VK_ERR_LIBVIRT, "the backup job of domain '%s' did not end within %u ms.",
                     d->name, timeout_ms);
            return -1;
        }
        usleep(20000);
    }
    return active;
}

char *virt_pull_bitmap_context(const char *target)
{
    return vk_asprintf("qemu:dirty-bitmap:backup-%s", target);
}

/* ---------------------------------------------------------------- quiesce */

static int fs_freeze_thaw(struct virt_domain *d, bool freeze)
{
    int r;

    virt_failure_set(VIRT_FAIL_NONE);
    r = freeze ? virDomainFSFreeze(d->dom, NULL, 0, 0) : virDomainFSThaw(d->dom, NULL, 0, 0);
    if (r < 0) {
        virt_error_libvirt("cannot %s the file systems of domain '%s' through its guest agent",
                           freeze ? "freeze" : "thaw", d->name);
        if (virt_last_failure() == VIRT_FAIL_NO_AGENT)
            vk_error_prefix("domain '%s' has no usable guest agent (install qemu-guest-agent "
                            "and add its channel)",
                            d->name);
        return -1;
    }
    vk_debug("%s %d file system(s) of domain '%s'", freeze ? "froze" : "thawed", r, d->name);
    return 0;
}

int virt_fs_freeze(struct virt_domain *d)
{
    return fs_freeze_thaw(d, true);
}

int virt_fs_thaw(struct virt_domain *d)
{
    return fs_freeze_thaw(d, false);
}
