/* virtkeep - the key that seals a backup: the active key of the keyring the
 * target (else the domain's policy) names, or of VIRTKEEP_KEY. */
#include <config.h>

#include <string.h>

#include <openssl/crypto.h>

#include "common/error.h"
#include "src/backup/backup-int.h"
#include "src/conf/conf.h"
#include "src/format/format.h"

int backup_key_load(const struct config *cfg, const char *target, const char *domain,
                    struct format_key *out, bool *sealed)
{
    struct format_keyring kr = {0};
    const struct format_key *k;
    const char *file = NULL;
    int r = -1;

    memset(out, 0, sizeof(*out));
    *sealed = config_encryption(cfg, target, domain, &file);
    if (!*sealed)
        return 0;
    if (file ? format_keyring_load(&kr, file) < 0
             : format_keyring_load_env(&kr, FORMAT_KEY_ENV) < 0) {
        vk_error_prefix("cannot seal the backup of domain '%s' to target '%s'", domain, target);
        goto out;
    }
    if (!(k = format_keyring_active(&kr))) {
        vk_error(VK_ERR_NOT_FOUND,
                 "cannot seal the backup of domain '%s' to target '%s': %s%s%s has no active "
                 "key: run 'virtkeep key create'%s",
                 domain, target, file ? "the keyring '" : "the environment variable ",
                 file ? file : FORMAT_KEY_ENV, file ? "'" : "",
                 file ? "" : " and export the key into " FORMAT_KEY_ENV);
        goto out;
    }
    *out = *k;
    out->source = NULL;
    r = 0;
out:
    format_keyring_clear(&kr);
    return r;
}
