/* virtkeep - the backup engine's internal pieces (src/backup*.c only). */
#ifndef VIRTKEEP_BACKUP_INT_H
#define VIRTKEEP_BACKUP_INT_H

#include "src/backup/backup.h"
#include "src/datapath/datapath.h"
#include "src/virt/virt.h"
#include "transport/transport.h"

/* One disk: read the export, write DOMAIN/ID/DISK.tar. */
struct backup_disk_job {
    const char *socket;
    const char *export_name;
    const char *bitmap_context; /* NULL: full read of allocated extents */
    struct transport *transport;
    const char *key;
    const struct archive_header *header; /* virtual_size is filled in here */
    const struct pipeline_options *pipeline;
    const struct format_key *seal_key; /* NULL: not sealed */
    void (*progress)(void *opaque, uint64_t done, uint64_t total);
    void *opaque;
};

/* Returns 0 with OUT's sizes, key and digest set, or -1 (the put aborted:
 * nothing is visible under the key). */
int backup_disk_run(const struct backup_disk_job *job, struct backup_result_disk *out);

/* The key that seals backups of DOMAIN to TARGET (backup-key.c): *SEALED
 * false when they are not sealed; else OUT (wipe it after use) is the
 * active key of the configured keyring.  -1 when that keyring cannot be
 * read or has no active key. */
struct config;
int backup_key_load(const struct config *cfg, const char *target, const char *domain,
                    struct format_key *out, bool *sealed);

/* The level decision of a backup (backup-level.c). */
struct backup_level_ctx {
    const char *domain;
    struct virt_domain *dom;
    const struct virt_disk_list *disks;
    char *const *selected;
    const struct catalog_backups *all; /* with XML */
    enum catalog_level requested;
    void (*notice)(void *opaque, const char *line);
    void *opaque;
};

/* Fill NEXT (level, parent, parent checkpoint, reason).  Redefines
 * checkpoints libvirt lost, and on an unusable chain discards the broken
 * checkpoints and chooses a full backup, saying why through notice. */
int backup_level_choose(const struct backup_level_ctx *x, struct catalog_next *next);
/* Switch NEXT to a full backup because of WHY (the current error when
 * NULL), discard our checkpoints, and say so. */
int backup_level_fallback(const struct backup_level_ctx *x, struct catalog_next *next,
                          const char *why);

/* Remove what failed backup B left: its objects, temp files and unfinished
 * uploads under DOMAIN/ID/ on T (may be NULL) and on the targets of its
 * recorded locations (opened through CFG, which may be NULL: then those
 * other than T are skipped with a warning), and its locations from the
 * catalog (backup-recover.c). */
int backup_clean_failed(struct catalog *cat, const struct config *cfg, struct transport *t,
                        const struct catalog_backup *b);

#endif
