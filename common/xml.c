/* virtkeep - XML through libxml2 (see xml.h). */
#include <config.h>

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xpath.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "common/xml.h"

/* Offline and quiet: no network access, libxml2 prints nothing (its last
 * error is still kept for our message).  Entities are not substituted and
 * no DTD is loaded (libxml2's defaults without XML_PARSE_NOENT/DTDLOAD). */
#define PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void)
{
    xmlInitParser();
}

/* ---------------------------------------------------------------- documents */

static void parse_fail(enum vk_error_code code, const char *what, const char *why)
{
    CLEANUP_FREE char *copy = NULL;

    if (!what)
        return;
    if (!why) {
        const xmlError *e = xmlGetLastError();
        /* libxml2's messages end with a new line. */
        copy = e && e->message ? strdup(e->message) : NULL;
        why = copy && *vk_trim(copy) ? copy : "malformed XML.";
    }
    vk_error(code, "cannot parse the %s: %s", what, why);
}

xmlDoc *vk_xml_parse(const char *buf, size_t len, enum vk_error_code code, const char *what)
{
    xmlDoc *doc;

    pthread_once(&init_once, init);
    if (!buf || len == 0) {
        parse_fail(code, what, "it is empty.");
        return NULL;
    }
    if (len > INT_MAX) {
        parse_fail(code, what, "it is too large.");
        return NULL;
    }
    xmlResetLastError();
    doc = xmlReadMemory(buf, (int)len, "virtkeep.xml", NULL, PARSE_OPTIONS);
    if (doc && xmlDocGetRootElement(doc))
        return doc;
    xmlFreeDoc(doc);
    parse_fail(code, what, NULL);
    return NULL;
}

xmlDoc *vk_xml_parse_str(const char *text, enum vk_error_code code, const char *what)
{
    return vk_xml_parse(text, text ? strlen(text) : 0, code, what);
}

char *vk_xml_dump(xmlDoc *doc, bool indent, const char *what)
{
    xmlChar *buf = NULL;
    int len = 0;
    char *s = NULL;

    xmlDocDumpFormatMemory(doc, &buf, &len, indent ? 1 : 0);
    if (buf)
        s = vk_strndup((const char *)buf, (size_t)len);
    else
        vk_error(VK_ERR_INTERNAL, "cannot write the %s", what);
    xmlFree(buf);
    return s;
}

char *vk_xml_node_dump(xmlDoc *doc, const xmlNode *n)
{
    xmlBuffer *buf;
    char *s = NULL;

    if (!n)
        return NULL;
    buf = xmlBufferCreate();
    if (buf && xmlNodeDump(buf, doc, (xmlNode *)n, 0, 0) > 0)
        s = vk_strdup((const char *)xmlBufferContent(buf));
    else
        vk_error(VK_ERR_INTERNAL, "cannot write the XML element <%s>", (const char *)n->name);
    xmlBufferFree(buf);
    return s;
}

void vk_xml_cleanup_doc(xmlDoc **doc)
{
    xmlFreeDoc(*doc);
}

/* ---------------------------------------------------------------- nodes */

bool vk_xml_is(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, (const xmlChar *)name);
}

xmlNode *vk_xml_child(const xmlNode *parent, const char *name)
{
    for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
        if (vk_xml_is(c, name))
            return c;
    return NULL;
}

xmlNode *vk_xml_root(xmlDoc *doc, const char *name)
{
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;

    return vk_xml_is(root, name) ? root : NULL;
}

int vk_xml_attr_get(const xmlNode *n, const char *name, char **out)
{
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;

    *out = NULL;
    if (!v)
        return 0;
    *out = vk_strdup((const char *)v);
    xmlFree(v);
    return *out ? 0 : -1;
}

char *vk_xml_attr(const xmlNode *n, const char *name)
{
    char *v;

    vk_xml_attr_get(n, name, &v);
    return v;
}

char *vk_xml_text(const xmlNode *n)
{
    xmlChar *v;
    char *s;

    if (!n)
        return NULL;
    v = xmlNodeGetContent(n);
    s = vk_strdup(v ? (const char *)v : "");
    xmlFree(v);
    return s;
}

void vk_xml_remove(xmlNode *n)
{
    if (n) {
        xmlUnlinkNode(n);
        xmlFreeNode(n);
    }
}

void vk_xml_remove_children(xmlNode *parent, const char *name)
{
    xmlNode *c = parent ? parent->children : NULL;

    while (c) {
        xmlNode *next = c->next;
        if (vk_xml_is(c, name))
            vk_xml_remove(c);
        c = next;
    }
}

/* ---------------------------------------------------------------- XPath */

static xmlXPathObject *xpath_eval(xmlDoc *doc, const char *expr)
{
    xmlXPathContext *ctx = xmlXPathNewContext(doc);
    xmlXPathObject *obj = ctx ? xmlXPathEvalExpression((const xmlChar *)expr, ctx) : NULL;

    xmlXPathFreeContext(ctx);
    return obj;
}

char *vk_xml_xpath_string(xmlDoc *doc, const char *expr)
{
    xmlXPathObject *obj = xpath_eval(doc, expr);
    char *s = NULL;

    if (obj && obj->type == XPATH_STRING && obj->stringval && *obj->stringval)
        s = vk_strdup((const char *)obj->stringval);
    xmlXPathFreeObject(obj);
    return s;
}

xmlNode *vk_xml_xpath_first(xmlDoc *doc, const char *expr)
{
    xmlXPathObject *obj = xpath_eval(doc, expr);
    xmlNode *n = NULL;

    if (obj && obj->type == XPATH_NODESET && obj->nodesetval && obj->nodesetval->nodeNr > 0)
        n = obj->nodesetval->nodeTab[0];
    xmlXPathFreeObject(obj);
    return n;
}

int vk_xml_xpath_nodes(xmlDoc *doc, const char *expr, xmlNode ***out)
{
    xmlXPathObject *obj = xpath_eval(doc, expr);
    int n;

    *out = NULL;
    if (!obj || obj->type != XPATH_NODESET) {
        xmlXPathFreeObject(obj);
        vk_error(VK_ERR_INTERNAL, "cannot evaluate the XPath expression '%s'", expr);
        return -1;
    }
    n = obj->nodesetval ? obj->nodesetval->nodeNr : 0;
    *out = vk_calloc((size_t)n + 1, sizeof(**out));
    if (*out && n > 0)
        memcpy(*out, obj->nodesetval->nodeTab, (size_t)n * sizeof(**out));
    xmlXPathFreeObject(obj);
    return *out ? n : -1;
}
