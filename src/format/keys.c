/* virtkeep - object keys on a target: DOMAIN/BACKUP_ID/FILE, each component
 * encoded so that any libvirt domain name is a safe, reversible path
 * component.  docs/FORMAT.md ("Object keys") is the specification.
 */
#include <config.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/format/format.h"

#define TMP_MARK ".vk-tmp-" /* the transports' temp files: never in a key */

/* Whether byte I of S is written as %XX: '%' itself (so that decoding is
 * unambiguous), '/', control characters, a leading '.' (no hidden entry,
 * no "." or ".." component) and the '.' of the temp file mark. */
static bool escaped(const char *s, size_t i)
{
    unsigned char c = (unsigned char)s[i];

    if (c < 0x20 || c == 0x7f || c == '%' || c == '/')
        return true;
    return c == '.' && (i == 0 || strncmp(s + i, TMP_MARK, strlen(TMP_MARK)) == 0);
}

char *format_name_encode(const char *name)
{
    size_t len = name ? strlen(name) : 0, n = 0;
    char *out, *p;

    if (len == 0) {
        vk_error(VK_ERR_INVALID, "cannot make a key component of an empty name");
        return NULL;
    }
    for (size_t i = 0; i < len; i++)
        n += escaped(name, i) ? 3 : 1;
    if (!(out = vk_malloc(n + 1)))
        return NULL;
    p = out;
    for (size_t i = 0; i < len; i++) {
        if (escaped(name, i)) {
            snprintf(p, 4, "%%%02X", (unsigned char)name[i]);
            p += 3;
        } else {
            *p++ = name[i];
        }
    }
    *p = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *format_name_decode(const char *component)
{
    size_t len = component ? strlen(component) : 0;
    CLEANUP_FREE char *out = NULL, *again = NULL;
    char *p;

    if (len == 0)
        goto bad;
    if (!(out = vk_malloc(len + 1)))
        return NULL;
    p = out;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (component[i] != '%') {
            *p++ = component[i];
            continue;
        }
        if (i + 2 >= len)
            goto bad;
        hi = hexval(component[i + 1]);
        lo = hi < 0 ? -1 : hexval(component[i + 2]);
        if (lo < 0 || (hi == 0 && lo == 0))
            goto bad;
        *p++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *p = '\0';
    /* One name, one key: only what format_name_encode() writes is valid. */
    if (!(again = format_name_encode(out)))
        return NULL;
    if (strcmp(again, component) != 0)
        goto bad;
    return VK_STEAL(out);
bad:
    vk_error(VK_ERR_CORRUPT, "invalid key component '%s': not an encoded name",
             component ? component : "");
    return NULL;
}

char *format_object_key(const char *domain, const char *backup_id, const char *file)
{
    CLEANUP_FREE char *d = format_name_encode(domain);
    CLEANUP_FREE char *b = d ? format_name_encode(backup_id) : NULL;
    CLEANUP_FREE char *f = b ? format_name_encode(file) : NULL;

    if (!f)
        return NULL;
    return vk_asprintf("%s/%s/%s", d, b, f);
}
