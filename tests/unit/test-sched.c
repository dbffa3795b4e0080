/* Unit tests for the scheduler core (src/sched.c), with a simulated clock:
 * each simulation runs days or weeks of backups in milliseconds, keeping
 * the history the scheduler reads exactly as the catalog would. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/sched/sched.h"

#define MIN 60
#define HOUR 3600
#define DAY 86400
#define T0 1795996800 /* 2026-11-30T00:00:00Z, a Monday */

/* One simulated domain: its history, locations and jobs, as the catalog
 * lists them (backups oldest first, jobs newest first). */
struct sim {
    char *domain;
    struct catalog_backups h;
    struct catalog_locations locs;
    struct catalog_jobs jobs;
    struct config_policy pol;
    struct sched_input in;
    unsigned int seq;
};

static void sim_init(struct sim *s, const char *domain)
{
    memset(s, 0, sizeof *s);
    s->domain = vk_strdup(domain);
    s->in.domain = s->domain;
    s->in.policy = &s->pol;
    s->in.history = &s->h;
    s->in.locations = &s->locs;
    s->in.jobs = &s->jobs;
}

static void sim_free(struct sim *s)
{
    for (size_t i = 0; i < s->h.count; i++) {
        free(s->h.items[i].id);
        free(s->h.items[i].domain);
        free(s->h.items[i].parent);
        free(s->h.items[i].checkpoint);
    }
    free(s->h.items);
    for (size_t i = 0; i < s->locs.count; i++) {
        free(s->locs.items[i].backup_id);
        free(s->locs.items[i].target);
    }
    free(s->locs.items);
    for (size_t i = 0; i < s->jobs.count; i++) {
        free(s->jobs.items[i].domain);
        free(s->jobs.items[i].target);
    }
    free(s->jobs.items);
    free(s->domain);
}

static struct catalog_backup *sim_backup(struct sim *s, enum sched_kind kind, const char *parent,
                                         int64_t start, int64_t duration, uint64_t bytes,
                                         enum catalog_status status)
{
    struct catalog_backup *b;

    s->h.items = vk_realloc_array(s->h.items, s->h.count + 1, sizeof *s->h.items);
    assert_non_null(s->h.items);
    b = &s->h.items[s->h.count++];
    memset(b, 0, sizeof *b);
    b->id = vk_asprintf("%s-%06u", s->domain, s->seq++);
    b->domain = vk_strdup(s->domain);
    b->level = kind == SCHED_FULL ? CATALOG_LEVEL_FULL : CATALOG_LEVEL_INC;
    b->parent = kind == SCHED_INC ? vk_strdup(parent) : NULL;
    b->checkpoint = vk_strdup(b->id);
    b->status = status;
    b->started = start;
    b->finished = status == CATALOG_STATUS_RUNNING ? 0 : start + duration;
    b->bytes_stored = bytes;
    if (status == CATALOG_STATUS_COMMITTED && s->pol.targets) {
        s->locs.items = vk_realloc_array(s->locs.items, s->locs.count + 1, sizeof *s->locs.items);
        assert_non_null(s->locs.items);
        s->locs.items[s->locs.count++] = (struct catalog_location){
            .backup_id = vk_strdup(b->id), .target = vk_strdup(s->pol.targets[0])};
    }
    return b;
}

/* A copy job (newest first in the list) and, when it worked, the copy. */
static void sim_copy(struct sim *s, const struct sched_job *job, int64_t start, int64_t end,
                     bool ok)
{
    s->jobs.items = vk_realloc_array(s->jobs.items, s->jobs.count + 1, sizeof *s->jobs.items);
    assert_non_null(s->jobs.items);
    memmove(&s->jobs.items[1], &s->jobs.items[0], s->jobs.count * sizeof *s->jobs.items);
    s->jobs.count++;
    s->jobs.items[0] = (struct catalog_job){
        .kind = (char *)"copy",
        .domain = vk_strdup(s->domain),
        .target = vk_strdup(job->target),
        .state = ok ? CATALOG_JOB_SUCCEEDED : CATALOG_JOB_FAILED,
        .started = start,
        .finished = end,
    };
    if (!ok)
        return;
    s->locs.items = vk_realloc_array(s->locs.items, s->locs.count + 1, sizeof *s->locs.items);
    assert_non_null(s->locs.items);
    s->locs.items[s->locs.count++] = (struct catalog_location){
        .backup_id = vk_strdup(job->backup_id), .target = vk_strdup(job->target)};
}

