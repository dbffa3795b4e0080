/* virtkeep - transport registry, URL parsing and shared wrappers.
 * (placeholder: being written) */
#include <config.h>

#include "transport/transport-int.h"
