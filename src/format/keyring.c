/* virtkeep - key-encryption keys and the keyring file (see format.h and
 * docs/FORMAT.md, "Keys").  A key never goes to argv, a log or a file that
 * group or others can read.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/format/format-int.h"
#include "src/format/format.h"

#define KEY_ID_LABEL "virtkeep-key-id"
#define LINE_MAX_LEN 512

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return 0;
}

void format_key_id(const uint8_t kek[FORMAT_KEY_LEN], char out[FORMAT_KEY_ID_LEN + 1])
{
    uint8_t buf[sizeof(KEY_ID_LABEL) - 1 + FORMAT_KEY_LEN], sha[ARCHIVE_SHA256_LEN];

    memcpy(buf, KEY_ID_LABEL, sizeof(KEY_ID_LABEL) - 1);
    memcpy(buf + sizeof(KEY_ID_LABEL) - 1, kek, FORMAT_KEY_LEN);
    if (archive_sha256(buf, sizeof(buf), sha) < 0)
        memset(sha, 0, sizeof(sha));
    OPENSSL_cleanse(buf, sizeof(buf));
    hex_encode(sha, FORMAT_KEY_ID_LEN / 2, out);
}

int format_key_generate(struct format_key *out)
{
    memset(out, 0, sizeof(*out));
    if (RAND_bytes(out->kek, FORMAT_KEY_LEN) != 1) {
        vk_error(VK_ERR_INTERNAL, "cannot draw a random key with libcrypto");
        return -1;
    }
    format_key_id(out->kek, out->id);
    out->created = (int64_t)time(NULL);
    return 0;
}

int format_keyring_add(struct format_keyring *kr, const struct format_key *key, const char *source)
{
    struct format_key *k;

    if (format_keyring_find(kr, key->id))
        return 0;
    k = vk_realloc_array(kr->keys, kr->nr + 1, sizeof(*k));
    if (!k)
        return -1;
    kr->keys = k;
    k = &kr->keys[kr->nr];
    *k = *key;
    k->source = source ? vk_strdup(source) : NULL;
    if (source && !k->source)
        return -1;
    kr->nr++;
    return 0;
}

/* "ID HEX active|retired CREATED" into K. */
static const char *line_parse(char *line, struct format_key *k)
{
    char *f[5] = {0};
    size_t n = 0;
    char *save = NULL, *end;

    for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 5;
         t = strtok_r(NULL, " \t\r\n", &save))
        f[n++] = t;
    if (n != 4)
        return "expected ID HEX64 active|retired CREATED";
    if (hex_decode(f[1], k->kek, FORMAT_KEY_LEN) < 0)
        return "the key is not 64 lower-case hex digits";
    format_key_id(k->kek, k->id);
    if (strcmp(k->id, f[0]) != 0)
        return "the id does not match the key (a typo in the key?)";
    if (strcmp(f[2], "active") != 0 && strcmp(f[2], "retired") != 0)
        return "the state is neither active nor retired";
    k->retired = strcmp(f[2], "retired") == 0;
    errno = 0;
    k->created = (int64_t)strtoll(f[3], &end, 10);
    if (errno || *end || k->created < 0)
        return "the creation time is not a number of seconds";
    return NULL;
}

static int keyring_read(struct format_keyring *kr, FILE *fp, const char *path)
{
    char line[LINE_MAX_LEN];
    unsigned int lineno = 0;
    int r = 0;

    while (r == 0 && fgets(line, sizeof(line), fp)) {
        struct format_key k = {0};
        const char *why;
        char *p = line + strspn(line, " \t");
        lineno++;
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        if ((why = line_parse(p, &k))) {
            vk_error(VK_ERR_INVALID, "keyring '%s', line %u: %s", path, lineno, why);
            r = -1;
        } else {
            r = format_keyring_add(kr, &k, path);
        }
        OPENSSL_cleanse(&k, sizeof(k));
    }
    OPENSSL_cleanse(line, sizeof(line));
    return r;
}

int format_keyring_load(struct format_keyring *kr, const char *path)
{
    FILE *fp = fopen(path, "re");
    struct stat st;
    int r;

    if (!fp) {
        vk_error_errno(errno, "cannot open the keyring '%s'", path);
        return -1;
    }
    if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
        fclose(fp);
        vk_error(VK_ERR_PERMISSION,
                 "the keyring '%s' is not a regular file readable only by its owner: run "
                 "'chmod 600 %s'",
                 path, path);
        return -1;
    }
    r = keyring_read(kr, fp, path);
    fclose(fp);
    return r;
}

