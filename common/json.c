/* virtkeep - JSON through json-c (see json.h). */
#include <config.h>

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"

#define JSON_MAX_DEPTH 16

struct json_object *vk_json_parse(const char *buf, size_t len, const char *what)
{
    struct json_tokener *tok;
    struct json_object *o;
    size_t end;

    if (len > INT32_MAX) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: it is too large", what);
        return NULL;
    }
    tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (!tok) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, buf, (int)len);
    if (!o) {
        enum json_tokener_error err = json_tokener_get_error(tok);
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: %s", what,
                 err == json_tokener_continue ? "the JSON text ends early"
                                              : json_tokener_error_desc(err));
        json_tokener_free(tok);
        return NULL;
    }
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (end < len &&
           (buf[end] == ' ' || buf[end] == '\n' || buf[end] == '\t' || buf[end] == '\r'))
        end++;
    if (end != len || !json_object_is_type(o, json_type_object)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: %s", what,
                 end != len ? "bytes follow the JSON text" : "it is not a JSON object");
        json_object_put(o);
        return NULL;
    }
    return o;
}

int vk_json_check_object(struct json_object *obj, const char *const *allowed, const char *what)
{
    if (!json_object_is_type(obj, json_type_object)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: it is not a JSON object", what);
        return -1;
    }
    json_object_object_foreach(obj, key, val)
    {
        size_t i = 0;
        (void)val;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i]) {
            vk_error(VK_ERR_CORRUPT, "%s is corrupt: unknown key '%.64s'", what, key);
            return -1;
        }
    }
    return 0;
}

static const char *type_name(int type)
{
    switch (type) {
    case json_type_int:
        return "an integer";
    case json_type_string:
        return "a string";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    default:
        return "of another type";
    }
}

int vk_json_get_typed(struct json_object *obj, const char *key, int type, const char *what,
                      struct json_object **out)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: key '%s' is missing", what, key);
        return -1;
    }
    if (!json_object_is_type(v, (enum json_type)type)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: key '%s' is not %s", what, key, type_name(type));
        return -1;
    }
    *out = v;
    return 0;
}

int vk_json_get_u64(struct json_object *obj, const char *key, const char *what, uint64_t *out)
{
    struct json_object *v;

    if (vk_json_get_typed(obj, key, json_type_int, what, &v) < 0)
        return -1;
    if (json_object_get_int64(v) < 0 || json_object_get_uint64(v) > INT64_MAX) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: key '%s' is out of range", what, key);
        return -1;
    }
    *out = json_object_get_uint64(v);
    return 0;
}

int vk_json_get_str(struct json_object *obj, const char *key, bool nullable, const char *what,
                    char **out)
{
    struct json_object *v;
    const char *s;

    *out = NULL;
    if (nullable && json_object_object_get_ex(obj, key, &v) && v == NULL)
        return 0;
    if (vk_json_get_typed(obj, key, json_type_string, what, &v) < 0)
        return -1;
    s = json_object_get_string(v);
    if (strlen(s) != (size_t)json_object_get_string_len(v)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: key '%s' holds a NUL byte", what, key);
        return -1;
    }
    *out = vk_strdup(s);
    return *out ? 0 : -1;
}

int vk_json_check_format(struct json_object *obj, const char *name, int version, const char *what)
{
    CLEANUP_FREE char *format = NULL;
    uint64_t v;

    if (vk_json_get_str(obj, "format", false, what, &format) < 0)
        return -1;
    if (strcmp(format, name) != 0) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: its format is '%.64s', not '%s'", what, format,
                 name);
        return -1;
    }
    if (vk_json_get_u64(obj, "version", what, &v) < 0)
        return -1;
    if (v != (uint64_t)version) {
        vk_error(VK_ERR_UNSUPPORTED, "%s has format version %" PRIu64 ", this build reads %d", what,
                 v, version);
        return -1;
    }
    return 0;
}

struct json_object *vk_json_string_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}
