/* virtkeep - file:// backend.  (placeholder: being written) */
#include <config.h>

#include "transport/transport-int.h"
