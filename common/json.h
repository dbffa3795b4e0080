/* virtkeep - JSON through json-c: strict readers for the documents virtkeep
 * stores (archive indexes, manifests) and small builders.
 *
 * The readers name the document in errors with WHAT ("the index of archive
 * 'k'"); every failure is VK_ERR_CORRUPT, "WHAT is corrupt: ..." (a newer
 * format version is VK_ERR_UNSUPPORTED).  Values are borrowed from the
 * json-c object unless said otherwise.
 */
#ifndef VIRTKEEP_JSON_H
#define VIRTKEEP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/* Parse LEN bytes of JSON text.  Refuses trailing bytes (white space
 * excepted), nesting deeper than 16 and a top level that is not an object. */
struct json_object *vk_json_parse(const char *buf, size_t len, const char *what);
/* OBJ is an object whose keys are all in the NULL-terminated ALLOWED. */
int vk_json_check_object(struct json_object *obj, const char *const *allowed, const char *what);
/* "format" is NAME and "version" is VERSION. */
int vk_json_check_format(struct json_object *obj, const char *name, int version, const char *what);
/* Member KEY of type TYPE (an enum json_type), borrowed. */
int vk_json_get_typed(struct json_object *obj, const char *key, int type, const char *what,
                      struct json_object **out);
/* A non-negative integer no larger than INT64_MAX. */
int vk_json_get_u64(struct json_object *obj, const char *key, const char *what, uint64_t *out);
/* A string without NUL bytes, copied; NULLABLE accepts null (gives NULL). */
int vk_json_get_str(struct json_object *obj, const char *key, bool nullable, const char *what,
                    char **out);

/* A JSON string holding S, or JSON null (NULL) when S is NULL: for
 * json_object_object_add() of optional text. */
struct json_object *vk_json_string_or_null(const char *s);

#endif
