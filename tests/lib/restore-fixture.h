/* A restore fixture shared by unit tests (test-restore, test-plan): a chain
 * of backups of one disk, written with the archive writer into a file://
 * target beside their manifests, and recorded in a catalog (backups, disks
 * and the archive locations under the target URL, as the backup engine
 * does for a URL target).  It keeps what the tests check against: the disk
 * at every backup and the zstd frame size of every chunk written.
 *
 * The functions fail the running cmocka test on any error. */
#ifndef VIRTKEEP_TESTS_RESTORE_FIXTURE_H
#define VIRTKEEP_TESTS_RESTORE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

struct archive_compressor;
struct catalog;
struct transport;

#define RESTORE_FIXTURE_BACKUPS 8
#define RESTORE_FIXTURE_EXTENTS 16

/* One extent of a backup: the spec of a backup is an array of these ended
 * by kind RESTORE_FIXTURE_END. */
enum restore_fixture_kind {
    RESTORE_FIXTURE_END = -1,
    RESTORE_FIXTURE_DATA = 0,
    RESTORE_FIXTURE_ZERO = 1,
};

struct restore_fixture_extent {
    uint64_t offset, length;
    int kind;          /* enum restore_fixture_kind */
    unsigned int seed; /* what fill writes into a data extent */
};

struct restore_fixture {
    /* Set by the test before restore_fixture_setup. */
    const char *domain;
    const char *uuid;
    uint64_t disk_size;
    int compress_level;
    /* Fill a data extent of LEN bytes from SEED. */
    void (*fill)(uint8_t *buf, uint64_t len, unsigned int seed);

    /* Made by restore_fixture_setup. */
    char dir[256]; /* a new temporary directory */
    char target_dir[300];
    char url[320]; /* file://TARGET_DIR */
    char catalog[300];
    struct catalog *cat;
    struct transport *t;
    struct archive_compressor *comp;
    uint8_t *disk; /* the disk after the newest backup */

    /* One per backup added, oldest first. */
    size_t nr;
    char *ids[RESTORE_FIXTURE_BACKUPS];
    uint8_t *points[RESTORE_FIXTURE_BACKUPS];                         /* the disk at that backup */
    uint64_t frame[RESTORE_FIXTURE_BACKUPS][RESTORE_FIXTURE_EXTENTS]; /* per extent of its spec */
};

/* Make the directory (named after NAME under $TMPDIR or /tmp), the target,
 * the catalog, the compressor and a zeroed disk. */
void restore_fixture_setup(struct restore_fixture *fx, const char *name);
/* Add one committed backup of LEVEL on top of PARENT (NULL for none),
 * started at STARTED: its archive of disk "vda" from SPEC (applied to
 * fx->disk), its manifest, and its catalog rows. */
void restore_fixture_backup_add(struct restore_fixture *fx, const char *level, const char *parent,
                                int64_t started, const struct restore_fixture_extent *spec);
/* Free everything; remove the directory unless VIRTKEEP_TEST_KEEP is set. */
void restore_fixture_teardown(struct restore_fixture *fx);

/* Run a shell command made from FMT; returns what system() returns. */
int restore_fixture_shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
