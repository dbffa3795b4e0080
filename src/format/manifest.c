/* virtkeep - the per-backup manifest: build and parse with strict checks.
 * docs/FORMAT.md ("The manifest") is the specification.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "src/format/format-int.h"
#include "src/format/format.h"

#define NAME_MAX_LEN 255
/* A sealed manifest's "auth": this prefix and 64 hex digits of HMAC-SHA256
 * over the text with those digits replaced by AUTH_ZEROS. */
#define AUTH_PREFIX "hmac-sha256:"
#define AUTH_ZEROS "0000000000000000000000000000000000000000000000000000000000000000"

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool uuid_ok(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static bool key_id_ok(const char *id)
{
    if (strlen(id) != FORMAT_KEY_ID_LEN)
        return false;
    for (size_t i = 0; i < FORMAT_KEY_ID_LEN; i++)
        if (!strchr("0123456789abcdef", id[i]))
            return false;
    return true;
}

static const char *disk_check(const struct manifest_disk *d)
{
    if (!name_ok(d->target))
        return "a disk target is empty, too long or has control characters";
    if (!name_ok(d->archive_key) || strchr(d->target, '/'))
        return "a disk's archive key or target is malformed";
    if (d->virtual_size > INT64_MAX || d->archive_size > INT64_MAX || d->bytes_read > INT64_MAX)
        return "a disk size is out of range";
    if (d->archive_size == 0 || d->bytes_stored > d->archive_size)
        return "a disk's archive size is zero or smaller than its stored bytes";
    if (d->bytes_read > d->virtual_size)
        return "a disk's bytes read exceed its virtual size";
    if (d->cluster_size != 0 && (d->cluster_size < 512 || d->cluster_size > 2097152 ||
                                 (d->cluster_size & (d->cluster_size - 1)) != 0))
        return "a disk's cluster size is not a power of two from 512 to 2 MiB";
    if (d->compat && strcmp(d->compat, "0.10") != 0 && strcmp(d->compat, "1.1") != 0)
        return "a disk's compat level is not 0.10 or 1.1";
    return NULL;
}

static const char *disks_check(const struct manifest *m)
{
    if (m->nr_disks == 0 || !m->disks)
        return "it lists no disks";
    for (size_t i = 0; i < m->nr_disks; i++) {
        const char *why = disk_check(&m->disks[i]);
        if (why)
            return why;
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->disks[i].target, m->disks[j].target) == 0)
                return "it lists a disk target twice";
    }
    return NULL;
}

bool manifest_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned int c = *p, n, cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return false; /* a continuation byte, an overlong lead or beyond U+10FFFF */
        if ((size_t)(end - p) <= n)
            return false;
        for (unsigned int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += n + 1;
    }
    return true;
}

static bool xml_ok(const char *xml)
{
    return manifest_utf8_valid(xml, strlen(xml));
}

static const char *chain_check(const struct manifest *m)
{
    bool incremental = strcmp(m->level, "inc") == 0 || strcmp(m->level, "diff") == 0;
    bool copy = strcmp(m->level, "copy") == 0;

    if (incremental != (m->parent_id != NULL))
        return "a parent backup is given for a full or copy backup, or missing for inc or diff";
    if (m->parent_id && !name_ok(m->parent_id))
        return "the parent backup id is malformed";
    if (m->has_parent_manifest_sha256 && !m->parent_id)
        return "a parent manifest sha256 is given for a backup without a parent";
    if (copy != (m->checkpoint_name == NULL) || copy != (m->checkpoint_xml == NULL))
        return "a copy backup has a checkpoint, or another level lacks one";
    if (m->checkpoint_name && (!name_ok(m->checkpoint_name) || !*m->checkpoint_xml))
        return "the checkpoint name or XML is malformed";
    if (m->checkpoint_xml && !xml_ok(m->checkpoint_xml))
        return "the checkpoint XML is not valid UTF-8";
    return NULL;
}

