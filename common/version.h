/* virtkeep - version information. */
#ifndef VIRTKEEP_VERSION_H
#define VIRTKEEP_VERSION_H

const char *vk_version(void);

#endif
