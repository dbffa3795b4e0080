/* virtkeep - the one read estimator (see reader.h): what reading some bytes
 * from a target costs, learned from drills, else from measured throughput. */
#include <config.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/reader/reader.h"

static const char *const source_names[] = {"guess", "throughput", "drill"};

const char *reader_source_name(enum reader_source source)
{
    return (unsigned int)source < VK_ARRAY_SIZE(source_names) ? source_names[source] : "unknown";
}

int reader_drill_fit(const struct reader_drill_sample *s, size_t n, double *rate, double *overhead)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, mx, my, slope;

    for (size_t i = 0; i < n; i++) {
        sx += (double)s[i].bytes;
        sy += s[i].seconds;
    }
    if (n == 0 || !(sx > 0) || !(sy > 0))
        return -1;
    mx = sx / (double)n;
    my = sy / (double)n;
    for (size_t i = 0; i < n; i++) {
        double dx = (double)s[i].bytes - mx;
        sxx += dx * dx;
        sxy += dx * (s[i].seconds - my);
    }
    slope = sxx > 0 ? sxy / sxx : 0; /* seconds per byte */
    /* One size (or a fit that makes no physical sense: time falling with
     * size, or a negative fixed cost): the overall rate, no overhead. */
    if (!(sxx > 0) || !(slope > 0) || my - slope * mx < 0) {
        *rate = sx / sy;
        *overhead = 0;
        return 0;
    }
    *rate = 1 / slope;
    *overhead = my - slope * mx;
    return 0;
}

/* The model from the recent ok drills of DOMAIN (any when NULL) that read
 * TARGET; 0 when there are none, 1 when OUT was filled. */
static int drill_model(struct catalog *cat, const char *domain, const char *target,
                       struct reader_cost *out)
{
    struct catalog_drills *d = NULL;
    struct reader_drill_sample s[READER_DRILL_HISTORY];
    size_t n = 0;
    int r = 0;

    if (catalog_drill_list(cat, domain, target, CATALOG_DRILL_LIST_OK, READER_DRILL_HISTORY, &d) <
        0)
        return -1;
    for (size_t i = 0; i < d->count && n < READER_DRILL_HISTORY; i++)
        if (d->items[i].actual_seconds > 0)
            s[n++] =
                (struct reader_drill_sample){d->items[i].bytes_read, d->items[i].actual_seconds};
    if (n > 0 && reader_drill_fit(s, n, &out->rate, &out->overhead) == 0) {
        const struct catalog_drill *x = &d->items[0];
        out->source = READER_SOURCE_DRILL;
        out->drill = (struct reader_drill_ref){.id = x->id,
                                               .time = x->started,
                                               .actual_seconds = x->actual_seconds,
                                               .estimate_seconds = x->estimate_seconds,
                                               .bytes_read = x->bytes_read,
                                               .samples = (unsigned int)n};
        r = 1;
    }
    catalog_drills_free(d);
    return r;
}

int reader_cost_estimate(struct catalog *cat, const char *domain, const char *target,
                         uint64_t bytes, struct reader_cost *out)
{
    struct catalog_rate rate = {0};
    int r = 0;

    memset(&out->drill, 0, sizeof out->drill);
    out->overhead = 0;
    if (catalog_throughput_estimate(cat, target, CATALOG_DIR_READ, &rate) < 0)
        return -1;
    out->samples = rate.samples;
    if (domain)
        r = drill_model(cat, domain, target, out);
    if (r == 0)
        r = drill_model(cat, NULL, target, out);
    if (r < 0)
        return -1;
    if (r == 0) {
        bool guess = rate.samples == 0 || rate.bytes_per_second <= 0;
        out->source = guess ? READER_SOURCE_GUESS : READER_SOURCE_THROUGHPUT;
        out->rate = guess ? READER_DEFAULT_READ_RATE : rate.bytes_per_second;
    }
    out->guess = out->source == READER_SOURCE_GUESS;
    out->seconds = out->overhead + (double)bytes / out->rate;
    return 0;
}

int reader_cost_read(struct catalog *cat, const char *target, uint64_t bytes,
                     struct reader_cost *out)
{
    return reader_cost_estimate(cat, NULL, target, bytes, out);
}

int reader_costs_estimate(struct catalog *cat, const char *domain, struct reader_cost *t, size_t n,
                          double *seconds, enum reader_source *source,
                          struct reader_drill_ref *drill)
{
    struct reader_drill_ref newest = {0};

    *seconds = 0;
    *source = n ? READER_SOURCE_DRILL : READER_SOURCE_GUESS;
    for (size_t i = 0; i < n; i++) {
        if (reader_cost_estimate(cat, domain, t[i].name, t[i].bytes, &t[i]) < 0)
            return -1;
        *seconds += t[i].seconds;
        if (t[i].source < *source)
            *source = t[i].source;
        if (t[i].source == READER_SOURCE_DRILL && t[i].drill.time >= newest.time)
            newest = t[i].drill;
    }
    if (drill)
        *drill = newest;
    return 0;
}

int reader_costs_add(struct reader_cost **t, size_t *n, const char *name, uint64_t bytes)
{
    struct reader_cost *x;

    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*t)[i].name, name) == 0) {
            (*t)[i].bytes += bytes;
            return 0;
        }
    }
    x = vk_realloc_array(*t, *n + 1, sizeof *x);
    if (!x)
        return -1;
    *t = x;
    x = &x[*n];
    memset(x, 0, sizeof *x);
    if (!(x->name = vk_strdup(name)))
        return -1;
    x->bytes = bytes;
    (*n)++;
    return 0;
}

void reader_costs_free(struct reader_cost *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].name);
    free(t);
}

int reader_map_bytes(const struct reader_map *m, const struct reader_layer *layers,
                     size_t nr_layers, uint64_t *bytes, size_t *chunks)
{
    CLEANUP_FREE size_t *order = NULL;
    size_t n;

    if (reader_map_read_order(m, layers, &order, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct reader_piece *p = &m->pieces[order[i]];
        const struct reader_piece *prev = i ? &m->pieces[order[i - 1]] : NULL;
        if (prev && prev->layer == p->layer && prev->extent == p->extent)
            continue;
        if (p->layer >= nr_layers) {
            vk_error(VK_ERR_INTERNAL, "a restore piece names layer %zu of %zu", p->layer,
                     nr_layers);
            return -1;
        }
        bytes[p->layer] += layers[p->layer].extents[p->extent].size;
        if (chunks)
            chunks[p->layer]++;
    }
    return 0;
}