static const char *manifest_check(const struct manifest *m)
{
    if (!name_ok(m->backup_id) || strchr(m->backup_id, '/'))
        return "the backup id is empty, too long or has a '/' or control characters";
    if (!name_ok(m->domain_name))
        return "the domain name is malformed";
    if (!uuid_ok(m->domain_uuid))
        return "the domain UUID is not in the 8-4-4-4-12 hex form";
    if (!m->domain_xml || !*m->domain_xml)
        return "the domain XML is empty";
    if (!xml_ok(m->domain_xml))
        return "the domain XML is not valid UTF-8";
    if (!archive_level_valid(m->level))
        return "the level is not one of full, inc, diff, copy";
    if (m->started < 0 || m->finished < m->started)
        return "the start time is negative or after the finish time";
    const char *why = chain_check(m);
    return why ? why : disks_check(m);
}

int manifest_validate(const struct manifest *m)
{
    const char *why = manifest_check(m);

    /* What is written is the current version: a child records its link. */
    if (!why && m->parent_id && !m->has_parent_manifest_sha256)
        why = "the sha256 of the parent's manifest is missing";
    if (!why && m->key_id && !key_id_ok(m->key_id))
        why = "the key id is not 16 lower-case hex digits";

    if (why) {
        vk_error(VK_ERR_INVALID, "the manifest of backup '%s' is invalid: %s",
                 m->backup_id ? m->backup_id : "(none)", why);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- build */

static struct json_object *disk_to_json(const struct manifest_disk *d)
{
    struct json_object *o = json_object_new_object();
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];

    archive_sha256_hex(d->archive_sha256, hex);
    json_object_object_add(o, "target", json_object_new_string(d->target));
    json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)d->virtual_size));
    json_object_object_add(o, "archive_key", json_object_new_string(d->archive_key));
    json_object_object_add(o, "archive_size", json_object_new_int64((int64_t)d->archive_size));
    json_object_object_add(o, "archive_sha256", json_object_new_string(hex));
    json_object_object_add(o, "bytes_read", json_object_new_int64((int64_t)d->bytes_read));
    json_object_object_add(o, "bytes_stored", json_object_new_int64((int64_t)d->bytes_stored));
    json_object_object_add(o, "cluster_size",
                           d->cluster_size ? json_object_new_int64((int64_t)d->cluster_size)
                                           : NULL);
    json_object_object_add(o, "compat", vk_json_string_or_null(d->compat));
    return o;
}

static struct json_object *manifest_to_object(const struct manifest *m)
{
    struct json_object *o = json_object_new_object();
    struct json_object *dom = json_object_new_object();
    struct json_object *cp = NULL, *disks = json_object_new_array();

    json_object_object_add(dom, "name", json_object_new_string(m->domain_name));
    json_object_object_add(dom, "uuid", json_object_new_string(m->domain_uuid));
    json_object_object_add(dom, "xml", json_object_new_string(m->domain_xml));
    if (m->checkpoint_name) {
        cp = json_object_new_object();
        json_object_object_add(cp, "name", json_object_new_string(m->checkpoint_name));
        json_object_object_add(cp, "xml", json_object_new_string(m->checkpoint_xml));
    }
    for (size_t i = 0; i < m->nr_disks; i++)
        json_object_array_add(disks, disk_to_json(&m->disks[i]));
    json_object_object_add(o, "format", json_object_new_string(MANIFEST_FORMAT_NAME));
    json_object_object_add(
        o, "version",
        json_object_new_int(m->key_id ? MANIFEST_FORMAT_VERSION : MANIFEST_PLAIN_VERSION));
    json_object_object_add(o, "backup_id", json_object_new_string(m->backup_id));
    json_object_object_add(o, "level", json_object_new_string(m->level));
    json_object_object_add(o, "parent_id", vk_json_string_or_null(m->parent_id));
    if (m->has_parent_manifest_sha256) {
        char hex[ARCHIVE_SHA256_HEX_LEN + 1];
        archive_sha256_hex(m->parent_manifest_sha256, hex);
        json_object_object_add(o, "parent_manifest_sha256", json_object_new_string(hex));
    } else {
        json_object_object_add(o, "parent_manifest_sha256", NULL);
    }
    json_object_object_add(o, "domain", dom);
    json_object_object_add(o, "checkpoint", cp);
    json_object_object_add(o, "started", json_object_new_int64(m->started));
    json_object_object_add(o, "finished", json_object_new_int64(m->finished));
    json_object_object_add(o, "disks", disks);
    if (m->key_id) {
        struct json_object *enc = json_object_new_object();
        json_object_object_add(enc, "algorithm", json_object_new_string(ARCHIVE_SEAL_ALGORITHM));
        json_object_object_add(enc, "key_id", json_object_new_string(m->key_id));
        json_object_object_add(o, "encryption", enc);
        json_object_object_add(o, "auth", json_object_new_string(AUTH_PREFIX AUTH_ZEROS));
    }
    return o;
}

