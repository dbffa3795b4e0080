/* virtkeep - XML through libxml2: one way to parse, walk, query and write
 * the documents virtkeep reads (domain, checkpoint, snapshot and
 * capabilities XML, S3 answers).
 *
 * Parsing is strict and offline: no network, no DTD loading, no entity
 * expansion, libxml2's own messages silenced.  A failure is recorded once,
 * through vk_error.  Strings handed out are malloc'd copies (free()), never
 * xmlChar to be xmlFree'd.  libxml2 is initialised once, thread-safely.
 */
#ifndef VIRTKEEP_XML_H
#define VIRTKEEP_XML_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "common/error.h"

/* ---------------------------------------------------------------- documents */

/* Parse LEN bytes of XML text into a document with a root element.  On
 * failure NULL, with CODE "cannot parse the WHAT: libxml2's reason"
 * recorded; a NULL WHAT records nothing (a probe, such as "is this an S3
 * error answer?", whose caller records its own error). */
xmlDoc *vk_xml_parse(const char *buf, size_t len, enum vk_error_code code, const char *what);
/* The same for NUL-terminated TEXT; NULL TEXT is refused as empty. */
xmlDoc *vk_xml_parse_str(const char *text, enum vk_error_code code, const char *what);

/* The text of DOC (malloc'd), indented when INDENT; NULL with
 * VK_ERR_INTERNAL "cannot write the WHAT" on failure. */
char *vk_xml_dump(xmlDoc *doc, bool indent, const char *what);
/* The text of node N of DOC (malloc'd).  NULL when N is NULL (nothing
 * recorded) or on failure (recorded). */
char *vk_xml_node_dump(xmlDoc *doc, const xmlNode *n);

void vk_xml_cleanup_doc(xmlDoc **doc);
#define CLEANUP_XMLDOC __attribute__((cleanup(vk_xml_cleanup_doc)))

/* ---------------------------------------------------------------- nodes */

/* Whether N is an element named NAME (false for NULL). */
bool vk_xml_is(const xmlNode *n, const char *name);
/* The first child element NAME of PARENT, or NULL (also for NULL PARENT). */
xmlNode *vk_xml_child(const xmlNode *parent, const char *name);
/* The root element of DOC when it is named NAME, else NULL (DOC may be NULL). */
xmlNode *vk_xml_root(xmlDoc *doc, const char *name);

/* A copy of attribute NAME of N: 0 with *OUT NULL when N is NULL or has no
 * such attribute, -1 when out of memory (recorded). */
int vk_xml_attr_get(const xmlNode *n, const char *name, char **out);
/* The same as a value: NULL when absent or out of memory (recorded). */
char *vk_xml_attr(const xmlNode *n, const char *name);
/* A copy of the text content of N ("" when it has none), untrimmed; NULL
 * when N is NULL or out of memory (recorded). */
char *vk_xml_text(const xmlNode *n);

/* Unlink and free N (NULL: nothing). */
void vk_xml_remove(xmlNode *n);
/* Unlink and free every child element NAME of PARENT (NULL: nothing). */
void vk_xml_remove_children(xmlNode *parent, const char *name);

/* ---------------------------------------------------------------- XPath */

/* The value of EXPR, a string() expression, in DOC (malloc'd), or NULL when
 * it is empty or not a string (nothing recorded) or out of memory. */
char *vk_xml_xpath_string(xmlDoc *doc, const char *expr);
/* The first node EXPR selects in DOC, or NULL (nothing recorded). */
xmlNode *vk_xml_xpath_first(xmlDoc *doc, const char *expr);
/* Every node EXPR selects in DOC: *OUT gets a malloc'd, NULL-terminated
 * array of them (the nodes belong to DOC).  Returns how many, or -1 with
 * VK_ERR_INTERNAL recorded when EXPR cannot be evaluated. */
int vk_xml_xpath_nodes(xmlDoc *doc, const char *expr, xmlNode ***out);

#endif
