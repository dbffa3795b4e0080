/* virtkeep - the XML answers of S3: errors, ListObjectsV2 pages, multipart
 * upload ids and completions.  Parsed with libxml2, strictly: no network,
 * no entity expansion, no DTD; a document that is not what it should be is
 * refused with VK_ERR_CORRUPT, never half-read.  Element names are matched
 * without their namespace (S3 uses xmlns="http://s3.amazonaws.com/...").
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "common/xml.h"
#include "transport/s3-int.h"

/* The text of child NAME of PARENT (malloc'd), or NULL when absent. */
static char *child_text(const xmlNode *parent, const char *name)
{
    return vk_xml_text(vk_xml_child(parent, name));
}

static void copy_child(const xmlNode *parent, const char *name, char *out, size_t len)
{
    CLEANUP_FREE char *t = child_text(parent, name);

    snprintf(out, len, "%s", t ? t : "");
    /* Messages are shown to users: no control characters. */
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
}

bool s3_xml_error(const char *body, size_t len, struct s3_error_info *out)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse(body, len, VK_ERR_CORRUPT, NULL);
    xmlNode *root = vk_xml_root(doc, "Error");

    memset(out, 0, sizeof *out);
    if (root) {
        copy_child(root, "Code", out->code, sizeof out->code);
        copy_child(root, "Message", out->message, sizeof out->message);
        copy_child(root, "BucketName", out->bucket, sizeof out->bucket);
    }
    return root != NULL && out->code[0] != '\0';
}

/* "2026-11-28T01:02:03.000Z" (ISO 8601, UTC) to seconds; -1 if malformed. */
static int64_t parse_time(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);

    if (!end)
        return -1;
    if (*end == '.')
        for (end++; *end >= '0' && *end <= '9'; end++)
            ;
    if (strcmp(end, "Z") != 0)
        return -1;
    return (int64_t)timegm(&tm);
}

/* ---- ListMultipartUploads ---------------------------------------------- */

static int uploads_fail(const char *why)
{
    vk_error(VK_ERR_CORRUPT, "the S3 multipart upload listing is malformed: %s", why);
    return -1;
}

static int uploads_add(struct s3_upload_page *out, const xmlNode *u, size_t *cap)
{
    struct s3_upload *e;

    if (out->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct s3_upload *bigger = vk_realloc_array(out->uploads, ncap, sizeof *bigger);
        if (!bigger)
            return -1;
        out->uploads = bigger;
        *cap = ncap;
    }
    e = &out->uploads[out->n++];
    e->key = child_text(u, "Key");
    e->upload_id = child_text(u, "UploadId");
    if (!e->key || !*e->key)
        return uploads_fail("an upload has no key");
    /* The id goes into a query string as it is (percent-encoded): no
     * control characters. */
    if (!e->upload_id || !*e->upload_id || strcspn(e->upload_id, "\r\n\t") != strlen(e->upload_id))
        return uploads_fail("an upload has no valid UploadId");
    return 0;
}

static int uploads_walk(const xmlNode *root, struct s3_upload_page *out)
{
    CLEANUP_FREE char *trunc = child_text(root, "IsTruncated");
    size_t cap = 0;

    for (xmlNode *c = root->children; c; c = c->next)
        if (vk_xml_is(c, "Upload") && uploads_add(out, c, &cap) < 0)
            return -1;
    if (trunc && strcmp(trunc, "true") != 0 && strcmp(trunc, "false") != 0)
        return uploads_fail("IsTruncated is neither true nor false");
    out->truncated = trunc && strcmp(trunc, "true") == 0;
    out->next_key_marker = child_text(root, "NextKeyMarker");
    out->next_upload_id_marker = child_text(root, "NextUploadIdMarker");
    if (out->truncated && (!out->next_key_marker || !*out->next_key_marker))
        return uploads_fail("a truncated page has no NextKeyMarker");
    return 0;
}

int s3_xml_uploads(const char *body, size_t len, struct s3_upload_page *out)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse(body, len, VK_ERR_CORRUPT, NULL);
    xmlNode *root = vk_xml_root(doc, "ListMultipartUploadsResult");
    int r;

    memset(out, 0, sizeof *out);
    if (!root) {
        /* A server without the call may answer another document (a plain
         * object listing): the caller tells VK_ERR_UNSUPPORTED apart. */
        vk_error(doc ? VK_ERR_UNSUPPORTED : VK_ERR_CORRUPT, "the S3 multipart upload listing is %s",
                 doc ? "not a ListMultipartUploadsResult" : "not well-formed XML");
        return -1;
    }
    r = uploads_walk(root, out);
    if (r < 0)
        s3_upload_page_clear(out);
    return r;
}

