/* Unit tests for retention (src/retention.c): the exact keep set of
 * hand-built histories under each rule and combinations, dependency
 * protection, failed and running backups; and the prune intents of the
 * catalog (catalog_prune_mark/list). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/lifecycle/lifecycle.h"

#define MAXB 64

/* A history built by hand: the strings are literals, never freed. */
struct hist {
    struct catalog_backup items[MAXB];
    struct catalog_backups list;
};

static int64_t at(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

static void add(struct hist *h, const char *id, enum catalog_level level, int64_t started,
                const char *parent)
{
    struct catalog_backup *b = &h->items[h->list.count++];

    assert_true(h->list.count <= MAXB);
    memset(b, 0, sizeof *b);
    b->id = (char *)id;
    b->domain = (char *)"web1";
    b->level = level;
    b->status = CATALOG_STATUS_COMMITTED;
    b->started = started;
    b->finished = started + 60;
    b->parent = (char *)parent;
    b->checkpoint = level == CATALOG_LEVEL_COPY ? NULL : (char *)id;
    h->list.items = h->items;
}

static void full(struct hist *h, const char *id, int64_t started)
{
    add(h, id, CATALOG_LEVEL_FULL, started, NULL);
}

/* The kept ids, oldest first, joined by spaces. */
static char *kept_ids(const struct retention_result *r)
{
    char *s = vk_strdup("");

    for (size_t i = 0; i < r->count; i++) {
        char *n;
        if (!r->items[i].keep)
            continue;
        n = vk_asprintf("%s%s%s", s, *s ? " " : "", r->items[i].backup->id);
        free(s);
        s = n;
    }
    return s;
}

static const char *reason_of(const struct retention_result *r, const char *id)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->items[i].backup->id, id) == 0)
            return r->items[i].reason;
    fail_msg("no backup '%s' in the result", id);
    return NULL;
}

/* POLICY on H keeps exactly WANT (ids oldest first). */
static void expect_keep(const struct hist *h, const struct config_policy *pol, const char *want)
{
    struct retention_result r;
    CLEANUP_FREE char *got = NULL;

    assert_int_equal(retention_select(&h->list, "web1", pol, 0, &r), 0);
    got = kept_ids(&r);
    assert_string_equal(got, want);
    for (size_t i = 0; i < r.count; i++)
        assert_non_null(r.items[i].reason);
    assert_int_equal(r.kept + r.deleted, r.count);
    retention_result_clear(&r);
}

static void test_keep_last(void **state)
{
    struct hist h = {0};
    struct config_policy pol = {.keep_last = 3};
    struct retention_result r;

    (void)state;
    full(&h, "a", at(2026, 11, 1, 1, 0));
    full(&h, "b", at(2026, 11, 1, 2, 0));
    full(&h, "c", at(2026, 11, 1, 3, 0));
    full(&h, "d", at(2026, 11, 1, 4, 0));
    full(&h, "e", at(2026, 11, 1, 4, 0)); /* same second as d: the id decides */
    expect_keep(&h, &pol, "c d e");
    pol.keep_last = 1;
    expect_keep(&h, &pol, "e");
    pol.keep_last = 10;
    expect_keep(&h, &pol, "a b c d e");
    pol.keep_last = 2;
    assert_int_equal(retention_select(&h.list, "web1", &pol, 0, &r), 0);
    assert_string_equal(reason_of(&r, "e"), "last 1/2");
    assert_string_equal(reason_of(&r, "d"), "last 2/2");
    assert_string_equal(reason_of(&r, "a"), "no rule keeps it");
    assert_int_equal(r.kept, 2);
    assert_int_equal(r.deleted, 3);
    retention_result_clear(&r);
}