int format_keyring_load_env(struct format_keyring *kr, const char *var)
{
    const char *v = getenv(var);
    struct format_key k = {0};
    int r;

    if (!v || !*v)
        return 0;
    if (hex_decode(v, k.kek, FORMAT_KEY_LEN) < 0) {
        vk_error(VK_ERR_INVALID,
                 "the environment variable %s does not hold a key: expected 64 lower-case hex "
                 "digits (virtkeep key export prints them)",
                 var);
        return -1;
    }
    format_key_id(k.kek, k.id);
    r = format_keyring_add(kr, &k, var);
    OPENSSL_cleanse(&k, sizeof(k));
    return r;
}

static int keyring_write(const struct format_keyring *kr, int fd)
{
    char hex[2 * FORMAT_KEY_LEN + 1], line[LINE_MAX_LEN];
    const char *head = "# virtkeep keyring: ID KEY active|retired CREATED (mode 0600).\n"
                       "# Losing a key makes every backup sealed with it unreadable.\n";
    int r = vk_write_all(fd, head, strlen(head));

    for (size_t i = 0; r == 0 && i < kr->nr; i++) {
        const struct format_key *k = &kr->keys[i];
        int n;
        hex_encode(k->kek, FORMAT_KEY_LEN, hex);
        n = snprintf(line, sizeof(line), "%s %s %s %" PRId64 "\n", k->id, hex,
                     k->retired ? "retired" : "active", k->created);
        r = vk_write_all(fd, line, (size_t)n);
    }
    OPENSSL_cleanse(hex, sizeof(hex));
    OPENSSL_cleanse(line, sizeof(line));
    return r;
}

int format_keyring_save(const struct format_keyring *kr, const char *path)
{
    CLEANUP_FREE char *tmp = vk_asprintf("%s.vk-tmp-XXXXXX", path);
    int fd;

    if (!tmp)
        return -1;
    fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        vk_error_errno(errno, "cannot create a temporary file beside the keyring '%s'", path);
        return -1;
    }
    if (fchmod(fd, 0600) < 0 || keyring_write(kr, fd) < 0 || fsync(fd) < 0) {
        vk_error_errno(errno, "cannot write the keyring '%s'", path);
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        vk_error_errno(errno, "cannot rename '%s' to the keyring '%s'", tmp, path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

const struct format_key *format_keyring_find(const struct format_keyring *kr, const char *id)
{
    for (size_t i = 0; kr && id && i < kr->nr; i++)
        if (strcmp(kr->keys[i].id, id) == 0)
            return &kr->keys[i];
    return NULL;
}

const struct format_key *format_keyring_active(const struct format_keyring *kr)
{
    const struct format_key *best = NULL;

    for (size_t i = 0; kr && i < kr->nr; i++)
        if (!kr->keys[i].retired && (!best || kr->keys[i].created >= best->created))
            best = &kr->keys[i];
    return best;
}

void format_keyring_clear(struct format_keyring *kr)
{
    for (size_t i = 0; i < kr->nr; i++) {
        free(kr->keys[i].source);
        OPENSSL_cleanse(&kr->keys[i], sizeof(kr->keys[i]));
    }
    free(kr->keys);
    memset(kr, 0, sizeof(*kr));
}

char *format_key_export(const struct format_key *key)
{
    char hex[2 * FORMAT_KEY_LEN + 1], sum[9];
    uint8_t sha[ARCHIVE_SHA256_LEN];
    char *out;

    hex_encode(key->kek, FORMAT_KEY_LEN, hex);
    if (archive_sha256(key->kek, FORMAT_KEY_LEN, sha) < 0)
        return NULL;
    hex_encode(sha, 4, sum);
    out = vk_asprintf("virtkeep key %s (%s)\n"
                      "key:      %.16s %.16s\n"
                      "          %.16s %.16s\n"
                      "checksum: %s (the first 8 hex digits of sha256 of the 32 key bytes)\n"
                      "To use it: put the 64 digits, without spaces, in the environment "
                      "variable " FORMAT_KEY_ENV " or in a keyring file.\n",
                      key->id, key->retired ? "retired" : "active", hex, hex + 16, hex + 32,
                      hex + 48, sum);
    OPENSSL_cleanse(hex, sizeof(hex));
    return out;
}
