/* virtkeep - logging. */
#include <config.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

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

static enum vk_log_sink sink = VK_LOG_SINK_STDERR;

int vk_log_priority(enum vk_log_level level)
{
    switch (level) {
    case VK_LOG_QUIET:
        return LOG_ERR;
    case VK_LOG_WARN:
        return LOG_WARNING;
    case VK_LOG_INFO:
        return LOG_INFO;
    case VK_LOG_DEBUG:
        return LOG_DEBUG;
    }
    return LOG_INFO;
}

char *vk_log_prefix(enum vk_log_sink s, enum vk_log_level level, char *buf, size_t len)
{
    const char *name = level_name(level);
    char pri[8] = "";

    if (s == VK_LOG_SINK_JOURNAL)
        snprintf(pri, sizeof pri, "<%d>", vk_log_priority(level));
    if (s == VK_LOG_SINK_SYSLOG)
        snprintf(buf, len, "%s%s", name ? name : "", name ? ": " : "");
    else
        snprintf(buf, len, "%s%s: %s%s", pri, prog, name ? name : "", name ? ": " : "");
    return buf;
}

void vk_log_set_sink(enum vk_log_sink s)
{
    pthread_mutex_lock(&log_lock);
    if (s == VK_LOG_SINK_SYSLOG && sink != VK_LOG_SINK_SYSLOG)
        openlog(prog, LOG_PID, LOG_DAEMON);
    else if (s != VK_LOG_SINK_SYSLOG && sink == VK_LOG_SINK_SYSLOG)
        closelog();
    sink = s;
    pthread_mutex_unlock(&log_lock);
}

enum vk_log_sink vk_log_sink_auto(void)
{
    const char *js = getenv("JOURNAL_STREAM");

    return js && *js ? VK_LOG_SINK_JOURNAL : VK_LOG_SINK_STDERR;
}

static void vemit(enum vk_log_level level, const char *fmt, va_list ap)
{
    char pre[128];

    pthread_mutex_lock(&log_lock);
    vk_log_prefix(sink, level, pre, sizeof pre);
    if (sink == VK_LOG_SINK_SYSLOG) {
        char msg[2048];
        vsnprintf(msg, sizeof msg, fmt, ap);
        syslog(vk_log_priority(level), "%s%s", pre, msg);
    } else {
        fputs(pre, stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
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
