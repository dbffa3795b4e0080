/* virtkeep - what the virt*.c files share and nobody else uses. */
#ifndef VIRTKEEP_VIRT_INT_H
#define VIRTKEEP_VIRT_INT_H

#include "src/virt/virt.h"

/* Record the kind of the failure that is being reported. */
void virt_failure_set(enum virt_failure f);

#endif
