/* virtkeep - restore and verify.
 *
 * The chain, its archives and the merged map come from the read layer
 * (src/reader/reader.h).  The files here:
 *   restore-image.c   the destination image: qemu-img create, a writable
 *                     qemu-nbd, libnbd writes with several requests in flight
 *   restore.c         restore_run: chain, merge, write, rename, catalog job
 *   restore-define.c  --define: the saved domain XML rewritten for the
 *                     restored images (and a new name), define, start
 *   restore-verify.c  verify_run: re-read archives and check them
 *
 * A restored disk is written to DIR/.DISK.qcow2.vk-tmp-XXXXXX and renamed to
 * DIR/DISK.qcow2 (DISK is the disk target, e.g. "vda") only once it is
 * complete, flushed and fsync'd: a failed restore never leaves a file under
 * the final name.
 */
#ifndef VIRTKEEP_RESTORE_H
#define VIRTKEEP_RESTORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/format/format.h"
#include "src/reader/reader.h"

struct catalog;
struct config;

/* ---------------------------------------------------------------- restore */

struct restore_options {
    const char *domain;
    const char *backup_id;       /* restore this backup, or NULL: ... */
    int64_t at;                  /* ... the newest one at or before AT */
    const char *dest_dir;        /* created (0700) when missing */
    char *const *disks;          /* disk targets to restore, NULL for all */
    const char *from;            /* target name or URL to read from, or NULL */
    const struct config *config; /* for target names; may be NULL */
    bool force;                  /* replace existing destination files */
    uint64_t cluster_size;       /* qcow2 cluster size, 0: the source image's (manifest), */
    const char *compat;          /* else 64 KiB; compat likewise, else "1.1" */
    unsigned int in_flight;      /* NBD requests in flight, 0: 8 */
    bool define;                 /* define the domain from the saved XML (persistent) */
    bool start;                  /* and start it (implies define) */
    const char *new_name;        /* define it as NEW: no UUID, no MACs (see restore_domain_xml) */
    bool keep_host_devices;      /* define host-reaching devices of the saved XML as they are */
    const char *connect_uri;     /* libvirt URI for define, NULL: libvirt's default */
    const volatile sig_atomic_t *cancel; /* set (by a signal): stop, clean up, VK_ERR_INTERRUPTED */
};

struct restore_disk_result {
    char *target; /* "vda" */
    char *path;   /* the restored image */
    uint64_t virtual_size;
    uint64_t bytes_written; /* data written through NBD */
    uint64_t zero_bytes;    /* of zero ranges: left unallocated, the fresh image reads zeros */
    uint64_t frame_bytes;   /* compressed chunk bytes fetched from archives */
    uint64_t raw_bytes;     /* raw bytes decompressed */
    uint64_t index_bytes;   /* other archive bytes fetched (trailer, index) */
    size_t nr_chunks;       /* chunks read */
    struct reader_map map;  /* what the merge asked for (pieces freed) */
    double seconds;
    uint64_t cluster_size; /* of the restored image */
    char *compat;
};

struct restore_result {
    char **chain; /* backup ids, the full first (NULL-terminated) */
    struct restore_disk_result *disks;
    size_t nr_disks;
    int64_t job_id;
    double seconds;
    double estimate_seconds; /* the planner's estimate, recorded in the job */
    char *defined;           /* the domain defined (--define), or NULL */
    bool started;
    char **dropped;         /* disks of the saved XML left out of the definition */
    char **dropped_devices; /* devices reaching the host left out (restore_domain_xml) */
    /* Links of the chain not checked: manifests older than version 3 record
     * no digest of their parent's manifest. */
    size_t links_unchecked;
};

/* Restore as OPTS say.  Records a "restore" job in CAT and the read
 * throughput per target.  Before reading any data, every link of the chain
 * is checked (reader_chain_check): a broken one refuses the restore.  On
 * failure the job is marked failed and nothing is left under a final name. */
int restore_run(struct catalog *cat, const struct restore_options *opts, struct restore_result *out,
                unsigned int flags);
void restore_result_clear(struct restore_result *r);

/* ---------------------------------------------------------------- define */

struct restore_define_disk {
    const char *target; /* "vda" */
    const char *path;   /* the restored image (absolute) */
};

struct restore_define_options {
    const struct restore_define_disk *disks;
    size_t nr_disks;
    const char *new_name;   /* or NULL: keep the name */
    const char *uuid;       /* set this UUID (replacing a domain with --force), or NULL */
    bool keep_host_devices; /* trust the saved XML's host devices (see restore_domain_xml) */
};

/* The saved domain XML rewritten for a restore: each disk device of DISKS
 * points at its image (qcow2, no backing chain); other disk devices are
 * removed and their targets listed in *DROPPED (NULL-terminated, free with
 * vk_strv_free; NULL when none); cdrom and floppy stay.  The domain id and
 * dynamic security labels are dropped.  With NEW_NAME: the name changes and
 * <uuid>, every interface <mac>, fixed graphics ports (autoport) and
 * <os><nvram> are removed so that libvirt generates fresh ones.
 *
 * The saved XML is not trusted: unless O->keep_host_devices, devices that
 * reach host resources (file system passthrough, host devices, char
 * devices with host sources, qemu:commandline, ...: restore-define.c has
 * the list) are removed, cdrom and floppy media ejected, and each is
 * described in *REMOVED ("<filesystem type='mount'> source '/' target
 * 'host'"; NULL-terminated, vk_strv_free; NULL when none; REMOVED may be
 * NULL). */
char *restore_domain_xml(const char *xml, const struct restore_define_options *o, char ***dropped,
                         char ***removed, unsigned int flags);

/* ---------------------------------------------------------------- verify */

#define VERIFY_QUICK 1u /* structure and sizes only, no chunk reads */

struct verify_options {
    const char *what;            /* a backup id or a domain name */
    const char *from;            /* only copies on this target (name or URL) */
    const struct config *config; /* for target names; may be NULL */
};

struct verify_item {
    char *backup_id;
    char *disk;     /* NULL for the manifest and the chain link */
    char *parent;   /* the chain link to this parent (the hash chain), else NULL */
    bool unchecked; /* a link that could not be checked (manifest before version 3) */
    char *target;
    char *key;
    bool ok;
    char *error; /* why not, or NULL */
    uint64_t chunks;
    uint64_t bytes;
};

struct verify_result {
    struct verify_item *items;
    size_t nr;
    /* The chain links (the hash chain of the manifests), one per backup
     * with a parent and target: its manifest's key, ok or not. */
    struct verify_item *links;
    size_t nr_links;
    size_t failed;    /* items and links */
    size_t unchecked; /* links not checked: ok, but unknown */
};

/* Verify every archive copy of backup OPTS->what, or of every committed
 * backup of domain OPTS->what, and on each target the chain link of each
 * backup with a parent (reader_link_check): one item per link.  Returns 0 when the items could be
 * listed (RESULT->failed says how many are bad), -1 otherwise. */
int verify_run(struct catalog *cat, const struct verify_options *opts, unsigned int flags,
               struct verify_result *result);
void verify_result_clear(struct verify_result *r);

#endif
