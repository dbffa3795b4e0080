/* virtkeep - what a storage backend implements (after curl's vtls_int.h).
 *
 * Each backend ends with one designated-initializer instance:
 *
 *   const struct transport_ops transport_file = { .scheme = "file", ... };
 *
 * and is listed in the registry in transport.c, which refuses a backend that
 * lacks a required method.  Shared logic (key validation, byte counting,
 * debug logging, retries) lives in transport.c, not in the backends: a
 * backend's methods receive validated keys and record errors with
 * vk_error*() naming the key and the operation ("cannot put 'KEY': ...");
 * the wrapper puts "target 'NAME': " in front.  A full target must give
 * VK_ERR_NO_SPACE and say so ("... the target is full"), a missing object
 * VK_ERR_NOT_FOUND, a read-only or forbidden target VK_ERR_PERMISSION.
 */
#ifndef VIRTKEEP_TRANSPORT_INT_H
#define VIRTKEEP_TRANSPORT_INT_H

#include "transport/transport.h"

struct transport_ops {
    const char *scheme;

    /* Required. */
    int (*open)(struct transport *t, const struct transport_url *url,
                const struct transport_options *opts);
    void (*close)(struct transport *t);
    int (*check)(struct transport *t);
    /* Returns a backend handle for the put, or NULL. */
    void *(*put_begin)(struct transport *t, const char *key, unsigned int flags);
    int (*put_write)(struct transport *t, void *handle, const void *buf, size_t len);
    int (*put_commit)(struct transport *t, void *handle); /* frees handle */
    void (*put_abort)(struct transport *t, void *handle); /* frees handle */
    ssize_t (*get_range)(struct transport *t, const char *key, uint64_t offset, void *buf,
                         size_t len);
    int (*stat)(struct transport *t, const char *key, struct transport_stat *st);
    int (*list)(struct transport *t, const char *prefix, transport_list_cb cb, void *opaque);
    int (*remove)(struct transport *t, const char *key);

    /* Optional: remove the temp files of killed puts in directory DIR_KEY,
     * then the directory when it is empty (transport_purge_temps). */
    int (*purge_temps)(struct transport *t, const char *dir_key, unsigned int *removed);
    /* Optional: list the keys of unfinished puts under PREFIX that leave
     * something behind outside any directory's temp files (s3: multipart
     * uploads), with a NULL stat (transport_list_temps). */
    int (*list_temps)(struct transport *t, const char *prefix, transport_list_cb cb, void *opaque);
};

struct transport {
    const struct transport_ops *ops;
    char *name; /* for messages */
    char *url;
    struct transport_url parsed;
    void *priv;                         /* the backend's state */
    struct transport_counters counters; /* updated atomically by transport.c */
};

/* Does OPS provide every required method?  Records VK_ERR_INTERNAL naming
 * the scheme and the missing method when not.  The registry calls it. */
int transport_ops_validate(const struct transport_ops *ops);

/* Listing helpers for backends that walk a directory tree (file, ssh):
 * collect keys with their stat, then sort them by key and hand them to the
 * callback. */
#define TRANSPORT_TMP_MARK ".vk-tmp-" /* in the names of puts in flight */

struct transport_entry {
    char *key;
    struct transport_stat st;
};

struct transport_entries {
    struct transport_entry *v;
    size_t n, cap;
};

/* Add KEY (taken over: freed by the list, or here on failure). */
int transport_entries_add(struct transport_entries *e, char *key, uint64_t size, int64_t mtime);
/* Sort by key (byte order) and call CB on each until it returns non-zero;
 * returns 0 or that value. */
int transport_entries_deliver(struct transport_entries *e, transport_list_cb cb, void *opaque);
/* Free the keys and the array; E may be used again. */
void transport_entries_clear(struct transport_entries *e);
/* Can keys under directory REL ("" for the root) start with PREFIX? */
bool transport_dir_may_match(const char *rel, const char *prefix);
/* Can a directory entry called NAME be part of a key?  Not ".", "..", a
 * put in flight, or a name with control characters. */
bool transport_name_listable(const char *name);

extern const struct transport_ops transport_file;
extern const struct transport_ops transport_ssh;
extern const struct transport_ops transport_s3;

#endif
