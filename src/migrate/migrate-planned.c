/* virtkeep - planned (cold) moves through backups: `virtkeep migrate DOMAIN
 * --to URI --planned`, for hosts that cannot live-migrate (another CPU, no
 * network path for QEMU between them).
 *
 * Steps (migrate_planned_step_name):
 *   checks        reachable, memory, name/UUID collision (migrate-check.c,
 *                 no CPU and no storage-path checks), the backup target,
 *                 the disks (none that the backups would skip), the
 *                 destination pool (active, room, no volume of that name)
 *   backup        an incremental while the domain runs (a full when the
 *                 chain is new: level auto), in-process through backup_run
 *   shutdown      virDomainShutdown, waiting up to --shutdown-timeout;
 *                 destroyed only with --force.  Downtime starts here.
 *   final-backup  the last incremental, through the offline path (qemu-nbd)
 *   restore       restore_run into a local staging directory
 *   upload        one raw volume per disk in the destination pool (the
 *                 size of the restored qcow2 file), the file sent with a
 *                 sparse stream (virStorageVolUpload, virt_storage_vol_upload):
 *                 any libvirt URI
 *   verify        each volume is downloaded back (sparse stream,
 *                 virt_storage_vol_sha256) and its SHA-256 compared with the
 *                 one computed while uploading.
 *                 This runs before the guest starts: once it runs, it may
 *                 write to its disks and the bytes would no longer compare.
 *   define        the source's persistent XML, disks pointed at the new
 *                 volumes (qcow2), defined and started on the destination;
 *                 running and persistent there.  Downtime ends here.
 *   undefine-source  the source definition is removed (with its checkpoint
 *                 and snapshot metadata); its disk files are kept.
 *
 * A failure (or SIGINT) from the backup to the define step removes what was
 * made on the destination (the domain of that name, the volumes), starts
 * the domain again on the source when it was shut down here, and records
 * the job failed (cancelled) with the step named.  A failure to undefine the
 * source is not rolled back: the domain already runs on the destination and
 * two copies must not run.
 *
 * Test hook: VIRTKEEP_TEST_FAIL_STEP=NAME (a step name) makes the move fail
 * when it reaches that step, before the step does anything.  It is read only
 * at step boundaries and exists for the end-to-end tests.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"
#include "src/backup/backup.h"
#include "src/conf/conf.h"
#include "src/migrate/migrate.h"
#include "src/restore/restore.h"
#include "src/virt/virt.h"

#define FAIL_STEP_ENV "VIRTKEEP_TEST_FAIL_STEP"
#define SHUTDOWN_TIMEOUT_DEFAULT 120
#define POLL_MS 100

static const struct {
    const char *name;
    const char *what;
} steps[MIGRATE_STEP_COUNT] = {
    [MIGRATE_STEP_CHECKS] = {"checks", "pre-checks"},
    [MIGRATE_STEP_BACKUP] = {"backup", "backup while the domain runs"},
    [MIGRATE_STEP_SHUTDOWN] = {"shutdown", "shutting the domain down"},
    [MIGRATE_STEP_FINAL] = {"final-backup", "final incremental of the shut-off domain"},
    [MIGRATE_STEP_RESTORE] = {"restore", "restore into a staging directory"},
    [MIGRATE_STEP_UPLOAD] = {"upload", "upload into the destination pool"},
    [MIGRATE_STEP_VERIFY] = {"verify", "reading the volumes back"},
    [MIGRATE_STEP_DEFINE] = {"define", "define and start on the destination"},
    [MIGRATE_STEP_UNDEFINE] = {"undefine-source", "undefine on the source"},
};

const char *migrate_planned_step_name(enum migrate_planned_step step)
{
    return step < MIGRATE_STEP_COUNT ? steps[step].name : "unknown";
}

/* One uploaded volume. */
struct planned_vol {
    virStorageVolPtr vol;
    char *disk;  /* "vda" */
    char *path;  /* on the destination */
    char *image; /* the restored image it came from */
    uint64_t size;
    uint8_t sha[VIRT_SHA256_LEN]; /* of the bytes sent */
};