static const struct catalog_backup *sim_last(const struct sim *s)
{
    return catalog_chain_latest(&s->h, s->domain);
}

/* How long the simulated backups take: fulls 20 min, incs 2 min, with a
 * deterministic wobble of a few percent. */
static int64_t sim_duration(const struct sim *s, enum sched_kind kind)
{
    int64_t base = kind == SCHED_FULL ? 20 * MIN : 2 * MIN;

    return base + (int64_t)((s->seq * 7919u) % 5) * base / 100;
}

/* Run the next backup job, successfully.  Returns the job's kind and sets
 * *START and *END. */
static enum sched_kind sim_step(struct sim *s, int64_t *now, struct sched_job *job)
{
    int64_t start, dur;
    enum sched_kind kind;

    assert_int_equal(sched_next(&s->in, *now, job), 0);
    assert_true(job->kind == SCHED_FULL || job->kind == SCHED_INC);
    assert_non_null(job->reason);
    start = job->due > *now ? job->due : *now;
    dur = sim_duration(s, job->kind);
    sim_backup(s, job->kind, job->parent, start, dur,
               job->kind == SCHED_FULL ? 600000000ull : 50000000ull, CATALOG_STATUS_COMMITTED);
    *now = start + dur;
    kind = job->kind;
    return kind;
}

/* ---- pure helpers ----------------------------------------------------- */

