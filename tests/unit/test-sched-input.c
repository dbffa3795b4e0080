/* Unit tests for src/sched-input.c: a domain's scheduler input loaded from
 * a temporary SQLite catalog and a configuration in memory. */
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
#include "common/util.h"
#include "src/plan/plan.h"
#include "src/sched/sched.h"

#define MB (1000.0 * 1000.0)

static const char conf_text[] = "[target fast]\n"
                                "url = file:///nonexistent/fast\n"
                                "[target slow]\n"
                                "url = file:///nonexistent/slow\n"
                                "[policy gold]\n"
                                "rpo = 1h\n"
                                "rto = 30m\n"
                                "targets = fast, slow\n"
                                "[domain web1]\n"
                                "policy = gold\n"
                                "[domain web2]\n"
                                "policy = gold\n"
                                "[domain bare]\n";

struct fx {
    char dir[256], path[300];
    struct catalog *cat;
    struct config *cfg;
    int64_t t0;
};

static void backup_add(struct fx *f, const char *domain, int64_t started, enum catalog_level level,
                       const char *parent, enum catalog_status status, char **id_out)
{
    char *id = catalog_backup_id_make(domain, started);
    struct catalog_backup b = {.id = id,
                               .domain = (char *)domain,
                               .level = level,
                               .status = status,
                               .checkpoint = id,
                               .parent = (char *)parent,
                               .started = started,
                               .finished = started + 60,
                               .bytes_stored = 1000000,
                               .pid = 1};

    assert_non_null(id);
    assert_int_equal(catalog_backup_insert(f->cat, &b), 0);
    *id_out = id;
}

/* An archive and the manifest of backup ID on TARGET, as a backup or a
 * copy records them. */
static void location_add(struct fx *f, const char *id, const char *target)
{
    char key[512], mkey[512];
    struct catalog_location l = {
        .backup_id = (char *)id, .disk = "vda", .target = (char *)target, .key = key, .size = 1};
    struct catalog_location m = {
        .backup_id = (char *)id, .disk = NULL, .target = (char *)target, .key = mkey, .size = 1};

    snprintf(key, sizeof key, "x/%s/vda.tar", id);
    snprintf(mkey, sizeof mkey, "x/%s/manifest.json", id);
    assert_int_equal(catalog_archive_add_location(f->cat, &l), 0);
    assert_int_equal(catalog_archive_add_location(f->cat, &m), 0);
}

