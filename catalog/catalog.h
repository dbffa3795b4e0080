/* virtkeep - the catalog, as callers see it.  (placeholder: being written) */
#ifndef VIRTKEEP_CATALOG_H
#define VIRTKEEP_CATALOG_H
#endif
