/* virtkeep - storage targets, as callers see them.
 *
 * A target is a place archives go: a local directory (file://), an SSH/SFTP
 * server (ssh://) or an S3-compatible bucket (s3://).  Callers include this
 * header only, never a backend's file.  Objects are named by keys: relative
 * '/'-separated paths such as "web1/20261128T010000Z/vda.tar".  A key never
 * starts with '/', never has an empty, "." or ".." component, never ends
 * with '/', has no control characters, is at most TRANSPORT_KEY_MAX bytes
 * long, and never contains ".vk-tmp-" (reserved for puts in flight).
 *
 * Every function returns -1 or NULL on failure with the reason recorded in
 * the thread's last error (common/error.h), naming the target and the key.
 */
#ifndef VIRTKEEP_TRANSPORT_H
#define VIRTKEEP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct transport;
struct transport_writer;

#define TRANSPORT_KEY_MAX 1024

/* A parsed target URL:
 *   file:///var/backups/vk            path="/var/backups/vk"
 *   ssh://user@host:2222/srv/vk       user, host, port, path="/srv/vk"
 *   ssh://[::1]/srv/vk                host="::1" (no brackets)
 *   s3://bucket/prefix?endpoint=http://127.0.0.1:4568&region=us-east-1
 *                                     host="bucket", path="prefix"
 * A bare absolute path ("/var/backups") is taken as file:// as it is (no
 * percent-decoding).  Percent-escapes in user and path are decoded.  The
 * scheme is lower-cased; trailing '/' are dropped from paths ("/" stays);
 * an s3 path is a key prefix without leading or trailing '/'.  Passwords in
 * URLs, fragments, control characters (raw or escaped) are refused.
 * On failure OUT is left cleared (transport_url_clear is still safe). */
struct transport_url {
    char *scheme; /* "file", "ssh", "s3" */
    char *user;   /* or NULL */
    char *host;   /* or NULL (file) ; for s3, the bucket */
    int port;     /* 0 when not given */
    char *path;   /* never NULL; "" when empty */
    char *query;  /* raw query string without '?', or NULL */
};

int transport_url_parse(const char *url, struct transport_url *out);
/* Whether a target argument is a URL or an absolute path (rather than the
 * name of a configured [target]). */
bool transport_is_url(const char *arg);
void transport_url_clear(struct transport_url *url);
/* Value of KEY in the URL's query string, decoded; NULL if absent. */
char *transport_url_query_get(const struct transport_url *url, const char *key);

/* Credentials and options for opening a target.  Secrets are never passed
 * as strings here: the options name files or environment variables, and
 * the backend reads them. */
struct transport_options {
    const char *key_file;         /* ssh: private key file */
    const char *known_hosts;      /* ssh: known_hosts file (strict checking) */
    const char *password_file;    /* ssh: password in a file (0600) */
    const char *user;             /* ssh: user when the URL names none */
    const char *passphrase_file;  /* ssh: passphrase of an encrypted key_file (0600) */
    const char *passphrase_env;   /* ssh: ... or in this environment variable */
    const char *access_key_id;    /* s3: access key id (not a secret) */
    const char *secret_key_file;  /* s3: secret access key in a file (0600) */
    const char *secret_key_env;   /* s3: ... or in this environment variable */
    const char *region;           /* s3: region for SigV4 */
    const char *endpoint;         /* s3: endpoint URL, e.g. http://127.0.0.1:4568 */
    const char *ca_file;          /* s3: CA bundle for https */
    unsigned int timeout_seconds; /* 0 = backend default */
    /* s3: every object put is locked (Object Lock, COMPLIANCE mode) for this
     * many seconds; the bucket must have Object Lock enabled.  0: none.
     * Other schemes refuse a lock (VK_ERR_UNSUPPORTED). */
    uint64_t lock_seconds;
};

/* Does a backend exist for this scheme? */
bool transport_scheme_supported(const char *scheme);
/* A comma-separated list of the compiled-in schemes, for --help and errors. */
const char *transport_schemes(void);

/* Open a target.  NAME is how errors refer to it ("offsite"); it may be
 * NULL, in which case the URL is used.  OPTS may be NULL. */
struct transport *transport_open(const char *name, const char *url,
                                 const struct transport_options *opts);
void transport_close(struct transport *t);
const char *transport_name(const struct transport *t);
const char *transport_scheme(const struct transport *t);

