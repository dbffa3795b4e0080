/* virtkeep - the libvirt glue for backups.
 *
 * Only this module and the engine files call libvirt.  Its files:
 *   virt.c        connection, domains, pull-mode backup jobs, guest
 *                 file-system freeze (the libvirt calls)
 *   virt-checkpoint.c  checkpoints and their chain hygiene (libvirt, the
 *                 monitor for bitmaps of a running domain, qemu-img offline)
 *   virt-error.c  libvirt errors: the quiet handler, the map to vk_error
 *                 codes and virt_failure kinds, the last failure
 *   virt-xml.c    the domain disk list, checkpoint and backup XML (libxml2)
 *   virt-storage.c  storage volumes: upload and read-back with sparse streams
 *   virt-run.c    the run directory QEMU writes into, qemu-img bitmaps and
 *                 qemu-nbd for shut-off domains (child processes)
 *
 * Errors follow common/error.h: one message naming the domain and disk,
 * with libvirt's own message appended, and VK_ERR_LIBVIRT, VK_ERR_NOT_FOUND,
 * ...  A libvirt error handler keeps libvirt from printing to stderr.
 *
 * virtkeep owns only the checkpoints whose name starts with
 * VIRT_CHECKPOINT_PREFIX; it lists foreign ones but never deletes them.
 */
#ifndef VIRTKEEP_VIRT_H
#define VIRTKEEP_VIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libvirt/libvirt.h>

#define VIRT_CHECKPOINT_PREFIX "virtkeep-"

/* ---------------------------------------------------------------- connection */

struct virt_conn {
    virConnectPtr conn;
    char *uri; /* the URI libvirt reports, e.g. "qemu:///system" */
};

/* Open URI (NULL: libvirt's default).  Installs the error handler. */
struct virt_conn *virt_conn_open(const char *uri, unsigned int flags);
void virt_conn_close(struct virt_conn *c);
/* Whether the connection is to a privileged (system) QEMU driver. */
bool virt_conn_is_system(const struct virt_conn *c);
/* False once a call found the connection broken (libvirtd gone, or the
 * client disconnected by virt-admin): every later call fails, so cleanup
 * needs a new connection. */
bool virt_conn_is_alive(const struct virt_conn *c);

/* ---------------------------------------------------------------- domains */

enum virt_domain_state {
    VIRT_DOMAIN_OTHER = 0, /* crashed, suspended to disk, ... */
    VIRT_DOMAIN_RUNNING,
    VIRT_DOMAIN_PAUSED,
    VIRT_DOMAIN_SHUTOFF,
};

struct virt_domain {
    struct virt_conn *conn; /* borrowed */
    virDomainPtr dom;
    char *name;
    char uuid[VIR_UUID_STRING_BUFLEN];
};

/* Look up by name, then by UUID: VK_ERR_NOT_FOUND
 * "domain 'x' not found on qemu:///system". */
struct virt_domain *virt_domain_lookup(struct virt_conn *c, const char *name_or_uuid);
void virt_domain_free(struct virt_domain *d);
int virt_domain_get_state(struct virt_domain *d, enum virt_domain_state *state);
const char *virt_domain_state_name(enum virt_domain_state state);
/* 1 persistent, 0 transient, -1 error. */
int virt_domain_is_persistent(struct virt_domain *d);

#define VIRT_XML_INACTIVE 1u /* the persistent definition, not the live one */
char *virt_domain_get_xml(struct virt_domain *d, unsigned int flags);

/* ---------------------------------------------------------------- disks */

enum virt_disk_kind {
    VIRT_DISK_DISK = 0,
    VIRT_DISK_CDROM,
    VIRT_DISK_FLOPPY,
    VIRT_DISK_LUN,
};

enum virt_disk_format {
    VIRT_FORMAT_OTHER = 0, /* unknown or not given */
    VIRT_FORMAT_QCOW2,
    VIRT_FORMAT_RAW,
};

struct virt_disk {
    char *target; /* "vda" */
    char *bus;    /* "virtio", "sata", ... or NULL */
    enum virt_disk_kind kind;
    char *source_type; /* "file", "block", "network", "volume" */
    char *source;      /* file or block device path; NULL for others */
    char *format;      /* driver type as written ("qcow2"), or NULL */
    enum virt_disk_format fmt;
    bool readonly;
    bool skip;               /* not backed up at all */
    const char *skip_reason; /* static text, set when skip: "is a cdrom" */
    bool full_only;          /* no checkpoint bitmap possible (raw): full and copy only */
};

