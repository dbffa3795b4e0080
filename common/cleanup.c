/* virtkeep - scope-cleanup helpers. */
#include <config.h>

#include <errno.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

void vk_cleanup_free(void *ptr)
{
    free(*(void **)ptr);
}

void vk_cleanup_fclose(FILE **fp)
{
    if (*fp)
        fclose(*fp);
}

void vk_cleanup_close(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

void vk_cleanup_strv(char ***strv)
{
    vk_strv_free(*strv);
}
