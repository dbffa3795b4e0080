/* virtkeep - version information. */
#include <config.h>

#include "common/version.h"

const char *vk_version(void)
{
    return PACKAGE_VERSION;
}