static void test_helpers(void **state)
{
    struct config_window night = {.set = true, .start = 22 * 60, .end = 6 * 60};
    struct config_window early = {.set = true, .start = 60, .end = 3 * 60};
    struct sim s;
    struct sched_restore_model m = {.read_rate = 1e6, .overhead_seconds = 30};
    struct catalog_backups chain;

    (void)state;
    assert_int_equal(sched_margin(3600), 360);
    assert_int_equal(sched_margin(20), 2);
    assert_int_equal(sched_margin(7 * DAY), SCHED_MARGIN_MAX);
    /* Backoff doubles from the base, up to RPO/4, with a jitter < 1/8. */
    for (unsigned int f = 1; f < 12; f++) {
        int64_t w = sched_backoff(f, HOUR, "web1"), ideal = 60LL << (f - 1);
        if (ideal > 900)
            ideal = 900;
        assert_in_range(w, ideal, ideal + ideal / 8);
        assert_int_equal(w, sched_backoff(f, HOUR, "web1")); /* deterministic */
    }
    assert_in_range(sched_backoff(30, 30 * DAY, "x"), SCHED_RETRY_MAX, SCHED_RETRY_MAX * 9 / 8);
    /* At most min(RPO/4, 1 hour) plus the jitter, as virtkeepd(8) says:
     * under 60 s for an RPO under 4 minutes, and at least a second. */
    assert_int_equal(sched_backoff(5, 20, "x"), 5);
    assert_int_equal(sched_backoff(1, 15, "x"), 3);
    assert_int_equal(sched_backoff(1, 1, "x"), 1);
    for (uint64_t rpo = 1; rpo < 40 * DAY; rpo = rpo * 3 / 2 + 1)
        for (unsigned int f = 1; f < 40; f++) {
            int64_t cap = (int64_t)(rpo / 4 < SCHED_RETRY_MAX ? rpo / 4 : SCHED_RETRY_MAX);
            int64_t w = sched_backoff(f, rpo, "web1");
            if (cap < 1)
                cap = 1;
            if (w < 1 || w > cap + cap / 8)
                fail_msg("backoff after %u failures with rpo %llus: %llds (cap %llds)", f,
                         (unsigned long long)rpo, (long long)w, (long long)cap);
        }
    /* The retry time: the backoff, but by LATEST when the failure ended
     * before it (a failure after LATEST loses the RPO anyway: backoff). */
    assert_int_equal(sched_retry_at(1, T0, 0, HOUR, "x"), T0 + sched_backoff(1, HOUR, "x"));
    assert_int_equal(sched_retry_at(1, T0, T0 + HOUR, HOUR, "x"), T0 + sched_backoff(1, HOUR, "x"));
    assert_int_equal(sched_retry_at(1, T0, T0 + 10, HOUR, "x"), T0 + 10);
    assert_int_equal(sched_retry_at(3, T0, T0, HOUR, "x"), T0);
    assert_int_equal(sched_retry_at(1, T0 + 11, T0 + 10, HOUR, "x"),
                     T0 + 11 + sched_backoff(1, HOUR, "x"));
    assert_int_equal(sched_jitter("web1", 0), 0);
    assert_true(sched_jitter("web1", 1000) < 1000);
    assert_int_not_equal(sched_jitter("web1", 1000000), sched_jitter("web2", 1000000));

    /* Windows: [start, end), wrapping past midnight. */
    assert_true(sched_window_contains(NULL, T0));
    assert_true(sched_window_contains(&night, T0 + 22 * HOUR));
    assert_true(sched_window_contains(&night, T0 + 5 * HOUR + 59 * MIN));
    assert_false(sched_window_contains(&night, T0 + 6 * HOUR));
    assert_false(sched_window_contains(&night, T0 + 21 * HOUR + 59 * MIN));
    assert_int_equal(sched_window_next(&night, T0 + 12 * HOUR), T0 + 22 * HOUR);
    assert_int_equal(sched_window_next(&night, T0 + 3 * HOUR), T0 + 3 * HOUR);
    assert_int_equal(sched_window_next(&early, T0 + 3 * HOUR), T0 + DAY + HOUR);
    assert_int_equal(sched_window_next(&early, T0 + 30), T0 + HOUR);
    assert_false(sched_window_contains(&early, T0 + 3 * HOUR));

    /* Expected durations: the mean of the last 5 of the level, then of any
     * level, then the default. */
    sim_init(&s, "web1");
    assert_true(sched_expected_duration(&s.h, "web1", CATALOG_LEVEL_INC, 0) ==
                SCHED_DEFAULT_DURATION);
    assert_true(sched_expected_duration(&s.h, "web1", CATALOG_LEVEL_INC, 42) == 42);
    sim_backup(&s, SCHED_FULL, NULL, T0, 1000, 100, CATALOG_STATUS_COMMITTED);
    assert_true(sched_expected_duration(&s.h, "web1", CATALOG_LEVEL_INC, 0) == 1000);
    for (int i = 0; i < 7; i++)
        sim_backup(&s, SCHED_INC, s.h.items[s.h.count - 1].id, T0 + (i + 1) * HOUR, 10 * (i + 1),
                   10, CATALOG_STATUS_COMMITTED);
    sim_backup(&s, SCHED_INC, NULL, T0 + 9 * HOUR, 5000, 10, CATALOG_STATUS_FAILED);
    assert_true(sched_expected_duration(&s.h, "web1", CATALOG_LEVEL_INC, 0) == 50); /* 30..70 */
    assert_true(sched_expected_duration(&s.h, "web1", CATALOG_LEVEL_FULL, 0) == 1000);
    assert_true(sched_expected_duration(&s.h, "db1", CATALOG_LEVEL_FULL, 7) == 7);

    /* Restore estimate: bytes / rate + overhead; unknown rate: -1. */
    chain = (struct catalog_backups){.count = 2, .items = s.h.items};
    assert_true(sched_restore_estimate(&chain, 0, &m) == 110.0 / 1e6 + 30);
    assert_true(sched_restore_estimate(&chain, 2000000, &m) == 2000110.0 / 1e6 + 30);
    m.read_rate = 0;
    assert_true(sched_restore_estimate(&chain, 0, &m) < 0);
    assert_string_equal(sched_kind_name(SCHED_COPY), "copy");
    sim_free(&s);
}

/* ---- RPO -------------------------------------------------------------- */

/* Three weeks of successful backups: the data at risk never exceeds the
 * RPO, and backups are not taken much more often than needed. */
