/* virtkeep - the configuration file.
 *
 * An INI file read with libinih:
 *
 *   [catalog]
 *   path = /var/lib/virtkeep/catalog.db
 *   # or, one PostgreSQL catalog for several hosts (not both):
 *   # url = postgresql://virtkeep@db.example.com/virtkeep?sslmode=verify-full
 *   #       &sslrootcert=/etc/virtkeep/db-ca.pem&password_file=/etc/virtkeep/db-password
 *
 *   [target offsite]
 *   url = ssh://backup@vault.example.com:2222/srv/virtkeep
 *   key_file = /etc/virtkeep/id_ed25519
 *   known_hosts = /etc/virtkeep/known_hosts
 *
 *   [policy gold]
 *   encryption = aes-256-gcm
 *   encryption_key_file = /etc/virtkeep/keyring
 *   rpo = 1h
 *   rto = 30m
 *   keep_daily = 7
 *   targets = local, offsite
 *
 *   [domain web1]
 *   policy = gold
 *   exclude = vdb
 *
 * Parsing stops at the first error, which is recorded (VK_ERR_INVALID, or
 * VK_ERR_NOT_FOUND / VK_ERR_PERMISSION for the file itself) as
 * "FILE:LINE: [SECTION] KEY: what is wrong: expected ...".  Secrets are never
 * inline: keys such as password or secret_key are refused, and the files that
 * hold secrets must not be accessible to group or others.
 */
#ifndef VIRTKEEP_CONFIG_H
#define VIRTKEEP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "transport/transport.h"

struct config_target {
    char *name;
    char *url;
    char *scheme; /* "file", "ssh", "s3" */
    char *user;
    char *key_file;
    char *known_hosts;
    char *password_file;
    char *passphrase_file; /* ssh: passphrase of an encrypted key_file */
    char *passphrase_env;
    char *access_key_id;
    char *secret_key_file;
    char *secret_key_env;
    char *region;
    char *endpoint;
    char *ca_file;
    char *encryption;          /* "aes-256-gcm" or "none" (NULL: the policy decides) */
    char *encryption_key_file; /* the keyring (0600) whose active key seals, or NULL */
    unsigned int line;         /* of the section header */
};

/* A daily backup window, "22:00-06:00": backups start only inside it.  Times
 * are UTC, minutes after midnight; START > END wraps past midnight. */
struct config_window {
    bool set; /* false: no window, any time */
    unsigned int start, end;
};

/* Durations are in seconds and counts are numbers of backups; 0 means the
 * key was not given (a retention rule that keeps 0 backups is no rule).
 * Keys may be spelled with '-' or '_' (keep-daily = keep_daily). */
struct config_policy {
    char *name;
    uint64_t rpo;
    uint64_t rto;
    uint64_t keep_within;
    uint64_t full_every;
    unsigned int keep_last;
    unsigned int keep_hourly;
    unsigned int keep_daily;
    unsigned int keep_weekly;
    unsigned int keep_monthly;
    unsigned int keep_yearly;
    unsigned int priority;  /* 1 runs (and is restored) first, then 2...; 0 (unset) last */
    unsigned int max_chain; /* most backups in a chain, the full included; 0: no limit */
    uint64_t drill_every;   /* seconds between DR drills run by the daemon; 0: none */
    char *quiesce;          /* as [domain] quiesce; the domain's own key wins; or NULL */
    struct config_window window;
    char *encryption;            /* as [target] encryption; the target's own key wins */
    char *encryption_key_file;   /* as [target] encryption_key_file */
    unsigned int immutable_days; /* S3 Object Lock (COMPLIANCE) of new objects; 0: none */
    char **targets;              /* names of defined targets, or NULL: the first is the primary, the
                                  * others get copies of every backup */
    unsigned int line;
};

struct config_domain {
    char *name;
    char *policy;   /* name of a defined policy, or NULL */
    char **disks;   /* disk targets to back up ("vda"), or NULL for all */
    char **exclude; /* disk targets to skip, or NULL */
    char *quiesce;  /* "required", "try" or "no" (guest agent freeze), or NULL */
    unsigned int line;
};

