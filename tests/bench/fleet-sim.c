/* virtkeep - a scheduling simulation against a real catalog (make bench,
 * tests/bench/fleet-sim.sh): DOMAINS domains with an RPO, PROCS scheduler
 * processes (each a host, VIRTKEEP_HOST=simK) sharing one catalog, DAYS
 * simulated days in ticks of TICK seconds.  The processes step through
 * simulated time together (a process-shared barrier per tick).  At each
 * tick a process walks the due domains (from its own offset, so that
 * claimers collide), claims each domain's lease (catalog_lease_claim, the
 * lease lasting one job), and for a won claim records the job (its epoch,
 * the interval it held the domain) and a committed backup at that time.
 *
 * At the end, from the catalog alone: no domain was claimed twice at once
 * (the held intervals of one domain never overlap, every epoch is
 * distinct), and every RPO held (no gap between a domain's backups, or
 * from the start, longer than the RPO).  It prints one JSON object: the
 * claim latency and the tick time at p50 and p99, counts, and the checks.
 *
 *   fleet-sim CATALOG DOMAINS PROCS DAYS [RPO [TICK [JOB]]]   (seconds)
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/error.h"
#include "common/util.h"

#define MAX_SAMPLES 2000000 /* claim attempts per process */
/* Simulated time starts here (2001-09-09): a time of 0 means "now" to the
 * catalog's inserts. */
#define SIM_EPOCH INT64_C(1000000000)

struct shared {
    pthread_barrier_t barrier;
    int64_t *last;      /* per domain: the simulated time of its last backup (-1: none) */
    double *claim_us;   /* per process: MAX_SAMPLES latencies */
    size_t *n_claim;    /* per process */
    double *tick_ms;    /* per process: one per tick that had a due domain */
    size_t *n_tick;     /* per process */
    size_t *won, *lost; /* per process */
    int *failed;        /* per process */
};

struct sim {
    const char *url;
    long domains, procs, days, rpo, tick, job;
    long ticks;
    struct shared *sh;
};

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void *shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    memset(p, 0, size);
    return p;
}

static void domain_name(long i, char *buf, size_t len)
{
    snprintf(buf, len, "sim%05ld", i);
}

/* One won claim: the job (held [T, T + JOB)) and a committed backup at T. */
static int record(struct catalog *cat, const struct sim *s, const char *dom, int64_t t,
                  int64_t epoch)
{
    char id[64];
    struct catalog_job job = {.kind = (char *)"backup",
                              .domain = (char *)dom,
                              .state = CATALOG_JOB_SUCCEEDED,
                              .started = t,
                              .finished = t + s->job,
                              .epoch = epoch};
    struct catalog_backup b = {.id = id,
                               .domain = (char *)dom,
                               .level = CATALOG_LEVEL_COPY,
                               .status = CATALOG_STATUS_COMMITTED,
                               .started = t,
                               .finished = t + s->job};

    snprintf(id, sizeof id, "%s-%" PRId64, dom, t);
    return catalog_job_insert(cat, &job) > 0 && catalog_backup_insert(cat, &b) == 0 ? 0 : -1;
}

static int tick_once(struct catalog *cat, const struct sim *s, long k, int64_t t)
{
    struct shared *sh = s->sh;
    long margin = 2 * s->tick + s->job;
    char dom[32];

    for (long j = 0; j < s->domains; j++) {
        long d = (j + k * s->domains / s->procs) % s->domains;
        int64_t epoch = 0;
        double t0;
        int r;

        /* never backed up: first due spread over the first RPO */
        if (sh->last[d] < 0 && t < SIM_EPOCH + d * (s->rpo - margin) / s->domains)
            continue;
        if (sh->last[d] >= 0 && t < sh->last[d] + s->rpo - margin)
            continue;
        domain_name(d, dom, sizeof dom);
        t0 = now_us();
        r = catalog_lease_claim(cat, dom, t, s->job, &epoch);
        if (sh->n_claim[k] < MAX_SAMPLES)
            sh->claim_us[k * MAX_SAMPLES + sh->n_claim[k]++] = now_us() - t0;
        if (r < 0)
            return -1;
        if (r == 0) {
            sh->lost[k]++;
            continue;
        }
        if (record(cat, s, dom, t, epoch) < 0)
            return -1;
        __atomic_store_n(&sh->last[d], t, __ATOMIC_SEQ_CST);
        sh->won[k]++;
    }
    return 0;
}