char *manifest_to_json(const struct manifest *m, unsigned int flags)
{
    struct json_object *o;
    char *s;

    if (flags != 0) {
        vk_error(VK_ERR_INVALID, "manifest_to_json: unknown flags 0x%x", flags);
        return NULL;
    }
    if (manifest_validate(m) < 0)
        return NULL;
    o = manifest_to_object(m);
    s = vk_asprintf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                  JSON_C_TO_STRING_SPACED |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

/* Where the "auth" digits are in TEXT: exactly one string token
 * "hmac-sha256:<64 hex>" (a quote inside a JSON string is escaped, so no
 * string value can imitate one).  NULL when there is not exactly one. */
static const char *auth_find(const char *text, size_t len)
{
    static const char pre[] = "\"" AUTH_PREFIX;
    const size_t plen = sizeof(pre) - 1, want = plen + ARCHIVE_SHA256_HEX_LEN + 1;
    const char *found = NULL;

    for (const char *p = text; (size_t)(text + len - p) >= want;) {
        const char *q = memmem(p, (size_t)(text + len - p), pre, plen);
        if (!q || (size_t)(text + len - q) < want)
            break;
        if (q[want - 1] == '"') {
            if (found)
                return NULL;
            found = q + plen;
        }
        p = q + 1;
    }
    return found;
}

char *manifest_to_json_sealed(const struct manifest *m, const struct format_key *key)
{
    uint8_t mac[ARCHIVE_SHA256_LEN];
    char hex[ARCHIVE_SHA256_HEX_LEN + 1];
    char *s, *at;

    if (!m->key_id || strcmp(m->key_id, key->id) != 0) {
        vk_error(VK_ERR_INVALID, "the manifest of backup '%s' does not name key '%s'",
                 m->backup_id ? m->backup_id : "(none)", key->id);
        return NULL;
    }
    if (!(s = manifest_to_json(m, 0)))
        return NULL;
    at = (char *)auth_find(s, strlen(s));
    if (!at || seal_manifest_mac(key, s, strlen(s), mac) < 0) {
        if (!at)
            vk_error(VK_ERR_INTERNAL, "the manifest of backup '%s' has no single auth field",
                     m->backup_id);
        free(s);
        return NULL;
    }
    archive_sha256_hex(mac, hex);
    memcpy(at, hex, ARCHIVE_SHA256_HEX_LEN);
    return s;
}

int manifest_authenticate(const char *json, size_t len, const char *name, const struct manifest *m,
                          const struct format_keyring *keys)
{
    const struct format_key *k = m->key_id ? format_keyring_find(keys, m->key_id) : NULL;
    CLEANUP_FREE char *copy = NULL;
    uint8_t mac[ARCHIVE_SHA256_LEN], got[ARCHIVE_SHA256_LEN];
    char hx[ARCHIVE_SHA256_HEX_LEN + 1];
    const char *at;

    if (!m->key_id)
        return 0;
    if (!k) {
        vk_error(VK_ERR_AUTH,
                 "manifest '%s' is authenticated with key '%s', which is not in the keyring: "
                 "add the keyring file that holds it (encryption_key_file =) or put the key in %s",
                 name, m->key_id, FORMAT_KEY_ENV);
        return -1;
    }
    at = auth_find(json, len);
    if (!at || !(copy = vk_malloc(len)))
        goto bad;
    memcpy(copy, json, len);
    memcpy(copy + (at - json), AUTH_ZEROS, ARCHIVE_SHA256_HEX_LEN);
    if (seal_manifest_mac(k, copy, len, mac) < 0)
        return -1;
    memcpy(hx, at, ARCHIVE_SHA256_HEX_LEN);
    hx[ARCHIVE_SHA256_HEX_LEN] = '\0';
    if (archive_sha256_unhex(hx, got) < 0 || CRYPTO_memcmp(mac, got, sizeof(mac)) != 0)
        goto bad;
    return 0;
bad:
    vk_error(VK_ERR_CORRUPT,
             "manifest '%s' fails its authentication (HMAC-SHA256 with key '%s'): it was altered "
             "or is not the manifest that was written",
             name, m->key_id);
    return -1;
}

/* ---------------------------------------------------------------- parse */

/* Version 2: cluster_size (integer or null) and compat (string or null). */
static int disk_qcow2_from_json(struct json_object *o, const char *what, struct manifest_disk *d)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, "cluster_size", &v)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: key 'cluster_size' is missing", what);
        return -1;
    }
    if (v && vk_json_get_u64(o, "cluster_size", what, &d->cluster_size) < 0)
        return -1;
    return vk_json_get_str(o, "compat", true, what, &d->compat);
}

