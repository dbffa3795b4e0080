/* libFuzzer target: the configuration parser never crashes, leaks or reads
 * out of bounds, and what it returns is consistent: either a configuration
 * whose targets all have a URL and whose references all resolve, or an error
 * naming a line of the file. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "src/conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_config(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_targets; i++)
        if (!cfg->targets[i].url || !cfg->targets[i].scheme ||
            !transport_scheme_supported(cfg->targets[i].scheme))
            abort();
    for (size_t i = 0; i < cfg->n_policies; i++)
        for (char **t = cfg->policies[i].targets; t && *t; t++)
            if (!config_target_find(cfg, *t))
                abort();
    for (size_t i = 0; i < cfg->n_domains; i++)
        if (cfg->domains[i].policy && !config_policy_find(cfg, cfg->domains[i].policy))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg;

    cfg = config_parse_buffer("fuzz.conf", (const char *)data, size, CONFIG_NO_FILE_CHECKS);
    if (cfg) {
        check_config(cfg);
    } else {
        const char *msg = vk_error_message();
        if (!msg || strncmp(msg, "fuzz.conf:", 10) != 0 || config_error_line() == 0)
            abort();
    }
    config_free(cfg);
    vk_error_clear();
    return 0;
}
