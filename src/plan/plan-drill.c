/* virtkeep - DR drills (see drill.h): restore to scratch, verify, measure,
 * record next to the estimate, clean up. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/plan/plan.h"
#include "src/restore/restore.h"
#include "src/virt/virt.h"

struct run {
    struct catalog *cat;
    const struct drill_options *o;
    struct drill_result *out;
    struct plan_restore plan;
    bool created; /* we created the scratch directory */
};

void drill_result_clear(struct drill_result *r)
{
    free(r->domain);
    free(r->backup_id);
    vk_strv_free(r->chain);
    free(r->scratch);
    free(r->targets);
    for (size_t i = 0; i < r->nr_disks; i++) {
        free(r->disks[i].target);
        free(r->disks[i].path);
    }
    free(r->disks);
    free(r->error);
    memset(r, 0, sizeof *r);
}

static void stage(struct run *x, const char *what)
{
    if (x->o->stage)
        x->o->stage(x->o->opaque, what);
}

/* ---------------------------------------------------------------- scratch */

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT) {
        vk_error_errno(errno, "cannot remove '%s' from the drill's scratch directory", path);
        return -1;
    }
    return 0;
}

static int rm_content(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return ftw->level == 0 ? 0 : rm_one(path, st, type, ftw);
}

int drill_scratch_remove(const char *dir, bool keep_dir)
{
    if (nftw(dir, keep_dir ? rm_content : rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0) {
        if (vk_error_code() == VK_ERR_NONE || errno == ENOENT)
            vk_error_errno(errno, "cannot remove the drill's scratch directory '%s'", dir);
        return -1;
    }
    return 0;
}

static bool dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool empty = true;

    if (!d)
        return false;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* The caller's directory: missing (created) or empty; else a fresh one. */
static int scratch_make(struct run *x)
{
    const char *s = x->o->scratch;

    if (!s) {
        x->out->scratch = vk_asprintf(DRILL_SCRATCH_BASE "/virtkeep-drill-%s-XXXXXX", x->o->domain);
        if (!x->out->scratch)
            return -1;
        if (!mkdtemp(x->out->scratch)) {
            vk_error_errno(errno, "cannot create a scratch directory for the drill of domain '%s'",
                           x->o->domain);
            return -1;
        }
        x->created = true;
        return 0;
    }
    if (!(x->out->scratch = vk_strdup(s)))
        return -1;
    if (mkdir(s, 0700) == 0) {
        x->created = true;
        return 0;
    }
    if (errno != EEXIST) {
        vk_error_errno(errno, "cannot create the drill's scratch directory '%s'", s);
        return -1;
    }
    if (!dir_empty(s)) {
        vk_error(VK_ERR_INVALID,
                 "the scratch directory '%s' is not empty (or not a directory): a drill restores "
                 "only into an empty one",
                 s);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- record */

static char *targets_join(const struct plan_restore *p)
{
    char *s = vk_strdup("");

    for (size_t i = 0; s && i < p->nr_targets; i++) {
        char *n = vk_asprintf("%s%s%s", s, i ? "," : "", p->targets[i].name);
        free(s);
        s = n;
    }
    return s;
}

static int record_start(struct run *x)
{
    struct drill_result *out = x->out;
    struct catalog_job job = {.kind = (char *)"drill",
                              .domain = (char *)x->o->domain,
                              .target = (char *)x->o->from,
                              .backup_id = out->backup_id,
                              .state = CATALOG_JOB_RUNNING,
                              .estimate_seconds = out->estimate_seconds};
    struct catalog_drill d = {.domain = (char *)x->o->domain,
                              .backup_id = out->backup_id,
                              .targets = out->targets,
                              .state = CATALOG_DRILL_RUNNING,
                              .estimate_seconds = out->estimate_seconds,
                              .estimate_source = (char *)reader_source_name(out->estimate_source)};

    if ((out->job_id = catalog_job_insert(x->cat, &job)) < 0)
        return -1;
    d.job_id = out->job_id;
    return (out->drill_id = catalog_drill_insert(x->cat, &d)) < 0 ? -1 : 0;
}

/* Record the outcome; the drill's own error stays the recorded one. */
static void record_end(struct run *x, int r)
{
    struct drill_result *out = x->out;
    enum vk_error_code code = vk_error_code();
    bool cancel = r < 0 && code == VK_ERR_INTERRUPTED;
    enum catalog_drill_state ds = r == 0   ? CATALOG_DRILL_OK
                                  : cancel ? CATALOG_DRILL_CANCELLED
                                           : CATALOG_DRILL_FAILED;
    enum catalog_job_state js = r == 0   ? CATALOG_JOB_SUCCEEDED
                                : cancel ? CATALOG_JOB_CANCELLED
                                         : CATALOG_JOB_FAILED;

    if (r < 0)
        out->error = vk_strdup(vk_error_message());
    if (catalog_drill_finish(x->cat, out->drill_id, ds, out->actual_seconds, out->bytes_read,
                             out->disk_bytes, out->error) < 0 ||
        catalog_job_finish(x->cat, out->job_id, js, out->error,
                           out->actual_seconds + out->verify_seconds) < 0)
        vk_warn("cannot record the end of drill %" PRId64 ": %s", out->drill_id,
                vk_error_message());
    if (r < 0 && out->error)
        vk_error(code, "%s", out->error);
}

/* ---------------------------------------------------------------- steps */

static int plan_make(struct run *x)
{
    struct plan_options po = {.domain = x->o->domain,
                              .backup_id = x->o->backup_id,
                              .at = INT64_MAX,
                              .now = (int64_t)time(NULL),
                              .from = x->o->from,
                              .config = x->o->config};
    struct drill_result *out = x->out;

    if (plan_restore(x->cat, &po, &x->plan, 0) < 0) {
        vk_error_prefix("cannot plan the drill of domain '%s'", x->o->domain);
        return -1;
    }
    out->backup_id = vk_strdup(x->plan.backup_id);
    out->estimate_seconds = x->plan.estimate_seconds;
    out->estimate_source = x->plan.source;
    out->targets = targets_join(&x->plan);
    return out->backup_id && out->targets ? 0 : -1;
}

static int disks_copy(struct drill_result *out, const struct restore_result *res)
{
    out->disks = vk_calloc(res->nr_disks + 1, sizeof *out->disks);
    if (!out->disks)
        return -1;
    for (size_t i = 0; i < res->nr_disks; i++) {
        const struct restore_disk_result *d = &res->disks[i];
        out->nr_disks++;
        out->disks[i].target = vk_strdup(d->target);
        out->disks[i].path = vk_strdup(d->path);
        out->disks[i].virtual_size = d->virtual_size;
        if (!out->disks[i].target || !out->disks[i].path)
            return -1;
        out->bytes_read += d->frame_bytes + d->index_bytes;
        out->disk_bytes += d->bytes_written;
    }
    return 0;
}

static int restore_step(struct run *x)
{
    struct restore_options ro = {.domain = x->o->domain,
                                 .backup_id = x->out->backup_id,
                                 .at = INT64_MAX,
                                 .dest_dir = x->out->scratch,
                                 .from = x->o->from,
                                 .config = x->o->config,
                                 .cancel = x->o->cancel};
    struct restore_result res;
    int r;

    stage(x, "restoring");
    r = restore_run(x->cat, &ro, &res, 0);
    x->out->actual_seconds = res.seconds;
    if (r == 0) {
        x->out->chain = VK_STEAL(res.chain);
        r = disks_copy(x->out, &res);
    } else {
        vk_error_prefix("the drill of domain '%s' failed to restore backup '%s'", x->o->domain,
                        x->out->backup_id);
    }
    restore_result_clear(&res);
    return r;
}

/* Every archive of the chain, re-read in full (verify_run). */
static int verify_archives(struct run *x)
{
    for (size_t i = 0; x->out->chain && x->out->chain[i]; i++) {
        struct verify_options vo = {
            .what = x->out->chain[i], .from = x->o->from, .config = x->o->config};
        struct verify_result vr;
        int r = verify_run(x->cat, &vo, 0, &vr);

        for (size_t j = 0; r == 0 && j < vr.nr; j++) {
            x->out->chunks_verified += vr.items[j].chunks;
            if (!vr.items[j].ok) {
                vk_error(VK_ERR_CORRUPT, "the drill of domain '%s' failed verification: %s",
                         x->o->domain, vr.items[j].error ? vr.items[j].error : "unknown error");
                r = -1;
            }
        }
        verify_result_clear(&vr);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* `qemu-img check` and the virtual size of one restored image. */
static int verify_image(struct run *x, const struct drill_disk *d)
{
    char *args[] = {(char *)"check", (char *)"-q", (char *)"-f", (char *)"qcow2", d->path, NULL};
    CLEANUP_FREE char *what = vk_asprintf("the drill of domain '%s' found the restored disk '%s' "
                                          "(%s) damaged",
                                          x->o->domain, d->target, d->path);
    if (!what || virt_qemu_img(args, NULL, what) < 0)
        return -1;
    return 0;
}

static int verify_images(struct run *x)
{
    for (size_t i = 0; i < x->out->nr_disks; i++) {
        CLEANUP_FREE char *out = NULL;
        char *args[] = {(char *)"info",  (char *)"--output=json", (char *)"-f",
                        (char *)"qcow2", x->out->disks[i].path,   NULL};
        struct json_object *j, *vs;
        int64_t size = -1;

        if (verify_image(x, &x->out->disks[i]) < 0 ||
            virt_qemu_img(args, &out, "cannot inspect a restored disk") < 0)
            return -1;
        if ((j = json_tokener_parse(out)) && json_object_object_get_ex(j, "virtual-size", &vs))
            size = json_object_get_int64(vs);
        json_object_put(j);
        if (size < 0 || (uint64_t)size != x->out->disks[i].virtual_size) {
            vk_error(VK_ERR_CORRUPT,
                     "the drill of domain '%s' restored disk '%s' with %" PRId64
                     " bytes instead of %" PRIu64,
                     x->o->domain, x->out->disks[i].target, size, x->out->disks[i].virtual_size);
            return -1;
        }
    }
    return 0;
}

static int verify_step(struct run *x)
{
    uint64_t t0 = vk_now_ns();
    int r;

    stage(x, "verifying");
    r = verify_images(x);
    if (r == 0)
        r = verify_archives(x);
    x->out->verify_seconds = (double)(vk_now_ns() - t0) / 1e9;
    return r;
}

static void cleanup_step(struct run *x)
{
    if (!x->out->scratch || x->o->keep) {
        x->out->kept = x->out->scratch != NULL;
        return;
    }
    stage(x, "cleaning up");
    if (drill_scratch_remove(x->out->scratch, !x->created) < 0) {
        vk_warn("%s", vk_error_message());
        x->out->kept = true;
    }
}

int drill_run(struct catalog *cat, const struct drill_options *o, struct drill_result *out,
              unsigned int flags)
{
    struct run x = {.cat = cat, .o = o, .out = out};
    CLEANUP_FREE char *err = NULL;
    enum vk_error_code code;
    int r;

    memset(out, 0, sizeof *out);
    if (flags != 0 || !o->domain) {
        vk_error(VK_ERR_INVALID, "drill_run: a domain is required");
        return -1;
    }
    if (!(out->domain = vk_strdup(o->domain)) || catalog_drill_fail_orphans(cat, 0, NULL) < 0 ||
        plan_make(&x) < 0 || scratch_make(&x) < 0 || record_start(&x) < 0) {
        plan_restore_clear(&x.plan);
        if (x.created)
            drill_scratch_remove(out->scratch, false);
        return -1;
    }
    r = restore_step(&x);
    if (r == 0 && o->cancel && *o->cancel) {
        vk_error(VK_ERR_INTERRUPTED, "the drill of domain '%s' was interrupted", o->domain);
        r = -1;
    }
    if (r == 0)
        r = verify_step(&x);
    if (r == 0 && o->cancel && *o->cancel) {
        /* verify_run does not poll the flag: stop here, and say so. */
        vk_error(VK_ERR_INTERRUPTED, "the drill of domain '%s' was interrupted", o->domain);
        r = -1;
    }
    out->ok = r == 0;
    record_end(&x, r);
    code = vk_error_code();
    err = r < 0 ? vk_strdup(vk_error_message()) : NULL;
    cleanup_step(&x);
    if (r < 0)
        vk_error(code, "%s", err ? err : "the drill failed");
    plan_restore_clear(&x.plan);
    return r;
}
