/* virtkeep - one updating progress line on a terminal (stderr).
 *
 *   vda (1/2)  1.2 GiB / 3.0 GiB  40%  310 MiB/s  ETA 6s
 *
 * The line is redrawn at most every 200 ms; progress_done() ends it with a
 * newline so that what follows starts on a clean line.
 */
#ifndef VIRTKEEP_PROGRESS_H
#define VIRTKEEP_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct progress;

/* NULL when FP is not a terminal (then every call does nothing). */
struct progress *progress_new(FILE *fp, unsigned int flags);
void progress_update(struct progress *p, const char *item, size_t index, size_t count,
                     uint64_t done, uint64_t total);
/* Finish the line (newline) if one was drawn. */
void progress_done(struct progress *p);
void progress_free(struct progress *p);

/* The text of one line (for tests): RATE in bytes per second, 0 unknown. */
char *progress_format(const char *item, size_t index, size_t count, uint64_t done, uint64_t total,
                      double rate);

#endif