/* [daemon]: how virtkeepd runs and how the CLI reaches it.  Every field
 * is optional: NULL or 0 when not given (the daemon has defaults). */
struct config_daemon {
    char *socket;                 /* unix socket path (default /run/virtkeep/virtkeepd.sock) */
    char *listen;                 /* "127.0.0.1:PORT" or "[::1]:PORT": HTTP with a token, or NULL */
    char *token_file;             /* the HTTP bearer token, a 0600 file */
    char *log;                    /* "stderr" or "syslog" */
    unsigned int max_jobs;        /* jobs at a time on this host (0: default) */
    unsigned int max_target_jobs; /* jobs at a time per target (0: default) */
    uint64_t tick;                /* seconds between scheduler passes (0: default) */
    unsigned int line;            /* 0: no [daemon] section */
};

struct config {
    char *file;         /* the name used in messages */
    char *catalog_path; /* [catalog] path or url (postgresql://), or NULL */
    struct config_daemon daemon;
    struct config_target *targets;
    size_t n_targets;
    struct config_policy *policies;
    size_t n_policies;
    struct config_domain *domains;
    size_t n_domains;
};

/* Flags for the parsers. */
enum {
    /* Do not look at the files the configuration names (secret files and
     * their permissions): for fuzzing, or checking a file for another host. */
    CONFIG_NO_FILE_CHECKS = 1u << 0,
};

/* Read and validate a file.  Returns NULL with the error recorded. */
struct config *config_parse_file(const char *path, unsigned int flags);
/* The same from memory; NAME is the file name used in messages.  BUF need
 * not be NUL-terminated. */
struct config *config_parse_buffer(const char *name, const char *buf, size_t len,
                                   unsigned int flags);
/* The line of the last parse error on this thread, or 0 when the error was
 * not about a line (the file could not be read, out of memory). */
unsigned int config_error_line(void);
/* An empty configuration (no file): every list is empty. */
struct config *config_new_empty(const char *name);
void config_free(struct config *cfg);

/* Look up a section by name; NULL when it is not defined. */
const struct config_target *config_target_find(const struct config *cfg, const char *name);
const struct config_policy *config_policy_find(const struct config *cfg, const char *name);
const struct config_domain *config_domain_find(const struct config *cfg, const char *name);

/* How backups of DOMAIN to TARGET (a name or URL) are sealed: the
 * target's encryption keys, else those of the domain's policy.  *KEY_FILE
 * (may be NULL: the key comes from VIRTKEEP_KEY) is set when they are
 * sealed; returns true then. */
bool config_encryption(const struct config *cfg, const char *target, const char *domain,
                       const char **key_file);
/* The Object Lock retention, in seconds, of the objects a backup of DOMAIN
 * writes: its policy's immutable_days (0: none).  VIRTKEEP_TEST_LOCK_SECONDS
 * replaces a non-zero value, for tests only. */
uint64_t config_lock_seconds(const struct config *cfg, const char *domain);
/* Every encryption_key_file the configuration names (NULL-terminated,
 * malloc'd array of borrowed strings; duplicates removed). */
const char **config_key_files(const struct config *cfg);

/* Fill transport options from a target's credential references.  The
 * strings stay owned by the target. */
void config_target_options(const struct config_target *target, struct transport_options *opts);

/* The default configuration file and catalog for a user: the system paths
 * for root (euid 0), otherwise $XDG_CONFIG_HOME/virtkeep/virtkeep.conf and
 * $XDG_DATA_HOME/virtkeep/catalog.db (falling back to ~/.config and
 * ~/.local/share).  Returns a malloc'd string, or NULL with the error set. */
char *config_default_path(uid_t euid);
char *config_default_catalog(uid_t euid);

#define CONFIG_SYSTEM_PATH "/etc/virtkeep/virtkeep.conf"
#define CONFIG_SYSTEM_CATALOG "/var/lib/virtkeep/catalog.db"

#endif