/* The newest backup of each of the last N periods that have one. */
static void test_keep_hourly_daily(void **state)
{
    struct hist h = {0};
    struct config_policy pol = {.keep_daily = 3};
    struct retention_result r;

    (void)state;
    full(&h, "d1a", at(2026, 11, 1, 1, 0));
    full(&h, "d1b", at(2026, 11, 1, 23, 59));
    full(&h, "d2a", at(2026, 11, 2, 0, 0));
    full(&h, "d2b", at(2026, 11, 2, 5, 0));
    full(&h, "d2c", at(2026, 11, 2, 5, 30));
    /* no backup on the 3rd: that day does not count */
    full(&h, "d4a", at(2026, 11, 4, 12, 0));
    full(&h, "d5a", at(2026, 11, 5, 8, 0));
    full(&h, "d5b", at(2026, 11, 5, 9, 0));
    expect_keep(&h, &pol, "d2c d4a d5b");
    pol.keep_daily = 4;
    expect_keep(&h, &pol, "d1b d2c d4a d5b");
    pol.keep_daily = 0;
    pol.keep_hourly = 3;
    expect_keep(&h, &pol, "d4a d5a d5b");
    pol.keep_hourly = 5;
    expect_keep(&h, &pol, "d2a d2c d4a d5a d5b"); /* d2b and d2c share 05:00 */
    assert_int_equal(retention_select(&h.list, "web1", &pol, 0, &r), 0);
    assert_string_equal(reason_of(&r, "d2c"), "hourly 2026-11-02T05");
    assert_string_equal(reason_of(&r, "d2b"), "no rule keeps it");
    retention_result_clear(&r);
}

/* ISO weeks start on Monday; months and years at their first second (UTC). */
static void test_keep_weekly_monthly_yearly(void **state)
{
    struct hist h = {0};
    struct config_policy pol = {.keep_weekly = 2};
    struct retention_result r;

    (void)state;
    full(&h, "w1", at(2026, 11, 16, 10, 0));  /* Monday, week 47 */
    full(&h, "w2", at(2026, 11, 22, 23, 0));  /* Sunday, week 47 */
    full(&h, "w3", at(2026, 11, 23, 0, 30));  /* Monday, week 48 */
    full(&h, "w4", at(2026, 11, 29, 23, 59)); /* Sunday, week 48 */
    full(&h, "m1", at(2026, 12, 31, 23, 0));  /* week 53, December */
    full(&h, "y1", at(2027, 1, 1, 0, 0));     /* still ISO week 2026-W53, January 2027 */
    expect_keep(&h, &pol, "w4 y1");
    assert_int_equal(retention_select(&h.list, "web1", &pol, 0, &r), 0);
    assert_string_equal(reason_of(&r, "y1"), "weekly 2026-W53");
    assert_string_equal(reason_of(&r, "w4"), "weekly 2026-W48");
    retention_result_clear(&r);
    pol.keep_weekly = 3;
    expect_keep(&h, &pol, "w2 w4 y1");
    pol = (struct config_policy){.keep_monthly = 2};
    expect_keep(&h, &pol, "m1 y1");
    pol.keep_monthly = 3;
    expect_keep(&h, &pol, "w4 m1 y1");
    pol = (struct config_policy){.keep_yearly = 1};
    expect_keep(&h, &pol, "y1");
    pol.keep_yearly = 5;
    expect_keep(&h, &pol, "m1 y1");
}

/* Rules add up, each counting over every backup. */
static void test_combinations(void **state)
{
    struct hist h = {0};
    struct config_policy pol = {.keep_last = 2, .keep_daily = 3, .keep_monthly = 2};
    struct retention_result r;

    (void)state;
    full(&h, "oct", at(2026, 10, 20, 1, 0));
    full(&h, "n01", at(2026, 11, 1, 1, 0));
    full(&h, "n05", at(2026, 11, 5, 1, 0));
    full(&h, "n06", at(2026, 11, 6, 1, 0));
    full(&h, "n07a", at(2026, 11, 7, 1, 0));
    full(&h, "n07b", at(2026, 11, 7, 2, 0));
    full(&h, "n07c", at(2026, 11, 7, 3, 0));
    /* last: n07c n07b; daily: n07c n06 n05; monthly: n07c oct */
    expect_keep(&h, &pol, "oct n05 n06 n07b n07c");
    assert_int_equal(retention_select(&h.list, "web1", &pol, 0, &r), 0);
    assert_string_equal(reason_of(&r, "n07c"), "last 1/2, daily 2026-11-07, monthly 2026-11");
    assert_string_equal(reason_of(&r, "oct"), "monthly 2026-10");
    retention_result_clear(&r);
    /* keep_within: everything less than 2 days older than the newest. */
    pol = (struct config_policy){.keep_within = 2 * 86400};
    expect_keep(&h, &pol, "n06 n07a n07b n07c");
    pol.keep_last = 6;
    expect_keep(&h, &pol, "n01 n05 n06 n07a n07b n07c");
    /* No rule at all: everything stays. */
    pol = (struct config_policy){0};
    expect_keep(&h, &pol, "oct n01 n05 n06 n07a n07b n07c");
}

