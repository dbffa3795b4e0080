/* virtkeep - what the virt*.c files share and nobody else uses. */
#ifndef VIRTKEEP_VIRT_INT_H
#define VIRTKEEP_VIRT_INT_H

#include "src/virt/virt.h"

/* Install the libvirt error handler that keeps libvirt from printing to
 * stderr (once per process; virt_conn_open calls it). */
void virt_error_init(void);
/* Record the kind of the failure that is being reported. */
void virt_failure_set(enum virt_failure f);

#endif
