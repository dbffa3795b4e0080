/* Unit tests for the restore merge (src/restore-merge.c) and the time
 * parser: hand-built extent lists, and a randomized comparison with a
 * byte-by-byte reference. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "src/restore/restore.h"

#define MiB (1024ull * 1024)
#define CH (4 * MiB)

#define D(off, len)                                                                                \
    {                                                                                              \
        .offset = (off), .length = (len), .kind = ARCHIVE_EXTENT_DATA, .size = (len) / 2           \
    }
#define Z(off, len)                                                                                \
    {                                                                                              \
        .offset = (off), .length = (len), .kind = ARCHIVE_EXTENT_ZERO                              \
    }
#define LAYER(arr)                                                                                 \
    {                                                                                              \
        .extents = (arr), .nr = sizeof(arr) / sizeof((arr)[0])                                     \
    }

static void piece_is(const struct reader_piece *p, uint64_t off, uint64_t len,
                     enum reader_piece_kind kind, size_t layer, size_t extent, uint64_t eoff)
{
    assert_int_equal(p->offset, off);
    assert_int_equal(p->length, len);
    assert_int_equal(p->kind, kind);
    if (kind == READER_PIECE_DATA) {
        assert_int_equal(p->layer, layer);
        assert_int_equal(p->extent, extent);
        assert_int_equal(p->extent_offset, eoff);
    }
}

static void test_full_only(void **state)
{
    static const struct archive_extent full[] = {D(0, CH), D(CH, CH), Z(2 * CH, 3 * CH),
                                                 D(8 * CH, MiB)};
    struct reader_layer layers[] = {LAYER(full)};
    struct reader_map m;

    (void)state;
    assert_int_equal(reader_merge(layers, 1, 64 * CH, &m), 0);
    assert_int_equal(m.nr, 4);
    piece_is(&m.pieces[0], 0, CH, READER_PIECE_DATA, 0, 0, 0);
    piece_is(&m.pieces[1], CH, CH, READER_PIECE_DATA, 0, 1, 0);
    piece_is(&m.pieces[2], 2 * CH, 3 * CH, READER_PIECE_ZERO, 0, 2, 0);
    /* The gap [5 CH, 8 CH) is held by no backup: not in the map. */
    piece_is(&m.pieces[3], 8 * CH, MiB, READER_PIECE_DATA, 0, 3, 0);
    assert_int_equal(m.data_bytes, 2 * CH + MiB);
    assert_int_equal(m.zero_bytes, 3 * CH);
    assert_int_equal(m.nr_chunks, 3);
    assert_int_equal(m.chunk_raw_bytes, 2 * CH + MiB);
    assert_int_equal(m.chunk_frame_bytes, (2 * CH + MiB) / 2);
    reader_map_clear(&m);
}

/* An inc rewrites exactly one chunk: only the newest is read. */
static void test_inc_exact(void **state)
{
    static const struct archive_extent full[] = {D(0, CH), D(CH, CH)};
    static const struct archive_extent inc[] = {D(CH, CH)};
    struct reader_layer layers[] = {LAYER(full), LAYER(inc)};
    struct reader_map m;

    (void)state;
    assert_int_equal(reader_merge(layers, 2, 64 * CH, &m), 0);
    assert_int_equal(m.nr, 2);
    piece_is(&m.pieces[0], 0, CH, READER_PIECE_DATA, 0, 0, 0);
    piece_is(&m.pieces[1], CH, CH, READER_PIECE_DATA, 1, 0, 0);
    assert_int_equal(m.nr_chunks, 2);
    assert_int_equal(m.chunk_raw_bytes, 2 * CH);
    reader_map_clear(&m);
}

/* An inc rewrites the middle of an older chunk: the older chunk is needed
 * twice but read once, and its raw bytes exceed what is written from it. */
