/* virtkeep - logging that costs nothing when off (after redis serverLog and
 * libnbd debug()).
 *
 * Each macro checks the level before evaluating its arguments, so a disabled
 * debug line costs one load and one branch.  Data-path debugging (per chunk,
 * per read) is a separate switch so that control-path debugging stays
 * readable:
 *
 *   VIRTKEEP_DEBUG=1      control-path debug
 *   VIRTKEEP_DEBUG=data   control-path and data-path debug
 *
 * Messages go to stderr, one line each, prefixed with "virtkeep: LEVEL: ".
 * A daemon may switch the sink: to syslog (openlog with LOG_DAEMON), or to
 * stderr read by systemd-journald, where each line starts with the
 * sd-daemon priority prefix "<N>" (vk_log_sink_auto picks that when
 * $JOURNAL_STREAM is set).
 */
#ifndef VIRTKEEP_LOG_H
#define VIRTKEEP_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum vk_log_level {
    VK_LOG_QUIET = 0, /* errors only */
    VK_LOG_WARN,
    VK_LOG_INFO,
    VK_LOG_DEBUG,
};

extern enum vk_log_level vk_log_level;
extern bool vk_log_data;

/* Read VIRTKEEP_DEBUG and set the default level (INFO, or DEBUG). */
void vk_log_init(const char *progname);
void vk_log_set_level(enum vk_log_level level);

enum vk_log_sink {
    VK_LOG_SINK_STDERR,  /* "prog: level: message" */
    VK_LOG_SINK_JOURNAL, /* "<N>prog: level: message", N the syslog priority */
    VK_LOG_SINK_SYSLOG,  /* syslog(3), facility LOG_DAEMON, ident the program name */
};
/* Switch the sink (syslog: openlog once; leaving syslog: closelog). */
void vk_log_set_sink(enum vk_log_sink sink);
/* STDERR, or JOURNAL when $JOURNAL_STREAM is set. */
enum vk_log_sink vk_log_sink_auto(void);
/* The syslog priority of a level (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). */
int vk_log_priority(enum vk_log_level level);
/* The start of a line for SINK and LEVEL into BUF ("<3>virtkeepd: error: ");
 * syslog lines have no program name (the ident says it).  Returns BUF. */
char *vk_log_prefix(enum vk_log_sink sink, enum vk_log_level level, char *buf, size_t len);

void vk_log_emit(enum vk_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Error lines are always printed (they are the one place an error is shown). */
void vk_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define VK_LOG_AT(lvl, ...)                                                                        \
    do {                                                                                           \
        if (__builtin_expect(vk_log_level >= (lvl), 0))                                            \
            vk_log_emit((lvl), __VA_ARGS__);                                                       \
    } while (0)

#define vk_warn(...) VK_LOG_AT(VK_LOG_WARN, __VA_ARGS__)
#define vk_info(...) VK_LOG_AT(VK_LOG_INFO, __VA_ARGS__)
#define vk_debug(...) VK_LOG_AT(VK_LOG_DEBUG, __VA_ARGS__)
#define vk_debug_data(...)                                                                         \
    do {                                                                                           \
        if (__builtin_expect(vk_log_data, 0))                                                      \
            vk_log_emit(VK_LOG_DEBUG, __VA_ARGS__);                                                \
    } while (0)

#endif