static int setup(void **state)
{
    struct fx *f = vk_calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "%s/vk-schedin-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/catalog.db", f->dir);
    assert_non_null((f->cat = catalog_open(f->path, 0)));
    f->cfg = config_parse_buffer("test.conf", conf_text, strlen(conf_text), CONFIG_NO_FILE_CHECKS);
    assert_non_null(f->cfg);
    f->t0 = (int64_t)time(NULL) - 7200;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    catalog_close(f->cat);
    config_free(f->cfg);
    unlink(f->path);
    {
        char p[320];
        snprintf(p, sizeof p, "%s-wal", f->path);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", f->path);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A chain whose full has a fast copy and whose incremental lives only on
 * the slow target: the model is the slow target's measured rate; history,
 * locations and jobs are the domain's own. */
static void test_chain_slowest(void **state)
{
    struct fx *f = *state;
    struct sched_input_owned o;
    struct catalog_job job = {.kind = "backup", .domain = "web1", .target = "fast", .pid = 1};
    struct sched_job next = {0};
    char *full, *inc, *other, *failed;

    backup_add(f, "web1", f->t0, CATALOG_LEVEL_FULL, NULL, CATALOG_STATUS_COMMITTED, &full);
    backup_add(f, "web1", f->t0 + 600, CATALOG_LEVEL_INC, full, CATALOG_STATUS_COMMITTED, &inc);
    backup_add(f, "web1", f->t0 + 900, CATALOG_LEVEL_INC, inc, CATALOG_STATUS_FAILED, &failed);
    backup_add(f, "web2", f->t0, CATALOG_LEVEL_FULL, NULL, CATALOG_STATUS_COMMITTED, &other);
    location_add(f, full, "fast");
    location_add(f, full, "slow");
    location_add(f, inc, "slow");
    location_add(f, other, "fast");
    assert_int_equal(catalog_throughput_record(f->cat, "fast", CATALOG_DIR_READ, 500 * MB, 1, 0),
                     0);
    assert_int_equal(catalog_throughput_record(f->cat, "slow", CATALOG_DIR_READ, 20 * MB, 1, 0), 0);
    assert_true(catalog_job_insert(f->cat, &job) > 0);
    job.domain = "web2";
    assert_true(catalog_job_insert(f->cat, &job) > 0);

    assert_int_equal(sched_input_load(f->cat, f->cfg, "web1", &o), 0);
    assert_string_equal(o.in.domain, "web1");
    assert_non_null(o.in.policy);
    assert_string_equal(o.in.policy->name, "gold");
    assert_int_equal(o.history->count, 3);
    for (size_t i = 0; i < o.history->count; i++)
        assert_string_equal(o.history->items[i].domain, "web1");
    assert_int_equal(o.locations->count, 6);
    for (size_t i = 0; i < o.locations->count; i++)
        assert_true(strcmp(o.locations->items[i].backup_id, other) != 0);
    assert_int_equal(o.jobs->count, 1);
    assert_string_equal(o.jobs->items[0].domain, "web1");
    assert_non_null(o.restore_target);
    assert_string_equal(o.restore_target, "slow");
    assert_false(o.restore_guess);
    assert_true(o.in.restore.read_rate > 19 * MB && o.in.restore.read_rate < 21 * MB);
    assert_ptr_equal(o.in.history, o.history);
    assert_ptr_equal(o.in.locations, o.locations);
    assert_ptr_equal(o.in.jobs, o.jobs);

    /* The input drives the scheduler: an incremental on the chain's tip. */
    assert_int_equal(sched_next(&o.in, f->t0 + 1000, &next), 0);
    assert_int_equal(next.kind, SCHED_INC);
    assert_string_equal(next.parent, inc);
    sched_job_clear(&next);
    sched_input_owned_clear(&o);
    assert_null(o.history);
    sched_input_owned_clear(&o);

    /* web2: its full is on the fast target only. */
    assert_int_equal(sched_input_load(f->cat, f->cfg, "web2", &o), 0);
    assert_string_equal(o.restore_target, "fast");
    assert_true(o.in.restore.read_rate > 499 * MB);
    sched_input_owned_clear(&o);
    free(full);
    free(inc);
    free(other);
    free(failed);
}

/* No chain: the primary target, its rate a guess without measurements. */
static void test_no_chain_guess(void **state)
{
    struct fx *f = *state;
    struct sched_input_owned o;
    struct sched_job next = {0};

    assert_int_equal(sched_input_load(f->cat, f->cfg, "web1", &o), 0);
    assert_int_equal(o.history->count, 0);
    assert_int_equal(o.locations->count, 0);
    assert_string_equal(o.restore_target, "fast");
    assert_true(o.restore_guess);
    assert_true(o.in.restore.read_rate == READER_DEFAULT_READ_RATE);
    assert_int_equal(sched_next(&o.in, f->t0, &next), 0);
    assert_int_equal(next.kind, SCHED_FULL);
    assert_string_equal(next.target, "fast");
    sched_job_clear(&next);
    sched_input_owned_clear(&o);
}

/* A domain without a policy, and one not in the configuration at all. */
static void test_no_policy(void **state)
{
    struct fx *f = *state;
    struct sched_input_owned o;

    assert_int_equal(sched_input_load(f->cat, f->cfg, "bare", &o), 0);
    assert_null(o.in.policy);
    assert_null(o.restore_target);
    assert_true(o.in.restore.read_rate == 0);
    sched_input_owned_clear(&o);
    assert_int_equal(sched_input_load(f->cat, NULL, "unknown", &o), 0);
    assert_null(o.in.policy);
    assert_non_null(o.in.history);
    sched_input_owned_clear(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_slowest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_chain_guess, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_policy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
