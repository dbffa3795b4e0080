/* virtkeep - what a migration's options mean: their combinations checked,
 * the virDomainMigrateFlags and typed parameters they give, and the cancel
 * flag.  migrate.c, migrate-planned.c and migrate-evacuate.c use them; the
 * command line parses them (src/cli/cli-migrate.c). */
#include <config.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>

#include "common/error.h"
#include "common/util.h"
#include "src/migrate/migrate.h"

static int planned_options_check(const struct migrate_options *o)
{
    if (!o->planned) {
        if (o->via || o->shutdown_timeout || o->force || o->dest_pool) {
            vk_error(VK_ERR_INVALID,
                     "--via, --shutdown-timeout, --force and --dest-pool need --planned.");
            return -1;
        }
        return 0;
    }
    if (o->mode != MIGRATE_MODE_AUTO || o->copy_storage || o->dest_dir || o->unsafe ||
        o->auto_converge || o->max_downtime_ms || o->bandwidth_mib || o->postcopy_after ||
        o->parallel || o->migrate_uri || o->timeout) {
        vk_error(VK_ERR_INVALID,
                 "--planned moves the domain through backups: the live-migration options "
                 "(--live, --offline, --copy-storage, --dest-dir, --unsafe, --auto-converge, "
                 "--max-downtime, --bandwidth, --postcopy-after, --parallel-connections, "
                 "--migrate-uri, --timeout) do not apply to it.");
        return -1;
    }
    return 0;
}

int migrate_options_check(const struct migrate_options *o, bool running)
{
    if (!o->to || !*o->to) {
        vk_error(VK_ERR_INVALID, "a migration needs a destination URI (--to).");
        return -1;
    }
    if (planned_options_check(o) < 0)
        return -1;
    if (o->dest_dir && !o->copy_storage) {
        vk_error(VK_ERR_INVALID, "--dest-dir only makes sense with --copy-storage.");
        return -1;
    }
    if (!running && o->mode == MIGRATE_MODE_LIVE) {
        vk_error(VK_ERR_INVALID,
                 "domain '%s' is not running: a live migration needs a running domain "
                 "(use --offline).",
                 o->domain);
        return -1;
    }
    if (!running && o->copy_storage) {
        vk_error(VK_ERR_INVALID,
                 "domain '%s' is not running: --copy-storage needs QEMU to copy "
                 "the disks; copy the images and migrate --offline.",
                 o->domain);
        return -1;
    }
    if ((!running || o->mode == MIGRATE_MODE_OFFLINE) && o->postcopy_after) {
        vk_error(VK_ERR_INVALID, "--postcopy-after needs a live migration.");
        return -1;
    }
    return 0;
}

unsigned long migrate_flags(const struct migrate_options *o, bool running)
{
    unsigned long f = VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;

    if (!running)
        return f | VIR_MIGRATE_OFFLINE;
    if (o->mode != MIGRATE_MODE_OFFLINE)
        f |= VIR_MIGRATE_LIVE;
    if (o->copy_storage)
        f |= VIR_MIGRATE_NON_SHARED_DISK;
    if (o->unsafe)
        f |= VIR_MIGRATE_UNSAFE;
    if (o->auto_converge)
        f |= VIR_MIGRATE_AUTO_CONVERGE;
    if (o->postcopy_after)
        f |= VIR_MIGRATE_POSTCOPY;
    if (o->parallel > 1)
        f |= VIR_MIGRATE_PARALLEL;
    return f;
}

int migrate_params_build(const struct migrate_options *o, const char *dest_xml,
                         const char *persist_xml, virTypedParameterPtr *params, int *nparams)
{
    int max = 0, r = 0;

    *params = NULL;
    *nparams = 0;
    /* The typed-parameter helpers report through libvirt's thread-local
     * error, which needs the library initialised (a connection does it). */
    if (virInitialize() < 0) {
        vk_error(VK_ERR_LIBVIRT, "cannot initialise libvirt.");
        return -1;
    }
    if (o->migrate_uri)
        r = virTypedParamsAddString(params, nparams, &max, VIR_MIGRATE_PARAM_URI, o->migrate_uri);
    if (r == 0 && dest_xml)
        r = virTypedParamsAddString(params, nparams, &max, VIR_MIGRATE_PARAM_DEST_XML, dest_xml);
    if (r == 0 && persist_xml)
        r = virTypedParamsAddString(params, nparams, &max, VIR_MIGRATE_PARAM_PERSIST_XML,
                                    persist_xml);
    if (r == 0 && o->bandwidth_mib)
        r = virTypedParamsAddULLong(params, nparams, &max, VIR_MIGRATE_PARAM_BANDWIDTH,
                                    o->bandwidth_mib);
    if (r == 0 && o->parallel > 1)
        r = virTypedParamsAddInt(params, nparams, &max, VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS,
                                 (int)o->parallel);
    if (r < 0) {
        virTypedParamsFree(*params, *nparams);
        *params = NULL;
        *nparams = 0;
        vk_error(VK_ERR_INTERNAL, "cannot build the migration parameters.");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- cancel */

/* The front end's signal handler sets *o->cancel (cli_signals_catch); the
 * monitor thread sees it and aborts the job. */
bool migrate_cancelled(const struct migrate_options *o)
{
    return o->cancel && *o->cancel;
}
