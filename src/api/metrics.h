/* virtkeep - /metrics: the Prometheus text format (0.0.4) of what the
 * status report and the catalog say.
 *
 * Per domain (from the status report, the same numbers `virtkeep status`
 * shows; a value that is unknown is left out):
 *   virtkeep_last_success_timestamp_seconds{domain}
 *   virtkeep_rpo_exposure_seconds{domain}, virtkeep_rpo_objective_seconds{domain}
 *   virtkeep_rto_estimate_seconds{domain}, virtkeep_rto_objective_seconds{domain}
 *   virtkeep_objective_violated{domain,objective="rpo"|"rto"}
 *   virtkeep_chain_length{domain}, virtkeep_consecutive_failures{domain}
 * Per finished job (backups from the backups table, kind "backup"; other
 * kinds from the jobs table, level "none" unless the job names a backup):
 *   virtkeep_last_job_duration_seconds{domain,kind,level}
 *   virtkeep_last_job_bytes{domain,kind,level}
 *   virtkeep_jobs_total{domain,kind,outcome}        (counter)
 *   virtkeep_job_bytes_total{domain,kind}           (counter, succeeded jobs)
 *   virtkeep_job_failures_total{domain,kind,reason} (counter)
 *   virtkeep_jobs_running
 * Series are sorted by their labels, so the text is stable.
 */
#ifndef VIRTKEEP_METRICS_H
#define VIRTKEEP_METRICS_H

#include <stddef.h>
#include <stdio.h>

struct catalog;
struct status_report;

/* Render into *OUT (malloc'd, NUL-terminated; *LEN without the NUL).
 * JOBS_RUNNING is how many jobs the daemon runs now. */
int metrics_render(struct catalog *cat, const struct status_report *st, size_t jobs_running,
                   char **out, size_t *len);

/* A short stable word for why a job failed, from its error text: the
 * common/error.h code names ("no-space", "network", "auth", ...) recognised
 * from the message, "interrupted" for killed or cancelled work, "other"
 * when nothing matches. */
const char *metrics_failure_reason(const char *error);

/* Write VALUE escaped as a label value (backslash, double quote and
 * newline escaped) to FP. */
void metrics_label_escape(FILE *fp, const char *value);

#endif