/* A kept inc keeps its full and every inc between; a kept diff its full. */
static void test_dependencies(void **state)
{
    struct hist h = {0};
    struct config_policy pol = {.keep_last = 1};
    struct retention_result r;

    (void)state;
    full(&h, "f1", at(2026, 11, 1, 0, 0));
    add(&h, "i1", CATALOG_LEVEL_INC, at(2026, 11, 2, 0, 0), "f1");
    add(&h, "i2", CATALOG_LEVEL_INC, at(2026, 11, 3, 0, 0), "i1");
    add(&h, "i3", CATALOG_LEVEL_INC, at(2026, 11, 4, 0, 0), "i2");
    expect_keep(&h, &pol, "f1 i1 i2 i3");
    assert_int_equal(retention_select(&h.list, "web1", &pol, 0, &r), 0);
    assert_string_equal(reason_of(&r, "i3"), "last 1/1");
    assert_string_equal(reason_of(&r, "i2"), "needed by i3");
    assert_string_equal(reason_of(&r, "f1"), "needed by i1");
    retention_result_clear(&r);

    /* A new full: the old chain goes entirely. */
    full(&h, "f2", at(2026, 11, 5, 0, 0));
    add(&h, "j1", CATALOG_LEVEL_INC, at(2026, 11, 6, 0, 0), "f2");
    expect_keep(&h, &pol, "f2 j1");
    /* keep_daily 3 keeps i3 (day 4): its whole chain comes along. */
    pol = (struct config_policy){.keep_daily = 3};
    expect_keep(&h, &pol, "f1 i1 i2 i3 f2 j1");
    pol.keep_daily = 2;
    expect_keep(&h, &pol, "f2 j1");

    /* Diffs need only their full; an inc may build on a diff. */
    h = (struct hist){0};
    full(&h, "F", at(2026, 11, 1, 0, 0));
    add(&h, "d1", CATALOG_LEVEL_DIFF, at(2026, 11, 2, 0, 0), "F");
    add(&h, "d2", CATALOG_LEVEL_DIFF, at(2026, 11, 3, 0, 0), "F");
    add(&h, "k1", CATALOG_LEVEL_INC, at(2026, 11, 4, 0, 0), "d2");
    add(&h, "c1", CATALOG_LEVEL_COPY, at(2026, 11, 5, 0, 0), NULL);
    pol = (struct config_policy){.keep_last = 1};
    expect_keep(&h, &pol, "c1"); /* a copy stands alone */
    pol.keep_last = 2;
    expect_keep(&h, &pol, "F d2 k1 c1");
    pol = (struct config_policy){.keep_daily = 1, .keep_monthly = 1};
    expect_keep(&h, &pol, "c1");
    h.items[4].level = CATALOG_LEVEL_DIFF; /* c1 becomes a diff of F */
    h.items[4].parent = (char *)"F";
    pol = (struct config_policy){.keep_last = 1};
    expect_keep(&h, &pol, "F c1");
    /* A parent missing from the list protects nothing and breaks nothing. */
    h.items[4].parent = (char *)"gone";
    expect_keep(&h, &pol, "c1");
}

