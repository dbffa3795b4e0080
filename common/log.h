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
 */
#ifndef VIRTKEEP_LOG_H
#define VIRTKEEP_LOG_H

#include <stdbool.h>

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
