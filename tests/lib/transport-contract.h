/* virtkeep - the transport contract suite, written once and run against
 * every backend (file://, ssh://, s3://).
 *
 * A backend's test program describes its target in a fixture and calls
 * transport_contract_run().  The suite uses only the public transport.h API,
 * so what it checks is what callers can rely on.  It owns the whole target:
 * every test starts by deleting every object in it.
 */
#ifndef VIRTKEEP_TESTS_TRANSPORT_CONTRACT_H
#define VIRTKEEP_TESTS_TRANSPORT_CONTRACT_H

#include <stddef.h>

#include "transport/transport.h"

/* What a hook returns when this machine cannot do it (no permission to
 * mount, ...): the test is skipped, or fails under VIRTKEEP_TEST_STRICT=1. */
#define CONTRACT_UNAVAILABLE 77

struct contract_fixture {
    const char *name; /* target name used in messages, e.g. "contract" */
    const char *url;
    const struct transport_options *opts; /* may be NULL */

    /* Turn the target read-only or full; restore undoes either.  Each
     * returns 0, CONTRACT_UNAVAILABLE, or -1 (a test failure).  A NULL
     * hook skips the tests that need it.  Objects already on the target
     * must stay readable while it is read-only; a full target may hide them
     * but must take a few KiB.  restore is also called when there is
     * nothing to undo, and must then do nothing. */
    int (*make_unwritable)(void *opaque);
    int (*make_full)(void *opaque);
    int (*restore)(void *opaque);
    void *opaque;
    /* A put of this many bytes must fail once make_full has run (0: 4 MiB). */
    size_t full_put_bytes;
    /* The longest key the target holds (0: TRANSPORT_KEY_MAX).  S3 names
     * are at most 1024 bytes with the target's prefix; a longer key must be
     * refused as invalid before anything is written. */
    size_t key_max;
    /* Count what failed and aborted puts left on the target that listings
     * do not show: temporary files, multipart uploads never completed nor
     * aborted (S3 keeps their parts, and bills them, until an abort).  Sets
     * *COUNT; returns 0, CONTRACT_UNAVAILABLE, or -1.  Tests check it is 0
     * after an abort, a failed put, and on a full or read-only target. */
    int (*leftovers)(void *opaque, unsigned int *count);
};

/* A leftovers hook for a target that is a local directory (file://, and
 * ssh:// to this machine): the temporary files (".NAME.vk-tmp-XXXXXX")
 * anywhere under DIR. */
int contract_count_temp_files(const char *dir, unsigned int *count);

/* Run the cmocka group; returns the number of failed tests. */
int transport_contract_run(const char *suite_name, struct contract_fixture *fx);

#endif