static int disk_from_json(struct json_object *o, int version, const char *what,
                          struct manifest_disk *d)
{
    static const char *const keys1[] = {
        "target",         "virtual_size", "archive_key",  "archive_size",
        "archive_sha256", "bytes_read",   "bytes_stored", NULL};
    static const char *const keys2[] = {
        "target",     "virtual_size", "archive_key",  "archive_size", "archive_sha256",
        "bytes_read", "bytes_stored", "cluster_size", "compat",       NULL};
    CLEANUP_FREE char *hex = NULL;

    if (vk_json_check_object(o, version == 1 ? keys1 : keys2, what) < 0 ||
        (version >= 2 && disk_qcow2_from_json(o, what, d) < 0) ||
        vk_json_get_str(o, "target", false, what, &d->target) < 0 ||
        vk_json_get_u64(o, "virtual_size", what, &d->virtual_size) < 0 ||
        vk_json_get_str(o, "archive_key", false, what, &d->archive_key) < 0 ||
        vk_json_get_u64(o, "archive_size", what, &d->archive_size) < 0 ||
        vk_json_get_str(o, "archive_sha256", false, what, &hex) < 0 ||
        vk_json_get_u64(o, "bytes_read", what, &d->bytes_read) < 0 ||
        vk_json_get_u64(o, "bytes_stored", what, &d->bytes_stored) < 0)
        return -1;
    if (archive_sha256_unhex(hex, d->archive_sha256) < 0) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: archive_sha256 is not 64 lower-case hex digits",
                 what);
        return -1;
    }
    return 0;
}

static int disks_from_json(struct json_object *root, int version, const char *what,
                           struct manifest *m)
{
    struct json_object *arr;
    size_t n;

    if (vk_json_get_typed(root, "disks", json_type_array, what, &arr) < 0)
        return -1;
    n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        struct manifest_disk *d = manifest_disk_add(m);
        if (!d || disk_from_json(json_object_array_get_idx(arr, i), version, what, d) < 0)
            return -1;
    }
    return 0;
}

static int domain_from_json(struct json_object *root, const char *what, struct manifest *m)
{
    static const char *const keys[] = {"name", "uuid", "xml", NULL};
    struct json_object *dom;

    return vk_json_get_typed(root, "domain", json_type_object, what, &dom) < 0 ||
                   vk_json_check_object(dom, keys, what) < 0 ||
                   vk_json_get_str(dom, "name", false, what, &m->domain_name) < 0 ||
                   vk_json_get_str(dom, "uuid", false, what, &m->domain_uuid) < 0 ||
                   vk_json_get_str(dom, "xml", false, what, &m->domain_xml) < 0
               ? -1
               : 0;
}

