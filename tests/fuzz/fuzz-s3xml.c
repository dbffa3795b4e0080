/* libFuzzer target: the XML answers of S3 (s3-xml.c): errors, listing
 * pages, multipart upload ids and completions.  Whatever the bytes, the
 * parsers return cleanly, never crash or leak, and what they return holds
 * together. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "transport/s3-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    struct s3_error_info info;
    struct s3_list_page page;
    char *id;

    if (s3_xml_error(body, size, &info) && (!info.code[0] || strlen(info.code) >= sizeof info.code))
        abort();
    if (s3_xml_list(body, size, &page) == 0) {
        for (size_t i = 0; i < page.n; i++)
            if (!page.entries[i].key || !page.entries[i].key[0])
                abort();
        if (page.truncated && (!page.next_token || !page.next_token[0]))
            abort();
        s3_list_page_clear(&page);
    }
    id = s3_xml_upload_id(body, size);
    if (id && !id[0])
        abort();
    free(id);
    (void)s3_xml_complete_ok(body, size);
    vk_error_clear();
    return 0;
}