/* Is the target reachable and writable?  Cheap; used by `virtkeep targets`. */
int transport_check(struct transport *t);

/* What went through a target since it was opened (thread-safe counters). */
struct transport_counters {
    uint64_t bytes_written; /* payload bytes of committed puts */
    uint64_t bytes_read;    /* payload bytes returned by gets */
    uint64_t puts;          /* committed puts */
    uint64_t gets;          /* successful ranged reads */
};
void transport_counters_get(const struct transport *t, struct transport_counters *out);

/* Streaming put.  Nothing is visible under KEY until commit succeeds; an
 * aborted or failed put leaves nothing behind under KEY and an existing
 * object under KEY is replaced only by a successful commit.  abort and commit
 * both free the writer (abort accepts NULL). */
struct transport_writer *transport_put_begin(struct transport *t, const char *key,
                                             unsigned int flags);
int transport_writer_write(struct transport_writer *w, const void *buf, size_t len);
int transport_writer_commit(struct transport_writer *w);
void transport_writer_abort(struct transport_writer *w);
/* Bytes written so far. */
uint64_t transport_writer_bytes(const struct transport_writer *w);

/* Convenience: put a whole buffer atomically. */
int transport_put(struct transport *t, const char *key, const void *buf, size_t len);

/* Ranged get: read up to LEN bytes at OFFSET.  Returns the number of bytes
 * read, which is short only at the end of the object (0 at or past the end).
 * A missing key fails with VK_ERR_NOT_FOUND. */
ssize_t transport_get_range(struct transport *t, const char *key, uint64_t offset, void *buf,
                            size_t len);
/* Read a whole (small) object into a malloc'd buffer, NUL-terminated for
 * convenience (the NUL is not counted in LEN).  An object larger than
 * MAX_SIZE fails with VK_ERR_INVALID. */
int transport_get_all(struct transport *t, const char *key, uint64_t max_size, void **buf,
                      size_t *len);

struct transport_stat {
    uint64_t size;
    int64_t mtime;        /* seconds since the epoch, or 0 when unknown */
    int64_t locked_until; /* s3 (stat only): Object Lock retain-until date, or 0 */
};

/* A missing key fails with VK_ERR_NOT_FOUND. */
int transport_stat(struct transport *t, const char *key, struct transport_stat *st);

/* List every object whose key starts with PREFIX ("" for all; a plain
 * string prefix such as "web1/" or "web1/2026"), in byte order of keys.
 * The callback returns 0 to go on, or a positive value to stop (and that
 * value is returned); -1 is reserved for failures.  Uncommitted puts are
 * never listed. */
typedef int (*transport_list_cb)(void *opaque, const char *key, const struct transport_stat *st);
int transport_list(struct transport *t, const char *prefix, transport_list_cb cb, void *opaque);

/* Delete an object.  A missing key fails with VK_ERR_NOT_FOUND. */
int transport_delete(struct transport *t, const char *key);

/* Check that a key is well formed (see above); records the error. */
int transport_key_valid(const char *key);

/* Remove the leftovers of puts in flight that a killed process left in the
 * directory DIR_KEY ("web1/web1-20261128T010203Z"): the hidden temp files
 * of file:// and ssh:// targets, and then the directory itself when it is
 * empty; on s3:// targets, the unfinished multipart uploads of keys under
 * DIR_KEY/ at any depth (ListMultipartUploads + AbortMultipartUpload; a
 * server without these calls has nothing to abort).  Committed objects are
 * not touched.  Only for a directory no live process is writing to: a put
 * in flight there loses its temp file or upload.  *REMOVED (may be NULL)
 * gets how many temp files or uploads were removed. */
int transport_purge_temps(struct transport *t, const char *dir_key, unsigned int *removed);

/* List the keys under PREFIX of puts in flight whose leftovers live
 * outside the directory a put writes to, so that a caller can find them
 * without knowing the directory: the unfinished multipart uploads of
 * s3:// targets (ST is NULL).  Others list nothing (their temp files go with
 * transport_purge_temps on the directory).  The callback works as in
 * transport_list; the keys are well formed.  transport_purge_temps on a
 * key's directory removes its upload. */
int transport_list_temps(struct transport *t, const char *prefix, transport_list_cb cb,
                         void *opaque);

#endif
