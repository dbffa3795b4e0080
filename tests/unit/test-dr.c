/* Unit tests for DR plans and drills: the scheduling math of src/dr.c on
 * hand-built inputs, the drill accessors of catalog/drills.c on a
 * temporary catalog, and the learning of src/plan.c (reader_drill_fit and
 * reader_cost_estimate preferring drills over throughput samples). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/plan/plan.h"

#define assert_close(a, b) assert_true(fabs_((a) - (b)) <= 1e-9 * (fabs_(b) + 1))

static double fabs_(double x)
{
    return x < 0 ? -x : x;
}

/* ---------------------------------------------------------------- learning */

static void test_fit_one(void **state)
{
    struct reader_drill_sample s[] = {{100000000, 20}};
    double rate, overhead;

    (void)state;
    assert_int_equal(reader_drill_fit(s, 1, &rate, &overhead), 0);
    assert_close(rate, 5e6);
    assert_close(overhead, 0);
}

static void test_fit_line(void **state)
{
    /* seconds = 2 + bytes / 1e7 exactly. */
    struct reader_drill_sample s[] = {{400000000, 42}, {100000000, 12}, {200000000, 22}};
    double rate, overhead;

    (void)state;
    assert_int_equal(reader_drill_fit(s, 3, &rate, &overhead), 0);
    assert_close(rate, 1e7);
    assert_close(overhead, 2);
}

static void test_fit_fallbacks(void **state)
{
    struct reader_drill_sample same[] = {{100000000, 10}, {100000000, 14}};
    struct reader_drill_sample falling[] = {{100000000, 20}, {200000000, 10}};
    struct reader_drill_sample negative[] = {{100000000, 1}, {200000000, 12}}; /* overhead -10 */
    struct reader_drill_sample zero[] = {{0, 10}};
    double rate = -1, overhead = -1;

    (void)state;
    assert_int_equal(reader_drill_fit(same, 2, &rate, &overhead), 0);
    assert_close(rate, 2e8 / 24);
    assert_close(overhead, 0);
    assert_int_equal(reader_drill_fit(falling, 2, &rate, &overhead), 0);
    assert_close(rate, 3e8 / 30);
    assert_close(overhead, 0);
    assert_int_equal(reader_drill_fit(negative, 2, &rate, &overhead), 0);
    assert_close(rate, 3e8 / 13);
    assert_close(overhead, 0);
    assert_int_equal(reader_drill_fit(zero, 1, &rate, &overhead), -1);
    assert_int_equal(reader_drill_fit(same, 0, &rate, &overhead), -1);
}

/* ---------------------------------------------------------------- catalog */

struct tmp {
    char dir[64];
    char *path;
    struct catalog *cat;
};

static int tmp_setup(void **state)
{
    struct tmp *t = vk_calloc(1, sizeof *t);

    snprintf(t->dir, sizeof t->dir, "/tmp/test-dr-XXXXXX");
    if (!t || !mkdtemp(t->dir))
        return -1;
    t->path = vk_asprintf("%s/catalog.db", t->dir);
    t->cat = catalog_open(t->path, 0);
    *state = t;
    return t->cat ? 0 : -1;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;
    CLEANUP_FREE char *wal = vk_asprintf("%s-wal", t->path);
    CLEANUP_FREE char *shm = vk_asprintf("%s-shm", t->path);

    catalog_close(t->cat);
    unlink(t->path);
    unlink(wal);
    unlink(shm);
    rmdir(t->dir);
    free(t->path);
    free(t);
    return 0;
}

static int64_t drill_add(struct catalog *cat, const char *domain, const char *targets,
                         int64_t started, uint64_t bytes, double seconds,
                         enum catalog_drill_state end)
{
    struct catalog_drill d = {.domain = (char *)domain,
                              .backup_id = (char *)"b1",
                              .targets = (char *)targets,
                              .state = CATALOG_DRILL_RUNNING,
                              .started = started,
                              .estimate_seconds = 7.5,
                              .estimate_source = (char *)"guess"};
    int64_t id = catalog_drill_insert(cat, &d);

    assert_true(id > 0);
    if (end != CATALOG_DRILL_RUNNING)
        assert_int_equal(catalog_drill_finish(cat, id, end, seconds, bytes, bytes / 2,
                                              end == CATALOG_DRILL_OK ? NULL : "chunk 3 is bad"),
                         0);
    return id;
}

