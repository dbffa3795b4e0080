/* virtkeep - logging. */
#include <config.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum vk_log_level vk_log_level = VK_LOG_INFO;
bool vk_log_data = false;

static const char *prog = "virtkeep";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void vk_log_init(const char *progname)
{
    const char *env = getenv("VIRTKEEP_DEBUG");

    if (progname)
        prog = progname;
    if (env && *env && strcmp(env, "0") != 0) {
        vk_log_level = VK_LOG_DEBUG;
        vk_log_data = strcmp(env, "data") == 0 || strcmp(env, "2") == 0;
    }
}

void vk_log_set_level(enum vk_log_level level)
{
    /* VIRTKEEP_DEBUG wins over -q/-v: it is how a user asks for a trace. */
    if (vk_log_level == VK_LOG_DEBUG && getenv("VIRTKEEP_DEBUG"))
        return;
    vk_log_level = level;
}

static const char *level_name(enum vk_log_level level)
{
    switch (level) {
    case VK_LOG_QUIET:
        return "error";
    case VK_LOG_WARN:
        return "warning";
    case VK_LOG_INFO:
        return NULL;
    case VK_LOG_DEBUG:
        return "debug";
    }
    return NULL;
}

static void vemit(enum vk_log_level level, const char *fmt, va_list ap)
{
    const char *name = level_name(level);

    pthread_mutex_lock(&log_lock);
    if (name)
        fprintf(stderr, "%s: %s: ", prog, name);
    else
        fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&log_lock);
}

void vk_log_emit(enum vk_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vemit(level, fmt, ap);
    va_end(ap);
}

void vk_log_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vemit(VK_LOG_QUIET, fmt, ap);
    va_end(ap);
}
