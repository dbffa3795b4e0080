/* virtkeep - one error convention (after libnbd's lib/errors.c).
 *
 * A failing function records one message where the failure happens and
 * returns -1 or NULL.  Callers pass the failure up without logging it again;
 * they may add context in front with vk_error_prefix().  The front end prints
 * the message once and turns the code into an exit status.
 *
 * The last error is thread-local: worker threads never see each other's.
 */
#ifndef VIRTKEEP_ERROR_H
#define VIRTKEEP_ERROR_H

/* What kind of failure it was; the CLI maps these to exit codes. */
enum vk_error_code {
    VK_ERR_NONE = 0,
    VK_ERR_INTERNAL,    /* a bug or an impossible state */
    VK_ERR_INVALID,     /* bad argument, malformed input or configuration */
    VK_ERR_NOT_FOUND,   /* no such domain, backup, object or file */
    VK_ERR_IO,          /* local I/O failed */
    VK_ERR_NO_SPACE,    /* the target or a scratch area is full */
    VK_ERR_PERMISSION,  /* permission denied */
    VK_ERR_NETWORK,     /* connection refused, dropped or timed out */
    VK_ERR_AUTH,        /* wrong credentials or host key mismatch */
    VK_ERR_BUSY,        /* locked by another job */
    VK_ERR_CORRUPT,     /* checksum mismatch, truncated or corrupt archive */
    VK_ERR_LIBVIRT,     /* libvirt or QEMU refused */
    VK_ERR_UNSUPPORTED, /* valid request this build or target cannot do */
    VK_ERR_INTERRUPTED, /* SIGINT or SIGTERM */
};

/* Record an error, replacing any previous one.  The message is a whole
 * sentence naming the object, e.g. "cannot open target 'offsite': ...". */
void vk_error(enum vk_error_code code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same, and append ": strerror(errnum)".  The code is derived from errnum
 * (ENOSPC gives VK_ERR_NO_SPACE, EACCES VK_ERR_PERMISSION, ...). */
void vk_error_errno(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Put context in front of the current message: "CONTEXT: message". */
void vk_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message on this thread, or NULL when there is none. */
const char *vk_error_message(void);
/* The last code on this thread (VK_ERR_NONE when there is none). */
enum vk_error_code vk_error_code(void);
/* The errno recorded with the last error, or 0. */
int vk_error_errnum(void);
void vk_error_clear(void);

/* Map an errno to a code. */
enum vk_error_code vk_error_code_from_errno(int errnum);
/* A short stable name for a code ("no-space", "not-found", ...), for --json. */
const char *vk_error_code_name(enum vk_error_code code);

#endif
