/* virtkeep - SQLite catalog.  (placeholder: being written) */
#include <config.h>

#include "catalog/catalog.h"