static void test_rpo_never_exceeded(void **state)
{
    char *targets[] = {(char *)"main", NULL};
    struct sim s;
    int64_t now = T0, worst = 0;
    unsigned int n = 0, fulls = 0;

    (void)state;
    sim_init(&s, "web1");
    s.pol.rpo = HOUR;
    s.pol.full_every = DAY;
    s.pol.targets = targets;
    while (now < T0 + 21 * DAY) {
        struct sched_job job;
        const struct catalog_backup *prev = sim_last(&s);
        int64_t prev_start = prev ? prev->started : 0;
        enum sched_kind kind = sim_step(&s, &now, &job);

        assert_string_equal(job.target, "main");
        if (prev_start) {
            /* The new backup commits at NOW: until then the previous one
             * was the latest. */
            int64_t exposure = now - prev_start;
            if (exposure > worst)
                worst = exposure;
            assert_true(exposure <= (int64_t)s.pol.rpo);
        }
        fulls += kind == SCHED_FULL;
        n++;
        sched_job_clear(&job);
    }
    assert_true(worst > HOUR * 8 / 10); /* not wastefully early either */
    assert_in_range(n, 21 * 24, 21 * 24 * 13 / 10);
    assert_in_range(fulls, 20, 23); /* full_every 1d */
    sim_free(&s);
}

/* ---- RTO -------------------------------------------------------------- */

/* Restore estimate: full 600 MB + 50 MB per inc at 1 MB/s + 60 s.  With an
 * RTO of 15 min, a chain may hold the full and four incs (860 s); a fifth
 * would make 910 s: a full is forced instead. */
static void test_rto_forces_full(void **state)
{
    struct sim s;
    int64_t now = T0;
    unsigned int longest = 0, rto_fulls = 0;

    (void)state;
    sim_init(&s, "db1");
    s.pol.rpo = HOUR;
    s.pol.rto = 15 * MIN;
    s.in.restore = (struct sched_restore_model){.read_rate = 1e6, .overhead_seconds = 60};
    while (now < T0 + 14 * DAY) {
        struct sched_job job;
        struct catalog_backups *chain = NULL;
        struct sched_status st;

        if (sim_step(&s, &now, &job) == SCHED_FULL && s.h.count > 1) {
            assert_non_null(strstr(job.reason, "more than the RTO (15m)"));
            rto_fulls++;
        }
        sched_job_clear(&job);
        assert_int_equal(catalog_chain_current(&s.h, "db1", &chain), 0);
        if (chain->count > longest)
            longest = (unsigned int)chain->count;
        assert_true(sched_restore_estimate(chain, 0, &s.in.restore) <= 15 * MIN);
        catalog_backups_free(chain);
        assert_int_equal(sched_status_compute(&s.in, now, &st), 0);
        assert_false(st.rto_violated);
        assert_false(st.rpo_violated);
        sched_status_clear(&st);
    }
    assert_int_equal(longest, 5);
    assert_true(rto_fulls > 14 * 24 / 6);

    /* When even a full misses the RTO, fulls would not help: incs go on
     * and the status says the RTO is violated. */
    s.pol.rto = 5 * MIN;
    {
        struct sched_job job;
        struct sched_status st;
        assert_int_equal(sched_next(&s.in, now, &job), 0);
        assert_int_equal(job.kind, SCHED_INC);
        sched_job_clear(&job);
        assert_int_equal(sched_status_compute(&s.in, now, &st), 0);
        assert_true(st.rto_violated);
        assert_true(st.rto_estimate > 5 * MIN);
        sched_status_clear(&st);
    }
    sim_free(&s);
}