struct virt_disk_list {
    struct virt_disk *disks;
    size_t nr;
};

/* Parse the <disk> devices of a domain XML.  VK_ERR_INVALID on malformed
 * XML or a disk without a target.  OUT is cleared on failure. */
int virt_disks_parse(const char *domain_xml, struct virt_disk_list *out);
void virt_disks_clear(struct virt_disk_list *l);
struct virt_disk *virt_disks_find(const struct virt_disk_list *l, const char *target);
const char *virt_disk_kind_name(enum virt_disk_kind kind);

/* Which disks a job covers: every disk that is not skipped, restricted to
 * INCLUDE (when not NULL) and without EXCLUDE.  An unknown name in either
 * list is VK_ERR_NOT_FOUND; including a skipped disk is VK_ERR_UNSUPPORTED
 * with its reason.  Returns a NULL-terminated list of targets. */
char **virt_disks_select(const struct virt_disk_list *l, const char *domain, char *const *include,
                         char *const *exclude);

/* ---------------------------------------------------------------- XML builders */

/* <domaincheckpoint>: NAME, optional PARENT, CREATION_TIME (seconds; 0 to
 * leave it to libvirt), one <disk> per disk of DISKS: checkpoint='bitmap'
 * for selected qcow2 disks (with bitmap=NAME when VIRT_XML_BITMAP_NAMES),
 * checkpoint='no' for all others.  Skipped disks are left out. */
#define VIRT_XML_BITMAP_NAMES 1u
char *virt_checkpoint_xml_build(const char *name, const char *parent, int64_t creation_time,
                                const struct virt_disk_list *disks, char *const *selected,
                                unsigned int flags);

/* <domainbackup mode='pull'>: the unix SOCKET, <incremental> when
 * INCREMENTAL is not NULL, backup='yes' with a scratch file
 * RUNDIR/TARGET.scratch for selected disks, backup='no' for the others. */
char *virt_backup_xml_build(const char *socket, const char *rundir, const char *incremental,
                            const struct virt_disk_list *disks, char *const *selected,
                            unsigned int flags);

/* Values from a checkpoint XML (for saved XML and for tests). */
char *virt_checkpoint_xml_get_name(const char *xml);
int64_t virt_checkpoint_xml_get_creation_time(const char *xml); /* -1 when absent */

/* Escape text for an XML attribute or element (& < > ' "). */
char *virt_xml_escape(const char *s);

/* ---------------------------------------------------------------- checkpoints */

bool virt_checkpoint_is_ours(const char *name);
/* A fresh name: VIRT_CHECKPOINT_PREFIX + UTC time + random suffix. */
char *virt_checkpoint_name_new(void);

#define VIRT_CHECKPOINT_LIST_ALL 1u /* foreign checkpoints too */
/* Names, oldest first (parents before children). */
char **virt_checkpoint_list(struct virt_domain *d, unsigned int flags);
/* 1 exists, 0 not, -1 error. */
int virt_checkpoint_exists(struct virt_domain *d, const char *name);
char *virt_checkpoint_get_xml(struct virt_domain *d, const char *name);
/* The newest of ours (leaf of the chain), or NULL with VK_ERR_NOT_FOUND. */
char *virt_checkpoint_current(struct virt_domain *d);

/* Create a checkpoint now (running or shut-off domain: libvirt's own path). */
int virt_checkpoint_create(struct virt_domain *d, const char *xml, unsigned int flags);

/* Redefine from saved XML (VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE).  With
 * VIRT_CHECKPOINT_VALIDATE libvirt checks the bitmaps of a running domain:
 * a bitmap left in-use by a crashed QEMU fails with error 109. */
#define VIRT_CHECKPOINT_VALIDATE 1u
int virt_checkpoint_redefine(struct virt_domain *d, const char *xml, unsigned int flags);

/* Delete one of ours (never a foreign one: VK_ERR_INVALID).  A missing
 * checkpoint is not an error.  VIRT_CHECKPOINT_METADATA_ONLY keeps the
 * bitmaps in the images. */
#define VIRT_CHECKPOINT_METADATA_ONLY 1u
int virt_checkpoint_delete(struct virt_domain *d, const char *name, unsigned int flags);