static void test_accessors(void **state)
{
    struct tmp *t = *state;
    struct catalog_drills *l = NULL;
    struct catalog_drill *d;
    int64_t a, b, c;
    unsigned int marked = 9;

    assert_int_equal(catalog_schema_version(t->cat), CATALOG_SCHEMA_VERSION);
    a = drill_add(t->cat, "web1", "local", 1000, 5000000, 10, CATALOG_DRILL_OK);
    b = drill_add(t->cat, "web1", "offsite,local2", 2000, 8000000, 4, CATALOG_DRILL_FAILED);
    c = drill_add(t->cat, "db1", "local", 3000, 0, 0, CATALOG_DRILL_RUNNING);

    d = catalog_drill_get(t->cat, a);
    assert_non_null(d);
    assert_string_equal(d->domain, "web1");
    assert_string_equal(d->targets, "local");
    assert_int_equal(d->state, CATALOG_DRILL_OK);
    assert_int_equal(d->started, 1000);
    assert_true(d->finished > 0);
    assert_close(d->estimate_seconds, 7.5);
    assert_string_equal(d->estimate_source, "guess");
    assert_close(d->actual_seconds, 10);
    assert_int_equal(d->bytes_read, 5000000);
    assert_int_equal(d->disk_bytes, 2500000);
    assert_null(d->error);
    catalog_drill_free(d);

    /* A finished drill cannot finish again; an unknown one is not found. */
    assert_int_equal(catalog_drill_finish(t->cat, a, CATALOG_DRILL_FAILED, 1, 1, 1, "x"), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_int_equal(catalog_drill_finish(t->cat, 999, CATALOG_DRILL_OK, 1, 1, 1, NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_int_equal(catalog_drill_finish(t->cat, c, CATALOG_DRILL_RUNNING, 1, 1, 1, NULL), -1);

    /* Newest first; filters by domain, whole target name, ok only. */
    assert_int_equal(catalog_drill_list(t->cat, NULL, NULL, 0, 0, &l), 0);
    assert_int_equal(l->count, 3);
    assert_int_equal(l->items[0].id, c);
    assert_int_equal(l->items[2].id, a);
    catalog_drills_free(l);
    assert_int_equal(catalog_drill_list(t->cat, "web1", NULL, 0, 1, &l), 0);
    assert_int_equal(l->count, 1);
    assert_int_equal(l->items[0].id, b);
    assert_string_equal(l->items[0].error, "chunk 3 is bad");
    catalog_drills_free(l);
    assert_int_equal(catalog_drill_list(t->cat, NULL, "local", 0, 0, &l), 0);
    assert_int_equal(l->count, 2); /* a and c, not "local2" */
    catalog_drills_free(l);
    assert_int_equal(catalog_drill_list(t->cat, NULL, "offsite", 0, 0, &l), 0);
    assert_int_equal(l->count, 1);
    catalog_drills_free(l);
    assert_int_equal(catalog_drill_list(t->cat, NULL, "loc", 0, 0, &l), 0);
    assert_int_equal(l->count, 0);
    catalog_drills_free(l);
    assert_int_equal(catalog_drill_list(t->cat, NULL, NULL, CATALOG_DRILL_LIST_OK, 0, &l), 0);
    assert_int_equal(l->count, 1);
    assert_int_equal(l->items[0].id, a);
    catalog_drills_free(l);

    /* A running drill of this (live) process is not an orphan. */
    assert_int_equal(catalog_drill_fail_orphans(t->cat, 0, &marked), 0);
    assert_int_equal(marked, 0);
    {
        struct catalog_drill dead = {
            .domain = (char *)"db2", .state = CATALOG_DRILL_RUNNING, .pid = 0x7ffffff0};
        int64_t id = catalog_drill_insert(t->cat, &dead);
        assert_true(id > 0);
        assert_int_equal(catalog_drill_fail_orphans(t->cat, 0, &marked), 0);
        assert_int_equal(marked, 1);
        d = catalog_drill_get(t->cat, id);
        assert_int_equal(d->state, CATALOG_DRILL_FAILED);
        assert_non_null(strstr(d->error, "interrupted"));
        catalog_drill_free(d);
    }
    assert_null(catalog_drill_get(t->cat, 12345));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
}

static void test_estimate_sources(void **state)
{
    struct tmp *t = *state;
    struct reader_cost pt;
    struct reader_cost two[2] = {{.name = (char *)"local", .bytes = 60000000},
                                 {.name = (char *)"far", .bytes = 10000000}};
    struct reader_drill_ref ref;
    enum reader_source src;
    double secs;

    /* Nothing known: a guess at the default rate. */
    assert_int_equal(reader_cost_estimate(t->cat, "web1", "local", 100 << 20, &pt), 0);
    assert_int_equal(pt.source, READER_SOURCE_GUESS);
    assert_true(pt.guess);
    assert_close(pt.seconds, 1.0);

    /* Throughput samples: 40 MB in 2 s + 20 MB in 2 s = 15 MB/s. */
    assert_int_equal(catalog_throughput_record(t->cat, "local", CATALOG_DIR_READ, 40000000, 2, 0),
                     0);
    assert_int_equal(catalog_throughput_record(t->cat, "local", CATALOG_DIR_READ, 20000000, 2, 0),
                     0);
    assert_int_equal(reader_cost_estimate(t->cat, "web1", "local", 30000000, &pt), 0);
    assert_int_equal(pt.source, READER_SOURCE_THROUGHPUT);
    assert_int_equal(pt.samples, 2);
    assert_close(pt.rate, 15e6);
    assert_close(pt.seconds, 2.0);

    /* A drill of another domain on that target wins over throughput, and
     * failed drills count for nothing. */
    drill_add(t->cat, "db1", "local", 500, 10000000, 5, CATALOG_DRILL_OK);
    drill_add(t->cat, "web1", "local", 600, 1000000, 50, CATALOG_DRILL_FAILED);
    assert_int_equal(reader_cost_estimate(t->cat, "web1", "local", 30000000, &pt), 0);
    assert_int_equal(pt.source, READER_SOURCE_DRILL);
    assert_close(pt.rate, 2e6);
    assert_close(pt.seconds, 15.0);
    assert_int_equal(pt.drill.samples, 1);
    assert_close(pt.drill.actual_seconds, 5);

    /* The domain's own drills win over the other domain's: fitted to
     * seconds = 2 + bytes / 1e7. */
    drill_add(t->cat, "web1", "local", 1000, 100000000, 12, CATALOG_DRILL_OK);
    drill_add(t->cat, "web1", "local", 2000, 400000000, 42, CATALOG_DRILL_OK);
    drill_add(t->cat, "web1", "local", 3000, 200000000, 22, CATALOG_DRILL_OK);
    assert_int_equal(reader_cost_estimate(t->cat, "web1", "local", 50000000, &pt), 0);
    assert_int_equal(pt.source, READER_SOURCE_DRILL);
    assert_close(pt.rate, 1e7);
    assert_close(pt.overhead, 2);
    assert_close(pt.seconds, 7);
    assert_int_equal(pt.drill.samples, 3);
    assert_int_equal(pt.drill.time, 3000);
    assert_close(pt.drill.actual_seconds, 22);
    assert_close(pt.drill.estimate_seconds, 7.5);

    /* Without a domain (the scheduler's model): every domain's drills. */
    assert_int_equal(reader_cost_read(t->cat, "local", 0, &pt), 0);
    assert_int_equal(pt.source, READER_SOURCE_DRILL);
    assert_int_equal(pt.drill.samples, 4);

    /* Two targets: the seconds add up, the source is the least trusted. */
    assert_int_equal(reader_costs_estimate(t->cat, "web1", two, 2, &secs, &src, &ref), 0);
    assert_close(two[0].seconds, 2 + 6.0);
    assert_int_equal(two[1].source, READER_SOURCE_GUESS);
    assert_close(two[1].seconds, 10000000 / READER_DEFAULT_READ_RATE);
    assert_close(secs, 8 + 10000000 / READER_DEFAULT_READ_RATE);
    assert_int_equal(src, READER_SOURCE_GUESS);
    assert_int_equal(ref.time, 3000);
}

/* ---------------------------------------------------------------- schedule */

static void item_set(struct dr_item *it, const char *name, unsigned int prio, uint64_t rto,
                     uint64_t rpo, double est, int64_t backup_time)
{
    memset(it, 0, sizeof *it);
    it->domain = vk_strdup(name);
    it->priority = prio;
    it->rto = rto;
    it->rpo = rpo;
    it->estimate_seconds = est;
    it->source = READER_SOURCE_DRILL;
    it->backup_time = backup_time;
    it->backup_id = backup_time ? vk_asprintf("%s-b", name) : NULL;
    it->never_backed_up = backup_time == 0;
}

static const struct dr_item *find(const struct dr_plan *p, const char *name)
{
    for (size_t i = 0; i < p->nr; i++)
        if (strcmp(p->items[i].domain, name) == 0)
            return &p->items[i];
    fail_msg("no item %s", name);
    return NULL;
}

static bool reason_has(const struct dr_item *it, const char *needle)
{
    for (size_t i = 0; it->reasons && it->reasons[i]; i++)
        if (strstr(it->reasons[i], needle))
            return true;
    return false;
}

#define AT 100000

static void four(struct dr_plan *p)
{
    memset(p, 0, sizeof *p);
    p->items = vk_calloc(4, sizeof *p->items);
    p->nr = 4;
    item_set(&p->items[0], "c-low", 0, 200, 0, 40, AT - 10);
    item_set(&p->items[1], "b-mid", 2, 100, 3600, 50, AT - 100);
    item_set(&p->items[2], "a-top", 1, 100, 600, 60, AT - 1000);
    item_set(&p->items[3], "d-never", 1, 300, 600, 0, 0);
}

static void test_schedule_serial(void **state)
{
    struct dr_plan p;
    const struct dr_item *a, *b, *c, *d;

    (void)state;
    four(&p);
    assert_int_equal(dr_schedule(&p, 1, AT), 0);
    /* Restore order: priority 1 (a-top before d-never: d has no slack),
     * then 2, then unset. */
    assert_string_equal(p.items[0].domain, "a-top");
    assert_string_equal(p.items[1].domain, "d-never");
    assert_string_equal(p.items[2].domain, "b-mid");
    assert_string_equal(p.items[3].domain, "c-low");
    a = find(&p, "a-top");
    b = find(&p, "b-mid");
    c = find(&p, "c-low");
    d = find(&p, "d-never");
    assert_close(a->start, 0);
    assert_close(a->finish, 60);
    assert_close(b->start, 60);
    assert_close(b->finish, 110);
    assert_close(c->start, 110);
    assert_close(c->finish, 150);
    assert_close(p.makespan, 150);
    assert_true(a->rto_met);
    /* b alone takes 50 s of its 100 s, but waits 60 s behind a: missed. */
    assert_false(b->rto_met);
    assert_int_equal(b->waited_behind, 1);
    assert_true(reason_has(b, "queue"));
    assert_true(c->rto_met);
    /* Data lost: a's backup is 1000 s old, RPO 600: missed. */
    assert_int_equal(a->data_loss, 1000);
    assert_false(a->rpo_met);
    assert_true(reason_has(a, "RPO"));
    assert_int_equal(b->data_loss, 100);
    assert_true(b->rpo_met);
    assert_true(c->rpo_met); /* no RPO objective */
    /* Never backed up: not restored, both objectives missed. */
    assert_int_equal(d->slot, -1);
    assert_false(d->rto_met);
    assert_false(d->rpo_met);
    assert_int_equal(d->data_loss, -1);
    assert_true(reason_has(d, "never backed up"));
    assert_int_equal(p.missed, 3); /* a (RPO), b (RTO), d */
    dr_plan_clear(&p);
}

static void test_schedule_parallel(void **state)
{
    struct dr_plan p;
    const struct dr_item *a, *b, *c;

    (void)state;
    four(&p);
    assert_int_equal(dr_schedule(&p, 2, AT), 0);
    a = find(&p, "a-top");
    b = find(&p, "b-mid");
    c = find(&p, "c-low");
    assert_int_equal(a->slot, 0);
    assert_int_equal(b->slot, 1);
    assert_close(b->start, 0);
    assert_close(b->finish, 50);
    /* c takes the slot that frees first: b's, at 50. */
    assert_int_equal(c->slot, 1);
    assert_close(c->start, 50);
    assert_close(c->finish, 90);
    assert_close(p.makespan, 90);
    assert_true(b->rto_met);
    assert_false(reason_has(b, "queue"));
    assert_int_equal(p.missed, 2); /* a (RPO), d */

    /* Rescheduling the same plan gives the same answer. */
    assert_int_equal(dr_schedule(&p, 2, AT), 0);
    assert_close(p.makespan, 90);
    assert_int_equal(dr_schedule(&p, 0, AT), -1);
    dr_plan_clear(&p);
}

/* Several hosts: each restores its own domains on its own PARALLEL slots,
 * side by side; the makespan is the data centre's. */
static void test_schedule_hosts(void **state)
{
    struct dr_plan p;
    const struct dr_item *a, *b, *c;

    (void)state;
    four(&p);
    ((struct dr_item *)find(&p, "a-top"))->host = vk_strdup("alpha");
    ((struct dr_item *)find(&p, "b-mid"))->host = vk_strdup("beta");
    ((struct dr_item *)find(&p, "c-low"))->host = vk_strdup("alpha");
    assert_int_equal(dr_schedule(&p, 1, AT), 0);
    a = find(&p, "a-top");
    b = find(&p, "b-mid");
    c = find(&p, "c-low");
    assert_int_equal(p.hosts, 3); /* alpha, beta, and d's pool without a host */
    assert_int_equal(a->slot, 0);
    assert_int_equal(b->slot, 0);
    assert_close(b->start, 0); /* beta restores beside alpha */
    assert_close(b->finish, 50);
    assert_close(c->start, a->finish); /* behind a on alpha's one slot */
    assert_int_equal(c->waited_behind, 1);
    assert_close(p.makespan, c->finish);
    dr_plan_clear(&p);
}

static void test_schedule_ties(void **state)
{
    struct dr_plan p = {0};
    const struct dr_item *tight, *loose;

    (void)state;
    p.items = vk_calloc(5, sizeof *p.items);
    p.nr = 5;
    item_set(&p.items[0], "loose", 1, 1000, 0, 10, AT); /* slack 990 */
    item_set(&p.items[1], "tight", 1, 100, 0, 90, AT);  /* slack 10 */
    item_set(&p.items[2], "zz-norto", 1, 0, 0, 5, AT);  /* no RTO: after */
    item_set(&p.items[3], "aa-norto", 1, 0, 0, 5, AT);  /* name breaks the tie */
    item_set(&p.items[4], "slow", 3, 30, 0, 45, AT);    /* alone > RTO */
    p.items[4].source = READER_SOURCE_GUESS;
    assert_int_equal(dr_schedule(&p, 1, AT), 0);
    assert_string_equal(p.items[0].domain, "tight");
    assert_string_equal(p.items[1].domain, "loose");
    assert_string_equal(p.items[2].domain, "aa-norto");
    assert_string_equal(p.items[3].domain, "zz-norto");
    assert_string_equal(p.items[4].domain, "slow");
    tight = find(&p, "tight");
    loose = find(&p, "loose");
    assert_close(tight->finish, 90);
    assert_true(tight->rto_met);
    assert_close(loose->finish, 100);
    assert_true(loose->rto_met);
    assert_close(p.items[4].start, 110);
    assert_false(p.items[4].rto_met);
    assert_true(reason_has(&p.items[4], "alone"));
    assert_true(reason_has(&p.items[4], "guess"));
    assert_close(p.makespan, 155);
    assert_int_equal(p.missed, 1);
    dr_plan_clear(&p);
}

static void test_schedule_problem(void **state)
{
    struct dr_plan p = {0};

    (void)state;
    p.items = vk_calloc(2, sizeof *p.items);
    p.nr = 2;
    item_set(&p.items[0], "broken", 1, 100, 0, 0, AT - 5);
    p.items[0].problem = vk_strdup("target 'gone' is unreachable");
    item_set(&p.items[1], "fine", 2, 100, 0, 30, AT - 5);
    assert_int_equal(dr_schedule(&p, 1, AT), 0);
    /* The broken domain takes no slot: the next starts at once. */
    assert_int_equal(p.items[0].slot, -1);
    assert_false(p.items[0].rto_met);
    assert_true(p.items[0].rpo_met);
    assert_true(reason_has(&p.items[0], "unreachable"));
    assert_close(p.items[1].start, 0);
    assert_close(p.makespan, 30);
    assert_int_equal(p.missed, 1);
    dr_plan_clear(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_one),
        cmocka_unit_test(test_fit_line),
        cmocka_unit_test(test_fit_fallbacks),
        cmocka_unit_test_setup_teardown(test_accessors, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_estimate_sources, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_schedule_serial),
        cmocka_unit_test(test_schedule_parallel),
        cmocka_unit_test(test_schedule_hosts),
        cmocka_unit_test(test_schedule_ties),
        cmocka_unit_test(test_schedule_problem),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