/* max_chain: every sixth backup is a full. */
static void test_chain_limit(void **state)
{
    struct sim s;
    int64_t now = T0;
    unsigned int n = 0;

    (void)state;
    sim_init(&s, "web1");
    s.pol.rpo = 30 * MIN;
    s.pol.max_chain = 6;
    while (now < T0 + 7 * DAY) {
        struct sched_job job;
        enum sched_kind kind = sim_step(&s, &now, &job);
        assert_int_equal(kind, n % 6 == 0 ? SCHED_FULL : SCHED_INC);
        if (kind == SCHED_FULL && n > 0)
            assert_string_equal(strstr(job.reason, "has 6 backups"),
                                "has 6 backups, the limit (max_chain) is 6");
        if (kind == SCHED_INC)
            assert_string_equal(job.parent, s.h.items[s.h.count - 2].id);
        sched_job_clear(&job);
        n++;
    }
    assert_true(n > 7 * 24 * 2);
    sim_free(&s);
}

/* ---- failures --------------------------------------------------------- */

/* The target fails from hour 10 to hour 16.  Attempts back off (a handful
 * per hour, never a stampede), the RPO violation shows, and the first
 * attempt after the repair comes within one capped backoff. */
static void test_failing_target(void **state)
{
    struct sim s;
    int64_t now = T0, down = T0 + 10 * HOUR, up = T0 + 16 * HOUR, first_ok = 0;
    unsigned int per_hour[48] = {0};
    bool violated = false;

    (void)state;
    sim_init(&s, "web1");
    s.pol.rpo = HOUR;
    while (now < T0 + 2 * DAY) {
        struct sched_job job;
        struct sched_status st;
        int64_t start;
        bool fails;

        assert_int_equal(sched_next(&s.in, now, &job), 0);
        start = job.due > now ? job.due : now;
        fails = start >= down && start < up;
        if (start < T0 + 2 * DAY)
            per_hour[(start - T0) / HOUR]++;
        if (fails) {
            sim_backup(&s, job.kind, job.parent, start, 30, 0, CATALOG_STATUS_FAILED);
            now = start + 30;
        } else {
            if (start >= up && !first_ok)
                first_ok = start;
            sched_job_clear(&job);
            now = start;
            sim_step(&s, &now, &job);
        }
        sched_job_clear(&job);
        assert_int_equal(sched_status_compute(&s.in, now, &st), 0);
        if (st.rpo_violated) {
            violated = true;
            assert_true(now > down && now < up + HOUR);
            if (now < up)
                assert_true(st.failures > 0);
        }
        sched_status_clear(&st);
    }
    assert_true(violated);
    for (unsigned int h = 10; h < 16; h++)
        assert_in_range(per_hour[h], h == 10 ? 3 : 3, h == 10 ? 8 : 5);
    assert_true(first_ok >= up && first_ok <= up + 900 + 900 / 8 + 30);
    for (unsigned int h = 17; h < 48; h++)
        assert_in_range(per_hour[h], 1, 2);
    sim_free(&s);
}

/* One failure alone never costs the RPO: for RPOs from 15 s to a day, the
 * attempt due fails (at once, or after using up the margin) and the retry
 * still commits before the RPO runs out; where there is room, it still
 * backs off.  (With rpo = 15s the retry used to wait 60 to 75 s.) */
