/* virtkeep - tests of /metrics rendering (src/metrics.c): the exact text
 * for a fixture catalog and status report, label escaping, and the
 * failure reasons. */
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
#include "common/util.h"
#include "src/api/api.h"

static char dir[64];

static void backup_add(struct catalog *cat, const char *id, enum catalog_level level,
                       enum catalog_status status, int64_t started, int64_t finished,
                       uint64_t stored, const char *error)
{
    struct catalog_backup b = {
        .id = (char *)id,
        .domain = "web1",
        .level = level,
        .status = status,
        .checkpoint = (char *)id,
        .error = (char *)error,
        .started = started,
        .finished = finished,
        .bytes_stored = stored,
    };

    assert_int_equal(catalog_backup_insert(cat, &b), 0);
}

static void job_add(struct catalog *cat, const char *kind, const char *backup,
                    enum catalog_job_state state, double elapsed, uint64_t bytes, const char *error)
{
    struct catalog_job j = {
        .kind = (char *)kind,
        .domain = "web1",
        .backup_id = (char *)backup,
        .state = state,
        .started = 5000,
        .finished = state >= CATALOG_JOB_SUCCEEDED ? 5100 : 0,
        .progress_done = bytes,
        .elapsed_seconds = elapsed,
        .error = (char *)error,
    };

    assert_true(catalog_job_insert(cat, &j) > 0);
}

static struct catalog *fixture_catalog(void)
{
    char *path = vk_asprintf("%s/catalog.db", dir);
    struct catalog *cat = catalog_open(path, 0);

    free(path);
    assert_non_null(cat);
    backup_add(cat, "web1-a", CATALOG_LEVEL_FULL, CATALOG_STATUS_COMMITTED, 100, 160, 1000, NULL);
    backup_add(cat, "web1-b", CATALOG_LEVEL_INC, CATALOG_STATUS_COMMITTED, 1000, 1010, 50, NULL);
    backup_add(cat, "web1-c", CATALOG_LEVEL_INC, CATALOG_STATUS_FAILED, 2000, 2005, 7,
               "cannot write to target 'main': No space left on device");
    backup_add(cat, "web1-d", CATALOG_LEVEL_INC, CATALOG_STATUS_RUNNING, 3000, 0, 9, NULL);
    job_add(cat, "copy", "web1-a", CATALOG_JOB_SUCCEEDED, 4.5, 1000, NULL);
    job_add(cat, "drill", NULL, CATALOG_JOB_FAILED, 3, 0,
            "cannot open target 'offsite': Connection refused");
    job_add(cat, "prune", NULL, CATALOG_JOB_RUNNING, 0, 0, NULL);
    /* The daemon's own row for a backup: the backups table counts it. */
    job_add(cat, "backup", "web1-b", CATALOG_JOB_SUCCEEDED, 10, 50, NULL);
    return cat;
}

