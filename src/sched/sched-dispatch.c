/* virtkeep - the scheduler across domains: priority order, dispatch under
 * per-host and per-target limits, and the spread of missed runs at start.
 * Pure; see sched.h. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "src/sched/sched.h"

/* ---- across domains --------------------------------------------------- */

int sched_job_compare(const struct sched_job *a, const struct sched_job *b)
{
    unsigned int pa = a->priority ? a->priority : UINT32_MAX;
    unsigned int pb = b->priority ? b->priority : UINT32_MAX;
    uint32_t ja, jb;

    if (pa != pb)
        return pa < pb ? -1 : 1;
    if (a->due != b->due)
        return a->due < b->due ? -1 : 1;
    ja = sched_jitter(a->domain, UINT32_MAX);
    jb = sched_jitter(b->domain, UINT32_MAX);
    if (ja != jb)
        return ja < jb ? -1 : 1;
    return strcmp(a->domain, b->domain);
}

/* Sort indexes of JOBS by priority order (insertion sort: N is small and
 * qsort has no context argument). */
static void order_indexes(const struct sched_job *jobs, size_t *idx, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && sched_job_compare(&jobs[idx[j - 1]], &jobs[v]) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

static size_t busy_on_target(const struct sched_busy *running, size_t n_running,
                             const struct sched_job *jobs, const size_t *start, size_t n_start,
                             const char *target)
{
    size_t n = 0;

    for (size_t i = 0; target && i < n_running; i++)
        n += running[i].target && strcmp(running[i].target, target) == 0;
    for (size_t i = 0; target && i < n_start; i++)
        n += jobs[start[i]].target && strcmp(jobs[start[i]].target, target) == 0;
    return n;
}

static bool domain_busy(const struct sched_busy *running, size_t n_running,
                        const struct sched_job *jobs, const size_t *start, size_t n_start,
                        const char *domain)
{
    for (size_t i = 0; i < n_running; i++)
        if (strcmp(running[i].domain, domain) == 0)
            return true;
    for (size_t i = 0; i < n_start; i++)
        if (strcmp(jobs[start[i]].domain, domain) == 0)
            return true;
    return false;
}

size_t sched_dispatch(const struct sched_job *jobs, size_t n, int64_t now,
                      const struct sched_limits *limits, const struct sched_busy *running,
                      size_t n_running, size_t *start)
{
    CLEANUP_FREE size_t *idx = vk_calloc(n + 1, sizeof *idx);
    size_t m = 0, n_start = 0;

    if (!idx)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (jobs[i].kind != SCHED_NONE && jobs[i].due <= now)
            idx[m++] = i;
    order_indexes(jobs, idx, m);
    for (size_t k = 0; k < m; k++) {
        const struct sched_job *j = &jobs[idx[k]];
        if (limits->per_host && n_running + n_start >= limits->per_host)
            break;
        if (domain_busy(running, n_running, jobs, start, n_start, j->domain))
            continue;
        if (limits->per_target && busy_on_target(running, n_running, jobs, start, n_start,
                                                 j->target) >= limits->per_target)
            continue;
        start[n_start++] = idx[k];
    }
    return n_start;
}

void sched_catchup(struct sched_job *jobs, size_t n, int64_t now, unsigned int spread)
{
    CLEANUP_FREE size_t *idx = vk_calloc(n + 1, sizeof *idx);
    size_t m = 0;

    if (!idx)
        return; /* jobs keep their due times: the dispatch limits still hold */
    for (size_t i = 0; i < n; i++)
        if (jobs[i].kind != SCHED_NONE && jobs[i].due < now)
            idx[m++] = i;
    order_indexes(jobs, idx, m);
    for (size_t k = 0; k < m; k++)
        jobs[idx[k]].due = now + (int64_t)((uint64_t)k * spread / m);
}