static void test_failed_running_domains(void **state)
{
    struct hist h = {0};
    struct config_policy pol = {.keep_last = 1};
    struct retention_result r;

    (void)state;
    full(&h, "f1", at(2026, 11, 1, 0, 0));
    add(&h, "x1", CATALOG_LEVEL_INC, at(2026, 11, 1, 6, 0), "f1");
    h.items[1].status = CATALOG_STATUS_FAILED;
    full(&h, "f2", at(2026, 11, 2, 0, 0));
    add(&h, "x2", CATALOG_LEVEL_INC, at(2026, 11, 2, 6, 0), "f2");
    h.items[3].status = CATALOG_STATUS_FAILED;
    add(&h, "other", CATALOG_LEVEL_FULL, at(2026, 11, 3, 0, 0), NULL);
    h.items[4].domain = (char *)"db1";
    /* x1 is superseded by f2; x2 is newer than any good backup: kept. */
    expect_keep(&h, &pol, "f2 x2");
    assert_int_equal(retention_select(&h.list, "web1", &pol, 0, &r), 0);
    assert_int_equal(r.count, 4); /* db1's backup is not web1's business */
    assert_string_equal(reason_of(&r, "x1"), "failed, superseded by f2");
    assert_string_equal(reason_of(&r, "x2"), "failed, no good backup since");
    retention_result_clear(&r);

    /* A running inc on f1 keeps f1, even though f2 is newer. */
    h.items[1].status = CATALOG_STATUS_RUNNING;
    expect_keep(&h, &pol, "f1 x1 f2 x2");
    assert_int_equal(retention_select(&h.list, "web1", &pol, 0, &r), 0);
    assert_string_equal(reason_of(&r, "x1"), "running");
    assert_string_equal(reason_of(&r, "f1"), "needed by x1");
    retention_result_clear(&r);

    /* No committed backup at all: failures stay. */
    h.items[0].status = CATALOG_STATUS_FAILED;
    h.items[1].status = CATALOG_STATUS_FAILED;
    h.items[2].status = CATALOG_STATUS_FAILED;
    expect_keep(&h, &pol, "f1 x1 f2 x2");
    assert_false(retention_has_rules(&(struct config_policy){.rpo = 60}));
    assert_true(retention_has_rules(&(struct config_policy){.keep_yearly = 1}));
    assert_true(retention_has_rules(&(struct config_policy){.keep_within = 1}));
}

/* The prune intents of the catalog: mark, list (newest first), gone with
 * the backup. */
static void test_catalog_prune_intents(void **state)
{
    char dir[] = "/tmp/vk-retention-XXXXXX";
    CLEANUP_FREE char *path = NULL;
    CLEANUP_STRV char **ids = NULL;
    struct catalog *cat;
    const char *names[] = {"web1-a", "web1-b", "db1-a"};

    (void)state;
    assert_non_null(mkdtemp(dir));
    path = vk_asprintf("%s/catalog.db", dir);
    cat = catalog_open(path, 0);
    assert_non_null(cat);
    assert_int_equal(catalog_schema_version(cat), CATALOG_SCHEMA_VERSION);
    for (int i = 0; i < 3; i++) {
        struct catalog_backup b = {.id = (char *)names[i],
                                   .domain = (char *)(i < 2 ? "web1" : "db1"),
                                   .level = CATALOG_LEVEL_FULL,
                                   .status = CATALOG_STATUS_COMMITTED,
                                   .started = 1000 + i};
        assert_int_equal(catalog_backup_insert(cat, &b), 0);
    }
    assert_int_equal(catalog_prune_list(cat, NULL, &ids), 0);
    assert_null(ids[0]);
    vk_strv_free(ids);
    assert_int_equal(catalog_prune_mark(cat, "web1-a", "no rule keeps it"), 0);
    assert_int_equal(catalog_prune_mark(cat, "web1-b", NULL), 0);
    assert_int_equal(catalog_prune_mark(cat, "web1-b", "again"), 0);
    assert_int_equal(catalog_prune_mark(cat, "db1-a", NULL), 0);
    assert_int_equal(catalog_prune_mark(cat, "nope", NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_int_equal(catalog_prune_list(cat, "web1", &ids), 0);
    assert_int_equal(vk_strv_len(ids), 2);
    assert_string_equal(ids[0], "web1-b");
    assert_string_equal(ids[1], "web1-a");
    vk_strv_free(ids);
    assert_int_equal(catalog_backup_delete(cat, "web1-b", 0), 0);
    assert_int_equal(catalog_prune_list(cat, NULL, &ids), 0);
    assert_int_equal(vk_strv_len(ids), 2);
    assert_string_equal(ids[0], "db1-a");
    assert_string_equal(ids[1], "web1-a");
    catalog_close(cat);
    unlink(path);
    free(path);
    path = vk_asprintf("%s/catalog.db-wal", dir);
    unlink(path);
    free(path);
    path = vk_asprintf("%s/catalog.db-shm", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_last),
        cmocka_unit_test(test_keep_hourly_daily),
        cmocka_unit_test(test_keep_weekly_monthly_yearly),
        cmocka_unit_test(test_combinations),
        cmocka_unit_test(test_dependencies),
        cmocka_unit_test(test_failed_running_domains),
        cmocka_unit_test(test_catalog_prune_intents),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
