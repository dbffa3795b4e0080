/* virtkeep - one disk of a backup: the extents of the NBD export go through
 * the read/compress pipeline into an archive streamed to the target. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/format/format.h"
#include "src/backup/backup-int.h"
#include "src/datapath/datapath.h"

struct disk_run {
    const struct backup_disk_job *job;
    struct transport_writer *tw;
    struct archive_writer *aw;
};

static int sink_write(void *opaque, const void *buf, size_t len)
{
    return transport_writer_write(opaque, buf, len);
}

static int on_data(void *opaque, uint64_t offset, uint64_t length, const void *zst, size_t zstlen,
                   const uint8_t sha256[32])
{
    struct disk_run *d = opaque;
    return archive_writer_add_chunk(d->aw, offset, length, zst, zstlen, sha256);
}

static int on_zero(void *opaque, uint64_t offset, uint64_t length)
{
    struct disk_run *d = opaque;
    return archive_writer_add_zero(d->aw, offset, length);
}

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct disk_run *d = opaque;
    if (d->job->progress)
        d->job->progress(d->job->opaque, done, total);
}

/* Pipeline into the archive, then its end; the put is still open. */
static int disk_stream(struct disk_run *d, struct nbdread *r, struct backup_result_disk *out)
{
    const struct backup_disk_job *job = d->job;
    struct pipeline_callbacks cb = {on_data, on_zero, on_progress, d};
    struct nbdread_extent *ext = NULL;
    struct pipeline_stats ps;
    struct archive_writer_stats as;
    uint8_t digest[ARCHIVE_SHA256_LEN];
    size_t nr = 0;
    int rc;

    if (nbdread_extents(r, job->pipeline->chunk_size, 0, &ext, &nr) < 0)
        return -1;
    vk_debug("disk '%s': %zu extents to read", job->export_name, nr);
    rc = pipeline_run(r, ext, nr, job->pipeline, &cb, &ps, 0);
    free(ext);
    if (rc < 0 || archive_writer_finish(d->aw, digest) < 0)
        return -1;
    archive_writer_stats(d->aw, &as);
    out->archive_size = transport_writer_bytes(d->tw);
    archive_sha256_hex(digest, out->sha256);
    out->read_bytes = ps.read_bytes;
    out->data_bytes = as.data_bytes;
    out->zero_bytes = as.zero_bytes;
    out->stored_bytes = as.stored_bytes;
    out->chunks = ps.chunks;
    return 0;
}

int backup_disk_run(const struct backup_disk_job *job, struct backup_result_disk *out)
{
    struct disk_run d = {.job = job};
    struct archive_header hdr = *job->header;
    struct archive_sink sink;
    struct nbdread *r;
    int rc = -1;

    r = nbdread_open(job->socket, job->export_name, job->bitmap_context, 0);
    if (!r)
        return -1;
    hdr.virtual_size = nbdread_size(r);
    out->virtual_size = hdr.virtual_size;
    d.tw = transport_put_begin(job->transport, job->key, 0);
    if (!d.tw)
        goto out;
    sink = (struct archive_sink){sink_write, d.tw};
    d.aw = archive_writer_open_sealed(&sink, &hdr, job->seal_key, 0);
    if (d.aw && disk_stream(&d, r, out) == 0 && transport_writer_commit(VK_STEAL(d.tw)) == 0)
        rc = 0;
out:
    archive_writer_free(d.aw);
    transport_writer_abort(d.tw);
    nbdread_close(r);
    return rc;
}
