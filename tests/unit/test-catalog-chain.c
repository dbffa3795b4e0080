/* Unit tests for backup chains: pure functions over lists of backups, and
 * one pass through a real catalog file.  No libvirt. */
#include <config.h>

#include <ftw.h>
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

#define C CATALOG_STATUS_COMMITTED
#define F CATALOG_STATUS_FAILED
#define R CATALOG_STATUS_RUNNING

/* A list built by hand; strings are borrowed, so it is freed shallowly. */
struct fixture {
    struct catalog_backups all;
    struct catalog_backup items[32];
};

static struct fixture fx;

static int reset(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    fx.all.items = fx.items;
    vk_error_clear();
    return 0;
}

static void add(const char *id, const char *domain, enum catalog_level level,
                enum catalog_status status, const char *parent, int64_t started)
{
    struct catalog_backup *b = &fx.items[fx.all.count++];

    assert_true(fx.all.count <= VK_ARRAY_SIZE(fx.items));
    b->id = (char *)id;
    b->domain = (char *)domain;
    b->level = level;
    b->status = status;
    b->parent = (char *)parent;
    b->checkpoint = level == CATALOG_LEVEL_COPY ? NULL : (char *)id; /* one per backup */
    b->started = started;
}

/* Assert that CHAIN holds exactly the ids given, in order, then free it. */
static void expect_chain(struct catalog_backups *chain, ...)
{
    va_list ap;
    const char *id;
    size_t i = 0;

    assert_non_null(chain);
    va_start(ap, chain);
    while ((id = va_arg(ap, const char *)) != NULL) {
        if (i >= chain->count)
            fail_msg("chain too short: missing '%s' at %zu", id, i);
        if (strcmp(chain->items[i].id, id) != 0)
            fail_msg("chain[%zu] is '%s', expected '%s'", i, chain->items[i].id, id);
        i++;
    }
    va_end(ap);
    if (i != chain->count)
        fail_msg("chain has %zu items, expected %zu", chain->count, i);
    catalog_backups_free(chain);
}

static void expect_error(enum vk_error_code code, const char *a, const char *b)
{
    const char *msg = vk_error_message();

    assert_int_equal(vk_error_code(), code);
    assert_non_null(msg);
    if (!strstr(msg, a) || (b && !strstr(msg, b)))
        fail_msg("error '%s' lacks '%s' or '%s'", msg, a, b ? b : "");
}

static struct catalog_backups *resolve(const char *id)
{
    struct catalog_backups *chain = NULL;

    if (catalog_chain_resolve(&fx.all, id, &chain) == -1)
        fail_msg("resolve %s: %s", id, vk_error_message());
    return chain;
}

static struct catalog_backups *at(const char *domain, int64_t when)
{
    struct catalog_backups *chain = NULL;

    if (catalog_chain_at(&fx.all, domain, when, &chain) == -1)
        fail_msg("chain at %lld: %s", (long long)when, vk_error_message());
    return chain;
}

static struct catalog_backups *current(const char *domain)
{
    struct catalog_backups *chain = NULL;

    assert_int_equal(catalog_chain_current(&fx.all, domain, &chain), 0);
    return chain;
}

