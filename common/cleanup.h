/* virtkeep - scope-cleanup helpers (after nbdkit's common/utils/cleanup.h).
 *
 * Declare a variable with one of these and it is released when it goes out
 * of scope, on every return path.  Every free function used here accepts NULL.
 */
#ifndef VIRTKEEP_CLEANUP_H
#define VIRTKEEP_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>

void vk_cleanup_free(void *ptr);
void vk_cleanup_fclose(FILE **fp);
void vk_cleanup_close(int *fd);
void vk_cleanup_strv(char ***strv);

#define CLEANUP_FREE __attribute__((cleanup(vk_cleanup_free)))
#define CLEANUP_FCLOSE __attribute__((cleanup(vk_cleanup_fclose)))
#define CLEANUP_CLOSE __attribute__((cleanup(vk_cleanup_close)))
#define CLEANUP_STRV __attribute__((cleanup(vk_cleanup_strv)))

/* Take ownership out of a CLEANUP_ variable: returns the value and leaves
 * NULL behind so that the cleanup does nothing. */
#define VK_STEAL(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) vk_steal_tmp_ = (p);                                                         \
        (p) = NULL;                                                                                \
        vk_steal_tmp_;                                                                             \
    })

/* Same for a file descriptor: leaves -1 behind. */
#define VK_STEAL_FD(fd)                                                                            \
    ({                                                                                             \
        int vk_steal_fd_ = (fd);                                                                   \
        (fd) = -1;                                                                                 \
        vk_steal_fd_;                                                                              \
    })

#endif
