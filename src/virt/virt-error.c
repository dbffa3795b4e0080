/* virtkeep - libvirt errors (see virt.h): the handler that keeps libvirt
 * quiet, the map from a virError to a vk_error code and a virt_failure, and
 * the last failure of this thread.
 *
 * Every libvirt failure is recorded once, as a sentence naming the domain
 * (and checkpoint or disk) followed by libvirt's own message.  The kind of
 * failure (error 109, "Bitmap already exists", no guest agent) is kept
 * beside the message so that the engine can decide to fall back to a full.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "src/virt/virt-int.h"
#include "src/virt/virt.h"

static __thread enum virt_failure last_failure;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

/* libvirt prints every error to stderr unless a handler takes it; we report
 * errors ourselves, once, through vk_error. */
static void error_swallow(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err;
}

static void handler_install(void)
{
    virSetErrorFunc(NULL, error_swallow);
}

void virt_error_init(void)
{
    pthread_once(&handler_once, handler_install);
}

void virt_failure_set(enum virt_failure f)
{
    last_failure = f;
}

enum virt_failure virt_last_failure(void)
{
    return last_failure;
}

bool virt_error_needs_full(void)
{
    return last_failure == VIRT_FAIL_CHECKPOINT_INCONSISTENT ||
           last_failure == VIRT_FAIL_BITMAP_EXISTS || last_failure == VIRT_FAIL_CHECKPOINT_MISSING;
}

enum virt_failure virt_failure_classify(int code, const char *message)
{
    const char *m = message ? message : "";

    if (code == VIR_ERR_CHECKPOINT_INCONSISTENT || strstr(m, "inconsistent") || strstr(m, "in-use"))
        return VIRT_FAIL_CHECKPOINT_INCONSISTENT;
    if (strstr(m, "Bitmap already exists") || strstr(m, "bitmap already exists"))
        return VIRT_FAIL_BITMAP_EXISTS;
    if (code == VIR_ERR_NO_DOMAIN_CHECKPOINT)
        return VIRT_FAIL_CHECKPOINT_MISSING;
    if (code == VIR_ERR_AGENT_UNRESPONSIVE || strcasestr(m, "guest agent"))
        return VIRT_FAIL_NO_AGENT;
    return VIRT_FAIL_OTHER;
}

static enum vk_error_code code_from_libvirt(int code, enum virt_failure f)
{
    switch (code) {
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_DOMAIN_CHECKPOINT:
    case VIR_ERR_NO_DOMAIN_SNAPSHOT:
        return VK_ERR_NOT_FOUND;
    case VIR_ERR_OPERATION_INVALID:  /* e.g. reverting a snapshot of a running domain */
    case VIR_ERR_CONFIG_UNSUPPORTED: /* e.g. a snapshot XML libvirt cannot take */
        return VK_ERR_INVALID;
    case VIR_ERR_SYSTEM_ERROR:
        return VK_ERR_IO;
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_CANCELLED:
    case VIR_ERR_AUTH_UNAVAILABLE:
        return VK_ERR_AUTH;
    case VIR_ERR_OPERATION_DENIED:
        return VK_ERR_PERMISSION;
    case VIR_ERR_NO_SUPPORT:
        return VK_ERR_UNSUPPORTED;
    }
    return f == VIRT_FAIL_NO_AGENT ? VK_ERR_UNSUPPORTED : VK_ERR_LIBVIRT;
}

/* The RPC layer's errors when libvirtd went away or dropped us: a write to
 * the closed socket (EPIPE, ECONNRESET: SIGPIPE is ignored), end of file,
 * then "client socket is closed" for every later call. */
static bool conn_lost(const virError *e)
{
    const char *m = e->message ? e->message : "";

    if (e->domain != VIR_FROM_RPC && e->domain != VIR_FROM_REMOTE)
        return false;
    if (e->code == VIR_ERR_SYSTEM_ERROR && (e->int1 == EPIPE || e->int1 == ECONNRESET))
        return true;
    return strstr(m, "client socket is closed") || strstr(m, "End of file while reading");
}

void virt_error_libvirt(const char *fmt, ...)
{
    CLEANUP_FREE char *what = NULL;
    virErrorPtr e = virGetLastError();
    int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
    const char *msg = e && e->message ? e->message : "unknown libvirt error";
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0)
        what = NULL;
    va_end(ap);
    if (e && conn_lost(e)) {
        last_failure = VIRT_FAIL_CONN_LOST;
        vk_error(VK_ERR_NETWORK, "%s: the connection to libvirt was lost (%s)",
                 what ? what : "libvirt failed", msg);
        return;
    }
    last_failure = virt_failure_classify(code, msg);
    vk_error(code_from_libvirt(code, last_failure), "%s: %s", what ? what : "libvirt failed", msg);
}