/* Check that checkpoint NAME can serve as the base of an incremental:
 * it exists, and for a running domain its bitmaps validate; for a shut-off
 * domain every qcow2 disk of DISKS in SELECTED has a bitmap NAME that is not
 * in-use.  0 when usable, -1 with the error recorded otherwise (then
 * virt_error_needs_full() says whether a full backup is the way out). */
int virt_checkpoint_check(struct virt_domain *d, const char *name,
                          const struct virt_disk_list *disks, char *const *selected,
                          unsigned int flags);

/* Clean up a broken checkpoint NAME so that the next full can start: drop
 * its metadata, and remove the bitmap NAME from each selected qcow2 image
 * (qemu-img bitmap --remove on a shut-off domain, block-dirty-bitmap-remove
 * through the monitor on a running one).  Missing pieces are not errors. */
int virt_checkpoint_discard(struct virt_domain *d, const char *name,
                            const struct virt_disk_list *disks, char *const *selected,
                            unsigned int flags);

/* Shut-off domain: qemu-img bitmap --add on each selected qcow2 image, then
 * REDEFINE a checkpoint NAME (parent PARENT, creationTime now) that names
 * those bitmaps.  On failure the bitmaps added are removed again.  Returns
 * the checkpoint XML as redefined (malloc'd) or NULL. */
char *virt_checkpoint_create_offline(struct virt_domain *d, const char *name, const char *parent,
                                     const struct virt_disk_list *disks, char *const *selected,
                                     unsigned int flags);

/* ---------------------------------------------------------------- failures */

enum virt_failure {
    VIRT_FAIL_NONE = 0,
    VIRT_FAIL_OTHER,
    VIRT_FAIL_CHECKPOINT_INCONSISTENT, /* error 109, bitmap in-use */
    VIRT_FAIL_BITMAP_EXISTS,           /* "Bitmap already exists" */
    VIRT_FAIL_CHECKPOINT_MISSING,      /* no such checkpoint / bitmap */
    VIRT_FAIL_NO_AGENT,                /* no guest agent for quiesce */
    VIRT_FAIL_CONN_LOST,               /* the connection to libvirtd broke */
};

/* Record "WHAT: libvirt's message." from the last libvirt error on this
 * thread, with the code it maps to (for engine files that call libvirt
 * directly, such as migrate*.c). */
void virt_error_libvirt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* What the last virt_* failure on this thread was. */
enum virt_failure virt_last_failure(void);
/* Whether that failure is one a full backup (after
 * virt_checkpoint_discard) recovers from. */
bool virt_error_needs_full(void);
/* Classify a libvirt error code and message (exposed for tests). */
enum virt_failure virt_failure_classify(int libvirt_code, const char *message);

/* ---------------------------------------------------------------- pull-mode backup */

/* Begin a pull-mode backup: BACKUP_XML from virt_backup_xml_build(),
 * CHECKPOINT_XML (NULL for copy) creates the new checkpoint atomically. */
int virt_backup_begin(struct virt_domain *d, const char *backup_xml, const char *checkpoint_xml,
                      unsigned int flags);
char *virt_backup_get_xml(struct virt_domain *d);
/* 1 when a backup job is active, 0 when none, -1 error. */
int virt_backup_is_active(struct virt_domain *d);
/* Like virt_backup_is_active, but first wait up to TIMEOUT_MS for a
 * virDomainBackupBegin still in flight in libvirtd (of a client that may be
 * dead) to end: nothing may touch the domain's checkpoints before. */
int virt_backup_settle(struct virt_domain *d, unsigned int timeout_ms);
/* Abort the job (if any, once settled) and wait up to TIMEOUT_MS until it is
 * gone. */
int virt_backup_abort(struct virt_domain *d, unsigned int timeout_ms);
/* NBD names of a pull-mode export of TARGET: export "vda", dirty bitmap
 * context "qemu:dirty-bitmap:backup-vda" (malloc'd). */
char *virt_pull_bitmap_context(const char *target);

/* ---------------------------------------------------------------- quiesce */

/* Freeze / thaw the guest file systems through the guest agent.  Without an
 * agent: VK_ERR_UNSUPPORTED and virt_last_failure() == VIRT_FAIL_NO_AGENT. */
int virt_fs_freeze(struct virt_domain *d);
int virt_fs_thaw(struct virt_domain *d);

/* ---------------------------------------------------------------- storage volumes */

#define VIRT_SHA256_LEN 32