static void test_inc_partial_chunk(void **state)
{
    static const struct archive_extent full[] = {D(0, CH)};
    static const struct archive_extent inc[] = {D(MiB, MiB)};
    struct reader_layer layers[] = {LAYER(full), LAYER(inc)};
    struct reader_map m;
    size_t *order, n;

    (void)state;
    assert_int_equal(reader_merge(layers, 2, 64 * CH, &m), 0);
    assert_int_equal(m.nr, 3);
    piece_is(&m.pieces[0], 0, MiB, READER_PIECE_DATA, 0, 0, 0);
    piece_is(&m.pieces[1], MiB, MiB, READER_PIECE_DATA, 1, 0, 0);
    piece_is(&m.pieces[2], 2 * MiB, 2 * MiB, READER_PIECE_DATA, 0, 0, 2 * MiB);
    assert_int_equal(m.data_bytes, CH);
    assert_int_equal(m.nr_chunks, 2);
    assert_int_equal(m.chunk_raw_bytes, CH + MiB);
    assert_int_equal(m.chunk_frame_bytes, (CH + MiB) / 2);
    /* Read order: both pieces of the full's chunk together, then the inc's. */
    assert_int_equal(reader_map_read_order(&m, layers, &order, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 1);
    free(order);
    reader_map_clear(&m);
}

/* Adjacent extents of the same kind from different layers stay apart (data)
 * or merge (zero). */
static void test_adjacent(void **state)
{
    static const struct archive_extent full[] = {D(0, CH), Z(CH, CH)};
    static const struct archive_extent inc[] = {D(CH * 2, CH), Z(CH * 3, CH)};
    static const struct archive_extent inc2[] = {D(CH * 3 - MiB, MiB)};
    struct reader_layer layers[] = {LAYER(full), LAYER(inc), LAYER(inc2)};
    struct reader_map m;

    (void)state;
    assert_int_equal(reader_merge(layers, 3, 64 * CH, &m), 0);
    assert_int_equal(m.nr, 5);
    piece_is(&m.pieces[0], 0, CH, READER_PIECE_DATA, 0, 0, 0);
    piece_is(&m.pieces[1], CH, CH, READER_PIECE_ZERO, 0, 1, 0);
    piece_is(&m.pieces[2], 2 * CH, CH - MiB, READER_PIECE_DATA, 1, 0, 0);
    piece_is(&m.pieces[3], 3 * CH - MiB, MiB, READER_PIECE_DATA, 2, 0, 0);
    piece_is(&m.pieces[4], 3 * CH, CH, READER_PIECE_ZERO, 1, 1, 0);
    reader_map_clear(&m);
}

/* Zero overrides data and data overrides zero, whichever is newer. */
static void test_zero_vs_data(void **state)
{
    static const struct archive_extent full[] = {D(0, CH), Z(CH, CH)};
    static const struct archive_extent inc[] = {Z(0, CH), D(CH, CH)};
    struct reader_layer layers[] = {LAYER(full), LAYER(inc)};
    struct reader_layer reversed[] = {LAYER(inc), LAYER(full)};
    struct reader_map m;

    (void)state;
    assert_int_equal(reader_merge(layers, 2, 64 * CH, &m), 0);
    assert_int_equal(m.nr, 2);
    piece_is(&m.pieces[0], 0, CH, READER_PIECE_ZERO, 1, 0, 0);
    piece_is(&m.pieces[1], CH, CH, READER_PIECE_DATA, 1, 1, 0);
    assert_int_equal(m.nr_chunks, 1);
    assert_int_equal(m.zero_bytes, CH);
    reader_map_clear(&m);
    assert_int_equal(reader_merge(reversed, 2, 64 * CH, &m), 0);
    piece_is(&m.pieces[0], 0, CH, READER_PIECE_DATA, 1, 0, 0);
    piece_is(&m.pieces[1], CH, CH, READER_PIECE_ZERO, 1, 1, 0);
    reader_map_clear(&m);
}

/* full + diff: the diff overrides, gaps of the diff keep the full. */
static void test_diff_and_empty(void **state)
{
    static const struct archive_extent full[] = {D(0, CH), D(CH, CH), D(2 * CH, CH)};
    static const struct archive_extent diff[] = {D(CH, CH)};
    struct reader_layer layers[] = {
        LAYER(full), {.extents = NULL, .nr = 0}, LAYER(diff), {.extents = NULL, .nr = 0}};
    struct reader_map m;

    (void)state;
    assert_int_equal(reader_merge(layers, 4, 64 * CH, &m), 0);
    assert_int_equal(m.nr, 3);
    piece_is(&m.pieces[1], CH, CH, READER_PIECE_DATA, 2, 0, 0);
    assert_int_equal(m.nr_chunks, 3);
    reader_map_clear(&m);
    /* No layer holds anything: an empty map. */
    assert_int_equal(reader_merge(&layers[1], 1, 64 * CH, &m), 0);
    assert_int_equal(m.nr, 0);
    assert_int_equal(m.data_bytes + m.zero_bytes + m.nr_chunks, 0);
    reader_map_clear(&m);
}

/* Ten layers rewrite the same region: only the newest one is read. */
static void test_many_layers(void **state)
{
    static struct archive_extent ext[10][2];
    struct reader_layer layers[10];
    struct reader_map m;

    (void)state;
    for (size_t l = 0; l < 10; l++) {
        struct archive_extent a = D(CH * 4, CH), b = D(CH * (5 + l), CH);
        ext[l][0] = a, ext[l][1] = b;
        layers[l] = (struct reader_layer){.extents = ext[l], .nr = 2};
    }
    assert_int_equal(reader_merge(layers, 10, 64 * CH, &m), 0);
    assert_int_equal(m.nr, 11);
    piece_is(&m.pieces[0], CH * 4, CH, READER_PIECE_DATA, 9, 0, 0);
    for (size_t l = 0; l < 10; l++)
        piece_is(&m.pieces[1 + l], CH * (5 + l), CH, READER_PIECE_DATA, l, 1, 0);
    assert_int_equal(m.nr_chunks, 11);
    assert_int_equal(m.chunk_raw_bytes, 11 * CH);
    assert_int_equal(m.chunk_raw_bytes, m.data_bytes);
    reader_map_clear(&m);
}

static void test_clip_and_invalid(void **state)
{
    static const struct archive_extent full[] = {D(0, CH), D(CH, CH)};
    static const struct archive_extent bad[] = {D(0, CH), D(CH - 1, CH)};
    static const struct archive_extent empty[] = {D(0, 0)};
    struct reader_layer layers[] = {LAYER(full)}, badl[] = {LAYER(bad)}, emptyl[] = {LAYER(empty)};
    struct reader_map m;

    (void)state;
    assert_int_equal(reader_merge(layers, 1, CH + MiB, &m), 0);
    assert_int_equal(m.nr, 2);
    piece_is(&m.pieces[1], CH, MiB, READER_PIECE_DATA, 0, 1, 0);
    assert_int_equal(m.chunk_raw_bytes, 2 * CH); /* the whole chunk is read */
    reader_map_clear(&m);
    assert_int_equal(reader_merge(badl, 1, 64 * CH, &m), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_null(m.pieces);
    assert_int_equal(reader_merge(emptyl, 1, 64 * CH, &m), -1);
}

/* Random chains on a grid of 64 units, against a per-unit reference. */
#define UNITS 64
#define UNIT 4096u

static size_t random_layer(struct archive_extent *e, unsigned int *seed)
{
    size_t n = 0;

    for (unsigned int u = 0; u < UNITS;) {
        unsigned int len = 1 + (unsigned int)rand_r(seed) % 8;
        if (u + len > UNITS)
            len = UNITS - u;
        if (rand_r(seed) % 3 != 0) {
            e[n] = (struct archive_extent){.offset = (uint64_t)u * UNIT,
                                           .length = (uint64_t)len * UNIT,
                                           .kind = rand_r(seed) % 4 ? ARCHIVE_EXTENT_DATA
                                                                    : ARCHIVE_EXTENT_ZERO,
                                           .size = 100 + n};
            n++;
        }
        u += len;
    }
    return n;
}

static void check_against_reference(const struct reader_layer *layers, size_t nl,
                                    const struct reader_map *m)
{
    bool *seen = calloc(m->nr + 1, sizeof *seen);
    size_t *order, n;

    assert_non_null(seen);

    for (unsigned int u = 0; u < UNITS; u++) {
        uint64_t off = (uint64_t)u * UNIT;
        const struct archive_extent *want = NULL;
        size_t wl = 0;
        for (size_t l = 0; l < nl; l++)
            for (size_t i = 0; i < layers[l].nr; i++)
                if (layers[l].extents[i].offset <= off &&
                    off < layers[l].extents[i].offset + layers[l].extents[i].length)
                    want = &layers[l].extents[i], wl = l;
        const struct reader_piece *got = NULL;
        for (size_t p = 0; p < m->nr; p++)
            if (m->pieces[p].offset <= off && off < m->pieces[p].offset + m->pieces[p].length)
                got = &m->pieces[p];
        if (!want) {
            assert_null(got);
            continue;
        }
        assert_non_null(got);
        if (want->kind == ARCHIVE_EXTENT_ZERO) {
            assert_int_equal(got->kind, READER_PIECE_ZERO);
            continue;
        }
        assert_int_equal(got->kind, READER_PIECE_DATA);
        assert_int_equal(got->layer, wl);
        assert_ptr_equal(&layers[wl].extents[got->extent], want);
        assert_int_equal(want->offset + got->extent_offset + (off - got->offset), off);
    }
    for (size_t p = 1; p < m->nr; p++)
        assert_true(m->pieces[p - 1].offset + m->pieces[p - 1].length <= m->pieces[p].offset);
    /* The read order lists every data piece once, a chunk's pieces together. */
    assert_int_equal(reader_map_read_order(m, layers, &order, &n), 0);
    size_t chunks = 0;
    for (size_t i = 0; i < n; i++) {
        const struct reader_piece *p = &m->pieces[order[i]];
        assert_int_equal(p->kind, READER_PIECE_DATA);
        assert_false(seen[order[i]]);
        seen[order[i]] = true;
        bool same = i > 0 && m->pieces[order[i - 1]].layer == p->layer &&
                    m->pieces[order[i - 1]].extent == p->extent;
        chunks += !same;
        for (size_t j = 0; !same && j < i; j++)
            assert_false(m->pieces[order[j]].layer == p->layer &&
                         m->pieces[order[j]].extent == p->extent);
    }
    for (size_t p = 0; p < m->nr; p++)
        assert_true(seen[p] == (m->pieces[p].kind == READER_PIECE_DATA));
    assert_int_equal(chunks, m->nr_chunks);
    free(order);
    free(seen);
}

static void test_random(void **state)
{
    static struct archive_extent ext[6][UNITS];
    struct reader_layer layers[6];
    unsigned int seed = 12345;

    (void)state;
    for (int round = 0; round < 300; round++) {
        size_t nl = 1 + (size_t)rand_r(&seed) % 6;
        struct reader_map m;
        for (size_t l = 0; l < nl; l++)
            layers[l] = (struct reader_layer){.extents = ext[l], .nr = random_layer(ext[l], &seed)};
        assert_int_equal(reader_merge(layers, nl, (uint64_t)UNITS * UNIT, &m), 0);
        check_against_reference(layers, nl, &m);
        reader_map_clear(&m);
    }
}

/* ---------------------------------------------------------------- time */

static void test_time_parse(void **state)
{
    const int64_t now = 1795827723; /* 2026-11-28T01:02:03Z */
    int64_t t;

    (void)state;
    assert_int_equal(reader_time_parse("2026-11-28T01:02:03Z", now, &t), 0);
    assert_int_equal(t, 1795827723);
    assert_int_equal(reader_time_parse("2026-11-28T03:02:03+02:00", now, &t), 0);
    assert_int_equal(t, 1795827723);
    assert_int_equal(reader_time_parse("2026-11-27t20:32:03.999-04:30", now, &t), 0);
    assert_int_equal(t, 1795827723);
    assert_int_equal(reader_time_parse("1970-01-01T00:00:00Z", now, &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(reader_time_parse("2024-02-29T00:00:00Z", now, &t), 0);
    assert_int_equal(t, 1709164800);
    assert_int_equal(reader_time_parse("now", now, &t), 0);
    assert_int_equal(t, now);
    assert_int_equal(reader_time_parse("2h ago", now, &t), 0);
    assert_int_equal(t, now - 7200);
    assert_int_equal(reader_time_parse("15m ago", now, &t), 0);
    assert_int_equal(t, now - 900);
    assert_int_equal(reader_time_parse("1h30m ago", now, &t), 0);
    assert_int_equal(t, now - 5400);
    assert_int_equal(reader_time_parse("2d ago", now, &t), 0);
    assert_int_equal(t, now - 2 * 86400);
}

static void test_time_parse_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "yesterday",
        "2h",
        "ago",
        " ago",
        "-5m ago",
        "2h  ago",
        "2026-11-28T01:02:03",
        "2026-11-28",
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T01:02:03Zjunk",
        "2026-11-28T01:02:03+0200",
        "2026-11-28T01:02:03.Z",
        "26-11-28T01:02:03Z",
        "Now",
    };
    int64_t t;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(reader_time_parse(bad[i], 1795827723, &t), -1);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
        assert_non_null(strstr(vk_error_message(), bad[i]));
    }
    /* A duration reaching before the epoch. */
    assert_int_equal(reader_time_parse("100d ago", 1000, &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_only),
        cmocka_unit_test(test_inc_exact),
        cmocka_unit_test(test_inc_partial_chunk),
        cmocka_unit_test(test_adjacent),
        cmocka_unit_test(test_zero_vs_data),
        cmocka_unit_test(test_diff_and_empty),
        cmocka_unit_test(test_many_layers),
        cmocka_unit_test(test_clip_and_invalid),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_time_parse_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
