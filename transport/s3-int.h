/* virtkeep - the s3:// backend's internals, shared by its files only
 * (s3.c: options, credentials and the vtable; s3-http.c: signed requests
 * with retries and error mapping; s3-put.c: streaming multipart puts;
 * s3-xml.c: the XML answers; s3-read.c: ranged reads with read-ahead;
 * s3-purge.c: unfinished multipart uploads of killed puts).  Tests include it to reach
 * the signing setup and the XML parsers; callers never do.
 */
#ifndef VIRTKEEP_TRANSPORT_S3_INT_H
#define VIRTKEEP_TRANSPORT_S3_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define S3_MIN_PART_SIZE (5u * 1024 * 1024)
#define S3_MAX_PART_SIZE (5ull * 1024 * 1024 * 1024)
#define S3_MAX_PARTS 10000
#define S3_MAX_PARALLEL 16
/* S3 object names (prefix + key) are at most 1024 bytes (radosgw: 400
 * InvalidObjectName beyond). */
#define S3_NAME_MAX 1024

/* Sequential read-ahead (s3-read.c): RA_SLOTS streams, one buffer each. */
#define S3_RA_SLOTS 2
#define S3_RA_MAX_WINDOW (64u * 1024 * 1024)

struct s3_ra_slot {
    char *key;     /* the object this stream reads, or NULL */
    uint64_t next; /* where the last read of KEY ended */
    size_t win;    /* the window the next sequential fetch asks for */
    char *buf;     /* the window: LEN bytes of KEY at OFF (CAP allocated) */
    size_t cap, len;
    uint64_t off;
    bool eof;  /* the object ends at OFF + LEN */
    bool busy; /* a fetch into this slot runs (without the lock) */
    uint64_t when, tick;
};

struct s3_ra {
    pthread_mutex_t lock;
    size_t max_window; /* 0: no read-ahead */
    uint64_t gen;      /* bumped by every invalidation */
    uint64_t ticks;
    struct s3_ra_slot slots[S3_RA_SLOTS];
};

/* Credentials, read once at open.  The secret never goes to a log. */
struct s3_creds {
    char *access_key;
    char *secret;
    char *session_token; /* or NULL */
};

struct s3 {
    char *endpoint; /* "http://127.0.0.1:4568", no trailing '/' */
    char *bucket;
    char *prefix; /* "" or "a/b/" (with the trailing '/') */
    char *region;
    char *sigv4; /* "aws:amz:REGION:s3" */
    char *ca_file;
    bool virtual_host;
    struct s3_creds creds;
    long timeout;              /* seconds for one request */
    unsigned int attempts;     /* per request, >= 1 */
    unsigned int backoff_ms;   /* first retry delay (before jitter) */
    size_t part_size;          /* first part size */
    unsigned int parallel;     /* parts in flight per put */
    unsigned int max_keys;     /* ListObjectsV2 page size */
    uint64_t lock_seconds;     /* Object Lock retention of each put; 0: none */
    uint64_t retries;          /* retried requests, for tests and debug (atomic) */
    pthread_mutex_t pool_lock; /* idle curl handles (connection reuse) */
    CURL *pool[S3_MAX_PARALLEL + 4];
    unsigned int npool;
    struct s3_ra ra; /* read-ahead (s3-read.c) */
};

/* One request.  The body comes from memory so that a retry can re-send it. */
struct s3_req {
    const char *method; /* GET HEAD PUT POST DELETE */
    const char *key;    /* object key under the target (prefix added), or NULL: bucket */
    const char *query;  /* canonical query ("a=1&b=x%2Fy", sorted), or NULL */
    const void *body;
    size_t body_len;
    bool slow_answer;       /* the server may be silent for minutes before it answers */
    uint64_t range_off;     /* with range_len > 0: Range: bytes=off-(off+len-1) */
    const char *lock_until; /* Object Lock (COMPLIANCE) until this ISO 8601 date, or NULL */
    bool content_md5;       /* send Content-MD5 (Object Lock puts need it) */
    size_t range_len;

    /* The answer. */
    long status;
    char *resp; /* body (error XML, listings), NUL-terminated */
    size_t resp_len;
    char *dst; /* or: GET data into this buffer */
    size_t dst_cap, dst_len;
    char etag[130];
    bool past_end; /* a "206" whose Content-Range starts past the end */
    uint64_t content_length;
    int64_t mtime;
    int64_t locked_until; /* x-amz-object-lock-retain-until-date, or 0 */
};