/* full, inc, inc, diff, inc-on-diff, copy; then a new full and an inc. */
static void add_web1_history(void)
{
    add("w-full1", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    add("w-inc1", "web1", CATALOG_LEVEL_INC, C, "w-full1", 200);
    add("w-inc2", "web1", CATALOG_LEVEL_INC, C, "w-inc1", 300);
    add("w-diff1", "web1", CATALOG_LEVEL_DIFF, C, "w-full1", 400);
    add("w-inc3", "web1", CATALOG_LEVEL_INC, C, "w-diff1", 500);
    add("w-copy1", "web1", CATALOG_LEVEL_COPY, C, NULL, 600);
}

/* ---- resolving a backup's chain --------------------------------------- */

static void test_resolve_levels(void **state)
{
    struct catalog_backups *chain;

    (void)state;
    add_web1_history();
    expect_chain(resolve("w-full1"), "w-full1", NULL);
    expect_chain(resolve("w-inc1"), "w-full1", "w-inc1", NULL);
    expect_chain(resolve("w-inc2"), "w-full1", "w-inc1", "w-inc2", NULL);
    expect_chain(resolve("w-diff1"), "w-full1", "w-diff1", NULL);
    expect_chain(resolve("w-inc3"), "w-full1", "w-diff1", "w-inc3", NULL);
    expect_chain(resolve("w-copy1"), "w-copy1", NULL);
    /* The chain holds copies of the records. */
    chain = resolve("w-inc2");
    assert_ptr_not_equal(chain->items[0].id, fx.items[0].id);
    assert_string_equal(chain->items[2].parent, "w-inc1");
    assert_int_equal(chain->items[1].level, CATALOG_LEVEL_INC);
    assert_int_equal(chain->items[0].started, 100);
    catalog_backups_free(chain);

    assert_int_equal(catalog_chain_resolve(&fx.all, "nope", &chain), -1);
    assert_null(chain);
    expect_error(VK_ERR_NOT_FOUND, "'nope'", NULL);
}

static void test_resolve_failed_rows(void **state)
{
    struct catalog_backups *chain = NULL;

    (void)state;
    add("w-full1", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    add("w-inc1", "web1", CATALOG_LEVEL_INC, F, "w-full1", 200);
    add("w-inc2", "web1", CATALOG_LEVEL_INC, C, "w-inc1", 300);
    add("w-inc3", "web1", CATALOG_LEVEL_INC, R, "w-full1", 400);
    /* A failed or running backup is not restorable... */
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-inc1", &chain), -1);
    expect_error(VK_ERR_INVALID, "'w-inc1'", "failed");
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-inc3", &chain), -1);
    expect_error(VK_ERR_INVALID, "'w-inc3'", "running");
    /* ...and cannot carry a chain. */
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-inc2", &chain), -1);
    assert_null(chain);
    expect_error(VK_ERR_CORRUPT, "'w-inc1'", "not committed");
}

static void test_resolve_broken_links(void **state)
{
    struct catalog_backups *chain = NULL;

    (void)state;
    add("w-full1", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    add("w-inc2", "web1", CATALOG_LEVEL_INC, C, "w-inc1", 300); /* w-inc1 pruned */
    add("w-inc3", "web1", CATALOG_LEVEL_INC, C, "w-inc2", 400);
    add("w-diff", "web1", CATALOG_LEVEL_DIFF, C, "w-inc3", 500); /* diff on an inc */
    add("w-orphan", "web1", CATALOG_LEVEL_INC, C, NULL, 600);
    add("w-copy", "web1", CATALOG_LEVEL_COPY, C, NULL, 700);
    add("w-oncopy", "web1", CATALOG_LEVEL_INC, C, "w-copy", 800);
    add("d-full", "db1", CATALOG_LEVEL_FULL, C, NULL, 100);
    add("w-cross", "web1", CATALOG_LEVEL_INC, C, "d-full", 900);
    add("w-loop1", "web1", CATALOG_LEVEL_INC, C, "w-loop2", 1000);
    add("w-loop2", "web1", CATALOG_LEVEL_INC, C, "w-loop1", 1100);

    /* The missing backup is named, two links down. */
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-inc3", &chain), -1);
    expect_error(VK_ERR_NOT_FOUND, "'w-inc1'", "missing");
    assert_non_null(strstr(vk_error_message(), "'w-inc3'"));
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-diff", &chain), -1);
    expect_error(VK_ERR_CORRUPT, "'w-diff'", "not a full");
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-orphan", &chain), -1);
    expect_error(VK_ERR_CORRUPT, "'w-orphan'", "no parent");
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-oncopy", &chain), -1);
    expect_error(VK_ERR_CORRUPT, "'w-copy'", "copy");
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-cross", &chain), -1);
    expect_error(VK_ERR_CORRUPT, "'d-full'", "another domain");
    assert_int_equal(catalog_chain_resolve(&fx.all, "w-loop2", &chain), -1);
    expect_error(VK_ERR_CORRUPT, "loop", NULL);
    assert_null(chain);
}

/* ---- latest and point in time ----------------------------------------- */

static void test_latest(void **state)
{
    const struct catalog_backup *b;

    (void)state;
    assert_null(catalog_chain_latest(&fx.all, "web1"));
    add_web1_history();
    add("w-full2", "web1", CATALOG_LEVEL_FULL, F, NULL, 700);
    add("w-inc9", "web1", CATALOG_LEVEL_INC, R, "w-inc3", 800);
    add("d-full", "db1", CATALOG_LEVEL_FULL, C, NULL, 900);
    b = catalog_chain_latest(&fx.all, "web1");
    assert_non_null(b);
    assert_string_equal(b->id, "w-copy1"); /* the failed and running rows do not count */
    b = catalog_chain_latest(&fx.all, "db1");
    assert_string_equal(b->id, "d-full");
    assert_null(catalog_chain_latest(&fx.all, "ghost"));
}

static void test_point_in_time(void **state)
{
    struct catalog_backups *chain = NULL;

    (void)state;
    add_web1_history();
    add("w-full2", "web1", CATALOG_LEVEL_FULL, C, NULL, 700);
    add("w-inc4", "web1", CATALOG_LEVEL_INC, F, "w-full2", 800);
    add("w-inc5", "web1", CATALOG_LEVEL_INC, C, "w-full2", 900);

    assert_int_equal(catalog_chain_at(&fx.all, "web1", 99, &chain), -1);
    assert_null(chain);
    expect_error(VK_ERR_NOT_FOUND, "'web1'", "1970-01-01T00:01:39Z");
    expect_chain(at("web1", 100), "w-full1", NULL);
    expect_chain(at("web1", 199), "w-full1", NULL);
    expect_chain(at("web1", 250), "w-full1", "w-inc1", NULL);
    expect_chain(at("web1", 350), "w-full1", "w-inc1", "w-inc2", NULL);
    expect_chain(at("web1", 400), "w-full1", "w-diff1", NULL);
    expect_chain(at("web1", 599), "w-full1", "w-diff1", "w-inc3", NULL);
    expect_chain(at("web1", 650), "w-copy1", NULL);
    expect_chain(at("web1", 700), "w-full2", NULL);
    /* The failed inc at 800 is skipped: 850 restores the full. */
    expect_chain(at("web1", 850), "w-full2", NULL);
    expect_chain(at("web1", INT64_MAX), "w-full2", "w-inc5", NULL);
}

static void test_point_in_time_broken(void **state)
{
    struct catalog_backups *chain = NULL;

    (void)state;
    add("w-full1", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    add("w-inc2", "web1", CATALOG_LEVEL_INC, C, "w-inc1", 300);
    /* The newest backup at the time has a broken chain: refuse, naming the
     * missing backup, rather than silently restoring something older. */
    assert_int_equal(catalog_chain_at(&fx.all, "web1", 350, &chain), -1);
    assert_null(chain);
    expect_error(VK_ERR_NOT_FOUND, "'w-inc1'", "missing");
    expect_chain(at("web1", 299), "w-full1", NULL);
}

/* Same-second backups order by id. */
static void test_ties(void **state)
{
    (void)state;
    add("w-20260101T000000Z", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    add("w-20260101T000000Z-2", "web1", CATALOG_LEVEL_INC, C, "w-20260101T000000Z", 100);
    assert_string_equal(catalog_chain_latest(&fx.all, "web1")->id, "w-20260101T000000Z-2");
    expect_chain(at("web1", 100), "w-20260101T000000Z", "w-20260101T000000Z-2", NULL);
}

/* ---- the current chain -------------------------------------------------- */

static void test_current_chain(void **state)
{
    (void)state;
    expect_chain(current("web1"), NULL);
    add("w-copy0", "web1", CATALOG_LEVEL_COPY, C, NULL, 50);
    expect_chain(current("web1"), NULL); /* a copy starts no chain */
    add_web1_history();
    add("w-inc-bad", "web1", CATALOG_LEVEL_INC, C, "w-gone", 550);
    add("w-inc-failed", "web1", CATALOG_LEVEL_INC, F, "w-inc3", 560);
    add("d-full", "db1", CATALOG_LEVEL_FULL, C, NULL, 150);
    add("d-inc", "db1", CATALOG_LEVEL_INC, C, "d-full", 250);
    expect_chain(current("web1"), "w-full1", "w-inc1", "w-inc2", "w-diff1", "w-inc3", NULL);
    expect_chain(current("db1"), "d-full", "d-inc", NULL);

    /* A new full starts a new chain; a failed full does not. */
    add("w-full2", "web1", CATALOG_LEVEL_FULL, F, NULL, 700);
    expect_chain(current("web1"), "w-full1", "w-inc1", "w-inc2", "w-diff1", "w-inc3", NULL);
    add("w-full3", "web1", CATALOG_LEVEL_FULL, C, NULL, 800);
    add("w-inc6", "web1", CATALOG_LEVEL_INC, C, "w-full3", 900);
    expect_chain(current("web1"), "w-full3", "w-inc6", NULL);
}

/* ---- what the next backup should be ---------------------------------- */

static void next_ok(const char *domain, enum catalog_level req, enum catalog_level level,
                    const char *parent)
{
    struct catalog_next next;

    if (catalog_chain_next(&fx.all, domain, req, &next) == -1)
        fail_msg("next: %s", vk_error_message());
    assert_int_equal(next.level, level);
    if (parent) {
        assert_non_null(next.parent);
        assert_string_equal(next.parent, parent);
        assert_string_equal(next.parent_checkpoint, parent); /* checkpoint == id here */
    } else {
        assert_null(next.parent);
        assert_null(next.parent_checkpoint);
    }
    assert_null(next.reason);
    catalog_next_clear(&next);
}

static void next_auto_full(const char *domain, const char *why)
{
    struct catalog_next next;

    assert_int_equal(catalog_chain_next(&fx.all, domain, CATALOG_LEVEL_AUTO, &next), 0);
    assert_int_equal(next.level, CATALOG_LEVEL_FULL);
    assert_null(next.parent);
    assert_non_null(next.reason);
    if (!strstr(next.reason, why))
        fail_msg("reason '%s' lacks '%s'", next.reason, why);
    catalog_next_clear(&next);
}

static void next_refused(const char *domain, enum catalog_level req, const char *why)
{
    struct catalog_next next;

    assert_int_equal(catalog_chain_next(&fx.all, domain, req, &next), -1);
    expect_error(VK_ERR_NOT_FOUND, domain, why);
}

static void test_next_empty(void **state)
{
    (void)state;
    next_auto_full("web1", "no committed full backup");
    next_refused("web1", CATALOG_LEVEL_INC, "no committed full");
    next_refused("web1", CATALOG_LEVEL_DIFF, "no committed full");
    next_ok("web1", CATALOG_LEVEL_FULL, CATALOG_LEVEL_FULL, NULL);
    next_ok("web1", CATALOG_LEVEL_COPY, CATALOG_LEVEL_COPY, NULL);
    /* Copies and failed fulls do not make a chain. */
    add("w-copy", "web1", CATALOG_LEVEL_COPY, C, NULL, 100);
    add("w-full", "web1", CATALOG_LEVEL_FULL, F, NULL, 200);
    add("w-run", "web1", CATALOG_LEVEL_FULL, R, NULL, 300);
    next_auto_full("web1", "no committed full backup");
    catalog_next_clear(NULL);
}

static void test_next_levels(void **state)
{
    (void)state;
    add("w-full1", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    next_ok("web1", CATALOG_LEVEL_AUTO, CATALOG_LEVEL_INC, "w-full1");
    next_ok("web1", CATALOG_LEVEL_INC, CATALOG_LEVEL_INC, "w-full1");
    next_ok("web1", CATALOG_LEVEL_DIFF, CATALOG_LEVEL_DIFF, "w-full1");
    add("w-inc1", "web1", CATALOG_LEVEL_INC, C, "w-full1", 200);
    next_ok("web1", CATALOG_LEVEL_AUTO, CATALOG_LEVEL_INC, "w-inc1");
    next_ok("web1", CATALOG_LEVEL_DIFF, CATALOG_LEVEL_DIFF, "w-full1");
    /* A failed inc leaves the chain where it was. */
    add("w-inc2", "web1", CATALOG_LEVEL_INC, F, "w-inc1", 300);
    next_ok("web1", CATALOG_LEVEL_AUTO, CATALOG_LEVEL_INC, "w-inc1");
    /* An inc after a diff builds on the diff; a copy changes nothing. */
    add("w-diff1", "web1", CATALOG_LEVEL_DIFF, C, "w-full1", 400);
    add("w-copy1", "web1", CATALOG_LEVEL_COPY, C, NULL, 500);
    next_ok("web1", CATALOG_LEVEL_AUTO, CATALOG_LEVEL_INC, "w-diff1");
    next_ok("web1", CATALOG_LEVEL_DIFF, CATALOG_LEVEL_DIFF, "w-full1");
    /* A failed full does not replace the chain's full. */
    add("w-full2", "web1", CATALOG_LEVEL_FULL, F, NULL, 600);
    next_ok("web1", CATALOG_LEVEL_DIFF, CATALOG_LEVEL_DIFF, "w-full1");
    next_ok("web1", CATALOG_LEVEL_AUTO, CATALOG_LEVEL_INC, "w-diff1");
    add("w-full3", "web1", CATALOG_LEVEL_FULL, C, NULL, 700);
    next_ok("web1", CATALOG_LEVEL_AUTO, CATALOG_LEVEL_INC, "w-full3");
    next_ok("web1", CATALOG_LEVEL_FULL, CATALOG_LEVEL_FULL, NULL);
}

static void test_next_broken_chain(void **state)
{
    (void)state;
    add("w-full1", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    add("w-inc2", "web1", CATALOG_LEVEL_INC, C, "w-inc1", 300);
    /* auto falls back to a full and says which backup is missing. */
    next_auto_full("web1", "'w-inc1'");
    next_refused("web1", CATALOG_LEVEL_INC, "'w-inc1'");
    /* A diff only needs the full. */
    next_ok("web1", CATALOG_LEVEL_DIFF, CATALOG_LEVEL_DIFF, "w-full1");

    /* A tip without a checkpoint (lost metadata) cannot be built on. */
    reset(NULL);
    add("w-full1", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    fx.items[0].checkpoint = NULL;
    next_auto_full("web1", "no checkpoint");
}

static void test_multiple_domains(void **state)
{
    (void)state;
    add("w-full1", "web1", CATALOG_LEVEL_FULL, C, NULL, 100);
    add("d-full1", "db1", CATALOG_LEVEL_FULL, C, NULL, 110);
    add("w-inc1", "web1", CATALOG_LEVEL_INC, C, "w-full1", 200);
    add("d-inc1", "db1", CATALOG_LEVEL_INC, F, "d-full1", 210);
    add("d-diff1", "db1", CATALOG_LEVEL_DIFF, C, "d-full1", 220);
    add("m-inc", "mail", CATALOG_LEVEL_INC, C, "m-gone", 230);

    next_ok("web1", CATALOG_LEVEL_AUTO, CATALOG_LEVEL_INC, "w-inc1");
    next_ok("db1", CATALOG_LEVEL_AUTO, CATALOG_LEVEL_INC, "d-diff1");
    next_auto_full("mail", "'m-gone'");
    next_auto_full("other", "no committed full");
    expect_chain(at("web1", 215), "w-full1", "w-inc1", NULL);
    expect_chain(at("db1", 215), "d-full1", NULL);
    expect_chain(at("db1", 225), "d-full1", "d-diff1", NULL);
    expect_chain(current("web1"), "w-full1", "w-inc1", NULL);
    expect_chain(current("db1"), "d-full1", "d-diff1", NULL);
    assert_string_equal(catalog_chain_latest(&fx.all, "db1")->id, "d-diff1");
}

/* ---- through a real catalog file -------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void store(struct catalog *cat, const char *id, enum catalog_level level, const char *parent,
                  int64_t started, enum catalog_status final)
{
    struct catalog_backup b = {.id = (char *)id,
                               .domain = (char *)"web1",
                               .level = level,
                               .status = CATALOG_STATUS_RUNNING,
                               .checkpoint = (char *)id,
                               .parent = (char *)parent,
                               .started = started};

    assert_int_equal(catalog_backup_insert(cat, &b), 0);
    assert_int_equal(catalog_backup_set_status(cat, id, final, final == F ? "boom" : NULL), 0);
}

static void test_chain_from_catalog(void **state)
{
    char dir[] = "/tmp/test-catalog-chain-XXXXXX";
    CLEANUP_FREE char *path = NULL;
    struct catalog_backups *all = NULL, *chain = NULL;
    struct catalog_next next;
    struct catalog *cat;

    (void)state;
    assert_non_null(mkdtemp(dir));
    path = vk_asprintf("%s/catalog.db", dir);
    cat = catalog_open(path, 0);
    assert_non_null(cat);
    store(cat, "web1-1", CATALOG_LEVEL_FULL, NULL, 100, C);
    store(cat, "web1-2", CATALOG_LEVEL_INC, "web1-1", 200, C);
    store(cat, "web1-3", CATALOG_LEVEL_INC, "web1-2", 300, F);
    store(cat, "web1-4", CATALOG_LEVEL_INC, "web1-2", 400, C);
    assert_int_equal(catalog_backup_list(cat, "web1", 0, &all), 0);
    assert_int_equal(catalog_chain_resolve(all, "web1-4", &chain), 0);
    expect_chain(chain, "web1-1", "web1-2", "web1-4", NULL);
    assert_int_equal(catalog_chain_next(all, "web1", CATALOG_LEVEL_AUTO, &next), 0);
    assert_int_equal(next.level, CATALOG_LEVEL_INC);
    assert_string_equal(next.parent, "web1-4");
    catalog_next_clear(&next);
    catalog_backups_free(all);

    /* Prune the middle of the chain: the catalog now reports it broken. */
    assert_int_equal(catalog_backup_delete(cat, "web1-3", 0), 0);
    assert_int_equal(catalog_backup_delete(cat, "web1-4", 0), 0);
    store(cat, "web1-5", CATALOG_LEVEL_INC, "web1-4", 500, C);
    assert_int_equal(catalog_backup_list(cat, "web1", CATALOG_LIST_COMMITTED, &all), 0);
    assert_int_equal(catalog_chain_resolve(all, "web1-5", &chain), -1);
    expect_error(VK_ERR_NOT_FOUND, "'web1-4'", "missing");
    assert_int_equal(catalog_chain_next(all, "web1", CATALOG_LEVEL_AUTO, &next), 0);
    assert_int_equal(next.level, CATALOG_LEVEL_FULL);
    assert_non_null(strstr(next.reason, "'web1-4'"));
    catalog_next_clear(&next);
    catalog_backups_free(all);
    catalog_close(cat);
    assert_int_equal(nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_resolve_levels, reset),
        cmocka_unit_test_setup(test_resolve_failed_rows, reset),
        cmocka_unit_test_setup(test_resolve_broken_links, reset),
        cmocka_unit_test_setup(test_latest, reset),
        cmocka_unit_test_setup(test_point_in_time, reset),
        cmocka_unit_test_setup(test_point_in_time_broken, reset),
        cmocka_unit_test_setup(test_ties, reset),
        cmocka_unit_test_setup(test_current_chain, reset),
        cmocka_unit_test_setup(test_next_empty, reset),
        cmocka_unit_test_setup(test_next_levels, reset),
        cmocka_unit_test_setup(test_next_broken_chain, reset),
        cmocka_unit_test_setup(test_multiple_domains, reset),
        cmocka_unit_test_setup(test_chain_from_catalog, reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
