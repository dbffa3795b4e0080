/* virtkeep - configuration parser internals, shared by config.c (lines and
 * sections) and config-keys.c (keys and values).  Not for other modules. */
#ifndef VIRTKEEP_CONFIG_INT_H
#define VIRTKEEP_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "src/conf/conf.h"

enum config_section {
    SEC_NONE = 0,
    SEC_CATALOG,
    SEC_TARGET,
    SEC_POLICY,
    SEC_DOMAIN,
    SEC_DAEMON,
};

/* A reference to a section, checked once the whole file is read. */
struct config_ref {
    enum config_section kind; /* what it must name */
    char *name;
    unsigned int line;
    char *where; /* "[domain web1] policy" */
};

#define CONFIG_MAX_KEYS 64

struct config_parser {
    struct config *cfg;
    unsigned int flags;
    const char *buf;
    size_t len;
    size_t pos;
    unsigned int line;     /* of the line inih is parsing */
    unsigned int err_line; /* of the error recorded, or 0 */
    char *section;         /* the current header's text, as inih sees it */
    enum config_section kind;
    unsigned int key_lines[CONFIG_MAX_KEYS]; /* where each key of the section was set */
    unsigned int catalog_line;
    unsigned int daemon_line;
    struct config_ref *refs;
    size_t n_refs;
};

/* Record "FILE:LINE: WHERE: message" unless an earlier line already failed. */
void config_fail_at(struct config_parser *p, unsigned int line, const char *where, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
/* The same at the current line, WHERE being "[SECTION] KEY"; returns -1. */
int config_fail(struct config_parser *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* After an allocation failure (already recorded): stop parsing; returns -1. */
int config_oom(struct config_parser *p);

bool config_word_valid(const char *s);

/* Set KEY = VALUE in the current section (config-keys.c). */
int config_key_set(struct config_parser *p, const char *key, const char *value);

#endif