/* Signing: CURLOPT_AWS_SIGV4 with the access key and secret, and the
 * headers curl 7.88 does not add: x-amz-content-sha256 (PAYLOAD_HASH) and
 * x-amz-security-token.  Appends to *HEADERS; returns -1 when out of memory. */
int s3_sign_setup(CURL *h, const char *sigv4, const struct s3_creds *creds,
                  const char *payload_hash, struct curl_slist **headers);

/* Run REQ with retries (5xx, 429, connection errors).  Returns 0 when an
 * answer came (any status, in req->status) and -1 with VK_ERR_NETWORK
 * recorded, naming the endpoint, when none did.  WHAT starts the message
 * ("cannot put 'KEY'"). */
int s3_perform(struct s3 *s3, struct s3_req *req, const char *what);
/* Record the error for a non-2xx answer: the S3 error code and message
 * mapped to a vk_error code; WHAT starts the message.  Returns -1. */
int s3_fail(const struct s3 *s3, const struct s3_req *req, const char *what);
/* s3_perform, then s3_fail unless the answer is 2xx; REQ is cleared either
 * way.  Returns 0 for a 2xx answer, else -1 (recorded). */
int s3_perform_ok(struct s3 *s3, struct s3_req *req, const char *what);
void s3_req_clear(struct s3_req *req);

/* Percent-encode for a URL path (KEEP_SLASH) or a query value. */
char *s3_uri_encode(const char *s, bool keep_slash);

/* Ranged reads with sequential read-ahead (s3-read.c).  LEN > 0; returns
 * the bytes read, short only at the object's end (0 at or past it). */
ssize_t s3_ra_read(struct s3 *s3, const char *key, uint64_t offset, void *buf, size_t len);
/* Drop what is buffered of KEY: it is being written or deleted. */
void s3_ra_forget(struct s3 *s3, const char *key);
/* MAX_WINDOW 0 turns read-ahead off. */
void s3_ra_init(struct s3_ra *ra, size_t max_window);
void s3_ra_free(struct s3_ra *ra);

/* Streaming put (s3-put.c). */
struct s3_put;
struct s3_put *s3_put_begin(struct s3 *s3, const char *key);
int s3_put_write(struct s3_put *p, const void *buf, size_t len);
int s3_put_commit(struct s3_put *p);
void s3_put_abort(struct s3_put *p);
/* The size of part number N (1-based) for a first part size BASE. */
size_t s3_part_size(size_t base, unsigned int n);

/* XML answers (s3-xml.c).  Each parses strictly and fails with
 * VK_ERR_CORRUPT (message naming WHAT) on anything malformed. */
struct s3_error_info {
    char code[64];
    char message[256];
    char bucket[256];
};
/* Parse an <Error> document; false when BODY is not one. */
bool s3_xml_error(const char *body, size_t len, struct s3_error_info *out);

struct s3_list_entry {
    char *key;
    uint64_t size;
    int64_t mtime;
};
struct s3_list_page {
    struct s3_list_entry *entries;
    size_t n;
    bool truncated;
    char *next_token; /* or NULL */
};
int s3_xml_list(const char *body, size_t len, struct s3_list_page *out);
void s3_list_page_clear(struct s3_list_page *page);
/* The UploadId of an InitiateMultipartUploadResult; NULL on failure. */
char *s3_xml_upload_id(const char *body, size_t len);
/* Is BODY a CompleteMultipartUploadResult (true) or an error (false)? */
bool s3_xml_complete_ok(const char *body, size_t len);

/* One page of ListMultipartUploads: the uploads begun and neither
 * completed nor aborted.  Keys are whole bucket keys (prefix included). */
struct s3_upload {
    char *key;
    char *upload_id;
};
struct s3_upload_page {
    struct s3_upload *uploads;
    size_t n;
    bool truncated;
    char *next_key_marker;       /* or NULL */
    char *next_upload_id_marker; /* or NULL */
};
/* Another well-formed document than a ListMultipartUploadsResult (a server
 * without the call) fails with VK_ERR_UNSUPPORTED. */
int s3_xml_uploads(const char *body, size_t len, struct s3_upload_page *out);
void s3_upload_page_clear(struct s3_upload_page *page);

/* The purge_temps and list_temps methods (s3-purge.c): abort, or list,
 * the unfinished multipart uploads under DIR_KEY/ (PREFIX).  A server
 * without ListMultipartUploads has none (a debug log). */
struct transport;
struct transport_stat;
int s3_purge_temps(struct transport *t, const char *dir_key, unsigned int *aborted);
int s3_list_temps(struct transport *t, const char *prefix,
                  int (*cb)(void *opaque, const char *key, const struct transport_stat *st),
                  void *opaque);

#endif
