/* virtkeep - catalog rebuild: recreate the catalog's records of a target's
 * backups from the manifests stored on it (the disaster case, where the
 * backup host and its catalog are gone).
 *
 * Every object DOMAIN/BACKUP_ID/manifest.json of the target is read and
 * parsed (manifest_parse), and each archive it names is stat'ed.  For each
 * backup the catalog gets: the domain (with its UUID), the backup row
 * (committed, level, parent, checkpoint and its XML, domain XML, start and
 * finish times, bytes read, written and stored), its disks (format from the
 * saved domain XML), the archive locations (size from stat, sha256 from the
 * manifest) and the manifest's own location, all under the target as
 * named (a configured name or the URL).
 *
 * Merging is idempotent, so an existing catalog is never overwritten: a
 * backup already recorded with the same domain, level and parent only gets
 * this target's locations added (a second copy); a recorded backup that
 * disagrees with its manifest is a conflict, reported and left untouched.
 * A DOMAIN/BACKUP_ID/ with archives but no manifest is an incomplete
 * backup; a manifest that cannot be read or parsed, or whose archives are
 * missing or of another size, is unreadable.  Both are reported by name and
 * recorded nowhere.
 */
#ifndef VIRTKEEP_REBUILD_H
#define VIRTKEEP_REBUILD_H

#include <stddef.h>

struct catalog;
struct config;

struct rebuild_options {
    const char *target;          /* a configured target name or a URL */
    const struct config *config; /* may be NULL */
};

struct rebuild_result {
    char *target;
    size_t manifests;  /* manifests found */
    size_t added;      /* backups recorded */
    size_t known;      /* backups already recorded (locations refreshed) */
    char **domains;    /* the domains seen (NULL-terminated) */
    char **backups;    /* ids added or known, oldest first per domain */
    char **incomplete; /* "DOMAIN/BACKUP_ID": archives without a manifest */
    char **unreadable; /* "KEY: why" */
    char **conflicts;  /* "BACKUP_ID: why" */
};

/* Returns 0 when the target could be listed (RESULT says what was found;
 * unreadable manifests and conflicts are not failures of the run), -1
 * otherwise. */
int rebuild_run(struct catalog *cat, const struct rebuild_options *opts,
                struct rebuild_result *result, unsigned int flags);
void rebuild_result_clear(struct rebuild_result *r);

#endif
