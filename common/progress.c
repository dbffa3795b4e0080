/* virtkeep - terminal progress: bytes, rate and ETA on one updating line. */
#include <config.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/units.h"
#include "common/util.h"
#include "common/progress.h"

#define REDRAW_NS (200ull * 1000000)

struct progress {
    FILE *fp;
    bool drawn;
    uint64_t last_draw;
    char *item;      /* the item whose rate is measured */
    uint64_t start;  /* when it started */
    size_t last_len; /* of the last line, to blank what is left */
};

struct progress *progress_new(FILE *fp, unsigned int flags)
{
    struct progress *p;

    (void)flags;
    if (!isatty(fileno(fp)))
        return NULL;
    p = vk_calloc(1, sizeof *p);
    if (p)
        p->fp = fp;
    return p;
}

char *progress_format(const char *item, size_t index, size_t count, uint64_t done, uint64_t total,
                      double rate)
{
    char d[VK_SIZE_BUFLEN], t[VK_SIZE_BUFLEN], r[VK_SIZE_BUFLEN], eta[VK_DURATION_BUFLEN];
    unsigned int pct = total ? (unsigned int)(done * 100 / total) : 100;

    vk_size_format(done, d, sizeof d);
    vk_size_format(total, t, sizeof t);
    if (rate <= 0)
        return vk_asprintf("%s (%zu/%zu)  %s / %s  %u%%", item, index + 1, count, d, t, pct);
    vk_size_format((uint64_t)rate, r, sizeof r);
    vk_duration_format(done >= total ? 0 : (uint64_t)((double)(total - done) / rate + 0.5), eta,
                       sizeof eta);
    return vk_asprintf("%s (%zu/%zu)  %s / %s  %u%%  %s/s  ETA %s", item, index + 1, count, d, t,
                       pct, r, eta);
}

void progress_update(struct progress *p, const char *item, size_t index, size_t count,
                     uint64_t done, uint64_t total)
{
    uint64_t now = vk_now_ns();
    char *line;
    double secs;
    size_t len;

    if (!p)
        return;
    if (!p->item || strcmp(p->item, item) != 0) {
        free(p->item);
        p->item = vk_strdup(item);
        p->start = now;
    } else if (now - p->last_draw < REDRAW_NS && done < total) {
        return;
    }
    secs = (double)(now - p->start) / 1e9;
    line = progress_format(item, index, count, done, total, secs > 0.5 ? done / secs : 0);
    if (!line)
        return;
    len = strlen(line);
    fprintf(p->fp, "\r%s%*s", line, p->last_len > len ? (int)(p->last_len - len) : 0, "");
    fflush(p->fp);
    free(line);
    p->last_len = len;
    p->last_draw = now;
    p->drawn = true;
}

void progress_done(struct progress *p)
{
    if (p && p->drawn) {
        fputc('\n', p->fp);
        p->drawn = false;
        p->last_len = 0;
    }
}

void progress_free(struct progress *p)
{
    if (!p)
        return;
    progress_done(p);
    free(p->item);
    free(p);
}