static const char expected[] =
    "# HELP virtkeep_last_success_timestamp_seconds Start time of the latest good backup (the "
    "point in time it holds).\n"
    "# TYPE virtkeep_last_success_timestamp_seconds gauge\n"
    "virtkeep_last_success_timestamp_seconds{domain=\"web1\"} 1000\n"
    "# HELP virtkeep_rpo_exposure_seconds Data that would be lost now: seconds since the latest "
    "good backup.\n"
    "# TYPE virtkeep_rpo_exposure_seconds gauge\n"
    "virtkeep_rpo_exposure_seconds{domain=\"web1\"} 500\n"
    "# HELP virtkeep_rpo_objective_seconds The recovery point objective.\n"
    "# TYPE virtkeep_rpo_objective_seconds gauge\n"
    "virtkeep_rpo_objective_seconds{domain=\"web1\"} 3600\n"
    "# HELP virtkeep_rto_estimate_seconds Estimated time to restore the current chain.\n"
    "# TYPE virtkeep_rto_estimate_seconds gauge\n"
    "virtkeep_rto_estimate_seconds{domain=\"web1\"} 12.5\n"
    "# HELP virtkeep_rto_objective_seconds The recovery time objective.\n"
    "# TYPE virtkeep_rto_objective_seconds gauge\n"
    "virtkeep_rto_objective_seconds{domain=\"web1\"} 1800\n"
    "# HELP virtkeep_objective_violated 1 when the objective is not met now, else 0.\n"
    "# TYPE virtkeep_objective_violated gauge\n"
    "virtkeep_objective_violated{domain=\"web1\",objective=\"rpo\"} 0\n"
    "virtkeep_objective_violated{domain=\"web1\",objective=\"rto\"} 1\n"
    "# HELP virtkeep_chain_length Backups in the current chain.\n"
    "# TYPE virtkeep_chain_length gauge\n"
    "virtkeep_chain_length{domain=\"web1\"} 2\n"
    "virtkeep_chain_length{domain=\"x\\\"y\\\\z\\nw\"} 0\n"
    "# HELP virtkeep_consecutive_failures Failed backups since the latest good one.\n"
    "# TYPE virtkeep_consecutive_failures gauge\n"
    "virtkeep_consecutive_failures{domain=\"web1\"} 1\n"
    "virtkeep_consecutive_failures{domain=\"x\\\"y\\\\z\\nw\"} 0\n"
    "# HELP virtkeep_last_job_duration_seconds Duration of the latest finished job of this "
    "domain, kind and level.\n"
    "# TYPE virtkeep_last_job_duration_seconds gauge\n"
    "virtkeep_last_job_duration_seconds{domain=\"web1\",kind=\"backup\",level=\"full\"} 60\n"
    "virtkeep_last_job_duration_seconds{domain=\"web1\",kind=\"backup\",level=\"inc\"} 10\n"
    "virtkeep_last_job_duration_seconds{domain=\"web1\",kind=\"copy\",level=\"full\"} 4.5\n"
    "# HELP virtkeep_last_job_bytes Bytes stored or moved by the latest finished job of this "
    "domain, kind and level.\n"
    "# TYPE virtkeep_last_job_bytes gauge\n"
    "virtkeep_last_job_bytes{domain=\"web1\",kind=\"backup\",level=\"full\"} 1000\n"
    "virtkeep_last_job_bytes{domain=\"web1\",kind=\"backup\",level=\"inc\"} 50\n"
    "virtkeep_last_job_bytes{domain=\"web1\",kind=\"copy\",level=\"full\"} 1000\n"
    "# HELP virtkeep_jobs_total Finished jobs recorded in the catalog.\n"
    "# TYPE virtkeep_jobs_total counter\n"
    "virtkeep_jobs_total{domain=\"web1\",kind=\"backup\",outcome=\"failed\"} 1\n"
    "virtkeep_jobs_total{domain=\"web1\",kind=\"backup\",outcome=\"succeeded\"} 2\n"
    "virtkeep_jobs_total{domain=\"web1\",kind=\"copy\",outcome=\"succeeded\"} 1\n"
    "virtkeep_jobs_total{domain=\"web1\",kind=\"drill\",outcome=\"failed\"} 1\n"
    "# HELP virtkeep_job_bytes_total Bytes stored or moved by the succeeded jobs recorded in the "
    "catalog.\n"
    "# TYPE virtkeep_job_bytes_total counter\n"
    "virtkeep_job_bytes_total{domain=\"web1\",kind=\"backup\"} 1050\n"
    "virtkeep_job_bytes_total{domain=\"web1\",kind=\"copy\"} 1000\n"
    "# HELP virtkeep_job_failures_total Failed jobs recorded in the catalog, by reason.\n"
    "# TYPE virtkeep_job_failures_total counter\n"
    "virtkeep_job_failures_total{domain=\"web1\",kind=\"backup\",reason=\"no-space\"} 1\n"
    "virtkeep_job_failures_total{domain=\"web1\",kind=\"drill\",reason=\"network\"} 1\n"
    "# HELP virtkeep_jobs_running Jobs the daemon runs now.\n"
    "# TYPE virtkeep_jobs_running gauge\n"
    "virtkeep_jobs_running 3\n";