static void __attribute__((noreturn)) scheduler(const struct sim *s, long k)
{
    struct shared *sh = s->sh;
    struct catalog *cat;
    char host[32];
    int bad = 0;

    snprintf(host, sizeof host, "sim%ld", k);
    setenv("VIRTKEEP_HOST", host, 1);
    if (!(cat = catalog_open(s->url, CATALOG_OPEN_EXISTING))) {
        fprintf(stderr, "scheduler %ld: %s\n", k, vk_error_message());
        bad = 1;
    }
    for (long i = 0; i < s->ticks; i++) {
        double t0;
        size_t before = sh->n_claim[k];

        pthread_barrier_wait(&sh->barrier);
        t0 = now_us();
        if (!bad && tick_once(cat, s, k, SIM_EPOCH + (int64_t)i * s->tick) < 0) {
            fprintf(stderr, "scheduler %ld at %lds: %s\n", k, i * s->tick, vk_error_message());
            bad = 1;
        }
        if (sh->n_claim[k] > before)
            sh->tick_ms[k * s->ticks + sh->n_tick[k]++] = (now_us() - t0) / 1e3;
    }
    sh->failed[k] = bad;
    catalog_close(cat);
    _exit(bad);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

/* Claims of one domain never overlap; epochs are distinct. */
static long check_claims(const struct catalog_jobs *jobs)
{
    long bad = 0;

    /* newest first, grouped by nothing: compare each with the others of
     * its domain (the list is sorted by domain below). */
    for (size_t i = 0; i < jobs->count; i++)
        for (size_t j = i + 1; j < jobs->count; j++) {
            const struct catalog_job *a = &jobs->items[i], *b = &jobs->items[j];
            if (strcmp(a->domain, b->domain) != 0)
                break;
            if (a->epoch == b->epoch || (a->started < b->finished && b->started < a->finished)) {
                if (bad++ < 5)
                    fprintf(stderr,
                            "domain %s claimed twice: epochs %" PRId64 " and %" PRId64
                            " at %" PRId64 " and %" PRId64 "\n",
                            a->domain, a->epoch, b->epoch, a->started, b->started);
            }
        }
    return bad;
}

static int cmp_job(const void *a, const void *b)
{
    const struct catalog_job *x = a, *y = b;
    int c = strcmp(x->domain, y->domain);

    return c ? c : x->started < y->started ? -1 : x->started > y->started;
}

/* The longest gap between backups of a domain (or from the start, or to
 * the end), over every domain; and how many domains exceed the RPO. */
static long check_rpo(const struct sim *s, const struct catalog_backups *all, int64_t *worst)
{
    int64_t end = SIM_EPOCH + (int64_t)s->ticks * s->tick, prev = SIM_EPOCH;
    const char *cur = NULL;
    long bad = 0;

    *worst = 0;
    for (size_t i = 0; i <= all->count; i++) {
        const struct catalog_backup *b = i < all->count ? &all->items[i] : NULL;
        if (!b || !cur || strcmp(b->domain, cur) != 0) {
            if (cur && end - prev > *worst)
                *worst = end - prev;
            if (cur && end - prev > s->rpo)
                bad++;
            if (!b)
                break;
            cur = b->domain;
            prev = SIM_EPOCH;
        }
        if (b->started - prev > *worst)
            *worst = b->started - prev;
        if (b->started - prev > s->rpo)
            bad++;
        prev = b->started;
    }
    return bad;
}

static int cmp_backup(const void *a, const void *b)
{
    const struct catalog_backup *x = a, *y = b;
    int c = strcmp(x->domain, y->domain);

    return c ? c : x->started < y->started ? -1 : x->started > y->started;
}

static int setup(const struct sim *s)
{
    struct catalog *cat = catalog_open(s->url, 0);
    char dom[32];

    if (!cat)
        return -1;
    if (catalog_begin(cat) < 0)
        goto fail;
    for (long i = 0; i < s->domains; i++) {
        domain_name(i, dom, sizeof dom);
        if (catalog_domain_set(cat, dom, NULL) < 0)
            goto fail;
    }
    if (catalog_commit(cat) < 0)
        goto fail;
    catalog_close(cat);
    return 0;
fail:
    catalog_rollback(cat);
    catalog_close(cat);
    return -1;
}

static int verify(const struct sim *s, long *overlaps, long *rpo_misses, int64_t *worst,
                  size_t *claims)
{
    struct catalog *cat = catalog_open(s->url, CATALOG_OPEN_EXISTING);
    struct catalog_jobs *jobs = NULL;
    struct catalog_backups *all = NULL;

    if (!cat || catalog_job_list(cat, NULL, 0, 0, &jobs) < 0 ||
        catalog_backup_list(cat, NULL, CATALOG_LIST_COMMITTED, &all) < 0) {
        catalog_close(cat);
        return -1;
    }
    qsort(jobs->items, jobs->count, sizeof *jobs->items, cmp_job);
    qsort(all->items, all->count, sizeof *all->items, cmp_backup);
    *claims = jobs->count;
    *overlaps = check_claims(jobs);
    *rpo_misses = check_rpo(s, all, worst);
    catalog_jobs_free(jobs);
    catalog_backups_free(all);
    catalog_close(cat);
    return 0;
}

int main(int argc, char **argv)
{
    struct sim s = {0};
    pthread_barrierattr_t ba;
    struct shared *sh;
    double wall, *claims, *ticks;
    size_t n_claims = 0, n_ticks = 0, won = 0, lost = 0, recorded = 0;
    long overlaps = 0, misses = 0;
    int64_t worst = 0;
    int failed = 0;

    if (argc < 5) {
        fprintf(stderr, "usage: %s CATALOG DOMAINS PROCS DAYS [RPO [TICK [JOB]]]\n", argv[0]);
        return 2;
    }
    s.url = argv[1];
    s.domains = atol(argv[2]);
    s.procs = atol(argv[3]);
    s.days = atol(argv[4]);
    s.rpo = argc > 5 ? atol(argv[5]) : 6 * 3600;
    s.tick = argc > 6 ? atol(argv[6]) : 300;
    s.job = argc > 7 ? atol(argv[7]) : 300;
    s.ticks = s.days * 86400 / s.tick;
    if (s.domains <= 0 || s.procs <= 0 || s.ticks <= 0 || s.rpo <= 2 * s.tick + 2 * s.job) {
        fprintf(stderr, "fleet-sim: bad sizes (the RPO must exceed 2 ticks + 2 jobs)\n");
        return 2;
    }
    if (setup(&s) < 0) {
        fprintf(stderr, "fleet-sim: %s\n", vk_error_message());
        return 1;
    }
    sh = s.sh = shared_alloc(sizeof *sh);
    sh->last = shared_alloc((size_t)s.domains * sizeof *sh->last);
    for (long i = 0; i < s.domains; i++)
        sh->last[i] = -1;
    sh->claim_us = shared_alloc((size_t)s.procs * MAX_SAMPLES * sizeof(double));
    sh->n_claim = shared_alloc((size_t)s.procs * sizeof(size_t));
    sh->tick_ms = shared_alloc((size_t)s.procs * (size_t)s.ticks * sizeof(double));
    sh->n_tick = shared_alloc((size_t)s.procs * sizeof(size_t));
    sh->won = shared_alloc((size_t)s.procs * sizeof(size_t));
    sh->lost = shared_alloc((size_t)s.procs * sizeof(size_t));
    sh->failed = shared_alloc((size_t)s.procs * sizeof(int));
    pthread_barrierattr_init(&ba);
    pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&sh->barrier, &ba, (unsigned int)s.procs);

    wall = now_us();
    for (long k = 0; k < s.procs; k++) {
        pid_t pid = fork();
        if (pid == 0)
            scheduler(&s, k);
        if (pid < 0) {
            perror("fork");
            return 1;
        }
    }
    for (long k = 0; k < s.procs; k++) {
        int st;
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed = 1;
    }
    wall = (now_us() - wall) / 1e6;

    claims = vk_calloc((size_t)s.procs * MAX_SAMPLES, sizeof *claims);
    ticks = vk_calloc((size_t)s.procs * (size_t)s.ticks, sizeof *ticks);
    for (long k = 0; k < s.procs; k++) {
        memcpy(claims + n_claims, sh->claim_us + k * MAX_SAMPLES, sh->n_claim[k] * sizeof *claims);
        n_claims += sh->n_claim[k];
        memcpy(ticks + n_ticks, sh->tick_ms + k * s.ticks, sh->n_tick[k] * sizeof *ticks);
        n_ticks += sh->n_tick[k];
        won += sh->won[k];
        lost += sh->lost[k];
    }
    if (!failed && verify(&s, &overlaps, &misses, &worst, &recorded) < 0) {
        fprintf(stderr, "fleet-sim: cannot verify: %s\n", vk_error_message());
        failed = 1;
    }
    printf("{\"domains\": %ld, \"procs\": %ld, \"days\": %ld, \"rpo\": %ld, \"tick\": %ld, "
           "\"job\": %ld, \"wall_seconds\": %.1f, \"claim_attempts\": %zu, \"claims_won\": %zu, "
           "\"claims_lost\": %zu, \"claims_recorded\": %zu, \"claim_us_p50\": %.0f, "
           "\"claim_us_p99\": %.0f, \"busy_ticks\": %zu, \"tick_ms_p50\": %.2f, \"tick_ms_p99\": "
           "%.2f, "
           "\"claimed_twice\": %ld, \"rpo_misses\": %ld, \"worst_gap\": %" PRId64
           ", \"failed\": %s}\n",
           s.domains, s.procs, s.days, s.rpo, s.tick, s.job, wall, n_claims, won, lost, recorded,
           pct(claims, n_claims, 0.5), pct(claims, n_claims, 0.99), n_ticks,
           pct(ticks, n_ticks, 0.5), pct(ticks, n_ticks, 0.99), overlaps, misses, worst,
           failed ? "true" : "false");
    free(claims);
    free(ticks);
    return failed || overlaps || misses || recorded != won ? 1 : 0;
}