static void test_single_failure_keeps_rpo(void **state)
{
    static const uint64_t rpos[] = {15, 20, 60, 4 * MIN, 10 * MIN, HOUR, 6 * HOUR, DAY};

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(rpos); i++) {
        int64_t rpo = (int64_t)rpos[i], d = rpo / 8 > 0 ? rpo / 8 : 1,
                margin = sched_margin(rpos[i]);
        int64_t fails[] = {0, margin / 2, margin};

        for (size_t k = 0; k < VK_ARRAY_SIZE(fails); k++) {
            struct sched_job job;
            struct sim s;
            int64_t now = T0, start, last_start, last_end, retry, room;

            sim_init(&s, "web1");
            s.pol.rpo = rpos[i];
            /* Steady state: a full and a few incs, each taking D. */
            sim_backup(&s, SCHED_FULL, NULL, now, d, 100, CATALOG_STATUS_COMMITTED);
            now += d;
            for (int n = 0; n < 4; n++) {
                assert_int_equal(sched_next(&s.in, now, &job), 0);
                start = job.due > now ? job.due : now;
                sim_backup(&s, job.kind, job.parent, start, d, 10, CATALOG_STATUS_COMMITTED);
                now = start + d;
                sched_job_clear(&job);
            }
            last_start = sim_last(&s)->started;
            /* The next attempt fails after FAILS[K] seconds. */
            assert_int_equal(sched_next(&s.in, now, &job), 0);
            assert_int_equal(job.attempt, 0);
            start = job.due > now ? job.due : now;
            sim_backup(&s, job.kind, job.parent, start, fails[k], 0, CATALOG_STATUS_FAILED);
            last_end = start + fails[k];
            now = last_end;
            sched_job_clear(&job);
            /* The retry commits before the RPO runs out. */
            assert_int_equal(sched_next(&s.in, now, &job), 0);
            assert_int_equal(job.attempt, 1);
            retry = job.due > now ? job.due : now;
            if (retry + d - last_start > rpo)
                fail_msg("rpo %llds, failure after %llds: the retry starts %llds after it and "
                         "commits %llds after the last backup",
                         (long long)rpo, (long long)fails[k], (long long)(retry - last_end),
                         (long long)(retry + d - last_start));
            /* ... and still waits when there is room for the backoff. */
            room = last_start + rpo - d - last_end;
            if (room >= sched_backoff(1, rpos[i], "web1"))
                assert_true(retry - last_end >= sched_backoff(1, rpos[i], "web1") * 8 / 9);
            sched_job_clear(&job);
            sim_free(&s);
        }
    }
}

/* Copies follow each backup to the second target; failed copies back off. */
static void test_copies(void **state)
{
    char *targets[] = {(char *)"main", (char *)"offsite", NULL};
    struct sim s;
    int64_t now = T0;
    unsigned int copies = 0, copy_attempts_down = 0;

    (void)state;
    sim_init(&s, "web1");
    s.pol.rpo = HOUR;
    s.pol.targets = targets;
    while (now < T0 + 2 * DAY) {
        struct sched_job *jobs;
        size_t n;
        int64_t start;
        bool down;

        assert_int_equal(sched_plan(&s.in, now, &jobs, &n), 0);
        assert_true(n >= 1);
        start = jobs[0].due > now ? jobs[0].due : now;
        down = start >= T0 + DAY && start < T0 + DAY + 4 * HOUR;
        if (jobs[0].kind == SCHED_COPY) {
            assert_string_equal(jobs[0].target, "offsite");
            assert_string_equal(jobs[0].backup_id, sim_last(&s)->id);
            assert_true(jobs[0].due >= sim_last(&s)->finished);
            sim_copy(&s, &jobs[0], start, start + 60, !down);
            copies += !down;
            copy_attempts_down += down;
            now = start + 60;
        } else {
            /* A backup is never due before the copy of the last one, unless
             * the copies fail. */
            assert_true(n == 1 || down || start >= T0 + DAY + 4 * HOUR);
            sim_backup(&s, jobs[0].kind, jobs[0].parent, start, 120, 10, CATALOG_STATUS_COMMITTED);
            now = start + 120;
        }
        for (size_t i = 0; i < n; i++)
            sched_job_clear(&jobs[i]);
        free(jobs);
    }
    assert_true(copies > 40);
    /* Four hours of a dead offsite target: the copy retries back off. */
    assert_in_range(copy_attempts_down, 8, 4 * 5 + 3);
    sim_free(&s);
}

