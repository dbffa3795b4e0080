/* virtkeep - merging a chain's extent lists into one restore map, and the
 * point-in-time parser.  Pure functions: no I/O.
 *
 * The merge sweeps the disk over the elementary intervals between every
 * extent boundary of every layer.  On each interval the newest layer whose
 * current extent covers it wins.  Every layer keeps a cursor into its
 * sorted extent list, so the sweep is O(boundaries x layers).
 */
#include <config.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"
#include "src/reader/reader.h"

void reader_map_clear(struct reader_map *m)
{
    free(m->pieces);
    memset(m, 0, sizeof *m);
}

static int layers_check(const struct reader_layer *layers, size_t nr_layers, size_t *nr_bounds)
{
    *nr_bounds = 0;
    for (size_t l = 0; l < nr_layers; l++) {
        for (size_t i = 0; i < layers[l].nr; i++) {
            const struct archive_extent *e = &layers[l].extents[i];
            if (e->length == 0 || e->offset + e->length < e->offset ||
                (i > 0 &&
                 e->offset < layers[l].extents[i - 1].offset + layers[l].extents[i - 1].length)) {
                vk_error(VK_ERR_INVALID,
                         "cannot merge the chain: extent %zu of layer %zu is empty, overflows or "
                         "is out of order",
                         i, l);
                return -1;
            }
        }
        *nr_bounds += 2 * layers[l].nr;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every extent start and end, sorted, unique, clipped to VIRTUAL_SIZE. */
static uint64_t *bounds_build(const struct reader_layer *layers, size_t nr_layers, size_t max,
                              uint64_t virtual_size, size_t *nr)
{
    uint64_t *b = vk_calloc(max + 1, sizeof *b);
    size_t n = 0, u = 0;

    if (!b)
        return NULL;
    for (size_t l = 0; l < nr_layers; l++) {
        for (size_t i = 0; i < layers[l].nr; i++) {
            const struct archive_extent *e = &layers[l].extents[i];
            uint64_t end = e->offset + e->length;
            b[n++] = e->offset < virtual_size ? e->offset : virtual_size;
            b[n++] = end < virtual_size ? end : virtual_size;
        }
    }
    qsort(b, n, sizeof *b, cmp_u64);
    for (size_t i = 0; i < n; i++)
        if (u == 0 || b[u - 1] != b[i])
            b[u++] = b[i];
    *nr = u;
    return b;
}

/* The newest layer covering [A, ...) (every boundary is a bound, so an
 * extent starting at or before A and ending after A covers the interval). */
static bool cover_find(const struct reader_layer *layers, size_t nr_layers, size_t *cursor,
                       uint64_t a, size_t *layer)
{
    for (size_t l = nr_layers; l-- > 0;) {
        const struct reader_layer *ly = &layers[l];
        while (cursor[l] < ly->nr &&
               ly->extents[cursor[l]].offset + ly->extents[cursor[l]].length <= a)
            cursor[l]++;
        if (cursor[l] < ly->nr && ly->extents[cursor[l]].offset <= a) {
            *layer = l;
            return true;
        }
    }
    return false;
}

/* Append [A, B) from extent E of layer L, extending the last piece when it
 * continues it. */
static void piece_add(struct reader_map *m, const struct reader_layer *layers, size_t l, size_t e,
                      uint64_t a, uint64_t b)
{
    const struct archive_extent *x = &layers[l].extents[e];
    enum reader_piece_kind kind =
        x->kind == ARCHIVE_EXTENT_DATA ? READER_PIECE_DATA : READER_PIECE_ZERO;
    struct reader_piece *last = m->nr ? &m->pieces[m->nr - 1] : NULL;

    if (kind == READER_PIECE_DATA)
        m->data_bytes += b - a;
    else
        m->zero_bytes += b - a;
    if (last && last->offset + last->length == a && last->kind == kind &&
        (kind == READER_PIECE_ZERO || (last->layer == l && last->extent == e))) {
        last->length += b - a;
        return;
    }
    m->pieces[m->nr++] = (struct reader_piece){.offset = a,
                                               .length = b - a,
                                               .kind = kind,
                                               .layer = l,
                                               .extent = e,
                                               .extent_offset = a - x->offset};
}

static int cmp_chunk(const void *a, const void *b)
{
    const struct reader_piece *x = a, *y = b;
    uint64_t ox = x->offset - x->extent_offset, oy = y->offset - y->extent_offset;

    if (ox != oy)
        return ox < oy ? -1 : 1;
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Count the distinct chunks the DATA pieces need. */
static int chunks_count(struct reader_map *m, const struct reader_layer *layers)
{
    CLEANUP_FREE size_t *order = NULL;
    size_t n;

    if (reader_map_read_order(m, layers, &order, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct reader_piece *p = &m->pieces[order[i]],
                                  *q = i ? &m->pieces[order[i - 1]] : NULL;
        if (q && q->layer == p->layer && q->extent == p->extent)
            continue;
        m->nr_chunks++;
        m->chunk_raw_bytes += layers[p->layer].extents[p->extent].length;
        m->chunk_frame_bytes += layers[p->layer].extents[p->extent].size;
    }
    return 0;
}

int reader_merge(const struct reader_layer *layers, size_t nr_layers, uint64_t virtual_size,
                 struct reader_map *out)
{
    CLEANUP_FREE uint64_t *bounds = NULL;
    CLEANUP_FREE size_t *cursor = NULL;
    size_t nr_bounds = 0, max;

    memset(out, 0, sizeof *out);
    if (layers_check(layers, nr_layers, &max) < 0)
        return -1;
    bounds = bounds_build(layers, nr_layers, max, virtual_size, &nr_bounds);
    cursor = vk_calloc(nr_layers + 1, sizeof *cursor);
    out->pieces = vk_calloc(nr_bounds + 1, sizeof *out->pieces);
    if (!bounds || !cursor || !out->pieces) {
        reader_map_clear(out);
        return -1;
    }
    for (size_t i = 0; i + 1 < nr_bounds; i++) {
        size_t l;
        if (cover_find(layers, nr_layers, cursor, bounds[i], &l))
            piece_add(out, layers, l, cursor[l], bounds[i], bounds[i + 1]);
    }
    if (chunks_count(out, layers) < 0) {
        reader_map_clear(out);
        return -1;
    }
    return 0;
}

int reader_map_read_order(const struct reader_map *m, const struct reader_layer *layers,
                          size_t **out, size_t *nr)
{
    struct reader_piece *sorted;
    size_t n = 0;

    (void)layers;
    *out = NULL;
    *nr = 0;
    sorted = vk_calloc(m->nr + 1, sizeof *sorted);
    *out = vk_calloc(m->nr + 1, sizeof **out);
    if (!sorted || !*out) {
        free(sorted);
        free(*out);
        *out = NULL;
        return -1;
    }
    for (size_t i = 0; i < m->nr; i++) {
        if (m->pieces[i].kind != READER_PIECE_DATA)
            continue;
        sorted[n] = m->pieces[i];
        /* Remember the index in a field the sort does not look at. */
        sorted[n].length = i;
        n++;
    }
    qsort(sorted, n, sizeof *sorted, cmp_chunk);
    for (size_t i = 0; i < n; i++)
        (*out)[i] = (size_t)sorted[i].length;
    *nr = n;
    free(sorted);
    return 0;
}

/* ---------------------------------------------------------------- time */

/* Exactly N digits at *P, advancing it. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, const char *chars)
{
    if (**p == '\0' || !strchr(chars, **p))
        return false;
    (*p)++;
    return true;
}

/* The zone at P: Z, or +HH:MM / -HH:MM; *OFF in seconds east of UTC. */
static bool zone_parse(const char *p, int *off)
{
    int sign, hh, mm;

    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        *off = 0;
        return true;
    }
    if (*p != '+' && *p != '-')
        return false;
    sign = *p++ == '-' ? -1 : 1;
    if (!digits(&p, 2, &hh) || !expect(&p, ":") || !digits(&p, 2, &mm) || *p != '\0' || hh > 23 ||
        mm > 59)
        return false;
    *off = sign * (hh * 3600 + mm * 60);
    return true;
}

static bool rfc3339_parse(const char *p, int64_t *out)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct tm tm;
    int y, mo, d, h, mi, s, off;
    time_t t;

    if (!digits(&p, 4, &y) || !expect(&p, "-") || !digits(&p, 2, &mo) || !expect(&p, "-") ||
        !digits(&p, 2, &d) || !expect(&p, "Tt ") || !digits(&p, 2, &h) || !expect(&p, ":") ||
        !digits(&p, 2, &mi) || !expect(&p, ":") || !digits(&p, 2, &s))
        return false;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (!zone_parse(p, &off) || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || s > 60)
        return false;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return false;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
    tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = s > 59 ? 59 : s;
    t = timegm(&tm);
    *out = (int64_t)t - off;
    return true;
}

static int time_invalid(const char *str)
{
    vk_error(VK_ERR_INVALID,
             "invalid time '%s': expected RFC 3339 (2026-11-28T01:02:03Z), 'now' or a duration "
             "followed by 'ago' (2h ago)",
             str);
    return -1;
}

int reader_time_parse(const char *str, int64_t now, int64_t *out)
{
    static const char ago[] = " ago";
    size_t len = strlen(str);
    uint64_t secs;

    if (strcmp(str, "now") == 0) {
        *out = now;
        return 0;
    }
    if (len > strlen(ago) && strcmp(str + len - strlen(ago), ago) == 0) {
        CLEANUP_FREE char *num = vk_strndup(str, len - strlen(ago));
        if (!num)
            return -1;
        if (vk_duration_parse(num, &secs) < 0 || secs > (uint64_t)INT64_MAX || (int64_t)secs > now)
            return time_invalid(str);
        *out = now - (int64_t)secs;
        return 0;
    }
    if (!rfc3339_parse(str, out))
        return time_invalid(str);
    return 0;
}