static void test_render_exact(void **state)
{
    struct status_domain d[2] = {
        {.domain = "web1",
         .policy = "gold",
         .last_backup = "web1-b",
         .last_success = 1000,
         .exposure = 500,
         .rpo = 3600,
         .rto_estimate = 12.5,
         .rto = 1800,
         .chain_length = 2,
         .failures = 1,
         .rto_violated = true},
        {.domain = "x\"y\\z\nw", .exposure = -1, .rto_estimate = -1},
    };
    struct status_report st = {.now = 1500, .count = 2, .items = d};
    struct catalog *cat = fixture_catalog();
    char *text = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(metrics_render(cat, &st, 3, &text, &len), 0);
    catalog_close(cat);
    assert_int_equal(len, strlen(text));
    assert_string_equal(text, expected);
    free(text);
}

/* Hosts that share the catalog: their heartbeats, whether they are up,
 * their jobs, and where each domain last ran. */
static void test_hosts(void **state)
{
    struct status_domain d[] = {
        {.domain = "web1", .exposure = -1, .rto_estimate = -1, .host = "alpha"}};
    struct status_report st = {.now = 1100, .count = 1, .items = d};
    struct catalog *cat;
    char *text = NULL, path[96];
    size_t len = 0;

    (void)state;
    snprintf(path, sizeof path, "%s/hosts.db", dir);
    setenv("VIRTKEEP_HOST", "alpha", 1);
    cat = catalog_open(path, 0);
    assert_non_null(cat);
    assert_int_equal(catalog_host_register(cat, "qemu:///system", "1.2", 120, 1000), 0);
    catalog_close(cat);
    setenv("VIRTKEEP_HOST", "beta", 1);
    cat = catalog_open(path, 0);
    unsetenv("VIRTKEEP_HOST");
    assert_non_null(cat);
    assert_int_equal(catalog_host_register(cat, NULL, "1.2", 30, 1050), 0);
    assert_int_equal(metrics_render(cat, &st, 0, &text, &len), 0);
    catalog_close(cat);
    assert_non_null(strstr(text, "virtkeep_host_heartbeat_timestamp_seconds{host=\"alpha\","
                                 "version=\"1.2\"} 1000\n"));
    assert_non_null(strstr(text, "virtkeep_host_up{host=\"alpha\"} 1\n"));
    assert_non_null(strstr(text, "virtkeep_host_up{host=\"beta\"} 0\n")); /* 50 s > 30 s */
    assert_non_null(strstr(text, "virtkeep_host_jobs_running{host=\"beta\"} 0\n"));
    assert_non_null(strstr(text, "virtkeep_domain_host{domain=\"web1\",host=\"alpha\"} 1\n"));
    free(text);
}

static void test_escape(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(fp);
    metrics_label_escape(fp, "a\\b\"c\nd\te");
    metrics_label_escape(fp, NULL);
    assert_int_equal(fclose(fp), 0);
    assert_string_equal(buf, "a\\\\b\\\"c\\nd\te");
    free(buf);
}

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(metrics_failure_reason(NULL), "other");
    assert_string_equal(metrics_failure_reason("write: No space left on device"), "no-space");
    assert_string_equal(metrics_failure_reason("connect: Connection refused"), "network");
    assert_string_equal(metrics_failure_reason("interrupted: the process that ran it (pid 7) is "
                                               "gone"),
                        "interrupted");
    assert_string_equal(metrics_failure_reason("host key mismatch for vault"), "auth");
    assert_string_equal(metrics_failure_reason("open: Permission denied"), "permission");
    assert_string_equal(metrics_failure_reason("chunk 3: sha256 checksum mismatch"), "corrupt");
    assert_string_equal(metrics_failure_reason("something odd"), "other");
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/vk-metrics-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char *cmd = vk_asprintf("rm -rf '%s'", dir);

    (void)state;
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_reasons),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