static int checkpoint_from_json(struct json_object *root, const char *what, struct manifest *m)
{
    static const char *const keys[] = {"name", "xml", NULL};
    struct json_object *cp;

    if (!json_object_object_get_ex(root, "checkpoint", &cp)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: key 'checkpoint' is missing", what);
        return -1;
    }
    if (!cp)
        return 0;
    return vk_json_get_typed(root, "checkpoint", json_type_object, what, &cp) < 0 ||
                   vk_json_check_object(cp, keys, what) < 0 ||
                   vk_json_get_str(cp, "name", false, what, &m->checkpoint_name) < 0 ||
                   vk_json_get_str(cp, "xml", false, what, &m->checkpoint_xml) < 0
               ? -1
               : 0;
}

static int times_from_json(struct json_object *root, const char *what, struct manifest *m)
{
    uint64_t started, finished;

    if (vk_json_get_u64(root, "started", what, &started) < 0 ||
        vk_json_get_u64(root, "finished", what, &finished) < 0)
        return -1;
    m->started = (int64_t)started;
    m->finished = (int64_t)finished;
    return 0;
}

/* The version to check the document against: 1 or 2 when it says so
 * (still read), else the current one (which refuses any other). */
static int version_of(struct json_object *root)
{
    struct json_object *v;

    if (json_object_object_get_ex(root, "version", &v) && json_object_is_type(v, json_type_int) &&
        json_object_get_int64(v) >= 1 && json_object_get_int64(v) <= MANIFEST_PLAIN_VERSION)
        return (int)json_object_get_int64(v);
    return MANIFEST_FORMAT_VERSION;
}

/* Version 3: parent_manifest_sha256, 64 hex digits or null. */
static int parent_link_from_json(struct json_object *root, const char *what, struct manifest *m)
{
    CLEANUP_FREE char *hex = NULL;
    struct json_object *v;

    if (!json_object_object_get_ex(root, "parent_manifest_sha256", &v)) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: key 'parent_manifest_sha256' is missing", what);
        return -1;
    }
    if (vk_json_get_str(root, "parent_manifest_sha256", true, what, &hex) < 0)
        return -1;
    if (!hex) {
        if (m->parent_id) {
            vk_error(VK_ERR_CORRUPT,
                     "%s is corrupt: parent_manifest_sha256 is null for a backup with a parent",
                     what);
            return -1;
        }
        return 0;
    }
    if (archive_sha256_unhex(hex, m->parent_manifest_sha256) < 0) {
        vk_error(VK_ERR_CORRUPT,
                 "%s is corrupt: parent_manifest_sha256 is not 64 lower-case hex digits", what);
        return -1;
    }
    m->has_parent_manifest_sha256 = true;
    return 0;
}

/* Version 4: "encryption" {algorithm, key_id} and "auth" (checked by
 * manifest_authenticate). */
static int sealing_from_json(struct json_object *root, const char *what, struct manifest *m)
{
    static const char *const keys[] = {"algorithm", "key_id", NULL};
    CLEANUP_FREE char *alg = NULL, *auth = NULL;
    struct json_object *enc;

    if (vk_json_get_typed(root, "encryption", json_type_object, what, &enc) < 0 ||
        vk_json_check_object(enc, keys, what) < 0 ||
        vk_json_get_str(enc, "algorithm", false, what, &alg) < 0 ||
        vk_json_get_str(enc, "key_id", false, what, &m->key_id) < 0 ||
        vk_json_get_str(root, "auth", false, what, &auth) < 0)
        return -1;
    if (strcmp(alg, ARCHIVE_SEAL_ALGORITHM) != 0 || !key_id_ok(m->key_id) ||
        strncmp(auth, AUTH_PREFIX, strlen(AUTH_PREFIX)) != 0 ||
        strlen(auth) != strlen(AUTH_PREFIX) + ARCHIVE_SHA256_HEX_LEN) {
        vk_error(VK_ERR_CORRUPT,
                 "%s is corrupt: its encryption algorithm, key id or auth field is malformed",
                 what);
        return -1;
    }
    return 0;
}