/* Send SIZE bytes of FD (a regular file, read from offset 0) into volume
 * VOL of C through a sparse stream (virStorageVolUpload): holes are skipped
 * on the wire, the volume reads them as zeros.  SHA256 receives the sha256
 * of the SIZE bytes as sent (holes as zeros).  WHAT names the transfer in
 * errors: "cannot upload WHAT: libvirt's message". */
int virt_storage_vol_upload(struct virt_conn *c, virStorageVolPtr vol, int fd, uint64_t size,
                            const char *what, uint8_t sha256[VIRT_SHA256_LEN]);
/* Read the first SIZE bytes of volume VOL of C back through a sparse stream
 * (virStorageVolDownload) and give their sha256 (holes as zeros); *BYTES
 * says how many bytes came, also on failure.  WHAT names the volume in
 * errors: "cannot read WHAT back: libvirt's message". */
int virt_storage_vol_sha256(struct virt_conn *c, virStorageVolPtr vol, uint64_t size,
                            const char *what, uint8_t sha256[VIRT_SHA256_LEN], uint64_t *bytes);

/* ---------------------------------------------------------------- run directory */

/* Where run directories go by default for a process of EUID (malloc'd):
 * /var/lib/virtkeep/run for root; for other users $XDG_RUNTIME_DIR/virtkeep,
 * else $XDG_CACHE_HOME/virtkeep/run, else $HOME/.cache/virtkeep/run (each
 * only if absolute); VK_ERR_NOT_FOUND without any. */
char *virt_rundir_default(uid_t euid);
/* A fresh directory vk-PID-XXXXXX under PARENT (NULL: virt_rundir_default(),
 * created if needed) that QEMU can write: for a system connection it is owned
 * by QEMU's user (qemu.conf 'user', default libvirt-qemu, then qemu).  Pull
 * sockets and scratch files go there. */
#define VIRT_RUNDIR_NO_CHOWN 1u /* session connection: QEMU runs as us */
char *virt_rundir_create(const char *parent, unsigned int flags);
/* Remove the files directly inside DIR (scratch files, sockets) and DIR. */
int virt_rundir_remove(const char *dir);
/* Remove the run directories under PARENT (NULL: the default) whose process
 * is gone (killed with kill -9, a crash): each is named vk-PID-XXXXXX after
 * its process.  Older ones (vk-XXXXXX) go only when empty and untouched for
 * an hour.  A directory that cannot be removed is a warning.  Sets *REMOVED
 * (may be NULL) to the count. */
int virt_rundir_clean_stale(const char *parent, unsigned int *removed);
/* QEMU's user from a qemu.conf at PATH (NULL: /etc/libvirt/qemu.conf). */
char *virt_qemu_user(const char *qemu_conf);

/* ---------------------------------------------------------------- images (shut-off) */

enum virt_bitmap_state {
    VIRT_BITMAP_ABSENT = 0,
    VIRT_BITMAP_OK,
    VIRT_BITMAP_IN_USE, /* left in-use by a crashed QEMU: inconsistent */
};

/* Run qemu-img (VIRTKEEP_QEMU_IMG names another program) with ARGS, a NULL-
 * terminated list without the program name.  *OUT (may be NULL) gets its
 * stdout.  On failure the error is "WHAT: qemu-img exited with status N:
 * its stderr". */
int virt_qemu_img(char *const args[], char **out, const char *what);
int virt_image_bitmap_add(const char *image, const char *name);
/* A missing bitmap is not an error. */
int virt_image_bitmap_remove(const char *image, const char *name);
int virt_image_bitmap_state(const char *image, const char *name, enum virt_bitmap_state *state);

/* qemu-img create -f FORMAT (NULL: qcow2) IMAGE SIZE. */
int virt_image_create(const char *image, const char *format, uint64_t size);
/* qemu-nbd -r serving one image of a shut-off domain. */
struct virt_nbd {
    pid_t pid;
    char *socket;         /* RUNDIR/TARGET.sock */
    char *export_name;    /* the disk target, as in pull mode */
    char *bitmap_context; /* "qemu:dirty-bitmap:NAME" or NULL */
};

/* Start qemu-nbd --read-only --format=FMT [--bitmap=BITMAP] --socket in
 * RUNDIR for DISK and wait until it listens. */
struct virt_nbd *virt_nbd_start(const struct virt_disk *disk, const char *rundir,
                                const char *bitmap, unsigned int flags);
/* Stop it (SIGTERM, waitpid: no zombie), remove the socket, free. */
int virt_nbd_stop(struct virt_nbd *n);

#endif
