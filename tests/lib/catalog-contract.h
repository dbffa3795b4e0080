/* virtkeep - the catalog contract suite, written once and run against every
 * catalog backend (SQLite, PostgreSQL), as transport-contract.h is for the
 * transports.
 *
 * A backend's test program describes how to make a fresh, empty catalog and
 * how to reach it without the catalog code, and calls catalog_contract_run().
 * The suite uses only the public catalog.h API for what it checks; the raw
 * hooks only set up what no version of the code writes (an old schema, a
 * row no version would write) or break things (dropped connections).
 */
#ifndef VIRTKEEP_TESTS_CATALOG_CONTRACT_H
#define VIRTKEEP_TESTS_CATALOG_CONTRACT_H

struct catalog_fixture {
    const char *name; /* "sqlite", "postgresql" */

    /* A fresh location for one test: a path or URL where no catalog is
     * yet (malloc'd, or NULL on failure).  Each call gives a new one;
     * forget removes it. */
    char *(*fresh)(void *opaque);
    void (*forget)(void *opaque, const char *url);

    /* Run SQL (this backend's dialect, several statements) on the
     * database at URL outside the catalog code.  0 or -1. */
    int (*raw_exec)(void *opaque, const char *url, const char *sql);

    /* The version 1 schema exactly as a virtkeep of that version made it
     * in this backend, with its version mark, frozen. */
    const char *v1_schema;
    /* SQL that sets the schema version to the number that follows it. */
    const char *set_version;
    /* SQL that lets a row break the CHECK constraints on backups.status
     * and jobs.state (a state no version writes). */
    const char *drop_checks;

    /* End every server connection to the catalog at URL, as a server
     * restart or a network failure would; NULL for a backend without
     * connections (SQLite: its dropped-writer case is a killed process,
     * which every backend runs).  0 or -1. */
    int (*drop_connections)(void *opaque, const char *url);

    void *opaque;
};

/* Run the cmocka group; returns the number of failed tests. */
int catalog_contract_run(const char *suite_name, struct catalog_fixture *fx);

#endif
