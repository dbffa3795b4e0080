/* libFuzzer target for target URL parsing and key validation:
 *
 *   clang -fsanitize=fuzzer,address,undefined -I. -IBUILDDIR tests/fuzz/fuzz-url.c \
 *       transport/transport.c transport/local.c common/[a-z]*.c -o fuzz-url
 *   ./fuzz-url -max_total_time=30
 *
 * (transport.c's registry refers to every backend, so the backends' files,
 * or libtransport.a and its libraries, must be linked too.)
 *
 * The input, NUL-terminated, is parsed as a URL, then as a key; a parsed URL
 * is asked for a few query parameters and for the first query name in the
 * input.  Nothing may crash or leak. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"endpoint", "region", "", "a&b"};
    struct transport_url url;
    char *s = malloc(size + 1);

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (transport_url_parse(s, &url) == 0) {
        const char *eq = url.query ? strchr(url.query, '=') : NULL;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            free(transport_url_query_get(&url, names[i]));
        if (eq) {
            char *name = strndup(url.query, (size_t)(eq - url.query));
            free(transport_url_query_get(&url, name));
            free(name);
        }
        transport_url_clear(&url);
    }
    transport_key_valid(s);
    vk_error_clear();
    free(s);
    return 0;
}