struct planned {
    const struct migrate_options *o;
    unsigned int flags;
    struct migrate_result *res;
    struct catalog *cat;
    struct virt_conn *src, *dst;
    struct virt_domain *dom;
    char *connect_error;
    const char *target; /* the backup target, borrowed */
    char *xml;          /* the persistent definition on the source */
    bool running;       /* ran when the move started */
    bool shut_down;     /* stopped by this move (so started again on failure) */
    bool shutdown_sent; /* a shutdown request reached the guest */
    enum migrate_planned_step step;
    enum vk_error_code code; /* of the failure */
    char *restart_error;     /* why the source could not start it again */
    char *why;               /* the failure's message */
    char *staging;
    struct restore_result rr;
    bool restored;
    virStoragePoolPtr pool;
    struct planned_vol *vols;
    size_t nr_vols;
    uint64_t down_ns; /* when the shutdown was requested, 0: not yet */
    uint64_t start_ns;
};

/* ---------------------------------------------------------------- helpers */

static const char *pool_name(const struct planned *p)
{
    return p->o->dest_pool ? p->o->dest_pool : "default";
}

static void step_say(const struct planned *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void step_say(const struct planned *p, const char *fmt, ...)
{
    va_list ap;

    if (!(p->flags & MIGRATE_STEPS))
        return;
    fprintf(stderr, "virtkeep: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Enter STEP: say so, and fail when interrupted or when the test hook
 * names it. */
static int step_begin(struct planned *p, enum migrate_planned_step step)
{
    const char *hook = getenv(FAIL_STEP_ENV);

    p->step = step;
    step_say(p, "planned move of '%s': step %d/%d: %s", p->dom->name, (int)step + 1,
             (int)MIGRATE_STEP_COUNT, steps[step].what);
    if (migrate_cancelled(p->o)) {
        vk_error(VK_ERR_INTERRUPTED, "the planned move of domain '%s' was interrupted.",
                 p->dom->name);
        return -1;
    }
    if (hook && strcmp(hook, steps[step].name) == 0) {
        vk_error(VK_ERR_INTERNAL, "failure injected at step '%s' (test hook %s).", steps[step].name,
                 FAIL_STEP_ENV);
        return -1;
    }
    return 0;
}

static bool domain_runs(struct virt_domain *d)
{
    enum virt_domain_state st;

    return virt_domain_get_state(d, &st) == 0 &&
           (st == VIRT_DOMAIN_RUNNING || st == VIRT_DOMAIN_PAUSED);
}

/* ---------------------------------------------------------------- checks */

static bool is_url(const char *s)
{
    return strstr(s, "://") != NULL;
}

/* --via, else the first target of the domain's policy (as backup_run). */
static const char *target_pick(const struct migrate_options *o, const char *domain)
{
    const struct config_domain *d = o->config ? config_domain_find(o->config, domain) : NULL;
    const struct config_policy *pol =
        d && d->policy ? config_policy_find(o->config, d->policy) : NULL;

    if (o->via)
        return o->via;
    return pol && pol->targets && pol->targets[0] ? pol->targets[0] : NULL;
}

static int check_target(struct planned *p)
{
    struct migrate_report *r = &p->res->report;

    p->target = target_pick(p->o, p->dom->name);
    if (!p->target)
        return migrate_report_add(r, "target", MIGRATE_CHECK_FAIL,
                                  "no backup target: pass --via TARGET, or give domain '%s' a "
                                  "policy with targets in the configuration.",
                                  p->dom->name);
    if (!is_url(p->target) && !(p->o->config && config_target_find(p->o->config, p->target)))
        return migrate_report_add(r, "target", MIGRATE_CHECK_FAIL,
                                  "'%s' is neither a URL nor a target of the configuration.",
                                  p->target);
    return migrate_report_add(r, "target", MIGRATE_CHECK_PASS, "the backups go to '%s'.",
                              p->target);
}

/* Every data disk goes through the backups: one the backups skip would be
 * lost.  *NEED gets the bytes the disks take on the source. */
static int check_disks(struct planned *p, uint64_t *need)
{
    struct virt_disk_list l = {0};
    CLEANUP_FREE char *bad = NULL;
    virDomainBlockInfo bi;
    size_t moved = 0;
    int r;

    *need = 0;
    if (virt_disks_parse(p->xml, &l) < 0)
        return -1;
    for (size_t i = 0; i < l.nr; i++) {
        const struct virt_disk *d = &l.disks[i];
        if (d->kind == VIRT_DISK_CDROM || d->kind == VIRT_DISK_FLOPPY)
            continue;
        if (d->skip) {
            char *next = vk_asprintf("%s%s%s %s", bad ? bad : "", bad ? "; " : "", d->target,
                                     d->skip_reason ? d->skip_reason : "is not backed up");
            free(bad);
            bad = next;
            continue;
        }
        moved++;
        if (virDomainGetBlockInfo(p->dom->dom, d->target, &bi, 0) == 0)
            *need += bi.physical > bi.capacity ? bi.capacity : bi.physical;
    }
    virt_disks_clear(&l);
    if (bad)
        r = migrate_report_add(&p->res->report, "disks", MIGRATE_CHECK_FAIL,
                               "disks the backups cannot carry: %s.", bad);
    else
        r = migrate_report_add(&p->res->report, "disks", MIGRATE_CHECK_PASS,
                               "%zu disk%s move through the backups.", moved,
                               moved == 1 ? "" : "s");
    return r;
}

static int check_volumes(struct planned *p, virStoragePoolPtr pool)
{
    struct virt_disk_list l = {0};
    CLEANUP_FREE char *taken = NULL;
    int r;

    if (virt_disks_parse(p->xml, &l) < 0)
        return -1;
    for (size_t i = 0; i < l.nr; i++) {
        CLEANUP_FREE char *name = vk_asprintf("%s-%s.qcow2", p->dom->name, l.disks[i].target);
        virStorageVolPtr v = name ? virStorageVolLookupByName(pool, name) : NULL;
        if (!v)
            continue;
        virStorageVolFree(v);
        char *next = vk_asprintf("%s%s'%s'", taken ? taken : "", taken ? ", " : "", name);
        free(taken);
        taken = next;
    }
    virt_disks_clear(&l);
    if (taken)
        r = migrate_report_add(&p->res->report, "volumes", MIGRATE_CHECK_FAIL,
                               "pool '%s' already has %s.", pool_name(p), taken);
    else
        r = migrate_report_add(&p->res->report, "volumes", MIGRATE_CHECK_PASS,
                               "no volume of domain '%s' in pool '%s'.", p->dom->name,
                               pool_name(p));
    return r;
}

static int check_pool(struct planned *p, uint64_t need)
{
    struct migrate_report *r = &p->res->report;
    virStoragePoolInfo info;
    virStoragePoolPtr pool;
    char need_s[32], avail_s[32];
    int ret;

    if (!p->dst)
        return migrate_report_add(r, "pool", MIGRATE_CHECK_SKIP,
                                  "not checked: the destination is unreachable.");
    pool = virStoragePoolLookupByName(p->dst->conn, pool_name(p));
    if (!pool)
        return migrate_report_add(r, "pool", MIGRATE_CHECK_FAIL,
                                  "the destination has no storage pool '%s' (--dest-pool).",
                                  pool_name(p));
    if (virStoragePoolGetInfo(pool, &info) < 0 || info.state != VIR_STORAGE_POOL_RUNNING) {
        virStoragePoolFree(pool);
        return migrate_report_add(r, "pool", MIGRATE_CHECK_FAIL,
                                  "storage pool '%s' on the destination is not active.",
                                  pool_name(p));
    }
    vk_size_format(need, need_s, sizeof(need_s));
    vk_size_format(info.available, avail_s, sizeof(avail_s));
    if (info.available < need)
        ret = migrate_report_add(r, "pool", MIGRATE_CHECK_FAIL,
                                 "pool '%s' has %s available, the disks take %s.", pool_name(p),
                                 avail_s, need_s);
    else
        ret = migrate_report_add(r, "pool", MIGRATE_CHECK_PASS,
                                 "pool '%s' has %s available, the disks take %s.", pool_name(p),
                                 avail_s, need_s);
    if (ret == 0)
        ret = check_volumes(p, pool);
    virStoragePoolFree(pool);
    return ret;
}

static int pre_checks(struct planned *p)
{
    CLEANUP_FREE char *failed = NULL;
    uint64_t need = 0;

    if (step_begin(p, MIGRATE_STEP_CHECKS) < 0)
        return -1;
    p->xml = virDomainGetXMLDesc(p->dom->dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_MIGRATABLE);
    if (!p->xml) {
        virt_error_libvirt("cannot read the persistent XML of domain '%s'", p->dom->name);
        return -1;
    }
    if (migrate_check_run(p->dom->dom, p->dst ? p->dst->conn : NULL, p->connect_error, p->o,
                          p->flags | MIGRATE_PLANNED, &p->res->report, NULL) < 0 ||
        check_target(p) < 0 || check_disks(p, &need) < 0 || check_pool(p, need) < 0)
        return -1;
    if (!p->res->report.failed)
        return 0;
    failed = migrate_report_failures(&p->res->report);
    vk_error(VK_ERR_INVALID, "planned move of domain '%s' to '%s' failed its pre-checks: %s.",
             p->dom->name, p->o->to, failed ? failed : "?");
    return -1;
}

/* ---------------------------------------------------------------- backups */

static int backup_take(struct planned *p)
{
    struct backup_options bo = {.domain = p->dom->name,
                                .level = CATALOG_LEVEL_AUTO,
                                .target = (char *)p->target,
                                .compress_level = BACKUP_COMPRESS_LEVEL_DEFAULT,
                                .connect_uri = p->o->from,
                                .catalog_path = p->o->catalog_path,
                                .config = p->o->config,
                                .cancel = p->o->cancel};
    struct backup_result br;
    int r;

    memset(&br, 0, sizeof(br));
    r = backup_run(&bo, &br);
    if (r == 0) {
        step_say(p, "planned move of '%s': backup %s (%s) committed to '%s'", p->dom->name, br.id,
                 catalog_level_name(br.level), br.target);
        r = vk_strv_add(&p->res->backups, br.id);
    }
    backup_result_clear(&br);
    return r;
}

/* ---------------------------------------------------------------- shutdown */

static int shutdown_wait(struct planned *p)
{
    unsigned int secs = p->o->shutdown_timeout ? p->o->shutdown_timeout : SHUTDOWN_TIMEOUT_DEFAULT;
    uint64_t deadline;
    enum virt_domain_state st = VIRT_DOMAIN_OTHER;

    p->down_ns = vk_now_ns();
    deadline = p->down_ns + (uint64_t)secs * 1000000000ull;
    if (virDomainShutdown(p->dom->dom) == 0)
        p->shutdown_sent = true;
    else if (!p->o->force) {
        virt_error_libvirt("cannot shut domain '%s' down", p->dom->name);
        return -1;
    }
    while (vk_now_ns() < deadline && !migrate_cancelled(p->o)) {
        if (virt_domain_get_state(p->dom, &st) == 0 && st == VIRT_DOMAIN_SHUTOFF)
            break;
        usleep(POLL_MS * 1000);
    }
    if (st == VIRT_DOMAIN_SHUTOFF) {
        p->shut_down = true;
        return 0;
    }
    if (migrate_cancelled(p->o)) {
        vk_error(VK_ERR_INTERRUPTED,
                 "the planned move of domain '%s' was interrupted while it shut down.",
                 p->dom->name);
        return -1;
    }
    if (!p->o->force) {
        vk_error(VK_ERR_LIBVIRT, "domain '%s' did not shut down within %u s.", p->dom->name, secs);
        return -1;
    }
    step_say(p, "planned move of '%s': no shutdown within %u s, destroying it (--force)",
             p->dom->name, secs);
    if (virDomainDestroy(p->dom->dom) < 0) {
        virt_error_libvirt("cannot destroy domain '%s'", p->dom->name);
        return -1;
    }
    p->shut_down = true;
    return 0;
}

/* ---------------------------------------------------------------- restore */

static int restore_staging(struct planned *p)
{
    const char *tmp = getenv("TMPDIR");
    size_t n = vk_strv_len(p->res->backups);
    struct restore_options ro = {.domain = p->dom->name,
                                 .backup_id = n ? p->res->backups[n - 1] : NULL,
                                 .from = p->target,
                                 .config = p->o->config,
                                 .cancel = p->o->cancel};

    p->staging = vk_asprintf("%s/virtkeep-move-XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
    if (!p->staging)
        return -1;
    if (!mkdtemp(p->staging)) {
        vk_error_errno(errno, "cannot create a staging directory like '%s'", p->staging);
        free(p->staging);
        p->staging = NULL;
        return -1;
    }
    ro.dest_dir = p->staging;
    p->restored = true;
    return restore_run(p->cat, &ro, &p->rr, 0);
}

/* ---------------------------------------------------------------- upload */

static virStorageVolPtr vol_create(struct planned *p, const char *name, uint64_t size)
{
    CLEANUP_FREE char *ename = virt_xml_escape(name);
    CLEANUP_FREE char *xml = NULL;
    virStorageVolPtr vol;

    /* A raw volume of the qcow2 file's size: it holds the file's bytes as
     * they are, in any pool type (a file, a logical volume, ...). */
    xml = ename ? vk_asprintf("<volume><name>%s</name><capacity unit='bytes'>%" PRIu64
                              "</capacity><allocation unit='bytes'>0</allocation>"
                              "<target><format type='raw'/></target></volume>",
                              ename, size)
                : NULL;
    if (!xml)
        return NULL;
    vol = virStorageVolCreateXML(p->pool, xml, 0);
    if (!vol)
        virt_error_libvirt("cannot create volume '%s' in pool '%s' of '%s'", name, pool_name(p),
                           p->o->to);
    return vol;
}

static int vol_upload(struct planned *p, struct planned_vol *v)
{
    CLEANUP_FREE char *what =
        vk_asprintf("disk '%s' of domain '%s' to volume '%s'", v->disk, p->dom->name, v->path);
    int fd, r;

    if (!what)
        return -1;
    fd = open(v->image, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vk_error_errno(errno, "cannot open restored image '%s'", v->image);
        return -1;
    }
    r = virt_storage_vol_upload(p->dst, v->vol, fd, v->size, what, v->sha);
    close(fd);
    return r;
}

static int vol_add(struct planned *p, const struct restore_disk_result *d)
{
    CLEANUP_FREE char *name = vk_asprintf("%s-%s.qcow2", p->dom->name, d->target);
    struct planned_vol *vols, *v;
    struct stat sb;

    if (!name)
        return -1;
    if (stat(d->path, &sb) < 0) {
        vk_error_errno(errno, "cannot read restored image '%s'", d->path);
        return -1;
    }
    vols = vk_realloc_array(p->vols, p->nr_vols + 1, sizeof(*vols));
    if (!vols)
        return -1;
    p->vols = vols;
    v = &vols[p->nr_vols];
    memset(v, 0, sizeof(*v));
    v->size = (uint64_t)sb.st_size;
    if (!(v->disk = vk_strdup(d->target)) || !(v->image = vk_strdup(d->path)))
        goto fail;
    if (!(v->vol = vol_create(p, name, v->size)))
        goto fail;
    p->nr_vols++; /* from here on it is deleted on failure */
    if (!(v->path = virStorageVolGetPath(v->vol))) {
        virt_error_libvirt("cannot read the path of volume '%s'", name);
        return -1;
    }
    return vk_strv_add(&p->res->volumes, v->path) < 0 ? -1 : vol_upload(p, v);
fail:
    free(v->disk);
    free(v->image);
    return -1;
}

static int upload_all(struct planned *p)
{
    p->pool = virStoragePoolLookupByName(p->dst->conn, pool_name(p));
    if (!p->pool) {
        virt_error_libvirt("cannot find storage pool '%s' on '%s'", pool_name(p), p->o->to);
        return -1;
    }
    for (size_t i = 0; i < p->rr.nr_disks; i++) {
        if (vol_add(p, &p->rr.disks[i]) < 0)
            return -1;
        step_say(p, "planned move of '%s': disk %s uploaded to '%s'", p->dom->name, p->vols[i].disk,
                 p->vols[i].path);
    }
    return 0;
}

/* ---------------------------------------------------------------- verify */

static int vol_read_back(struct planned *p, const struct planned_vol *v)
{
    CLEANUP_FREE char *what = vk_asprintf("volume '%s'", v->path);
    uint8_t sha[VIRT_SHA256_LEN];
    uint64_t bytes = 0;

    if (!what || virt_storage_vol_sha256(p->dst, v->vol, v->size, what, sha, &bytes) < 0)
        return -1;
    if (bytes != v->size || memcmp(sha, v->sha, sizeof(sha)) != 0) {
        vk_error(VK_ERR_CORRUPT,
                 "volume '%s' reads back as %" PRIu64 " bytes that differ from the restored "
                 "disk '%s' (%" PRIu64 " bytes).",
                 v->path, bytes, v->disk, v->size);
        return -1;
    }
    return 0;
}

static int verify_all(struct planned *p)
{
    for (size_t i = 0; i < p->nr_vols; i++)
        if (vol_read_back(p, &p->vols[i]) < 0)
            return -1;
    step_say(p, "planned move of '%s': %zu volume%s read back equal (SHA-256)", p->dom->name,
             p->nr_vols, p->nr_vols == 1 ? "" : "s");
    return 0;
}

/* ---------------------------------------------------------------- define */

static char *dest_xml(struct planned *p)
{
    struct restore_define_disk *dd = vk_calloc(p->nr_vols ? p->nr_vols : 1, sizeof(*dd));
    /* The live domain's own definition, not one read from a target. */
    struct restore_define_options ro = {
        .disks = dd, .nr_disks = p->nr_vols, .keep_host_devices = true};
    char **dropped = NULL;
    char *xml;

    if (!dd)
        return NULL;
    for (size_t i = 0; i < p->nr_vols; i++)
        dd[i] = (struct restore_define_disk){.target = p->vols[i].disk, .path = p->vols[i].path};
    xml = restore_domain_xml(p->xml, &ro, &dropped, NULL, 0);
    free(dd);
    if (xml && dropped) {
        CLEANUP_FREE char *list = dropped[0] ? vk_strdup(dropped[0]) : NULL;
        vk_error(VK_ERR_INVALID, "disk '%s' of domain '%s' was not restored: it cannot move.",
                 list ? list : "?", p->dom->name);
        free(xml);
        xml = NULL;
    }
    vk_strv_free(dropped);
    return xml;
}

static int define_start(struct planned *p)
{
    CLEANUP_FREE char *xml = dest_xml(p);
    virDomainPtr ddom;
    int state = 0, reason = 0, r = -1;

    if (!xml)
        return -1;
    if (!(ddom = virDomainDefineXML(p->dst->conn, xml))) {
        virt_error_libvirt("cannot define domain '%s' on '%s'", p->dom->name, p->o->to);
        return -1;
    }
    if (p->running && virDomainCreate(ddom) < 0)
        virt_error_libvirt("cannot start domain '%s' on '%s'", p->dom->name, p->o->to);
    else if (virDomainIsPersistent(ddom) != 1)
        vk_error(VK_ERR_LIBVIRT, "domain '%s' is not persistent on '%s'.", p->dom->name, p->o->to);
    else if (p->running && (virDomainGetState(ddom, &state, &reason, 0) < 0 ||
                            (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED)))
        vk_error(VK_ERR_LIBVIRT, "domain '%s' does not run on '%s' after its start.", p->dom->name,
                 p->o->to);
    else
        r = 0;
    if (r == 0 && p->down_ns)
        p->res->downtime_ms = (int64_t)((vk_now_ns() - p->down_ns) / 1000000);
    virDomainFree(ddom);
    return r;
}

static int undefine_source(struct planned *p)
{
    unsigned int fl = VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                      VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                      VIR_DOMAIN_UNDEFINE_KEEP_NVRAM;

    if (virDomainUndefineFlags(p->dom->dom, fl) < 0) {
        virt_error_libvirt("cannot undefine domain '%s' on the source", p->dom->name);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- failure */

/* Remove what the move made on the destination: the domain of that name
 * (the pre-checks found none) and the volumes. */
static void dest_remove(struct planned *p)
{
    virDomainPtr d = p->dst ? virDomainLookupByName(p->dst->conn, p->dom->name) : NULL;

    if (d) {
        if (virDomainIsActive(d) == 1 && virDomainDestroy(d) < 0)
            vk_warn("cannot stop domain '%s' on '%s'", p->dom->name, p->o->to);
        if (virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                                          VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                          VIR_DOMAIN_UNDEFINE_NVRAM) < 0)
            vk_warn("cannot undefine domain '%s' on '%s'", p->dom->name, p->o->to);
        virDomainFree(d);
    }
    for (size_t i = 0; i < p->nr_vols; i++)
        if (p->vols[i].vol && virStorageVolDelete(p->vols[i].vol, 0) < 0)
            vk_warn("cannot delete volume '%s' on '%s'",
                    p->vols[i].path ? p->vols[i].path : p->vols[i].disk, p->o->to);
}

static void rollback(struct planned *p)
{
    dest_remove(p);
    /* Stopped here (or by the guest, on our request, after all). */
    if ((p->shut_down || p->shutdown_sent) && !domain_runs(p->dom))
        p->shut_down = true;
    if (p->shut_down && !domain_runs(p->dom) && virDomainCreate(p->dom->dom) < 0) {
        virErrorPtr e = virGetLastError();
        p->restart_error = vk_strdup(e && e->message ? e->message : "unknown libvirt error");
    }
    p->res->source_running = domain_runs(p->dom);
    if (p->shut_down && p->res->source_running && p->down_ns)
        p->res->downtime_ms = (int64_t)((vk_now_ns() - p->down_ns) / 1000000);
}

/* What state the failure left things in, and what to do next. */
static const char *failure_advice(const struct planned *p)
{
    if (p->step == MIGRATE_STEP_UNDEFINE)
        return "The domain runs on the destination; its definition is still on the source: "
               "undefine it there (its disk files are kept).";
    if (p->step == MIGRATE_STEP_SHUTDOWN && p->res->source_running && !p->shut_down)
        return "The domain still runs on the source (the guest was asked to shut down); nothing "
               "was made on the destination.  Retry with a longer --shutdown-timeout, or --force "
               "to destroy it.";
    if (p->running && !p->res->source_running)
        return "The domain could not be started again on the source: start it there.";
    if (p->running)
        return "The domain runs on the source again and nothing of it is left on the "
               "destination.  Fix the cause and run the move again.";
    return "The domain stays on the source and nothing of it is left on the destination.  Fix "
           "the cause and run the move again.";
}

/* Keep the failure's message and code before the rollback calls libvirt. */
static void fail_keep(struct planned *p)
{
    if (p->why)
        return;
    p->why = vk_strdup(vk_error_message() ? vk_error_message() : "unknown error");
    p->code = vk_error_code() ? vk_error_code() : VK_ERR_LIBVIRT;
}

static void fail_record(struct planned *p)
{
    const char *why;

    fail_keep(p);
    why = p->why ? p->why : "unknown error";
    if (p->res->error)
        return;
    p->res->failed_step = steps[p->step].name;
    if (p->step == MIGRATE_STEP_CHECKS)
        p->res->error = vk_strdup(why);
    else
        p->res->error =
            vk_asprintf("planned move of domain '%s' to '%s' failed at step '%s': %s %s%s%s%s",
                        p->dom->name, p->o->to, steps[p->step].name, why, failure_advice(p),
                        p->restart_error ? " (libvirt: " : "",
                        p->restart_error ? p->restart_error : "", p->restart_error ? ")" : "");
    vk_error(p->code, "%s", p->res->error ? p->res->error : why);
}

/* ---------------------------------------------------------------- the run */

static int64_t job_begin(struct planned *p)
{
    struct catalog_job job = {.kind = (char *)"migrate-planned",
                              .domain = p->dom->name,
                              .target = (char *)p->o->to,
                              .state = CATALOG_JOB_RUNNING};

    if (!p->cat)
        return 0;
    return catalog_job_insert(p->cat, &job);
}

static void job_end(struct planned *p, int ret)
{
    enum catalog_job_state st = CATALOG_JOB_SUCCEEDED;
    CLEANUP_FREE char *why = ret < 0 && p->res->error ? vk_strdup(p->res->error) : NULL;

    if (!p->cat || p->res->job_id <= 0)
        return;
    if (ret < 0)
        st = p->code == VK_ERR_INTERRUPTED ? CATALOG_JOB_CANCELLED : CATALOG_JOB_FAILED;
    if (p->res->downtime_ms >= 0 &&
        catalog_job_set_downtime(p->cat, p->res->job_id, p->res->downtime_ms) < 0)
        vk_warn("cannot record the downtime of job %" PRId64 ": %s", p->res->job_id,
                vk_error_message());
    if (catalog_job_finish(p->cat, p->res->job_id, st, why, p->res->seconds) < 0)
        vk_warn("cannot record the end of job %" PRId64 ": %s", p->res->job_id, vk_error_message());
    if (ret == 0)
        migrate_move_record(p->cat, p->o, p->dom ? p->dom->name : p->o->domain,
                            p->dom ? p->dom->uuid : NULL, "planned");
}

/* The steps that move data, up to the domain running on the destination. */
static int run_steps(struct planned *p)
{
    if (p->running && (step_begin(p, MIGRATE_STEP_BACKUP) < 0 || backup_take(p) < 0))
        return -1;
    if (p->running && (step_begin(p, MIGRATE_STEP_SHUTDOWN) < 0 || shutdown_wait(p) < 0))
        return -1;
    if (step_begin(p, MIGRATE_STEP_FINAL) < 0 || backup_take(p) < 0 ||
        step_begin(p, MIGRATE_STEP_RESTORE) < 0 || restore_staging(p) < 0 ||
        step_begin(p, MIGRATE_STEP_UPLOAD) < 0 || upload_all(p) < 0 ||
        step_begin(p, MIGRATE_STEP_VERIFY) < 0 || verify_all(p) < 0 ||
        step_begin(p, MIGRATE_STEP_DEFINE) < 0 || define_start(p) < 0)
        return -1;
    return 0;
}

static int run_move(struct planned *p)
{
    int ret;

    if ((p->res->job_id = job_begin(p)) < 0) {
        p->res->job_id = 0;
        return -1;
    }
    ret = run_steps(p);
    if (ret < 0) {
        fail_keep(p);
        rollback(p);
        fail_record(p);
    } else if (step_begin(p, MIGRATE_STEP_UNDEFINE) < 0 || undefine_source(p) < 0) {
        fail_record(p);
        ret = -1;
    }
    p->res->seconds = (double)(vk_now_ns() - p->start_ns) / 1e9;
    job_end(p, ret);
    return ret;
}

static int open_both(struct planned *p)
{
    if (!(p->src = virt_conn_open(p->o->from, 0)) ||
        !(p->dom = virt_domain_lookup(p->src, p->o->domain)))
        return -1;
    p->running = domain_runs(p->dom);
    if (migrate_options_check(p->o, p->running) < 0)
        return -1;
    if (!(p->dst = virt_conn_open(p->o->to, 0)))
        p->connect_error = vk_strdup(vk_error_message());
    return 0;
}

static void planned_free(struct planned *p)
{
    if (p->staging && virt_rundir_remove(p->staging) < 0)
        vk_warn("cannot remove staging directory '%s': %s", p->staging, vk_error_message());
    free(p->staging);
    if (p->restored)
        restore_result_clear(&p->rr);
    for (size_t i = 0; i < p->nr_vols; i++) {
        if (p->vols[i].vol)
            virStorageVolFree(p->vols[i].vol);
        free(p->vols[i].disk);
        free(p->vols[i].path);
        free(p->vols[i].image);
    }
    free(p->vols);
    if (p->pool)
        virStoragePoolFree(p->pool);
    free(p->xml);
    free(p->connect_error);
    free(p->restart_error);
    free(p->why);
    virt_domain_free(p->dom);
    virt_conn_close(p->dst);
    virt_conn_close(p->src);
}

int migrate_planned_run(struct catalog *cat, const struct migrate_options *o, unsigned int flags,
                        struct migrate_result *res)
{
    struct planned p = {.o = o, .flags = flags, .res = res, .cat = cat, .start_ns = vk_now_ns()};
    int ret = -1;

    memset(res, 0, sizeof(*res));
    res->downtime_ms = -1;
    res->planned = true;
    res->dry_run = flags & MIGRATE_DRY_RUN;
    if (!(res->domain = vk_strdup(o->domain)) || !(res->to = vk_strdup(o->to)))
        goto out;
    if (open_both(&p) < 0) {
        res->error = vk_strdup(vk_error_message());
        goto out;
    }
    if (pre_checks(&p) < 0)
        fail_record(&p);
    else if (flags & MIGRATE_DRY_RUN)
        ret = 0;
    else
        ret = run_move(&p);
out:
    res->ok = ret == 0;
    res->seconds = (double)(vk_now_ns() - p.start_ns) / 1e9;
    if (ret < 0 && res->error)
        vk_error(p.code            ? p.code
                 : vk_error_code() ? vk_error_code()
                                   : VK_ERR_LIBVIRT,
                 "%s", res->error);
    planned_free(&p);
    return ret;
}