static int manifest_from_json(struct json_object *root, const char *what, struct manifest *m)
{
    int version = version_of(root);
    static const char *const keys[] = {"format",    "version", "backup_id",  "level",
                                       "parent_id", "domain",  "checkpoint", "started",
                                       "finished",  "disks",   NULL};
    static const char *const keys3[] = {
        "format", "version",    "backup_id", "level",    "parent_id", "parent_manifest_sha256",
        "domain", "checkpoint", "started",   "finished", "disks",     NULL};
    static const char *const keys4[] = {
        "format", "version",    "backup_id", "level",    "parent_id", "parent_manifest_sha256",
        "domain", "checkpoint", "started",   "finished", "disks",     "encryption",
        "auth",   NULL};
    const char *why;

    const char *const *allowed = version >= 4 ? keys4 : version == 3 ? keys3 : keys;

    m->version = version;
    /* The version first: a newer manifest is unsupported, not corrupt. */
    if (vk_json_check_format(root, MANIFEST_FORMAT_NAME, version, what) < 0 ||
        vk_json_check_object(root, allowed, what) < 0 ||
        (version >= 4 && sealing_from_json(root, what, m) < 0) ||
        vk_json_get_str(root, "backup_id", false, what, &m->backup_id) < 0 ||
        vk_json_get_str(root, "level", false, what, &m->level) < 0 ||
        vk_json_get_str(root, "parent_id", true, what, &m->parent_id) < 0 ||
        (version >= 3 && parent_link_from_json(root, what, m) < 0) ||
        domain_from_json(root, what, m) < 0 || checkpoint_from_json(root, what, m) < 0 ||
        times_from_json(root, what, m) < 0 || disks_from_json(root, version, what, m) < 0)
        return -1;
    why = manifest_check(m);
    if (why) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: %s", what, why);
        return -1;
    }
    return 0;
}

int manifest_parse(const char *json, size_t len, const char *name, struct manifest *out)
{
    struct json_object *root;
    char what[300];
    int r;

    memset(out, 0, sizeof(*out));
    snprintf(what, sizeof(what), "manifest '%s'", name ? name : "(unnamed)");
    if (len > MANIFEST_MAX_SIZE) {
        vk_error(VK_ERR_CORRUPT, "%s is corrupt: it is larger than %u bytes", what,
                 MANIFEST_MAX_SIZE);
        return -1;
    }
    root = vk_json_parse(json, len, what);
    if (!root)
        return -1;
    r = manifest_from_json(root, what, out);
    json_object_put(root);
    if (r < 0)
        manifest_clear(out);
    return r;
}

struct manifest_disk *manifest_disk_add(struct manifest *m)
{
    struct manifest_disk *d = vk_realloc_array(m->disks, m->nr_disks + 1, sizeof(*d));

    if (!d)
        return NULL;
    m->disks = d;
    d = &m->disks[m->nr_disks++];
    memset(d, 0, sizeof(*d));
    return d;
}

void manifest_clear(struct manifest *m)
{
    for (size_t i = 0; i < m->nr_disks; i++) {
        free(m->disks[i].target);
        free(m->disks[i].archive_key);
        free(m->disks[i].compat);
    }
    free(m->disks);
    free(m->backup_id);
    free(m->domain_name);
    free(m->domain_uuid);
    free(m->level);
    free(m->parent_id);
    free(m->checkpoint_name);
    free(m->checkpoint_xml);
    free(m->domain_xml);
    free(m->key_id);
    memset(m, 0, sizeof(*m));
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int manifest_disk_probe(struct manifest_disk *d, const char *path)
{
    CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t h[24];
    uint32_t bits;
    ssize_t n = fd < 0 ? -1 : vk_pread_all(fd, h, sizeof h, 0);

    if (n < 0) {
        vk_error_errno(errno, "cannot read the header of the image '%s'", path);
        return -1;
    }
    if (n < (ssize_t)sizeof h)
        return 0;
    bits = be32(h + 20);
    if (memcmp(h, "QFI\xfb", 4) != 0 || bits < 9 || bits > 21 || be32(h + 4) < 2 || be32(h + 4) > 3)
        return 0; /* not qcow2 (raw), or one we do not describe */
    d->cluster_size = 1ull << bits;
    free(d->compat);
    d->compat = vk_strdup(be32(h + 4) == 2 ? "0.10" : "1.1");
    return d->compat ? 0 : -1;
}