void s3_upload_page_clear(struct s3_upload_page *page)
{
    if (!page)
        return;
    for (size_t i = 0; i < page->n; i++) {
        free(page->uploads[i].key);
        free(page->uploads[i].upload_id);
    }
    free(page->uploads);
    free(page->next_key_marker);
    free(page->next_upload_id_marker);
    memset(page, 0, sizeof *page);
}

static int list_fail(const char *why)
{
    vk_error(VK_ERR_CORRUPT, "the S3 object listing is malformed: %s", why);
    return -1;
}

static int list_entry(const xmlNode *contents, struct s3_list_entry *e)
{
    CLEANUP_FREE char *size = child_text(contents, "Size");
    CLEANUP_FREE char *when = child_text(contents, "LastModified");
    unsigned long long v;

    e->key = child_text(contents, "Key");
    if (!e->key || !*e->key)
        return list_fail("an entry has no key");
    if (!size || vk_parse_uint(size, UINT64_MAX, &v) < 0)
        return list_fail("an entry has no valid size");
    e->size = v;
    e->mtime = when ? parse_time(when) : 0;
    if (e->mtime < 0)
        e->mtime = 0;
    return 0;
}

static int list_add(struct s3_list_page *out, const xmlNode *contents, size_t *cap)
{
    if (out->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct s3_list_entry *bigger = vk_realloc_array(out->entries, ncap, sizeof *bigger);
        if (!bigger)
            return -1;
        out->entries = bigger;
        *cap = ncap;
    }
    memset(&out->entries[out->n], 0, sizeof out->entries[0]);
    out->n++;
    return list_entry(contents, &out->entries[out->n - 1]);
}

static int list_walk(const xmlNode *root, struct s3_list_page *out)
{
    CLEANUP_FREE char *trunc = child_text(root, "IsTruncated");
    size_t cap = 0;

    for (xmlNode *c = root->children; c; c = c->next)
        if (vk_xml_is(c, "Contents") && list_add(out, c, &cap) < 0)
            return -1;
    if (trunc && strcmp(trunc, "true") != 0 && strcmp(trunc, "false") != 0)
        return list_fail("IsTruncated is neither true nor false");
    out->truncated = trunc && strcmp(trunc, "true") == 0;
    out->next_token = child_text(root, "NextContinuationToken");
    if (out->truncated && (!out->next_token || !*out->next_token))
        return list_fail("a truncated page has no continuation token");
    return 0;
}

int s3_xml_list(const char *body, size_t len, struct s3_list_page *out)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse(body, len, VK_ERR_CORRUPT, NULL);
    xmlNode *root = vk_xml_root(doc, "ListBucketResult");
    int r;

    memset(out, 0, sizeof *out);
    if (!root)
        return list_fail(doc ? "it is not a ListBucketResult" : "it is not well-formed XML");
    r = list_walk(root, out);
    if (r < 0)
        s3_list_page_clear(out);
    return r;
}

void s3_list_page_clear(struct s3_list_page *page)
{
    if (!page)
        return;
    for (size_t i = 0; i < page->n; i++)
        free(page->entries[i].key);
    free(page->entries);
    free(page->next_token);
    memset(page, 0, sizeof *page);
}

char *s3_xml_upload_id(const char *body, size_t len)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse(body, len, VK_ERR_CORRUPT, NULL);
    xmlNode *root = vk_xml_root(doc, "InitiateMultipartUploadResult");
    char *id = root ? child_text(root, "UploadId") : NULL;

    if (!id || !*id || strcspn(id, "&=?# \t\r\n") != strlen(id)) {
        free(id);
        vk_error(VK_ERR_CORRUPT, "the answer to a multipart upload request has no valid UploadId");
        return NULL;
    }
    return id;
}

bool s3_xml_complete_ok(const char *body, size_t len)
{
    CLEANUP_XMLDOC xmlDoc *doc = vk_xml_parse(body, len, VK_ERR_CORRUPT, NULL);

    return vk_xml_root(doc, "CompleteMultipartUploadResult") != NULL;
}
