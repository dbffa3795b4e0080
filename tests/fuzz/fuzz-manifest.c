/* libFuzzer target: the manifest parser.  Whatever the input, manifest_parse
 * fails cleanly or gives a manifest that builds back into JSON which parses
 * to the same text again.  (An inc or diff of version 1 or 2 has no digest
 * of its parent's manifest, which the current version requires: it gets
 * one, as a writer would have to give it.) */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/format/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manifest m, again;
    char *json, *json2;

    if (manifest_parse((const char *)data, size, "fuzz", &m) < 0)
        return 0;
    if (m.parent_id && !m.has_parent_manifest_sha256) {
        if (m.version >= 3)
            abort(); /* version 3 requires it */
        m.has_parent_manifest_sha256 = true;
        memset(m.parent_manifest_sha256, 0x5a, sizeof m.parent_manifest_sha256);
    }
    json = manifest_to_json(&m, 0);
    if (!json || manifest_parse(json, strlen(json), "fuzz", &again) < 0)
        abort(); /* a parsed manifest is always valid */
    json2 = manifest_to_json(&again, 0);
    if (!json2 || strcmp(json, json2) != 0)
        abort();
    free(json);
    free(json2);
    manifest_clear(&m);
    manifest_clear(&again);
    return 0;
}
