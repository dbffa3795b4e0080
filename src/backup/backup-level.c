/* virtkeep - which level the next backup takes, checked against libvirt.
 *
 * The catalog says what the chain is (catalog_chain_next); libvirt must
 * still hold the parent checkpoint with usable bitmaps.  Checkpoints that
 * libvirt forgot (a transient domain, lost daemon state) are redefined from
 * the XML saved in the catalog.  A chain that cannot be used (error 109
 * after a QEMU crash, "Bitmap already exists", a bitmap gone) turns the
 * backup into a full one: our checkpoints are discarded and one line says
 * why.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/backup/backup-int.h"

static void notice(const struct backup_level_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void notice(const struct backup_level_ctx *x, const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (x->notice)
        x->notice(x->opaque, line);
}

/* Why a chain whose parent checkpoint is CP cannot be used. */
static char *reason_for(const char *cp, const char *why)
{
    switch (virt_last_failure()) {
    case VIRT_FAIL_CHECKPOINT_INCONSISTENT:
        return vk_asprintf("checkpoint '%s' is inconsistent (QEMU crashed?), discarded it", cp);
    case VIRT_FAIL_BITMAP_EXISTS:
        return vk_asprintf("a stale bitmap blocks checkpoint '%s' (Bitmap already exists), "
                           "discarded it",
                           cp);
    case VIRT_FAIL_CHECKPOINT_MISSING:
        return vk_asprintf("checkpoint '%s' or its bitmap is gone, discarded it", cp);
    default:
        return vk_asprintf("%s", why ? why : "the chain cannot be used");
    }
}

/* Discard every checkpoint of ours, newest first: the chain is broken. */
static int discard_ours(const struct backup_level_ctx *x)
{
    CLEANUP_STRV char **names = virt_checkpoint_list(x->dom, 0);
    size_t n = names ? vk_strv_len(names) : 0;

    if (!names)
        return -1;
    while (n-- > 0)
        if (virt_checkpoint_discard(x->dom, names[n], x->disks, x->selected, 0) < 0)
            return -1;
    return 0;
}

int backup_level_fallback(const struct backup_level_ctx *x, struct catalog_next *next,
                          const char *why)
{
    CLEANUP_FREE char *msg = vk_strdup(why ? why : vk_error_message());
    CLEANUP_FREE char *cp = next->parent_checkpoint ? vk_strdup(next->parent_checkpoint) : NULL;
    char *reason = reason_for(cp ? cp : "?", msg);

    if (!reason)
        return -1;
    vk_debug("domain '%s': falling back to a full backup: %s", x->domain, msg ? msg : "");
    catalog_next_clear(next);
    next->level = CATALOG_LEVEL_FULL;
    next->reason = reason;
    if (cp && discard_ours(x) < 0) {
        vk_error_prefix("cannot clean up the checkpoints of domain '%s'", x->domain);
        return -1;
    }
    notice(x, "%s: taking a full backup: %s", x->domain, reason);
    return 0;
}

/* Redefine the checkpoints of the current chain that libvirt lost. */
static int chain_redefine(const struct backup_level_ctx *x)
{
    struct catalog_backups *chain = NULL;
    int r = 0;

    if (catalog_chain_current(x->all, x->domain, &chain) < 0)
        return -1;
    for (size_t i = 0; r == 0 && i < chain->count; i++) {
        const struct catalog_backup *b = &chain->items[i];
        if (!b->checkpoint || !b->checkpoint_xml)
            continue;
        r = virt_checkpoint_exists(x->dom, b->checkpoint);
        if (r == 1) {
            r = 0;
        } else if (r == 0) {
            vk_info("domain '%s': redefining checkpoint '%s' that libvirt lost", x->domain,
                    b->checkpoint);
            r = virt_checkpoint_redefine(x->dom, b->checkpoint_xml, 0);
        }
    }
    catalog_backups_free(chain);
    return r;
}

static bool has_history(const struct backup_level_ctx *x)
{
    return catalog_chain_latest(x->all, x->domain) != NULL;
}

int backup_level_choose(const struct backup_level_ctx *x, struct catalog_next *next)
{
    if (catalog_chain_next(x->all, x->domain, x->requested, next) < 0) {
        if (vk_error_code() != VK_ERR_NOT_FOUND || x->requested == CATALOG_LEVEL_COPY)
            return -1;
        return backup_level_fallback(x, next, NULL);
    }
    if (next->level == CATALOG_LEVEL_FULL && next->reason && x->requested == CATALOG_LEVEL_AUTO &&
        has_history(x))
        notice(x, "%s: taking a full backup: %s", x->domain, next->reason);
    if (next->level != CATALOG_LEVEL_INC && next->level != CATALOG_LEVEL_DIFF)
        return 0;
    /* A chain that cannot be redefined is a chain that cannot be used. */
    if (chain_redefine(x) < 0)
        return backup_level_fallback(x, next, NULL);
    if (virt_checkpoint_check(x->dom, next->parent_checkpoint, x->disks, x->selected, 0) == 0)
        return 0;
    if (!virt_error_needs_full())
        return -1;
    return backup_level_fallback(x, next, NULL);
}
