/* virtkeep - version information. */
#include <config.h>

#include "src/version.h"

const char *vk_version(void)
{
    return PACKAGE_VERSION;
}