/* A running backup: nothing new is due for that domain. */
static void test_running(void **state)
{
    struct sim s;
    struct sched_job job;
    struct sched_status st;

    (void)state;
    sim_init(&s, "web1");
    s.pol.rpo = HOUR;
    assert_int_equal(sched_status_compute(&s.in, T0, &st), 0);
    assert_true(st.rpo_violated); /* never backed up */
    assert_int_equal(st.exposure, -1);
    sched_status_clear(&st);
    assert_int_equal(sched_next(&s.in, T0, &job), 0);
    assert_int_equal(job.kind, SCHED_FULL);
    assert_int_equal(job.due, T0);
    sched_job_clear(&job);
    sim_backup(&s, SCHED_FULL, NULL, T0, 0, 0, CATALOG_STATUS_RUNNING);
    assert_int_equal(sched_next(&s.in, T0 + 10, &job), 0);
    assert_int_equal(job.kind, SCHED_NONE);
    assert_string_equal(job.reason, "a backup is running");
    sched_job_clear(&job);
    s.pol.rpo = 0;
    s.h.items[0].status = CATALOG_STATUS_COMMITTED;
    assert_int_equal(sched_next(&s.in, T0, &job), 0);
    assert_int_equal(job.kind, SCHED_NONE);
    assert_string_equal(job.reason, "the policy has no rpo");
    sched_job_clear(&job);
    s.pol.rpo = HOUR;
    assert_int_equal(sched_status_compute(&s.in, T0 + 2 * HOUR, &st), 0);
    assert_int_equal(st.exposure, 2 * HOUR);
    assert_true(st.rpo_violated);
    assert_string_equal(st.last_backup, s.h.items[0].id);
    assert_int_equal(st.chain_length, 1);
    sched_status_clear(&st);
    sim_free(&s);
}

/* ---- windows ---------------------------------------------------------- */

/* A night window: every backup starts inside it; the RPO holds at night
 * and is reported violated during the day. */
static void test_window(void **state)
{
    struct sim s;
    int64_t now = T0 + 12 * HOUR;
    unsigned int nights[8] = {0};
    bool day_violation = false;

    (void)state;
    sim_init(&s, "web1");
    s.pol.rpo = HOUR;
    s.pol.window = (struct config_window){.set = true, .start = 22 * 60, .end = 6 * 60};
    while (now < T0 + 7 * DAY) {
        struct sched_job job;
        struct sched_status st;
        int64_t start;

        assert_int_equal(sched_next(&s.in, now, &job), 0);
        start = job.due > now ? job.due : now;
        assert_true(sched_window_contains(&s.pol.window, start));
        nights[(start - T0 + 2 * HOUR) / DAY]++;
        sched_job_clear(&job);
        sim_step(&s, &now, &job);
        sched_job_clear(&job);
        assert_int_equal(
            sched_status_compute(&s.in, T0 + ((now - T0) / DAY) * DAY + 14 * HOUR, &st), 0);
        day_violation |= st.rpo_violated;
        sched_status_clear(&st);
    }
    for (int d = 1; d < 7; d++)
        assert_in_range(nights[d], 8, 10); /* 8 hours, ~ every 52 min */
    assert_true(day_violation);
    sim_free(&s);
}

/* ---- across domains --------------------------------------------------- */

static void jobs_make(struct sched_job *jobs, size_t n, int64_t due)
{
    const char *targets[] = {"main", "offsite", "cloud"};

    for (size_t i = 0; i < n; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].kind = SCHED_INC;
        jobs[i].domain = vk_asprintf("vm%02zu", i);
        jobs[i].target = vk_strdup(targets[i % 3]);
        jobs[i].priority = i % 4 == 0 ? 1 : 0;
        jobs[i].due = due - (int64_t)i * MIN; /* all missed */
    }
}

/* Missed runs at start are spread over the window given, priority first,
 * the same way every time. */
static void test_catchup_spread(void **state)
{
    struct sched_job a[40], b[40];
    unsigned int per_minute[20] = {0};
    int64_t now = T0 + 5 * HOUR;

    (void)state;
    jobs_make(a, 40, T0);
    jobs_make(b, 40, T0);
    a[39].due = now + HOUR; /* not overdue: left alone */
    b[39].due = now + HOUR;
    sched_catchup(a, 40, now, 20 * MIN);
    sched_catchup(b, 40, now, 20 * MIN);
    for (size_t i = 0; i < 39; i++) {
        assert_int_equal(a[i].due, b[i].due);
        assert_in_range(a[i].due, now, now + 20 * MIN - 1);
        per_minute[(a[i].due - now) / MIN]++;
        for (size_t j = 0; j < 39; j++)
            if (a[i].priority == 1 && a[j].priority == 0)
                assert_true(a[i].due < a[j].due);
    }
    assert_int_equal(a[39].due, now + HOUR);
    for (int m = 0; m < 20; m++)
        assert_in_range(per_minute[m], 1, 2);
    for (size_t i = 0; i < 40; i++) {
        sched_job_clear(&a[i]);
        sched_job_clear(&b[i]);
    }
}

