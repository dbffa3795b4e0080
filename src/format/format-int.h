/* virtkeep - what the files of src/format/ share and nobody else uses. */
#ifndef VIRTKEEP_FORMAT_INT_H
#define VIRTKEEP_FORMAT_INT_H

#include "common/error.h"
#include "src/format/format.h"

/* The tar block, and the names and magic that docs/FORMAT.md gives. */
#define ARCHIVE_BLOCK 512u
#define ARCHIVE_INDEX_FORMAT_NAME "virtkeep-archive-index"
#define ARCHIVE_TRAILER_MAGIC "VKARCHTR"
#define ARCHIVE_TRAILER_NAME "trailer"

/* Check the fields of HDR: the writer's input (CODE VK_ERR_INVALID) or a
 * header read back (VK_ERR_CORRUPT).  Fails with "WHAT is invalid: why". */
int archive_header_check(const struct archive_header *hdr, enum vk_error_code code,
                         const char *what);

#endif
