/* virtkeep - thread-local last error. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

struct last_error {
    enum vk_error_code code;
    int errnum;
    char *msg;
};

static __thread struct last_error last;

/* A thread that exits with an error recorded must not leak its message: a
 * pthread key's destructor frees it. */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void free_at_thread_exit(void *ptr)
{
    struct last_error *e = ptr;

    free(e->msg);
    e->msg = NULL;
}

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, free_at_thread_exit);
}

static void replace_message(char *msg)
{
    free(last.msg);
    last.msg = msg;
    if (msg) {
        pthread_once(&exit_key_once, make_exit_key);
        pthread_setspecific(exit_key, &last);
    }
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;

    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

void vk_error(enum vk_error_code code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    replace_message(vformat(fmt, ap));
    va_end(ap);
    last.code = code;
    last.errnum = 0;
}

void vk_error_errno(int errnum, const char *fmt, ...)
{
    va_list ap;
    char *head, *msg = NULL;

    va_start(ap, fmt);
    head = vformat(fmt, ap);
    va_end(ap);
    if (head && asprintf(&msg, "%s: %s", head, strerror(errnum)) < 0)
        msg = NULL;
    free(head);
    replace_message(msg);
    last.code = vk_error_code_from_errno(errnum);
    last.errnum = errnum;
}

void vk_error_prefix(const char *fmt, ...)
{
    va_list ap;
    char *head, *msg = NULL;

    va_start(ap, fmt);
    head = vformat(fmt, ap);
    va_end(ap);
    if (!head)
        return;
    if (asprintf(&msg, "%s: %s", head, last.msg ? last.msg : "unknown error") < 0)
        msg = NULL;
    free(head);
    if (msg)
        replace_message(msg);
    if (last.code == VK_ERR_NONE)
        last.code = VK_ERR_INTERNAL;
}

const char *vk_error_message(void)
{
    if (last.code != VK_ERR_NONE && !last.msg)
        return "out of memory while formatting an error message";
    return last.msg;
}

enum vk_error_code vk_error_code(void)
{
    return last.code;
}

int vk_error_errnum(void)
{
    return last.errnum;
}

void vk_error_clear(void)
{
    replace_message(NULL);
    last.code = VK_ERR_NONE;
    last.errnum = 0;
}

enum vk_error_code vk_error_code_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return VK_ERR_INTERNAL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return VK_ERR_NO_SPACE;
    case EACCES:
    case EPERM:
    case EROFS:
        return VK_ERR_PERMISSION;
    case ENOENT:
    case ENOTDIR:
        return VK_ERR_NOT_FOUND;
    case EINVAL:
    case ENAMETOOLONG:
    case ERANGE:
        return VK_ERR_INVALID;
    case ECONNREFUSED:
    case ECONNRESET:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EPIPE:
        return VK_ERR_NETWORK;
    case EBUSY:
    case EWOULDBLOCK:
        return VK_ERR_BUSY;
    case EINTR:
        return VK_ERR_INTERRUPTED;
    case ENOTSUP:
        return VK_ERR_UNSUPPORTED;
    default:
        return VK_ERR_IO;
    }
}

const char *vk_error_code_name(enum vk_error_code code)
{
    static const char *const names[] = {
        [VK_ERR_NONE] = "none",
        [VK_ERR_INTERNAL] = "internal",
        [VK_ERR_INVALID] = "invalid",
        [VK_ERR_NOT_FOUND] = "not-found",
        [VK_ERR_IO] = "io",
        [VK_ERR_NO_SPACE] = "no-space",
        [VK_ERR_PERMISSION] = "permission",
        [VK_ERR_NETWORK] = "network",
        [VK_ERR_AUTH] = "auth",
        [VK_ERR_BUSY] = "busy",
        [VK_ERR_CORRUPT] = "corrupt",
        [VK_ERR_LIBVIRT] = "libvirt",
        [VK_ERR_UNSUPPORTED] = "unsupported",
        [VK_ERR_INTERRUPTED] = "interrupted",
    };

    if ((unsigned int)code >= sizeof names / sizeof names[0] || !names[code])
        return "unknown";
    return names[code];
}