/* Dispatch under limits, minute by minute: never more than 4 jobs on the
 * host and 2 per target, and everything runs eventually. */
static void test_dispatch_limits(void **state)
{
    struct sched_job jobs[30];
    struct sched_limits lim = {.per_host = 4, .per_target = 2};
    struct sched_busy running[30];
    int64_t ends[30] = {0};
    bool started[30] = {false};
    size_t start[30], n_run = 0, n_started = 0;
    int64_t now = T0;

    (void)state;
    jobs_make(jobs, 30, T0 + 10 * MIN);
    for (; now < T0 + 6 * HOUR && n_started < 30; now += MIN) {
        size_t k, idx[30];
        n_run = 0;
        for (size_t i = 0; i < 30; i++)
            if (started[i] && ends[i] > now) {
                running[n_run] = (struct sched_busy){jobs[i].domain, jobs[i].target};
                idx[n_run++] = i;
            }
        k = sched_dispatch(jobs, 30, now, &lim, running, n_run, start);
        assert_true(n_run + k <= 4);
        for (size_t i = 0; i < k; i++) {
            size_t same = 0;
            assert_false(started[start[i]]);
            assert_true(jobs[start[i]].due <= now);
            for (size_t r = 0; r < n_run; r++)
                same += strcmp(jobs[idx[r]].target, jobs[start[i]].target) == 0;
            for (size_t j = 0; j < i; j++)
                same += strcmp(jobs[start[j]].target, jobs[start[i]].target) == 0;
            assert_true(same < 2);
            started[start[i]] = true;
            ends[start[i]] = now + 5 * MIN;
            n_started++;
        }
        /* A due job left waiting is held by a limit: the host is full, or
         * its target is. */
        for (size_t j = 0; j < 30; j++) {
            size_t on_target = 0;
            if (started[j] || jobs[j].due > now)
                continue;
            for (size_t r = 0; r < n_run; r++)
                on_target += strcmp(jobs[idx[r]].target, jobs[j].target) == 0;
            for (size_t i = 0; i < k; i++)
                on_target += strcmp(jobs[start[i]].target, jobs[j].target) == 0;
            assert_true(n_run + k == 4 || on_target == 2);
        }
        /* In priority order: no priority-0 job started while a priority-1
         * job of the same target waits. */
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < 30; j++)
                if (!started[j] && jobs[j].due <= now && jobs[j].priority == 1 &&
                    strcmp(jobs[j].target, jobs[start[i]].target) == 0)
                    assert_int_equal(jobs[start[i]].priority, 1);
        /* Started jobs leave the plan (the daemon plans again after each). */
        for (size_t i = 0; i < k; i++)
            jobs[start[i]].kind = SCHED_NONE;
    }
    for (size_t i = 0; i < 30; i++)
        jobs[i].kind = SCHED_INC;
    assert_int_equal(n_started, 30);
    /* A domain already running is not started twice; per_host 0 is no limit. */
    {
        struct sched_busy busy = {jobs[0].domain, NULL};
        struct sched_limits none = {0};
        size_t k = sched_dispatch(jobs, 30, T0 + DAY, &none, &busy, 1, start);
        assert_int_equal(k, 29);
        for (size_t i = 0; i < k; i++)
            assert_int_not_equal(start[i], 0);
        assert_int_equal(jobs[start[0]].priority, 1);
        k = sched_dispatch(jobs, 30, T0 - DAY, &none, NULL, 0, start);
        assert_int_equal(k, 0);
    }
    for (size_t i = 0; i < 30; i++)
        sched_job_clear(&jobs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_rpo_never_exceeded),
        cmocka_unit_test(test_rto_forces_full),
        cmocka_unit_test(test_chain_limit),
        cmocka_unit_test(test_failing_target),
        cmocka_unit_test(test_copies),
        cmocka_unit_test(test_single_failure_keeps_rpo),
        cmocka_unit_test(test_running),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_catchup_spread),
        cmocka_unit_test(test_dispatch_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
