/* virtkeep - the unfinished multipart uploads that killed or failed puts
 * leave in an S3 bucket: invisible (no object until the upload completes),
 * but their parts take space and cost money until someone aborts them.
 * transport_list_temps() lists them (ListMultipartUploads under the
 * target's prefix); transport_purge_temps() aborts those under a directory
 * key (AbortMultipartUpload).  Servers without these calls (s3rver answers
 * 501 NotImplemented) have nothing to list or abort: a debug log says so.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/s3-int.h"
#include "transport/transport-int.h"

/* The canonical (sorted) query of one ListMultipartUploads page. */
static char *uploads_query(const struct s3 *s3, const char *prefix, const char *key_marker,
                           const char *id_marker)
{
    CLEANUP_FREE char *p = s3_uri_encode(prefix, false);
    CLEANUP_FREE char *k = key_marker ? s3_uri_encode(key_marker, false) : NULL;
    CLEANUP_FREE char *u = id_marker ? s3_uri_encode(id_marker, false) : NULL;

    if (!p || (key_marker && !k) || (id_marker && !u))
        return NULL;
    /* Sorted by name: that is the canonical query SigV4 signs. */
    return vk_asprintf("%s%s%smax-uploads=%u&prefix=%s%s%s&uploads=", k ? "key-marker=" : "",
                       k ? k : "", k ? "&" : "", s3->max_keys, p, u ? "&upload-id-marker=" : "",
                       u ? u : "");
}

/* Does the answer say that the server has no ListMultipartUploads? */
static bool not_implemented(const struct s3_req *r)
{
    struct s3_error_info info;

    if (r->status == 405 || r->status == 501)
        return true;
    return s3_xml_error(r->resp, r->resp_len, &info) &&
           (strcmp(info.code, "NotImplemented") == 0 || strcmp(info.code, "MethodNotAllowed") == 0);
}

static int abort_one(struct s3 *s3, const struct s3_upload *u)
{
    size_t plen = strlen(s3->prefix);
    CLEANUP_FREE char *enc = s3_uri_encode(u->upload_id, false);
    CLEANUP_FREE char *query = enc ? vk_asprintf("uploadId=%s", enc) : NULL;
    CLEANUP_FREE char *what = vk_asprintf("cannot abort the multipart upload of '%s'", u->key);
    struct s3_req r = {.method = "DELETE", .key = u->key + plen, .query = query};

    if (!query || !what || s3_perform(s3, &r, what) < 0)
        return -1;
    /* 404: aborted or completed meanwhile (NoSuchUpload). */
    if (r.status / 100 != 2 && r.status != 404) {
        s3_fail(s3, &r, what);
        s3_req_clear(&r);
        return -1;
    }
    s3_req_clear(&r);
    vk_debug("s3: aborted the multipart upload %s of '%s'", u->upload_id, u->key);
    return 0;
}

/* Call FN on each unfinished upload whose key starts with PREFIX (under
 * the target's own prefix), page by page.  FN returns 0 to go on, a
 * positive value to stop (returned), or -1.  A server without the call:
 * 0, with a debug log. */
static int uploads_each(struct s3 *s3, const char *prefix,
                        int (*fn)(struct s3 *, const struct s3_upload *, void *), void *arg)
{
    CLEANUP_FREE char *full = vk_asprintf("%s%s", s3->prefix, prefix);
    CLEANUP_FREE char *what = vk_asprintf("cannot list the multipart uploads under '%s'", prefix);
    CLEANUP_FREE char *key_marker = NULL, *id_marker = NULL;
    size_t plen = strlen(s3->prefix);

    if (!full || !what)
        return -1;
    for (;;) {
        CLEANUP_FREE char *query = uploads_query(s3, full, key_marker, id_marker);
        struct s3_req r = {.method = "GET", .query = query};
        struct s3_upload_page page;
        int ret = 0;

        if (!query || s3_perform(s3, &r, what) < 0)
            return -1;
        if (r.status / 100 != 2) {
            if (not_implemented(&r)) {
                vk_debug("s3: the server has no ListMultipartUploads (HTTP %ld): no multipart "
                         "upload under '%s'",
                         r.status, prefix);
                s3_req_clear(&r);
                return 0;
            }
            s3_fail(s3, &r, what);
            s3_req_clear(&r);
            return -1;
        }
        ret = s3_xml_uploads(r.resp, r.resp_len, &page);
        s3_req_clear(&r);
        if (ret < 0) {
            if (vk_error_code() == VK_ERR_UNSUPPORTED) {
                vk_debug("s3: the server has no ListMultipartUploads (%s): no multipart upload "
                         "under '%s'",
                         vk_error_message(), prefix);
                vk_error_clear();
                return 0;
            }
            vk_error_prefix("%s", what);
            return -1;
        }
        /* Only what the prefix asked for: a server that ignores it must
         * not make us touch other puts. */
        for (size_t i = 0; i < page.n && ret == 0; i++) {
            const char *k = page.uploads[i].key;
            if (strncmp(k, full, strlen(full)) != 0 || !k[plen] ||
                transport_key_valid(k + plen) < 0) {
                vk_error_clear();
                continue;
            }
            ret = fn(s3, &page.uploads[i], arg);
        }
        if (ret != 0 || !page.truncated) {
            s3_upload_page_clear(&page);
            return ret;
        }
        /* The next page starts after the markers; markers that do not move
         * would loop forever. */
        if (key_marker && strcmp(key_marker, page.next_key_marker) == 0 &&
            (!id_marker || !page.next_upload_id_marker ||
             strcmp(id_marker, page.next_upload_id_marker) == 0)) {
            s3_upload_page_clear(&page);
            vk_error(VK_ERR_CORRUPT, "%s: the listing does not move past '%s'", what, key_marker);
            return -1;
        }
        free(key_marker);
        free(id_marker);
        key_marker = VK_STEAL(page.next_key_marker);
        id_marker = VK_STEAL(page.next_upload_id_marker);
        if (id_marker && !*id_marker) {
            free(id_marker);
            id_marker = NULL;
        }
        s3_upload_page_clear(&page);
    }
}

static int abort_cb(struct s3 *s3, const struct s3_upload *u, void *arg)
{
    unsigned int *aborted = arg;

    if (abort_one(s3, u) < 0)
        return -1;
    (*aborted)++;
    return 0;
}

int s3_purge_temps(struct transport *t, const char *dir_key, unsigned int *aborted)
{
    CLEANUP_FREE char *prefix = vk_asprintf("%s/", dir_key);

    *aborted = 0;
    return prefix ? uploads_each(t->priv, prefix, abort_cb, aborted) : -1;
}

struct list_arg {
    transport_list_cb cb;
    void *opaque;
};

static int list_cb(struct s3 *s3, const struct s3_upload *u, void *arg)
{
    struct list_arg *a = arg;

    return a->cb(a->opaque, u->key + strlen(s3->prefix), NULL);
}

int s3_list_temps(struct transport *t, const char *prefix, transport_list_cb cb, void *opaque)
{
    struct list_arg a = {cb, opaque};

    return uploads_each(t->priv, prefix, list_cb, &a);
}
